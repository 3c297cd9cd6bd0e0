package e2e

import (
	"context"
	"errors"
	"fmt"
	"math"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/go-mysql-org/go-mysql/client"
	"github.com/go-mysql-org/go-mysql/mysql"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/tailbox-cdc/tailbox/internal/testenv"
)

// The tests of this file prove that an event exists exactly when its row's
// transaction committed, in the binlog shapes where MariaDB writes rows that
// do not commit: a group ended by a ROLLBACK query (a transaction that
// touched a temporary table), rows followed by a ROLLBACK TO query (a
// savepoint rolled back after a non-transactional write), and a group cut
// off by a server crash. Each test ends with a committed sentinel group and
// reads Kafka only once the connector's checkpoint covers it: every event
// read before the sentinel is then acknowledged, so "no such event" is
// proven without waiting for one that might still come.

// ev is one event a test expects: its id and its aggregate id (record key).
type ev struct{ id, key string }

// session runs stmts in order on a new connection and returns the session's
// @@last_gtid afterwards: the GTID of the last group the session wrote, ""
// when it wrote none.
func (e *env) session(stmts ...string) string {
	e.t.Helper()
	c := e.db.Conn(e.t)
	defer c.Close()
	return execAll(e.t, c, stmts...)
}

// execAll runs stmts on c and returns c's @@last_gtid afterwards.
func execAll(t *testing.T, c *client.Conn, stmts ...string) string {
	t.Helper()
	for _, s := range stmts {
		if _, err := c.Execute(s); err != nil {
			t.Fatalf("%.200s: %v", s, err)
		}
	}
	r, err := c.Execute("SELECT @@last_gtid")
	if err != nil {
		t.Fatalf("read @@last_gtid: %v", err)
	}
	g, _ := r.GetString(0, 0)
	return g
}

// insertOutbox returns the INSERT of one outbox row with aggregate type agg.
func (e *env) insertOutbox(agg string, x ev) string {
	return e.outboxInsert(x.id, agg, x.key, "Phantom", fmt.Sprintf(`{"id":"%s"}`, x.id))
}

// commitSentinels commits one event of aggregate type agg for each key and
// returns them and the GTID of their group.
func (e *env) commitSentinels(agg string, keys ...string) ([]ev, string) {
	e.t.Helper()
	stmts := []string{"START TRANSACTION"}
	var evs []ev
	for _, k := range keys {
		x := ev{fmt.Sprintf("%s-sentinel-%s", agg, k), k}
		evs = append(evs, x)
		stmts = append(stmts, e.insertOutbox(agg, x))
	}
	g := e.session(append(stmts, "COMMIT")...)
	if g == "" {
		e.t.Fatalf("the sentinel transaction of %s wrote no binlog group", agg)
	}
	return evs, g
}

// settle waits until tailbox p has published the sentinels and its
// checkpoint covers their group gtid — every event read before is then
// acknowledged — and returns every record of topic. When tailbox exits or
// the timeout passes first, it marks t failed and returns what topic holds,
// for the caller's checks to say what arrived.
func (e *env) settle(p *proc, topic string, sentinels []ev, gtid string, timeout time.Duration) []*kgo.Record {
	e.t.Helper()
	cl, err := kgo.NewClient(kgo.SeedBrokers(e.kafka.Addrs...), kgo.ConsumeTopics(topic),
		kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()), kgo.FetchMaxWait(100*time.Millisecond),
		kgo.MetadataMinAge(50*time.Millisecond), kgo.MetadataMaxAge(time.Second))
	if err != nil {
		e.t.Fatalf("kafka client: %v", err)
	}
	defer cl.Close()
	want := map[string]bool{}
	for _, s := range sentinels {
		want[s.id] = true
	}
	deadline := time.Now().Add(timeout)
	stopped := func(what string) bool {
		select {
		case <-p.done:
			e.t.Errorf("tailbox exited (%v) before %s:\n%s", p.err, what, logTail(p.stderr.String()))
			return true
		default:
		}
		if time.Now().After(deadline) {
			e.t.Errorf("tailbox did not get to %s within %v:\n%s", what, timeout, logTail(p.stderr.String()))
			return true
		}
		return false
	}
	for seen := 0; seen < len(want); {
		if stopped(fmt.Sprintf("publishing the sentinels of group %s", gtid)) {
			return consumeTo(e.t, e.kafka, topic, endOffsets(e.t, e.kafka, topic))
		}
		ctx, cancel := context.WithTimeout(context.Background(), 500*time.Millisecond)
		fs := cl.PollFetches(ctx)
		cancel()
		for _, r := range fs.Records() {
			if id, _ := header(r, "id"); want[id] {
				want[id] = false
				seen++
			}
		}
	}
	for {
		if covered(e.t, readCheckpoint(e.t, e.checkpointPath()), gtid, math.MaxInt) {
			break
		}
		if stopped(fmt.Sprintf("a checkpoint covering the sentinel group %s (last %+v)", gtid, readCheckpoint(e.t, e.checkpointPath()))) {
			break
		}
		time.Sleep(20 * time.Millisecond)
	}
	return consumeTo(e.t, e.kafka, topic, endOffsets(e.t, e.kafka, topic))
}

