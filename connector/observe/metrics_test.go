package observe

import (
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/IBM/sarama"

	"github.com/tailbox-cdc/tailbox/config"
	"github.com/tailbox-cdc/tailbox/connector/pipeline"
	"github.com/tailbox-cdc/tailbox/pkg/binlog"
	"github.com/tailbox-cdc/tailbox/pkg/kafka"
	"github.com/tailbox-cdc/tailbox/pkg/outbox"
)

var t0 = time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)

func at(s float64) time.Time { return t0.Add(time.Duration(s * float64(time.Second))) }

func TestProgressLagAndStall(t *testing.T) {
	type step struct {
		at    float64 // seconds after t0
		stats binlog.Stats
		// wantLag and wantStalled are checked after observing, in seconds.
		wantLag, wantStalled float64
	}
	tests := []struct {
		name  string
		steps []step
	}{
		{"nothing is known before the first transaction", []step{
			{at: 0, stats: binlog.Stats{Connected: true, Events: 3}, wantLag: 0, wantStalled: 0},
		}},
		{"while reading a backlog the lag is the age of the last commit read", []step{
			{at: 0, stats: binlog.Stats{Connected: true, Events: 10, LastCommit: at(-60)}, wantLag: 60},
			{at: 1, stats: binlog.Stats{Connected: true, Events: 900, LastCommit: at(-50)}, wantLag: 51},
			{at: 2, stats: binlog.Stats{Connected: true, Events: 2000, LastCommit: at(-40)}, wantLag: 42},
		}},
		{"a reader waiting for the source with nothing arriving is caught up", []step{
			{at: 0, stats: binlog.Stats{Connected: true, Events: 10, LastCommit: at(-5)}, wantLag: 5},
			{at: 0.5, stats: binlog.Stats{Connected: true, Waiting: true, Events: 10, LastCommit: at(-5)}, wantLag: 5.5, wantStalled: 0.5},
			{at: 1, stats: binlog.Stats{Connected: true, Waiting: true, Events: 10, LastCommit: at(-5)}, wantLag: 0, wantStalled: 1},
			{at: 3, stats: binlog.Stats{Connected: true, Waiting: true, Events: 10, LastCommit: at(-5)}, wantLag: 0, wantStalled: 3},
		}},
		{"a heartbeat means caught up at its arrival", []step{
			{at: 0, stats: binlog.Stats{Connected: true, Events: 10, LastCommit: at(-30)}, wantLag: 30},
			{at: 10, stats: binlog.Stats{Connected: true, Events: 11, LastCommit: at(-30), LastHeartbeat: at(9)}, wantLag: 1},
		}},
		{"a reader waiting since a heartbeat is caught up now", []step{
			{at: 0, stats: binlog.Stats{Connected: true, Events: 10, LastCommit: at(-30)}, wantLag: 30},
			{at: 10, stats: binlog.Stats{Connected: true, Waiting: true, Events: 11, LastCommit: at(-30), LastHeartbeat: at(9.5)}, wantLag: 0},
			{at: 10.5, stats: binlog.Stats{Connected: true, Waiting: true, Events: 11, LastCommit: at(-30), LastHeartbeat: at(9.5)}, wantLag: 0, wantStalled: 0.5},
		}},
		{"a transaction read after the heartbeat is measured by its commit", []step{
			{at: 0, stats: binlog.Stats{Connected: true, Waiting: true, Events: 10, LastHeartbeat: at(-1)}, wantLag: 0},
			{at: 100, stats: binlog.Stats{Connected: true, Waiting: true, Events: 15, LastCommit: at(98), LastHeartbeat: at(-1)}, wantLag: 2},
		}},
		{"a reader blocked by Kafka back-pressure falls behind", []step{
			{at: 0, stats: binlog.Stats{Connected: true, Events: 10, LastCommit: at(0)}, wantLag: 0},
			{at: 5, stats: binlog.Stats{Connected: true, Events: 10, LastCommit: at(0)}, wantLag: 5, wantStalled: 5},
			{at: 20, stats: binlog.Stats{Connected: true, Events: 10, LastCommit: at(0)}, wantLag: 20, wantStalled: 20},
		}},
		{"a disconnected reader is not caught up, however long it waits", []step{
			{at: 0, stats: binlog.Stats{Connected: true, Events: 10, LastCommit: at(0)}, wantLag: 0},
			{at: 5, stats: binlog.Stats{Waiting: true, Events: 11, LastCommit: at(0)}, wantLag: 5},
			{at: 9, stats: binlog.Stats{Waiting: true, Events: 11, LastCommit: at(0)}, wantLag: 9, wantStalled: 4},
		}},
		{"a commit time ahead of the local clock counts as no lag", []step{
			{at: 0, stats: binlog.Stats{Connected: true, Events: 1, LastCommit: at(2)}, wantLag: 0},
		}},
		{"new transactions after an idle spell are measured again", []step{
			{at: 0, stats: binlog.Stats{Connected: true, Waiting: true, Events: 5}},
			{at: 2, stats: binlog.Stats{Connected: true, Waiting: true, Events: 5}, wantLag: 0, wantStalled: 2},
			{at: 100, stats: binlog.Stats{Connected: true, Events: 9, LastCommit: at(99)}, wantLag: 1},
			{at: 130, stats: binlog.Stats{Connected: true, Events: 9, LastCommit: at(99)}, wantLag: 31, wantStalled: 30},
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var p progress
			for i, s := range tt.steps {
				now := at(s.at)
				p.observe(now, s.stats)
				if got := p.lag(now).Seconds(); got != s.wantLag {
					t.Errorf("step %d (t=%gs): lag %gs, want %gs", i, s.at, got, s.wantLag)
				}
				if got := p.stalled(now).Seconds(); got != s.wantStalled {
					t.Errorf("step %d (t=%gs): stalled %gs, want %gs", i, s.at, got, s.wantStalled)
				}
			}
		})
	}
}

