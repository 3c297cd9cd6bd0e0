// Package observe owns a connector's observability: the counts and gauges
// of a Run (Metrics, fed by hooks the lobby and the pipeline call), their
// Prometheus exposition, the HTTP endpoint (/metrics, /healthz, /readyz),
// the status log and run summary (Observer), and the slog bridge that
// hands go-mysql's logging to zerolog.
package observe

import (
	"context"
	"errors"
	"fmt"

	"sort"
	"sync"
	"sync/atomic"
	"time"

	"github.com/tailbox-cdc/tailbox/config"
	"github.com/tailbox-cdc/tailbox/internal/buildinfo"
	"github.com/tailbox-cdc/tailbox/pkg/binlog"
	"github.com/tailbox-cdc/tailbox/pkg/kafka"
	"github.com/tailbox-cdc/tailbox/pkg/outbox"
)

// Metrics is plain atomics: prometheus.go turns them into Prometheus metrics
// when scraped, so the pipeline's hot path never calls into the metrics
// library, and per-event hooks reuse the counter of the previous event's
// table or topic instead of looking labels up.

// latencyBuckets are the upper bounds, in seconds, of the commit-to-ack
// histogram: 1 ms to 60 s.
var latencyBuckets = [...]float64{0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60}

const (
	// sampleEvery is how often the Observer samples the reader for lag and
	// readiness (scrapes and /readyz sample too).
	sampleEvery = time.Second
	// idleAfter is how long the reader must wait for the source with
	// nothing arriving to count as caught up (lag 0) before the next
	// heartbeat says so.
	idleAfter = time.Second
)

// Failure reasons, the reason label of the failed and dead-lettered counts.
const (
	reasonTooLarge       = "too_large"       // over kafka.max_message_bytes
	reasonInvalidTopic   = "invalid_topic"   // the route template rendered an illegal name
	reasonInvalidPayload = "invalid_payload" // payload_type json and not JSON
	reasonInvalidEvent   = "invalid_event"   // NULL or empty id, or type for cloudevents
	reasonRejected       = "rejected"        // Kafka refused the record for good
	reasonRetriable      = "retriable"       // delivery failed; the pipeline restarts
)

// poisonReasons are the reasons an event can be dead-lettered for, and
// failureReasons those it can fail for: their series are exported at 0
// from the start, so that increase() sees the first one.
var (
	poisonReasons  = []string{reasonTooLarge, reasonInvalidTopic, reasonInvalidPayload, reasonInvalidEvent}
	failureReasons = append(poisonReasons[:len(poisonReasons):len(poisonReasons)], reasonRejected, reasonRetriable)
)

// failureReason classifies a poison-event or delivery error.
func failureReason(err error) string {
	switch {
	case errors.Is(err, kafka.ErrTooLarge):
		return reasonTooLarge
	case errors.Is(err, outbox.ErrInvalidTopic):
		return reasonInvalidTopic
	case errors.Is(err, outbox.ErrInvalidPayload):
		return reasonInvalidPayload
	case errors.Is(err, outbox.ErrInvalidEvent):
		return reasonInvalidEvent
	case kafka.IsPermanent(err):
		return reasonRejected
	}
	return reasonRetriable
}

// labelPair is the label values of one counter of a counterVec: one or two
// labels (b is "" for one).
type labelPair struct{ a, b string }

// counterVec is a family of counters keyed by label values, safe for
// concurrent use. A known key costs a read lock; hot paths keep the
// *atomic.Uint64 they got.
type counterVec struct {
	mu sync.RWMutex
	m  map[labelPair]*atomic.Uint64
}

// with returns the counter of the label values a and b, creating it at 0.
func (v *counterVec) with(a, b string) *atomic.Uint64 {
	k := labelPair{a, b}
	v.mu.RLock()
	c := v.m[k]
	v.mu.RUnlock()
	if c != nil {
		return c
	}
	v.mu.Lock()
	defer v.mu.Unlock()
	if c = v.m[k]; c == nil {
		if v.m == nil {
			v.m = map[labelPair]*atomic.Uint64{}
		}
		c = new(atomic.Uint64)
		v.m[k] = c
	}
	return c
}

