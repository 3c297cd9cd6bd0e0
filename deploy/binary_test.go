// Package deploy_test checks the files under deploy/ against the tailbox
// binary: the Helm chart (rendered with a helm built from deploy/tools),
// the systemd unit, and the configurations they carry.
package deploy_test

import (
	"bufio"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/rs/zerolog"
	"gopkg.in/yaml.v3"

	"github.com/tailbox-cdc/tailbox/config"
	"github.com/tailbox-cdc/tailbox/connector"
	"github.com/tailbox-cdc/tailbox/connector/pipeline"
	"github.com/tailbox-cdc/tailbox/internal/testenv"
)

func TestMain(m *testing.M) { testenv.Main(m) }

// stopMargin is the time a supervisor's stop timeout must leave beyond
// pipeline.DrainTimeout: writing the checkpoint and closing the source,
// Kafka and HTTP connections.
const stopMargin = 10 * time.Second

// flagLine is a flag in the usage a flag.FlagSet prints for -h.
var flagLine = regexp.MustCompile(`(?m)^\s+-([A-Za-z][\w-]*)`)

// commandFlags returns the flags the binary's subcommand accepts, read from
// its -h usage.
func commandFlags(t *testing.T, bin, command string) map[string]bool {
	t.Helper()
	out, _ := exec.Command(bin, command, "-h").CombinedOutput() // -h exits 2
	flags := map[string]bool{}
	for _, m := range flagLine.FindAllStringSubmatch(string(out), -1) {
		flags[m[1]] = true
	}
	if !flags["c"] {
		t.Fatalf("tailbox %s -h lists no -c flag:\n%s", command, out)
	}
	return flags
}

// checkArgs checks a command line for the binary (without the program
// name): the subcommand is run and every flag is one it accepts. It
// returns the -c FILE.
func checkArgs(t *testing.T, bin string, args []string) string {
	t.Helper()
	if len(args) == 0 || args[0] != "run" {
		t.Fatalf("command line %q: want tailbox run", args)
	}
	flags := commandFlags(t, bin, "run")
	cfgFile := ""
	for i := 1; i < len(args); i++ {
		a := args[i]
		if !strings.HasPrefix(a, "-") {
			t.Errorf("command line %q: unexpected argument %q", args, a)
			continue
		}
		name, value, hasValue := strings.Cut(strings.TrimLeft(a, "-"), "=")
		if !flags[name] {
			t.Errorf("command line %q: tailbox run has no flag -%s", args, name)
		}
		if (name == "c" || name == "config" || name == "from") && !hasValue {
			if i+1 >= len(args) {
				t.Fatalf("command line %q: -%s without a value", args, name)
			}
			i++
			value = args[i]
		}
		if name == "c" || name == "config" {
			cfgFile = value
		}
		if name == "dry-run" {
			t.Errorf("command line %q: --dry-run produces nothing", args)
		}
	}
	if cfgFile == "" {
		t.Fatalf("command line %q has no -c FILE", args)
	}
	return cfgFile
}

// rootPaths returns the YAML document data with every absolute path
// (a string scalar starting with "/") moved under root: how the paths of a
// config file read inside a container or unit resolve in a test directory
// laid out like that file system.
func rootPaths(t *testing.T, data []byte, root string) []byte {
	t.Helper()
	var doc yaml.Node
	if err := yaml.Unmarshal(data, &doc); err != nil {
		t.Fatalf("parse config: %v", err)
	}
	var walk func(n *yaml.Node)
	walk = func(n *yaml.Node) {
		if n.Kind == yaml.ScalarNode && n.Tag == "!!str" && strings.HasPrefix(n.Value, "/") {
			n.Value = filepath.Join(root, n.Value)
		}
		for _, c := range n.Content {
			walk(c)
		}
	}
	walk(&doc)
	out, err := yaml.Marshal(&doc)
	if err != nil {
		t.Fatal(err)
	}
	return out
}

// loadAsDeployed loads the config file at path (an absolute path of the
// deployed file system, laid out under root) as tailbox run does: parse,
// expand ${VAR} from env, read password files, validate (config.Load), then
// map it onto every stage (connector.New).
func loadAsDeployed(t *testing.T, root, path string, env map[string]string) *config.Config {
	t.Helper()
	data, err := os.ReadFile(filepath.Join(root, path))
	if err != nil {
		t.Fatalf("read the config: %v", err)
	}
	lookup := func(k string) (string, bool) { v, ok := env[k]; return v, ok }
	cfg, err := config.Parse(rootPaths(t, data, root), lookup, filepath.Join(root, filepath.Dir(path)))
	if err != nil {
		t.Fatalf("the config %s is not valid for tailbox:\n%v", path, err)
	}
	if _, err := connector.New(cfg, zerolog.Nop()); err != nil {
		t.Fatalf("the config %s is not valid for tailbox: %v", path, err)
	}
	return cfg
}

// running is a tailbox run started from a deployed config.
type running struct {
	cmd  *exec.Cmd
	addr string // where it serves /metrics, /healthz, /readyz
	done chan error
}

