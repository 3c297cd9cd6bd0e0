package connector

import (
	"context"
	"math"
	"time"
)

// observer runs the observability of one Run: the HTTP endpoint, the
// sampling behind lag and readiness, and the status log.
type observer struct {
	c      *Connector
	http   *httpServer // nil when http.listen is ""
	start  time.Time
	base   totals // counts when Run started
	stop   chan struct{}
	done   chan struct{}
	closed bool
}

// totals are the pipeline's counts, for the status log and the summary.
type totals struct {
	read, published, deadLettered, failed uint64
}

func (m *metrics) totals() totals {
	return totals{
		read:         m.eventsRead.total(),
		published:    m.published.total(),
		deadLettered: m.deadLettered.total(),
		failed:       m.failed.total(),
	}
}

func (t totals) minus(o totals) totals {
	return totals{t.read - o.read, t.published - o.published, t.deadLettered - o.deadLettered, t.failed - o.failed}
}

// startObserver resets the run state, starts the HTTP endpoint (unless
// http.listen is "") and the sampling and status log, which stop when ctx
// is done or close is called. It fails when the endpoint cannot listen.
func (c *Connector) startObserver(ctx context.Context, opts RunOptions) (*observer, error) {
	c.m.runStarted(opts.DryRun, opts.Version)
	o := &observer{c: c, start: time.Now(), base: c.m.totals(), stop: make(chan struct{}), done: make(chan struct{})}
	if addr := c.cfg.HTTP.Listen; addr != "" {
		srv, err := c.serveHTTP(addr)
		if err != nil {
			c.m.runEnded()
			return nil, err
		}
		o.http = srv
	}
	go o.loop(ctx)
	return o, nil
}

// loop samples the reader every sampleEvery and logs the status every
// log.status_interval until ctx is done or close is called.
func (o *observer) loop(ctx context.Context) {
	defer close(o.done)
	m := o.c.m
	sample := time.NewTicker(sampleEvery)
	defer sample.Stop()
	var status <-chan time.Time
	if d := o.c.cfg.Log.StatusInterval.D(); d > 0 {
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
// delta happened), lag, position, in flight, readiness.
func (o *observer) logStatus(now time.Time, delta totals, d time.Duration) {
	m := o.c.m
	file, _, pos := m.readPosition()
	ok, reason := m.health(now).ready()
	ev := o.c.log.Info().
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
	ev.Msg("status")
}

// close stops the sampling and the HTTP endpoint and logs the summary of
// the Run: counts, duration and the last checkpoint written. It is
// idempotent.
func (o *observer) close() {
	if o.closed {
		return
	}
	o.closed = true
	m := o.c.m
	m.stopping.Store(true)
	close(o.stop)
	<-o.done
	if o.http != nil {
		o.http.close()
	}
	m.runEnded()
	t := m.totals().minus(o.base)
	ev := o.c.log.Info().
		Uint64("events_read", t.read).
		Uint64("events_published", t.published).
		Uint64("events_dead_lettered", t.deadLettered).
		Uint64("events_failed", t.failed).
		Dur("duration", time.Since(o.start))
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
