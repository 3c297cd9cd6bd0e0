package main

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/go-mysql-org/go-mysql/mysql"
	"github.com/go-mysql-org/go-mysql/replication"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/tailbox-cdc/tailbox/pkg/kafka"
)

// live: tailbox streaming while writers commit one outbox row per
// transaction at o.liveRate per second for o.liveDuration. The latency of
// an event runs from just before its COMMIT is sent until the poll of a
// franz-go consumer (already waiting on the topic) returns it; so it
// includes the commit itself, binlog shipping, tailbox, the producer's
// linger (5ms default) and acks=all round trip, and the consumer's fetch.
// Alongside, go-mysql alone reads the same binlog in the bench process: its
// commit → row-received latency is the floor tailbox builds on. Afterwards,
// for a third of the duration, pkg/kafka alone produces at the same rate
// (tailbox's settings, records of the same size): its send → consumed
// latency is the floor of the Kafka half.
func (e *env) live() error { return e.liveRun(false) }

// liveEO is the live scenario with delivery: exactly_once, consumed with
// read_committed: what exactly-once costs in latency.
func (e *env) liveEO() error { return e.liveRun(true) }

func (e *env) liveRun(eo bool) error {
	o := e.o
	scenario, key, rowName := "live", "live_", "live tailbox"
	if eo {
		scenario, key, rowName = "live-eo", "live_eo_", "live exactly_once"
	}
	table, err := e.createOutbox("outbox_" + strings.ReplaceAll(scenario, "-", "_"))
	if err != nil {
		return err
	}
	prefix := e.topicPrefix(scenario)
	topic := prefix + ".member"
	cl, err := e.consumer(topic)
	if eo {
		cl.Close()
		cl, err = kgo.NewClient(kgo.SeedBrokers(strings.Split(e.o.brokers, ",")...), kgo.ConsumeTopics(topic),
			kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()), kgo.AllowAutoTopicCreation(),
			kgo.MetadataMinAge(50*time.Millisecond), kgo.FetchMaxWait(time.Second),
			kgo.FetchIsolationLevel(kgo.ReadCommitted()))
	}
	if err != nil {
		return err
	}
	defer cl.Close()

	// A warm-up event (seq 0) proves tailbox streams before the clock runs.
	from, err := e.rotate()
	if err != nil {
		return err
	}
	if err := execSQL(e.db, e.outboxInsert(e.rng, table, 0, 1)); err != nil {
		return err
	}
	cfg, cp, err := e.tailboxConfigDelivery(scenario, table, prefix, defaultInterval, eo)
	if err != nil {
		return err
	}
	argv, name := e.tailboxArgv(cfg, from), rowName
	var cpuProf, heapProf string
	if o.profileDir != "" && !eo {
		if argv, cpuProf, heapProf, err = e.profiledArgv("live", cfg, from); err != nil {
			return err
		}
		// Five seconds of execution trace from the middle of the run.
		argv = append(argv, "-trace", strings.TrimSuffix(cpuProf, ".cpu.pprof")+".trace",
			"-trace-after", (o.liveDuration / 2).String(), "-trace-for", "5s")
		name = "live profiled"
	}
	p, err := startTailbox(argv, cp)
	if err != nil {
		return err
	}
	stopped := false
	defer func() {
		if !stopped {
			p.kill()
		}
	}()
	if _, err := awaitSeq(cl, p, 0, time.Minute); err != nil {
		return fmt.Errorf("warm-up event: %w", err)
	}

	total := int(float64(o.liveRate) * o.liveDuration.Seconds())
	sent := make([]atomic.Int64, total+1) // unix ns just before COMMIT, by seq
	ctx, cancel := context.WithTimeout(context.Background(), o.liveDuration+time.Minute)
	defer cancel()
	consumed := collectLatency(ctx, cl, total, sent)

	floor := make(chan latencyResult, 1)
	go func() {
		if eo {
			floor <- latencyResult{} // measured once, by the at_least_once run
			return
		}
		lat, err := e.readLatency(ctx, from, table, sent)
		floor <- latencyResult{lat, err}
	}()

	fmt.Printf("writing %d events/s for %s with %d writers (one row per transaction)...\n", o.liveRate, o.liveDuration, o.liveWriters)
	interval := time.Second / time.Duration(o.liveRate)
	start := time.Now().Add(100 * time.Millisecond)
	var wg sync.WaitGroup
	errs := make([]error, o.liveWriters)
	for w := 0; w < o.liveWriters; w++ {
		c, err := e.connect()
		if err != nil {
			return err
		}
		defer c.Close()
		// The INSERT opens the transaction: two round trips per event.
		if err := execSQL(c, "SET autocommit=0"); err != nil {
			return err
		}
		// Statements are built before the clock runs.
		rng := rand.New(rand.NewPCG(uint64(w), 7))
		var seqs []int
		var stmts []string
		for s := 1 + w; s <= total; s += o.liveWriters {
			seqs = append(seqs, s)
			stmts = append(stmts, e.outboxInsert(rng, table, s, s+1))
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i, s := range seqs {
				if d := time.Until(start.Add(time.Duration(s-1) * interval)); d > 0 {
					time.Sleep(d)
				}
				if err := execSQL(c, stmts[i]); err != nil {
					errs[w] = err
					return
				}
				sent[s].Store(time.Now().UnixNano())
				if err := execSQL(c, "COMMIT"); err != nil {
					errs[w] = err
					return
				}
			}
		}()
	}
	wg.Wait()
	wrote := time.Since(start)
	if err := errors.Join(errs...); err != nil {
		return fmt.Errorf("writers: %w", err)
	}
	res, fl := <-consumed, <-floor
	stopped = true
	u, serr := p.stop()
	if res.err != nil {
		return fmt.Errorf("consume %s: %d of %d events: %w", topic, len(res.lat), total, res.err)
	}
	if serr != nil {
		return serr
	}
	if fl.err != nil {
		return fmt.Errorf("go-mysql alone: %d of %d events: %w", len(fl.lat), total, fl.err)
	}

	pct := percentiles(res.lat)
	achieved := rate(total, wrote)
	r := &e.rep
	if eo {
		note := fmt.Sprintf("commit→consumed (read_committed) ms: p50 %.1f p95 %.1f p99 %.1f max %.1f; kafka.transaction_interval 100ms; %.0f ev/s offered",
			pct(0.50), pct(0.95), pct(0.99), pct(1), achieved)
		r.add(row{name: name, events: total, seconds: wrote.Seconds(), rate: achieved, cpu100k: per100k(u.cpu, total), rssMiB: u.maxRSSMiB, note: note})
		r.key(key+"p50_ms", pct(0.50))
		r.key(key+"p95_ms", pct(0.95))
		r.key(key+"p99_ms", pct(0.99))
		r.key(key+"max_ms", pct(1))
		r.key(key+"cpu_s_per_100k", per100k(u.cpu, total))
		return nil
	}
	floorPct := percentiles(fl.lat)
	note := fmt.Sprintf("commit→consumed ms: p50 %.1f p95 %.1f p99 %.1f max %.1f (go-mysql alone, commit→row read: p50 %.1f p99 %.1f); %.0f ev/s offered",
		pct(0.50), pct(0.95), pct(0.99), pct(1), floorPct(0.50), floorPct(0.99), achieved)
	if achieved < 0.95*float64(o.liveRate) {
		note += fmt.Sprintf(" (writers fell behind the %d/s target)", o.liveRate)
	}
	pdur := max(5*time.Second, o.liveDuration/3)
	plat, err := e.produceLatency(prefix+".produce", o.liveRate, pdur)
	if err != nil {
		return fmt.Errorf("pkg/kafka alone: %w", err)
	}
	prodPct := percentiles(plat)
	note += fmt.Sprintf("; pkg/kafka alone, send→consumed: p50 %.1f p99 %.1f", prodPct(0.5), prodPct(0.99))
	if cpuProf != "" {
		printProfiles(cpuProf, heapProf)
		note += "; in-process connector with pprof"
	}
	r.add(row{name: name, events: total, seconds: wrote.Seconds(), rate: achieved, cpu100k: per100k(u.cpu, total), rssMiB: u.maxRSSMiB, note: note})
	r.key("live_events", total)
	r.key("live_rate", achieved)
	r.key("live_p50_ms", pct(0.50))
	r.key("live_p95_ms", pct(0.95))
	r.key("live_p99_ms", pct(0.99))
	r.key("live_max_ms", pct(1))
	r.key("live_read_p50_ms", floorPct(0.50))
	r.key("live_read_p99_ms", floorPct(0.99))
	r.key("live_produce_p50_ms", prodPct(0.50))
	r.key("live_produce_p99_ms", prodPct(0.99))
	r.key("live_cpu_s_per_100k", per100k(u.cpu, total))
	r.key("live_peak_rss_mib", u.maxRSSMiB)
	r.atMost("live_p99", "live p99 commit→consumed (acks=all)", pct(0.99), 25, " ms")
	return nil
}

