package connector

import (
	"cmp"
	"context"
	"strings"
	"sync"

	"github.com/tailbox-cdc/tailbox/connector/pipeline"
	"github.com/tailbox-cdc/tailbox/pkg/binlog"
	"github.com/tailbox-cdc/tailbox/pkg/checkpoint"
	"github.com/tailbox-cdc/tailbox/pkg/kafka"
)

// cleanupOn reports whether outbox.cleanup deletes published rows in a
// run with opts (never in a dry run).
func (c *Connector) cleanupOn(opts RunOptions) bool {
	return c.cfg.Outbox.Cleanup.Enabled && !opts.DryRun
}

// newCleanup returns the Cleanup of a run that starts at start, before
// which every remembered row is deleted.
func (c *Connector) newCleanup(start binlog.Point) (*pipeline.Cleanup, *sourceDeleter) {
	cl := c.cfg.Outbox.Cleanup
	del := &sourceDeleter{ownInspector{c: c}}
	return pipeline.NewCleanup(pipeline.CleanupConfig{
		IDColumn:        c.cfg.Outbox.Fields.ID,
		Retention:       cl.Retention.D(),
		BatchSize:       cl.BatchSize,
		Rate:            cl.Rate,
		MaxPending:      cl.MaxPending,
		MaxMessageBytes: cmp.Or(c.cfg.Kafka.MaxMessageBytes, kafka.DefaultMaxMessageBytes),
		Delete:          del.delete,
		Hooks:           c.m,
		Log:             c.log.With().Str("component", "cleanup").Logger(),
	}, start), del
}

// recoverCleanup reads back from the binlog the keys of the rows a former
// run published and did not delete: from the checkpoint's Cleaned point to
// the checkpoint itself, which is durable. It does so only where the two
// positions are comparable: file positions of this server's binlog. A
// failure is logged: those rows stay in the table.
func (c *Connector) recoverCleanup(ctx context.Context, cl *pipeline.Cleanup, reader *binlog.Reader, cp *checkpoint.Checkpoint) {
	if cp == nil || cp.Cleaned == nil {
		return
	}
	from, to := cp.Cleaned.Point(), cp.Point()
	if from == to {
		return
	}
	srv := reader.Server()
	recorded := binlog.Server{ServerID: cp.Server.ServerID, ServerUUID: cp.Server.ServerUUID, BinlogBasename: cp.Server.BinlogBasename}
	if from.Pos.File == "" || to.Pos.File == "" || basename(from.Pos.File) != basename(to.Pos.File) ||
		basename(to.Pos.File) != srv.BinlogBasename || !binlog.SameServer(recorded, srv) || from.Pos.Compare(to.Pos) > 0 {
		c.log.Warn().Str("cleaned", from.Pos.String()).Str("checkpoint", to.Pos.String()).
			Msg("outbox cleanup: the rows published before the checkpoint that an earlier run did not delete cannot be found on this server's binlog; they stay in the table")
		return
	}
	n, err := cl.Recover(ctx, reader, c.xform, from, to)
	if err != nil {
		if ctx.Err() == nil {
			c.log.Warn().Err(err).Str("cleaned", from.Pos.String()).Str("checkpoint", to.Pos.String()).Int("rows", n).
				Msg("outbox cleanup: reading back the rows an earlier run did not delete failed; the rows not found stay in the table")
		}
		return
	}
	c.log.Info().Str("cleaned", from.Pos.String()).Str("checkpoint", to.Pos.String()).Int("rows", n).
		Msg("outbox cleanup: read back the rows an earlier run published and did not delete")
}

// basename is a binlog file name without its numeric extension.
func basename(file string) string {
	if i := strings.LastIndexByte(file, '.'); i >= 0 {
		return file[:i]
	}
	return file
}

// startCleanup runs cl's deletes on a goroutine until the returned
// function is called, which waits for it and closes its connection.
func startCleanup(ctx context.Context, cl *pipeline.Cleanup, del *sourceDeleter) (stop func()) {
	cctx, cancel := context.WithCancel(ctx)
	var wg sync.WaitGroup
	wg.Go(func() { cl.Run(cctx) })
	return func() {
		cancel()
		wg.Wait()
		del.close()
	}
}

// sourceDeleter deletes outbox rows on a source connection of its own,
// never the stream's. Used by the cleanup goroutine only.
type sourceDeleter struct{ ownInspector }

// delete deletes the rows of schema.table whose id is one of keys.
func (d *sourceDeleter) delete(ctx context.Context, schema, table string, keys []any) (n int64, err error) {
	err = d.do(ctx, func(in *binlog.Inspector) error {
		n, err = in.DeleteRows(ctx, schema, table, d.c.cfg.Outbox.Fields.ID, keys)
		return err
	})
	return n, err
}
