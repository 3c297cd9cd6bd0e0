package connector

import (
	"errors"
	"runtime/debug"
	"sort"
	"sync"
	"sync/atomic"
	"time"

	"github.com/tailbox-cdc/tailbox/config"
	"github.com/tailbox-cdc/tailbox/pkg/binlog"
	"github.com/tailbox-cdc/tailbox/pkg/kafka"
	"github.com/tailbox-cdc/tailbox/pkg/outbox"
)

// This file holds a Connector's instrumentation: the counts and gauges
// behind /metrics, the facts behind /readyz and the status log. It is plain
// atomics; prometheus.go turns it into Prometheus metrics when scraped, so the
// pipeline's hot path never calls into the metrics library, and per-event
// hooks reuse the counter of the previous event's table or topic instead of
// looking labels up.

// latencyBuckets are the upper bounds, in seconds, of the commit-to-ack
// histogram: 1 ms to 60 s.
var latencyBuckets = [...]float64{0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60}

const (
	// sampleEvery is how often Run samples the reader for lag and readiness
	// (scrapes and /readyz sample too).
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

// sendMeta is what the acknowledgement of a record that pump hands to the
// producer needs; the record's kafka.Record.Meta points to it.
type sendMeta struct {
	// seq is the record's slot in the tracker.
	seq uint64
	// commit is the commit time of its transaction (Unix ns, 0 unknown),
	// for the commit-to-ack histogram.
	commit int64
	// size is the record's kafka.Record.Size, taken from the in-flight
	// bound at its acknowledgement.
	size int
}

// metrics is a Connector's instrumentation. Its hooks are called by Run
// and the pipeline; the counts add up over every Run of the Connector.
type metrics struct {
	name       string
	version    string
	stallAfter time.Duration // readiness: longest time the stream may stand still
	flavor     atomic.Pointer[string]

	eventsRead   counterVec // by table
	published    counterVec // by topic
	failed       counterVec // by topic and reason
	deadLettered counterVec // by original topic and reason
	latency      histogram
	retries      atomic.Uint64
	restarts     atomic.Uint64

	// The last transaction end read.
	readFile  atomic.Pointer[string]
	readIndex atomic.Int64
	readPos   atomic.Uint32

	// Caches of the pump goroutine (one at a time: sessions do not overlap).
	lastTable *binlog.Table
	lastRead  *atomic.Uint64
	// Caches of the acknowledgement goroutine (one at a time as well).
	lastTopic string
	lastPub   *atomic.Uint64

	// Run state.
	role       atomic.Int32 // roleNone, roleStandby or roleActive
	phase      atomic.Int32
	stopping   atomic.Bool
	dryRun     atomic.Bool
	started    atomic.Int64 // Unix ns of the current or last Run's start
	reader     atomic.Pointer[binlog.Reader]
	producer   atomic.Pointer[kafka.Producer]
	reconnects atomic.Uint64 // reconnects of the readers of earlier Runs

	// Checkpoint: cpFresh is when the written checkpoint was last known to
	// cover everything read (Unix ns); cp is the last one written (or the
	// one the current session started from); tracker is the current
	// session's, whose read point cp covers when nothing awaits a
	// checkpoint.
	cpFresh atomic.Int64
	tracker atomic.Pointer[tracker]
	cpMu    sync.Mutex
	cp      binlog.Point
	cpSaved bool

	mu   sync.Mutex
	prog progress // guarded by mu
}

func newMetrics(cfg *config.Config) *metrics {
	m := &metrics{
		name:       cfg.Name,
		version:    buildVersion(),
		stallAfter: stallBound(cfg.Source.Heartbeat.D()),
	}
	flavor := cfg.Source.Flavor
	m.flavor.Store(&flavor)
	m.readIndex.Store(-1)
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

// buildVersion is the module version of the binary, or its VCS revision
// for a development build, or "dev".
func buildVersion() string {
	bi, ok := debug.ReadBuildInfo()
	if !ok {
		return "dev"
	}
	if v := bi.Main.Version; v != "" && v != "(devel)" {
		return v
	}
	rev, dirty := "", false
	for _, s := range bi.Settings {
		switch s.Key {
		case "vcs.revision":
			rev = s.Value
		case "vcs.modified":
			dirty = s.Value == "true"
		}
	}
	if rev == "" {
		return "dev"
	}
	if len(rev) > 12 {
		rev = rev[:12]
	}
	if dirty {
		rev += "-dirty"
	}
	return "dev-" + rev
}

// Hooks of Run.

// runStarted resets the run state at the start of Run; version, when not
// empty, replaces the build's version in tailbox_info.
func (m *metrics) runStarted(dryRun bool, version string) {
	now := time.Now().UnixNano()
	if version != "" {
		m.version = version
	}
	m.phase.Store(int32(phaseStarting))
	m.stopping.Store(false)
	m.dryRun.Store(dryRun)
	m.started.Store(now)
	m.cpFresh.Store(now)
	m.cpMu.Lock()
	m.cp, m.cpSaved = binlog.Point{}, false
	m.cpMu.Unlock()
}

// standby marks a replica waiting for the HA lease. A standby reads
// nothing and writes no checkpoint: it drops what the readings of lag and
// checkpoint age would take from an earlier active period (the closed
// reader, its progress, the session's tracker), so that both read 0 while
// it stands by instead of growing.
func (m *metrics) standby() {
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
}

// active marks the replica holding the HA lease. Its takeover starts from
// the stored checkpoint, with nothing read yet: the checkpoint age counts
// from now, not from before it stood by.
func (m *metrics) active() {
	m.cpFresh.Store(time.Now().UnixNano())
	m.role.Store(roleActive)
	m.phase.Store(int32(phaseStarting))
}

// sourceOpened records Run's reader.
func (m *metrics) sourceOpened(r *binlog.Reader) {
	flavor := r.Server().Flavor.String()
	m.flavor.Store(&flavor)
	m.reader.Store(r)
}

// sessionStarted marks the start of a pipeline session from start, the
// acknowledged checkpoint: what is read and checkpointed so far.
func (m *metrics) sessionStarted(start binlog.Point) {
	m.mu.Lock()
	m.prog = progress{}
	m.mu.Unlock()
	m.marker(start.Pos)
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

// tracking records the tracker of the session that starts from start, a
// stored checkpoint (or the start point a run stores first): the written
// checkpoint covers everything read until the tracker's read point moves.
func (m *metrics) tracking(tr *tracker, start binlog.Point) {
	if !m.dryRun.Load() {
		m.cpMu.Lock()
		m.cp, m.cpSaved = start, true
		m.cpMu.Unlock()
	}
	m.cpFresh.Store(time.Now().UnixNano())
	m.tracker.Store(tr)
}

// producerUp records the session's producer once it is connected.
func (m *metrics) producerUp(p *kafka.Producer) { m.producer.Store(p) }

// sessionEnded marks the end of a pipeline session.
func (m *metrics) sessionEnded() {
	m.producer.Store(nil)
	m.tracker.Store(nil)
	m.phase.Store(int32(phaseRestarting))
}

// restarted counts a restart of the pipeline after a producer failure.
func (m *metrics) restarted() { m.restarts.Add(1) }

// runEnded marks the end of Run.
func (m *metrics) runEnded() {
	if r := m.reader.Swap(nil); r != nil {
		m.reconnects.Add(r.Stats().Reconnects)
	}
	m.producer.Store(nil)
	m.tracker.Store(nil)
	m.phase.Store(int32(phaseIdle))
}

// Hooks of the pipeline.

// read counts a captured row change of table t (pump goroutine).
func (m *metrics) read(t *binlog.Table) {
	if t != m.lastTable || m.lastRead == nil {
		m.lastTable, m.lastRead = t, m.eventsRead.with(t.String(), "")
	}
	m.lastRead.Add(1)
}

// marker records a transaction end read (pump goroutine).
func (m *metrics) marker(p binlog.Position) {
	if f := m.readFile.Load(); f == nil || *f != p.File {
		file := p.File
		m.readFile.Store(&file)
		m.readIndex.Store(binlog.FileIndex(file))
	}
	m.readPos.Store(p.Pos)
}

// commitNanos is sendMeta.commit for a change of txn: its commit time in
// Unix ns, 0 when unknown.
func commitNanos(txn *binlog.Txn) int64 {
	if txn == nil || txn.CommitTime.IsZero() {
		return 0
	}
	return txn.CommitTime.UnixNano()
}

// acked counts an acknowledgement (acknowledgement goroutine) that arrived
// at now (Unix ns; one reading serves a burst): a record published to its
// topic, with its commit-to-ack latency, or a failed one.
func (m *metrics) acked(a *kafka.Ack, now int64) {
	topic := a.Record.Topic
	if a.Err != nil {
		m.failed.with(topic, failureReason(a.Err)).Add(1)
		return
	}
	if topic != m.lastTopic || m.lastPub == nil {
		m.lastTopic, m.lastPub = topic, m.published.with(topic, "")
	}
	m.lastPub.Add(1)
	if sm, ok := a.Record.Meta.(*sendMeta); ok && sm.commit != 0 {
		m.latency.observe(time.Duration(now - sm.commit))
	}
}

// deadLetteredEvent counts an event sent to the dead-letter topic instead
// of topic because of err.
func (m *metrics) deadLetteredEvent(topic string, err error) {
	m.deadLettered.with(topic, failureReason(err)).Add(1)
}

// rejected counts an event for topic that stops the connector (on_error
// fail) because of err.
func (m *metrics) rejected(topic string, err error) {
	m.failed.with(topic, failureReason(err)).Add(1)
}

// producerRetry counts a retry round of the producer (kafka.Config.OnRetry).
func (m *metrics) producerRetry() { m.retries.Add(1) }

// checkpointed records a checkpoint written at p.
func (m *metrics) checkpointed(p binlog.Point) {
	m.cpMu.Lock()
	m.cp, m.cpSaved = p, true
	m.cpMu.Unlock()
	m.cpFresh.Store(time.Now().UnixNano())
}

// checkpointUnchanged records a periodic checkpoint that had nothing new to
// write: the written one is current when no record awaits acknowledgement.
func (m *metrics) checkpointUnchanged() {
	if p := m.producer.Load(); p != nil && p.InFlight() == 0 {
		m.cpFresh.Store(time.Now().UnixNano())
	}
}

// Readings for /metrics, /readyz and the status log.

// lastCheckpoint returns the last checkpoint written, if any.
func (m *metrics) lastCheckpoint() (binlog.Point, bool) {
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
func (m *metrics) checkpointAge(now time.Time) time.Duration {
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
func (m *metrics) checkpointCurrent(now time.Time) bool {
	tr := m.tracker.Load()
	if tr == nil {
		return false
	}
	cp, ok := m.lastCheckpoint()
	if !ok || tr.readPoint() != cp {
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
func (m *metrics) inFlight() int {
	if p := m.producer.Load(); p != nil {
		return p.InFlight()
	}
	return 0
}

// sourceReconnects returns the reconnects of every reader of this Connector.
func (m *metrics) sourceReconnects() uint64 {
	n := m.reconnects.Load()
	if r := m.reader.Load(); r != nil {
		n += r.Stats().Reconnects
	}
	return n
}

// readPosition returns the last transaction end read.
func (m *metrics) readPosition() (file string, index int64, pos uint32) {
	if f := m.readFile.Load(); f != nil {
		file = *f
	}
	return file, m.readIndex.Load(), m.readPos.Load()
}

// sample observes the reader and the checkpoint at now and returns what it
// saw of the reader.
func (m *metrics) sample(now time.Time) (binlog.Stats, bool) {
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
func (m *metrics) lag(now time.Time) time.Duration {
	m.sample(now)
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.prog.lag(now)
}

// health returns the inputs of the readiness rule at now.
func (m *metrics) health(now time.Time) health {
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
	if s.Connected && s.Waiting && (!moved && now.Sub(p.movedAt) >= idleAfter ||
		!s.LastHeartbeat.IsZero() && s.LastHeartbeat.After(s.LastCommit)) {
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
