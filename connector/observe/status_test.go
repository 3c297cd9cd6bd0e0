package observe

import (
	"bytes"
	"context"
	"encoding/json"
	"strings"
	"testing"
	"time"

	"github.com/rs/zerolog"

	"github.com/tailbox-cdc/tailbox/internal/testenv"
	"github.com/tailbox-cdc/tailbox/pkg/binlog"
)

// logged returns the JSON lines of buf whose message is msg.
func logged(t *testing.T, buf *bytes.Buffer, msg string) []map[string]any {
	t.Helper()
	var out []map[string]any
	for _, line := range strings.Split(strings.TrimSpace(buf.String()), "\n") {
		var m map[string]any
		if err := json.Unmarshal([]byte(line), &m); err != nil {
			t.Fatalf("log line %q: %v", line, err)
		}
		if m["message"] == msg {
			out = append(out, m)
		}
	}
	return out
}

func TestStatusLine(t *testing.T) {
	var buf bytes.Buffer
	m := New(testConfig(t))
	m.RunStarted(false, "")
	m.Marker(binlog.Position{File: "mysql-bin.000003", Pos: 991})
	o := &Observer{m: m, log: zerolog.New(&buf)}
	o.logStatus(time.Now(), totals{read: 125, published: 120}, 10*time.Second)

	lines := logged(t, &buf, "status")
	if len(lines) != 1 {
		t.Fatalf("%d status lines, want 1:\n%s", len(lines), buf.String())
	}
	want := map[string]any{
		"events_per_sec": 12.5, "published_per_sec": 12.0, "lag_seconds": 0.0,
		"binlog_file": "mysql-bin.000003", "binlog_pos": 991.0, "in_flight": 0.0,
		"ready": false, "reason": "starting: connecting to the source and resolving the start position",
	}
	for k, v := range want {
		if lines[0][k] != v {
			t.Errorf("%s = %v, want %v", k, lines[0][k], v)
		}
	}
}

func TestObserverLogsStatusAndSummary(t *testing.T) {
	var buf testenv.SyncBuffer
	m := New(testConfig(t))
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	m.RunStarted(false, "")
	o, err := Start(ctx, m, Options{StatusInterval: time.Second, Log: zerolog.New(&buf)})
	if err != nil {
		t.Fatal(err)
	}
	tb := &binlog.Table{Schema: "s", Name: "outbox"}
	for range 3 {
		m.Read(tb, binlog.OpInsert)
	}
	m.Read(tb, binlog.OpDelete)
	m.Checkpointed(binlog.Point{Pos: binlog.Position{File: "b.000001", Pos: 500, GTID: "0-1-5"}})
	m.Streaming()
	deadline := time.Now().Add(10 * time.Second)
	for !strings.Contains(buf.String(), `"message":"status"`) {
		if time.Now().After(deadline) {
			t.Fatalf("no status line within 10s:\n%s", buf.String())
		}
		time.Sleep(50 * time.Millisecond)
	}
	o.Close()
	o.Close() // idempotent
	m.RunEnded()

	b := bytes.NewBufferString(buf.String())
	sums := logged(t, b, "run summary")
	if len(sums) != 1 {
		t.Fatalf("%d summary lines, want 1:\n%s", len(sums), buf.String())
	}
	s := sums[0]
	for k, v := range map[string]any{"events_read": 3.0, "events_published": 0.0, "binlog_file": "b.000001", "binlog_pos": 500.0, "gtid": "0-1-5"} {
		if s[k] != v {
			t.Errorf("summary %s = %v, want %v", k, s[k], v)
		}
	}
	if d, ok := s["duration_ms"].(float64); !ok || d <= 0 {
		t.Errorf("summary duration_ms = %v, want a positive number of milliseconds", s["duration_ms"])
	}
	if ok, reason := m.health(time.Now()).ready(); ok || reason != "stopping" {
		t.Errorf("after close: ready %v %q, want not ready, stopping", ok, reason)
	}
}

func TestObserverLogsNoSummaryForARunThatNeverStreamed(t *testing.T) {
	var buf testenv.SyncBuffer
	m := New(testConfig(t))
	m.RunStarted(false, "")
	o, err := Start(context.Background(), m, Options{Log: zerolog.New(&buf)})
	if err != nil {
		t.Fatal(err)
	}
	m.SessionStarted(binlog.Point{Pos: binlog.Position{File: "b.000001", Pos: 4}})
	o.Close()
	m.RunEnded()
	if strings.Contains(buf.String(), "run summary") {
		t.Fatalf("a run summary for a run whose stream never started:\n%s", buf.String())
	}
}
