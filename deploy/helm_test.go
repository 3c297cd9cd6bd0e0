package deploy_test

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"gopkg.in/yaml.v3"

	"github.com/tailbox-cdc/tailbox/config"
	"github.com/tailbox-cdc/tailbox/internal/testenv"
)

// helmBuild is the build of helm shared by the tests of this process.
var helmBuild struct {
	once sync.Once
	path string
	skip string // why helm cannot be built here (no module proxy)
	err  error
}

// helmBinary returns a helm built from deploy/tools (a module of its own,
// pinning helm.sh/helm/v4) into .tmp/tools/helm-<hash of its go.sum>, built
// once and reused by later runs. When the modules cannot be downloaded (no
// module proxy) the test is skipped with the reason, except under CI=true,
// where it fails; a failing build always fails.
func helmBinary(t *testing.T) string {
	t.Helper()
	helmBuild.once.Do(func() {
		helmBuild.path, helmBuild.skip, helmBuild.err = buildHelm(testenv.RepoRoot(t))
	})
	switch {
	case helmBuild.err != nil:
		t.Fatal(helmBuild.err)
	case helmBuild.skip != "" && os.Getenv("CI") == "true":
		t.Fatalf("%s (CI=true: the chart must be checked)", helmBuild.skip)
	case helmBuild.skip != "":
		t.Skip(helmBuild.skip)
	}
	return helmBuild.path
}

// buildHelm builds helm unless the cached build exists.
func buildHelm(root string) (path, skip string, err error) {
	tools := filepath.Join(root, "deploy", "tools")
	sum, err := os.ReadFile(filepath.Join(tools, "go.sum"))
	if err != nil {
		return "", "", err
	}
	h := sha256.Sum256(sum)
	path = filepath.Join(root, ".tmp", "tools", "helm-"+hex.EncodeToString(h[:8]))
	if _, err := os.Stat(path); err == nil {
		return path, "", nil
	}
	goCmd := func(args ...string) *exec.Cmd {
		cmd := exec.Command("go", args...)
		cmd.Dir = tools
		cmd.Env = append(os.Environ(), "GOWORK=off", "GOFLAGS=-mod=readonly", "CGO_ENABLED=0")
		return cmd
	}
	if out, err := goCmd("mod", "download").CombinedOutput(); err != nil {
		return "", fmt.Sprintf("helm cannot be built: downloading deploy/tools' modules failed (no Go module proxy?): %v\n%s", err, out), nil
	}
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		return "", "", err
	}
	// Built beside its final name and renamed, so that an interrupted build
	// is never taken for a cached one.
	tmp := fmt.Sprintf("%s.%d.tmp", path, os.Getpid())
	start := time.Now()
	if out, err := goCmd("build", "-trimpath", "-o", tmp, "helm.sh/helm/v4/cmd/helm").CombinedOutput(); err != nil {
		os.Remove(tmp)
		return "", "", fmt.Errorf("build helm in deploy/tools: %w\n%s", err, out)
	}
	fmt.Fprintf(os.Stderr, "deploy: built helm in %s, cached as %s\n", time.Since(start).Round(time.Second), path)
	return path, "", os.Rename(tmp, path)
}

// chartDir is the chart, relative to this package.
const chartDir = "helm/tailbox"

// helm runs helm with args and returns its stdout, stderr and error.
func helm(t *testing.T, args ...string) (string, string, error) {
	t.Helper()
	cmd := exec.Command(helmBinary(t), args...)
	// Helm's own directories, away from the user's.
	home := t.TempDir()
	cmd.Env = append(os.Environ(), "HELM_CACHE_HOME="+home, "HELM_CONFIG_HOME="+home, "HELM_DATA_HOME="+home)
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	err := cmd.Run()
	return stdout.String(), stderr.String(), err
}

