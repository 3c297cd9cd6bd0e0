package observe

import (
	"context"
	"math"
	"time"

	"github.com/rs/zerolog"

	"github.com/tailbox-cdc/tailbox/pkg/binlog"
)

// Options configures an Observer.
type Options struct {
	// Listen is the address of the HTTP endpoint (http.listen); "" serves
	// none.
	Listen string
	// StatusInterval is how often the status line is logged
	// (log.status_interval); 0 logs none.
	StatusInterval time.Duration
	// Log receives the status lines, the run summary and, with
	// component=http, the endpoint's own lines.
	Log zerolog.Logger
	// BinaryLogs, when not nil, lists the source's binary logs, to measure
	// the backlog (tailbox_source_lag_bytes, and behind_bytes and eta in
	// the status line); nil measures none. The Observer calls it from one
	// goroutine at a time and not after Close returns.
	BinaryLogs BinaryLogs
}

// Observer runs the observability of one Run: the HTTP endpoint, the
// sampling behind lag and readiness, and the status log; Close logs the
// run summary. Start it after Metrics.RunStarted and close it before
// Metrics.RunEnded.
type Observer struct {
	m      *Metrics
	log    zerolog.Logger
	every  time.Duration // Options.StatusInterval
	http   *httpServer   // nil when Options.Listen is ""
	start  time.Time
	base   totals // counts when the Observer started
	stop   chan struct{}
	done   chan struct{}
	blDone chan struct{} // closed when the backlog sampling has stopped
	closed bool
}

// totals are the pipeline's counts, for the status log and the summary;
// read counts events (inserts into a captured table), not the updates and
// deletes read with them.
type totals struct {
	read, published, deadLettered, failed uint64
}

func (m *Metrics) totals() totals {
	var inserts uint64
	insert := binlog.OpInsert.String()
	m.rowsRead.each(func(k labelPair, n uint64) {
		if k.b == insert {
			inserts += n
		}
	})
	return totals{
		read:         inserts,
		published:    m.published.total(),
		deadLettered: m.deadLettered.total(),
		failed:       m.failed.total(),
	}
}

func (t totals) minus(o totals) totals {
	return totals{t.read - o.read, t.published - o.published, t.deadLettered - o.deadLettered, t.failed - o.failed}
}

// Start starts the observability of a Run that m observes: the HTTP
// endpoint (unless opts.Listen is ""), the sampling and the status log,
// which stop when ctx is done (then m reads as stopping) or Close is
// called. It fails when the endpoint cannot listen.
func Start(ctx context.Context, m *Metrics, opts Options) (*Observer, error) {
	o := &Observer{
		m: m, log: opts.Log, every: opts.StatusInterval,
		start: time.Now(), base: m.totals(), stop: make(chan struct{}), done: make(chan struct{}),
		blDone: make(chan struct{}),
	}
	if opts.Listen != "" {
		srv, err := serveHTTP(opts.Listen, m, opts.Log)
		if err != nil {
			return nil, err
		}
		o.http = srv
	}
	go o.loop(ctx)
	if opts.BinaryLogs != nil {
		go o.backlogLoop(ctx, opts.BinaryLogs)
	} else {
		close(o.blDone)
	}
	return o, nil
}

// backlogLoop measures the backlog every backlogEvery until ctx is done or
// Close is called. A listing that fails is logged once, until one succeeds
// again: the backlog keeps its last value meanwhile.
func (o *Observer) backlogLoop(ctx context.Context, list BinaryLogs) {
	defer close(o.blDone)
	t := time.NewTicker(backlogEvery)
	defer t.Stop()
	failing := false
	for {
		select {
		case <-ctx.Done():
			return
		case <-o.stop:
			return
		case now := <-t.C:
			lctx, cancel := context.WithTimeout(ctx, backlogTimeout)
			err := o.m.sampleBacklog(lctx, list, now)
			cancel()
			switch {
			case err != nil && !failing && ctx.Err() == nil:
				o.log.Warn().Err(err).Msg("cannot measure the backlog behind the source's newest binlog position; retrying")
			case err == nil && failing:
				o.log.Info().Msg("measuring the backlog again")
			}
			failing = err != nil
		}
	}
}

