package binlog_test

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/rs/zerolog"

	"github.com/tailbox-cdc/tailbox/internal/testenv"
	"github.com/tailbox-cdc/tailbox/pkg/binlog"
)

// openBuffered opens a reader of dbn.outbox whose transaction buffer holds
// about txnBuffer bytes of rows (0: the default).
func openBuffered(t *testing.T, db *testenv.MySQLServer, dbn string, serverID uint32, txnBuffer int) *binlog.Reader {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	r, err := binlog.Open(ctx, binlog.Config{
		Addr: db.Addr, User: db.User, Password: db.Password, ServerID: serverID,
		Tables: []string{dbn + ".outbox"}, Heartbeat: time.Second, ReconnectBackoff: 50 * time.Millisecond,
		TxnBuffer: txnBuffer,
	}, zerolog.New(zerolog.NewTestWriter(t)), nil)
	if err != nil {
		t.Fatalf("open reader: %v", err)
	}
	t.Cleanup(func() { r.Close() })
	return r
}

// session runs statements on one connection (a transaction's statements
// must share it), failing t on the first error.
func session(t *testing.T, db *testenv.MySQLServer, stmts ...string) {
	t.Helper()
	c := db.Conn(t)
	for _, s := range stmts {
		if _, err := c.Execute(s); err != nil {
			t.Fatalf("%s: %v", s, err)
		}
	}
}

// untilID reads changes until the one whose id column is last, and the
// marker after it; it returns the ids and row indexes read.
func untilID(t *testing.T, r *binlog.Reader, last string) (ids []string, indexes []int) {
	t.Helper()
	ids, indexes, _ = untilIDTxn(t, r, last)
	return ids, indexes
}

// untilIDTxn is untilID that also returns the first change's transaction.
func untilIDTxn(t *testing.T, r *binlog.Reader, last string) (ids []string, indexes []int, first *binlog.Txn) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	seen := false
	for {
		it, err := r.Next(ctx)
		if err != nil {
			t.Fatalf("next after %v: %v", ids, err)
		}
		switch it.Kind {
		case binlog.ItemChange:
			id, _ := it.Change.Row[0].(string)
			ids = append(ids, id)
			indexes = append(indexes, it.Change.Index)
			if first == nil {
				first = it.Change.Txn
			}
			seen = seen || id == last
		case binlog.ItemMarker:
			if seen {
				return ids, indexes, first
			}
		}
	}
}