// The parts of the rendered Kubernetes objects that the tests read.
type (
	object struct {
		APIVersion string `yaml:"apiVersion"`
		Kind       string `yaml:"kind"`
		Metadata   struct {
			Name   string            `yaml:"name"`
			Labels map[string]string `yaml:"labels"`
		} `yaml:"metadata"`
		Data       map[string]string `yaml:"data"`       // ConfigMap, Secret (base64)
		StringData map[string]string `yaml:"stringData"` // Secret
		Spec       yaml.Node         `yaml:"spec"`
	}
	deploymentSpec struct {
		Replicas int `yaml:"replicas"`
		Strategy struct {
			Type string `yaml:"type"`
		} `yaml:"strategy"`
		Selector struct {
			MatchLabels map[string]string `yaml:"matchLabels"`
		} `yaml:"selector"`
		Template struct {
			Metadata struct {
				Labels map[string]string `yaml:"labels"`
			} `yaml:"metadata"`
			Spec podSpec `yaml:"spec"`
		} `yaml:"template"`
	}
	podSpec struct {
		TerminationGracePeriodSeconds *int `yaml:"terminationGracePeriodSeconds"`
		SecurityContext               struct {
			RunAsNonRoot *bool `yaml:"runAsNonRoot"`
			RunAsUser    *int  `yaml:"runAsUser"`
			FSGroup      *int  `yaml:"fsGroup"`
		} `yaml:"securityContext"`
		Containers []container `yaml:"containers"`
		Volumes    []volume    `yaml:"volumes"`
	}
	container struct {
		Name    string   `yaml:"name"`
		Command []string `yaml:"command"`
		Args    []string `yaml:"args"`
		Ports   []struct {
			Name          string `yaml:"name"`
			ContainerPort int    `yaml:"containerPort"`
		} `yaml:"ports"`
		Env []struct {
			Name  string `yaml:"name"`
			Value string `yaml:"value"`
		} `yaml:"env"`
		LivenessProbe   *probe `yaml:"livenessProbe"`
		ReadinessProbe  *probe `yaml:"readinessProbe"`
		SecurityContext struct {
			AllowPrivilegeEscalation *bool `yaml:"allowPrivilegeEscalation"`
			ReadOnlyRootFilesystem   *bool `yaml:"readOnlyRootFilesystem"`
			RunAsUser                *int  `yaml:"runAsUser"`
			Capabilities             struct {
				Drop []string `yaml:"drop"`
			} `yaml:"capabilities"`
		} `yaml:"securityContext"`
		VolumeMounts []struct {
			Name      string `yaml:"name"`
			MountPath string `yaml:"mountPath"`
			SubPath   string `yaml:"subPath"`
		} `yaml:"volumeMounts"`
	}
	probe struct {
		HTTPGet *struct {
			Path string    `yaml:"path"`
			Port yaml.Node `yaml:"port"` // a name or a number
		} `yaml:"httpGet"`
	}
	volume struct {
		Name      string `yaml:"name"`
		ConfigMap *struct {
			Name string `yaml:"name"`
		} `yaml:"configMap"`
		Secret *struct {
			SecretName string `yaml:"secretName"`
			Items      []struct {
				Key  string `yaml:"key"`
				Path string `yaml:"path"`
			} `yaml:"items"`
		} `yaml:"secret"`
		PersistentVolumeClaim *struct {
			ClaimName string `yaml:"claimName"`
		} `yaml:"persistentVolumeClaim"`
		EmptyDir *struct{} `yaml:"emptyDir"`
	}
	serviceSpec struct {
		Selector                 map[string]string `yaml:"selector"`
		PublishNotReadyAddresses bool              `yaml:"publishNotReadyAddresses"`
		Ports                    []struct {
			Name       string    `yaml:"name"`
			Port       int       `yaml:"port"`
			TargetPort yaml.Node `yaml:"targetPort"`
		} `yaml:"ports"`
	}
	pdbSpec struct {
		MinAvailable   *int `yaml:"minAvailable"`
		MaxUnavailable *int `yaml:"maxUnavailable"`
		Selector       struct {
			MatchLabels map[string]string `yaml:"matchLabels"`
		} `yaml:"selector"`
	}
	serviceMonitorSpec struct {
		Selector struct {
			MatchLabels map[string]string `yaml:"matchLabels"`
		} `yaml:"selector"`
		Endpoints []struct {
			Port string `yaml:"port"`
			Path string `yaml:"path"`
		} `yaml:"endpoints"`
	}
	pvcSpec struct {
		AccessModes []string `yaml:"accessModes"`
	}
)

// manifests is one rendering of the chart, by kind and name.
type manifests map[string]map[string]object

