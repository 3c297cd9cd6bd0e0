package e2e

import (
	"fmt"
	"math/rand/v2"
	"strings"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/tailbox-cdc/tailbox/internal/testenv"
	"github.com/tailbox-cdc/tailbox/pkg/checkpoint"
)

// crash is what the test saw right after one kill -9 of the connector.
type crash struct {
	cp  *checkpoint.Checkpoint // the checkpoint the next run resumes from
	end map[int32]int64        // log end offsets: everything sent before the kill is below
}

// TestCrashKill9UnderLoadLosesNothing kills the connector with SIGKILL at
// random moments while transactions of 1–5 outbox rows for 200 aggregates
// commit concurrently, restarting it each time, and then proves that every
// committed event reached Kafka, that each aggregate's events first arrived
// in commit order, that every checkpoint only covered events already in
// Kafka, and that an event was sent more than once only when a kill came
// after it was sent and before a checkpoint covered it.
// TAILBOX_SOAK=1 (make soak) or -soak.kills=N makes it long.
func TestCrashKill9UnderLoadLosesNothing(t *testing.T) {
	kills := killCount(10, 200)
	// A private server: the load would disturb tests sharing one.
	e := newEnvOn(t, testenv.StartMariaDB(t, ""), testenv.Kafka(t), "envelope")
	topics := []string{loadTopic}
	p := e.start()
	l := startLoad(t, e.db, e.dbn, loadOptions{Workers: 4, Aggregates: 200, MaxRows: 5, Pause: 20 * time.Millisecond})

	rng := rand.New(rand.NewPCG(uint64(time.Now().UnixNano()), 1))
	var crashes []crash
	for i := range kills {
		// Anywhere from right after the start-up to well into streaming.
		time.Sleep(time.Duration(100+rng.IntN(1400)) * time.Millisecond)
		p.mustRun(t)
		p.kill9(t)
		// A request the dead process had fully sent may still be appended.
		time.Sleep(100 * time.Millisecond)
		c := crash{cp: readCheckpoint(t, e.checkpointPath()), end: endOffsets(t, e.kafka, loadTopic)}
		crashes = append(crashes, c)
		if c.cp != nil {
			t.Logf("kill %d: checkpoint %s skip %d", i+1, c.cp.Position.GTID, c.cp.Skip)
		}
		p = e.start()
	}

	time.Sleep(500 * time.Millisecond)
	want, recs, d := l.drain(t, e.kafka, topics, 2*time.Minute, p)
	checkCrashDuplicates(t, l, d, crashes)
	logWarnings(t, p)
	t.Logf("%d kills, %d events committed, %d records in Kafka, %d duplicates (%.2f%%)",
		kills, len(want), len(recs), d.dups, 100*float64(d.dups)/float64(max(len(want), 1)))
}

// checkCrashDuplicates checks the delivery contract around each kill: an
// event the checkpoint at a kill covered was in Kafka before that kill, and
// an event has at most one extra copy per kill that came after its first
// copy was sent and before a checkpoint covered it.
func checkCrashDuplicates(t *testing.T, l *load, d delivered, crashes []crash) {
	t.Helper()
	bad := 0
	for id, first := range d.first {
		idx := l.rowIndex(id)
		allowed := 0
		for k, c := range crashes {
			sentBefore := first.offset < c.end[first.partition]
			if covered(t, c.cp, d.gtid[id], idx) {
				if !sentBefore {
					if bad++; bad <= 10 {
						t.Errorf("the checkpoint at kill %d (%s skip %d next %s) covers event %s (row %d of %s), which reached Kafka only after the kill (%d@%d, end offset then %d)",
							k+1, c.cp.Position.GTID, c.cp.Skip, c.cp.NextTxn, id, idx, d.gtid[id], first.partition, first.offset, c.end[first.partition])
					}
				}
				continue
			}
			if sentBefore {
				allowed++
			}
		}
		if extra := d.count[id] - 1; extra > allowed {
			if bad++; bad <= 10 {
				t.Errorf("event %s (row %d of %s) arrived %d times, but only %d kills fell between sending it and a checkpoint covering it",
					id, idx, d.gtid[id], d.count[id], allowed)
			}
		}
	}
	if bad > 0 {
		t.Errorf("%d events break the at-least-once contract around kills", bad)
	}
}

// bigTxnRows is the size of the single large transaction.
const bigTxnRows = 100_000

