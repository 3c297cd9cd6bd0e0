package binlog_test

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/go-mysql-org/go-mysql/client"

	"github.com/tailbox-cdc/tailbox/internal/testenv"
	"github.com/tailbox-cdc/tailbox/pkg/binlog"
)

// statementConn opens a connection that logs its statements in STATEMENT
// format, with schema as its default database.
func statementConn(t *testing.T, db *testenv.MySQLServer, schema string) *client.Conn {
	t.Helper()
	c := db.Conn(t)
	for _, s := range []string{"USE " + schema, "SET SESSION binlog_format = STATEMENT"} {
		if _, err := c.Execute(s); err != nil {
			t.Fatalf("%s: %v", s, err)
		}
	}
	return c
}

// requireQueryEvent fails t unless query was written to the binlog after
// from as a QUERY event: the case is exercised, not optimised away.
func requireQueryEvent(t *testing.T, db *testenv.MySQLServer, from binlog.Position, query string) {
	t.Helper()
	res := db.Exec(t, fmt.Sprintf("SHOW BINLOG EVENTS IN '%s' FROM %d", from.File, from.Pos))
	for i := 0; i < res.RowNumber(); i++ {
		typ, _ := res.GetStringByName(i, "Event_type")
		info, _ := res.GetStringByName(i, "Info")
		if typ == "Query" && strings.HasSuffix(info, query) {
			return
		}
	}
	t.Fatalf("the binlog after %s holds no QUERY event %q", from, query)
}

func TestReaderStreamsPastStatementsThatDoNotWriteTheOutbox(t *testing.T) {
	f := setup(t, 4161)
	f.db.Exec(t, fmt.Sprintf("CREATE TABLE %s.other_table (id INT AUTO_INCREMENT PRIMARY KEY, note VARCHAR(100))", f.dbn))
	f.db.Exec(t, fmt.Sprintf("CREATE TABLE %s.`outbox-archive` (id CHAR(36) PRIMARY KEY)", f.dbn))
	stmt := statementConn(t, f.db, f.dbn)
	tests := []struct {
		name  string
		query string
	}{
		{name: "a DDL that starts with a comment", query: "/* migration 42 */ ALTER TABLE outbox ADD COLUMN x INT NULL"},
		{name: "mysqldump's executable comment", query: "/*!40000 ALTER TABLE outbox DISABLE KEYS */"},
		{name: "a statement insert that mentions the outbox in a literal", query: "INSERT INTO other_table (note) VALUES ('copied to the outbox later')"},
		{name: "a statement insert into a table named outbox-archive", query: "INSERT INTO `outbox-archive` (id) VALUES ('a1')"},
	}
	ctx := context.Background()
	for i, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			r := open(t, f.db, f.dbn, uint32(4162+i))
			start, err := r.Inspector().Latest(ctx)
			if err != nil {
				t.Fatal(err)
			}
			if err := r.Start(ctx, start, 0, ""); err != nil {
				t.Fatal(err)
			}
			if _, err := stmt.Execute(tc.query); err != nil {
				t.Fatalf("%s: %v", tc.query, err)
			}
			requireQueryEvent(t, f.db, start, tc.query)
			id := fmt.Sprintf("after-%d", i)
			f.tx(t, f.insert(t, id, "1", "Next", `{}`))

			cctx, cancel := context.WithTimeout(ctx, 20*time.Second)
			defer cancel()
			for {
				it, err := r.Next(cctx)
				if err != nil {
					t.Fatalf("next after %q: %v", tc.query, err)
				}
				if it.Kind == binlog.ItemChange {
					if got := it.Change.Row[0]; got != id {
						t.Fatalf("first change after %q is row %v, want %s", tc.query, got, id)
					}
					return
				}
			}
		})
	}
}

