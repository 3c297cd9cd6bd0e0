package e2e

import (
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// Where the checkpoint lives, and a start without one, are never silent
// (issue 16): a relative checkpoint.file, the default included, is
// resolved against the config file's directory, not the working directory
// (under systemd often /), and a run that finds no checkpoint warns with
// where it looked and where it starts.

// noCheckpointPrefix starts the message of the warning of a run that
// finds no checkpoint.
const noCheckpointPrefix = "no checkpoint found: "

// logLine returns the first JSON log line of stderr whose message starts
// with prefix, decoded; nil when there is none.
func logLine(t *testing.T, stderr, prefix string) map[string]any {
	t.Helper()
	for _, l := range strings.Split(stderr, "\n") {
		if !strings.HasPrefix(l, "{") {
			continue
		}
		var m map[string]any
		if err := json.Unmarshal([]byte(l), &m); err != nil {
			t.Fatalf("log line is not JSON: %v\n%s", err, l)
		}
		if msg, _ := m["message"].(string); strings.HasPrefix(msg, prefix) {
			return m
		}
	}
	return nil
}

// waitFile waits up to 30 s for path to exist while p runs.
func waitFile(t *testing.T, p *proc, path string) {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for {
		if _, err := os.Stat(path); err == nil {
			return
		}
		select {
		case <-p.done:
			t.Fatalf("tailbox exited early (%v):\n%s", p.err, logTail(p.stderr.String()))
		case <-time.After(20 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s was not written within 30s:\n%s", path, logTail(p.stderr.String()))
		}
	}
}

func TestCheckpointFileIsNextToTheConfigAndAStartWithoutOneWarns(t *testing.T) {
	e := newEnv(t, "envelope")
	e.editConfig("  file: "+e.checkpointPath()+"\n", "") // the default, ./data/<name>.checkpoint.json
	e.workDir = t.TempDir()                              // not the config file's directory
	want := filepath.Join(e.dir, "data", "e2e-"+e.dbn+".checkpoint.json")

	p := e.startUnchecked()
	waitFile(t, p, want)
	w := logLine(t, p.stderr.String(), noCheckpointPrefix)
	if w == nil {
		t.Fatalf("no %q warning:\n%s", noCheckpointPrefix, logTail(p.stderr.String()))
	}
	if w["level"] != "warn" || w["checkpoint_file"] != want || w["from"] != "start.from latest" {
		t.Fatalf("warning %v: want level warn, checkpoint_file %s, from \"start.from latest\"", w, want)
	}
	if f, _ := w["binlog_file"].(string); f == "" || w["gtid"] == "" || w["binlog_pos"] == nil {
		t.Fatalf("warning %v does not name the start position", w)
	}
	e.deliverOne("located", nil)
	if code := p.stop(t); code != 0 {
		t.Fatalf("exit code %d after SIGTERM", code)
	}
	if _, err := os.Stat(filepath.Join(e.workDir, "data")); err == nil {
		t.Fatalf("a checkpoint directory was created in the working directory %s", e.workDir)
	}

	// From yet another working directory, the run finds it and does not warn.
	e.workDir = t.TempDir()
	p = e.startUnchecked()
	deadline := time.Now().Add(30 * time.Second)
	for logLine(t, p.stderr.String(), "starting") == nil {
		if time.Now().After(deadline) {
			t.Fatalf("no starting line within 30s:\n%s", logTail(p.stderr.String()))
		}
		time.Sleep(20 * time.Millisecond)
	}
	if s := logLine(t, p.stderr.String(), "starting"); s["from"] != "checkpoint" {
		t.Fatalf("second run starts from %v, want the checkpoint", s["from"])
	}
	if w := logLine(t, p.stderr.String(), noCheckpointPrefix); w != nil {
		t.Fatalf("a run with a checkpoint warns %v", w)
	}
	if code := p.stop(t); code != 0 {
		t.Fatalf("exit code %d after SIGTERM", code)
	}
}

func TestAStartWithoutAKafkaCheckpointWarnsWithTopicAndKey(t *testing.T) {
	e := newEnv(t, "envelope")
	e.useKafkaStore(false)
	p := e.start("--from", "earliest")
	w := logLine(t, p.stderr.String(), noCheckpointPrefix)
	if w == nil {
		t.Fatalf("no %q warning:\n%s", noCheckpointPrefix, logTail(p.stderr.String()))
	}
	if w["checkpoint_topic"] != "tailbox.checkpoints" || w["checkpoint_key"] != "e2e-"+e.dbn || w["from"] != "--from earliest" {
		t.Fatalf("warning %v: want checkpoint_topic tailbox.checkpoints, checkpoint_key e2e-%s, from \"--from earliest\"", w, e.dbn)
	}
	if _, ok := w["checkpoint_file"]; ok {
		t.Fatalf("a kafka store's warning names a file: %v", w)
	}
	if code := p.stop(t); code != 0 {
		t.Fatalf("exit code %d after SIGTERM", code)
	}
}