// each calls f for every counter, in no particular order.
func (v *counterVec) each(f func(labelPair, uint64)) {
	v.mu.RLock()
	defer v.mu.RUnlock()
	for k, c := range v.m {
		f(k, c.Load())
	}
}

// total returns the sum of all counters.
func (v *counterVec) total() uint64 {
	var n uint64
	v.each(func(_ labelPair, c uint64) { n += c })
	return n
}

// histogram counts durations in latencyBuckets, safe for concurrent use.
type histogram struct {
	counts [len(latencyBuckets) + 1]atomic.Uint64 // per bucket, not cumulative; last = above the largest bound
	sumNs  atomic.Int64
}

// observe adds one duration; a negative one (clock skew) counts as 0.
func (h *histogram) observe(d time.Duration) {
	d = max(d, 0)
	h.counts[sort.SearchFloat64s(latencyBuckets[:], d.Seconds())].Add(1)
	h.sumNs.Add(int64(d))
}

// snapshot returns the cumulative count at or below each bound of
// latencyBuckets, the total count and the sum in seconds.
func (h *histogram) snapshot() (cumulative map[float64]uint64, count uint64, sum float64) {
	cumulative = make(map[float64]uint64, len(latencyBuckets))
	for i, le := range latencyBuckets {
		count += h.counts[i].Load()
		cumulative[le] = count
	}
	count += h.counts[len(latencyBuckets)].Load()
	return cumulative, count, time.Duration(h.sumNs.Load()).Seconds()
}

// phase is where Run is, for readiness.
type phase int32

const (
	phaseIdle       phase = iota // Run is not running
	phaseStarting                // opening the checkpoint, connecting, resolving the start
	phaseSession                 // a pipeline session runs
	phaseRestarting              // waiting to restart after a producer failure
	phaseStandby                 // ha: waiting for the lease another replica holds
)

// HA roles, tailbox_ha_active.
const (
	roleNone    int32 = iota // ha.enabled is false
	roleStandby              // waiting for the lease
	roleActive               // holding the lease
)

// Progress is what Metrics reads of a session's tracker (the checkpoint
// rule): the point after everything the session read. It must be safe for
// use concurrently with the session. It is an alias of the interface
// type, so that pipeline.Progress, an alias of the same type, is one with it
// and Metrics implements pipeline.Hooks without naming the pipeline.
type Progress = interface {
	// ReadPoint returns the point after everything read; it equals the
	// committed point once every event read is settled.
	ReadPoint() binlog.Point
}

// Metrics is a connector's instrumentation: the counts and gauges behind
// /metrics, the facts behind /readyz and the status log. Its hooks are
// called by the lobby (Run's lifecycle) and the pipeline (per event and
// per session); the counts add up over every Run. Create it with New; it is
// safe for concurrent use, except that the per-event hooks Read and Marker
// are called by one goroutine at a time, and Acked by one at a time.
type Metrics struct {
	name       string
	version    string
	stallAfter time.Duration // readiness: longest time the stream may stand still
	flavor     atomic.Pointer[string]

	rowsRead     counterVec // by table and op
	published    counterVec // by topic
	failed       counterVec // by reason
	deadLettered counterVec // by reason
	latency      histogram
	retries      atomic.Uint64
	restarts     atomic.Uint64

	// outbox.cleanup: whether it is on, rows deleted, rows waiting.
	cleanup     bool
	rowsDeleted atomic.Uint64
	rowsWaiting atomic.Int64

	// The last transaction end read.
	readFile  atomic.Pointer[string]
	readIndex atomic.Int64
	readPos   atomic.Uint32

	// Caches of the pump goroutine (one at a time: sessions do not overlap):
	// the counters of lastTable by binlog.Op.
	lastTable *binlog.Table
	lastRead  [binlog.OpDelete + 1]*atomic.Uint64
	// Caches of the acknowledgement goroutine (one at a time as well).
	lastTopic string
	lastPub   *atomic.Uint64

	// Run state.
	role       atomic.Int32 // roleNone, roleStandby or roleActive
	phase      atomic.Int32
	stopping   atomic.Bool
	dryRun     atomic.Bool
	streamed   atomic.Bool  // a session of the current Run streamed (see Streaming)
	started    atomic.Int64 // Unix ns of the current or last Run's start
	reader     atomic.Pointer[binlog.Reader]
	producer   atomic.Pointer[kafka.Producer]
	reconnects atomic.Uint64 // reconnects of the readers of earlier Runs, and connect retries

	// Checkpoint: cpFresh is when the written checkpoint was last known to
	// cover everything read (Unix ns); cp is the last one written (or the
	// one the current session started from); tracker is the current
	// session's, whose read point cp covers when nothing awaits a
	// checkpoint.
	cpFresh atomic.Int64
	tracker atomic.Pointer[Progress]
	cpMu    sync.Mutex
	cp      binlog.Point
	cpSaved bool

	mu   sync.Mutex
	prog progress // guarded by mu

	blMu sync.Mutex
	bl   backlog // guarded by blMu
}

