package main

import (
	"cmp"
	"context"
	"fmt"
	"math"
	"slices"
	"strings"
	"syscall"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"
)

// sampleRecords is how many of tailbox's records the produce ceiling
// cycles through.
const sampleRecords = 20000

func rate(events int, d time.Duration) float64 {
	if d <= 0 {
		return 0
	}
	return float64(events) / d.Seconds()
}

func per100k(cpu time.Duration, events int) float64 { return cpu.Seconds() / float64(events) * 1e5 }

// selfCPU returns the CPU time (user + system) this process has used; the
// ceilings run in it while nothing else of the bench does.
func selfCPU() time.Duration {
	var ru syscall.Rusage
	_ = syscall.Getrusage(syscall.RUSAGE_SELF, &ru)
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// backlog: o.rows outbox rows in transactions of o.txnRows, read by tailbox
// from the position before them.
func (e *env) backlog() error {
	o := e.o
	table, err := e.createOutbox("outbox_backlog")
	if err != nil {
		return err
	}
	from, err := e.rotate()
	if err != nil {
		return err
	}
	fmt.Printf("writing %d outbox rows (%d per transaction, %d aggregates, ~%d-byte payload)...\n", o.rows, o.txnRows, o.aggregates, o.payload)
	t0 := time.Now()
	for n := 0; n < o.rows; n += o.txnRows {
		if err := execSQL(e.db, e.outboxInsert(e.rng, table, n, min(n+o.txnRows, o.rows))); err != nil {
			return err
		}
	}
	to, err := e.status()
	if err != nil {
		return err
	}
	fmt.Printf("written in %.1fs: %s .. %s%s\n", time.Since(t0).Seconds(), from, to, rangeSize(from, to))

	// Rounds of read ceiling, tailbox, produce ceiling; medians count.
	prefix := e.topicPrefix("backlog")
	var reads, prods []timed
	var tbs, cmps []rangeRun
	var sample []*kgo.Record
	for i := 1; i <= o.repeat; i++ {
		read, err := e.timedRead(from, to, o.rows)
		if err != nil {
			return err
		}
		cfg, cp, err := e.tailboxConfig("backlog", table, prefix, e.o.interval)
		if err != nil {
			return err
		}
		// With -compare, the other binary runs right before tailbox in
		// even rounds and right after it in odd ones.
		compare := func(parity int) error {
			if o.compare == "" || i%2 != parity {
				return nil
			}
			c, err := e.compareRun(table, from, to)
			if err == nil {
				cmps = append(cmps, c)
			}
			return err
		}
		if err := compare(0); err != nil {
			return err
		}
		tb, err := runRange(e.tailboxArgv(cfg, from), cp, to)
		if err != nil {
			return fmt.Errorf("tailbox: %w", err)
		}
		if sample == nil {
			if sample, err = e.consumeN(prefix+".member", min(o.rows, sampleRecords), 2*time.Minute); err != nil {
				return fmt.Errorf("read tailbox's records: %w", err)
			}
		}
		if err := e.dropTopics(prefix + ".member"); err != nil {
			return err
		}
		if err := compare(1); err != nil {
			return err
		}
		cpu0 := selfCPU()
		prodDur, err := e.ceilingProduce(sample, o.rows, prefix+".ceiling")
		if err != nil {
			return fmt.Errorf("ceiling_produce: %w", err)
		}
		if err := e.dropTopics(prefix + ".ceiling"); err != nil {
			return err
		}
		prod := timed{prodDur, selfCPU() - cpu0}
		reads, prods, tbs = append(reads, read), append(prods, prod), append(tbs, tb)
		cmp := ""
		if len(cmps) > 0 {
			cmp = fmt.Sprintf(", compare %.3fs", cmps[len(cmps)-1].total.Seconds())
		}
		fmt.Printf("round %d: ceiling_read %.3fs, tailbox %.3fs%s, ceiling_produce %.3fs\n", i, read.d.Seconds(), tb.total.Seconds(), cmp, prodDur.Seconds())
	}
	readT, prodT, tb := medianTimed(reads), medianTimed(prods), medianRun(tbs)
	readDur, readCPU, prodDur, prodCPU := readT.d, readT.cpu, prodT.d, prodT.cpu

	n := o.rows
	read, prod := rate(n, readDur), rate(n, prodDur)
	composed := 1 / (1/read + 1/prod)
	got, stream := rate(n, tb.total), rate(n, tb.stream)
	// The target is judged on the median of the rounds' own ratios: a
	// round measures its ceilings within seconds of tailbox, so the
	// machine's drift between rounds (its speed moves by tens of percent
	// over minutes) cancels out, which it does not in a ratio of medians
	// taken from different rounds. Both are reported.
	ratios := roundRatioValues(reads, prods, tbs, n)
	ratio := median(ratios)
	// CPU per event against the ceilings' (their process only): what
	// tailbox adds, less moved by the machine's scheduling than the rates.
	cpuRatio := tb.cpu.Seconds() / (readCPU + prodCPU).Seconds()
	r := &e.rep
	r.add(row{name: "backlog ceiling_read", events: n, seconds: readDur.Seconds(), rate: read, cpu100k: per100k(readCPU, n),
		note: "go-mysql alone, every row decoded"})
	r.add(row{name: "backlog ceiling_produce", events: n, seconds: prodDur.Seconds(), rate: prod, cpu100k: per100k(prodCPU, n),
		note: "pkg/kafka alone, tailbox's records"})
	r.add(row{name: "backlog composed", rate: composed, cpu100k: per100k(readCPU+prodCPU, n), note: "1/(1/read + 1/produce); CPU: read + produce"})
	r.add(row{name: "backlog tailbox", events: n, seconds: tb.total.Seconds(), rate: got, cpu100k: per100k(tb.cpu, n), rssMiB: tb.maxRSSMiB,
		note: fmt.Sprintf("%.2f of composed (median of the rounds' ratios %s; %.2f from the medians), %.2f of read, %.2f of produce; streaming %.3fs = %.0f ev/s (%.2f of composed); CPU per event %.2f× the ceilings'",
			ratio, formatRatios(ratios), got/composed, got/read, got/prod, tb.stream.Seconds(), stream, stream/composed, cpuRatio)})
	r.key("backlog_rows", n)
	r.key("backlog_events_per_s", got)
	r.key("backlog_ceiling_read", read)
	r.key("backlog_ceiling_produce", prod)
	r.key("backlog_composed", composed)
	r.key("backlog_ratio_composed", ratio)
	r.key("backlog_ratio_composed_of_medians", got/composed)
	r.key("backlog_ratio_read", got/read)
	r.key("backlog_ratio_produce", got/prod)
	r.key("backlog_stream_events_per_s", stream)
	r.key("backlog_stream_ratio_composed", stream/composed)
	r.key("backlog_cpu_s_per_100k", per100k(tb.cpu, n))
	r.key("backlog_ceiling_cpu_s_per_100k", per100k(readCPU+prodCPU, n))
	r.key("backlog_cpu_ratio", cpuRatio)
	r.key("backlog_peak_rss_mib", tb.maxRSSMiB)
	if len(cmps) > 0 {
		e.reportCompare(reads, prods, tbs, cmps, n)
	}
	r.atLeast("backlog_ratio", "backlog events/s / composed ceiling", ratio, 0.90, "")
	r.atMost("backlog_rss", "backlog peak RSS", tb.maxRSSMiB, 64, " MiB")

	if err := e.backlogExactlyOnce(table, from, n, got); err != nil {
		return err
	}
	if o.profileDir != "" {
		return e.profileBacklog(table, from, to, n, composed)
	}
	return nil
}

// backlogExactlyOnce runs tailbox over the backlog once more with
// delivery: exactly_once (checkpoint in Kafka, 100ms transactions), timed
// from exec until a read_committed consumer has every record: the cost of
// exactly-once next to at_least_once's rate alo.
func (e *env) backlogExactlyOnce(table string, from binlogPos, n int, alo float64) error {
	prefix := e.topicPrefix("backlog-eo")
	cfg, _, err := e.tailboxConfigDelivery("backlog-eo", table, prefix, e.o.interval, true)
	if err != nil {
		return err
	}
	p, err := startTailbox(e.tailboxArgv(cfg, from), "")
	if err != nil {
		return err
	}
	cl, err := kgo.NewClient(kgo.SeedBrokers(strings.Split(e.o.brokers, ",")...), kgo.ConsumeTopics(prefix+".member"),
		kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()), kgo.AllowAutoTopicCreation(),
		kgo.MetadataMinAge(50*time.Millisecond), kgo.FetchMaxWait(100*time.Millisecond),
		kgo.FetchIsolationLevel(kgo.ReadCommitted()))
	if err != nil {
		p.kill()
		return err
	}
	defer cl.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 15*time.Minute)
	defer cancel()
	seen := 0
	for seen < n {
		recs, err := poll(ctx, cl)
		if err != nil || ctx.Err() != nil {
			p.kill()
			return fmt.Errorf("exactly_once: %d of %d records read_committed: %v", seen, n, err)
		}
		seen += len(recs)
	}
	total := time.Since(p.started)
	u, err := p.stop()
	if err != nil {
		return fmt.Errorf("exactly_once tailbox: %w", err)
	}
	if err := e.dropTopics(prefix + ".member"); err != nil {
		return err
	}
	got := rate(n, total)
	fmt.Printf("exactly_once: %.3fs\n", total.Seconds())
	e.rep.add(row{name: "backlog exactly_once", events: n, seconds: total.Seconds(), rate: got, cpu100k: per100k(u.cpu, n), rssMiB: u.maxRSSMiB,
		note: fmt.Sprintf("%.2f of at_least_once; until a read_committed consumer has every record (%d read, duplicates count)", got/alo, seen)})
	e.rep.key("backlog_eo_events_per_s", got)
	e.rep.key("backlog_eo_ratio_alo", got/alo)
	e.rep.key("backlog_eo_cpu_s_per_100k", per100k(u.cpu, n))
	e.rep.key("backlog_eo_peak_rss_mib", u.maxRSSMiB)
	return nil
}

