package outboxwriter

import (
	"fmt"
	"strings"
)

// CreateTableSQL returns a CREATE TABLE IF NOT EXISTS statement for w's
// table and columns, for MySQL 8.0+ and MariaDB 10.5+ alike (MariaDB's JSON
// is LONGTEXT with a JSON_VALID check). Its first six columns are those of
// config/outbox.sql, renamed as Columns says; the trace context columns
// follow, nullable, sized as the W3C recommendation sizes the values
// (VARCHAR(55), VARCHAR(512)), so the table is ready for TraceContext. The
// table is InnoDB (tailbox publishes only rows whose transaction committed,
// which a non-transactional engine cannot tell) with utf8mb4 text. A table
// created from config/outbox.sql gets the trace columns with:
//
//	ALTER TABLE outbox ADD COLUMN traceparent VARCHAR(55) NULL, ADD COLUMN tracestate VARCHAR(512) NULL;
//
// The error wraps ErrInvalidConfig.
func (w *Writer) CreateTableSQL() (string, error) {
	if err := w.Validate(); err != nil {
		return "", err
	}
	c := w.Columns.withDefaults()
	table, _ := quoteTable(w.table())
	defs := []struct{ name, def string }{
		{c.ID, "CHAR(36)     NOT NULL PRIMARY KEY"},
		{c.AggregateType, "VARCHAR(255) NOT NULL"},
		{c.AggregateID, "VARCHAR(255) NOT NULL"},
		{c.Type, "VARCHAR(255) NOT NULL"},
		{c.Payload, "JSON"},
		{c.Timestamp, "TIMESTAMP(6) NOT NULL DEFAULT CURRENT_TIMESTAMP(6)"},
		{c.TraceParent, fmt.Sprintf("VARCHAR(%d)  NULL", traceParentLen)},
		{c.TraceState, fmt.Sprintf("VARCHAR(%d) NULL", traceStateLen)},
	}
	width := 0
	for _, d := range defs {
		width = max(width, len(quoteIdentifier(d.name)))
	}
	var b strings.Builder
	fmt.Fprintf(&b, "CREATE TABLE IF NOT EXISTS %s (\n", table)
	for i, d := range defs {
		sep := ","
		if i == len(defs)-1 {
			sep = ""
		}
		fmt.Fprintf(&b, "  %-*s %s%s\n", width, quoteIdentifier(d.name), d.def, sep)
	}
	b.WriteString(") ENGINE=InnoDB DEFAULT CHARSET=utf8mb4")
	return b.String(), nil
}
