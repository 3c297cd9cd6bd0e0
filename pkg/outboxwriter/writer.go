package outboxwriter

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"slices"
	"strings"
)

// Errors Write and Validate return; test with errors.Is.
var (
	// ErrInvalidConfig is returned by Validate, Write and CreateTableSQL
	// when the Writer's table or column names cannot be used: empty after
	// defaults, too long, or two roles naming one column. The message lists
	// every problem as "field: reason (got X)".
	ErrInvalidConfig = errors.New("invalid outbox writer configuration")
	// ErrInvalidEvent is returned by Write, before any statement runs, for
	// an Event it cannot store: an empty AggregateType, AggregateID or Type,
	// a payload that is not valid JSON or cannot be marshalled, or an Extra
	// column that is invalid or one of the mapped columns.
	ErrInvalidEvent = errors.New("invalid outbox event")
)

// Execer runs one statement. *sql.Tx, *sql.Conn and *sql.DB implement it;
// pass the *sql.Tx that holds the business change, so that the event exists
// exactly when that change commits.
type Execer interface {
	ExecContext(ctx context.Context, query string, args ...any) (sql.Result, error)
}

// Columns names the outbox table's columns, as tailbox's outbox.fields and
// outbox.tracing name them. Each empty name takes the default its doc gives;
// the defaults are those of config/outbox.sql (Debezium's Outbox Event
// Router), so a Writer with zero Columns writes the table tailbox reads with
// its default configuration.
type Columns struct {
	// ID is the event id column (outbox.fields.id). Default "id".
	ID string
	// AggregateType is the column tailbox routes by (outbox.fields.route_by):
	// the topic is outbox.event.<aggregate type> by default. Default
	// "aggregatetype".
	AggregateType string
	// AggregateID is the Kafka record key (outbox.fields.key): one
	// aggregate's events keep their order. Default "aggregateid".
	AggregateID string
	// Type is the event type column (outbox.fields.type). Default "type".
	Type string
	// Payload is the JSON payload column (outbox.fields.payload). Default
	// "payload".
	Payload string
	// Timestamp is the creation time column. The Writer never writes it (the
	// column's default, the statement time, fills it); CreateTableSQL
	// creates it. tailbox uses it only when outbox.fields.timestamp names
	// it, else the commit time. Default "created_at".
	Timestamp string
	// TraceParent is the column of the W3C traceparent
	// (outbox.tracing.traceparent). Written only when Writer.TraceContext is
	// set. Default "traceparent".
	TraceParent string
	// TraceState is the column of the W3C tracestate
	// (outbox.tracing.tracestate). Written only when Writer.TraceContext is
	// set. Default "tracestate".
	TraceState string
}

// DefaultColumns returns the default column names, those of
// config/outbox.sql plus traceparent and tracestate.
func DefaultColumns() Columns {
	return Columns{
		ID:            "id",
		AggregateType: "aggregatetype",
		AggregateID:   "aggregateid",
		Type:          "type",
		Payload:       "payload",
		Timestamp:     "created_at",
		TraceParent:   "traceparent",
		TraceState:    "tracestate",
	}
}

// withDefaults returns c with each empty name replaced by its default.
func (c Columns) withDefaults() Columns {
	d := DefaultColumns()
	for _, f := range []struct{ v, d *string }{
		{&c.ID, &d.ID}, {&c.AggregateType, &d.AggregateType}, {&c.AggregateID, &d.AggregateID},
		{&c.Type, &d.Type}, {&c.Payload, &d.Payload}, {&c.Timestamp, &d.Timestamp},
		{&c.TraceParent, &d.TraceParent}, {&c.TraceState, &d.TraceState},
	} {
		if *f.v == "" {
			*f.v = *f.d
		}
	}
	return c
}

// named lists the columns with their field names, in table order.
func (c Columns) named() []namedColumn {
	return []namedColumn{
		{"Columns.ID", c.ID}, {"Columns.AggregateType", c.AggregateType},
		{"Columns.AggregateID", c.AggregateID}, {"Columns.Type", c.Type},
		{"Columns.Payload", c.Payload}, {"Columns.Timestamp", c.Timestamp},
		{"Columns.TraceParent", c.TraceParent}, {"Columns.TraceState", c.TraceState},
	}
}

type namedColumn struct{ field, name string }

// DefaultTable is the table a Writer with an empty Table writes to.
const DefaultTable = "outbox"