// timed is a duration with the CPU time the bench process used meanwhile.
type timed struct{ d, cpu time.Duration }

// timedRead runs ceilingRead over [from, to), which must hold rows rows.
func (e *env) timedRead(from, to binlogPos, rows int) (timed, error) {
	cpu0 := selfCPU()
	d, got, err := e.ceilingRead(from, to)
	if err != nil {
		return timed{}, fmt.Errorf("ceiling_read: %w", err)
	}
	if got != rows {
		return timed{}, fmt.Errorf("ceiling_read decoded %d rows, want %d", got, rows)
	}
	return timed{d, selfCPU() - cpu0}, nil
}

// medianTimed returns the measurement of median duration.
func medianTimed(ts []timed) timed {
	s := slices.Clone(ts)
	slices.SortFunc(s, func(a, b timed) int { return cmp.Compare(a.d, b.d) })
	return s[len(s)/2]
}

// medianRun returns the run of median total time, with the highest peak
// RSS of all runs.
func medianRun(rs []rangeRun) rangeRun {
	s := slices.Clone(rs)
	slices.SortFunc(s, func(a, b rangeRun) int { return cmp.Compare(a.total, b.total) })
	m := s[len(s)/2]
	for _, r := range rs {
		m.maxRSSMiB = max(m.maxRSSMiB, r.maxRSSMiB)
	}
	return m
}

