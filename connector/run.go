package connector

import (
	"context"
	"errors"
	"fmt"
	"path/filepath"
	"time"

	"github.com/tailbox-cdc/tailbox/connector/observe"
	"github.com/tailbox-cdc/tailbox/connector/pipeline"
	"github.com/tailbox-cdc/tailbox/internal/retry"
	"github.com/tailbox-cdc/tailbox/pkg/binlog"
	"github.com/tailbox-cdc/tailbox/pkg/checkpoint"
	"github.com/tailbox-cdc/tailbox/pkg/kafka"
)

// healthySession is how long a session (or an HA takeover) must have run
// for its failure to start the restart back-off over.
const healthySession = time.Minute

// Run streams until ctx is done — then it stops reading, drains in-flight
// sends, writes the checkpoint and returns nil — or until a fatal error.
// Kafka failures that a retry may fix restart the pipeline from the
// acknowledged checkpoint with back-off; MySQL connection failures are
// retried by the reader.
//
// With ha.enabled the replica first waits for the lease (see runHA).
func (c *Connector) Run(ctx context.Context, opts RunOptions) error {
	c.m.RunStarted(opts.DryRun, opts.Version)
	defer c.m.RunEnded()
	logs := &sourceLogs{ownInspector{c: c}}
	defer logs.close() // after obs.Close: the observer lists no more
	obs, err := observe.Start(ctx, c.m, observe.Options{
		Listen: c.cfg.HTTP.Listen, StatusInterval: c.cfg.Log.StatusInterval.D(), Log: c.log,
		BinaryLogs: logs.list,
	})
	if err != nil {
		return err
	}
	defer obs.Close()
	if c.cfg.HA.Enabled && !opts.DryRun {
		return c.runHA(ctx, opts)
	}
	return c.runActive(ctx, opts)
}

// runActive is Run of the active replica: it loads the checkpoint, opens
// the source, resolves the start point and runs pipeline sessions from it,
// restarting one that failed from the acknowledged checkpoint.
func (c *Connector) runActive(ctx context.Context, opts RunOptions) error {
	ld, err := c.loadCheckpoint(ctx, opts)
	if ld == nil {
		return err // nil when ctx ended
	}
	defer ld.close()
	cp := ld.cp
	reader, err := c.openReader(ctx)
	if err != nil {
		if ctx.Err() != nil {
			return nil
		}
		return err
	}
	defer reader.Close()
	c.m.SourceOpened(reader)
	if err := c.preflight(ctx, reader.Inspector()); err != nil {
		if c.interrupted(ctx, err) {
			return nil
		}
		return err
	}
	c.log.Info().Str("from", opts.From).Bool("checkpoint", cp != nil).Str("start_from", c.cfg.Start.From).Msg("resolving the start position")
	start, source, err := c.startPoint(ctx, reader.Inspector(), cp, opts.From)
	if err != nil {
		if c.interrupted(ctx, err) {
			return nil
		}
		return err
	}
	if ld.empty {
		c.warnNoCheckpoint(start, source)
	}
	srv := reader.Server()
	c.log.Info().Str("binlog_file", start.Pos.File).Uint32("binlog_pos", start.Pos.Pos).Str("gtid", start.Pos.GTID).
		Int("skip", start.Skip).Str("from", source).Str("server_version", srv.Version).Str("flavor", srv.Flavor.String()).
		Bool("dry_run", opts.DryRun).Msg("starting")

	var cl *pipeline.Cleanup
	if c.cleanupOn(opts) {
		var del *sourceDeleter
		cl, del = c.newCleanup(start)
		if opts.From == "" {
			// Only a stored checkpoint is durable: never one --from names.
			c.recoverCleanup(ctx, cl, reader, cp)
		}
		defer startCleanup(ctx, cl, del)()
	}
	cpr := c.checkpointer(ld.store, reader, start, cp != nil && opts.From == "", cp == nil, cl)
	defer func() {
		// --from has taken effect once the point it resolved to is
		// stored; until then a later takeover must resolve it again.
		c.fromResolved = opts.From != "" && cpr.Resolved()
	}()
	p := c.pipeline(reader, cpr, opts)
	if ld.fence != nil {
		if ld.empty && opts.From == "" {
			// See pipeline.Session.StoreStart.
			if err := p.StoreStart(ld.fence, start); err != nil {
				return err
			}
		}
		pipeline.CloseProducer(ld.fence)
		ld.fence = nil
	}
	return c.runSessions(ctx, p, cpr, start)
}

