package main

import (
	"context"
	"fmt"
	osexec "os/exec"
	"slices"
	"strings"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"
)

// startup: o.startupRuns times, one outbox row is committed, `tailbox
// offsets set --from` the position before it writes a checkpoint (with its
// GTID), and `tailbox run` is exec'd to restart from that checkpoint, as
// after a deploy. Per run it measures, from just before exec:
//
//   - up: the process logged "tailbox starting" (runtime and config ready);
//   - ready: the connector logged "starting" (source connected and checked,
//     start position resolved; the binlog stream is opened next);
//   - consumed: the poll of a franz-go consumer, already waiting on the
//     topic, returned the record. The broker makes a record fetchable when
//     it appends it, just before answering the produce request, so this is
//     the time to the first record acknowledged (acks=all) give or take the
//     fetch round trip;
//   - checkpointed: the checkpoint file covers the event (the upper bound
//     of "acknowledged": tailbox writes it once it has caught up).
//
// The target applies to the median of consumed.
func (e *env) startup() error {
	o := e.o
	table, err := e.createOutbox("outbox_startup")
	if err != nil {
		return err
	}
	if _, err := e.rotate(); err != nil {
		return err
	}
	prefix := e.topicPrefix("startup")
	topic := prefix + ".member"
	cl, err := e.consumer(topic)
	if err != nil {
		return err
	}
	defer cl.Close()
	if err := e.warmTopic(cl, topic); err != nil {
		return err
	}
	var up, ready, consumed, checkpointed []float64
	ms := func(d time.Duration) float64 { return float64(d) / float64(time.Millisecond) }
	for i := 1; i <= o.startupRuns; i++ {
		from, err := e.status()
		if err != nil {
			return err
		}
		if err := execSQL(e.db, e.outboxInsert(e.rng, table, i, i+1)); err != nil {
			return err
		}
		to, err := e.status()
		if err != nil {
			return err
		}
		cfg, cp, err := e.tailboxConfig("startup", table, prefix, e.o.interval) // a fresh checkpoint file
		if err != nil {
			return err
		}
		if out, err := osexec.Command(e.o.tailbox, "offsets", "set", "-c", cfg, "--from", from.String()).CombinedOutput(); err != nil {
			return fmt.Errorf("run %d: tailbox offsets set: %w: %s", i, err, out)
		}
		p, err := startTailbox([]string{e.o.tailbox, "run", "-c", cfg}, cp)
		if err != nil {
			return err
		}
		at, err := awaitSeq(cl, p, i, time.Minute)
		if err != nil {
			p.kill()
			return fmt.Errorf("run %d: %w", i, err)
		}
		cpd, err := p.waitCheckpoint(to, time.Minute)
		if err != nil {
			return fmt.Errorf("run %d: %w", i, err)
		}
		if _, err := p.stop(); err != nil {
			return fmt.Errorf("run %d: %w", i, err)
		}
		u, _ := p.logged("tailbox starting")
		rd, _ := p.streamStart()
		up, ready = append(up, ms(u)), append(ready, ms(rd))
		consumed, checkpointed = append(consumed, ms(at.Sub(p.started))), append(checkpointed, ms(cpd))
		fmt.Printf("run %d: up %.1fms, ready %.1fms, consumed %.1fms, checkpointed %.1fms\n", i, up[i-1], ready[i-1], consumed[i-1], checkpointed[i-1])
	}
	med := func(v []float64) float64 {
		s := slices.Clone(v)
		slices.Sort(s)
		return s[len(s)/2]
	}
	r := &e.rep
	r.add(row{name: "startup", events: o.startupRuns, seconds: med(consumed) / 1000,
		note: fmt.Sprintf("median ms from exec: up %.1f, ready %.1f, consumed %.1f (min %.1f max %.1f), checkpointed %.1f",
			med(up), med(ready), med(consumed), slices.Min(consumed), slices.Max(consumed), med(checkpointed))})
	r.key("startup_runs", o.startupRuns)
	r.key("startup_up_ms", med(up))
	r.key("startup_ready_ms", med(ready))
	r.key("startup_consumed_ms", med(consumed))
	r.key("startup_consumed_max_ms", slices.Max(consumed))
	r.key("startup_checkpointed_ms", med(checkpointed))
	r.atMost("startup", "startup exec→first event consumed (median)", med(consumed), 300, " ms")
	return nil
}

// warmTopic creates topic with a record of its own and waits until cl has
// fetched it, so that the timed runs find the consumer waiting.
func (e *env) warmTopic(cl *kgo.Client, topic string) error {
	pc, err := kgo.NewClient(kgo.SeedBrokers(strings.Split(e.o.brokers, ",")...), kgo.AllowAutoTopicCreation())
	if err != nil {
		return err
	}
	defer pc.Close()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	if err := pc.ProduceSync(ctx, &kgo.Record{Topic: topic, Value: []byte("warm-up")}).FirstErr(); err != nil {
		return fmt.Errorf("create topic %s: %w", topic, err)
	}
	for ctx.Err() == nil {
		recs, err := poll(ctx, cl)
		if err != nil {
			return err
		}
		if len(recs) > 0 {
			return nil
		}
	}
	return fmt.Errorf("consumer of %s saw no record within a minute", topic)
}
