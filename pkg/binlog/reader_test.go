package binlog_test

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/rs/zerolog"

	"github.com/tailbox-cdc/tailbox/internal/testenv"
	"github.com/tailbox-cdc/tailbox/pkg/binlog"
)

type fixture struct {
	db  *testenv.MySQLServer
	dbn string
	r   *binlog.Reader
}

func setup(t *testing.T, serverID uint32) *fixture {
	t.Helper()
	db := testenv.MySQL(t)
	dbn := db.CreateDatabase(t, "binlog")
	db.Exec(t, fmt.Sprintf(testenv.OutboxDDL, dbn))
	db.Exec(t, fmt.Sprintf("CREATE TABLE %s.members (id INT PRIMARY KEY, name VARCHAR(50), status VARCHAR(20), secret VARBINARY(16))", dbn))
	return &fixture{db: db, dbn: dbn, r: open(t, db, dbn, serverID)}
}

func open(t *testing.T, db *testenv.MySQLServer, dbn string, serverID uint32) *binlog.Reader {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	r, err := binlog.Open(ctx, binlog.Config{
		Addr: db.Addr, User: db.User, Password: db.Password, ServerID: serverID,
		Tables: []string{dbn + ".outbox"}, Heartbeat: time.Second, ReconnectBackoff: 50 * time.Millisecond,
	}, zerolog.New(zerolog.NewTestWriter(t)), nil)
	if err != nil {
		t.Fatalf("open reader: %v", err)
	}
	t.Cleanup(func() { r.Close() })
	return r
}

// openAtLatest opens a reader with cfg and starts it at the end of the
// binlog; the test's cleanup closes it.
func openAtLatest(ctx context.Context, t *testing.T, cfg binlog.Config, log zerolog.Logger) *binlog.Reader {
	t.Helper()
	r, err := binlog.Open(ctx, cfg, log, nil)
	if err != nil {
		t.Fatalf("open reader: %v", err)
	}
	t.Cleanup(func() { r.Close() })
	start, err := r.Inspector().Latest(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if err := r.Start(ctx, start, 0, ""); err != nil {
		t.Fatal(err)
	}
	return r
}

// collect reads items until it has n changes, then until the marker that
// ends the transaction of the last change.
func collect(t *testing.T, r *binlog.Reader, n int) (changes []binlog.Change, markers []binlog.Position) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	for {
		it, err := r.Next(ctx)
		if err != nil {
			t.Fatalf("next after %d changes: %v", len(changes), err)
		}
		switch it.Kind {
		case binlog.ItemChange:
			changes = append(changes, it.Change)
		case binlog.ItemMarker:
			markers = append(markers, it.Marker)
			if len(changes) >= n {
				return changes, markers
			}
		}
	}
}

func (f *fixture) insert(t *testing.T, id, aggID, typ, payload string) string {
	return fmt.Sprintf("INSERT INTO %s.outbox (id, aggregatetype, aggregateid, type, payload) VALUES ('%s','member','%s','%s','%s')", f.dbn, id, aggID, typ, payload)
}

func (f *fixture) tx(t *testing.T, stmts ...string) {
	t.Helper()
	c := f.db.Conn(t)
	for _, s := range append(append([]string{"BEGIN"}, stmts...), "COMMIT") {
		if _, err := c.Execute(s); err != nil {
			t.Fatalf("%s: %v", s, err)
		}
	}
}