// percentiles sorts lat and returns its quantile function, in ms.
func percentiles(lat []time.Duration) func(q float64) float64 {
	slices.Sort(lat)
	return func(q float64) float64 {
		if len(lat) == 0 {
			return 0
		}
		i := max(0, int(float64(len(lat))*q+0.999999)-1)
		return float64(lat[min(i, len(lat)-1)]) / float64(time.Millisecond)
	}
}

// readLatency streams the binlog from from with go-mysql alone until it has
// read the rows of seq 1..len(sent)-1 of table (schema.name) and returns,
// per row, the time from sent[seq] to reading its rows event.
func (e *env) readLatency(ctx context.Context, from binlogPos, table string, sent []atomic.Int64) ([]time.Duration, error) {
	s := e.syncer(7997)
	defer s.Close()
	st, err := s.StartSync(mysql.Position{Name: from.file, Pos: from.pos})
	if err != nil {
		return nil, err
	}
	total := len(sent) - 1
	seen := make([]bool, total+1)
	lat := make([]time.Duration, 0, total)
	for len(lat) < total {
		ev, err := st.GetEvent(ctx)
		if err != nil {
			return lat, err
		}
		now := time.Now()
		re, ok := ev.Event.(*replication.RowsEvent)
		if !ok || re.Table == nil || string(re.Table.Schema)+"."+string(re.Table.Table) != table {
			continue
		}
		for _, row := range re.Rows {
			id, _ := row[0].(string)
			seq, ok := seqOf([]byte(id))
			if !ok || seq < 1 || seq > total || seen[seq] {
				continue
			}
			seen[seq] = true
			lat = append(lat, now.Sub(time.Unix(0, sent[seq].Load())))
		}
	}
	return lat, nil
}

