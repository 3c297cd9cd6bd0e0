package connector

import (
	"context"
	"errors"
	"fmt"

	"github.com/tailbox-cdc/tailbox/pkg/binlog"
	"github.com/tailbox-cdc/tailbox/pkg/checkpoint"
)

// ShowOffset returns the stored checkpoint without locking it, so it works
// while the connector runs. It wraps checkpoint.ErrNotFound when there is none.
func (c *Connector) ShowOffset(ctx context.Context) (*checkpoint.Checkpoint, error) {
	cp, err := c.readCheckpoint(ctx)
	if err != nil {
		if errors.Is(err, checkpoint.ErrNotFound) {
			return nil, fmt.Errorf("no checkpoint in %s: %w", c.storeName(), err)
		}
		return nil, fmt.Errorf("%w: %w", ErrCheckpoint, err)
	}
	return cp, nil
}

// SetOffset resolves spec on the source server and replaces the stored
// checkpoint with it (skip 0). With the file store it takes the checkpoint
// lock, so it refuses while a connector with the same file runs; the Kafka
// store has no lock: stop the connector first. A corrupt or foreign checkpoint
// is replaced: this is the way out of those errors. A spec the server cannot
// stream from (purged, beyond the end, not a transaction boundary, a GTID
// set it never executed, a time before its oldest binlog) is an error
// wrapping binlog.ErrPositionUnavailable, and the stored file is left as it
// is.
func (c *Connector) SetOffset(ctx context.Context, spec string) (*checkpoint.Checkpoint, error) {
	store, err := c.openStore(ctx)
	if err != nil {
		return nil, err
	}
	defer store.Close()
	insp, err := c.inspect(ctx)
	if err != nil {
		return nil, err
	}
	defer insp.Close()
	pos, err := c.resolveSpec(ctx, insp, spec)
	if err != nil {
		return nil, err
	}
	srv := serverIdentity(insp.Server())
	if pos.File != "" {
		if srv.FileStartTime, err = insp.FileStartTime(ctx, pos.File); err != nil {
			return nil, fmt.Errorf("read the start time of %s: %w", pos.File, err)
		}
	}
	cp := checkpoint.New(c.cfg.Name, c.cfg.TablesHash(), binlog.Point{Pos: pos}, srv)
	if err := store.Save(cp); err != nil {
		return nil, fmt.Errorf("write checkpoint: %w", err)
	}
	return cp, nil
}