func newGroupFixture(t *testing.T, serverID uint32, txnBuffer int) (*testenv.MySQLServer, string, *binlog.Reader) {
	t.Helper()
	db := testenv.MySQL(t)
	dbn := db.CreateDatabase(t, "group")
	db.Exec(t, fmt.Sprintf(testenv.OutboxDDL, dbn))
	db.Exec(t, fmt.Sprintf("CREATE TABLE %s.mi (a INT) ENGINE=MyISAM", dbn))
	db.Exec(t, fmt.Sprintf("CREATE TABLE %s.ar (a INT) ENGINE=Aria TRANSACTIONAL=0", dbn))
	r := openBuffered(t, db, dbn, serverID, txnBuffer)
	ctx := context.Background()
	start, err := r.Inspector().Latest(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if err := r.Start(ctx, start, 0, ""); err != nil {
		t.Fatal(err)
	}
	return db, dbn, r
}

func ins(dbn, id string) string {
	return fmt.Sprintf("INSERT INTO %s.outbox (id, aggregatetype, aggregateid, type, payload) VALUES ('%s','member','1','T','{}')", dbn, id)
}

// TestReaderHandsOutOnlyCommittedRows plays what ORMs and mixed-engine
// applications send; each case's binlog group holds rows that never
// committed. The outbox table is the truth: what it holds afterwards is
// what the reader must hand out.
func TestReaderHandsOutOnlyCommittedRows(t *testing.T) {
	db, dbn, r := newGroupFixture(t, 4301, 0)
	mi := func(v int) string { return fmt.Sprintf("INSERT INTO %s.mi VALUES (%d)", dbn, v) }
	ar := func(v int) string { return fmt.Sprintf("INSERT INTO %s.ar VALUES (%d)", dbn, v) }
	// Each case is one session's statements.
	cases := [][]string{
		// A temporary table makes the group be written, ending in ROLLBACK.
		{"START TRANSACTION", "CREATE TEMPORARY TABLE " + dbn + ".tmp_g (a INT)", ins(dbn, "ghost-1"), "ROLLBACK", "DROP TEMPORARY TABLE IF EXISTS " + dbn + ".tmp_g"},
		// So does a MyISAM write, and a non-transactional Aria write.
		{"START TRANSACTION", ins(dbn, "ghost-2"), mi(1), "ROLLBACK"},
		{"START TRANSACTION", ins(dbn, "ghost-3"), ar(1), "ROLLBACK"},
		// ROLLBACK TO a savepoint with a MyISAM write after it: the
		// group holds b2 and a ROLLBACK TO event.
		{"START TRANSACTION", ins(dbn, "b1"), "SAVEPOINT sp1", ins(dbn, "b2"), mi(2), "ROLLBACK TO SAVEPOINT sp1", ins(dbn, "b3"), "COMMIT"},
		// Without a non-transactional write the server cuts b2 out itself.
		{"START TRANSACTION", ins(dbn, "c1"), "SAVEPOINT sp1", ins(dbn, "c2"), "ROLLBACK TO sp1", ins(dbn, "c3"), "COMMIT"},
		// Nested savepoints, rolled back inner first, then outer.
		{"START TRANSACTION", ins(dbn, "d1"), "SAVEPOINT a", ins(dbn, "d2"), "SAVEPOINT b", ins(dbn, "d3"), mi(3),
			"ROLLBACK TO b", ins(dbn, "d4"), "ROLLBACK WORK TO SAVEPOINT a", ins(dbn, "d5"), mi(4), "COMMIT"},
		// A released savepoint, a reused name (the later one counts) and a
		// name that needs quoting.
		{"START TRANSACTION", ins(dbn, "e1"), "SAVEPOINT `my sp`", ins(dbn, "e2"), "SAVEPOINT x", ins(dbn, "e3"), mi(5),
			"RELEASE SAVEPOINT x", "SAVEPOINT `my sp`", ins(dbn, "e4"), mi(6), "ROLLBACK TO `my sp`", ins(dbn, "e5"), "COMMIT"},
		{"START TRANSACTION", ins(dbn, "f1"), "SAVEPOINT `x``y`", ins(dbn, "f2"), mi(7), "ROLLBACK TO `x``y`", "COMMIT"},
		// A savepoint set before anything was written: the server ends the
		// written part with ROLLBACK and writes the rest as a new group.
		{"START TRANSACTION", "SAVEPOINT a", mi(8), ins(dbn, "g1"), "ROLLBACK TO a", ins(dbn, "g2"), "COMMIT"},
		// A transaction rolled back after a savepoint rollback.
		{"START TRANSACTION", ins(dbn, "h1"), "SAVEPOINT a", ins(dbn, "h2"), mi(9), "ROLLBACK TO a", ins(dbn, "h3"), "ROLLBACK"},
		{"START TRANSACTION", ins(dbn, "sentinel"), "COMMIT"},
	}
	for _, c := range cases {
		session(t, db, c...)
	}
	ids, _ := untilID(t, r, "sentinel")

	var stored []string
	res := db.Exec(t, fmt.Sprintf("SELECT id FROM %s.outbox ORDER BY created_at, id", dbn))
	for i := range res.Values {
		s, _ := res.GetString(i, 0)
		stored = append(stored, s)
	}
	want := []string{"b1", "b3", "c1", "c3", "d1", "d5", "e1", "e2", "e3", "e5", "f1", "g2", "sentinel"}
	if !slices.Equal(ids, want) {
		t.Errorf("reader handed out %v, want %v", ids, want)
	}
	slices.Sort(stored)
	sortedWant := slices.Clone(want)
	slices.Sort(sortedWant)
	if !slices.Equal(stored, sortedWant) {
		t.Errorf("the outbox table holds %v; the test's expectation %v is wrong", stored, sortedWant)
	}
}

// TestReaderRereadsTransactionsLargerThanItsBuffer uses a buffer of a few
// rows, so that each big group is read to its end without holding its rows:
// a rolled-back one hands out nothing, a committed one is read again and
// handed out whole, but for what a savepoint rollback discarded; the row
// indexes stay those of the group (what a checkpoint's skip counts).
func TestReaderRereadsTransactionsLargerThanItsBuffer(t *testing.T) {
	db, dbn, r := newGroupFixture(t, 4302, 2048)
	mi := fmt.Sprintf("INSERT INTO %s.mi VALUES (1)", dbn)
	big := func(prefix string, from, n int) []string {
		var s []string
		for i := from; i < from+n; i++ {
			s = append(s, ins(dbn, fmt.Sprintf("%s%03d", prefix, i)))
		}
		return s
	}
	// Rolled back, larger than the buffer.
	session(t, db, slices.Concat([]string{"START TRANSACTION"}, big("gone", 0, 60), []string{mi, "ROLLBACK"})...)
	// Committed, larger than the buffer, with rows 20-39 rolled back to a
	// savepoint.
	session(t, db, slices.Concat([]string{"START TRANSACTION"}, big("k", 0, 20), []string{"SAVEPOINT s"}, big("k", 20, 20),
		[]string{mi, "ROLLBACK TO s"}, big("k", 40, 20), []string{"COMMIT"})...)
	// A small group after it streams as usual.
	session(t, db, "START TRANSACTION", ins(dbn, "sentinel"), "COMMIT")

	ids, indexes := untilID(t, r, "sentinel")
	var want []string
	var wantIdx []int
	for i := 0; i < 60; i++ {
		if i < 20 || i >= 40 {
			want = append(want, fmt.Sprintf("k%03d", i))
			wantIdx = append(wantIdx, i)
		}
	}
	want = append(want, "sentinel")
	wantIdx = append(wantIdx, 0)
	if !slices.Equal(ids, want) {
		t.Fatalf("handed out %v, want %v", ids, want)
	}
	if !slices.Equal(indexes, wantIdx) {
		t.Errorf("row indexes %v, want %v", indexes, wantIdx)
	}
}

// TestReaderResumesInsideABigGroupWithASavepoint starts, as a checkpoint
// would, inside a committed group larger than the buffer with 30 rows
// already settled: the rest comes once, without what ROLLBACK TO discarded.
func TestReaderResumesInsideABigGroupWithASavepoint(t *testing.T) {
	db, dbn, r := newGroupFixture(t, 4303, 2048)
	ctx := context.Background()
	mi := fmt.Sprintf("INSERT INTO %s.mi VALUES (1)", dbn)
	var stmts []string
	stmts = append(stmts, "START TRANSACTION")
	for i := 0; i < 50; i++ {
		if i == 25 {
			stmts = append(stmts, "SAVEPOINT s")
		}
		stmts = append(stmts, ins(dbn, fmt.Sprintf("k%03d", i)))
		if i == 34 {
			stmts = append(stmts, mi, "ROLLBACK TO s") // discards 25-34
		}
	}
	session(t, db, append(stmts, "COMMIT")...)
	session(t, db, "START TRANSACTION", ins(dbn, "sentinel"), "COMMIT")
	all, _, txn := untilIDTxn(t, r, "sentinel")
	if len(all) != 41 {
		t.Fatalf("first read handed out %d rows, want 40 and the sentinel: %v", len(all), all)
	}
	for _, skip := range []int{30, 36} {
		r2 := openBuffered(t, db, dbn, 4304+uint32(skip), 2048)
		if err := r2.Start(ctx, txn.Begin, skip, txn.GTID); err != nil {
			t.Fatal(err)
		}
		ids, _ := untilID(t, r2, "sentinel")
		var want []string
		for i := skip; i < 50; i++ {
			if i >= 25 && i < 35 {
				continue
			}
			want = append(want, fmt.Sprintf("k%03d", i))
		}
		want = append(want, "sentinel")
		if !slices.Equal(ids, want) {
			t.Errorf("resumed with skip %d: handed out %v, want %v", skip, ids, want)
		}
	}
}

// TestReaderReconnectsInsideABigGroup loses the replication connection in
// the middle of a committed group larger than the buffer, once in the first
// pass (nothing handed out yet: it is read again whole) and once in the
// re-read (what was handed out is passed over): every row the transaction
// kept comes once, in order, and none that ROLLBACK TO discarded.
func TestReaderReconnectsInsideABigGroup(t *testing.T) {
	const rows = 3000
	for _, tc := range []struct {
		name       string
		onCrossing int32 // the first stream to pass the limit is the first pass, the second the re-read
	}{
		{name: "the connection is lost in the first pass", onCrossing: 1},
		{name: "the connection is lost in the re-read", onCrossing: 2},
	} {
		t.Run(tc.name, func(t *testing.T) {
			db := testenv.MySQL(t)
			dbn := db.CreateDatabase(t, "group")
			db.Exec(t, fmt.Sprintf(testenv.OutboxDDL, dbn))
			db.Exec(t, fmt.Sprintf("CREATE TABLE %s.mi (a INT) ENGINE=MyISAM", dbn))
			meta := openBuffered(t, db, dbn, 4320+uint32(tc.onCrossing), 0)
			ctx := context.Background()
			start, err := meta.Inspector().Latest(ctx)
			if err != nil {
				t.Fatal(err)
			}
			c := db.Conn(t)
			exec := func(q string) {
				if _, err := c.Execute(q); err != nil {
					t.Fatalf("%.80s: %v", q, err)
				}
			}
			batch := func(from, to int) {
				var b strings.Builder
				fmt.Fprintf(&b, "INSERT INTO %s.outbox (id, aggregatetype, aggregateid, type, payload) VALUES ", dbn)
				for j := from; j < to; j++ {
					if j > from {
						b.WriteByte(',')
					}
					fmt.Fprintf(&b, `('r%06d','member','%d','T','{"p":"%s"}')`, j, j%7, strings.Repeat("p", 80))
				}
				exec(b.String())
			}
			exec("START TRANSACTION")
			batch(0, 1000)
			exec("SAVEPOINT s")
			batch(1000, 2000)
			exec(fmt.Sprintf("INSERT INTO %s.mi VALUES (1)", dbn))
			exec("ROLLBACK TO s")
			batch(2000, rows)
			exec("COMMIT")
			// Other tests share the server: start at this group, and cut
			// inside it.
			begin, _, end := ownGroup(t, db, c, start)

			px := startCutProxy(t, db.Addr, int64(end-begin.Pos)*2/3)
			px.onCrossing = tc.onCrossing
			r, err := binlog.Open(ctx, binlog.Config{
				Addr: px.ln.Addr().String(), User: db.User, Password: db.Password, ServerID: 4330 + uint32(tc.onCrossing),
				Tables: []string{dbn + ".outbox"}, Heartbeat: time.Second, ReconnectBackoff: 50 * time.Millisecond,
				TxnBuffer: 64 << 10,
			}, zerolog.New(zerolog.NewTestWriter(t)), nil)
			if err != nil {
				t.Fatalf("open reader: %v", err)
			}
			t.Cleanup(func() { r.Close() })
			if err := r.Start(ctx, begin, 0, ""); err != nil {
				t.Fatal(err)
			}
			ids, _ := untilID(t, r, fmt.Sprintf("r%06d", rows-1))
			if !px.cut.Load() {
				t.Fatalf("the proxy never cut the connection (%d accepted): the test did not exercise a reconnect", px.accepted.Load())
			}
			var want []string
			for i := 0; i < rows; i++ {
				if i < 1000 || i >= 2000 {
					want = append(want, fmt.Sprintf("r%06d", i))
				}
			}
			if !slices.Equal(ids, want) {
				t.Fatalf("handed out %d rows (first %v), want %d rows r000000..r000999, r002000..r%06d once each", len(ids), ids[:min(5, len(ids))], len(want), rows-1)
			}
		})
	}
}
