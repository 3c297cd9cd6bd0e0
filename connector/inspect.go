package connector

import (
	"context"

	"github.com/tailbox-cdc/tailbox/pkg/binlog"
)

// ownInspector is an Inspector on a source connection of its own, never
// the stream's, so that its queries never wait for the stream: it is
// opened at the first call and again after a call failed. Used by one
// goroutine at a time.
type ownInspector struct {
	c  *Connector
	in *binlog.Inspector // nil until connected, and after a failed call
}

// do runs f on the Inspector, connecting it first when needed; after an
// error the connection is closed, and the next call opens a new one.
func (o *ownInspector) do(ctx context.Context, f func(*binlog.Inspector) error) error {
	if o.in == nil {
		in, err := o.c.inspect(ctx)
		if err != nil {
			return err
		}
		o.in = in
	}
	if err := f(o.in); err != nil {
		o.close()
		return err
	}
	return nil
}

// close closes the connection, if open; it is idempotent.
func (o *ownInspector) close() {
	if o.in != nil {
		_ = o.in.Close()
		o.in = nil
	}
}
