// Package scripts holds the tests of the shell scripts beside it; it has no
// Go code of its own.
package scripts

import (
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
)

// result is what a bash run printed and how it ended.
type result struct {
	stdout, stderr string
	code           int
}

// runPrepare runs script in bash after sourcing prepare.sh, with set -euo
// pipefail as the scripts that source it have, TAILBOX_STEP_LOG set to log
// and the extra environment variables env ("NAME=value").
func runPrepare(t *testing.T, log, script string, env ...string) result {
	t.Helper()
	lib, err := filepath.Abs("prepare.sh")
	if err != nil {
		t.Fatalf("find prepare.sh: %v", err)
	}
	cmd := exec.Command("bash", "-c", "set -euo pipefail\n. "+lib+"\n"+script)
	cmd.Env = append(os.Environ(), "TAILBOX_STEP_LOG="+log, "TAILBOX_STEP_PREFIX=", "TAILBOX_STEP_TAIL=")
	cmd.Env = append(cmd.Env, env...)
	var stdout, stderr strings.Builder
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	res := result{}
	if err := cmd.Run(); err != nil {
		var exit *exec.ExitError
		if !errors.As(err, &exit) {
			t.Fatalf("run bash: %v", err)
		}
		res.code = exit.ExitCode()
	}
	res.stdout, res.stderr = stdout.String(), stderr.String()
	return res
}

// lines splits s into its lines, without the final newline.
func lines(s string) []string {
	return strings.Split(strings.TrimSuffix(s, "\n"), "\n")
}

func readLog(t *testing.T, path string) string {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("read the step log: %v", err)
	}
	return string(b)
}

// numbered is the output of `seq`-like commands: "PREFIX 1" to "PREFIX n".
func numbered(prefix string, from, to int) []string {
	var out []string
	for i := from; i <= to; i++ {
		out = append(out, fmt.Sprintf("%s %d", prefix, i))
	}
	return out
}

const duration = `[0-9]+( min [0-9]+)? s`

func TestRunStepPrintsOneLinePerStepAndLogsTheOutput(t *testing.T) {
	log := filepath.Join(t.TempDir(), "sub", "install.log")
	res := runPrepare(t, log, `
run_step "printing 200 lines" "about 1 s" bash -c 'for i in $(seq 200); do echo "out $i"; echo "err $i" >&2; done'
TAILBOX_STEP_PREFIX="    " run_step "doing nothing" "instant" true
`)
	if res.code != 0 {
		t.Fatalf("exit status %d, want 0; stderr:\n%s", res.code, res.stderr)
	}
	want := []*regexp.Regexp{
		regexp.MustCompile(`^printing 200 lines \(about 1 s\) \.\.\. done in ` + duration + `$`),
		regexp.MustCompile(`^    doing nothing \(instant\) \.\.\. done in ` + duration + `$`),
	}
	got := lines(res.stdout)
	if len(got) != len(want) {
		t.Fatalf("stdout has %d lines, want one per step (%d):\n%s", len(got), len(want), res.stdout)
	}
	for i, re := range want {
		if !re.MatchString(got[i]) {
			t.Errorf("stdout line %d = %q, want it to match %s", i+1, got[i], re)
		}
	}
	if res.stderr != "" {
		t.Errorf("stderr = %q, want nothing from steps that succeed", res.stderr)
	}
	logText := readLog(t, log)
	for _, line := range append(numbered("out", 1, 200), numbered("err", 1, 200)...) {
		if !strings.Contains(logText, "\n"+line+"\n") {
			t.Fatalf("the log lacks the step's output line %q; log:\n%s", line, logText)
		}
	}
	for _, header := range []string{": printing 200 lines\n", ": doing nothing\n", "=== $ true\n"} {
		if !strings.Contains(logText, header) {
			t.Errorf("the log lacks the header %q of its step; log:\n%s", header, logText)
		}
	}
}

