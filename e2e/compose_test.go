package e2e

import (
	"fmt"
	"net"
	"net/url"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"

	"gopkg.in/yaml.v3"

	"github.com/tailbox-cdc/tailbox/config"
)

// composeFile is the part of docker-compose.yml the test reads.
type composeFile struct {
	Services map[string]composeService `yaml:"services"`
	Volumes  map[string]any            `yaml:"volumes"`
}

type composeService struct {
	Image       string         `yaml:"image"`
	Command     []string       `yaml:"command"`
	Environment map[string]any `yaml:"environment"`
	Volumes     []string       `yaml:"volumes"`
	Ports       []string       `yaml:"ports"`
	DependsOn   map[string]struct {
		Condition string `yaml:"condition"`
	} `yaml:"depends_on"`
	Healthcheck *struct {
		Test []string `yaml:"test"`
	} `yaml:"healthcheck"`
}

// composeVar is a ${VAR} or ${VAR:-default} of a compose file.
var composeVar = regexp.MustCompile(`\$\{([A-Za-z_][A-Za-z0-9_]*)(?::-([^}]*))?\}`)

// composeInterpolate expands s as docker compose does with no variable set: each
// ${VAR:-default} becomes its default, $$ a literal $.
func composeInterpolate(s string) string {
	s = composeVar.ReplaceAllString(s, "$2")
	return strings.ReplaceAll(s, "$$", "$")
}

// env returns the service's environment, interpolated.
func (s composeService) env() map[string]string {
	out := map[string]string{}
	for k, v := range s.Environment {
		out[k] = composeInterpolate(fmt.Sprint(v))
	}
	return out
}

// mount returns the host path mounted at target ("" when none).
func (s composeService) mount(target string) string {
	for _, v := range s.Volumes {
		parts := strings.Split(v, ":")
		if len(parts) >= 2 && parts[1] == target {
			return parts[0]
		}
	}
	return ""
}

// mountedUnder reports whether p lies in a directory a volume is mounted on.
func (s composeService) mountedUnder(p string) bool {
	for _, v := range s.Volumes {
		if parts := strings.Split(v, ":"); len(parts) >= 2 && strings.HasPrefix(p, strings.TrimSuffix(parts[1], "/")+"/") {
			return true
		}
	}
	return false
}