// parseManifests splits helm template's output into objects.
func parseManifests(t *testing.T, out string) manifests {
	t.Helper()
	ms := manifests{}
	dec := yaml.NewDecoder(strings.NewReader(out))
	for {
		var o object
		err := dec.Decode(&o)
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			t.Fatalf("parse the rendered manifests: %v", err)
		}
		if o.Kind == "" {
			continue // an empty document
		}
		if ms[o.Kind] == nil {
			ms[o.Kind] = map[string]object{}
		}
		if _, dup := ms[o.Kind][o.Metadata.Name]; dup {
			t.Errorf("two %s named %s", o.Kind, o.Metadata.Name)
		}
		ms[o.Kind][o.Metadata.Name] = o
	}
	return ms
}

// one returns the only object of kind, decoding its spec into spec.
func (ms manifests) one(t *testing.T, kind string, spec any) object {
	t.Helper()
	if n := len(ms[kind]); n != 1 {
		t.Fatalf("%d objects of kind %s, want 1", n, kind)
	}
	for _, o := range ms[kind] {
		if spec != nil {
			if err := o.Spec.Decode(spec); err != nil {
				t.Fatalf("decode the %s's spec: %v", kind, err)
			}
		}
		return o
	}
	return object{}
}

// selects reports whether selector matches labels.
func selects(selector, labels map[string]string) bool {
	if len(selector) == 0 {
		return false
	}
	for k, v := range selector {
		if labels[k] != v {
			return false
		}
	}
	return true
}

// portNumber resolves a probe's or Service's port (a name or a number)
// against the container's ports.
func portNumber(t *testing.T, c container, port yaml.Node) int {
	t.Helper()
	if n, err := strconv.Atoi(port.Value); err == nil {
		return n
	}
	for _, p := range c.Ports {
		if p.Name == port.Value {
			return p.ContainerPort
		}
	}
	t.Fatalf("port %q is none of the container's ports", port.Value)
	return 0
}

// The password values the chart variants are rendered with.
const (
	chartPassword    = "chart-test-password"
	existingPassword = "existing-secret-password"
)

// TestHelmChart lints and renders the chart for each values variant and
// checks the objects against the binary: the command line, the config in
// the ConfigMap (loaded and validated as tailbox run does, with the
// password from the Secret), the probes and the metrics path (served by
// the real binary started with that config), the checkpoint volume, the
// stop on SIGTERM within the grace period, and each variant's own shape.
func TestHelmChart(t *testing.T) {
	bin := testenv.Binary(t, "tailbox")
	helmBinary(t)

	variants := []struct {
		name           string
		args           []string
		ha             bool
		serviceMonitor bool
	}{
		{name: "one replica with the file store", args: []string{"--set", "mysqlPassword.value=" + chartPassword}},
		{name: "ha with the kafka store and an existing secret", ha: true,
			args: []string{"-f", filepath.Join(chartDir, "values-ha.yaml"), "--set", "mysqlPassword.existingSecret=shop-cdc"}},
		{name: "with a service monitor", serviceMonitor: true,
			args: []string{"--set", "mysqlPassword.value=" + chartPassword, "--set", "serviceMonitor.enabled=true"}},
	}
	for _, v := range variants {
		t.Run(v.name, func(t *testing.T) {
			if out, errOut, err := helm(t, append([]string{"lint", "--strict", chartDir}, v.args...)...); err != nil {
				t.Fatalf("helm lint: %v\n%s%s", err, out, errOut)
			}
			out, errOut, err := helm(t, append([]string{"template", "shop", chartDir}, v.args...)...)
			if err != nil {
				t.Fatalf("helm template: %v\n%s", err, errOut)
			}
			ms := parseManifests(t, out)
			checkRendered(t, bin, ms, v.ha, v.serviceMonitor)
		})
	}
}

