package e2e

import (
	"context"
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"os"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/tailbox-cdc/tailbox/internal/testenv"
	"github.com/tailbox-cdc/tailbox/pkg/checkpoint"
)

// enableCleanup adds cleanupConfig to the outbox section of e's config.
func (e *env) enableCleanup() {
	e.t.Helper()
	b, err := os.ReadFile(e.cfg)
	if err != nil {
		e.t.Fatal(err)
	}
	s, n := string(b), strings.Count(string(b), "\nkafka:\n")
	if n != 1 || strings.Contains(s, "  cleanup:\n") {
		e.t.Fatalf("config has %d kafka sections (want 1) or already a cleanup section:\n%s", n, s)
	}
	s = strings.Replace(s, "\nkafka:\n", "\n"+cleanupConfig+"kafka:\n", 1)
	if err := os.WriteFile(e.cfg, []byte(s), 0o600); err != nil {
		e.t.Fatal(err)
	}
}

// committedView is what a read_committed consumer sees of the load topic
// and of connector name's checkpoint records in the Kafka store: the
// events and checkpoints whose Kafka transactions committed.
type committedView struct {
	t     *testing.T
	k     *testenv.KafkaCluster
	cl    *kgo.Client
	name  string
	first map[string]occurrence // event id -> its first committed copy
	gtid  map[string]string     // event id -> its transaction's GTID
	cps   []offsetCheckpoint    // the connector's checkpoints, by offset
}

// offsetCheckpoint is a checkpoint record and its offset in the
// (one-partition) checkpoint topic.
type offsetCheckpoint struct {
	offset int64
	cp     *checkpoint.Checkpoint
}

// newCommittedView starts following the committed records of connector
// name; call it once the checkpoint topic exists (it creates no topic).
func newCommittedView(t *testing.T, k *testenv.KafkaCluster, name string) *committedView {
	t.Helper()
	cl, err := kgo.NewClient(kgo.SeedBrokers(k.Addrs...), kgo.ConsumeTopics(loadTopic, checkpoint.DefaultTopic),
		kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()), readCommitted, kgo.FetchMaxWait(100*time.Millisecond),
		kgo.MetadataMinAge(50*time.Millisecond), kgo.MetadataMaxAge(time.Second))
	if err != nil {
		t.Fatalf("kafka client: %v", err)
	}
	t.Cleanup(cl.Close)
	return &committedView{t: t, k: k, cl: cl, name: name, first: map[string]occurrence{}, gtid: map[string]string{}}
}

// poll takes in what one fetch of up to d returns.
func (v *committedView) poll(d time.Duration) {
	v.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), d)
	defer cancel()
	v.cl.PollFetches(ctx).EachRecord(func(r *kgo.Record) {
		if r.Topic == loadTopic {
			var ev envelope
			if err := json.Unmarshal(r.Value, &ev); err != nil {
				v.t.Fatalf("record %s[%d]@%d is not an envelope: %v", r.Topic, r.Partition, r.Offset, err)
			}
			if _, ok := v.first[ev.ID]; !ok {
				v.first[ev.ID] = occurrence{r.Partition, r.Offset}
				v.gtid[ev.ID] = ev.Source.GTID
			}
			return
		}
		if string(r.Key) != v.name || r.Value == nil {
			return
		}
		cp, err := checkpoint.Decode(r.Value)
		if err != nil {
			v.t.Fatalf("checkpoint record %s[%d]@%d: %v", r.Topic, r.Partition, r.Offset, err)
		}
		v.cps = append(v.cps, offsetCheckpoint{r.Offset, cp})
	})
}

// moment is where the logs ended at one moment of the test: every record
// written before it is below these offsets.
type moment struct {
	label  string
	events map[int32]int64 // log end offsets of the load topic
	cps    int64           // log end offset of the checkpoint topic
}

// now is the moment label, read once the rows deleted by then are listed.
func (v *committedView) now(label string) moment {
	v.t.Helper()
	return moment{label: label, events: endOffsets(v.t, v.k, loadTopic), cps: endOffsets(v.t, v.k, checkpoint.DefaultTopic)[0]}
}

// checkpointAt returns the newest checkpoint committed before m (nil if
// none was).
func (v *committedView) checkpointAt(m moment) *checkpoint.Checkpoint {
	var cp *checkpoint.Checkpoint
	for _, c := range v.cps {
		if c.offset < m.cps {
			cp = c.cp
		}
	}
	return cp
}

// problems lists, for each row of deleted, why its deletion at m was
// early: its event is not in a committed Kafka transaction written
// before m, or the newest checkpoint committed before m does not cover it.
func (v *committedView) problems(l *load, deleted map[string]bool, m moment) []string {
	v.t.Helper()
	cp := v.checkpointAt(m)
	var out []string
	for id := range deleted {
		first, ok := v.first[id]
		switch {
		case !ok:
			out = append(out, fmt.Sprintf("row %s was deleted, but its event is in no committed Kafka transaction", id))
		case first.offset >= m.events[first.partition]:
			out = append(out, fmt.Sprintf("row %s was deleted, but its event was committed only afterwards (%d@%d, end %d)", id, first.partition, first.offset, m.events[first.partition]))
		case !covered(v.t, cp, v.gtid[id], l.rowIndex(id)):
			where := "none"
			if cp != nil {
				where = fmt.Sprintf("%s skip %d", cp.Position, cp.Skip)
			}
			out = append(out, fmt.Sprintf("row %s was deleted, but the committed checkpoint (%s) does not cover its event", id, where))
		}
	}
	sort.Strings(out)
	return out
}

