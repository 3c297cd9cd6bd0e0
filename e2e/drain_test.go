package e2e

import (
	"encoding/json"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kmsg"
)

// TestStopWithAnUnansweredEventKeepsTheCheckpointBeforeIt stops tailbox
// (SIGTERM) while the broker holds the produce request of an event without
// answering. tailbox waits for the drain timeout (30 s), logging its
// progress every few seconds, gives the event up, says so, exits 0 and leaves the checkpoint before the event's
// transaction; the next run delivers it.
func TestStopWithAnUnansweredEventKeepsTheCheckpointBeforeIt(t *testing.T) {
	e := newEnv(t, "envelope")
	topic := []string{"outbox.event.member"}
	const first, held = "00000000-0000-0000-0000-00000000d001", "00000000-0000-0000-0000-00000000d002"
	p := e.start()
	e.tx(e.outboxInsert(first, "member", "m-1", "Tick", `{"n":1}`))
	e.kafka.Consume(t, topic, 1, 30*time.Second)

	var once sync.Once
	holding := make(chan struct{})
	release := make(chan struct{})
	var releaseOnce sync.Once
	t.Cleanup(func() { releaseOnce.Do(func() { close(release) }) })
	e.kafka.Cluster.ControlKey(int16(kmsg.Produce), func(kmsg.Request) (kmsg.Response, error, bool) {
		e.kafka.Cluster.KeepControl()
		once.Do(func() { close(holding) })
		e.kafka.Cluster.SleepControl(func() { <-release })
		return nil, nil, false
	})
	e.tx(e.outboxInsert(held, "member", "m-1", "Tick", `{"n":2}`))
	select {
	case <-holding:
	case <-time.After(30 * time.Second):
		t.Fatal("tailbox sent no produce request for the second event")
	}

	if code := p.stop(t); code != 0 {
		t.Fatalf("exit code %d after SIGTERM, want 0:\n%s", code, logTail(p.stderr.String()))
	}
	log := p.stderr.String()
	if !strings.Contains(log, "producer did not drain before the timeout") || !strings.Contains(log, "1 records abandoned") {
		t.Fatalf("the log does not report the abandoned record:\n%s", logTail(log))
	}
	// While it waits, the drain says so every few seconds.
	progress := logLines(log, "draining: waiting for kafka to acknowledge the events in flight")
	if len(progress) < 2 {
		t.Fatalf("%d drain progress lines in a 30s drain, want several:\n%s", len(progress), logTail(log))
	}
	last := 0.0
	for _, l := range progress {
		waited, _ := l["waited_ms"].(float64)
		if l["in_flight"] != 1.0 || waited <= last || l["timeout_ms"] != 30000.0 {
			t.Errorf("drain progress %v, want in_flight 1, waited_ms growing past %v, timeout_ms 30000", l, last)
		}
		last = waited
	}
	cp := readCheckpoint(t, e.checkpointPath())
	releaseOnce.Do(func() { close(release) })

	p = e.start()
	recs := e.kafka.Consume(t, topic, 2, 30*time.Second)
	if code := p.stop(t); code != 0 {
		t.Fatalf("second run exit code %d:\n%s", code, logTail(p.stderr.String()))
	}
	gtids := map[string]string{} // event id -> its transaction's GTID
	for _, r := range recs {
		id, _ := header(r, "id")
		var ev struct {
			Source struct {
				GTID string `json:"gtid"`
			} `json:"source"`
		}
		if err := json.Unmarshal(r.Value, &ev); err != nil {
			t.Fatalf("decode event %s: %v", id, err)
		}
		gtids[id] = ev.Source.GTID
	}
	if gtids[first] == "" || gtids[held] == "" {
		t.Fatalf("events %s and %s not both delivered after the restart: got %v", first, held, ids(recs))
	}
	if cp == nil || !covered(t, cp, gtids[first], 0) {
		t.Fatalf("the checkpoint written at stop (%+v) does not cover the acknowledged event of transaction %s", cp, gtids[first])
	}
	if covered(t, cp, gtids[held], 0) {
		t.Fatalf("the checkpoint written at stop (%+v) covers the unanswered event of transaction %s", cp.Position, gtids[held])
	}
}