// loop samples the reader every sampleEvery and logs the status every
// o.every until ctx is done or Close is called.
func (o *Observer) loop(ctx context.Context) {
	defer close(o.done)
	m := o.m
	sample := time.NewTicker(sampleEvery)
	defer sample.Stop()
	var status <-chan time.Time
	if d := o.every; d > 0 {
		t := time.NewTicker(d)
		defer t.Stop()
		status = t.C
	}
	last, lastAt := o.base, o.start
	for {
		select {
		case <-ctx.Done():
			m.stopping.Store(true)
			return
		case <-o.stop:
			return
		case now := <-sample.C:
			m.sample(now)
		case now := <-status:
			cur := m.totals()
			o.logStatus(now, cur.minus(last), now.Sub(lastAt))
			last, lastAt = cur, now
		}
	}
}

// logStatus logs one status line: rates over the last interval d (in which
// delta happened), lag, position, in flight, readiness and, while the read
// position is behind the source's newest, the bytes and files behind, the
// read rate and the time left to catch up at the current pace.
func (o *Observer) logStatus(now time.Time, delta totals, d time.Duration) {
	m := o.m
	file, _, pos := m.readPosition()
	ok, reason := m.health(now).ready()
	ev := o.log.Info().
		Float64("events_per_sec", rate(delta.read, d)).
		Float64("published_per_sec", rate(delta.published, d)).
		Float64("lag_seconds", round1(m.lag(now).Seconds())).
		Str("binlog_file", file).Uint32("binlog_pos", pos).
		Int("in_flight", m.inFlight()).
		Float64("checkpoint_age_seconds", round1(m.checkpointAge(now).Seconds())).
		Bool("ready", ok)
	if !ok {
		ev = ev.Str("reason", reason)
	}
	if bl := m.backlog(); bl.known && bl.behind.Bytes > 0 {
		ev = ev.Uint64("behind_bytes", bl.behind.Bytes).Int("behind_files", bl.behind.Files)
		if bl.rated {
			ev = ev.Float64("read_bytes_per_sec", math.Round(bl.readRate))
		}
		if eta, ok := bl.eta(); ok {
			ev = ev.Str("eta", eta.Round(time.Second).String())
		}
	}
	ev.Msg("status")
}

// Close stops the sampling and the HTTP endpoint and logs the summary of
// the Run — counts, duration and the last checkpoint written — when its
// stream started (Metrics.Streaming): a Run that failed or stopped during
// start-up has nothing to sum up. It is idempotent.
func (o *Observer) Close() {
	if o.closed {
		return
	}
	o.closed = true
	m := o.m
	m.stopping.Store(true)
	close(o.stop)
	<-o.done
	<-o.blDone
	if o.http != nil {
		o.http.close()
	}
	if !m.streamed.Load() {
		return
	}
	t := m.totals().minus(o.base)
	ev := o.log.Info().
		Uint64("events_read", t.read).
		Uint64("events_published", t.published).
		Uint64("events_dead_lettered", t.deadLettered).
		Uint64("events_failed", t.failed).
		Dur("duration_ms", time.Since(o.start))
	if p, ok := m.lastCheckpoint(); ok {
		ev = ev.Str("binlog_file", p.Pos.File).Uint32("binlog_pos", p.Pos.Pos).Str("gtid", p.Pos.GTID).Int("skip", p.Skip)
	}
	ev.Msg("run summary")
}

// rate returns n per second over d, rounded to 0.1.
func rate(n uint64, d time.Duration) float64 {
	if d <= 0 {
		return 0
	}
	return round1(float64(n) / d.Seconds())
}

func round1(f float64) float64 { return math.Round(f*10) / 10 }