// check fails the test for each row of deleted, the rows gone from the
// outbox at m, whose event was not durable then (see problems). Nothing
// may commit between m and the check (the connector is dead or cut off
// from the broker), so the consumer only catches up: it is given 15 s.
func (v *committedView) check(l *load, deleted map[string]bool, m moment) {
	v.t.Helper()
	deadline := time.Now().Add(15 * time.Second)
	for {
		bad := v.problems(l, deleted, m)
		if len(bad) == 0 {
			return
		}
		if time.Now().After(deadline) {
			for i, b := range bad {
				if i == 10 {
					v.t.Errorf("%s: ... %d more", m.label, len(bad)-i)
					break
				}
				v.t.Errorf("%s: %s", m.label, b)
			}
			return
		}
		v.poll(500 * time.Millisecond)
	}
}

// TestCleanupExactlyOnceUnderKill9AndBrokerRestartDeletesOnlyCommittedRows
// runs the connector with delivery: exactly_once, the Kafka checkpoint
// store and outbox.cleanup under load, kills it with SIGKILL ten times
// and restarts the broker once under it, and proves: a
// read_committed consumer sees every committed event exactly once
// (checked against a copy of the ids a trigger writes in the inserting
// transaction); at every kill, and while the broker is down, each row
// already deleted has its event in a Kafka transaction that committed
// before, and the checkpoint committed before covers it; and the table
// drains to nothing once the load stops.
func TestCleanupExactlyOnceUnderKill9AndBrokerRestartDeletesOnlyCommittedRows(t *testing.T) {
	dk := testenv.StartDevKafka(t)
	k := &testenv.KafkaCluster{Addrs: []string{dk.Addr}}
	createTopic(t, k, loadTopic)
	e := newEnvOn(t, testenv.StartMariaDB(t, ""), k, "envelope")
	e.copyIDs()
	e.writeConfig("envelope", cleanupConfig)
	e.useKafkaStore(false)
	p := e.start()
	v := newCommittedView(t, k, "e2e-"+e.dbn)
	l := startLoad(t, e.db, e.dbn, loadOptions{Workers: 3, Aggregates: 200, MaxRows: 5, Pause: 20 * time.Millisecond, IDsFrom: "outbox_copy"})

	rng := rand.New(rand.NewPCG(uint64(time.Now().UnixNano()), 3))
	const kills = 10
	var deleted map[string]bool
	for i := range kills {
		time.Sleep(time.Duration(500+rng.IntN(1000)) * time.Millisecond)
		p.mustRun(t)
		if i == kills/2 {
			// The broker restarts under the running connector: nothing
			// it had not committed may be deleted while it is down.
			// (A clean stop: kfake, restarted after a crash, aborts the
			// transactions open then without writing abort markers, and
			// read_committed consumers then drop the producer's later
			// transactions.)
			dk.Stop(t)
			time.Sleep(time.Second)
			down := e.deletedNow()
			dk.Start(t)
			v.check(l, down, v.now("while the broker was down"))
			t.Logf("while the broker was down: %d rows deleted so far", len(down))
			time.Sleep(time.Second)
			p.mustRun(t)
		}
		p.kill9(t)
		// A DELETE the dead process had sent may still complete.
		time.Sleep(100 * time.Millisecond)
		deleted = e.deletedNow()
		v.check(l, deleted, v.now(fmt.Sprintf("kill %d", i+1)))
		t.Logf("kill %d: %d rows deleted so far", i+1, len(deleted))
		p = e.start()
	}
	if len(deleted) == 0 {
		t.Errorf("no row was deleted before the last kill: cleanup did not run")
	}

	l.stop()
	want := l.committed(t)
	waitDelivered(t, k, []string{loadTopic}, want, 2*time.Minute, p, readCommitted)
	e.waitDrained(p)
	if code := p.stop(t); code != 0 {
		t.Fatalf("tailbox exit code %d after SIGTERM, want 0:\n%s", code, logTail(p.stderr.String()))
	}
	recs := k.ConsumeAll(t, []string{loadTopic}, 2*time.Second)
	d := l.verify(t, recs, want)
	if d.dups != 0 {
		t.Errorf("read_committed consumer saw %d duplicates, want 0 with delivery: exactly_once", d.dups)
	}
	logWarnings(t, p)
	t.Logf("%d kills and a broker restart, %d events committed, %d records read_committed, %d duplicates", kills, len(want), len(recs), d.dups)
}

