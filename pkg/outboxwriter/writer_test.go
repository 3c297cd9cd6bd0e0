package outboxwriter

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"reflect"
	"strings"
	"testing"
)

// recorder is an Execer that keeps the statement instead of running it.
type recorder struct {
	query string
	args  []any
}

func (r *recorder) ExecContext(_ context.Context, query string, args ...any) (sql.Result, error) {
	r.query, r.args = query, args
	return nil, nil
}

func event() Event {
	return Event{ID: "0190b1d2-0000-7000-8000-000000000001", AggregateType: "member", AggregateID: "42", Type: "MemberWithdrawn"}
}

func TestWriteBuildsTheInsertOfTheMappedColumns(t *testing.T) {
	tests := []struct {
		name      string
		w         Writer
		ev        func(*Event)
		wantQuery string
		wantArgs  []any
	}{
		{
			name:      "the zero Writer writes the default table and columns",
			wantQuery: "INSERT INTO `outbox` (`id`, `aggregatetype`, `aggregateid`, `type`, `payload`) VALUES (?, ?, ?, ?, ?)",
			wantArgs:  []any{"0190b1d2-0000-7000-8000-000000000001", "member", "42", "MemberWithdrawn", nil},
		},
		{
			name: "renamed columns and a schema-qualified table",
			w: Writer{Table: "board.events", Columns: Columns{
				ID: "event_id", AggregateType: "agg_type", AggregateID: "agg_id", Type: "event_type", Payload: "body",
			}},
			wantQuery: "INSERT INTO `board`.`events` (`event_id`, `agg_type`, `agg_id`, `event_type`, `body`) VALUES (?, ?, ?, ?, ?)",
			wantArgs:  []any{"0190b1d2-0000-7000-8000-000000000001", "member", "42", "MemberWithdrawn", nil},
		},
		{
			name:      "extra columns follow in name order",
			ev:        func(e *Event) { e.Extra = map[string]any{"tenant": "t1", "schema_version": 2} },
			wantQuery: "INSERT INTO `outbox` (`id`, `aggregatetype`, `aggregateid`, `type`, `payload`, `schema_version`, `tenant`) VALUES (?, ?, ?, ?, ?, ?, ?)",
			wantArgs:  []any{"0190b1d2-0000-7000-8000-000000000001", "member", "42", "MemberWithdrawn", nil, 2, "t1"},
		},
		{
			name:      "a backtick in a name is doubled",
			w:         Writer{Table: "odd`name"},
			wantQuery: "INSERT INTO `odd``name` (`id`, `aggregatetype`, `aggregateid`, `type`, `payload`) VALUES (?, ?, ?, ?, ?)",
			wantArgs:  []any{"0190b1d2-0000-7000-8000-000000000001", "member", "42", "MemberWithdrawn", nil},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ev := event()
			if tt.ev != nil {
				tt.ev(&ev)
			}
			var r recorder
			id, err := tt.w.Write(context.Background(), &r, ev)
			if err != nil {
				t.Fatalf("Write: %v", err)
			}
			if id != ev.ID {
				t.Errorf("Write returned id %q, want the event's %q", id, ev.ID)
			}
			if r.query != tt.wantQuery {
				t.Errorf("query\n got %s\nwant %s", r.query, tt.wantQuery)
			}
			if !reflect.DeepEqual(r.args, tt.wantArgs) {
				t.Errorf("args\n got %#v\nwant %#v", r.args, tt.wantArgs)
			}
		})
	}
}

func TestWriteMakesAUUIDv7WhenTheEventHasNoID(t *testing.T) {
	var w Writer
	var r recorder
	ev := event()
	ev.ID = ""
	id, err := w.Write(context.Background(), &r, ev)
	if err != nil {
		t.Fatal(err)
	}
	if !uuidV7Text.MatchString(id) || r.args[0] != id {
		t.Errorf("Write returned %q and wrote %v, want one new UUIDv7", id, r.args[0])
	}
}

type member struct {
	ID     int    `json:"id"`
	Reason string `json:"reason,omitempty"`
}

