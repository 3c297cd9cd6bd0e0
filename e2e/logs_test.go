package e2e

import (
	"encoding/json"
	"os"
	"strings"
	"testing"
)

// What `tailbox run` writes to stderr: JSON lines, each naming the
// connector, durations in whole milliseconds under names ending in _ms, a
// fatal error reported once, no run summary for a run whose stream never
// started, and no ANSI colours when stderr is not a terminal.

// jsonLines decodes every line of a JSON log, failing on a line that is
// not JSON.
func jsonLines(t *testing.T, stderr string) []map[string]any {
	t.Helper()
	var out []map[string]any
	for _, line := range strings.Split(strings.TrimRight(stderr, "\n"), "\n") {
		var m map[string]any
		if err := json.Unmarshal([]byte(line), &m); err != nil {
			t.Fatalf("a log line that is not JSON: %q\n%s", line, logTail(stderr))
		}
		out = append(out, m)
	}
	return out
}

func TestFailedStartReportsTheErrorOnceWithoutASummary(t *testing.T) {
	e := newEnv(t, "envelope")
	e.saveCheckpoint()
	if err := os.WriteFile(e.checkpointPath(), []byte(`{"version": 1, "name": tru`), 0o600); err != nil {
		t.Fatal(err)
	}
	_, stderr, code := e.runCmd("run", "-c", e.cfg)
	if code != 1 {
		t.Fatalf("exit code %d, want 1:\n%s", code, stderr)
	}
	if n := strings.Count(stderr, "checkpoint file is corrupt"); n != 1 {
		t.Errorf("the error appears %d times on stderr, want once:\n%s", n, stderr)
	}
	if !strings.Contains(runError(stderr), "checkpoint file is corrupt") {
		t.Errorf("no \"stopped on error\" line with the error:\n%s", stderr)
	}
	if strings.Contains(stderr, "run summary") {
		t.Errorf("a run summary after a failed start:\n%s", stderr)
	}
	for _, l := range jsonLines(t, stderr) {
		if l["connector"] != "e2e-"+e.dbn {
			t.Errorf("line without connector %q: %v", "e2e-"+e.dbn, l)
		}
	}
}

func TestRetriesLogTheBackoffInMilliseconds(t *testing.T) {
	e := newEnv(t, "envelope")
	e.editConfig("brokers: ["+strings.Join(e.kafka.Addrs, ",")+"]", "brokers: ["+closedAddr(t)+"]")
	p := e.startUnchecked()
	waitForProc(t, "two failed attempts to reach Kafka", func() bool {
		return len(logLines(p.stderr.String(), "kafka unreachable, retrying")) >= 2
	}, p)
	if code := p.stop(t); code != 0 {
		t.Fatalf("exit code %d after SIGTERM, want 0:\n%s", code, logTail(p.stderr.String()))
	}
	stderr := p.stderr.String()
	for _, l := range logLines(stderr, "kafka unreachable, retrying") {
		ms, ok := l["backoff_ms"].(float64)
		if !ok || ms < 1 || ms != float64(int64(ms)) {
			t.Errorf("backoff_ms = %v, want a whole number of milliseconds: %v", l["backoff_ms"], l)
		}
		if _, ok := l["backoff"]; ok {
			t.Errorf("a backoff field without its unit: %v", l)
		}
	}
	if strings.Contains(stderr, "run summary") {
		t.Errorf("a run summary for a run stopped before its stream started:\n%s", logTail(stderr))
	}
	for _, l := range jsonLines(t, stderr) {
		if l["connector"] != "e2e-"+e.dbn {
			t.Errorf("line without connector %q: %v", "e2e-"+e.dbn, l)
		}
	}
}

func TestConsoleLogToAPipeHasNoColours(t *testing.T) {
	e := newEnv(t, "envelope")
	e.editConfig("log:\n  level: debug", "log:\n  level: debug\n  format: console")
	e.saveCheckpoint()
	if err := os.WriteFile(e.checkpointPath(), []byte(`{"version": 1, "name": tru`), 0o600); err != nil {
		t.Fatal(err)
	}
	_, stderr, code := e.runCmd("run", "-c", e.cfg)
	if code != 1 {
		t.Fatalf("exit code %d, want 1:\n%s", code, stderr)
	}
	if strings.Contains(stderr, "\x1b[") {
		t.Errorf("ANSI escapes in a console log written to a pipe:\n%q", stderr)
	}
	for _, line := range strings.Split(strings.TrimRight(stderr, "\n"), "\n") {
		if !strings.Contains(line, "connector=e2e-"+e.dbn) {
			t.Errorf("console line without connector=e2e-%s: %q", e.dbn, line)
		}
	}
	if !strings.Contains(stderr, "stopped on error") || strings.Count(stderr, "checkpoint file is corrupt") != 1 {
		t.Errorf("want the error once, on the \"stopped on error\" line:\n%s", stderr)
	}
}