func TestReadinessRule(t *testing.T) {
	streaming := health{
		phase: phaseSession, producer: true, hasReader: true,
		source:     binlog.Stats{Connected: true, Events: 7},
		stalled:    time.Second,
		stallAfter: 40 * time.Second,
	}
	tests := []struct {
		name       string
		mutate     func(h *health)
		wantReady  bool
		wantReason string
	}{
		{"a connected session that moves is ready", func(*health) {}, true, "streaming"},
		{"a dry run needs no producer", func(h *health) { h.producer, h.dryRun = false, true }, true, "streaming"},
		{"stopping is not ready", func(h *health) { h.stopping = true }, false, "stopping"},
		{"no Run is not ready", func(h *health) { h.phase = phaseIdle }, false, "not running"},
		{"starting is not ready", func(h *health) { h.phase = phaseStarting }, false,
			"starting: connecting to the source and resolving the start position"},
		{"waiting to restart after a producer failure is not ready", func(h *health) { h.phase = phaseRestarting }, false,
			"restarting the pipeline after a producer failure"},
		{"a session still connecting to Kafka is not ready", func(h *health) { h.producer = false }, false, "connecting to Kafka"},
		{"a stream not connected yet is not ready", func(h *health) { h.source.Connected = false }, false,
			"connecting to the source's binlog stream"},
		{"a lost source connection is not ready", func(h *health) { h.source.Connected, h.source.Reconnects = false, 3 }, false,
			"source connection lost, reconnecting (3 attempts so far)"},
		{"a stream standing still longer than the bound is stuck", func(h *health) { h.stalled = 41 * time.Second }, false,
			"no binlog event or heartbeat for 41s"},
		{"a stuck stream names the records waiting for Kafka", func(h *health) { h.stalled, h.inFlight = 61*time.Second, 8192 }, false,
			"no binlog event or heartbeat for 1m1s; 8192 records wait for Kafka acknowledgements"},
		{"a stream standing still up to the bound is ready", func(h *health) { h.stalled = 40 * time.Second }, true, "streaming"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			h := streaming
			tt.mutate(&h)
			ok, reason := h.ready()
			if ok != tt.wantReady || reason != tt.wantReason {
				t.Errorf("ready() = %v, %q; want %v, %q", ok, reason, tt.wantReady, tt.wantReason)
			}
		})
	}
}