func TestWriteStoresThePayloadAsJSONText(t *testing.T) {
	tests := []struct {
		name    string
		payload any
		want    any // the payload argument: a string of JSON text or nil
	}{
		{"a struct is marshalled", member{ID: 42, Reason: "moved"}, `{"id":42,"reason":"moved"}`},
		{"a map is marshalled", map[string]any{"b": 1, "a": []int{1}}, `{"a":[1],"b":1}`},
		{"a Go string becomes a JSON string", `{"not":"raw"}`, `"{\"not\":\"raw\"}"`},
		{"json.RawMessage passes through as it is", json.RawMessage(`{"z": 1,  "a": 2}`), `{"z": 1,  "a": 2}`},
		{"[]byte passes through as it is", []byte(`[1, 2]`), `[1, 2]`},
		{"a raw JSON scalar passes through", json.RawMessage(`17`), `17`},
		{"nil is NULL", nil, nil},
		{"an empty json.RawMessage is NULL", json.RawMessage(nil), nil},
		{"an empty []byte is NULL", []byte{}, nil},
		{"a nil pointer is JSON null", (*member)(nil), `null`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var w Writer
			var r recorder
			ev := event()
			ev.Payload = tt.payload
			if _, err := w.Write(context.Background(), &r, ev); err != nil {
				t.Fatalf("Write: %v", err)
			}
			if got := r.args[4]; got != tt.want {
				t.Errorf("payload argument = %#v (%T), want %#v", got, got, tt.want)
			}
		})
	}
}

func TestWriteRefusesAnEventItCannotStore(t *testing.T) {
	tests := []struct {
		name string
		ev   func(*Event)
		want string
	}{
		{"missing roles", func(e *Event) { e.AggregateType, e.AggregateID, e.Type = "", "", "" },
			"AggregateType is empty\nAggregateID is empty\nType is empty"},
		{"raw payload that is not JSON", func(e *Event) { e.Payload = json.RawMessage(`{"a":`) },
			`payload json.RawMessage is not valid JSON (starts "{\"a\":")`},
		{"[]byte payload that is not JSON", func(e *Event) { e.Payload = []byte("hello") },
			`payload []uint8 is not valid JSON (starts "hello")`},
		{"payload json.Marshal refuses", func(e *Event) { e.Payload = map[string]any{"c": make(chan int)} },
			"marshal payload map[string]interface {}: json: unsupported type: chan int"},
		{"extra column that is a mapped one", func(e *Event) { e.Extra = map[string]any{"Payload": "x"} },
			`Extra column "Payload" is a mapped column; set it through its Event field`},
		{"extra column with an empty name", func(e *Event) { e.Extra = map[string]any{"": 1} },
			`Extra column "": empty name`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var w Writer
			r := recorder{query: "untouched"}
			ev := event()
			tt.ev(&ev)
			_, err := w.Write(context.Background(), &r, ev)
			if !errors.Is(err, ErrInvalidEvent) {
				t.Fatalf("Write error = %v, want ErrInvalidEvent", err)
			}
			want := "write event " + ev.ID + ": invalid outbox event: " + tt.want
			if err.Error() != want {
				t.Errorf("error\n got %s\nwant %s", err, want)
			}
			if r.query != "untouched" {
				t.Errorf("a statement ran: %s", r.query)
			}
		})
	}
}