// produceLatency sends rate records/s to topic for d with pkg/kafka alone
// (tailbox's settings) and returns, per record, the time from Send to a
// consumer's poll returning it.
func (e *env) produceLatency(topic string, rate int, d time.Duration) ([]time.Duration, error) {
	cl, err := e.consumer(topic)
	if err != nil {
		return nil, err
	}
	defer cl.Close()
	if err := e.warmTopic(cl, topic); err != nil {
		return nil, err
	}
	ctx, cancel := context.WithTimeout(context.Background(), d+time.Minute)
	defer cancel()
	p, err := kafka.New(ctx, kafka.Config{Brokers: strings.Split(e.o.brokers, ","), Compression: "lz4", Linger: 5 * time.Millisecond,
		MaxMessageBytes: 1000000})
	if err != nil {
		return nil, err
	}
	defer func() {
		cctx, ccancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer ccancel()
		_ = p.Close(cctx)
	}()
	go func() {
		for range p.Acks() {
		}
	}()
	total := int(float64(rate) * d.Seconds())
	sent := make([]atomic.Int64, total+1)
	// About the size of tailbox's envelope, as incompressible as its payload.
	value := make([]byte, e.o.payload+400)
	for i := range value {
		value[i] = "0123456789abcdef"[e.rng.IntN(16)]
	}
	consumed := collectLatency(ctx, cl, total, sent)
	interval := time.Second / time.Duration(rate)
	start := time.Now()
	for s := 1; s <= total; s++ {
		if w := time.Until(start.Add(time.Duration(s-1) * interval)); w > 0 {
			time.Sleep(w)
		}
		rec := &kafka.Record{Topic: topic, Key: []byte("member-" + strconv.Itoa(e.rng.IntN(e.o.aggregates))), Value: value,
			Headers: []kafka.Header{{Key: "id", Value: []byte(eventID(s))}, {Key: "type", Value: []byte("MemberUpdated")}}}
		sent[s].Store(time.Now().UnixNano())
		if err := p.Send(ctx, rec); err != nil {
			return nil, err
		}
	}
	res := <-consumed
	return res.lat, res.err
}

// awaitSeq polls cl until the event seq arrives, p exits or limit passes,
// and returns when the poll that carried it returned.
func awaitSeq(cl *kgo.Client, p *proc, seq int, limit time.Duration) (time.Time, error) {
	deadline := time.Now().Add(limit)
	for time.Now().Before(deadline) {
		select {
		case <-p.exited:
			return time.Time{}, p.exitError()
		default:
		}
		ctx, cancel := context.WithTimeout(context.Background(), 100*time.Millisecond)
		recs, err := poll(ctx, cl)
		now := time.Now()
		cancel()
		if err != nil {
			return time.Time{}, err
		}
		for _, r := range recs {
			if s, ok := seqOf(header(r, "id")); ok && s == seq {
				return now, nil
			}
		}
	}
	return time.Time{}, fmt.Errorf("event %d not consumed within %s", seq, limit)
}

// latencyResult is what a latency measurement collected.
type latencyResult struct {
	lat []time.Duration
	err error
}

// collectLatency consumes from cl until it has seen events 1..total once
// each (by the sequence number in their id header), recording for each the
// time since sent[seq]; the result arrives on the returned channel.
func collectLatency(ctx context.Context, cl *kgo.Client, total int, sent []atomic.Int64) <-chan latencyResult {
	consumed := make(chan latencyResult, 1)
	go func() {
		seen := make([]bool, total+1)
		lat := make([]time.Duration, 0, total)
		for len(lat) < total {
			recs, err := poll(ctx, cl)
			now := time.Now()
			if err != nil || ctx.Err() != nil {
				consumed <- latencyResult{lat, errors.Join(err, ctx.Err())}
				return
			}
			for _, r := range recs {
				seq, ok := seqOf(header(r, "id"))
				if !ok || seq < 1 || seq > total || seen[seq] {
					continue
				}
				seen[seq] = true
				lat = append(lat, now.Sub(time.Unix(0, sent[seq].Load())))
			}
		}
		consumed <- latencyResult{lat, nil}
	}()
	return consumed
}