// New returns the Metrics of a connector configured by cfg (its name, source
// flavor and heartbeat), with nothing counted and no Run started.
func New(cfg *config.Config) *Metrics {
	m := &Metrics{
		name:       cfg.Name,
		version:    buildinfo.Version(),
		stallAfter: stallBound(cfg.Source.Heartbeat.D()),
		cleanup:    cfg.Outbox.Cleanup.Enabled,
	}
	flavor := cfg.Source.Flavor
	m.flavor.Store(&flavor)
	m.readIndex.Store(-1)
	for _, r := range failureReasons {
		m.failed.with(r, "")
	}
	for _, r := range poisonReasons {
		m.deadLettered.with(r, "")
	}
	return m
}

// stallBound is how long a stream may go without an event before /readyz
// calls it stuck: the reader's read timeout (3 heartbeats) plus one more
// heartbeat, so that a half-open connection is first left to the reader's
// own reconnect.
func stallBound(heartbeat time.Duration) time.Duration {
	if heartbeat <= 0 {
		heartbeat = 10 * time.Second
	}
	return 4 * heartbeat
}

// Hooks of the lobby: the lifecycle of Run.

// RunStarted resets the run state at the start of Run; version, when not
// empty, replaces the build's version in tailbox_build_info.
func (m *Metrics) RunStarted(dryRun bool, version string) {
	now := time.Now().UnixNano()
	if version != "" {
		m.version = version
	}
	m.phase.Store(int32(phaseStarting))
	m.stopping.Store(false)
	m.streamed.Store(false)
	m.dryRun.Store(dryRun)
	m.started.Store(now)
	m.cpFresh.Store(now)
	m.cpMu.Lock()
	m.cp, m.cpSaved = binlog.Point{}, false
	m.cpMu.Unlock()
	m.resetBacklog()
}

// Standby marks a replica waiting for the HA lease. A standby reads
// nothing and writes no checkpoint: it drops what the readings of lag and
// checkpoint age would take from an earlier active period (the closed
// reader, its progress, the session's tracker), so that both read 0 while
// it stands by instead of growing.
func (m *Metrics) Standby() {
	m.role.Store(roleStandby)
	m.phase.Store(int32(phaseStandby))
	if r := m.reader.Swap(nil); r != nil {
		m.reconnects.Add(r.Stats().Reconnects)
	}
	m.producer.Store(nil)
	m.tracker.Store(nil)
	m.mu.Lock()
	m.prog = progress{}
	m.mu.Unlock()
	m.resetBacklog()
}

// Active marks the replica holding the HA lease. Its takeover starts from
// the stored checkpoint, with nothing read yet: the checkpoint age counts
// from now, not from before it stood by.
func (m *Metrics) Active() {
	m.cpFresh.Store(time.Now().UnixNano())
	m.role.Store(roleActive)
	m.phase.Store(int32(phaseStarting))
}

// SourceOpened records Run's reader.
func (m *Metrics) SourceOpened(r *binlog.Reader) {
	flavor := r.Server().Flavor.String()
	m.flavor.Store(&flavor)
	m.reader.Store(r)
}