func TestRunStepFailurePrintsTheTailAndTheLogPath(t *testing.T) {
	// Each case runs a step that succeeds, then one that prints 100 lines and
	// fails with status 3, then one that must not run.
	script := `
run_step "an earlier step" "about 1 s" bash -c 'echo "earlier output"'
run_step "failing" "about 2 s" bash -c 'for i in $(seq 100); do echo "out $i"; done; exit 3'
run_step "never run" "about 1 s" true
`
	tests := []struct {
		name      string
		env       []string
		wantLines []string // on stderr, each on its own line
		wantNot   []string // not on stderr
	}{
		{
			name:      "by default the last 40 lines of the failed step are printed",
			wantLines: numbered("out", 61, 100),
			wantNot:   []string{"out 60", "earlier output"},
		},
		{
			name:      "TAILBOX_STEP_TAIL=5 prints the last 5",
			env:       []string{"TAILBOX_STEP_TAIL=5"},
			wantLines: numbered("out", 96, 100),
			wantNot:   []string{"out 95", "earlier output"},
		},
		{
			name:      "TAILBOX_STEP_TAIL=all prints the failed step's whole output, not the earlier steps'",
			env:       []string{"TAILBOX_STEP_TAIL=all"},
			wantLines: numbered("out", 1, 100),
			wantNot:   []string{"earlier output"},
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			log := filepath.Join(t.TempDir(), "install.log")
			res := runPrepare(t, log, script, tc.env...)
			if res.code != 3 {
				t.Fatalf("exit status %d, want the failed command's 3; stdout:\n%s\nstderr:\n%s", res.code, res.stdout, res.stderr)
			}
			got := lines(res.stdout)
			if len(got) != 2 {
				t.Fatalf("stdout has %d lines, want 2 (the step that succeeded, the one that failed; none for the step after it):\n%s",
					len(got), res.stdout)
			}
			failed := regexp.MustCompile(`^failing \(about 2 s\) \.\.\. FAILED after ` + duration + ` \(exit status 3\)$`)
			if !failed.MatchString(got[1]) {
				t.Errorf("stdout line 2 = %q, want it to match %s", got[1], failed)
			}
			stderr := "\n" + res.stderr
			for _, line := range tc.wantLines {
				if !strings.Contains(stderr, "\n"+line+"\n") {
					t.Errorf("stderr lacks the line %q:\n%s", line, res.stderr)
				}
			}
			for _, line := range tc.wantNot {
				if strings.Contains(stderr, "\n"+line+"\n") {
					t.Errorf("stderr has the line %q, want it only in the log:\n%s", line, res.stderr)
				}
			}
			if !strings.Contains(res.stderr, "--- the whole log: "+log+" ---\n") {
				t.Errorf("stderr does not name the log %s:\n%s", log, res.stderr)
			}
			logText := readLog(t, log)
			for _, line := range append([]string{"earlier output"}, numbered("out", 1, 100)...) {
				if !strings.Contains(logText, "\n"+line+"\n") {
					t.Fatalf("the log lacks %q; log:\n%s", line, logText)
				}
			}
			if !strings.Contains(logText, "=== FAILED after ") || strings.Contains(logText, "never run") {
				t.Errorf("the log should end with the failed step, without the step after it; log:\n%s", logText)
			}
		})
	}
}

// TestAptInstallIsTwoLines runs apt_install against a stand-in apt-get (and
// sudo, when the test does not run as root) that prints as much as the real
// one does on a fresh machine.
func TestAptInstallIsTwoLines(t *testing.T) {
	dir := t.TempDir()
	bin := filepath.Join(dir, "bin")
	calls := filepath.Join(dir, "apt-get.calls")
	writeExec(t, filepath.Join(bin, "apt-get"), `#!/bin/sh
echo "DEBIAN_FRONTEND=$DEBIAN_FRONTEND $*" >>`+calls+`
i=0; while [ $i -lt 150 ]; do i=$((i+1)); echo "Setting up package-$i ..."; done
`)
	writeExec(t, filepath.Join(bin, "sudo"), `#!/bin/sh
[ "$1" = -v ] && exit 0
exec "$@"
`)
	log := filepath.Join(dir, "install.log")
	res := runPrepare(t, log, `apt_install kcat make`, "PATH="+bin+":"+os.Getenv("PATH"))
	if res.code != 0 {
		t.Fatalf("exit status %d, want 0; stdout:\n%s\nstderr:\n%s", res.code, res.stdout, res.stderr)
	}
	want := []*regexp.Regexp{
		regexp.MustCompile(`^updating the apt package lists \(about 20 s\) \.\.\. done in ` + duration + `$`),
		regexp.MustCompile(`^installing kcat make with apt-get \(about 15 s\) \.\.\. done in ` + duration + `$`),
	}
	got := lines(res.stdout)
	if len(got) != len(want) {
		t.Fatalf("stdout has %d lines, want one per step (%d):\n%s", len(got), len(want), res.stdout)
	}
	for i, re := range want {
		if !re.MatchString(got[i]) {
			t.Errorf("stdout line %d = %q, want it to match %s", i+1, got[i], re)
		}
	}
	if n := strings.Count(readLog(t, log), "Setting up package-"); n != 300 {
		t.Errorf("the log has %d of apt-get's 300 lines", n)
	}
	b, err := os.ReadFile(calls)
	if err != nil {
		t.Fatalf("read the stand-in apt-get's calls: %v", err)
	}
	wantCalls := "DEBIAN_FRONTEND=noninteractive -o DPkg::Lock::Timeout=600 update -q\n" +
		"DEBIAN_FRONTEND=noninteractive -o DPkg::Lock::Timeout=600 install -y -q --no-install-recommends kcat make\n"
	if string(b) != wantCalls {
		t.Errorf("apt-get was called as\n%swant\n%s", b, wantCalls)
	}
}

func TestMissingPackagesNamesThoseWithoutTheirProgram(t *testing.T) {
	bin := filepath.Join(t.TempDir(), "bin")
	writeExec(t, filepath.Join(bin, "kcat"), "#!/bin/sh\n")
	res := runPrepare(t, filepath.Join(t.TempDir(), "install.log"),
		`missing_packages kcat tailbox-no-such-package`, "PATH="+bin+":"+os.Getenv("PATH"))
	if res.code != 0 || res.stdout != "tailbox-no-such-package\n" {
		t.Errorf("missing_packages = %q (exit status %d), want only the package without a program", res.stdout, res.code)
	}
}

func writeExec(t *testing.T, path, text string) {
	t.Helper()
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		t.Fatalf("create %s: %v", filepath.Dir(path), err)
	}
	if err := os.WriteFile(path, []byte(text), 0o755); err != nil {
		t.Fatalf("write %s: %v", path, err)
	}
}
