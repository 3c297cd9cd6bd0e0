package binlog

import (
	"context"
	"fmt"
	"strings"
)

// DeleteRows deletes from schema.table the rows whose column (the table's
// primary key) holds one of keys, in one statement, and returns how many
// rows the server deleted. keys are values as a Change's Row carries them.
// It runs on the Inspector's metadata connection, reconnected when it
// broke; a refused DELETE satisfies IsAccessDenied.
func (in *Inspector) DeleteRows(ctx context.Context, schema, table, column string, keys []any) (int64, error) {
	if len(keys) == 0 {
		return 0, nil
	}
	c, err := in.metaConn(ctx)
	if err != nil {
		return 0, err
	}
	var q strings.Builder
	q.Grow(64 + 2*len(keys))
	q.WriteString("DELETE FROM ")
	q.WriteString(quoteIdent(schema) + "." + quoteIdent(table))
	q.WriteString(" WHERE " + quoteIdent(column) + " IN (")
	for i := range keys {
		if i > 0 {
			q.WriteByte(',')
		}
		q.WriteByte('?')
	}
	q.WriteByte(')')
	res, err := c.c.Execute(q.String(), keys...)
	if err != nil {
		in.meta.close() // a connection left mid-statement is not reused
		return 0, fmt.Errorf("delete %d rows from %s.%s: %w", len(keys), schema, table, err)
	}
	return int64(res.AffectedRows), nil
}

// CheckDelete reports whether the account may delete from schema.table by
// column: it prepares DELETE ... WHERE column = ? and closes it without
// executing it, so nothing is deleted. A missing privilege satisfies
// IsAccessDenied, a missing table IsTableMissing.
func (in *Inspector) CheckDelete(ctx context.Context, schema, table, column string) error {
	c, err := in.metaConn(ctx)
	if err != nil {
		return err
	}
	st, err := c.c.Prepare("DELETE FROM " + quoteIdent(schema) + "." + quoteIdent(table) + " WHERE " + quoteIdent(column) + " = ?")
	if err != nil {
		return fmt.Errorf("prepare a DELETE on %s.%s: %w", schema, table, err)
	}
	return st.Close()
}