// consumeTo reads topic from its start up to the offsets end and returns
// the records.
func consumeTo(t *testing.T, k *testenv.KafkaCluster, topic string, end map[int32]int64) []*kgo.Record {
	t.Helper()
	cl, err := kgo.NewClient(kgo.SeedBrokers(k.Addrs...), kgo.ConsumeTopics(topic),
		kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()), kgo.FetchMaxWait(100*time.Millisecond))
	if err != nil {
		t.Fatalf("kafka client: %v", err)
	}
	defer cl.Close()
	next := map[int32]int64{}
	done := func() bool {
		for p, o := range end {
			if next[p] < o {
				return false
			}
		}
		return true
	}
	var recs []*kgo.Record
	deadline := time.Now().Add(time.Minute)
	for !done() {
		ctx, cancel := context.WithTimeout(context.Background(), time.Second)
		fs := cl.PollFetches(ctx)
		cancel()
		for _, r := range fs.Records() {
			recs = append(recs, r)
			next[r.Partition] = r.Offset + 1
		}
		if time.Now().After(deadline) {
			t.Fatalf("consume %s up to %v: got to %v within a minute", topic, end, next)
		}
	}
	return recs
}

// checkExactly checks that recs hold every event of want exactly once, with
// its key, each key's events in want's order, and nothing else. discarded
// says why an id must not appear, for the message.
func checkExactly(t *testing.T, recs []*kgo.Record, want []ev, discarded map[string]string) {
	t.Helper()
	checkEvents(t, recs, want, discarded, false)
}

// checkAtLeastOnce is checkExactly with the at-least-once allowance: an
// event may arrive more than once, and only first arrivals are checked for
// order.
func checkAtLeastOnce(t *testing.T, recs []*kgo.Record, want []ev, discarded map[string]string) (dups int) {
	t.Helper()
	return checkEvents(t, recs, want, discarded, true)
}