// SessionStarted marks the start of a pipeline session from start, the
// acknowledged checkpoint: what is read and checkpointed so far.
func (m *Metrics) SessionStarted(start binlog.Point) {
	m.mu.Lock()
	m.prog = progress{}
	m.mu.Unlock()
	m.resetBacklog()
	m.Marker(start.Pos)
	if !m.dryRun.Load() {
		m.cpMu.Lock()
		if !m.cpSaved {
			m.cp, m.cpSaved = start, true
		}
		m.cpMu.Unlock()
	}
	m.producer.Store(nil)
	m.phase.Store(int32(phaseSession))
}

// Tracking records the progress (tracker) of the session that starts from
// start, a stored checkpoint (or the start point a run stores first): the
// written checkpoint covers everything read until pr's read point moves.
// A nil pr tracks nothing.
func (m *Metrics) Tracking(pr Progress, start binlog.Point) {
	if !m.dryRun.Load() {
		m.cpMu.Lock()
		m.cp, m.cpSaved = start, true
		m.cpMu.Unlock()
	}
	m.cpFresh.Store(time.Now().UnixNano())
	if pr == nil {
		m.tracker.Store(nil)
		return
	}
	m.tracker.Store(&pr)
}

// Streaming records that a session's stream flows from its start point:
// the Run got past its start-up, and Observer.Close logs its summary.
func (m *Metrics) Streaming() { m.streamed.Store(true) }

// ProducerUp records the session's producer once it is connected.
func (m *Metrics) ProducerUp(p *kafka.Producer) { m.producer.Store(p) }

// SessionEnded marks the end of a pipeline session.
func (m *Metrics) SessionEnded() {
	m.producer.Store(nil)
	m.tracker.Store(nil)
	m.phase.Store(int32(phaseRestarting))
}

// Restarted counts a restart of the pipeline after a producer failure.
func (m *Metrics) Restarted() { m.restarts.Add(1) }

// SourceRetry counts a failed attempt to connect to the source before its
// stream runs (opening the reader, starting a session's stream), which is
// retried after a back-off; the reader counts reconnects of a running
// stream itself.
func (m *Metrics) SourceRetry() { m.reconnects.Add(1) }

// RunEnded marks the end of Run.
func (m *Metrics) RunEnded() {
	if r := m.reader.Swap(nil); r != nil {
		m.reconnects.Add(r.Stats().Reconnects)
	}
	m.producer.Store(nil)
	m.tracker.Store(nil)
	m.phase.Store(int32(phaseIdle))
}

// Hooks of the pipeline.

// Read counts a captured row change of table t with operation op (pump
// goroutine). Only inserts are events; an op out of range counts as
// unknown.
func (m *Metrics) Read(t *binlog.Table, op binlog.Op) {
	if op < 0 || int(op) >= len(m.lastRead) {
		op = binlog.OpUnknown
	}
	if t != m.lastTable {
		m.lastTable, m.lastRead = t, [len(m.lastRead)]*atomic.Uint64{}
	}
	c := m.lastRead[op]
	if c == nil {
		c = m.rowsRead.with(t.String(), op.String())
		m.lastRead[op] = c
	}
	c.Add(1)
}

// Marker records a transaction end read (pump goroutine).
func (m *Metrics) Marker(p binlog.Position) {
	if f := m.readFile.Load(); f == nil || *f != p.File {
		file := p.File
		m.readFile.Store(&file)
		m.readIndex.Store(binlog.FileIndex(file))
	}
	m.readPos.Store(p.Pos)
}

// Acked counts an acknowledgement (acknowledgement goroutine) of a record
// for topic that arrived at now (Unix ns; one reading serves a burst): with
// a nil err a record published, with its commit-to-ack latency when
// commitNanos (the commit time of its transaction, Unix ns) is not 0, else
// a failed one.
func (m *Metrics) Acked(topic string, commitNanos int64, err error, now int64) {
	if err != nil {
		m.failed.with(failureReason(err), "").Add(1)
		return
	}
	if topic != m.lastTopic || m.lastPub == nil {
		m.lastTopic, m.lastPub = topic, m.published.with(topic, "")
	}
	m.lastPub.Add(1)
	if commitNanos != 0 {
		m.latency.observe(time.Duration(now - commitNanos))
	}
}

// RowsDeleted counts n outbox rows deleted by outbox.cleanup.
func (m *Metrics) RowsDeleted(n int64) { m.rowsDeleted.Add(uint64(n)) }