func TestWriterValidateListsEveryProblem(t *testing.T) {
	tests := []struct {
		name string
		w    Writer
		want []string
	}{
		{"the zero Writer is valid", Writer{}, nil},
		{"a three-part table name", Writer{Table: "a.b.c"}, []string{`Table: not "name" or "schema.name" (got "a.b.c")`}},
		{"an empty schema", Writer{Table: ".outbox"}, []string{`Table: empty name (got ".outbox")`}},
		{"two roles on one column, case-insensitively", Writer{Columns: Columns{Type: "Payload"}},
			[]string{`Columns.Payload: names the same column as Columns.Type (got "payload")`}},
		{"a trace column on a mapped column", Writer{Columns: Columns{TraceParent: "id"}},
			[]string{`Columns.TraceParent: names the same column as Columns.ID (got "id")`}},
		{"every problem at once", Writer{Table: strings.Repeat("t", 65), Columns: Columns{ID: "id ", Type: "a\x00b"}},
			[]string{
				`Table: longer than 64 characters (got "` + strings.Repeat("t", 65) + `")`,
				`Columns.ID: ends with a space (got "id ")`,
				`Columns.Type: contains a NUL character (got "a\x00b")`,
			}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := tt.w.Validate()
			if tt.want == nil {
				if err != nil {
					t.Fatalf("Validate() = %v, want nil", err)
				}
				return
			}
			if !errors.Is(err, ErrInvalidConfig) {
				t.Fatalf("Validate() = %v, want ErrInvalidConfig", err)
			}
			want := "invalid outbox writer configuration: " + strings.Join(tt.want, "\n")
			if err.Error() != want {
				t.Errorf("Validate()\n got %s\nwant %s", err, want)
			}
			var r recorder
			if _, werr := tt.w.Write(context.Background(), &r, event()); werr == nil || werr.Error() != err.Error() || r.query != "" {
				t.Errorf("Write = %v after running %q, want Validate's error and no statement", werr, r.query)
			}
		})
	}
}

func TestWriteStoresTheTraceContextOfTheContext(t *testing.T) {
	const parent = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"
	type key struct{}
	fromCtx := func(ctx context.Context) (string, string) {
		tc, _ := ctx.Value(key{}).([2]string)
		return tc[0], tc[1]
	}
	tests := []struct {
		name       string
		trace      [2]string
		wantParent any
		wantState  any
	}{
		{"a traceparent and its tracestate", [2]string{parent, "rojo=00f067aa0ba902b7,congo=t61rcWkgMzE"}, parent, "rojo=00f067aa0ba902b7,congo=t61rcWkgMzE"},
		{"a traceparent without tracestate", [2]string{parent, ""}, parent, nil},
		{"no trace context", [2]string{"", ""}, nil, nil},
		{"an invalid traceparent takes its tracestate with it", [2]string{"00-xyz", "a=b"}, nil, nil},
		{"upper-case hex is invalid", [2]string{strings.ToUpper(parent), "a=b"}, nil, nil},
		{"an all-zero trace id is invalid", [2]string{"00-00000000000000000000000000000000-00f067aa0ba902b7-01", ""}, nil, nil},
		{"an all-zero parent id is invalid", [2]string{"00-4bf92f3577b34da6a3ce929d0e0e4736-0000000000000000-01", ""}, nil, nil},
		{"version ff is invalid", [2]string{"ff" + parent[2:], ""}, nil, nil},
		{"version 00 with a suffix is invalid", [2]string{parent + "-00", ""}, nil, nil},
		{"a later version keeps its first 55 characters", [2]string{"01" + parent[2:] + "-what-comes-later", ""}, "01" + parent[2:], nil},
		{"a tracestate longer than 512 characters is left out", [2]string{parent, "a=" + strings.Repeat("b", 511)}, parent, nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			w := Writer{TraceContext: fromCtx}
			var r recorder
			ctx := context.WithValue(context.Background(), key{}, tt.trace)
			if _, err := w.Write(ctx, &r, event()); err != nil {
				t.Fatal(err)
			}
			if !strings.Contains(r.query, "`payload`, `traceparent`, `tracestate`)") {
				t.Fatalf("query does not name the trace columns: %s", r.query)
			}
			if r.args[5] != tt.wantParent || r.args[6] != tt.wantState {
				t.Errorf("trace columns = %#v, %#v; want %#v, %#v", r.args[5], r.args[6], tt.wantParent, tt.wantState)
			}
		})
	}
	t.Run("without TraceContext the trace columns are not written", func(t *testing.T) {
		var r recorder
		if _, err := (&Writer{}).Write(context.Background(), &r, event()); err != nil {
			t.Fatal(err)
		}
		if strings.Contains(r.query, "trace") || len(r.args) != 5 {
			t.Errorf("query %s with %d args names trace columns", r.query, len(r.args))
		}
	})
}