func checkEvents(t *testing.T, recs []*kgo.Record, want []ev, discarded map[string]string, dupsAllowed bool) (dups int) {
	t.Helper()
	keyOf := make(map[string]string, len(want))
	wantByKey := map[string][]string{}
	for _, w := range want {
		keyOf[w.id] = w.key
		wantByKey[w.key] = append(wantByKey[w.key], w.id)
	}
	bad := 0
	report := func(format string, args ...any) {
		if bad++; bad <= 10 {
			t.Errorf(format, args...)
		}
	}
	count := map[string]int{}
	gotByKey := map[string][]string{}
	phantoms := 0
	for _, r := range recs {
		id, _ := header(r, "id")
		count[id]++
		if why, ok := discarded[id]; ok {
			phantoms++
			report("phantom event %s arrived (%s[%d]@%d), but %s", id, r.Topic, r.Partition, r.Offset, why)
			continue
		}
		key, ok := keyOf[id]
		if !ok {
			report("unexpected event %s arrived (%s[%d]@%d, key %q)", id, r.Topic, r.Partition, r.Offset, r.Key)
			continue
		}
		if string(r.Key) != key {
			report("event %s arrived with key %q, want %q", id, r.Key, key)
		}
		if count[id] > 1 {
			dups++
			if !dupsAllowed {
				report("event %s arrived %d times", id, count[id])
			}
			continue
		}
		gotByKey[key] = append(gotByKey[key], id)
	}
	missing := 0
	for _, w := range want {
		if count[w.id] == 0 {
			missing++
		}
	}
	keys := make([]string, 0, len(wantByKey))
	for k := range wantByKey {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	for _, k := range keys {
		if g, w := gotByKey[k], wantByKey[k]; !slices.Equal(g, w) {
			report("key %s: the events arrived as\n  %s\nwant\n  %s", k, abbrev(g), abbrev(w))
		}
	}
	if bad > 0 {
		t.Errorf("%d problems: %d records, %d phantom events (rows that did not commit), %d of %d expected events missing, %d duplicates",
			bad, len(recs), phantoms, missing, len(want), dups)
	}
	return dups
}

// abbrev prints ids, shortened in the middle when there are many.
func abbrev(ids []string) string {
	if len(ids) <= 12 {
		return fmt.Sprint(ids)
	}
	return fmt.Sprintf("%v ... (%d more) ... %v", ids[:6], len(ids)-12, ids[len(ids)-6:])
}

// discard maps each id of evs to why it must not be published.
func discard(why string, evs ...ev) map[string]string {
	m := map[string]string{}
	for _, x := range evs {
		m[x.id] = why
	}
	return m
}

// binlogMark is a binlog position to read events from.
type binlogMark struct {
	file string
	pos  uint64
}

func markOf(t *testing.T, db *testenv.MySQLServer) binlogMark {
	t.Helper()
	f, p := binlogEnd(t, db)
	return binlogMark{f, p}
}

// binlogEvents returns every binlog event from m to the end of the binlog
// (across rotations), each as a short token: "GTID g", "write TABLE" (also
// update/delete) for a row event, the statement of a QUERY event, "XID".
// TABLE loses the prefix "dbn." (the test's own database).
func binlogEvents(t *testing.T, db *testenv.MySQLServer, dbn string, m binlogMark) []string {
	t.Helper()
	var files []string
	r := db.Exec(t, "SHOW BINARY LOGS")
	for i := range r.RowNumber() {
		f, _ := r.GetString(i, 0)
		if f >= m.file {
			files = append(files, f)
		}
	}
	var out []string
	tables := map[string]string{} // table id -> name
	for _, f := range files {
		q := fmt.Sprintf("SHOW BINLOG EVENTS IN '%s'", f)
		if f == m.file {
			q += fmt.Sprintf(" FROM %d", m.pos)
		}
		r := db.Exec(t, q)
		for i := range r.RowNumber() {
			typ, _ := r.GetString(i, 2)
			info, _ := r.GetString(i, 5)
			out = append(out, token(typ, info, dbn, tables)...)
		}
	}
	return out
}

// token returns the token of one row of SHOW BINLOG EVENTS (none for
// events the tests do not look at); tables maps table ids to names.
func token(typ, info, dbn string, tables map[string]string) []string {
	switch {
	case typ == "Gtid":
		fs := strings.Fields(info)
		for j, w := range fs {
			if w == "GTID" && j+1 < len(fs) {
				return []string{"GTID " + fs[j+1]}
			}
		}
	case typ == "Table_map":
		// "table_id: 25 (db.table)"
		id, rest, _ := strings.Cut(strings.TrimPrefix(info, "table_id: "), " ")
		tables[id] = strings.TrimPrefix(strings.Trim(rest, "()"), dbn+".")
	case strings.Contains(typ, "_rows"):
		id, _, _ := strings.Cut(strings.TrimPrefix(info, "table_id: "), " ")
		return []string{strings.ToLower(typ[:strings.Index(typ, "_rows")]) + " " + tables[id]}
	case typ == "Query":
		return []string{info}
	case typ == "Xid":
		return []string{"XID"}
	}
	return nil
}

// group returns the tokens of the binlog group gtid among evs: from its
// GTID event to its end (XID, COMMIT or ROLLBACK), else up to the next
// group or the end of evs.
func group(evs []string, gtid string) []string {
	start := slices.Index(evs, "GTID "+gtid)
	if start < 0 {
		return nil
	}
	for i := start + 1; i < len(evs); i++ {
		switch {
		case evs[i] == "XID" || evs[i] == "COMMIT" || evs[i] == "ROLLBACK":
			return evs[start : i+1]
		case strings.HasPrefix(evs[i], "GTID "):
			return evs[start:i]
		}
	}
	return evs[start:]
}

// checkGroup fails t unless the binlog group gtid written since m is want
// (tokens of binlogEvents, without its GTID event): what the server really
// writes is the premise of the test.
func (e *env) checkGroup(m binlogMark, gtid string, want ...string) {
	e.t.Helper()
	got := group(binlogEvents(e.t, e.db, e.dbn, m), gtid)
	if len(got) == 0 || !slices.Equal(got[1:], want) {
		e.t.Fatalf("binlog group %s is\n  %q\nwant\n  %q\n(the server no longer writes what this test is about)", gtid, got, want)
	}
}

// TestNoPhantomEvents runs the small cases against one connector on the
// shared server: each case commits or rolls back its transactions, then a
// sentinel, and checks exactly which events of its topic Kafka holds.
func TestNoPhantomEvents(t *testing.T) {
	e := newEnv(t, "envelope")
	outbox := "outbox"
	for _, ddl := range []string{
		"CREATE TABLE %s.audit_myisam (a INT) ENGINE=MyISAM",
		"CREATE TABLE %s.audit_aria (a INT) ENGINE=Aria TRANSACTIONAL=1",
		"CREATE TABLE %s.audit_aria0 (a INT) ENGINE=Aria TRANSACTIONAL=0",
	} {
		e.db.Exec(t, fmt.Sprintf(ddl, e.dbn))
	}
	myisam := fmt.Sprintf("INSERT INTO %s.audit_myisam VALUES (1)", e.dbn)
	p := e.start()
	// run runs one case: agg is its aggregate type (topic
	// outbox.event.<agg>), keys its aggregates.
	run := func(t *testing.T, agg string, keys []string, body func(t *testing.T, e *env) (want []ev, discarded map[string]string)) {
		ce := *e
		ce.t = t
		want, discarded := body(t, &ce)
		sentinels, g := ce.commitSentinels(agg, keys...)
		recs := ce.settle(p, "outbox.event."+agg, sentinels, g, 30*time.Second)
		checkExactly(t, recs, append(want, sentinels...), discarded)
	}

	t.Run("a rolled-back transaction that created a temporary table publishes nothing", func(t *testing.T) {
		run(t, "tmp", []string{"t1"}, func(t *testing.T, e *env) ([]ev, map[string]string) {
			ghost, kept := ev{"tmp-ghost-1", "t1"}, ev{"tmp-kept-1", "t1"}
			m := markOf(t, e.db)
			g := e.session("START TRANSACTION",
				fmt.Sprintf("CREATE TEMPORARY TABLE %s.scratch (a INT)", e.dbn),
				e.insertOutbox("tmp", ghost),
				fmt.Sprintf("INSERT INTO %s.scratch VALUES (1)", e.dbn),
				"ROLLBACK")
			e.checkGroup(m, g, "write "+outbox, "ROLLBACK")
			// The same transaction committed is published.
			e.session("START TRANSACTION",
				fmt.Sprintf("CREATE TEMPORARY TABLE %s.scratch (a INT)", e.dbn),
				e.insertOutbox("tmp", kept),
				"COMMIT")
			return []ev{kept}, discard("its transaction rolled back (a group ended by a ROLLBACK query)", ghost)
		})
	})

	// In ROW format MariaDB writes a MyISAM or Aria row at once, in a group
	// of its own ended by COMMIT, and drops the transactional rows of a
	// transaction that rolls back: the outbox row never reaches the binlog.
	// With a temporary table as well the transactional rows are written,
	// in a group ended by ROLLBACK.
	for _, c := range []struct{ name, table, agg string }{
		{"MyISAM", "audit_myisam", "myisam"},
		{"Aria (TRANSACTIONAL=1)", "audit_aria", "aria"},
		{"Aria (TRANSACTIONAL=0)", "audit_aria0", "aria0"},
	} {
		t.Run("a rolled-back transaction that wrote a "+c.name+" table publishes nothing", func(t *testing.T) {
			run(t, c.agg, []string{"n1"}, func(t *testing.T, e *env) ([]ev, map[string]string) {
				ghost := ev{c.agg + "-ghost-1", "n1"}
				m := markOf(t, e.db)
				g := e.session("START TRANSACTION",
					e.insertOutbox(c.agg, ghost),
					fmt.Sprintf("INSERT INTO %s.%s VALUES (1)", e.dbn, c.table),
					"ROLLBACK")
				evs := binlogEvents(t, e.db, e.dbn, m)
				if got, want := group(evs, g), []string{"GTID " + g, "write " + c.table, "COMMIT"}; !slices.Equal(got, want) {
					t.Fatalf("the %s write went to the binlog as\n  %q\nwant its own committed group\n  %q", c.name, got, want)
				}
				if slices.Contains(evs, "write "+outbox) {
					t.Fatalf("the rolled-back outbox row is in the binlog: %q", evs)
				}
				return nil, discard("its transaction rolled back", ghost)
			})
		})
		t.Run("a rolled-back transaction that wrote a "+c.name+" table and a temporary table publishes nothing", func(t *testing.T) {
			run(t, c.agg+"tmp", []string{"n1"}, func(t *testing.T, e *env) ([]ev, map[string]string) {
				ghost := ev{c.agg + "tmp-ghost-1", "n1"}
				m := markOf(t, e.db)
				g := e.session("START TRANSACTION",
					fmt.Sprintf("CREATE TEMPORARY TABLE %s.scratch (a INT)", e.dbn),
					e.insertOutbox(c.agg+"tmp", ghost),
					fmt.Sprintf("INSERT INTO %s.%s VALUES (2)", e.dbn, c.table),
					"ROLLBACK")
				e.checkGroup(m, g, "write "+outbox, "ROLLBACK")
				return nil, discard("its transaction rolled back (a group ended by a ROLLBACK query)", ghost)
			})
		})
	}

	t.Run("rows rolled back to a savepoint after a MyISAM write are not published", func(t *testing.T) {
		run(t, "sp", []string{"s1"}, func(t *testing.T, e *env) ([]ev, map[string]string) {
			b1, b2, b3 := ev{"sp-b1", "s1"}, ev{"sp-b2", "s1"}, ev{"sp-b3", "s1"}
			m := markOf(t, e.db)
			g := e.session("START TRANSACTION", e.insertOutbox("sp", b1), "SAVEPOINT sp1",
				e.insertOutbox("sp", b2), myisam, "ROLLBACK TO SAVEPOINT sp1",
				e.insertOutbox("sp", b3), "COMMIT")
			e.checkGroup(m, g, "write "+outbox, "SAVEPOINT `sp1`", "write "+outbox, "ROLLBACK TO `sp1`", "write "+outbox, "XID")
			return []ev{b1, b3}, discard("ROLLBACK TO SAVEPOINT sp1 discarded it", b2)
		})
	})

	t.Run("rows rolled back to a savepoint in a transaction with a temporary table are not published", func(t *testing.T) {
		run(t, "sptmp", []string{"s1"}, func(t *testing.T, e *env) ([]ev, map[string]string) {
			b1, b2, b3 := ev{"sptmp-b1", "s1"}, ev{"sptmp-b2", "s1"}, ev{"sptmp-b3", "s1"}
			m := markOf(t, e.db)
			g := e.session("START TRANSACTION", fmt.Sprintf("CREATE TEMPORARY TABLE %s.scratch (a INT)", e.dbn),
				e.insertOutbox("sptmp", b1), "SAVEPOINT sp1", e.insertOutbox("sptmp", b2), "ROLLBACK TO SAVEPOINT sp1",
				e.insertOutbox("sptmp", b3), "COMMIT")
			e.checkGroup(m, g, "write "+outbox, "SAVEPOINT `sp1`", "write "+outbox, "ROLLBACK TO `sp1`", "write "+outbox, "XID")
			return []ev{b1, b3}, discard("ROLLBACK TO SAVEPOINT sp1 discarded it", b2)
		})
	})

	t.Run("rows rolled back to a savepoint of a transactional-only transaction are not published", func(t *testing.T) {
		run(t, "sptx", []string{"s1"}, func(t *testing.T, e *env) ([]ev, map[string]string) {
			b1, b2, b3 := ev{"sptx-b1", "s1"}, ev{"sptx-b2", "s1"}, ev{"sptx-b3", "s1"}
			m := markOf(t, e.db)
			g := e.session("START TRANSACTION", e.insertOutbox("sptx", b1), "SAVEPOINT sp1",
				e.insertOutbox("sptx", b2), "ROLLBACK TO SAVEPOINT sp1",
				e.insertOutbox("sptx", b3), "COMMIT")
			// The server truncates its cache: b2 never reaches the binlog.
			e.checkGroup(m, g, "write "+outbox, "SAVEPOINT `sp1`", "write "+outbox, "XID")
			return []ev{b1, b3}, discard("ROLLBACK TO SAVEPOINT sp1 discarded it", b2)
		})
	})

	t.Run("nested, released, reused, quoted and case-folded savepoints after a MyISAM write", func(t *testing.T) {
		run(t, "nest", []string{"a", "b", "c", "d", "e"}, func(t *testing.T, e *env) ([]ev, map[string]string) {
			in := func(x ev) string { return e.insertOutbox("nest", x) }
			var want []ev
			discarded := map[string]string{}
			keep := func(xs ...ev) { want = append(want, xs...) }
			drop := func(why string, xs ...ev) {
				for _, x := range xs {
					discarded[x.id] = why
				}
			}
			w := "write " + outbox

			// Nested: sp1, sp2, back to sp2, then back to sp1.
			a := []ev{{"nest-a1", "a"}, {"nest-a2", "a"}, {"nest-a3", "a"}, {"nest-a4", "a"}, {"nest-a5", "a"}}
			m := markOf(t, e.db)
			g := e.session("START TRANSACTION", in(a[0]), myisam, "SAVEPOINT sp1", in(a[1]), "SAVEPOINT sp2", in(a[2]),
				"ROLLBACK TO SAVEPOINT sp2", in(a[3]), "ROLLBACK TO SAVEPOINT sp1", in(a[4]), "COMMIT")
			e.checkGroup(m, g, w, "SAVEPOINT `sp1`", w, "SAVEPOINT `sp2`", w, "ROLLBACK TO `sp2`", w, "ROLLBACK TO `sp1`", w, "XID")
			keep(a[0], a[4])
			drop("ROLLBACK TO sp2 discarded it", a[2])
			drop("ROLLBACK TO sp1 discarded it", a[1], a[3])

			// Released, then a new savepoint of the same name: RELEASE is
			// not logged, and the rollback goes to the second SAVEPOINT `s`
			// only (b2 and b3 stay).
			b := []ev{{"nest-b1", "b"}, {"nest-b2", "b"}, {"nest-b3", "b"}, {"nest-b4", "b"}, {"nest-b5", "b"}}
			m = markOf(t, e.db)
			g = e.session("START TRANSACTION", in(b[0]), myisam, "SAVEPOINT s", in(b[1]), "RELEASE SAVEPOINT s", in(b[2]),
				"SAVEPOINT s", in(b[3]), "ROLLBACK TO SAVEPOINT s", in(b[4]), "COMMIT")
			e.checkGroup(m, g, w, "SAVEPOINT `s`", w, w, "SAVEPOINT `s`", w, "ROLLBACK TO `s`", w, "XID")
			keep(b[0], b[1], b[2], b[4])
			drop("ROLLBACK TO s (the second SAVEPOINT s) discarded it", b[3])

			// A reused name: SAVEPOINT a twice, then rolled back to it twice
			// (a savepoint stays after a rollback to it).
			c := []ev{{"nest-c1", "c"}, {"nest-c2", "c"}, {"nest-c3", "c"}, {"nest-c4", "c"}, {"nest-c5", "c"}}
			m = markOf(t, e.db)
			g = e.session("START TRANSACTION", in(c[0]), myisam, "SAVEPOINT a", in(c[1]), "SAVEPOINT a", in(c[2]),
				"ROLLBACK TO a", in(c[3]), "ROLLBACK TO a", in(c[4]), "COMMIT")
			e.checkGroup(m, g, w, "SAVEPOINT `a`", w, "SAVEPOINT `a`", w, "ROLLBACK TO `a`", w, "ROLLBACK TO `a`", w, "XID")
			keep(c[0], c[1], c[4])
			drop("ROLLBACK TO a (the second SAVEPOINT a) discarded it", c[2], c[3])

			// Names that need backquotes (a space, a backquote, non-ASCII),
			// and savepoint names compare case-insensitively.
			d := []ev{{"nest-d1", "d"}, {"nest-d2", "d"}, {"nest-d3", "d"}, {"nest-d4", "d"}, {"nest-d5", "d"}, {"nest-d6", "d"}}
			m = markOf(t, e.db)
			g = e.session("START TRANSACTION", in(d[0]), myisam, "SAVEPOINT `my sp`", in(d[1]), "SAVEPOINT `x``y`", in(d[2]),
				"ROLLBACK TO SAVEPOINT `x``y`", "SAVEPOINT Sp", in(d[3]), "ROLLBACK TO sP", "SAVEPOINT `ü sp`", in(d[4]),
				"ROLLBACK TO `Ü SP`", "ROLLBACK TO SAVEPOINT `my sp`", in(d[5]), "COMMIT")
			e.checkGroup(m, g, w, "SAVEPOINT `my sp`", w, "SAVEPOINT `x``y`", w, "ROLLBACK TO `x``y`",
				"SAVEPOINT `Sp`", w, "ROLLBACK TO `sP`", "SAVEPOINT `ü sp`", w, "ROLLBACK TO `Ü SP`", "ROLLBACK TO `my sp`", w, "XID")
			keep(d[0], d[5])
			drop("ROLLBACK TO `x``y` discarded it", d[2])
			drop("ROLLBACK TO sP (savepoint Sp) discarded it", d[3])
			drop("ROLLBACK TO `Ü SP` (savepoint `ü sp`) discarded it", d[4])
			drop("ROLLBACK TO `my sp` discarded it", d[1])

			// A savepoint taken before anything was written: the server
			// logs no SAVEPOINT event, and the rollback to it ends the
			// group with ROLLBACK; what follows is a group of its own.
			x := []ev{{"nest-e1", "e"}, {"nest-e2", "e"}}
			m = markOf(t, e.db)
			g = e.session("START TRANSACTION", "SAVEPOINT s0", myisam, in(x[0]), "ROLLBACK TO SAVEPOINT s0", in(x[1]), "COMMIT")
			evs := binlogEvents(t, e.db, e.dbn, m)
			gi := slices.Index(evs, "GTID "+g)
			if gi < 2 || !slices.Equal(evs[gi-2:], []string{w, "ROLLBACK", "GTID " + g, w, "XID"}) {
				t.Fatalf("a rollback to a savepoint at the start went to the binlog as\n  %q\nwant a group ended by ROLLBACK, then the rest as its own group", evs)
			}
			keep(x[1])
			drop("ROLLBACK TO s0 (the transaction's start) discarded it", x[0])
			return want, discarded
		})
	})

	stopRunning(t, p)
}

// bigRows is the size of the big transactions: with ~1 KiB payloads about
// 50 MiB of row images, more than a reader holds in memory.
const bigRows = 50_000

// bigPad pads each row of a big transaction to about 1 KiB.
var bigPad = strings.Repeat("p", 1000)

// bigKey is the aggregate id of row i of a big transaction.
func bigKey(i int) string { return fmt.Sprintf("k%02d", i%20) }

// insertBig inserts the outbox rows PREFIX-FROM .. PREFIX-(TO-1) of
// aggregate type agg on c, 500 rows a statement, and returns them in order.
func insertBig(t *testing.T, c *client.Conn, dbn, agg, prefix string, from, to int) []ev {
	t.Helper()
	const perStmt = 500
	rows := make([]ev, 0, to-from)
	for i := from; i < to; i += perStmt {
		var b strings.Builder
		fmt.Fprintf(&b, "INSERT INTO %s.outbox (id, aggregatetype, aggregateid, type, payload) VALUES ", dbn)
		for j := i; j < min(i+perStmt, to); j++ {
			x := ev{fmt.Sprintf("%s-%06d", prefix, j), bigKey(j)}
			rows = append(rows, x)
			if j > i {
				b.WriteByte(',')
			}
			fmt.Fprintf(&b, `('%s','%s','%s','Bulk','{"n":%d,"pad":"%s"}')`, x.id, agg, x.key, j, bigPad)
		}
		if _, err := c.Execute(b.String()); err != nil {
			t.Fatalf("insert rows %s-%06d..: %v", prefix, i, err)
		}
	}
	return rows
}

// countWrites returns how many row events of table the tokens hold.
func countWrites(evs []string, table string) int {
	n := 0
	for _, x := range evs {
		if x == "write "+table {
			n++
		}
	}
	return n
}

// TestNoPhantomEventsFromBigTransactions rolls back and commits a
// transaction of bigRows outbox rows (~50 MiB of row images, more than a
// reader holds in memory), on a private server: the rolled-back one
// publishes nothing, the committed one every row once, in order per key.
func TestNoPhantomEventsFromBigTransactions(t *testing.T) {
	// A private server: these transactions would disturb tests sharing one.
	db := testenv.StartMariaDB(t, "")
	e := newEnvOn(t, db, testenv.Kafka(t), "envelope")
	db.Exec(t, fmt.Sprintf("CREATE TABLE %s.audit_myisam (a INT) ENGINE=MyISAM", e.dbn))
	myisam := fmt.Sprintf("INSERT INTO %s.audit_myisam VALUES (1)", e.dbn)
	p := e.start()
	sub := func(t *testing.T) *env { ce := *e; ce.t = t; return &ce }

	t.Run("a rolled-back big transaction publishes nothing", func(t *testing.T) {
		e := sub(t)
		c := db.Conn(t)
		m := markOf(t, db)
		execAll(t, c, "START TRANSACTION", fmt.Sprintf("CREATE TEMPORARY TABLE %s.scratch (a INT)", e.dbn), myisam)
		rows := insertBig(t, c, e.dbn, "bigrb", "bigrb", 0, bigRows)
		g := execAll(t, c, "ROLLBACK")
		grp := group(binlogEvents(t, db, e.dbn, m), g)
		if len(grp) == 0 || grp[len(grp)-1] != "ROLLBACK" || countWrites(grp, "outbox") == 0 {
			t.Fatalf("binlog group %s (%d events, %d outbox row events) does not hold the rows and end with ROLLBACK: ends with %q",
				g, len(grp), countWrites(grp, "outbox"), grp[max(len(grp)-3, 0):])
		}
		sentinels, sg := e.commitSentinels("bigrb", "k00")
		recs := e.settle(p, "outbox.event.bigrb", sentinels, sg, time.Minute)
		checkExactly(t, recs, sentinels, discard("its transaction rolled back (a group ended by a ROLLBACK query)", rows...))
	})

	t.Run("a committed big transaction publishes every row once, in order", func(t *testing.T) {
		e := sub(t)
		c := db.Conn(t)
		m := markOf(t, db)
		execAll(t, c, "START TRANSACTION", myisam)
		rows := insertBig(t, c, e.dbn, "bigc", "bigc", 0, bigRows)
		g := execAll(t, c, "COMMIT")
		grp := group(binlogEvents(t, db, e.dbn, m), g)
		if len(grp) == 0 || grp[len(grp)-1] != "XID" || countWrites(grp, "outbox") == 0 {
			t.Fatalf("binlog group %s (%d events) does not hold the rows and end with XID: ends with %q", g, len(grp), grp[max(len(grp)-3, 0):])
		}
		sentinels, sg := e.commitSentinels("bigc", "k00")
		recs := e.settle(p, "outbox.event.bigc", sentinels, sg, time.Minute)
		checkExactly(t, recs, append(rows, sentinels...), nil)
	})

	stopRunning(t, p)
}

// TestNoPhantomEventsAfterAConnectorKill kills the connector with SIGKILL
// while it publishes a committed big transaction whose middle was rolled
// back to a savepoint after a MyISAM write, and restarts it: every kept row
// arrives (again, at most, as at-least-once allows), in order per key, and
// no discarded row ever does.
func TestNoPhantomEventsAfterAConnectorKill(t *testing.T) {
	db := testenv.StartMariaDB(t, "")
	e := newEnvOn(t, db, testenv.Kafka(t), "envelope")
	db.Exec(t, fmt.Sprintf("CREATE TABLE %s.audit_myisam (a INT) ENGINE=MyISAM", e.dbn))
	const topic = "outbox.event.killsp"
	// A slow broker (100 ms per produce request), so that publishing the
	// transaction takes long enough to be killed in its middle.
	e.kafka.Cluster.ControlKey(int16(kmsg.Produce), func(kmsg.Request) (kmsg.Response, error, bool) {
		e.kafka.Cluster.KeepControl()
		time.Sleep(100 * time.Millisecond)
		return nil, nil, false
	})
	p := e.start()

	c := db.Conn(t)
	m := markOf(t, db)
	execAll(t, c, "START TRANSACTION")
	kept := insertBig(t, c, e.dbn, "killsp", "killsp", 0, 10_000)
	execAll(t, c, "SAVEPOINT sp", fmt.Sprintf("INSERT INTO %s.audit_myisam VALUES (1)", e.dbn))
	gone := insertBig(t, c, e.dbn, "killsp", "killsp", 10_000, 15_000)
	execAll(t, c, "ROLLBACK TO SAVEPOINT sp")
	kept = append(kept, insertBig(t, c, e.dbn, "killsp", "killsp", 15_000, 25_000)...)
	g := execAll(t, c, "COMMIT")
	grp := group(binlogEvents(t, db, e.dbn, m), g)
	if !slices.Contains(grp, "SAVEPOINT `sp`") || !slices.Contains(grp, "ROLLBACK TO `sp`") || grp[len(grp)-1] != "XID" {
		t.Fatalf("binlog group %s (%d events) does not hold SAVEPOINT `sp`, ROLLBACK TO `sp` and XID", g, len(grp))
	}

	// Kill once some, but less than half, of the kept rows are in Kafka.
	deadline := time.Now().Add(time.Minute)
	for {
		p.mustRun(t)
		n := int64(0)
		for _, o := range endOffsets(t, e.kafka, topic) {
			n += o
		}
		if n > 0 && n < int64(len(kept)/2) {
			p.kill9(t)
			t.Logf("killed tailbox with %d records of the transaction in Kafka", n)
			break
		}
		if n >= int64(len(kept)/2) {
			t.Fatalf("%d records were published before the test saw any: it could not kill tailbox in the middle of the transaction", n)
		}
		if time.Now().After(deadline) {
			t.Fatalf("no record of the transaction was published within a minute:\n%s", logTail(p.stderr.String()))
		}
		time.Sleep(5 * time.Millisecond)
	}
	time.Sleep(100 * time.Millisecond) // a request the dead process had sent may still be appended

	p = e.start()
	sentinels, sg := e.commitSentinels("killsp", "k00")
	recs := e.settle(p, topic, sentinels, sg, 2*time.Minute)
	dups := checkAtLeastOnce(t, recs, append(kept, sentinels...), discard("ROLLBACK TO SAVEPOINT sp discarded it", gone...))
	t.Logf("%d records, %d sent again after the kill", len(recs), dups)
	stopRunning(t, p)
}

// TestNoPhantomEventsAfterAServerCrashMidCommit kills MariaDB with SIGKILL
// while it writes a big transaction to the binlog, so that the binlog holds
// part of the group and no end, and InnoDB rolls the transaction back when
// the server restarts. A connector started afterwards from a checkpoint
// before that group publishes none of its rows.
func TestNoPhantomEventsAfterAServerCrashMidCommit(t *testing.T) {
	db := testenv.StartMariaDB(t, "")
	e := newEnvOn(t, db, testenv.Kafka(t), "envelope")
	const topic = "outbox.event.crash"
	p := e.start()
	want := []ev{{"crash-before-1", "k00"}, {"crash-before-2", "k01"}}
	e.session("START TRANSACTION", e.insertOutbox("crash", want[0]), e.insertOutbox("crash", want[1]), "COMMIT")
	waitDelivered(t, e.kafka, []string{topic}, map[string]bool{want[0].id: true, want[1].id: true}, 30*time.Second, p)
	if code := p.stop(t); code != 0 {
		t.Fatalf("tailbox exit code %d after SIGTERM:\n%s", code, logTail(p.stderr.String()))
	}

	// Committed while the connector is down, so that the checkpoint is
	// before a committed group of the crashed binlog file: the server then
	// streams that file, partial group included, to the next run.
	stopped := ev{"crash-while-stopped", "k02"}
	e.session("START TRANSACTION", e.insertOutbox("crash", stopped), "COMMIT")
	want = append(want, stopped)

	var gone []ev
	for attempt := 1; ; attempt++ {
		rows, committed, why := e.crashMidCommit(fmt.Sprintf("crash%d", attempt))
		if !committed {
			gone = rows
			break
		}
		// The transaction committed: its rows are events like any other.
		want = append(want, rows...)
		if attempt == 3 {
			t.Fatalf("3 attempts to kill MariaDB inside a commit failed; the last: %s", why)
		}
		t.Logf("attempt %d to kill MariaDB inside a commit failed (%s): trying again", attempt, why)
	}

	sentinels, sg := e.commitSentinels("crash", "k00")
	t.Logf("the checkpoint is at %s; the sentinel group is %s", readCheckpoint(t, e.checkpointPath()).Position.GTID, sg)
	p = e.start()
	recs := e.settle(p, topic, sentinels, sg, 2*time.Minute)
	checkExactly(t, recs, append(want, sentinels...), discard("its transaction never committed (MariaDB was killed while writing its group to the binlog)", gone...))
	stopRunning(t, p)
}

// crashMidCommit writes bigRows outbox rows with ids PREFIX-n (aggregate
// type "crash") in one transaction, sends COMMIT and kills MariaDB with
// SIGKILL once the binlog file has grown by a quarter of the transaction,
// then starts the server again. It returns the rows and whether they
// committed after all (the kill came too late; why says so), and fails t
// unless a transaction that did not commit left part of its group, and no
// end, in the binlog.
func (e *env) crashMidCommit(prefix string) (rows []ev, committed bool, why string) {
	t := e.t
	t.Helper()
	file, pos := binlogEnd(t, e.db)
	path := filepath.Join(e.db.Dir, "data", file)
	b, err := os.ReadFile(filepath.Join(e.db.Dir, "mariadbd.pid"))
	if err != nil {
		t.Fatalf("read the pid file of MariaDB: %v", err)
	}
	pid, err := strconv.Atoi(strings.TrimSpace(string(b)))
	if err != nil {
		t.Fatalf("pid file of MariaDB holds %q", b)
	}
	c := e.db.Conn(t)
	execAll(t, c, "START TRANSACTION")
	rows = insertBig(t, c, e.dbn, "crash", prefix, 0, bigRows)
	size0 := fileSize(t, path)
	threshold := size0 + int64(len(rows))*int64(len(bigPad))/4
	done := make(chan error, 1)
	go func() { _, err := c.Execute("COMMIT"); done <- err }()
	deadline := time.Now().Add(time.Minute)
	var grown int64
	for {
		select {
		case err := <-done:
			if err != nil {
				t.Fatalf("COMMIT failed before the kill: %v", err)
			}
			return rows, true, fmt.Sprintf("the COMMIT returned when the binlog file had grown by %d bytes of about %d", fileSize(t, path)-size0, threshold-size0)
		default:
		}
		if grown = fileSize(t, path) - size0; grown >= threshold-size0 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("the binlog file grew by %d bytes within a minute of the COMMIT, want %d", grown, threshold-size0)
		}
	}
	if err := syscall.Kill(pid, syscall.SIGKILL); err != nil {
		t.Fatalf("kill -9 MariaDB (pid %d): %v", pid, err)
	}
	waitGone(t, pid)
	commitErr := <-done
	t.Logf("killed MariaDB when the binlog file had grown by %d bytes (the COMMIT: %v)", grown, commitErr)
	e.db.Start(t)

	n, _ := e.db.Exec(t, fmt.Sprintf("SELECT COUNT(*) FROM %s.outbox WHERE id LIKE '%s-%%'", e.dbn, prefix)).GetInt(0, 0)
	switch {
	case n == int64(len(rows)):
		return rows, true, fmt.Sprintf("the group was complete in the binlog (%d bytes written) and the server committed it on recovery", grown)
	case n != 0:
		t.Fatalf("after the crash the table holds %d of the %d rows of one transaction", n, len(rows))
	}
	evs, end, err := partialBinlog(e.db, e.dbn, file, pos)
	if err != nil {
		t.Fatalf("read the crashed binlog file: %v", err)
	}
	size := fileSize(t, path)
	if len(evs) == 0 || !strings.HasPrefix(evs[0], "GTID ") || countWrites(evs, "outbox") == 0 || slices.Contains(evs, "XID") || slices.Contains(evs, "COMMIT") {
		t.Fatalf("the crashed binlog file %s does not hold a partial group (a GTID event, outbox rows, no end) from %d: %d events, %d outbox row events, starting %q, ending %q",
			file, pos, len(evs), countWrites(evs, "outbox"), evs[:min(len(evs), 3)], evs[max(len(evs)-3, 0):])
	}
	t.Logf("the binlog file %s holds the group %s cut after %d outbox row events (readable to %d; %d bytes of an incomplete event follow), no end; the table holds none of its rows",
		file, strings.TrimPrefix(evs[0], "GTID "), countWrites(evs, "outbox"), end, size-int64(end))
	return rows, false, ""
}