func TestReaderStopsAtStatementInsertIntoTheOutbox(t *testing.T) {
	f := setup(t, 4170)
	ctx := context.Background()
	start, err := f.r.Inspector().Latest(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if err := f.r.Start(ctx, start, 0, ""); err != nil {
		t.Fatal(err)
	}
	// The ORM's connection uses another default database and names the
	// outbox backquoted and schema-qualified.
	stmt := statementConn(t, f.db, f.db.CreateDatabase(t, "orm"))
	q := fmt.Sprintf("INSERT INTO `%s`.`outbox` (`id`, `aggregatetype`, `aggregateid`, `type`, `payload`) VALUES ('s1', 'member', '1', 'Joined', '{}')", f.dbn)
	if _, err := stmt.Execute(q); err != nil {
		t.Fatalf("%s: %v", q, err)
	}
	requireQueryEvent(t, f.db, start, q)
	// A row-format insert after it: reading it means the statement was skipped.
	f.tx(t, f.insert(t, "sentinel", "1", "Next", `{}`))

	cctx, cancel := context.WithTimeout(ctx, 20*time.Second)
	defer cancel()
	for {
		it, err := f.r.Next(cctx)
		if err != nil {
			if !errors.Is(err, binlog.ErrUnsupported) {
				t.Fatalf("next: got %v, want ErrUnsupported", err)
			}
			if want := f.dbn + ".outbox"; !strings.Contains(err.Error(), want) {
				t.Fatalf("error %q does not name %s", err, want)
			}
			t.Logf("next stopped as it should: %v", err)
			return
		}
		if it.Kind == binlog.ItemChange {
			t.Fatalf("the statement insert was skipped: the reader yielded row %v", it.Change.Row[0])
		}
	}
}

// TestReaderStopsAtStatementLoadDataIntoTheOutbox: a LOAD DATA in STATEMENT
// format is logged as BEGIN_LOAD_QUERY and EXECUTE_LOAD_QUERY events, not
// as a QUERY event; into the outbox it stops the reader all the same, and
// into another table it streams on.
func TestReaderStopsAtStatementLoadDataIntoTheOutbox(t *testing.T) {
	f := setup(t, 4171)
	f.db.Exec(t, fmt.Sprintf("CREATE TABLE %s.other_table (id CHAR(36) PRIMARY KEY, aggregatetype VARCHAR(255), aggregateid VARCHAR(255), type VARCHAR(255), payload TEXT)", f.dbn))
	file := filepath.Join(t.TempDir(), "rows.tsv")
	if err := os.WriteFile(file, []byte("l1\tmember\t1\tLoaded\t{}\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(filepath.Dir(file), 0o755); err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	stmt := statementConn(t, f.db, f.dbn)
	load := func(table string) binlog.Position {
		start, err := f.r.Inspector().Latest(ctx)
		if err != nil {
			t.Fatal(err)
		}
		q := fmt.Sprintf("LOAD DATA INFILE '%s' INTO TABLE %s (id, aggregatetype, aggregateid, type, payload)", file, table)
		if _, err := stmt.Execute(q); err != nil {
			t.Fatalf("%s: %v", q, err)
		}
		res := f.db.Exec(t, fmt.Sprintf("SHOW BINLOG EVENTS IN '%s' FROM %d", start.File, start.Pos))
		for i := 0; i < res.RowNumber(); i++ {
			if typ, _ := res.GetStringByName(i, "Event_type"); typ == "Execute_load_query" {
				return start
			}
		}
		t.Fatalf("the binlog after %s holds no Execute_load_query event for %q", start, q)
		return start
	}
	start := load("other_table")
	if err := f.r.Start(ctx, start, 0, ""); err != nil {
		t.Fatal(err)
	}
	load("`outbox`")
	f.tx(t, f.insert(t, "sentinel", "1", "Next", `{}`))

	cctx, cancel := context.WithTimeout(ctx, 20*time.Second)
	defer cancel()
	for {
		it, err := f.r.Next(cctx)
		if err != nil {
			if !errors.Is(err, binlog.ErrUnsupported) || !strings.Contains(err.Error(), f.dbn+".outbox") || !strings.Contains(err.Error(), "LOAD DATA") {
				t.Fatalf("next: got %v, want ErrUnsupported naming %s.outbox and the LOAD DATA", err, f.dbn)
			}
			return
		}
		if it.Kind == binlog.ItemChange {
			t.Fatalf("the LOAD DATA into the outbox was skipped: the reader yielded row %v", it.Change.Row[0])
		}
	}
}