// RowsWaiting records how many published rows outbox.cleanup remembers
// and has not deleted yet.
func (m *Metrics) RowsWaiting(n int) { m.rowsWaiting.Store(int64(n)) }

// DeadLettered counts an event sent to the dead-letter topic instead
// of topic because of err. The count is by reason only: the log line and
// the dead-letter record's headers name the topic.
func (m *Metrics) DeadLettered(topic string, err error) {
	m.deadLettered.with(failureReason(err), "").Add(1)
}

// Rejected counts an event for topic that stops the connector (on_error
// fail) because of err, by reason.
func (m *Metrics) Rejected(topic string, err error) {
	m.failed.with(failureReason(err), "").Add(1)
}

// ProducerRetry counts a retry round of the producer (kafka.Config.OnRetry).
func (m *Metrics) ProducerRetry() { m.retries.Add(1) }

// Checkpointed records a checkpoint written at p.
func (m *Metrics) Checkpointed(p binlog.Point) {
	m.cpMu.Lock()
	m.cp, m.cpSaved = p, true
	m.cpMu.Unlock()
	m.cpFresh.Store(time.Now().UnixNano())
}

// CheckpointUnchanged records a periodic checkpoint that had nothing new to
// write: the written one is current when no record awaits acknowledgement.
func (m *Metrics) CheckpointUnchanged() {
	if p := m.producer.Load(); p != nil && p.InFlight() == 0 {
		m.cpFresh.Store(time.Now().UnixNano())
	}
}

// Readings for /metrics, /readyz and the status log.

// lastCheckpoint returns the last checkpoint written, if any.
func (m *Metrics) lastCheckpoint() (binlog.Point, bool) {
	m.cpMu.Lock()
	defer m.cpMu.Unlock()
	return m.cp, m.cpSaved
}

// checkpointAge returns how long read progress has waited to be
// checkpointed at now: 0 while the written checkpoint covers everything the
// session read (an idle source, and exactly_once between its transactions,
// whose checkpoints are written only with events), on an HA standby (it
// reads nothing) and before the first Run; else the time since the
// checkpoint last covered everything read or was last written.
func (m *Metrics) checkpointAge(now time.Time) time.Duration {
	if m.role.Load() == roleStandby || m.checkpointCurrent(now) {
		return 0
	}
	t := m.cpFresh.Load()
	if t == 0 {
		return 0
	}
	return max(now.Sub(time.Unix(0, t)), 0)
}

// checkpointCurrent reports whether the written checkpoint covers the
// current session's read point at now, and then records now as a time it
// did (so that the age counts from about when reading moved past it).
func (m *Metrics) checkpointCurrent(now time.Time) bool {
	tr := m.tracker.Load()
	if tr == nil {
		return false
	}
	cp, ok := m.lastCheckpoint()
	if !ok || (*tr).ReadPoint() != cp {
		return false
	}
	for t := now.UnixNano(); ; {
		old := m.cpFresh.Load()
		if old >= t || m.cpFresh.CompareAndSwap(old, t) {
			return true
		}
	}
}

// inFlight returns the records the current producer holds unacknowledged.
func (m *Metrics) inFlight() int {
	if p := m.producer.Load(); p != nil {
		return p.InFlight()
	}
	return 0
}

// sourceReconnects returns the reconnects of every reader of m's Runs.
func (m *Metrics) sourceReconnects() uint64 {
	n := m.reconnects.Load()
	if r := m.reader.Load(); r != nil {
		n += r.Stats().Reconnects
	}
	return n
}

// readPosition returns the last transaction end read.
func (m *Metrics) readPosition() (file string, index int64, pos uint32) {
	if f := m.readFile.Load(); f != nil {
		file = *f
	}
	return file, m.readIndex.Load(), m.readPos.Load()
}

// sample observes the reader and the checkpoint at now and returns what it
// saw of the reader.
func (m *Metrics) sample(now time.Time) (binlog.Stats, bool) {
	m.checkpointCurrent(now)
	r := m.reader.Load()
	if r == nil {
		return binlog.Stats{}, false
	}
	s := r.Stats()
	m.mu.Lock()
	m.prog.observe(now, s)
	m.mu.Unlock()
	return s, true
}

