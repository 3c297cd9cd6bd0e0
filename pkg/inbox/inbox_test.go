package inbox

import (
	"errors"
	"os/exec"
	"strings"
	"testing"
)

func TestEventID(t *testing.T) {
	long := strings.Repeat("x", 256)
	tests := []struct {
		name    string
		table   Table
		msg     Message
		want    string
		wantErr error
		wantMsg string
	}{
		{name: "from the id header", msg: Message{Headers: []Header{{"type", []byte("T")}, {"id", []byte("e-1")}}}, want: "e-1"},
		{name: "the first id header with a value wins", msg: Message{Headers: []Header{{"id", nil}, {"id", []byte("e-1")}, {"id", []byte("e-2")}}}, want: "e-1"},
		{name: "from another header", table: Table{IDHeader: "eventId"}, msg: Message{Headers: []Header{{"id", []byte("no")}, {"eventId", []byte("e-3")}}}, want: "e-3"},
		{name: "no header", msg: Message{Value: []byte(`{"id":"e-1"}`)}, wantErr: ErrNoEventID,
			wantMsg: `message has no event id: no "id" header`},
		{name: "header names are case-sensitive", msg: Message{Headers: []Header{{"ID", []byte("e-1")}}}, wantErr: ErrNoEventID,
			wantMsg: `message has no event id: no "id" header`},
		{name: "from the envelope when the header is missing", table: Table{IDFromValue: true}, msg: Message{Value: []byte(`{"id":"e-4","type":"T"}`)}, want: "e-4"},
		{name: "the header wins over the envelope", table: Table{IDFromValue: true}, msg: Message{Value: []byte(`{"id":"e-4"}`), Headers: []Header{{"id", []byte("e-5")}}}, want: "e-5"},
		{name: "a value that is not JSON", table: Table{IDFromValue: true}, msg: Message{Value: []byte(`plain`)}, wantErr: ErrNoEventID,
			wantMsg: `message has no event id: no "id" header, and the value is not a JSON object with a string id: invalid character 'p' looking for beginning of value`},
		{name: "a numeric id in the value", table: Table{IDFromValue: true}, msg: Message{Value: []byte(`{"id":7}`)}, wantErr: ErrNoEventID,
			wantMsg: `message has no event id: no "id" header, and the value is not a JSON object with a string id: json: cannot unmarshal number into Go struct field .id of type string`},
		{name: "a value without id", table: Table{IDFromValue: true}, msg: Message{Value: []byte(`{"payload":{}}`)}, wantErr: ErrNoEventID,
			wantMsg: `message has no event id: no "id" header, and the value has no id`},
		{name: "an id longer than the column", msg: Message{Headers: []Header{{"id", []byte(long)}}}, wantErr: ErrInvalidEventID,
			wantMsg: `invalid event id: 256 bytes, more than 255 (starts "` + long[:40] + `")`},
		{name: "an id that is not UTF-8", msg: Message{Headers: []Header{{"id", []byte("a\xffb")}}}, wantErr: ErrInvalidEventID,
			wantMsg: `invalid event id: not UTF-8 ("a\xffb")`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := tt.table.EventID(tt.msg)
			if tt.wantErr == nil {
				if err != nil || got != tt.want {
					t.Fatalf("EventID = %q, %v; want %q", got, err, tt.want)
				}
				return
			}
			if !errors.Is(err, tt.wantErr) {
				t.Fatalf("EventID error = %v, want %v", err, tt.wantErr)
			}
			if err.Error() != tt.wantMsg {
				t.Errorf("error\n got %s\nwant %s", err, tt.wantMsg)
			}
		})
	}
}

func TestValidateListsEveryProblem(t *testing.T) {
	tests := []struct {
		name  string
		table Table
		want  string
	}{
		{"the zero Table is valid", Table{}, ""},
		{"a schema-qualified name is valid", Table{Name: "board.inbox"}, ""},
		{"every problem at once", Table{Name: "a.b.c", CleanupBatch: -1},
			"invalid inbox configuration: Name: not \"name\" or \"schema.name\" (got \"a.b.c\")\nCleanupBatch: must not be negative (got -1)"},
		{"an empty part", Table{Name: "board."}, `invalid inbox configuration: Name: empty name (got "board.")`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := tt.table.Validate()
			if tt.want == "" {
				if err != nil {
					t.Fatalf("Validate() = %v", err)
				}
				return
			}
			if !errors.Is(err, ErrInvalidConfig) || err.Error() != tt.want {
				t.Errorf("Validate()\n got %v\nwant %s", err, tt.want)
			}
		})
	}
}

func TestCreateTableSQL(t *testing.T) {
	got, err := (&Table{Name: "board.in`box"}).CreateTableSQL()
	if err != nil {
		t.Fatal(err)
	}
	want := "CREATE TABLE IF NOT EXISTS `board`.`in``box` (\n" +
		"  `event_id`   VARBINARY(255) NOT NULL PRIMARY KEY,\n" +
		"  `handled_at` TIMESTAMP(6)   NOT NULL DEFAULT CURRENT_TIMESTAMP(6),\n" +
		"  KEY `handled_at` (`handled_at`)\n" +
		") ENGINE=InnoDB"
	if got != want {
		t.Errorf("CreateTableSQL()\n got %s\nwant %s", got, want)
	}
}

// TestImportsOnlyTheStandardLibrary keeps the package free of dependencies:
// a consumer that imports it compiles nothing of tailbox's runtime.
func TestImportsOnlyTheStandardLibrary(t *testing.T) {
	out, err := exec.Command("go", "list", "-deps", "-f", "{{if not .Standard}}{{.ImportPath}}{{end}}", ".").CombinedOutput()
	if err != nil {
		t.Fatalf("go list -deps: %v\n%s", err, out)
	}
	if deps := strings.Fields(string(out)); len(deps) != 1 || deps[0] != "github.com/tailbox-cdc/tailbox/pkg/inbox" {
		t.Errorf("the package depends on %q, want the standard library only", deps)
	}
}
