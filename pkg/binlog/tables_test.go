package binlog

import (
	"context"
	"fmt"
	"regexp"
	"testing"
	"time"

	"github.com/rs/zerolog"

	"github.com/tailbox-cdc/tailbox/internal/testenv"
)

// The server gives a table a new id whenever it reopens it (FLUSH TABLES
// here; a busy table cache or DDL does the same): the reader keeps a captured
// table's id only until the end of its statement, so ids do not pile up,
// and every row still arrives.
func TestReaderForgetsTableIDsAtStatementEnd(t *testing.T) {
	db := testenv.MySQL(t)
	dbn := db.CreateDatabase(t, "tableids")
	db.Exec(t, fmt.Sprintf(testenv.OutboxDDL, dbn))
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	r, err := Open(ctx, Config{Addr: db.Addr, User: db.User, Password: db.Password, ServerID: 4181,
		Tables: []string{dbn + ".outbox"}, Heartbeat: time.Second}, zerolog.New(zerolog.NewTestWriter(t)), nil)
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	start, err := r.Inspector().Latest(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if err := r.Start(ctx, start, 0, ""); err != nil {
		t.Fatal(err)
	}

	const txns = 12
	for i := range txns {
		db.Exec(t, fmt.Sprintf("INSERT INTO %s.outbox (id, aggregatetype, aggregateid, type, payload) VALUES ('e%d','member','m%d','Joined','{\"n\":%d}'), ('f%d','member','m%d','Left','{}')",
			dbn, i, i, i, i, i))
		db.Exec(t, fmt.Sprintf("FLUSH TABLES %s.outbox", dbn)) // this test's table only: the server is shared
		var ids []string
		for len(ids) < 2 {
			it, err := r.Next(ctx)
			if err != nil {
				t.Fatalf("transaction %d: %v", i, err)
			}
			if it.Kind == ItemChange {
				ids = append(ids, it.Change.Row[0].(string))
			}
		}
		if want := []string{fmt.Sprintf("e%d", i), fmt.Sprintf("f%d", i)}; ids[0] != want[0] || ids[1] != want[1] {
			t.Fatalf("transaction %d: rows %v, want %v", i, ids, want)
		}
		if n := len(r.tables); n != 0 {
			t.Fatalf("after transaction %d the reader still maps %d table ids", i, n)
		}
	}

	// The test only shows something if the ids did change.
	res := db.Exec(t, "SHOW BINLOG EVENTS IN '"+start.File+"'")
	seen := map[string]bool{}
	re := regexp.MustCompile(`table_id: (\d+) \(` + regexp.QuoteMeta(dbn) + `\.outbox\)`)
	for i := range res.RowNumber() {
		info, _ := res.GetString(i, 5)
		if m := re.FindStringSubmatch(info); m != nil {
			seen[m[1]] = true
		}
	}
	if len(seen) < txns/2 {
		t.Fatalf("the outbox table had %d table ids over %d transactions with FLUSH TABLES between them; the test needs them to change", len(seen), txns)
	}
	t.Logf("%d table ids over %d transactions", len(seen), txns)
}