// lag returns how far the reader is behind the source at now.
func (m *Metrics) lag(now time.Time) time.Duration {
	m.sample(now)
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.prog.lag(now)
}

// resetBacklog forgets the backlog measured so far: a new Run, session or
// standby reads from elsewhere, or nothing.
func (m *Metrics) resetBacklog() {
	m.blMu.Lock()
	m.bl = backlog{}
	m.blMu.Unlock()
}

// sampleBacklog lists the source's binary logs with list and measures how
// far the read position is behind their end at now. It does nothing while
// no session reads (starting, restarting, standby) or before the first
// position is read.
func (m *Metrics) sampleBacklog(ctx context.Context, list BinaryLogs, now time.Time) error {
	file, _, pos := m.readPosition()
	if phase(m.phase.Load()) != phaseSession || file == "" {
		return nil
	}
	logs, err := list(ctx)
	if err != nil {
		return fmt.Errorf("list the source's binary logs: %w", err)
	}
	m.sample(now)
	m.mu.Lock()
	caughtUp := m.prog.idle
	m.mu.Unlock()
	m.blMu.Lock()
	defer m.blMu.Unlock()
	if phase(m.phase.Load()) != phaseSession {
		return nil // the session ended while listing
	}
	return m.bl.observe(now, logs, binlog.Position{File: file, Pos: pos}, caughtUp)
}

// backlog returns the last backlog measured, if any.
func (m *Metrics) backlog() backlog {
	m.blMu.Lock()
	defer m.blMu.Unlock()
	return m.bl
}

// health returns the inputs of the readiness rule at now.
func (m *Metrics) health(now time.Time) health {
	s, ok := m.sample(now)
	m.mu.Lock()
	stalled := m.prog.stalled(now)
	m.mu.Unlock()
	return health{
		phase:      phase(m.phase.Load()),
		stopping:   m.stopping.Load(),
		dryRun:     m.dryRun.Load(),
		producer:   m.producer.Load() != nil,
		hasReader:  ok,
		source:     s,
		stalled:    stalled,
		stallAfter: m.stallAfter,
		inFlight:   m.inFlight(),
	}
}

// progress turns snapshots of the reader's Stats into how far behind the
// source it is and how long its stream has stood still. The zero value is
// ready to use (a new session starts with one).
type progress struct {
	idle     bool // at the last observation, the reader had everything the source sent
	seen     bool
	events   uint64    // Stats.Events at the last observation
	movedAt  time.Time // first observation of that value
	caughtUp time.Time // everything the source committed before it has been read
}

// observe takes a snapshot s taken at now.
func (p *progress) observe(now time.Time, s binlog.Stats) {
	moved := !p.seen || s.Events != p.events
	if moved {
		p.seen, p.events, p.movedAt = true, s.Events, now
	}
	// A reader waiting for the source has everything the source sent when
	// nothing arrived for idleAfter, or when the last news was a heartbeat
	// (nothing committed since it).
	p.idle = s.Connected && s.Waiting && (!moved && now.Sub(p.movedAt) >= idleAfter ||
		!s.LastHeartbeat.IsZero() && s.LastHeartbeat.After(s.LastCommit))
	if p.idle {
		p.caughtUp = latest(p.caughtUp, now)
	}
	// A transaction read is as recent as its commit; a heartbeat means the
	// source had nothing more to send.
	p.caughtUp = latest(p.caughtUp, s.LastCommit)
	p.caughtUp = latest(p.caughtUp, s.LastHeartbeat)
}

// lag returns now minus the time up to which everything committed on the
// source has been read; 0 while that is unknown (nothing read yet).
func (p *progress) lag(now time.Time) time.Duration {
	if p.caughtUp.IsZero() {
		return 0
	}
	return max(now.Sub(p.caughtUp), 0)
}

// stalled returns how long the stream has not moved at now (0 before the
// first observation).
func (p *progress) stalled(now time.Time) time.Duration {
	if !p.seen {
		return 0
	}
	return max(now.Sub(p.movedAt), 0)
}

func latest(a, b time.Time) time.Time {
	if b.After(a) {
		return b
	}
	return a
}