// compareRun runs the -compare binary over the backlog range once, like
// tailbox (its own checkpoint and topic, deleted afterwards).
func (e *env) compareRun(table string, from, to binlogPos) (rangeRun, error) {
	prefix := e.topicPrefix("backlog-compare")
	cfg, cp, err := e.tailboxConfig("backlog-compare", table, prefix, e.o.interval)
	if err != nil {
		return rangeRun{}, err
	}
	argv := e.tailboxArgv(cfg, from)
	argv[0] = e.o.compare
	c, err := runRange(argv, cp, to)
	if err != nil {
		return rangeRun{}, fmt.Errorf("-compare %s: %w", e.o.compare, err)
	}
	return c, e.dropTopics(prefix + ".member")
}

// reportCompare adds the -compare binary's row: its ratio per round (from
// the round's own ceilings) and, per round, tailbox's time and CPU against
// it, with their medians.
func (e *env) reportCompare(reads, prods []timed, tbs, cmps []rangeRun, n int) {
	ratios := roundRatioValues(reads, prods, cmps, n)
	var speed, cpu []float64
	for i := range cmps {
		speed = append(speed, cmps[i].total.Seconds()/tbs[i].total.Seconds())
		cpu = append(cpu, tbs[i].cpu.Seconds()/cmps[i].cpu.Seconds())
	}
	c := medianRun(cmps)
	r := &e.rep
	r.add(row{name: "backlog compare", events: n, seconds: c.total.Seconds(), rate: rate(n, c.total), cpu100k: per100k(c.cpu, n), rssMiB: c.maxRSSMiB,
		note: fmt.Sprintf("%s: %.2f of composed (rounds %s); tailbox is %.2f× as fast (rounds %s) at %.2f× its CPU (rounds %s)",
			e.o.compare, median(ratios), formatRatios(ratios), median(speed), formatRatios(speed), median(cpu), formatRatios(cpu))})
	r.key("backlog_compare_ratio_composed", median(ratios))
	r.key("backlog_compare_cpu_s_per_100k", per100k(c.cpu, n))
	r.key("backlog_compare_speedup", median(speed))
	r.key("backlog_compare_cpu_ratio", median(cpu))
}