// warnNoCheckpoint says, when the store holds no checkpoint, where it
// looked (the absolute file path, or the Kafka topic and key) and where the
// run starts instead: a checkpoint that was lost, or looked for in the
// wrong place, must not pass for a first start.
func (c *Connector) warnNoCheckpoint(start binlog.Point, source string) {
	ev := c.log.Warn()
	if c.kafkaStore() {
		ev = ev.Str("checkpoint_topic", c.cfg.Checkpoint.Topic).Str("checkpoint_key", c.cfg.Name)
	} else {
		path, err := filepath.Abs(c.cfg.Checkpoint.File)
		if err != nil {
			path = c.cfg.Checkpoint.File
		}
		ev = ev.Str("checkpoint_file", path)
	}
	ev.Str("from", source).Str("binlog_file", start.Pos.File).Uint32("binlog_pos", start.Pos.Pos).Str("gtid", start.Pos.GTID).
		Msg("no checkpoint found: starting from the start position, not where an earlier run stopped (if one ran, its checkpoint is elsewhere or lost)")
}

// loadedCheckpoint is what a run found in its checkpoint store.
type loadedCheckpoint struct {
	store checkpoint.Store       // nil in a dry run
	cp    *checkpoint.Checkpoint // nil: none to start from
	empty bool                   // the store holds no checkpoint at all
	// fence is, with exactly_once, the producer that fenced this name's
	// former one before the load; it stays open until the start is
	// resolved, to store it (see runActive).
	fence *kafka.Producer
}

// close closes the fence producer, if still open, and the store.
func (ld *loadedCheckpoint) close() {
	if ld.fence != nil {
		pipeline.CloseProducer(ld.fence)
		ld.fence = nil
	}
	if ld.store != nil {
		ld.store.Close()
	}
}

// loadCheckpoint opens the checkpoint store and loads this connector's
// checkpoint (none when the store holds none, or when --from replaces an
// unreadable one). A dry run only reads it and opens no store. It returns
// nil and no error when ctx ended first.
func (c *Connector) loadCheckpoint(ctx context.Context, opts RunOptions) (*loadedCheckpoint, error) {
	ld := &loadedCheckpoint{}
	var err error
	if opts.DryRun {
		ld.cp, err = c.readCheckpoint(ctx)
	} else {
		if ld.store, err = c.openStore(ctx); err != nil {
			if ctx.Err() != nil {
				return nil, nil
			}
			return nil, err
		}
		if c.exactlyOnce() {
			// Fence this name's former producer first: a transaction it
			// left open on the checkpoint topic (killed between appending
			// its checkpoint and committing) is aborted now, instead of
			// Load waiting for the transaction timeout to end it.
			if ld.fence, err = c.openProducer(ctx); err != nil {
				ld.close()
				if ctx.Err() != nil {
					return nil, nil
				}
				return nil, err
			}
		}
		ld.cp, err = ld.store.Load(ctx)
	}
	if err != nil && c.interrupted(ctx, err) {
		ld.close()
		return nil, nil
	}
	ld.empty = errors.Is(err, checkpoint.ErrNotFound)
	if ld.cp, err = c.loaded(ld.cp, err, opts); err != nil {
		ld.close()
		return nil, err
	}
	return ld, nil
}

