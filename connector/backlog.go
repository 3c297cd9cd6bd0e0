package connector

import (
	"context"
	"fmt"

	"github.com/tailbox-cdc/tailbox/connector/observe"
	"github.com/tailbox-cdc/tailbox/pkg/binlog"
	"github.com/tailbox-cdc/tailbox/pkg/checkpoint"
)

// sourceLogs lists the source's binary logs for the observer's backlog
// measurement, on a source connection of its own (opened at the first
// listing, and again after one fails), so that it never waits for the
// stream's. Used by one goroutine at a time; close it after the observer.
type sourceLogs struct {
	c  *Connector
	in *binlog.Inspector // nil until connected, and after a failed listing
}

// list returns SHOW BINARY LOGS, oldest first.
func (s *sourceLogs) list(ctx context.Context) ([]binlog.LogFile, error) {
	if s.in == nil {
		in, err := s.c.inspect(ctx)
		if err != nil {
			return nil, err
		}
		s.in = in
	}
	logs, err := s.in.BinaryLogs(ctx)
	if err != nil {
		s.close()
		return nil, err
	}
	return logs, nil
}

// close closes the connection, if open; it is idempotent.
func (s *sourceLogs) close() {
	if s.in != nil {
		_ = s.in.Close()
		s.in = nil
	}
}

// OffsetBehind returns how far cp, a stored checkpoint, is behind the end of
// the source's newest binary log, connecting once (no retry). It fails when
// the source cannot be reached or listed, and when cp names no binlog file
// or one the source no longer lists (purged, or another server's).
func (c *Connector) OffsetBehind(ctx context.Context, cp *checkpoint.Checkpoint) (observe.Behind, error) {
	logs := &sourceLogs{c: c}
	defer logs.close()
	list, err := logs.list(ctx)
	if err != nil {
		return observe.Behind{}, fmt.Errorf("list the source's binary logs: %w", err)
	}
	return observe.BehindOf(list, cp.Position)
}