// Writer writes events to an outbox table in the caller's transaction. Its
// zero value writes to DefaultTable with DefaultColumns and no trace
// context. A Writer holds no connection and no state: it is safe for
// concurrent use, and a package-level or per-service value is the usual
// form.
type Writer struct {
	// Table is the outbox table, "name" or "schema.name". Default "":
	// DefaultTable, in the connection's current database.
	Table string
	// Columns names the table's columns; see Columns for each default.
	Columns Columns
	// TraceContext returns the W3C trace context of ctx — the traceparent
	// and tracestate header values — or empty strings when ctx carries
	// none. When it is set, Write fills Columns.TraceParent and
	// Columns.TraceState (NULL for an empty or invalid traceparent, which
	// takes its tracestate with it, and for a tracestate longer than 512
	// characters); the table must then have those columns. Default nil: the
	// trace columns are not written, and a table without them (as
	// config/outbox.sql creates it) works. With OpenTelemetry:
	//
	//	w.TraceContext = func(ctx context.Context) (string, string) {
	//		c := propagation.MapCarrier{}
	//		propagation.TraceContext{}.Inject(ctx, c)
	//		return c["traceparent"], c["tracestate"]
	//	}
	TraceContext func(ctx context.Context) (traceparent, tracestate string)
}

// Event is one domain event to write.
type Event struct {
	// ID is the event id. Default "": a new UUIDv7 from NewID, which orders
	// ids by creation time.
	ID string
	// AggregateType is the kind of entity the event is about ("member");
	// tailbox routes by it. Required.
	AggregateType string
	// AggregateID identifies the entity; it becomes the Kafka record key.
	// Required.
	AggregateID string
	// Type is the event type ("MemberWithdrawn"). Required.
	Type string
	// Payload is the event's data. A json.RawMessage or []byte is JSON text
	// already and is stored as it is (it must be valid JSON); any other
	// value is stored as json.Marshal renders it (so a Go string becomes a
	// JSON string). nil, and an empty json.RawMessage or []byte, store SQL
	// NULL.
	Payload any
	// Extra sets more columns of the row, by column name — for example the
	// columns tailbox copies with outbox.additional. Values go to the driver
	// as they are. Default nil: none.
	Extra map[string]any
}

// Validate reports every problem of w's table and column names, each as
// "field: reason (got X)", joined and wrapping ErrInvalidConfig; nil when w
// can be used. It does not change w.
func (w *Writer) Validate() error {
	var problems []error
	add := func(field, reason, got string) {
		problems = append(problems, fmt.Errorf("%s: %s (got %q)", field, reason, got))
	}
	if _, err := quoteTable(w.table()); err != nil {
		add("Table", err.Error(), w.Table)
	}
	seen := map[string]string{}
	for _, c := range w.Columns.withDefaults().named() {
		if err := checkIdentifier(c.name); err != nil {
			add(c.field, err.Error(), c.name)
			continue
		}
		if other, dup := seen[strings.ToLower(c.name)]; dup {
			add(c.field, "names the same column as "+other, c.name)
			continue
		}
		seen[strings.ToLower(c.name)] = c.field
	}
	if len(problems) == 0 {
		return nil
	}
	return fmt.Errorf("%w: %w", ErrInvalidConfig, errors.Join(problems...))
}

func (w *Writer) table() string {
	if w.Table == "" {
		return DefaultTable
	}
	return w.Table
}

// Write inserts ev into the outbox table through ex — the caller's *sql.Tx,
// so that the event is published exactly when the transaction commits —
// and returns the event's id. The trace context comes from ctx through
// TraceContext. Write blocks while the statement runs. Errors wrap
// ErrInvalidConfig or ErrInvalidEvent (nothing was executed) or the
// driver's error from the INSERT.
func (w *Writer) Write(ctx context.Context, ex Execer, ev Event) (string, error) {
	if err := w.Validate(); err != nil {
		return "", err
	}
	if ev.ID == "" {
		ev.ID = NewID()
	}
	query, args, err := w.insert(ctx, ev)
	if err != nil {
		return "", fmt.Errorf("write event %s: %w", ev.ID, err)
	}
	if _, err := ex.ExecContext(ctx, query, args...); err != nil {
		return "", fmt.Errorf("write %s event %s to %s: %w", ev.Type, ev.ID, w.table(), err)
	}
	return ev.ID, nil
}