// TestDockerCompose checks docker-compose.yml without Docker: the MySQL
// server settings tailbox needs, healthchecks and start order, and that the
// tailbox config it mounts loads and points at the compose services.
func TestDockerCompose(t *testing.T) {
	root := ".."
	data, err := os.ReadFile(filepath.Join(root, "docker-compose.yml"))
	if err != nil {
		t.Fatal(err)
	}
	var cf composeFile
	if err := yaml.Unmarshal(data, &cf); err != nil {
		t.Fatalf("parse docker-compose.yml: %v", err)
	}
	service := func(name string) composeService {
		t.Helper()
		s, ok := cf.Services[name]
		if !ok {
			t.Fatalf("docker-compose.yml has no service %q", name)
		}
		return s
	}
	mysql, kafka, tailbox, demo := service("mysql"), service("kafka"), service("tailbox"), service("demo-events")

	t.Run("mysql runs with the binlog settings tailbox needs", func(t *testing.T) {
		flags := map[string]string{}
		for _, arg := range mysql.Command {
			name, value, _ := strings.Cut(strings.TrimPrefix(arg, "--"), "=")
			flags[strings.ReplaceAll(name, "_", "-")] = value
		}
		want := map[string]string{
			"binlog-format": "ROW", "binlog-row-image": "FULL", "binlog-row-metadata": "FULL",
			"gtid-mode": "ON", "enforce-gtid-consistency": "ON",
		}
		for name, value := range want {
			if got, ok := flags[name]; !ok || !strings.EqualFold(got, value) {
				t.Errorf("mysql command: --%s=%s missing (got %q)", name, value, got)
			}
		}
		if _, ok := flags["log-bin"]; !ok {
			t.Errorf("mysql command: --log-bin missing")
		}
		if id := flags["server-id"]; id == "" || id == "0" {
			t.Errorf("mysql command: --server-id must be set and non-zero (got %q)", id)
		}
	})

	t.Run("every long-running service has a healthcheck and tailbox waits for its servers", func(t *testing.T) {
		for _, name := range []string{"mysql", "kafka", "tailbox"} {
			if hc := cf.Services[name].Healthcheck; hc == nil || len(hc.Test) == 0 {
				t.Errorf("service %s has no healthcheck", name)
			}
		}
		for svc, deps := range map[string][]string{"tailbox": {"mysql", "kafka"}, "demo-events": {"mysql", "tailbox"}} {
			for _, dep := range deps {
				if got := cf.Services[svc].DependsOn[dep].Condition; got != "service_healthy" {
					t.Errorf("%s: depends_on %s condition %q, want service_healthy", svc, dep, got)
				}
			}
		}
	})

	// The config tailbox reads, loaded with the environment compose gives
	// the container.
	i := slices.Index(tailbox.Command, "-c")
	if i < 0 || i+1 >= len(tailbox.Command) {
		t.Fatalf("tailbox command %v has no -c FILE", tailbox.Command)
	}
	hostCfg := tailbox.mount(tailbox.Command[i+1])
	if hostCfg == "" {
		t.Fatalf("tailbox: no volume mounts %s", tailbox.Command[i+1])
	}
	for k, v := range tailbox.env() {
		t.Setenv(k, v)
	}
	cfg, err := config.Load(filepath.Join(root, hostCfg))
	if err != nil {
		t.Fatalf("load %s with the tailbox service's environment: %v", hostCfg, err)
	}

	t.Run("the tailbox config points at the compose services", func(t *testing.T) {
		host, port, _ := net.SplitHostPort(cfg.Source.Addr)
		if host != "mysql" || port != "3306" {
			t.Errorf("source.addr %s, want mysql:3306", cfg.Source.Addr)
		}
		advertised := strings.Split(kafka.env()["KAFKA_ADVERTISED_LISTENERS"], ",")
		for _, b := range cfg.Kafka.Brokers {
			found := false
			for _, l := range advertised {
				if u, err := url.Parse(l); err == nil && u.Host == b {
					found = true
				}
			}
			if !found {
				t.Errorf("kafka.brokers: %s is none of the advertised listeners %v", b, advertised)
			}
		}
		if !tailbox.mountedUnder(cfg.Checkpoint.File) {
			t.Errorf("checkpoint.file %s is not on a volume: it would not survive a restart", cfg.Checkpoint.File)
		}
	})

	t.Run("the cdc user of outbox.sql is the one tailbox logs in as", func(t *testing.T) {
		sqlFile := mysql.mount("/docker-entrypoint-initdb.d/10-outbox.sql")
		if sqlFile == "" {
			t.Fatal("mysql: config/outbox.sql is not mounted into /docker-entrypoint-initdb.d")
		}
		sql, err := os.ReadFile(filepath.Join(root, sqlFile))
		if err != nil {
			t.Fatal(err)
		}
		m := regexp.MustCompile(`CREATE USER IF NOT EXISTS '([^']+)'@'%' IDENTIFIED BY '([^']+)'`).FindSubmatch(sql)
		if m == nil {
			t.Fatalf("%s creates no user", sqlFile)
		}
		if string(m[1]) != cfg.Source.User || string(m[2]) != cfg.Source.Password.Reveal() {
			t.Errorf("%s creates user %s with another password than tailbox's source.user %s gets from TAILBOX_MYSQL_PASSWORD's default", sqlFile, m[1], cfg.Source.User)
		}
		for _, table := range cfg.Outbox.Tables {
			if !strings.Contains(string(sql), "CREATE TABLE IF NOT EXISTS "+table+" ") {
				t.Errorf("%s does not create outbox table %s", sqlFile, table)
			}
		}
	})

	t.Run("tailbox's healthcheck probes its own http.listen port", func(t *testing.T) {
		host, port, err := net.SplitHostPort(cfg.HTTP.Listen)
		if err != nil || host != "0.0.0.0" {
			t.Fatalf("http.listen %q, want 0.0.0.0:PORT (reachable through the published port)", cfg.HTTP.Listen)
		}
		published := false
		for _, p := range tailbox.Ports {
			if strings.HasSuffix(strings.Trim(p, `"`), ":"+port) {
				published = true
			}
		}
		if !published {
			t.Errorf("tailbox ports %v do not publish http.listen port %s", tailbox.Ports, port)
		}
		test := strings.Join(tailbox.Healthcheck.Test, " ")
		if !strings.Contains(test, "/usr/local/bin/tailbox health") || !strings.Contains(test, "127.0.0.1:"+port+"/healthz") {
			t.Errorf("tailbox healthcheck %q: want /usr/local/bin/tailbox health on 127.0.0.1:%s/healthz (the image has no shell or curl)", test, port)
		}
	})

	t.Run("demo-events runs a SQL file that exists", func(t *testing.T) {
		src := demo.mount("/demo/demo-events.sql")
		if src == "" || !strings.Contains(strings.Join(demo.Command, " "), "/demo/demo-events.sql") {
			t.Fatalf("demo-events does not mount and run /demo/demo-events.sql: volumes %v, command %v", demo.Volumes, demo.Command)
		}
		if _, err := os.Stat(filepath.Join(root, src)); err != nil {
			t.Error(err)
		}
	})
}

