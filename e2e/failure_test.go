package e2e

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/tailbox-cdc/tailbox/internal/testenv"
)

// wait returns the exit code once p exits by itself.
func (p *proc) wait(t *testing.T) int {
	t.Helper()
	select {
	case <-p.done:
	case <-time.After(60 * time.Second):
		t.Fatalf("tailbox did not exit within 60s:\n%s", logTail(p.stderr.String()))
	}
	return exitCode(p.err)
}

func TestPoisonEventStopsBeforeItAndLosesNothing(t *testing.T) {
	e := newEnv(t, "envelope")
	p := e.start()
	e.tx(e.outboxInsert("00000000-0000-0000-0000-0000000000b1", "member", "m-1", "Good", `{}`))
	e.kafka.Consume(t, []string{"outbox.event.member"}, 1, 30*time.Second)
	// The route template renders an invalid topic name for this row.
	e.tx(e.outboxInsert("00000000-0000-0000-0000-0000000000b2", "bad topic!", "m-1", "Poison", `{}`))
	e.tx(e.outboxInsert("00000000-0000-0000-0000-0000000000b3", "member", "m-1", "After", `{}`))
	if code := p.wait(t); code != 1 {
		t.Fatalf("exit code %d, want 1:\n%s", code, logTail(p.stderr.String()))
	}
	if !strings.Contains(p.stderr.String(), "outbox.event.bad topic!") {
		t.Fatalf("the error does not name the rendered topic:\n%s", logTail(p.stderr.String()))
	}
	// Nothing after the poison event was published.
	recs := e.kafka.ConsumeAll(t, []string{"outbox.event.member"}, time.Second)
	if got := strings.Join(ids(recs), ","); got != "00000000-0000-0000-0000-0000000000b1" {
		t.Fatalf("records %s, want only the event before the poison one", got)
	}
	// A restart stops at the same event again: it is not skipped.
	_, stderr, code := e.runCmd("run", "-c", e.cfg)
	if code != 1 || !strings.Contains(stderr, "bad topic!") {
		t.Fatalf("restart: exit code %d:\n%s", code, stderr)
	}
	if recs := e.kafka.ConsumeAll(t, []string{"outbox.event.member"}, time.Second); len(recs) != 1 {
		t.Fatalf("restart published %d records, want still 1", len(recs))
	}
}

func TestDryRunPrintsEventsAndWritesNoCheckpoint(t *testing.T) {
	e := newEnv(t, "envelope")
	from := e.binlogEnd()
	e.tx(e.outboxInsert("00000000-0000-0000-0000-0000000000c1", "member", "m-9", "Dry", `{"a":1}`))
	p := e.start("--dry-run", "--from", from)
	deadline := time.Now().Add(30 * time.Second)
	for !strings.Contains(p.stdout.String(), "\n") && time.Now().Before(deadline) {
		time.Sleep(20 * time.Millisecond)
	}
	if code := p.stop(t); code != 0 {
		t.Fatalf("exit code %d:\n%s", code, logTail(p.stderr.String()))
	}
	var line struct {
		Topic   string            `json:"topic"`
		Key     string            `json:"key"`
		Headers map[string]string `json:"headers"`
		Value   struct {
			ID      string          `json:"id"`
			Payload json.RawMessage `json:"payload"`
		} `json:"value"`
	}
	out := strings.TrimSpace(p.stdout.String())
	if err := json.Unmarshal([]byte(out), &line); err != nil {
		t.Fatalf("dry-run output %q: %v", out, err)
	}
	if line.Topic != "outbox.event.member" || line.Key != "m-9" || line.Headers["type"] != "Dry" || line.Value.ID != "00000000-0000-0000-0000-0000000000c1" || string(line.Value.Payload) != `{"a":1}` {
		t.Fatalf("dry-run line = %+v", line)
	}
	if _, err := os.Stat(e.checkpointPath()); !os.IsNotExist(err) {
		t.Fatalf("dry run wrote a checkpoint (stat: %v)", err)
	}
	if got := e.topics(); len(got) != 0 {
		t.Fatalf("dry run produced to %v", got)
	}
}

