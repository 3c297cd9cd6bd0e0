package connector

import (
	"context"
	"fmt"

	"github.com/tailbox-cdc/tailbox/connector/observe"
	"github.com/tailbox-cdc/tailbox/pkg/binlog"
	"github.com/tailbox-cdc/tailbox/pkg/checkpoint"
)

// sourceLogs lists the source's binary logs for the observer's backlog
// measurement, on a source connection of its own. Close it after the
// observer.
type sourceLogs struct{ ownInspector }

// list returns SHOW BINARY LOGS, oldest first.
func (s *sourceLogs) list(ctx context.Context) (logs []binlog.LogFile, err error) {
	err = s.do(ctx, func(in *binlog.Inspector) error {
		logs, err = in.BinaryLogs(ctx)
		return err
	})
	return logs, err
}

// OffsetBehind returns how far cp, a stored checkpoint, is behind the end of
// the source's newest binary log, connecting once (no retry). It fails when
// the source cannot be reached or listed, and when cp names no binlog file
// or one the source no longer lists (purged, or another server's).
func (c *Connector) OffsetBehind(ctx context.Context, cp *checkpoint.Checkpoint) (observe.Behind, error) {
	logs := &sourceLogs{ownInspector{c: c}}
	defer logs.close()
	list, err := logs.list(ctx)
	if err != nil {
		return observe.Behind{}, fmt.Errorf("list the source's binary logs: %w", err)
	}
	return observe.BehindOf(list, cp.Position)
}