// commitBigTxn commits one transaction of bigTxnRows outbox rows
// (aggregatetype "big", 200 aggregates, ~100-byte payloads) and returns the
// ids in row order.
func commitBigTxn(t *testing.T, e *env) []string {
	t.Helper()
	c := e.db.Conn(t)
	if _, err := c.Execute("BEGIN"); err != nil {
		t.Fatalf("begin: %v", err)
	}
	ids := make([]string, 0, bigTxnRows)
	pad := strings.Repeat("x", 64)
	const perStmt = 1000
	for i := 0; i < bigTxnRows; i += perStmt {
		var b strings.Builder
		fmt.Fprintf(&b, "INSERT INTO %s.outbox (id, aggregatetype, aggregateid, type, payload) VALUES ", e.dbn)
		for j := i; j < i+perStmt; j++ {
			id := fmt.Sprintf("00000000-0000-4000-8000-%012d", j)
			ids = append(ids, id)
			if j > i {
				b.WriteByte(',')
			}
			fmt.Fprintf(&b, `('%s','big','agg-%03d','Bulk','{"n":%d,"pad":"%s"}')`, id, j%200, j, pad)
		}
		if _, err := c.Execute(b.String()); err != nil {
			t.Fatalf("insert rows %d..: %v", i, err)
		}
	}
	if _, err := c.Execute("COMMIT"); err != nil {
		t.Fatalf("commit: %v", err)
	}
	return ids
}

// TestCrashLargeTransaction streams one 100k-row transaction and reports the
// connector's peak RSS; then, in a second run, kills the connector with
// SIGKILL inside such a transaction once its checkpoint carries a skip (a
// prefix of the transaction acknowledged), restarts it and checks that no
// row of that prefix is sent again and that every row arrives.
func TestCrashLargeTransaction(t *testing.T) {
	topics := []string{"outbox.event.big"}
	// A private server: these transactions would disturb tests sharing one.
	db := testenv.StartMariaDB(t, "")
	t.Run("a 100k-row transaction streams through", func(t *testing.T) {
		e := newEnvOn(t, db, testenv.Kafka(t), "envelope")
		p := e.start()
		ids := commitBigTxn(t, e)
		recs, rss := deliverBigTxn(t, e, p, topics, ids)
		checkBigTxn(t, recs, ids, nil, nil)
		t.Logf("peak RSS (VmHWM) of tailbox through one %d-row transaction: %.1f MiB", bigTxnRows, float64(rss)/1024)
	})
	t.Run("a transaction of large rows streams through", func(t *testing.T) {
		// 1000 rows of ~100 KiB: without a byte bound all of them could be
		// in flight at once (100 MiB); the bound holds them to 32 MiB.
		e := newEnvOn(t, db, testenv.Kafka(t), "envelope")
		// A slow broker (20 ms per produce request), so that records pile up
		// in flight.
		e.kafka.Cluster.ControlKey(int16(kmsg.Produce), func(kmsg.Request) (kmsg.Response, error, bool) {
			e.kafka.Cluster.KeepControl()
			time.Sleep(20 * time.Millisecond)
			return nil, nil, false
		})
		p := e.start()
		c := e.db.Conn(t)
		if _, err := c.Execute("BEGIN"); err != nil {
			t.Fatalf("begin: %v", err)
		}
		pad := strings.Repeat("y", 100<<10)
		want := map[string]bool{}
		for i := range 1000 {
			id := fmt.Sprintf("00000000-0000-4000-9000-%012d", i)
			want[id] = true
			if _, err := c.Execute(fmt.Sprintf(`INSERT INTO %s.outbox (id, aggregatetype, aggregateid, type, payload) VALUES ('%s','big','agg-%03d','Large','{"n":%d,"pad":"%s"}')`,
				e.dbn, id, i%200, i, pad)); err != nil {
				t.Fatalf("insert row %d: %v", i, err)
			}
		}
		if _, err := c.Execute("COMMIT"); err != nil {
			t.Fatalf("commit: %v", err)
		}
		waitDelivered(t, e.kafka, topics, want, 3*time.Minute, p)
		rss := peakRSS(t, p.cmd.Process.Pid)
		if code := p.stop(t); code != 0 {
			t.Fatalf("tailbox exit code %d:\n%s", code, logTail(p.stderr.String()))
		}
		t.Logf("peak RSS (VmHWM) of tailbox through one transaction of 1000 rows of 100 KiB: %.1f MiB", float64(rss)/1024)
	})
	t.Run("a kill inside it resends no acknowledged row", func(t *testing.T) {
		e := newEnvOn(t, db, testenv.Kafka(t), "envelope")
		p := e.start()
		ids := commitBigTxn(t, e)
		var cp *checkpoint.Checkpoint
		deadline := time.Now().Add(2 * time.Minute)
		for {
			cp = readCheckpoint(t, e.checkpointPath())
			if cp != nil && cp.Skip > 0 && cp.Skip < bigTxnRows/2 {
				break
			}
			if cp != nil && cp.Skip >= bigTxnRows/2 || time.Now().After(deadline) {
				t.Fatalf("no checkpoint inside the first half of the transaction was seen (last %+v)", cp)
			}
			time.Sleep(5 * time.Millisecond)
		}
		p.kill9(t)
		time.Sleep(100 * time.Millisecond)
		cp = readCheckpoint(t, e.checkpointPath())
		end := endOffsets(t, e.kafka, topics[0])
		if cp.Skip == 0 || cp.NextTxn == "" {
			t.Fatalf("checkpoint after the kill has no skip: %+v", cp)
		}
		p = e.start()
		recs, rss := deliverBigTxn(t, e, p, topics, ids)
		sent, dups := checkBigTxn(t, recs, ids, cp, end)
		t.Logf("killed with checkpoint skip %d of transaction %s; %d rows were in Kafka before the kill; %d rows sent again after the restart (all after the skip); peak RSS of the second run %.1f MiB",
			cp.Skip, cp.NextTxn, sent, dups, float64(rss)/1024)
	})
}