func TestReaderStreamsCapturedRowsWithMarkers(t *testing.T) {
	f := setup(t, 4101)
	ctx := context.Background()
	start, err := f.r.Inspector().Latest(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if start.GTID == "" || start.File == "" {
		t.Fatalf("latest position on MariaDB needs file and GTID, got %s", start)
	}
	if err := f.r.Start(ctx, start, 0, ""); err != nil {
		t.Fatal(err)
	}
	// A transaction on another table only: a marker, no change.
	f.tx(t, fmt.Sprintf("INSERT INTO %s.members VALUES (1,'ann','ACTIVE', x'00ff')", f.dbn))
	// A rolled-back transaction never reaches the binlog.
	c := f.db.Conn(t)
	for _, s := range []string{"BEGIN", f.insert(t, "r1", "9", "Rolled", `{}`), "ROLLBACK"} {
		if _, err := c.Execute(s); err != nil {
			t.Fatal(err)
		}
	}
	// Business row and two outbox rows in one transaction; then insert+delete; then update.
	f.tx(t,
		fmt.Sprintf("UPDATE %s.members SET status='WITHDRAWN' WHERE id=1", f.dbn),
		f.insert(t, "e1", "1", "MemberWithdrawn", `{"memberId":1,"reason":"moved"}`),
		f.insert(t, "e2", "2", "MemberJoined", `{"memberId":2}`),
	)
	f.tx(t, f.insert(t, "e3", "3", "Temp", `{}`), fmt.Sprintf("DELETE FROM %s.outbox WHERE id='e3'", f.dbn))
	f.tx(t, fmt.Sprintf("UPDATE %s.outbox SET type='Changed' WHERE id='e1'", f.dbn))

	changes, markers := collect(t, f.r, 5)
	type want struct {
		op    binlog.Op
		id    string
		index int
	}
	wants := []want{{binlog.OpInsert, "e1", 0}, {binlog.OpInsert, "e2", 1}, {binlog.OpInsert, "e3", 0}, {binlog.OpDelete, "e3", 1}, {binlog.OpUpdate, "e1", 0}}
	if len(changes) != len(wants) {
		t.Fatalf("got %d changes, want %d: %+v", len(changes), len(wants), changes)
	}
	for i, w := range wants {
		ch := changes[i]
		if ch.Op != w.op || ch.Row[0] != w.id || ch.Index != w.index {
			t.Errorf("change %d = %s %v index %d, want %s %s index %d", i, ch.Op, ch.Row[0], ch.Index, w.op, w.id, w.index)
		}
		if ch.Table.Name != "outbox" || ch.Table.Schema != f.dbn {
			t.Errorf("change %d from table %s", i, ch.Table)
		}
	}
	if got := changes[4].Row[3]; got != "Changed" {
		t.Errorf("update carries the after image, got type %v", got)
	}
	first := changes[0]
	if first.Txn.GTID == "" || first.Txn.CommitTime.IsZero() {
		t.Errorf("transaction identity missing: %+v", first.Txn)
	}
	if changes[1].Txn.GTID != first.Txn.GTID || changes[2].Txn.GTID == first.Txn.GTID {
		t.Errorf("rows grouped into the wrong transactions: %s %s %s", first.Txn.GTID, changes[1].Txn.GTID, changes[2].Txn.GTID)
	}
	if first.Txn.Begin != markers[0] {
		t.Errorf("transaction begins at %s, want the preceding marker %s", first.Txn.Begin, markers[0])
	}
	cols := first.Table.Columns
	if cols[4].Name != "payload" || cols[4].Kind != binlog.KindText || cols[5].Kind != binlog.KindTimestamp {
		t.Errorf("columns = %+v", cols)
	}
	if first.Row[4] != `{"memberId":1,"reason":"moved"}` {
		t.Errorf("payload = %#v", first.Row[4])
	}
	if ts, ok := first.Row[5].(time.Time); !ok || ts.Location() != time.UTC || time.Since(ts) > time.Minute || time.Since(ts) < -time.Minute {
		t.Errorf("created_at = %#v", first.Row[5])
	}
	// 1 members-only txn + 3 outbox txns = 4 markers, strictly increasing.
	if len(markers) != 4 {
		t.Fatalf("got %d markers, want 4: %v", len(markers), markers)
	}
	for i := 1; i < len(markers); i++ {
		if markers[i].Compare(markers[i-1]) <= 0 || markers[i].GTID == markers[i-1].GTID {
			t.Errorf("marker %d (%s) does not advance past %s", i, markers[i], markers[i-1])
		}
	}
}

func TestReaderResumesWithSkip(t *testing.T) {
	f := setup(t, 4102)
	ctx := context.Background()
	start, err := f.r.Inspector().Latest(ctx)
	if err != nil {
		t.Fatal(err)
	}
	f.tx(t, f.insert(t, "a", "1", "A", `{}`), f.insert(t, "b", "1", "B", `{}`), f.insert(t, "c", "1", "C", `{}`))
	if err := f.r.Start(ctx, start, 0, ""); err != nil {
		t.Fatal(err)
	}
	changes, _ := collect(t, f.r, 3)
	// Other tests share the server: resume where a checkpoint inside this
	// transaction would, at its own start.
	gtid, begin := changes[0].Txn.GTID, changes[0].Txn.Begin

	// Resume after the first two rows of that transaction.
	r2 := open(t, f.db, f.dbn, 4103)
	if err := r2.Start(ctx, begin, 2, gtid); err != nil {
		t.Fatal(err)
	}
	got, _ := collect(t, r2, 1)
	if len(got) != 1 || got[0].Row[0] != "c" || got[0].Index != 2 {
		t.Fatalf("resume with skip 2 gave %+v", got)
	}

	// A checkpoint naming another transaction is refused.
	r3 := open(t, f.db, f.dbn, 4104)
	if err := r3.Start(ctx, begin, 1, "0-1-999999"); err != nil {
		t.Fatal(err)
	}
	cctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	for {
		_, err := r3.Next(cctx)
		if err == nil {
			continue
		}
		if !errors.Is(err, binlog.ErrPositionUnavailable) {
			t.Fatalf("mismatching transaction: got %v, want ErrPositionUnavailable", err)
		}
		break
	}
}

func TestReaderReconnectsWithoutLossOrDuplicates(t *testing.T) {
	f := setup(t, 4105)
	ctx := context.Background()
	start, err := f.r.Inspector().Latest(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if err := f.r.Start(ctx, start, 0, ""); err != nil {
		t.Fatal(err)
	}
	f.tx(t, f.insert(t, "k1", "1", "A", `{}`), f.insert(t, "k2", "1", "B", `{}`))
	got, _ := collect(t, f.r, 2)

	// Kill the replication connection on the server side.
	res := f.db.Exec(t, "SELECT ID FROM information_schema.PROCESSLIST WHERE COMMAND LIKE 'Binlog Dump%'")
	killed := 0
	for i := 0; i < res.RowNumber(); i++ {
		id, _ := res.GetInt(i, 0)
		if _, err := f.db.Conn(t).Execute(fmt.Sprintf("KILL %d", id)); err == nil {
			killed++
		}
	}
	if killed == 0 {
		t.Fatal("no binlog dump connection to kill")
	}
	f.tx(t, f.insert(t, "k3", "2", "C", `{}`))
	more, _ := collect(t, f.r, 1)
	got = append(got, more...)
	var ids []any
	for _, c := range got {
		ids = append(ids, c.Row[0])
	}
	if fmt.Sprint(ids) != "[k1 k2 k3]" {
		t.Fatalf("after reconnect got %v, want [k1 k2 k3]", ids)
	}
}

func TestReaderRejectsPurgedPosition(t *testing.T) {
	f := setup(t, 4106)
	ctx := context.Background()
	_, err := f.r.Inspector().Resolve(ctx, binlog.Position{File: "mysql-bin.999999", Pos: 4})
	if !errors.Is(err, binlog.ErrPositionUnavailable) {
		t.Fatalf("got %v, want ErrPositionUnavailable", err)
	}
	if want := "oldest available position"; !contains(err.Error(), want) {
		t.Fatalf("error %q does not name the oldest position", err)
	}
}

func contains(s, sub string) bool { return strings.Contains(s, sub) }