// TestDockerfile checks the image recipe: a static binary on distroless,
// running as a non-root user, at the path the compose healthcheck runs.
func TestDockerfile(t *testing.T) {
	data, err := os.ReadFile(filepath.Join("..", "Dockerfile"))
	if err != nil {
		t.Fatal(err)
	}
	var from, user, entrypoint string
	static := false
	var copied, exposed []string
	for _, line := range strings.Split(string(data), "\n") {
		fields := strings.Fields(line)
		if len(fields) == 0 || strings.HasPrefix(fields[0], "#") {
			continue
		}
		switch strings.ToUpper(fields[0]) {
		case "FROM":
			from, user, copied = line, "", nil // the final stage is what counts
		case "USER":
			user = fields[1]
		case "ENTRYPOINT":
			entrypoint = line
		case "COPY":
			copied = append(copied, fields[len(fields)-1])
		case "EXPOSE":
			exposed = append(exposed, fields[1:]...)
		}
		if strings.Contains(line, "CGO_ENABLED=0") {
			static = true
		}
		if strings.Contains(line, "make binary") {
			// The release build: static when the Makefile's one release
			// build command sets CGO_ENABLED=0.
			mk, err := os.ReadFile(filepath.Join("..", "Makefile"))
			if err != nil {
				t.Fatal(err)
			}
			for _, l := range strings.Split(string(mk), "\n") {
				if strings.HasPrefix(l, "release_build =") && strings.Contains(l, "CGO_ENABLED=0") {
					static = true
				}
			}
		}
	}
	if !strings.Contains(from, "gcr.io/distroless/static") || !strings.HasSuffix(strings.TrimSpace(from), ":nonroot") {
		t.Errorf("final stage %q: want gcr.io/distroless/static...:nonroot", from)
	}
	if u, _, _ := strings.Cut(user, ":"); u == "" || u == "root" || u == "0" {
		t.Errorf("USER %q: the image must not run as root", user)
	}
	if !static {
		t.Error("the build does not set CGO_ENABLED=0: the binary would not be static")
	}
	if !slices.Contains(copied, "/usr/local/bin/tailbox") || !strings.Contains(entrypoint, "/usr/local/bin/tailbox") {
		t.Errorf("the binary is not /usr/local/bin/tailbox (copied to %v, %s)", copied, entrypoint)
	}
	if _, port, _ := net.SplitHostPort(config.Default().HTTP.Listen); !slices.Contains(exposed, port) {
		t.Errorf("EXPOSE %v does not include the default http.listen port %s", exposed, port)
	}
}