func TestStallBoundOutlastsTheReadersReadTimeout(t *testing.T) {
	for _, hb := range []time.Duration{0, time.Second, 10 * time.Second} {
		readTimeout := 3 * hb
		if hb == 0 {
			readTimeout = 30 * time.Second
		}
		if got := stallBound(hb); got <= readTimeout {
			t.Errorf("stallBound(%s) = %s, want more than the read timeout %s", hb, got, readTimeout)
		}
	}
}

func TestHistogramBuckets(t *testing.T) {
	var h histogram
	for _, d := range []time.Duration{
		-time.Second,                              // clock skew: 0
		500 * time.Microsecond,                    // <= 1ms
		time.Millisecond,                          // <= 1ms (upper bounds are inclusive)
		3 * time.Millisecond,                      // <= 5ms
		time.Second,                               // <= 1s
		90 * time.Second,                          // +Inf only
		59*time.Second + 999*time.Millisecond,     // <= 60s
		2*time.Millisecond + 500*time.Microsecond, // <= 2.5ms
	} {
		h.observe(d)
	}
	cum, count, sum := h.snapshot()
	want := map[float64]uint64{0.001: 3, 0.0025: 4, 0.005: 5, 0.01: 5, 0.5: 5, 1: 6, 30: 6, 60: 7}
	for le, n := range want {
		if cum[le] != n {
			t.Errorf("cumulative count at le=%g: %d, want %d", le, cum[le], n)
		}
	}
	if len(cum) != len(latencyBuckets) {
		t.Errorf("%d buckets, want %d", len(cum), len(latencyBuckets))
	}
	if count != 8 {
		t.Errorf("count %d, want 8", count)
	}
	wantSum := (500*time.Microsecond + time.Millisecond + 3*time.Millisecond + time.Second + 90*time.Second +
		59*time.Second + 999*time.Millisecond + 2500*time.Microsecond).Seconds()
	if d := sum - wantSum; d > 1e-9 || d < -1e-9 {
		t.Errorf("sum %g, want %g", sum, wantSum)
	}
}

func TestLatencyBucketsAreSortedFrom1msTo60s(t *testing.T) {
	b := latencyBuckets[:]
	if b[0] != 0.001 || b[len(b)-1] != 60 {
		t.Errorf("buckets span %g..%g, want 0.001..60", b[0], b[len(b)-1])
	}
	for i := 1; i < len(b); i++ {
		if b[i] <= b[i-1] {
			t.Errorf("bucket %d (%g) not above bucket %d (%g)", i, b[i], i-1, b[i-1])
		}
	}
}

func TestCounterVecIsSafeForConcurrentUse(t *testing.T) {
	var v counterVec
	var wg sync.WaitGroup
	for g := range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range 1000 {
				v.with(fmt.Sprintf("topic-%d", (g+i)%3), "").Add(1)
			}
		}()
	}
	wg.Wait()
	if got := v.total(); got != 8000 {
		t.Errorf("total %d, want 8000", got)
	}
	n := 0
	v.each(func(k labelPair, c uint64) {
		n++
		if c == 0 || k.b != "" {
			t.Errorf("counter %+v = %d", k, c)
		}
	})
	if n != 3 {
		t.Errorf("%d counters, want 3", n)
	}
}

