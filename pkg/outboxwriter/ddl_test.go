package outboxwriter

import (
	"errors"
	"flag"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
)

var update = flag.Bool("update", false, "rewrite the testdata/*.golden files")

func TestCreateTableSQL(t *testing.T) {
	tests := []struct {
		name   string
		golden string
		w      Writer
	}{
		{"the default table", "create_table_default.golden", Writer{}},
		{"renamed columns in another schema", "create_table_renamed.golden", Writer{Table: "board.member_events", Columns: Columns{
			ID: "event_id", AggregateType: "aggregate_type", AggregateID: "aggregate_id", Type: "event_type",
			Payload: "body", Timestamp: "inserted_at", TraceParent: "trace_parent", TraceState: "trace_state",
		}}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := tt.w.CreateTableSQL()
			if err != nil {
				t.Fatalf("CreateTableSQL: %v", err)
			}
			path := filepath.Join("testdata", tt.golden)
			if *update {
				if err := os.WriteFile(path, []byte(got+"\n"), 0o644); err != nil {
					t.Fatal(err)
				}
			}
			want, err := os.ReadFile(path)
			if err != nil {
				t.Fatalf("%v (run go test -update to create it)", err)
			}
			if got+"\n" != string(want) {
				t.Errorf("%s differs (run go test -update after checking the change)\ngot:\n%s\nwant:\n%s", path, got, want)
			}
		})
	}
}

func TestCreateTableSQLRefusesAnInvalidWriter(t *testing.T) {
	w := Writer{Columns: Columns{ID: "type"}}
	if _, err := w.CreateTableSQL(); !errors.Is(err, ErrInvalidConfig) {
		t.Errorf("CreateTableSQL() error = %v, want ErrInvalidConfig", err)
	}
}

// TestCreateTableSQLMatchesOutboxSQL keeps the generated table and the one
// users create from config/outbox.sql the same, column by column.
func TestCreateTableSQLMatchesOutboxSQL(t *testing.T) {
	text, err := os.ReadFile(filepath.Join("..", "..", "config", "outbox.sql"))
	if err != nil {
		t.Fatal(err)
	}
	body := regexp.MustCompile(`(?s)CREATE TABLE IF NOT EXISTS shop\.outbox \((.*?)\n\);`).FindSubmatch(text)
	if body == nil {
		t.Fatal("config/outbox.sql has no CREATE TABLE IF NOT EXISTS shop.outbox (...); statement")
	}
	want := columnDefs(string(body[1]))
	ddl, err := (&Writer{}).CreateTableSQL()
	if err != nil {
		t.Fatal(err)
	}
	got := columnDefs(ddl[strings.Index(ddl, "(\n")+2 : strings.LastIndex(ddl, "\n)")])
	if len(want) != 6 {
		t.Fatalf("config/outbox.sql defines %d columns, this test expects 6: %q", len(want), want)
	}
	for i := range want {
		if got[i] != want[i] {
			t.Errorf("column %d: CreateTableSQL has %q, config/outbox.sql %q", i+1, got[i], want[i])
		}
	}
	if rest := got[len(want):]; len(rest) != 2 || !strings.HasPrefix(rest[0], "traceparent ") || !strings.HasPrefix(rest[1], "tracestate ") {
		t.Errorf("after outbox.sql's columns CreateTableSQL has %q, want the two trace columns", rest)
	}
}

// columnDefs returns the column definitions of a CREATE TABLE body, one
// per line, without comments, backticks, trailing commas and extra spaces.
func columnDefs(body string) []string {
	var defs []string
	for _, line := range strings.Split(body, "\n") {
		line, _, _ = strings.Cut(line, "--")
		line = strings.TrimSuffix(strings.TrimSpace(strings.ReplaceAll(line, "`", "")), ",")
		if line != "" {
			defs = append(defs, strings.Join(strings.Fields(line), " "))
		}
	}
	return defs
}
