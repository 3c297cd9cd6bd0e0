package deploy_test

import (
	"bufio"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/tailbox-cdc/tailbox/internal/testenv"
)

// unit is a parsed systemd unit file: section -> key -> values, in order
// (a key may be given several times).
type unit map[string]map[string][]string

// parseUnit reads a unit file: sections, key=value lines, comments; a
// line ending in a backslash continues on the next.
func parseUnit(t *testing.T, path string) unit {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	u := unit{}
	section := ""
	sc := bufio.NewScanner(f)
	var cont string
	for n := 1; sc.Scan(); n++ {
		line := strings.TrimSpace(sc.Text())
		if cont != "" {
			line, cont = cont+" "+line, ""
		}
		if strings.HasSuffix(line, `\`) {
			cont = strings.TrimSuffix(line, `\`)
			continue
		}
		switch {
		case line == "" || strings.HasPrefix(line, "#") || strings.HasPrefix(line, ";"):
		case strings.HasPrefix(line, "[") && strings.HasSuffix(line, "]"):
			section = line[1 : len(line)-1]
			if u[section] == nil {
				u[section] = map[string][]string{}
			}
		default:
			k, v, ok := strings.Cut(line, "=")
			if !ok || section == "" {
				t.Fatalf("%s:%d: not a key=value line in a section: %q", path, n, line)
			}
			k = strings.TrimSpace(k)
			u[section][k] = append(u[section][k], strings.TrimSpace(v))
		}
	}
	if err := sc.Err(); err != nil {
		t.Fatal(err)
	}
	return u
}

// get returns the last value of key in section ("" when unset).
func (u unit) get(section, key string) string {
	vs := u[section][key]
	if len(vs) == 0 {
		return ""
	}
	return vs[len(vs)-1]
}

// parseTimespan parses the systemd time spans the unit uses: a number of
// seconds, or numbers with s, sec, m, min, h units ("1min 30s").
func parseTimespan(t *testing.T, s string) time.Duration {
	t.Helper()
	var total time.Duration
	for _, f := range strings.Fields(s) {
		i := strings.IndexFunc(f, func(r rune) bool { return r < '0' || r > '9' })
		if i < 0 {
			i = len(f)
		}
		n, err := strconv.Atoi(f[:i])
		if err != nil {
			t.Fatalf("time span %q: %v", s, err)
		}
		unit := map[string]time.Duration{"": time.Second, "s": time.Second, "sec": time.Second, "m": time.Minute, "min": time.Minute, "h": time.Hour}[f[i:]]
		if unit == 0 {
			t.Fatalf("time span %q: unit %q this test does not read", s, f[i:])
		}
		total += time.Duration(n) * unit
	}
	return total
}

// TestSystemdUnit checks deploy/systemd/tailbox.service against the binary
// and the config it is installed with (deploy/systemd/tailbox.yaml): the
// command line, the user, the state directory holding checkpoint.file,
// the credential holding the password, the stop signal and timeout against
// the drain, the restart policy against the exit statuses, and the
// hardening; then runs the binary with that config, probes it and stops
// it with the unit's KillSignal.
func TestSystemdUnit(t *testing.T) {
	bin := testenv.Binary(t, "tailbox")
	const unitName = "tailbox.service"
	u := parseUnit(t, filepath.Join("systemd", unitName))
	svc := func(key string) string { return u.get("Service", key) }

	execStart := strings.Fields(svc("ExecStart"))
	if len(execStart) < 2 || execStart[0] != "/usr/local/bin/tailbox" {
		t.Fatalf("ExecStart=%s: want /usr/local/bin/tailbox run ... (the path the unit's install steps use)", svc("ExecStart"))
	}
	cfgPath := checkArgs(t, bin, execStart[1:])
	if cfgPath != "/etc/tailbox/tailbox.yaml" {
		t.Fatalf("ExecStart reads %s; the test installs deploy/systemd/tailbox.yaml at /etc/tailbox/tailbox.yaml as the unit's comment says", cfgPath)
	}

	// The file system the service sees, under root: the config, the
	// credential and the state directory.
	root := t.TempDir()
	example, err := os.ReadFile(filepath.Join("systemd", "tailbox.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	mustWrite(t, root, cfgPath, string(example))
	const password = "credential-password"
	for _, lc := range u["Service"]["LoadCredential"] {
		name, _, ok := strings.Cut(lc, ":")
		if !ok {
			t.Fatalf("LoadCredential=%s: want NAME:PATH", lc)
		}
		mustWrite(t, root, filepath.Join("/run/credentials", unitName, name), password)
	}
	stateDirs := strings.Fields(svc("StateDirectory"))
	if len(stateDirs) == 0 {
		t.Fatal("no StateDirectory: the checkpoint needs a writable directory that survives restarts")
	}
	stateDir := filepath.Join("/var/lib", stateDirs[0])
	if err := os.MkdirAll(filepath.Join(root, stateDir), 0o700); err != nil {
		t.Fatal(err)
	}
	cfg := loadAsDeployed(t, root, cfgPath, nil)

	t.Run("checkpoint.file is in the StateDirectory", func(t *testing.T) {
		checkCheckpointIn(t, cfg, root, stateDir, "StateDirectory="+stateDirs[0]+", the only writable path under ProtectSystem=strict")
	})
	t.Run("the password comes from the unit's credential", func(t *testing.T) {
		if got := cfg.Source.Password.Reveal(); got != password {
			t.Errorf("source password %q, want %q from LoadCredential (source.password_file %s)", got, password, strings.TrimPrefix(cfg.Source.PasswordFile, root))
		}
	})
	t.Run("it runs as no root", func(t *testing.T) {
		user := svc("User")
		if svc("DynamicUser") != "yes" && (user == "" || user == "root" || user == "0") {
			t.Errorf("DynamicUser=%q User=%q: the service must not run as root", svc("DynamicUser"), user)
		}
	})
	t.Run("the system is read-only and no privileges can be gained", func(t *testing.T) {
		for key, want := range map[string]string{
			"ProtectSystem": "strict", "NoNewPrivileges": "yes", "ProtectHome": "yes", "PrivateTmp": "yes",
			"PrivateDevices": "yes", "CapabilityBoundingSet": "",
		} {
			if vs, ok := u["Service"][key]; !ok || vs[len(vs)-1] != want {
				t.Errorf("%s=%v, want %q", key, vs, want)
			}
		}
	})

	timeout := parseTimespan(t, svc("TimeoutStopSec"))
	t.Run("the stop signal is SIGTERM and the stop timeout outlasts the drain", func(t *testing.T) {
		if sig := svc("KillSignal"); sig != "" && sig != "SIGTERM" {
			t.Errorf("KillSignal=%s: tailbox drains and checkpoints on SIGTERM (or SIGINT)", sig)
		}
		if svc("TimeoutStopSec") == "" {
			t.Error("no TimeoutStopSec: the default (90s) may be changed by DefaultTimeoutStopSec")
		}
		checkStopTimeout(t, "TimeoutStopSec", timeout)
	})

	t.Run("a failure restarts it, a configuration error does not", func(t *testing.T) {
		if r := svc("Restart"); r != "on-failure" {
			t.Errorf("Restart=%s, want on-failure", r)
		}
		// The binary's status for a configuration error.
		bad := filepath.Join(t.TempDir(), "bad.yaml")
		if err := os.WriteFile(bad, []byte("name: x\nno_such_key: 1\n"), 0o644); err != nil {
			t.Fatal(err)
		}
		err := exec.Command(bin, "run", "-c", bad).Run()
		var ee *exec.ExitError
		if !errors.As(err, &ee) {
			t.Fatalf("tailbox run with an unknown key: %v, want an exit status", err)
		}
		code := strconv.Itoa(ee.ExitCode())
		if !slices.Contains(strings.Fields(strings.Join(u["Service"]["RestartPreventExitStatus"], " ")), code) {
			t.Errorf("RestartPreventExitStatus=%v does not hold %s, tailbox's status for a configuration error: it would restart in a loop", u["Service"]["RestartPreventExitStatus"], code)
		}
		if u.get("Unit", "StartLimitBurst") == "" {
			t.Error("no StartLimitBurst: a failure a restart cannot fix (exit 1) restarts forever")
		}
	})

	t.Run("systemd-analyze verify accepts the unit", func(t *testing.T) {
		sa, err := exec.LookPath("systemd-analyze")
		if err != nil {
			t.Skip("systemd-analyze is not installed (Debian package systemd)")
		}
		data, err := os.ReadFile(filepath.Join("systemd", unitName))
		if err != nil {
			t.Fatal(err)
		}
		// verify checks that ExecStart's program exists: point it at the
		// binary built for the test.
		local := filepath.Join(t.TempDir(), unitName)
		if err := os.WriteFile(local, []byte(strings.Replace(string(data), "ExecStart=/usr/local/bin/tailbox", "ExecStart="+bin, 1)), 0o644); err != nil {
			t.Fatal(err)
		}
		if out, err := exec.Command(sa, "verify", local).CombinedOutput(); err != nil || len(strings.TrimSpace(string(out))) > 0 {
			t.Errorf("systemd-analyze verify: %v\n%s", err, out)
		}
	})

	t.Run("tailbox run with the config serves its endpoint and stops cleanly on the KillSignal", func(t *testing.T) {
		r := startDeployed(t, bin, root, cfgPath, nil)
		r.checkProbe(t, "liveness", "/healthz")
		r.checkProbe(t, "readiness", "/readyz")
		r.stopWithin(t, timeout)
	})
}