func TestFailureReasons(t *testing.T) {
	tests := []struct {
		name string
		err  error
		want string
	}{
		{"a record over max_message_bytes", fmt.Errorf("x: %w", kafka.ErrTooLarge), reasonTooLarge},
		{"an illegal rendered topic", fmt.Errorf("x: %w", outbox.ErrInvalidTopic), reasonInvalidTopic},
		{"a payload that is not JSON", fmt.Errorf("x: %w", outbox.ErrInvalidPayload), reasonInvalidPayload},
		{"a row without an event id", fmt.Errorf("x: %w", outbox.ErrInvalidEvent), reasonInvalidEvent},
		{"a record Kafka refuses for good", fmt.Errorf("x: %w", sarama.ErrInvalidRecord), reasonRejected},
		{"a delivery that may work on retry", fmt.Errorf("x: %w", sarama.ErrNotEnoughReplicas), reasonRetriable},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := failureReason(tt.err); got != tt.want {
				t.Errorf("failureReason(%v) = %q, want %q", tt.err, got, tt.want)
			}
		})
	}
}

func TestHooksCountPerTableAndTopic(t *testing.T) {
	m := New(testConfig(t))
	a, b := &binlog.Table{Schema: "s", Name: "outbox"}, &binlog.Table{Schema: "s", Name: "outbox2"}
	for _, tb := range []*binlog.Table{a, a, b, a} {
		m.Read(tb, binlog.OpInsert)
	}
	// A cleanup DELETE and an UPDATE are row changes, not events.
	for range 5 {
		m.Read(a, binlog.OpDelete)
	}
	m.Read(b, binlog.OpUpdate)
	m.Read(a, binlog.OpInsert)
	commit := time.Now().Add(-20 * time.Millisecond).UnixNano()
	for _, topic := range []string{"t1", "t1", "t2"} {
		m.Acked(topic, commit, nil, time.Now().UnixNano())
	}
	m.Acked("t2", commit, fmt.Errorf("x: %w", sarama.ErrNotEnoughReplicas), time.Now().UnixNano())
	m.DeadLettered("bad topic!", fmt.Errorf("x: %w", outbox.ErrInvalidTopic))
	m.Marker(binlog.Position{File: "mysql-bin.000042", Pos: 1234})

	for _, w := range []struct {
		table, op string
		want      uint64
	}{
		{"s.outbox", "insert", 4}, {"s.outbox", "delete", 5}, {"s.outbox", "update", 0},
		{"s.outbox2", "insert", 1}, {"s.outbox2", "update", 1},
	} {
		if got := m.rowsRead.with(w.table, w.op).Load(); got != w.want {
			t.Errorf("rows read %s %s = %d, want %d", w.table, w.op, got, w.want)
		}
	}
	if got := m.totals().read; got != 5 {
		t.Errorf("events read = %d, want 5: the inserts only", got)
	}
	if got := m.published.with("t1", "").Load(); got != 2 {
		t.Errorf("published t1 = %d, want 2", got)
	}
	if got := m.published.with("t2", "").Load(); got != 1 {
		t.Errorf("published t2 = %d, want 1 (the failed ack is not published)", got)
	}
	if got := m.failed.with(reasonRetriable, "").Load(); got != 1 {
		t.Errorf("failed retriable = %d, want 1", got)
	}
	if got := m.deadLettered.with(reasonInvalidTopic, "").Load(); got != 1 {
		t.Errorf("dead-lettered = %d, want 1", got)
	}
	if _, count, sum := m.latency.snapshot(); count != 3 || sum < 0.02 || sum > 60 {
		t.Errorf("latency count %d sum %gs, want 3 observations of at least 20ms", count, sum)
	}
	if file, index, pos := m.readPosition(); file != "mysql-bin.000042" || index != 42 || pos != 1234 {
		t.Errorf("read position %s (%d):%d, want mysql-bin.000042 (42):1234", file, index, pos)
	}
}