// roundRatioValues returns tailbox's share of the composed ceiling in
// each round, from that round's own ceilings.
func roundRatioValues(reads, prods []timed, tbs []rangeRun, n int) []float64 {
	var rs []float64
	for i := range tbs {
		composed := 1 / (1/rate(n, reads[i].d) + 1/rate(n, prods[i].d))
		rs = append(rs, rate(n, tbs[i].total)/composed)
	}
	return rs
}

// median returns the middle value of vs, or the mean of the two middle
// values of an even count.
func median(vs []float64) float64 {
	s := slices.Clone(vs)
	slices.Sort(s)
	if len(s)%2 == 0 {
		return (s[len(s)/2-1] + s[len(s)/2]) / 2
	}
	return s[len(s)/2]
}

// formatRatios renders ratios as "0.81 0.86 0.84".
func formatRatios(vs []float64) string {
	parts := make([]string, len(vs))
	for i, v := range vs {
		parts[i] = fmt.Sprintf("%.2f", v)
	}
	return strings.Join(parts, " ")
}

// profileBacklog runs the backlog range once more in this binary's
// connector subcommand, which writes CPU and heap profiles.
func (e *env) profileBacklog(table string, from, to binlogPos, n int, composed float64) error {
	cfg, cp, err := e.tailboxConfig("backlog-profile", table, e.topicPrefix("backlog-profile"), e.o.interval)
	if err != nil {
		return err
	}
	argv, cpu, heap, err := e.profiledArgv("backlog", cfg, from)
	if err != nil {
		return err
	}
	// One second of execution trace, from a second in: where the
	// goroutines wait and the processors idle.
	argv = append(argv, "-trace", strings.TrimSuffix(cpu, ".cpu.pprof")+".trace", "-trace-after", "1s", "-trace-for", "1s")
	tb, err := runRange(argv, cp, to)
	if err != nil {
		return fmt.Errorf("profiling pass: %w", err)
	}
	got := rate(n, tb.total)
	e.rep.add(row{name: "backlog profiled", events: n, seconds: tb.total.Seconds(), rate: got, cpu100k: per100k(tb.cpu, n), rssMiB: tb.maxRSSMiB,
		note: fmt.Sprintf("%.2f of composed; in-process connector with pprof", got/composed)})
	e.rep.key("backlog_profiled_events_per_s", got)
	printProfiles(cpu, heap)
	return nil
}

