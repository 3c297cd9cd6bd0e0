package outboxwriter_test

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"reflect"
	"testing"

	"github.com/go-sql-driver/mysql"

	"github.com/tailbox-cdc/tailbox/internal/testenv"
	"github.com/tailbox-cdc/tailbox/pkg/outboxwriter"
)

// outboxDB creates a database with the table of w.CreateTableSQL and returns
// a database/sql handle whose default database it is.
func outboxDB(t *testing.T, w *outboxwriter.Writer) *sql.DB {
	t.Helper()
	srv := testenv.MySQL(t)
	db := srv.DB(t, srv.CreateDatabase(t, "outboxwriter"))
	ddl, err := w.CreateTableSQL()
	if err != nil {
		t.Fatal(err)
	}
	if _, err := db.Exec(ddl); err != nil {
		t.Fatalf("create the table from CreateTableSQL: %v\n%s", err, ddl)
	}
	return db
}

type row struct {
	ID, AggregateType, AggregateID, Type string
	Payload, TraceParent, TraceState     sql.NullString
}

func rows(t *testing.T, db *sql.DB) []row {
	t.Helper()
	rs, err := db.Query("SELECT id, aggregatetype, aggregateid, type, payload, traceparent, tracestate FROM outbox ORDER BY id")
	if err != nil {
		t.Fatal(err)
	}
	defer rs.Close()
	var out []row
	for rs.Next() {
		var r row
		if err := rs.Scan(&r.ID, &r.AggregateType, &r.AggregateID, &r.Type, &r.Payload, &r.TraceParent, &r.TraceState); err != nil {
			t.Fatal(err)
		}
		out = append(out, r)
	}
	if err := rs.Err(); err != nil {
		t.Fatal(err)
	}
	return out
}

func TestWriteOnMariaDBCommitsAndRollsBackWithTheTransaction(t *testing.T) {
	const parent = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"
	type traceKey struct{}
	w := &outboxwriter.Writer{TraceContext: func(ctx context.Context) (string, string) {
		if ctx.Value(traceKey{}) == nil {
			return "", ""
		}
		return parent, "congo=t61rcWkgMzE"
	}}
	db := outboxDB(t, w)
	ctx := context.Background()

	write := func(ctx context.Context, commit bool, evs ...outboxwriter.Event) []string {
		t.Helper()
		tx, err := db.BeginTx(ctx, nil)
		if err != nil {
			t.Fatal(err)
		}
		var ids []string
		for _, ev := range evs {
			id, err := w.Write(ctx, tx, ev)
			if err != nil {
				_ = tx.Rollback()
				t.Fatalf("Write: %v", err)
			}
			ids = append(ids, id)
		}
		if commit {
			err = tx.Commit()
		} else {
			err = tx.Rollback()
		}
		if err != nil {
			t.Fatal(err)
		}
		return ids
	}

	committed := write(context.WithValue(ctx, traceKey{}, true), true,
		outboxwriter.Event{AggregateType: "member", AggregateID: "42", Type: "MemberWithdrawn", Payload: map[string]any{"memberId": 42, "reason": "moved"}},
		outboxwriter.Event{AggregateType: "member", AggregateID: "43", Type: "MemberJoined", Payload: json.RawMessage(`{"memberId": 43}`)},
	)
	write(ctx, false, outboxwriter.Event{AggregateType: "member", AggregateID: "44", Type: "MemberJoined"})
	untraced := write(ctx, true, outboxwriter.Event{AggregateType: "member", AggregateID: "45", Type: "MemberJoined"})

	// MariaDB's JSON is LONGTEXT: the raw payload is stored byte for byte
	// (MySQL would store it normalized).
	got := rows(t, db)
	want := []row{
		{committed[0], "member", "42", "MemberWithdrawn", sql.NullString{String: `{"memberId":42,"reason":"moved"}`, Valid: true},
			sql.NullString{String: parent, Valid: true}, sql.NullString{String: "congo=t61rcWkgMzE", Valid: true}},
		{committed[1], "member", "43", "MemberJoined", sql.NullString{String: `{"memberId": 43}`, Valid: true},
			sql.NullString{String: parent, Valid: true}, sql.NullString{String: "congo=t61rcWkgMzE", Valid: true}},
		{ID: untraced[0], AggregateType: "member", AggregateID: "45", Type: "MemberJoined"},
	}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("outbox rows (the rolled-back event 44 must be missing)\n got %+v\nwant %+v", got, want)
	}
}

func TestWriteOnMariaDBReturnsTheServersError(t *testing.T) {
	w := &outboxwriter.Writer{}
	db := outboxDB(t, w)
	ctx := context.Background()
	ev := outboxwriter.Event{ID: "dup", AggregateType: "member", AggregateID: "1", Type: "T"}
	if _, err := w.Write(ctx, db, ev); err != nil {
		t.Fatal(err)
	}
	_, err := w.Write(ctx, db, ev)
	if err == nil {
		t.Fatal("writing one id twice succeeded")
	}
	var myErr *mysql.MySQLError
	if !errors.As(err, &myErr) || myErr.Number != 1062 {
		t.Errorf("error %v: want the driver's duplicate-key error (1062), wrapped", err)
	}
}

func TestWriteOnMariaDBFillsExtraColumns(t *testing.T) {
	w := &outboxwriter.Writer{}
	db := outboxDB(t, w)
	if _, err := db.Exec("ALTER TABLE outbox ADD COLUMN tenant VARCHAR(50) NULL"); err != nil {
		t.Fatal(err)
	}
	ev := outboxwriter.Event{AggregateType: "member", AggregateID: "1", Type: "T", Extra: map[string]any{"tenant": "acme"}}
	id, err := w.Write(context.Background(), db, ev)
	if err != nil {
		t.Fatal(err)
	}
	var tenant string
	if err := db.QueryRow("SELECT tenant FROM outbox WHERE id = ?", id).Scan(&tenant); err != nil || tenant != "acme" {
		t.Errorf("tenant of %s = %q, %v; want acme", id, tenant, err)
	}
}