func TestCheckpointAge(t *testing.T) {
	m := New(testConfig(t))
	if got := m.checkpointAge(time.Now()); got != 0 {
		t.Errorf("age before any Run %s, want 0", got)
	}
	m.RunStarted(false, "")
	m.cpFresh.Store(time.Now().Add(-time.Minute).UnixNano())
	if got := m.checkpointAge(time.Now()); got < time.Minute {
		t.Errorf("age %s, want at least 1m", got)
	}
	m.CheckpointUnchanged() // no producer: in-flight unknown, not fresh
	if got := m.checkpointAge(time.Now()); got < time.Minute {
		t.Errorf("age after an unchanged save without producer %s, want still at least 1m", got)
	}
	m.Checkpointed(binlog.Point{Pos: binlog.Position{File: "b.000003", Pos: 77}, Skip: 1})
	if got := m.checkpointAge(time.Now()); got > time.Second {
		t.Errorf("age after a write %s, want about 0", got)
	}
	if p, ok := m.lastCheckpoint(); !ok || p.Pos.File != "b.000003" || p.Pos.Pos != 77 || p.Skip != 1 {
		t.Errorf("last checkpoint %+v %v", p, ok)
	}
}

// backdate makes the checkpoint last known current ago before now, as if
// that much time had passed since.
func backdate(m *Metrics, ago time.Duration) {
	m.cpFresh.Store(time.Now().Add(-ago).UnixNano())
}

func TestCheckpointAgeCountsOnlyProgressAwaitingACheckpoint(t *testing.T) {
	start := binlog.Point{Pos: binlog.Position{File: "b.000003", Pos: 400}}
	newSession := func(t *testing.T) (*Metrics, *pipeline.Tracker) {
		m := New(testConfig(t))
		m.RunStarted(false, "")
		m.SessionStarted(start)
		tr := pipeline.NewTracker(start)
		m.Tracking(tr, start)
		return m, tr
	}
	t.Run("idle source: nothing read since the start point", func(t *testing.T) {
		// exactly_once writes no checkpoint while nothing is read, and
		// at_least_once does not rewrite an unchanged one.
		m, _ := newSession(t)
		backdate(m, 10*time.Minute)
		if got := m.checkpointAge(time.Now()); got != 0 {
			t.Errorf("age %s, want 0: the checkpoint covers everything read", got)
		}
	})
	t.Run("idle again after a checkpoint that covers everything read", func(t *testing.T) {
		m, tr := newSession(t)
		p := binlog.Position{File: "b.000003", Pos: 900}
		tr.PushMarker(p)
		m.Checkpointed(binlog.Point{Pos: p})
		backdate(m, 10*time.Minute)
		if got := m.checkpointAge(time.Now()); got != 0 {
			t.Errorf("age %s, want 0", got)
		}
	})
	t.Run("read progress not checkpointed ages from when it was last covered", func(t *testing.T) {
		m, tr := newSession(t)
		m.sample(time.Now()) // the sampler sees the checkpoint current
		tr.PushMarker(binlog.Position{File: "b.000003", Pos: 900})
		if got := m.checkpointAge(time.Now()); got > 5*time.Second {
			t.Errorf("age %s just after reading moved past a current checkpoint, want about 0", got)
		}
		backdate(m, 10*time.Minute)
		if got := m.checkpointAge(time.Now()); got < 10*time.Minute {
			t.Errorf("age %s, want at least 10m: read progress waits for a checkpoint", got)
		}
	})
	t.Run("events awaiting Kafka keep the age growing", func(t *testing.T) {
		m, tr := newSession(t)
		tr.PushSlot(0, "0-1-7", false) // in flight, never acknowledged
		backdate(m, 10*time.Minute)
		m.CheckpointUnchanged()
		if got := m.checkpointAge(time.Now()); got < 10*time.Minute {
			t.Errorf("age %s, want at least 10m", got)
		}
	})
	t.Run("between sessions the age counts from the last current checkpoint", func(t *testing.T) {
		m, _ := newSession(t)
		m.SessionEnded()
		backdate(m, 10*time.Minute)
		if got := m.checkpointAge(time.Now()); got < 10*time.Minute {
			t.Errorf("age %s while restarting, want at least 10m", got)
		}
	})
	t.Run("a session resumes from a checkpoint other than the last written", func(t *testing.T) {
		// ha: a takeover reloads what the other replica committed.
		m, _ := newSession(t)
		m.Checkpointed(binlog.Point{Pos: binlog.Position{File: "b.000003", Pos: 900}})
		m.SessionEnded()
		other := binlog.Point{Pos: binlog.Position{File: "b.000004", Pos: 4}}
		m.SessionStarted(other)
		m.Tracking(pipeline.NewTracker(other), other)
		backdate(m, 10*time.Minute)
		if got := m.checkpointAge(time.Now()); got != 0 {
			t.Errorf("age %s, want 0", got)
		}
		if p, _ := m.lastCheckpoint(); p != other {
			t.Errorf("last checkpoint %+v, want the one the session started from %+v", p, other)
		}
	})
}