// insert builds the INSERT statement and its arguments for ev, whose ID is
// set; w is valid.
func (w *Writer) insert(ctx context.Context, ev Event) (string, []any, error) {
	var problems []error
	for _, f := range []struct{ name, v string }{
		{"AggregateType", ev.AggregateType}, {"AggregateID", ev.AggregateID}, {"Type", ev.Type},
	} {
		if f.v == "" {
			problems = append(problems, fmt.Errorf("%s is empty", f.name))
		}
	}
	payload, err := payloadText(ev.Payload)
	if err != nil {
		problems = append(problems, err)
	}
	c := w.Columns.withDefaults()
	cols := []string{c.ID, c.AggregateType, c.AggregateID, c.Type, c.Payload}
	args := []any{ev.ID, ev.AggregateType, ev.AggregateID, ev.Type, payload}
	if w.TraceContext != nil {
		parent, state := traceColumns(w.TraceContext(ctx))
		cols = append(cols, c.TraceParent, c.TraceState)
		args = append(args, parent, state)
	}
	mapped := map[string]bool{}
	for _, n := range c.named() {
		mapped[strings.ToLower(n.name)] = true
	}
	for _, name := range slices.Sorted(maps.Keys(ev.Extra)) {
		switch err := checkIdentifier(name); {
		case err != nil:
			problems = append(problems, fmt.Errorf("Extra column %q: %w", name, err))
		case mapped[strings.ToLower(name)]:
			problems = append(problems, fmt.Errorf("Extra column %q is a mapped column; set it through its Event field", name))
		default:
			cols = append(cols, name)
			args = append(args, ev.Extra[name])
		}
	}
	if len(problems) > 0 {
		return "", nil, fmt.Errorf("%w: %w", ErrInvalidEvent, errors.Join(problems...))
	}
	table, _ := quoteTable(w.table())
	var b strings.Builder
	b.WriteString("INSERT INTO ")
	b.WriteString(table)
	b.WriteString(" (")
	for i, col := range cols {
		if i > 0 {
			b.WriteString(", ")
		}
		b.WriteString(quoteIdentifier(col))
	}
	b.WriteString(") VALUES (")
	b.WriteString(strings.TrimSuffix(strings.Repeat("?, ", len(cols)), ", "))
	b.WriteString(")")
	return b.String(), args, nil
}

// payloadText returns the payload column's value: JSON text as a string, or
// nil for NULL. It is a string, never []byte: MySQL refuses to store a
// binary string (how drivers send []byte) in a JSON column.
func payloadText(p any) (any, error) {
	var raw []byte
	switch v := p.(type) {
	case nil:
		return nil, nil
	case json.RawMessage:
		raw = v
	case []byte:
		raw = v
	default:
		b, err := json.Marshal(v)
		if err != nil {
			return nil, fmt.Errorf("marshal payload %T: %w", p, err)
		}
		return string(b), nil
	}
	if len(raw) == 0 {
		return nil, nil
	}
	if !json.Valid(raw) {
		return nil, fmt.Errorf("payload %T is not valid JSON (starts %q)", p, truncate(raw, 40))
	}
	return string(raw), nil
}

func truncate(b []byte, n int) string {
	if len(b) > n {
		return string(b[:n]) + "…"
	}
	return string(b)
}

// maxIdentifierLen is MySQL's and MariaDB's limit on table and column names.
const maxIdentifierLen = 64

// checkIdentifier reports why name cannot be a MySQL table or column name.
func checkIdentifier(name string) error {
	switch {
	case name == "":
		return errors.New("empty name")
	case len([]rune(name)) > maxIdentifierLen:
		return fmt.Errorf("longer than %d characters", maxIdentifierLen)
	case strings.ContainsRune(name, 0):
		return errors.New("contains a NUL character")
	case strings.HasSuffix(name, " "):
		return errors.New("ends with a space")
	}
	return nil
}

// quoteIdentifier quotes a valid name with backticks.
func quoteIdentifier(name string) string {
	return "`" + strings.ReplaceAll(name, "`", "``") + "`"
}

// quoteTable checks and quotes "name" or "schema.name".
func quoteTable(table string) (string, error) {
	parts := strings.Split(table, ".")
	if len(parts) > 2 {
		return "", errors.New(`not "name" or "schema.name"`)
	}
	for i, p := range parts {
		if err := checkIdentifier(p); err != nil {
			return "", err
		}
		parts[i] = quoteIdentifier(p)
	}
	return strings.Join(parts, "."), nil
}
