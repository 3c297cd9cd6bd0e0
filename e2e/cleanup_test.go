package e2e

import (
	"fmt"
	"math/rand/v2"
	"regexp"
	"testing"
	"time"

	"github.com/tailbox-cdc/tailbox/internal/testenv"
	"github.com/tailbox-cdc/tailbox/pkg/checkpoint"
)

// cleanupConfig is the outbox.cleanup section of the tests in this file:
// batches small enough to interleave with the stream, a rate that never
// holds the deletes back.
const cleanupConfig = "  cleanup:\n    enabled: true\n    batch_size: 200\n    rate: 50000\n"

// copyIDs creates the table outbox_copy and a trigger that copies the id
// of every row inserted into the outbox there, in the inserting
// transaction: the ids committed, which outbox.cleanup never touches.
func (e *env) copyIDs() {
	e.t.Helper()
	e.db.Exec(e.t, fmt.Sprintf("CREATE TABLE %s.outbox_copy (id CHAR(36) NOT NULL PRIMARY KEY, aggregatetype VARCHAR(255) NOT NULL)", e.dbn))
	e.db.Exec(e.t, fmt.Sprintf("CREATE TRIGGER %s.outbox_copy_ids AFTER INSERT ON %s.outbox FOR EACH ROW INSERT INTO %s.outbox_copy VALUES (NEW.id, NEW.aggregatetype)", e.dbn, e.dbn, e.dbn))
}

// deletedNow lists the ids of the copy (see copyIDs) that the outbox no
// longer has.
func (e *env) deletedNow() map[string]bool {
	e.t.Helper()
	res := e.db.Exec(e.t, fmt.Sprintf("SELECT c.id FROM %s.outbox_copy c LEFT JOIN %s.outbox o ON o.id = c.id WHERE o.id IS NULL", e.dbn, e.dbn))
	out := map[string]bool{}
	for i := range res.RowNumber() {
		id, _ := res.GetString(i, 0)
		out[id] = true
	}
	return out
}

// waitDrained waits up to a minute, while p runs, for the outbox to be
// empty, and fails the test if it is not: once the load has stopped and
// every event arrived, the durable checkpoint covers every row.
func (e *env) waitDrained(p *proc) {
	e.t.Helper()
	deadline := time.Now().Add(time.Minute)
	left := -1
	for time.Now().Before(deadline) {
		p.mustRun(e.t)
		res := e.db.Exec(e.t, fmt.Sprintf("SELECT COUNT(*) FROM %s.outbox", e.dbn))
		n, _ := res.GetInt(0, 0)
		if left = int(n); left == 0 {
			return
		}
		time.Sleep(200 * time.Millisecond)
	}
	e.t.Errorf("%d rows are still in the outbox a minute after the load stopped and every event arrived", left)
}

// cleanupKill is what the test saw right after one kill -9 (or broker
// outage) with outbox.cleanup on.
type cleanupKill struct {
	cp      *checkpoint.Checkpoint // durable when the rows were listed
	end     map[int32]int64        // log end offsets then
	deleted map[string]bool        // ids committed (in the copy) and gone from the outbox
}

// TestCleanupUnderKill9AndBrokerRestartDeletesOnlyDurableRows runs the
// connector with outbox.cleanup under load, kills it with SIGKILL ten
// times and restarts the broker once, and proves: every committed event
// arrives (checked against a copy of the ids a trigger writes in the
// inserting transaction, which cleanup never touches); at every kill, and
// while the broker is down, each row already deleted was covered by the
// durable checkpoint and its event was in Kafka; and the table drains to
// nothing once the load stops and the checkpoint covers everything,
// including the rows a kill left covered but not deleted (read back from
// the binlog at the next start).
func TestCleanupUnderKill9AndBrokerRestartDeletesOnlyDurableRows(t *testing.T) {
	dk := testenv.StartDevKafka(t)
	k := &testenv.KafkaCluster{Addrs: []string{dk.Addr}}
	createTopic(t, k, loadTopic)
	e := newEnvOn(t, testenv.StartMariaDB(t, ""), k, "envelope")
	e.copyIDs()
	e.writeConfig("envelope", cleanupConfig)
	p := e.start()
	l := startLoad(t, e.db, e.dbn, loadOptions{Workers: 3, Aggregates: 200, MaxRows: 5, Pause: 20 * time.Millisecond, IDsFrom: "outbox_copy"})

	rng := rand.New(rand.NewPCG(uint64(time.Now().UnixNano()), 2))
	var kills []cleanupKill
	for i := range 10 {
		time.Sleep(time.Duration(300+rng.IntN(1200)) * time.Millisecond)
		p.mustRun(t)
		if i == 5 {
			// The broker goes down under the running connector: nothing
			// may be deleted that the broker did not have.
			dk.Kill(t)
			time.Sleep(time.Second)
			kills = append(kills, cleanupKill{cp: readCheckpoint(t, e.checkpointPath()), deleted: e.deletedNow()})
			dk.Start(t)
			kills[len(kills)-1].end = endOffsets(t, k, loadTopic)
			time.Sleep(time.Second)
			p.mustRun(t)
		}
		p.kill9(t)
		// A DELETE the dead process had sent may still complete.
		time.Sleep(100 * time.Millisecond)
		kills = append(kills, cleanupKill{deleted: e.deletedNow(), cp: readCheckpoint(t, e.checkpointPath()), end: endOffsets(t, k, loadTopic)})
		recovered := regexp.MustCompile(`"rows":(\d+)[^\n]*read back the rows`).FindStringSubmatch(p.stderr.String())
		if recovered == nil {
			recovered = []string{"", "-"}
		}
		t.Logf("kill %d: %d rows deleted so far; this run read back %s rows at its start", i+1, len(kills[len(kills)-1].deleted), recovered[1])
		p = e.start()
	}

	l.stop()
	want := l.committed(t)
	waitDelivered(t, k, []string{loadTopic}, want, 3*time.Minute, p)
	// The table drains: every row is covered once the stream has caught up.
	e.waitDrained(p)
	if code := p.stop(t); code != 0 {
		t.Fatalf("tailbox exit code %d after SIGTERM, want 0:\n%s", code, logTail(p.stderr.String()))
	}
	recs := k.ConsumeAll(t, []string{loadTopic}, 2*time.Second)
	d := l.verify(t, recs, want)

	bad := 0
	for i, kl := range kills {
		for id := range kl.deleted {
			first, ok := d.first[id]
			switch {
			case !ok:
				// verify reports it missing.
			case !covered(t, kl.cp, d.gtid[id], l.rowIndex(id)):
				if bad++; bad <= 10 {
					t.Errorf("kill %d: row %s was deleted, but the durable checkpoint (%s skip %d) did not cover its event", i+1, id, kl.cp.Position, kl.cp.Skip)
				}
			case first.offset >= kl.end[first.partition]:
				if bad++; bad <= 10 {
					t.Errorf("kill %d: row %s was deleted before its event reached Kafka (%d@%d, end %d)", i+1, id, first.partition, first.offset, kl.end[first.partition])
				}
			}
		}
	}
	if len(kills[len(kills)-1].deleted) == 0 {
		t.Errorf("no row was deleted before the last kill: cleanup did not run")
	}
	logWarnings(t, p)
	t.Logf("%d kills and a broker restart, %d events committed, %d records in Kafka, %d duplicates", len(kills)-1, len(want), len(recs), d.dups)
}