func TestStandbyReadsNoGrowingLagOrCheckpointAge(t *testing.T) {
	t.Run("never active", func(t *testing.T) {
		m := New(testConfig(t))
		m.RunStarted(false, "")
		m.Standby()
		backdate(m, 10*time.Minute)
		if got := m.checkpointAge(time.Now()); got != 0 {
			t.Errorf("checkpoint age %s on a standby, want 0", got)
		}
		if got := m.lag(time.Now()); got != 0 {
			t.Errorf("lag %s on a standby, want 0", got)
		}
	})
	t.Run("active, then standing by again", func(t *testing.T) {
		m := New(testConfig(t))
		m.RunStarted(false, "")
		m.Active()
		start := binlog.Point{Pos: binlog.Position{File: "b.000003", Pos: 400}}
		m.SessionStarted(start)
		tr := pipeline.NewTracker(start)
		m.Tracking(tr, start)
		tr.PushSlot(0, "0-1-7", false) // lost with the lease, never acknowledged
		m.mu.Lock()
		m.prog.observe(time.Now().Add(-10*time.Minute), binlog.Stats{Events: 3, LastCommit: time.Now().Add(-10 * time.Minute)})
		m.mu.Unlock()
		m.SessionEnded()
		m.Standby()
		backdate(m, 10*time.Minute)
		if got := m.checkpointAge(time.Now()); got != 0 {
			t.Errorf("checkpoint age %s on a standby, want 0", got)
		}
		if got := m.lag(time.Now()); got != 0 {
			t.Errorf("lag %s on a standby, want 0", got)
		}
		m.Active()
		if got := m.checkpointAge(time.Now()); got > 5*time.Second {
			t.Errorf("checkpoint age %s when taking over, want about 0: nothing is read yet", got)
		}
	})
}

func BenchmarkHotPathHooks(b *testing.B) {
	m := New(&config.Config{Name: "bench"})
	tb := &binlog.Table{Schema: "s", Name: "outbox"}
	commit := time.Now().UnixNano()
	pos := binlog.Position{File: "mysql-bin.000001", Pos: 4}
	b.ReportAllocs()
	for range b.N {
		m.Read(tb, binlog.OpInsert)
		m.Acked("outbox.event.order", commit, nil, time.Now().UnixNano())
		pos.Pos++
		m.Marker(pos)
	}
}

func testConfig(t *testing.T) *config.Config {
	t.Helper()
	cfg := config.Default()
	cfg.Name = "metrics-test"
	cfg.Source.Addr = "127.0.0.1:3306"
	cfg.Source.User = "cdc"
	cfg.Outbox.Tables = []string{"s.outbox"}
	cfg.Kafka.Brokers = []string{"127.0.0.1:9092"}
	cfg.FillDerived()
	if err := cfg.Validate(); err != nil {
		t.Fatal(err)
	}
	return &cfg
}