// partialBinlog returns the tokens of binlogEvents for file from pos to the
// last event the server can read, and where that event ends. SHOW BINLOG
// EVENTS fails (error 1220) on a range that reaches an incomplete event, so
// the range is halved down to that event.
func partialBinlog(db *testenv.MySQLServer, dbn, file string, pos uint64) (evs []string, end uint64, err error) {
	c, err := client.Connect(db.Addr, db.User, db.Password, "")
	if err != nil {
		return nil, 0, fmt.Errorf("connect: %w", err)
	}
	defer c.Close()
	tables := map[string]string{}
	for {
		var r *mysql.Result
		for n := 1024; ; n /= 2 {
			r, err = c.Execute(fmt.Sprintf("SHOW BINLOG EVENTS IN '%s' FROM %d LIMIT %d", file, pos, n))
			if err == nil {
				break
			}
			var me *mysql.MyError
			if !errors.As(err, &me) || me.Code != mysql.ER_ERROR_WHEN_EXECUTING_COMMAND {
				return nil, 0, fmt.Errorf("show binlog events in %s from %d: %w", file, pos, err)
			}
			if n == 1 {
				return evs, pos, nil // the event at pos cannot be read
			}
		}
		if r.RowNumber() == 0 {
			return evs, pos, nil
		}
		for i := range r.RowNumber() {
			typ, _ := r.GetString(i, 2)
			info, _ := r.GetString(i, 5)
			evs = append(evs, token(typ, info, dbn, tables)...)
			pos, _ = r.GetUint(i, 4)
		}
	}
}

func fileSize(t *testing.T, path string) int64 {
	t.Helper()
	st, err := os.Stat(path)
	if err != nil {
		t.Fatalf("stat the binlog file: %v", err)
	}
	return st.Size()
}

// waitGone waits until process pid has ended.
func waitGone(t *testing.T, pid int) {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for {
		err := syscall.Kill(pid, 0)
		if errors.Is(err, syscall.ESRCH) {
			return
		}
		if b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid)); err == nil {
			if i := strings.LastIndexByte(string(b), ')'); i >= 0 && i+2 < len(b) && b[i+2] == 'Z' {
				return
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("MariaDB (pid %d) still running 30s after SIGKILL", pid)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// stopRunning stops tailbox p with SIGTERM, which must end it with exit code
// 0, unless it has exited already (settle reported that).
func stopRunning(t *testing.T, p *proc) {
	t.Helper()
	select {
	case <-p.done:
		return
	default:
	}
	if code := p.stop(t); code != 0 {
		t.Errorf("tailbox exit code %d after SIGTERM:\n%s", code, logTail(p.stderr.String()))
	}
}