func TestDeadLetterTakesPoisonEventsAndStreamingGoesOn(t *testing.T) {
	e := newEnv(t, "envelope")
	e.writeConfig("envelope", "  on_error: dead_letter\n  dead_letter_topic: outbox.dlq\n")
	// A record over max_message_bytes is known to fail before it is sent.
	cfg, err := os.ReadFile(e.cfg)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(e.cfg, []byte(strings.Replace(string(cfg), "  linger: 1ms\n", "  linger: 1ms\n  max_message_bytes: 2000\n", 1)), 0o600); err != nil {
		t.Fatal(err)
	}
	p := e.start()
	big := `{"blob":"` + strings.Repeat("x", 3000) + `"}`
	e.tx(
		e.outboxInsert("00000000-0000-0000-0000-0000000000d1", "member", "m-1", "Good", `{}`),
		e.outboxInsert("00000000-0000-0000-0000-0000000000d2", "bad topic!", "m-1", "BadTopic", `{"x":1}`),
		e.outboxInsert("00000000-0000-0000-0000-0000000000d3", "member", "m-1", "TooBig", big),
		e.outboxInsert("00000000-0000-0000-0000-0000000000d4", "member", "m-1", "GoodAfter", `{}`),
	)
	good := e.kafka.Consume(t, []string{"outbox.event.member"}, 2, 30*time.Second)
	dlq := e.kafka.Consume(t, []string{"outbox.dlq"}, 2, 30*time.Second)
	if code := p.stop(t); code != 0 {
		t.Fatalf("exit code %d:\n%s", code, logTail(p.stderr.String()))
	}
	if got := strings.Join(ids(good), ","); got != "00000000-0000-0000-0000-0000000000d1,00000000-0000-0000-0000-0000000000d4" {
		t.Fatalf("outbox topic got %s", got)
	}
	want := map[string][2]string{
		"00000000-0000-0000-0000-0000000000d2": {"outbox.event.bad topic!", "invalid topic"},
		"00000000-0000-0000-0000-0000000000d3": {"outbox.event.member", "too large"},
	}
	for _, r := range dlq {
		id, _ := header(r, "id")
		w, ok := want[id]
		if !ok {
			t.Fatalf("unexpected dead letter %s", id)
		}
		orig, _ := header(r, "tailbox.original.topic")
		reason, _ := header(r, "tailbox.error")
		if orig != w[0] || !strings.Contains(reason, w[1]) || string(r.Key) != "m-1" {
			t.Errorf("dead letter %s: original topic %q, reason %q, key %q", id, orig, reason, r.Key)
		}
		delete(want, id)
	}
	if len(want) != 0 {
		t.Fatalf("missing dead letters: %v", want)
	}
}

func TestTooLargeEventStopsWithOnErrorFail(t *testing.T) {
	e := newEnv(t, "envelope")
	cfg, _ := os.ReadFile(e.cfg)
	if err := os.WriteFile(e.cfg, []byte(strings.Replace(string(cfg), "  linger: 1ms\n", "  linger: 1ms\n  max_message_bytes: 2000\n", 1)), 0o600); err != nil {
		t.Fatal(err)
	}
	p := e.start()
	e.tx(e.outboxInsert("00000000-0000-0000-0000-0000000000e1", "member", "m-1", "TooBig", `{"blob":"`+strings.Repeat("x", 3000)+`"}`))
	if code := p.wait(t); code != 1 || !strings.Contains(p.stderr.String(), "too large") {
		t.Fatalf("exit code %d, want 1 naming the size:\n%s", code, logTail(p.stderr.String()))
	}
}

func TestRunRefusesMisconfiguredServerWithTheFix(t *testing.T) {
	srv := testenv.StartMariaDB(t, "binlog_format=MIXED\nbinlog_row_image=MINIMAL\nbinlog_row_metadata=NO_LOG")
	e := &env{t: t, db: srv, kafka: testenv.Kafka(t), dir: t.TempDir()}
	e.dbn = srv.CreateDatabase(t, "setup")
	e.db.Exec(t, fmt.Sprintf(testenv.OutboxDDL, e.dbn))
	e.cfg = filepath.Join(e.dir, "tailbox.yaml")
	e.writeConfig("envelope", "")
	_, stderr, code := e.runCmd("run", "-c", e.cfg)
	if code != 1 {
		t.Fatalf("exit code %d, want 1:\n%s", code, stderr)
	}
	for _, want := range []string{"SET GLOBAL binlog_format = 'ROW'", "SET GLOBAL binlog_row_image = 'FULL'", "SET GLOBAL binlog_row_metadata = 'FULL'"} {
		if !strings.Contains(runError(stderr), want) {
			t.Errorf("the error that stopped run does not give the fix %q:\n%s", want, stderr)
		}
	}
	// run refuses with the very text of check's FAIL items.
	lines, out, code := e.check()
	if code != 1 {
		t.Fatalf("check: exit code %d, want 1:\n%s", code, out)
	}
	for _, name := range []string{"binlog_format", "binlog_row_image", "binlog_row_metadata"} {
		l := wantCheck(t, lines, out, name, "FAIL", "")
		if block := "FAIL  " + name + ": " + l.detail + "\n      fix: " + l.fix; !strings.Contains(runError(stderr), block) {
			t.Errorf("run's stderr lacks check's item\n%s\nstderr:\n%s", block, stderr)
		}
	}
}
