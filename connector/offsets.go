package connector

import (
	"context"
	"errors"
	"fmt"

	"github.com/tailbox-cdc/tailbox/pkg/checkpoint"
)

// ShowOffset returns the stored checkpoint without locking it, so it works
// while the connector runs. It wraps checkpoint.ErrNotFound when there is none.
func (c *Connector) ShowOffset() (*checkpoint.Checkpoint, error) {
	cp, err := checkpoint.Read(c.cfg.Checkpoint.File)
	if err != nil {
		if errors.Is(err, checkpoint.ErrNotFound) {
			return nil, fmt.Errorf("no checkpoint at %s: %w", c.cfg.Checkpoint.File, err)
		}
		return nil, fmt.Errorf("%w: %w", ErrCheckpoint, err)
	}
	return cp, nil
}

// SetOffset resolves spec on the source server and replaces the stored
// checkpoint with it (skip 0). It takes the checkpoint lock, so it refuses
// while a connector with the same file runs. A corrupt or foreign checkpoint
// is replaced: this is the way out of those errors. A spec the server cannot
// stream from (purged, beyond the end, not a transaction boundary, a GTID
// set it never executed, a time before its oldest binlog) is an error
// wrapping binlog.ErrPositionUnavailable, and the stored file is left as it
// is.
func (c *Connector) SetOffset(ctx context.Context, spec string) (*checkpoint.Checkpoint, error) {
	store, err := checkpoint.Open(c.cfg.Checkpoint.File)
	if err != nil {
		return nil, fmt.Errorf("open checkpoint: %w", err)
	}
	defer store.Close()
	rc, err := c.readerConfig()
	if err != nil {
		return nil, err
	}
	reader, err := c.dialReader(ctx, rc)
	if err != nil {
		return nil, err
	}
	defer reader.Close()
	pos, err := c.resolveSpec(ctx, reader, spec)
	if err != nil {
		return nil, err
	}
	srv := serverIdentity(reader.Server())
	if pos.File != "" {
		if srv.FileStartTime, err = reader.FileStartTime(ctx, pos.File); err != nil {
			return nil, fmt.Errorf("read the start time of %s: %w", pos.File, err)
		}
	}
	cp := &checkpoint.Checkpoint{
		Name:       c.cfg.Name,
		Position:   toCheckpointPos(pos),
		Server:     srv,
		TablesHash: c.cfg.TablesHash(),
	}
	if err := store.Save(cp); err != nil {
		return nil, fmt.Errorf("write checkpoint: %w", err)
	}
	return cp, nil
}