// startDeployed runs `tailbox run -c` with the config at path under root,
// changed only so that it can run here: the source and Kafka addresses
// point at closed local ports (tailbox then retries, serving its endpoint
// meanwhile) and http.listen at a free local port. It waits for the
// endpoint to listen.
func startDeployed(t *testing.T, bin, root, path string, env map[string]string) *running {
	t.Helper()
	data, err := os.ReadFile(filepath.Join(root, path))
	if err != nil {
		t.Fatal(err)
	}
	var doc map[string]any
	if err := yaml.Unmarshal(rootPaths(t, data, root), &doc); err != nil {
		t.Fatal(err)
	}
	section := func(name string) map[string]any {
		s, _ := doc[name].(map[string]any)
		if s == nil {
			s = map[string]any{}
			doc[name] = s
		}
		return s
	}
	section("source")["addr"] = closedAddr(t)
	section("kafka")["brokers"] = []string{closedAddr(t)}
	section("http")["listen"] = "127.0.0.1:0"
	section("log")["format"] = "json"
	out, err := yaml.Marshal(doc)
	if err != nil {
		t.Fatal(err)
	}
	local := filepath.Join(root, filepath.Dir(path), "local-"+filepath.Base(path))
	if err := os.WriteFile(local, out, 0o644); err != nil {
		t.Fatal(err)
	}

	cmd := exec.Command(bin, "run", "-c", local)
	cmd.Env = os.Environ()
	for k, v := range env {
		cmd.Env = append(cmd.Env, k+"="+v)
	}
	stderr, err := cmd.StderrPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	r := &running{cmd: cmd, done: make(chan error, 1)}
	addr := make(chan string, 1)
	var log strings.Builder
	logDone := make(chan struct{})
	go func() {
		defer close(logDone)
		sc := bufio.NewScanner(stderr)
		for sc.Scan() {
			log.WriteString(sc.Text() + "\n")
			var line struct{ Message, Addr string }
			if json.Unmarshal(sc.Bytes(), &line) == nil && line.Message == "http listening" {
				addr <- line.Addr
			}
		}
		_, _ = io.Copy(io.Discard, stderr)
	}()
	go func() { <-logDone; r.done <- cmd.Wait() }()
	t.Cleanup(func() {
		if cmd.ProcessState == nil {
			_ = cmd.Process.Kill()
			<-r.done
		}
		if t.Failed() {
			t.Logf("tailbox log:\n%s", log.String())
		}
	})
	select {
	case r.addr = <-addr:
	case err := <-r.done:
		r.done <- err
		t.Fatalf("tailbox run exited before serving its endpoint (%v):\n%s", err, log.String())
	case <-time.After(30 * time.Second):
		t.Fatalf("tailbox run did not log \"http listening\" within 30s:\n%s", log.String())
	}
	return r
}

// closedAddr returns a local address nothing listens on.
func closedAddr(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()
	return addr
}

// get returns the status and body of GET path on r's endpoint.
func (r *running) get(t *testing.T, path string) (int, string) {
	t.Helper()
	resp, err := http.Get("http://" + r.addr + path)
	if err != nil {
		t.Fatalf("GET %s: %v", path, err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(body)
}

// checkProbe checks that the binary serves path as a probe of kind
// "liveness" (200 while the process runs) or "readiness" (/readyz: 503 with
// the reason while not streaming; /healthz: 200).
func (r *running) checkProbe(t *testing.T, kind, path string) {
	t.Helper()
	code, body := r.get(t, path)
	switch {
	case code == http.StatusNotFound:
		t.Errorf("%s probe path %s: tailbox does not serve it (404)", kind, path)
	case path == "/readyz":
		// Not connected to anything here: not ready, with the reason.
		if code != http.StatusServiceUnavailable || !strings.HasPrefix(body, "not ready: ") {
			t.Errorf("GET /readyz of a tailbox that cannot reach its source: %d %q, want 503 \"not ready: ...\"", code, body)
		}
	case code != http.StatusOK:
		t.Errorf("%s probe GET %s: %d %q, want 200", kind, path, code, body)
	}
}

// stopWithin sends SIGTERM and waits up to grace for the exit, which must be
// status 0 (a clean stop: drained, checkpoint written).
func (r *running) stopWithin(t *testing.T, grace time.Duration) {
	t.Helper()
	if err := r.cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	select {
	case err := <-r.done:
		var ee *exec.ExitError
		if errors.As(err, &ee) {
			t.Errorf("tailbox exited with status %d after SIGTERM, want 0", ee.ExitCode())
		} else if err != nil {
			t.Error(err)
		}
	case <-time.After(grace):
		t.Errorf("tailbox did not exit within the %s grace period after SIGTERM", grace)
	}
}

// checkStopTimeout checks a supervisor's stop timeout against the drain.
func checkStopTimeout(t *testing.T, what string, d time.Duration) {
	t.Helper()
	if min := pipeline.DrainTimeout + stopMargin; d < min {
		t.Errorf("%s %s: want at least %s (tailbox drains in-flight events for up to %s on SIGTERM, then writes the checkpoint)",
			what, d, min, pipeline.DrainTimeout)
	}
}

// checkpointDir checks that cfg's checkpoint file lies under root+dir.
func checkCheckpointIn(t *testing.T, cfg *config.Config, root, dir, what string) {
	t.Helper()
	rel, err := filepath.Rel(filepath.Join(root, dir), cfg.Checkpoint.File)
	if err != nil || strings.HasPrefix(rel, "..") {
		t.Errorf("checkpoint.file %s is not in %s (%s)", strings.TrimPrefix(cfg.Checkpoint.File, root), dir, what)
	}
}

// mustWrite writes data to root+path, creating its directory.
func mustWrite(t *testing.T, root, path, data string) {
	t.Helper()
	p := filepath.Join(root, path)
	if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(p, []byte(data), 0o600); err != nil {
		t.Fatal(fmt.Errorf("write %s: %w", path, err))
	}
}