// mixed: o.mixedRows outbox rows making o.mixedShare of the rows of their
// transactions, the rest rows of a wide business table.
func (e *env) mixed() error {
	o := e.o
	outbox, err := e.createOutbox("outbox_mixed")
	if err != nil {
		return err
	}
	wide, err := e.createWide("orders_wide")
	if err != nil {
		return err
	}
	perTxn := max(1, int(math.Round(float64(o.txnRows)*o.mixedShare)))
	widePerTxn := int(math.Round(float64(perTxn) * (1 - o.mixedShare) / o.mixedShare))
	from, err := e.rotate()
	if err != nil {
		return err
	}
	fmt.Printf("writing %d outbox rows and %d wide-table rows per transaction up to %d outbox rows...\n", perTxn, widePerTxn, o.mixedRows)
	t0 := time.Now()
	wideRows := 0
	for n := 0; n < o.mixedRows; n += perTxn {
		stmts := []string{"BEGIN"}
		if widePerTxn > 0 {
			stmts = append(stmts, e.wideInsert(wide, widePerTxn))
			wideRows += widePerTxn
		}
		stmts = append(stmts, e.outboxInsert(e.rng, outbox, n, min(n+perTxn, o.mixedRows)), "COMMIT")
		if err := execSQL(e.db, stmts...); err != nil {
			return err
		}
	}
	to, err := e.status()
	if err != nil {
		return err
	}
	total := o.mixedRows + wideRows
	fmt.Printf("written in %.1fs: %d rows, %s .. %s%s\n", time.Since(t0).Seconds(), total, from, to, rangeSize(from, to))

	var reads []timed
	var tbs []rangeRun
	for i := 1; i <= o.repeat; i++ {
		read, err := e.timedRead(from, to, total)
		if err != nil {
			return err
		}
		cfg, cp, err := e.tailboxConfig("mixed", outbox, e.topicPrefix("mixed"), e.o.interval)
		if err != nil {
			return err
		}
		tb, err := runRange(e.tailboxArgv(cfg, from), cp, to)
		if err != nil {
			return fmt.Errorf("tailbox: %w", err)
		}
		reads, tbs = append(reads, read), append(tbs, tb)
		fmt.Printf("round %d: ceiling_read %.3fs, tailbox %.3fs\n", i, read.d.Seconds(), tb.total.Seconds())
	}
	readT, tb := medianTimed(reads), medianRun(tbs)
	readDur, readCPU := readT.d, readT.cpu
	n := o.mixedRows
	ratio, sratio := tb.total.Seconds()/readDur.Seconds(), tb.stream.Seconds()/readDur.Seconds()
	r := &e.rep
	r.add(row{name: "mixed ceiling_read", events: total, seconds: readDur.Seconds(), rate: rate(total, readDur), cpu100k: per100k(readCPU, total),
		note: fmt.Sprintf("go-mysql alone, all %d rows decoded (events = rows here)", total)})
	r.add(row{name: "mixed tailbox", events: n, seconds: tb.total.Seconds(), rate: rate(n, tb.total), cpu100k: per100k(tb.cpu, n), rssMiB: tb.maxRSSMiB,
		note: fmt.Sprintf("%.2f× the raw read's time (streaming %.3fs: %.2f×); %.0f binlog rows/s", ratio, tb.stream.Seconds(), sratio, rate(total, tb.total))})
	r.key("mixed_outbox_rows", n)
	r.key("mixed_rows", total)
	r.key("mixed_read_s", readDur.Seconds())
	r.key("mixed_tailbox_s", tb.total.Seconds())
	r.key("mixed_time_ratio", ratio)
	r.key("mixed_stream_s", tb.stream.Seconds())
	r.key("mixed_stream_time_ratio", sratio)
	r.key("mixed_events_per_s", rate(n, tb.total))
	r.key("mixed_cpu_s_per_100k", per100k(tb.cpu, n))
	r.key("mixed_peak_rss_mib", tb.maxRSSMiB)
	r.atMost("mixed_ratio", "mixed tailbox time / raw read time", ratio, 1.10, "×")
	return nil
}

// bigTxn: one transaction of o.bigRows outbox rows.
func (e *env) bigTxn() error {
	o := e.o
	table, err := e.createOutbox("outbox_big")
	if err != nil {
		return err
	}
	from, err := e.rotate()
	if err != nil {
		return err
	}
	fmt.Printf("writing one transaction of %d outbox rows...\n", o.bigRows)
	t0 := time.Now()
	stmts := []string{"BEGIN"}
	for n := 0; n < o.bigRows; n += 1000 {
		stmts = append(stmts, e.outboxInsert(e.rng, table, n, min(n+1000, o.bigRows)))
	}
	if err := execSQL(e.db, append(stmts, "COMMIT")...); err != nil {
		return err
	}
	to, err := e.status()
	if err != nil {
		return err
	}
	fmt.Printf("written in %.1fs: %s .. %s%s\n", time.Since(t0).Seconds(), from, to, rangeSize(from, to))
	cfg, cp, err := e.tailboxConfig("bigtxn", table, e.topicPrefix("bigtxn"), e.o.interval)
	if err != nil {
		return err
	}
	tb, err := runRange(e.tailboxArgv(cfg, from), cp, to)
	if err != nil {
		return fmt.Errorf("tailbox: %w", err)
	}
	n := o.bigRows
	r := &e.rep
	r.add(row{name: "bigtxn tailbox", events: n, seconds: tb.total.Seconds(), rate: rate(n, tb.total), cpu100k: per100k(tb.cpu, n), rssMiB: tb.maxRSSMiB,
		note: "one transaction"})
	r.key("bigtxn_rows", n)
	r.key("bigtxn_events_per_s", rate(n, tb.total))
	r.key("bigtxn_cpu_s_per_100k", per100k(tb.cpu, n))
	r.key("bigtxn_peak_rss_mib", tb.maxRSSMiB)
	r.atMost("bigtxn_rss", "bigtxn peak RSS", tb.maxRSSMiB, 128, " MiB")
	return nil
}

func printProfiles(cpu, heap string) {
	fmt.Printf("profiles: %s %s\n  go tool pprof -top %s\n  go tool pprof -sample_index=alloc_space -top %s\n", cpu, heap, cpu, heap)
}

// rangeSize describes the size of [from, to) when it is within one file.
func rangeSize(from, to binlogPos) string {
	if from.file != to.file {
		return ""
	}
	return fmt.Sprintf(" (%.1f MiB of binlog)", float64(to.pos-from.pos)/(1<<20))
}