// checkRendered checks one rendering of the chart.
func checkRendered(t *testing.T, bin string, ms manifests, ha, serviceMonitor bool) {
	var dep deploymentSpec
	ms.one(t, "Deployment", &dep)
	pod := dep.Template.Spec
	if len(pod.Containers) != 1 {
		t.Fatalf("%d containers, want 1", len(pod.Containers))
	}
	c := pod.Containers[0]
	if !selects(dep.Selector.MatchLabels, dep.Template.Metadata.Labels) {
		t.Errorf("the Deployment's selector %v does not select its pods %v", dep.Selector.MatchLabels, dep.Template.Metadata.Labels)
	}

	// The file system the container sees, laid out under root: each
	// volume's content at its mount path.
	root := t.TempDir()
	volumes := map[string]volume{}
	for _, v := range pod.Volumes {
		volumes[v.Name] = v
	}
	mountOf := map[string]string{} // volume name -> mount path
	for _, m := range c.VolumeMounts {
		v, ok := volumes[m.Name]
		if !ok {
			t.Fatalf("volumeMount %s: no such volume", m.Name)
		}
		mountOf[m.Name] = m.MountPath
		switch {
		case v.ConfigMap != nil:
			cm, ok := ms["ConfigMap"][v.ConfigMap.Name]
			if !ok {
				t.Fatalf("volume %s: the chart renders no ConfigMap %s", v.Name, v.ConfigMap.Name)
			}
			for k, data := range cm.Data {
				mustWrite(t, root, filepath.Join(m.MountPath, k), data)
			}
		case v.Secret != nil:
			s, rendered := ms["Secret"][v.Secret.SecretName]
			for _, it := range v.Secret.Items {
				value := existingPassword
				if rendered {
					var ok bool
					if value, ok = s.StringData[it.Key]; !ok {
						t.Errorf("volume %s: Secret %s has no key %s", v.Name, s.Metadata.Name, it.Key)
					}
				}
				mustWrite(t, root, filepath.Join(m.MountPath, it.Path), value)
			}
		case v.PersistentVolumeClaim != nil, v.EmptyDir != nil:
			if err := os.MkdirAll(filepath.Join(root, m.MountPath), 0o755); err != nil {
				t.Fatal(err)
			}
		default:
			t.Fatalf("volume %s: a kind this test does not lay out", v.Name)
		}
	}

	if len(c.Command) != 0 {
		t.Errorf("command %q overrides the image's entrypoint /usr/local/bin/tailbox", c.Command)
	}
	cfgPath := checkArgs(t, bin, c.Args)
	env := map[string]string{}
	for _, e := range c.Env {
		env[e.Name] = e.Value
	}
	cfg := loadAsDeployed(t, root, cfgPath, env)

	t.Run("the MySQL password comes from the Secret", func(t *testing.T) {
		want := chartPassword
		if ms["Secret"] == nil {
			want = existingPassword
		}
		if got := cfg.Source.Password.Reveal(); got != want {
			t.Errorf("source password %q, want %q from the Secret's mount", got, want)
		}
		if !strings.HasPrefix(cfg.Source.PasswordFile, root) {
			t.Errorf("source.password_file %s is not an absolute path of a mounted Secret", cfg.Source.PasswordFile)
		}
	})

	var httpPort int
	t.Run("http.listen is on all interfaces at the container's http port", func(t *testing.T) {
		host, port, err := net.SplitHostPort(cfg.HTTP.Listen)
		if err != nil || (host != "0.0.0.0" && host != "" && host != "::") {
			t.Fatalf("http.listen %q: in a pod tailbox must listen on 0.0.0.0 (or the pod IP), not loopback, for probes and scrapes to reach it", cfg.HTTP.Listen)
		}
		httpPort, _ = strconv.Atoi(port)
		var hp yaml.Node
		hp.SetString("http")
		if got := portNumber(t, c, hp); got != httpPort {
			t.Errorf("container port http %d, http.listen port %d", got, httpPort)
		}
		for name, p := range map[string]*probe{"liveness": c.LivenessProbe, "readiness": c.ReadinessProbe} {
			if p == nil || p.HTTPGet == nil {
				t.Errorf("no %s httpGet probe", name)
				continue
			}
			if got := portNumber(t, c, p.HTTPGet.Port); got != httpPort {
				t.Errorf("%s probe on port %d, http.listen port %d", name, got, httpPort)
			}
		}
	})

	var svc serviceSpec
	svcObj := ms.one(t, "Service", &svc)
	t.Run("the Service selects the pods and exposes the http port, ready or not", func(t *testing.T) {
		if !selects(svc.Selector, dep.Template.Metadata.Labels) {
			t.Errorf("Service selector %v does not select the pods %v", svc.Selector, dep.Template.Metadata.Labels)
		}
		if !svc.PublishNotReadyAddresses {
			t.Error("publishNotReadyAddresses is off: a not ready or standby replica (tailbox_ready 0, tailbox_ha_active 0) would not be scraped")
		}
		if len(svc.Ports) != 1 || svc.Ports[0].Name != "http" || portNumber(t, c, svc.Ports[0].TargetPort) != httpPort {
			t.Errorf("Service ports %+v: want http targeting container port %d", svc.Ports, httpPort)
		}
	})

	t.Run("the container runs as non-root with a read-only root file system", func(t *testing.T) {
		sc, psc := c.SecurityContext, pod.SecurityContext
		if psc.RunAsNonRoot == nil || !*psc.RunAsNonRoot || psc.RunAsUser == nil || *psc.RunAsUser == 0 {
			t.Errorf("pod securityContext runAsNonRoot %v runAsUser %v: want true and a non-zero user", psc.RunAsNonRoot, psc.RunAsUser)
		}
		if sc.ReadOnlyRootFilesystem == nil || !*sc.ReadOnlyRootFilesystem {
			t.Error("readOnlyRootFilesystem is not true")
		}
		if sc.AllowPrivilegeEscalation == nil || *sc.AllowPrivilegeEscalation {
			t.Error("allowPrivilegeEscalation is not false")
		}
		if !slices.Contains(sc.Capabilities.Drop, "ALL") {
			t.Errorf("capabilities drop %v, want ALL", sc.Capabilities.Drop)
		}
	})

	grace := 30 * time.Second // Kubernetes' default
	if pod.TerminationGracePeriodSeconds != nil {
		grace = time.Duration(*pod.TerminationGracePeriodSeconds) * time.Second
	}
	checkStopTimeout(t, "terminationGracePeriodSeconds", grace)

	if ha {
		t.Run("ha: two replicas on the kafka store with exactly_once and a PodDisruptionBudget", func(t *testing.T) {
			if !cfg.HA.Enabled || cfg.Checkpoint.Store != config.StoreKafka || cfg.Delivery != config.ExactlyOnce {
				t.Errorf("config ha.enabled %v, checkpoint.store %s, delivery %s: want true, kafka, exactly_once", cfg.HA.Enabled, cfg.Checkpoint.Store, cfg.Delivery)
			}
			if dep.Replicas != 2 {
				t.Errorf("replicas %d, want 2", dep.Replicas)
			}
			if ms["PersistentVolumeClaim"] != nil {
				t.Error("a PersistentVolumeClaim with the kafka store: nothing uses it")
			}
			var pdb pdbSpec
			ms.one(t, "PodDisruptionBudget", &pdb)
			if !selects(pdb.Selector.MatchLabels, dep.Template.Metadata.Labels) {
				t.Errorf("PodDisruptionBudget selector %v does not select the pods %v", pdb.Selector.MatchLabels, dep.Template.Metadata.Labels)
			}
			if pdb.MinAvailable == nil || *pdb.MinAvailable < 1 || *pdb.MinAvailable >= dep.Replicas {
				t.Errorf("PodDisruptionBudget minAvailable %v: want at least 1 and fewer than the %d replicas (else no node can be drained)", pdb.MinAvailable, dep.Replicas)
			}
			// A standby is not ready on /readyz, and the PDB and a rollout
			// count only ready pods.
			if p := c.ReadinessProbe.HTTPGet.Path; p != "/healthz" {
				t.Errorf("readiness probe %s with ha: a standby never passes /readyz, which stalls rollouts and makes the PodDisruptionBudget block every drain; want /healthz", p)
			}
		})
	} else {
		t.Run("one replica keeps its checkpoint file on the PersistentVolumeClaim", func(t *testing.T) {
			if dep.Replicas != 1 || dep.Strategy.Type != "Recreate" {
				t.Errorf("replicas %d, strategy %s: want 1 and Recreate (the checkpoint file is locked by one process)", dep.Replicas, dep.Strategy.Type)
			}
			if cfg.Checkpoint.Store != config.StoreFile {
				t.Fatalf("checkpoint.store %s, want file", cfg.Checkpoint.Store)
			}
			var claim string
			for name, v := range volumes {
				if v.PersistentVolumeClaim != nil && mountOf[name] != "" {
					claim = v.PersistentVolumeClaim.ClaimName
					checkCheckpointIn(t, cfg, root, mountOf[name], "the PersistentVolumeClaim's mount")
				}
			}
			if claim == "" {
				t.Fatal("no PersistentVolumeClaim is mounted: the checkpoint would not survive a restart")
			}
			var pvc pvcSpec
			if o, ok := ms["PersistentVolumeClaim"][claim]; !ok {
				t.Errorf("the chart renders no PersistentVolumeClaim %s", claim)
			} else if err := o.Spec.Decode(&pvc); err != nil || !slices.Contains(pvc.AccessModes, "ReadWriteOnce") {
				t.Errorf("PersistentVolumeClaim access modes %v (%v), want ReadWriteOnce", pvc.AccessModes, err)
			}
			if c.ReadinessProbe.HTTPGet.Path != "/readyz" {
				t.Errorf("readiness probe %s, want /readyz", c.ReadinessProbe.HTTPGet.Path)
			}
			if ms["PodDisruptionBudget"] != nil {
				t.Error("a PodDisruptionBudget for one replica blocks every node drain")
			}
		})
	}

	var metricsPath string
	if serviceMonitor {
		t.Run("the ServiceMonitor scrapes /metrics on the Service's http port", func(t *testing.T) {
			var sm serviceMonitorSpec
			ms.one(t, "ServiceMonitor", &sm)
			if !selects(sm.Selector.MatchLabels, svcObj.Metadata.Labels) {
				t.Errorf("ServiceMonitor selector %v does not select the Service %v", sm.Selector.MatchLabels, svcObj.Metadata.Labels)
			}
			if len(sm.Endpoints) != 1 || sm.Endpoints[0].Port != svc.Ports[0].Name {
				t.Fatalf("ServiceMonitor endpoints %+v: want the Service port %s", sm.Endpoints, svc.Ports[0].Name)
			}
			metricsPath = sm.Endpoints[0].Path
		})
	} else if ms["ServiceMonitor"] != nil {
		t.Error("a ServiceMonitor although serviceMonitor.enabled is off (it needs prometheus-operator's CRDs)")
	}

	t.Run("tailbox run with the ConfigMap serves the probes and stops cleanly on SIGTERM", func(t *testing.T) {
		r := startDeployed(t, bin, root, cfgPath, env)
		r.checkProbe(t, "liveness", c.LivenessProbe.HTTPGet.Path)
		r.checkProbe(t, "readiness", c.ReadinessProbe.HTTPGet.Path)
		if metricsPath != "" {
			if code, body := r.get(t, metricsPath); code != 200 || !strings.Contains(body, "tailbox_build_info") {
				t.Errorf("GET %s: %d, want 200 with tailbox's metrics", metricsPath, code)
			}
		}
		r.stopWithin(t, grace)
	})
}