// loaded classifies what a Load returned: no checkpoint (nil, nil), one to
// start from, or the error that ends the run.
func (c *Connector) loaded(cp *checkpoint.Checkpoint, err error, opts RunOptions) (*checkpoint.Checkpoint, error) {
	switch {
	case err == nil:
		return cp, nil
	case errors.Is(err, checkpoint.ErrNotFound):
		return nil, nil
	case errors.Is(err, checkpoint.ErrCorrupt) && opts.From != "":
		// --from wins over the stored checkpoint, which this run replaces.
		c.log.Warn().Err(err).Str("from", opts.From).Msg("ignoring the unreadable checkpoint: --from replaces it")
		return nil, nil
	case c.cfg.HA.Enabled && !errors.Is(err, checkpoint.ErrCorrupt) && !errors.Is(err, checkpoint.ErrInvalid):
		// The store could not be read (Kafka unreachable, a read cut
		// short): a takeover may succeed later, so this is no
		// ErrCheckpoint, which ends an ha replica (see runHA).
		return nil, fmt.Errorf("take over: %w", err)
	case errors.Is(err, checkpoint.ErrOpenTransaction), errors.Is(err, checkpoint.ErrUnavailable):
		// Nothing is wrong with the checkpoint: the next start may read it.
		return nil, fmt.Errorf("load the checkpoint: %w", err)
	}
	return nil, fmt.Errorf("%w: %w (the checkpoint is left as it is; use `tailbox offsets set` to replace it)", ErrCheckpoint, err)
}

// checkpointer returns the run's checkpointer for a stream from start read
// by reader; stored: the store holds start; none: the store held no
// checkpoint; cl: the run's Cleanup (nil without outbox.cleanup).
func (c *Connector) checkpointer(store checkpoint.Store, reader *binlog.Reader, start binlog.Point, stored, none bool, cl *pipeline.Cleanup) *pipeline.Checkpointer {
	return pipeline.NewCheckpointer(pipeline.CheckpointerConfig{
		Name:          c.cfg.Name,
		TablesHash:    c.cfg.TablesHash(),
		Store:         store,
		Server:        func() checkpoint.Server { return serverIdentity(reader.Server()) },
		FileStartTime: c.fileStartTime,
		Transactional: c.exactlyOnce(),
		Cleanup:       cl,
		Hooks:         c.m,
		Log:           c.log,
	}, start, stored, none)
}

// pipeline returns the pipeline of a run that reads from reader and
// checkpoints through cpr.
func (c *Connector) pipeline(reader *binlog.Reader, cpr *pipeline.Checkpointer, opts RunOptions) *pipeline.Session {
	cfg := pipeline.Config{
		Name:                c.cfg.Name,
		ExactlyOnce:         c.exactlyOnce(),
		TransactionalID:     c.transactionalID(),
		TransactionInterval: c.cfg.Kafka.TransactionInterval.D(),
		CheckpointTopic:     c.cfg.Checkpoint.Topic,
		CheckpointInterval:  c.cfg.Checkpoint.Interval.D(),
	}
	if c.deadLettering() {
		cfg.DeadLetterTopic = c.cfg.Outbox.DeadLetterTopic
	}
	return pipeline.New(cfg, pipeline.Deps{
		Reader:       reader,
		Transformer:  c.xform,
		OpenProducer: c.openProducer,
		StartReader:  func(ctx context.Context, p binlog.Point) error { return c.startReader(ctx, reader, p) },
		Checkpointer: cpr,
		Hooks:        c.m,
		Log:          c.log,
		DryRun:       opts.DryRun,
		DryRunOut:    opts.DryRunOut,
	})
}