// rowsDeleted returns p's tailbox_outbox_rows_deleted_total and
// tailbox_outbox_rows_waiting; the test fails when they are not exported.
func rowsDeleted(t *testing.T, p *proc) (deleted, waiting float64) {
	t.Helper()
	fams := scrape(t, "http://"+httpAddr(t, p))
	deleted, ok1 := find(fams, "tailbox_outbox_rows_deleted_total")
	waiting, ok2 := find(fams, "tailbox_outbox_rows_waiting")
	if !ok1 || !ok2 {
		t.Fatalf("/metrics has no tailbox_outbox_rows_deleted_total (%v) or tailbox_outbox_rows_waiting (%v) with outbox.cleanup on", ok1, ok2)
	}
	return deleted, waiting
}

// waitDeleting waits up to 30 s until the active replica p has deleted
// rows, and returns how many.
func waitDeleting(t *testing.T, p *proc, what string) float64 {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for {
		p.mustRun(t)
		if n, _ := rowsDeleted(t, p); n > 0 {
			return n
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s deleted no row within 30s under load:\n%s", what, logTail(p.stderr.String()))
		}
		time.Sleep(200 * time.Millisecond)
	}
}

// checkStandbyIdle fails the test unless the standby p deleted nothing and
// remembers nothing for deletion.
func checkStandbyIdle(t *testing.T, p *proc, what string) {
	t.Helper()
	p.mustRun(t)
	if deleted, waiting := rowsDeleted(t, p); deleted != 0 || waiting != 0 {
		t.Errorf("%s: tailbox_outbox_rows_deleted_total %v, tailbox_outbox_rows_waiting %v; want 0 and 0 while it stands by", what, deleted, waiting)
	}
	if strings.Contains(p.stderr.String(), `"component":"cleanup"`) {
		t.Errorf("%s logged as the cleaner while it stands by:\n%s", what, logTail(p.stderr.String()))
	}
}

// TestCleanupHAOnlyTheActiveReplicaDeletes runs two replicas with
// ha.enabled (exactly_once, Kafka store) and outbox.cleanup under load:
// only the active replica deletes (the standby's
// tailbox_outbox_rows_deleted_total stays 0); after a kill -9 of the
// active one, each row deleted by then has its event in a Kafka
// transaction committed before, covered by the checkpoint committed
// before; the replica that takes over goes on deleting, while a new
// standby deletes nothing; a read_committed consumer sees every committed
// event once, and the table drains to nothing once the load stops.
func TestCleanupHAOnlyTheActiveReplicaDeletes(t *testing.T) {
	e := newHAEnv(t)
	e.copyIDs()
	e.enableCleanup()
	ps := e.replicas(2)
	first := e.activeReplica(ps, 10*time.Second)
	second := ps[0]
	if second == first {
		second = ps[1]
	}
	v := newCommittedView(t, e.kafka, "e2e-"+e.dbn)
	l := startLoad(t, e.db, e.dbn, loadOptions{Workers: 3, Aggregates: 200, MaxRows: 5, Pause: 20 * time.Millisecond, IDsFrom: "outbox_copy"})

	n := waitDeleting(t, first, "the active replica")
	time.Sleep(time.Second)
	checkStandbyIdle(t, second, "the standby")
	t.Logf("the active replica deleted %v rows, the standby none", n)

	first.kill9(t)
	time.Sleep(100 * time.Millisecond)
	deleted := e.deletedNow()
	v.check(l, deleted, v.now("kill -9 of the active replica"))
	if len(deleted) == 0 {
		t.Errorf("no row was deleted before the active replica was killed")
	}
	t.Logf("kill -9 of the active replica: %d rows deleted by then", len(deleted))
	if e.activeReplica([]*proc{second}, haSession+30*time.Second) != second {
		t.Fatalf("the standby did not take over")
	}
	third := e.start() // a new standby
	n = waitDeleting(t, second, "the replica that took over")
	time.Sleep(time.Second)
	checkStandbyIdle(t, third, "the new standby")
	t.Logf("the replica that took over deleted %v rows, the new standby none", n)

	l.stop()
	want := l.committed(t)
	waitDelivered(t, e.kafka, []string{loadTopic}, want, 2*time.Minute, second, readCommitted)
	e.waitDrained(second)
	checkStandbyIdle(t, third, "the new standby, once the table drained")
	if e.activeReplica([]*proc{second, third}, 10*time.Second) != second {
		t.Errorf("the lease moved away from the replica that took over")
	}
	for _, p := range []*proc{second, third} {
		if code := p.stop(t); code != 0 {
			t.Errorf("replica exit code %d after SIGTERM, want 0:\n%s", code, logTail(p.stderr.String()))
		}
	}
	recs := e.kafka.ConsumeAll(t, []string{loadTopic}, 2*time.Second)
	d := l.verify(t, recs, want)
	if d.dups != 0 {
		t.Errorf("read_committed consumer saw %d duplicates across a failover, want 0", d.dups)
	}
	logWarnings(t, second)
	t.Logf("%d events committed, %d records read_committed, %d duplicates", len(want), len(recs), d.dups)
}