// TestHelmChartRefusesUnsafeValues renders values the chart must refuse,
// each with a message that says what to change.
func TestHelmChartRefusesUnsafeValues(t *testing.T) {
	helmBinary(t)
	tests := []struct {
		name string
		args []string
		want string
	}{
		{"two replicas without ha", []string{"--set", "mysqlPassword.value=x", "--set", "replicas=2"}, "replicas > 1 needs config.ha.enabled"},
		{"http.listen set in the config", []string{"--set", "mysqlPassword.value=x", "--set", "config.http.listen=127.0.0.1:7391"}, "config.http.listen is set by the chart"},
		{"checkpoint.file set in the config", []string{"--set", "mysqlPassword.value=x", "--set", "config.checkpoint.file=/tmp/c.json"}, "config.checkpoint.file is set by the chart"},
		{"no password", nil, "no MySQL password"},
		{"a password both in the config and a Secret", []string{"--set", "mysqlPassword.value=x", "--set", "config.source.password=y"}, "set by the chart from mysqlPassword"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, errOut, err := helm(t, append([]string{"template", "shop", chartDir}, tt.args...)...)
			if err == nil {
				t.Fatalf("helm template accepted the values")
			}
			if !strings.Contains(errOut, tt.want) {
				t.Errorf("helm template: %s\nwant a message containing %q", errOut, tt.want)
			}
		})
	}
}