// runSessions runs sessions of p from start until one stops cleanly or
// fails for good, restarting after a failure worth a retry from the
// acknowledged checkpoint, with back-off; a session that ran for
// healthySession restarts the back-off.
func (c *Connector) runSessions(ctx context.Context, p *pipeline.Session, cpr *pipeline.Checkpointer, start binlog.Point) error {
	b := retry.Backoff{Initial: time.Second, Max: 30 * time.Second, ResetAfter: healthySession}
	for {
		c.m.SessionStarted(start)
		b.Started()
		next, err := p.Run(ctx, start)
		c.m.SessionEnded()
		if err == nil || ctx.Err() != nil {
			// A failure that raced the stop signal is no clean stop.
			return cpr.Final(next, err == nil || errors.Is(err, context.Canceled))
		}
		if ferr := cpr.Final(next, false); ferr != nil {
			c.log.Error().Err(ferr).Msg("write checkpoint")
		}
		if !errors.Is(err, pipeline.ErrRetry) {
			return err
		}
		wait := b.Next()
		c.log.Warn().Err(err).Dur("backoff_ms", wait).Str("binlog_file", next.Pos.File).Uint32("binlog_pos", next.Pos.Pos).
			Int("skip", next.Skip).Msg("producer failed, restarting from the acknowledged checkpoint")
		c.m.Restarted()
		if !retry.Sleep(ctx, wait) {
			return nil
		}
		start = next
	}
}

// interrupted reports whether err, which ended a start step, came from the
// stop signal (ctx is done) rather than from a failure: the run then ends
// as a clean stop, before any checkpoint was written. It logs err, which
// the caller drops.
func (c *Connector) interrupted(ctx context.Context, err error) bool {
	if ctx.Err() == nil {
		return false
	}
	c.log.Info().Err(err).Msg("stopped before the stream started: the checkpoint is left as it was")
	return true
}

// startReader starts reader at p, retrying with back-off while the source
// cannot be reached (a session restarted after a producer failure may find
// the source down as well).
func (c *Connector) startReader(ctx context.Context, reader *binlog.Reader, p binlog.Point) error {
	var b retry.Backoff
	for {
		err := reader.Start(ctx, p.Pos, p.Skip, p.NextTxn)
		if err == nil || !errors.Is(err, binlog.ErrConnection) {
			return err
		}
		if !c.waitForSource(ctx, &b, err) {
			return ctx.Err()
		}
	}
}

// openProducer connects to Kafka, retrying with back-off while no broker
// is reachable or the brokers refuse the SASL login (which an operator may
// fix on the broker's side).
func (c *Connector) openProducer(ctx context.Context) (*kafka.Producer, error) {
	pc, err := c.producerConfig()
	if err != nil {
		return nil, err
	}
	if err := c.confirmLease(ctx, pc.TransactionalID); err != nil {
		return nil, err
	}
	pc.OnRetry = c.m.ProducerRetry
	return retryKafka(ctx, c, func() (*kafka.Producer, error) {
		p, err := kafka.New(ctx, pc)
		if err == nil {
			c.m.ProducerUp(p)
		}
		return p, err
	})
}

// retryKafka calls open until it succeeds, returns an error that is not
// worth retrying, or ctx ends; it backs off from 0.5 s to 30 s and logs
// every failed attempt with its reason.
func retryKafka[T any](ctx context.Context, c *Connector, open func() (T, error)) (T, error) {
	var b retry.Backoff
	for {
		v, err := open()
		if err == nil {
			return v, nil
		}
		wait := b.Next()
		switch {
		case ctx.Err() != nil:
			return v, ctx.Err()
		case errors.Is(err, kafka.ErrAuthentication):
			c.log.Error().Err(err).Int("attempt", b.Attempt()).Dur("backoff_ms", wait).Msg("kafka refused the login (fix kafka.sasl, or the user on the brokers), retrying")
		case errors.Is(err, kafka.ErrUnreachable), errors.Is(err, checkpoint.ErrUnavailable):
			c.log.Warn().Err(err).Int("attempt", b.Attempt()).Dur("backoff_ms", wait).Msg("kafka unreachable, retrying")
		default:
			return v, err
		}
		if !retry.Sleep(ctx, wait) {
			return v, ctx.Err()
		}
	}
}