// checkBigTxn checks that every row of the big transaction arrived, in row
// order per aggregate. With a checkpoint cp taken at a kill and the log end
// offsets end at that moment, it also checks that the first cp.Skip rows
// were in Kafka before the kill and were not sent again; it returns how many
// rows were in Kafka before the kill and how many copies came after it.
func checkBigTxn(t *testing.T, recs []*kgo.Record, ids []string, cp *checkpoint.Checkpoint, end map[int32]int64) (sentBefore, dups int) {
	t.Helper()
	row := make(map[string]int, len(ids))
	for i, id := range ids {
		row[id] = i
	}
	count := make(map[string]int, len(ids))
	lastRow := map[string]int{}
	for _, r := range recs {
		id, _ := header(r, "id")
		i, ok := row[id]
		if !ok {
			t.Fatalf("unexpected event %q in %s[%d]@%d", id, r.Topic, r.Partition, r.Offset)
		}
		count[id]++
		before := end != nil && r.Offset < end[r.Partition]
		if before {
			sentBefore++
		}
		if count[id] > 1 {
			dups++
			if cp != nil && i < cp.Skip {
				t.Errorf("row %d (%s) is within the checkpoint's skip %d but was sent again", i, id, cp.Skip)
			}
			continue
		}
		if cp != nil && i < cp.Skip && !before {
			t.Errorf("row %d (%s) is within the checkpoint's skip %d but was not in Kafka before the kill", i, id, cp.Skip)
		}
		if prev, ok := lastRow[string(r.Key)]; ok && prev > i {
			t.Errorf("key %s: row %d arrived after row %d", r.Key, i, prev)
		}
		lastRow[string(r.Key)] = i
	}
	missing := 0
	for i, id := range ids {
		if count[id] == 0 {
			if missing++; missing <= 10 {
				t.Errorf("row %d (%s) never arrived", i, id)
			}
		}
	}
	if missing > 0 {
		t.Fatalf("%d of %d rows never arrived", missing, len(ids))
	}
	return sentBefore, dups
}

// deliverBigTxn waits until topics hold every row of ids, reads tailbox's
// peak RSS (KiB), stops it (exit 0) and returns what the topics hold.
func deliverBigTxn(t *testing.T, e *env, p *proc, topics, ids []string) ([]*kgo.Record, int64) {
	t.Helper()
	want := map[string]bool{}
	for _, id := range ids {
		want[id] = true
	}
	waitDelivered(t, e.kafka, topics, want, 3*time.Minute, p)
	rss := peakRSS(t, p.cmd.Process.Pid)
	if code := p.stop(t); code != 0 {
		t.Fatalf("tailbox exit code %d:\n%s", code, logTail(p.stderr.String()))
	}
	return e.kafka.ConsumeAll(t, topics, 2*time.Second), rss
}
