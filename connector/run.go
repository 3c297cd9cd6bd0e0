package connector

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/tailbox-cdc/tailbox/connector/observe"
	"github.com/tailbox-cdc/tailbox/pkg/binlog"
	"github.com/tailbox-cdc/tailbox/pkg/checkpoint"
	"github.com/tailbox-cdc/tailbox/pkg/kafka"
	"github.com/tailbox-cdc/tailbox/pkg/outbox"
)

const (
	// drainTimeout bounds waiting for outstanding acknowledgements on stop.
	drainTimeout = 30 * time.Second
	// healthySession is how long a session must have run for its failure
	// to restart the restart back-off at 1s.
	healthySession = time.Minute
)

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
	obs, err := observe.Start(ctx, c.m, observe.Options{
		Listen: c.cfg.HTTP.Listen, StatusInterval: c.cfg.Log.StatusInterval.D(), Log: c.log,
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

// runActive is Run of the active replica.
func (c *Connector) runActive(ctx context.Context, opts RunOptions) error {
	var store checkpoint.Store
	var cp *checkpoint.Checkpoint
	var err error
	if opts.DryRun {
		cp, err = c.readCheckpoint(ctx)
	} else {
		if store, err = c.openStore(ctx); err != nil {
			if ctx.Err() != nil {
				return nil
			}
			return err
		}
		defer store.Close()
		if c.exactlyOnce() {
			// Fence this name's former producer first: a transaction it
			// left open on the checkpoint topic (killed between appending
			// its checkpoint and committing) is aborted now, instead of
			// Load waiting for the transaction timeout to end it.
			prod, err := c.openProducer(ctx)
			if err != nil {
				if ctx.Err() != nil {
					return nil
				}
				return err
			}
			c.closeProducer(prod)
		}
		cp, err = store.Load()
	}
	switch {
	case errors.Is(err, checkpoint.ErrNotFound):
		cp = nil
	case errors.Is(err, checkpoint.ErrCorrupt) && opts.From != "":
		// --from wins over the stored checkpoint, which this run replaces.
		c.log.Warn().Err(err).Str("from", opts.From).Msg("ignoring the unreadable checkpoint: --from replaces it")
		cp = nil
	case err != nil && c.cfg.HA.Enabled && !errors.Is(err, checkpoint.ErrCorrupt) && !errors.Is(err, checkpoint.ErrInvalid):
		// The store could not be read (Kafka unreachable, a read cut
		// short): a takeover may succeed later, so this is no
		// ErrCheckpoint, which ends an ha replica (see runHA).
		return fmt.Errorf("take over: %w", err)
	case errors.Is(err, checkpoint.ErrOpenTransaction), errors.Is(err, checkpoint.ErrUnavailable):
		// Nothing is wrong with the checkpoint: the next start may read it.
		return fmt.Errorf("load the checkpoint: %w", err)
	case err != nil:
		return fmt.Errorf("%w: %w (the checkpoint is left as it is; use `tailbox offsets set` to replace it)", ErrCheckpoint, err)
	}

	reader, err := c.openReader(ctx)
	if err != nil {
		if ctx.Err() != nil {
			return nil
		}
		return err
	}
	defer reader.Close()
	c.m.SourceOpened(reader)
	srv := reader.Server()
	if err := c.preflight(ctx, reader); err != nil {
		if c.interrupted(ctx, err) {
			return nil
		}
		return err
	}

	c.log.Info().Str("from", opts.From).Bool("checkpoint", cp != nil).Str("start_from", c.cfg.Start.From).Msg("resolving the start position")
	start, source, err := c.startPoint(ctx, reader, cp, opts.From)
	if err != nil {
		if c.interrupted(ctx, err) {
			return nil
		}
		return err
	}
	c.log.Info().Str("binlog_file", start.Pos.File).Uint32("binlog_pos", start.Pos.Pos).Str("gtid", start.Pos.GTID).
		Int("skip", start.Skip).Str("from", source).Str("server_version", srv.Version).Str("flavor", srv.Flavor.String()).
		Bool("dry_run", opts.DryRun).Msg("starting")

	// Nothing is written before the stream has started (see saver.started):
	// then the first write records where this run started, even before
	// anything moved, so that a restart never jumps to "latest" again.
	s := &saver{c: c, store: store, srv: serverIdentity(srv), none: cp == nil}
	switch {
	case c.exactlyOnce():
		// Checkpoints are written only inside the Kafka transactions of
		// the events they cover; the first one records the start point.
		s.txn, s.unsaved = true, cp == nil || opts.From != ""
	case cp != nil && opts.From == "":
		// The store holds the start point: the first write is the first
		// move past it.
		s.last, s.saved = start, true
	}
	defer func() {
		// --from has taken effect once the point it resolved to is
		// stored; until then a later takeover must resolve it again.
		c.fromResolved = opts.From != "" && (s.txn && !s.unsaved || !s.txn && s.stored())
	}()

	wait := time.Second
	for {
		c.m.SessionStarted(start)
		began := time.Now()
		next, err := c.session(ctx, reader, start, s, opts)
		c.m.SessionEnded()
		if time.Since(began) > healthySession {
			wait = time.Second // the back-off is for failures in a row
		}
		if err == nil || ctx.Err() != nil {
			// A failure that raced the stop signal is no clean stop.
			return s.final(next, err == nil || errors.Is(err, context.Canceled))
		}
		if ferr := s.final(next, false); ferr != nil {
			c.log.Error().Err(ferr).Msg("write checkpoint")
		}
		if !errors.Is(err, errRetry) {
			return err
		}
		c.log.Warn().Err(err).Dur("backoff", wait).Str("binlog_file", next.Pos.File).Uint32("binlog_pos", next.Pos.Pos).
			Int("skip", next.Skip).Msg("producer failed, restarting from the acknowledged checkpoint")
		c.m.Restarted()
		select {
		case <-ctx.Done():
			return nil
		case <-time.After(wait):
		}
		wait = min(wait*2, 30*time.Second)
		start = next
	}
}

// errRetry marks session errors after which the pipeline restarts.
var errRetry = errors.New("retriable")

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

// saver writes checkpoints.
type saver struct {
	c     *Connector
	store checkpoint.Store
	// txn: delivery exactly_once, where the transaction batcher writes
	// the checkpoints and save is a no-op; unsaved: the start point is not
	// stored yet.
	txn, unsaved bool
	// none: the store held no checkpoint when the run began.
	none bool
	srv  checkpoint.Server
	// started is set once this run's stream is known to flow from its
	// start point (see session's streaming) and stays set for the run.
	// Until then nothing is written — not periodically, not after a
	// failure — so that a start that fails at whatever step leaves the
	// stored checkpoint byte for byte as it was. A stop signal before then
	// writes the start point only into an empty store (see final).
	started atomic.Bool
	mu      sync.Mutex
	last    binlog.Point
	saved   bool
	// startFile is the binlog file whose start time (startTime, zero when
	// unknown) was last looked up, for checkpoint.Server.FileStartTime.
	startFile string
	startTime time.Time
}

// save writes the checkpoint of p unless it is the one last written, or
// the stream has not started; it reports whether it wrote.
func (s *saver) save(p binlog.Point) (bool, error) {
	if s.store == nil || s.txn || !s.started.Load() {
		return false, nil
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.saved && s.last == p {
		s.c.m.CheckpointUnchanged()
		return false, nil
	}
	cp := s.checkpoint(p)
	if err := s.store.Save(cp); err != nil {
		return false, fmt.Errorf("write checkpoint: %w", err)
	}
	s.last, s.saved = p, true
	s.c.m.Checkpointed(p)
	s.c.log.Debug().Str("binlog_file", p.Pos.File).Uint32("binlog_pos", p.Pos.Pos).Str("gtid", p.Pos.GTID).Int("skip", p.Skip).Msg("checkpoint written")
	return true, nil
}

// stored reports whether the store holds this run's checkpoint: the
// stored one it resumed from, or one it wrote.
func (s *saver) stored() bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.saved
}

// checkpoint is the checkpoint of p.
func (s *saver) checkpoint(p binlog.Point) *checkpoint.Checkpoint {
	return &checkpoint.Checkpoint{
		Name:       s.c.cfg.Name,
		Position:   p.Pos,
		Skip:       p.Skip,
		NextTxn:    p.NextTxn,
		Server:     s.server(p.Pos.File),
		TablesHash: s.c.cfg.TablesHash(),
	}
}

// server is what the checkpoint records about the server for a position
// in file: with the file's start time, which detects RESET MASTER on load.
func (s *saver) server(file string) checkpoint.Server {
	srv := s.srv
	if file != "" {
		if file != s.startFile {
			s.startFile, s.startTime = file, s.c.fileStartTime(s.srv.Flavor, file)
		}
		srv.FileStartTime = s.startTime
	}
	return srv
}

// final writes the checkpoint of p at the end of a session, once the
// stream has started. A clean stop before then writes the start point into
// a store that held no checkpoint: it was resolved and checked against the
// server, and without it a restart would resolve start.from (latest) again
// and pass over what was committed meanwhile. A stored checkpoint stays as
// it was (a --from that never took effect changes nothing), and a failure
// before then writes nothing.
func (s *saver) final(p binlog.Point, clean bool) error {
	if s.store == nil {
		return nil
	}
	if !s.started.Load() {
		if !clean || s.txn || !s.none || s.stored() {
			s.c.log.Info().Msg("the stream did not start: the checkpoint is left as it was")
			return nil
		}
		s.c.log.Info().Msg("stopped before the stream started: writing the start point, where the next run resumes")
		s.started.Store(true)
	}
	if _, err := s.save(p); err != nil {
		return err
	}
	s.c.log.Info().Str("binlog_file", p.Pos.File).Uint32("binlog_pos", p.Pos.Pos).Str("gtid", p.Pos.GTID).Int("skip", p.Skip).Msg("checkpoint saved")
	return nil
}

// session runs the pipeline once from start and returns the committed point.
func (c *Connector) session(ctx context.Context, reader *binlog.Reader, start binlog.Point, s *saver, opts RunOptions) (binlog.Point, error) {
	sctx, cancel := context.WithCancel(ctx)
	defer cancel()

	var prod *kafka.Producer
	if s.txn && !opts.DryRun {
		// The transactional producer first fences any former producer of
		// this name (InitProducerId), then the checkpoint is read: every
		// transaction committed before the fence is in it, and none can
		// commit after.
		var err error
		if prod, err = c.openProducer(sctx); err != nil {
			return start, err
		}
		if !s.unsaved {
			cp, err := s.store.Load()
			switch {
			case errors.Is(err, checkpoint.ErrNotFound):
				// Deleted meanwhile: keep the start, which commits at once.
				c.log.Warn().Err(err).Msg("the checkpoint stored in Kafka is gone; writing it again")
				s.unsaved, cp = true, nil
			case errors.Is(err, checkpoint.ErrCorrupt):
				c.closeProducer(prod)
				return start, fmt.Errorf("%w: %w (the checkpoint is left as it is; use `tailbox offsets set` to replace it)", ErrCheckpoint, err)
			case err != nil:
				c.closeProducer(prod)
				return start, fmt.Errorf("%w: reload the checkpoint after fencing: %w", errRetry, err)
			}
			if cp != nil {
				if p := cp.Point(); p != start {
					c.log.Info().Str("binlog_file", p.Pos.File).Uint32("binlog_pos", p.Pos.Pos).Str("gtid", p.Pos.GTID).Int("skip", p.Skip).
						Msg("resuming from the checkpoint stored in Kafka")
					start = p
				}
			}
		}
	}
	tr := newTracker(start)
	c.m.Tracking(trackerProgress{tr}, start)
	if s.store != nil && !s.txn {
		tr.caughtUp = make(chan struct{}, 1) // see the checkpoint goroutine
	}
	// streaming reports whether the stream flows from start, and from its
	// first true answer on sets s.started: the reader handed on an item (a
	// transaction end or a captured row read after start), or the server
	// sent a heartbeat, which it does only when it has sent everything
	// from start and waits for more. A server that cannot serve start
	// refuses it (error 1236) before either.
	streaming := func() bool {
		if s.started.Load() {
			return true
		}
		if tr.streamed() || !reader.Stats().LastHeartbeat.IsZero() {
			s.started.Store(true)
			return true
		}
		return false
	}
	if err := c.startReader(ctx, reader, start); err != nil {
		if prod != nil {
			c.closeProducer(prod)
		}
		return start, err
	}
	if prod == nil && !opts.DryRun {
		var err error
		if prod, err = c.openProducer(sctx); err != nil {
			return start, err
		}
	}
	var batch *txnBatcher
	if s.txn && prod != nil {
		batch = newTxnBatcher(c, prod, tr, start, s.unsaved, streaming, s.checkpoint)
	}

	var (
		wg     sync.WaitGroup
		ackMu  sync.Mutex
		ackErr error
		sem    = newInFlight(maxInFlight, maxInFlightBytes)
	)
	// failed is cancelled at the first failed delivery: the producer is
	// then abandoned rather than drained (see abandon).
	failed, fail := context.WithCancel(context.Background())
	defer fail()
	if prod != nil {
		wg.Add(1)
		go func() {
			defer wg.Done()
			acks := prod.Acks()
			burst := make([]kafka.Ack, 0, ackBurst)
			seqs := make([]uint64, 0, ackBurst)
			var size int64
			settle := func() {
				if len(seqs) > 0 {
					tr.settle(seqs...)
					sem.release(len(seqs), size)
					seqs, size = seqs[:0], 0
				}
			}
			for ack := range acks {
				// A broker's response acknowledges a whole batch: take
				// the acknowledgements already waiting too, so that the
				// tracker and the in-flight bound are updated once per
				// burst (a closed channel ends the burst, then the loop).
				burst = append(burst[:0], ack)
			more:
				for len(burst) < cap(burst) {
					select {
					case a, ok := <-acks:
						if !ok {
							break more
						}
						burst = append(burst, a)
					default:
						break more
					}
				}
				now := time.Now().UnixNano()
				for i := range burst {
					ack := &burst[i]
					meta, event := ack.Record.Meta.(*sendMeta)
					if event || ack.Err != nil {
						c.m.Acked(ack.Record.Topic, meta.commitNanos(), ack.Err, now)
					}
					if ack.Err != nil {
						settle() // the acknowledgements before it
						ackMu.Lock()
						if ackErr == nil {
							ackErr = c.deliveryError(*ack)
						}
						ackMu.Unlock()
						cancel()
						if batch != nil {
							// The open transaction is aborted at the end
							// of the session, which needs the producer:
							// keep draining it.
							continue
						}
						fail()
						abandon(failed, prod)
						return // later acks are dropped: their records are resent
					}
					if event {
						seqs = append(seqs, meta.seq)
						size += int64(meta.size)
					}
				}
				settle()
				clear(burst) // hold no record until the next burst
			}
		}()
	}

	// Periodic checkpoint, or commit of the transaction; and the
	// checkpoint once the stream pauses with everything read acknowledged
	// (caughtUp, then nothing committed for caughtUpQuiet), at most every
	// caughtUpGap(interval) on top of the periodic ones; and, as soon as
	// the stream has started, the start point when the store lacks it.
	stopTick := make(chan struct{})
	every := c.cfg.Checkpoint.Interval.D()
	if batch != nil {
		every = max(c.cfg.Kafka.TransactionInterval.D()/2, time.Millisecond)
	}
	wg.Add(1)
	go func() {
		defer wg.Done()
		t := time.NewTicker(every)
		defer t.Stop()
		var (
			gap     = caughtUpGap(every)
			last    time.Time        // of the last checkpoint written, but the run's first
			first   = !s.stored()    // the next write is the run's first, of its start point
			pause   *time.Timer      // runs from the last caught-up signal to its check
			due     <-chan time.Time // pause's channel while it runs
			version uint64           // of the committed point at the last signal
			poll    <-chan time.Time // polls streaming while the start point waits for it
		)
		if first && batch == nil && s.store != nil {
			// An idle stream starts with a heartbeat, which signals nothing.
			pt := time.NewTicker(startPoll)
			defer pt.Stop()
			poll = pt.C
		}
		save := func(why string) {
			if !streaming() {
				return
			}
			poll = nil
			p, _ := tr.committed()
			wrote, err := s.save(p)
			if err != nil {
				c.log.Error().Err(err).Msg(why)
			}
			if wrote && first {
				// The start point: not one of the caught-up writes the
				// gap bounds.
				first = false
				return
			}
			last = time.Now()
		}
		for {
			select {
			case <-stopTick:
				if pause != nil {
					pause.Stop()
				}
				return
			case <-poll:
				save("checkpoint of the start point")
			case <-t.C:
				if batch != nil {
					if err := batch.tick(sctx); err != nil {
						cancel() // the pump sees it at its next record
						return
					}
					continue
				}
				save("periodic checkpoint")
			case <-tr.caughtUp:
				// Each signal postpones the check: a steady stream,
				// caught up after every transaction, never lets it run.
				_, version = tr.committed()
				wait := max(caughtUpQuiet, gap-time.Since(last))
				if pause == nil {
					pause = time.NewTimer(wait)
				} else {
					pause.Reset(wait)
				}
				due = pause.C
			case <-due:
				due = nil
				// Nothing committed since the last signal: the stream
				// paused there. Otherwise the stream went on without
				// catching up, and the next signal will come.
				if _, v := tr.committed(); v == version {
					save("checkpoint after catching up")
				}
			}
		}
	}()

	readErr := c.pump(sctx, reader, tr, prod, batch, sem, opts)
	var txnErr error
	if batch != nil {
		ackMu.Lock()
		ackFailed := ackErr != nil
		ackMu.Unlock()
		if ackFailed {
			txnErr = batch.abort()
			// Nothing of the aborted transaction needs to drain (sarama
			// may retry a fenced batch for minutes): give it up.
			fail()
		} else {
			// A clean stop, or a source error: what was read is consistent
			// with the read point, so it commits.
			txnErr = batch.finish(context.Background())
		}
	}

	// Stop: no more intake; drain what is in flight, then checkpoint.
	if prod != nil {
		dctx, dcancel := context.WithTimeout(failed, drainTimeout)
		if err := prod.Close(dctx); err != nil && failed.Err() == nil {
			c.log.Warn().Err(err).Int("in_flight", tr.inFlight()).Msg("producer did not drain before the timeout")
		}
		dcancel()
	}
	close(stopTick)
	wg.Wait()
	streaming() // for the caller's final checkpoint
	p, _ := tr.committed()
	if batch != nil {
		p = batch.last()
		s.unsaved = s.unsaved && !batch.stored()
	}

	ackMu.Lock()
	aerr := ackErr
	ackMu.Unlock()
	switch {
	case errors.Is(txnErr, kafka.ErrFenced):
		return p, txnErr // not retried: that would fence the new producer
	case errors.Is(aerr, kafka.ErrFenced):
		return p, aerr
	case aerr != nil:
		return p, aerr
	case txnErr != nil:
		return p, txnErr
	case readErr != nil && ctx.Err() == nil && !errors.Is(readErr, context.Canceled):
		return p, readErr
	}
	return p, nil
}

// caughtUpQuiet is how long the committed point must stay where a
// caught-up signal found it before that checkpoint is written: a steady
// stream, caught up after each of its transactions, is not written more
// often than its interval, only one that pauses.
const caughtUpQuiet = 10 * time.Millisecond

// startPoll is how often a run whose store lacks its start point checks
// whether the stream has started, to write the start point then.
const startPoll = 50 * time.Millisecond

// caughtUpGap is the shortest time between a checkpoint and the next one
// written because the stream paused: a tenth of the checkpoint interval, so
// that transactions that each arrive after a pause cost at most ten times
// the periodic writes.
func caughtUpGap(interval time.Duration) time.Duration { return interval / 10 }

// startReader starts reader at p, retrying with back-off while the source
// cannot be reached (a session restarted after a producer failure may find
// the source down as well).
func (c *Connector) startReader(ctx context.Context, reader *binlog.Reader, p binlog.Point) error {
	wait := 500 * time.Millisecond
	for attempt := 1; ; attempt++ {
		err := reader.Start(ctx, p.Pos, p.Skip, p.NextTxn)
		if err == nil || !errors.Is(err, binlog.ErrConnection) {
			return err
		}
		c.log.Warn().Err(err).Int("attempt", attempt).Dur("backoff", wait).Msg("source unreachable, retrying")
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(wait):
		}
		wait = min(wait*2, 30*time.Second)
	}
}

// abandon stops prod at once after a failed delivery (failed is done),
// instead of draining it: sarama gives up on a batch whose leader it cannot
// find and goes on with the partition's next records under a new producer
// epoch, so a drain could write records of a key before the failed one,
// which the next session only resends after them — and a drain retries
// with back-off for up to drainTimeout. Records sarama still holds are
// never acknowledged, so the checkpoint stays before them and the next
// session resends them.
func abandon(failed context.Context, prod *kafka.Producer) {
	_ = prod.Close(failed) // reports the records given up
}

// Pipeline stages: the decode stage (reader.Next, Transform, the poison
// rules) and the send stage (back-pressure, commit rule, producer) run on
// their own goroutines, handing over batches of up to pipeBatch steps in
// binlog order, at most pipeDepth batches ahead.
const (
	pipeBatch = 256
	pipeDepth = 4
)

// ackBurst bounds the acknowledgements settled at once: a burst releases
// its in-flight room only when it is settled, so it stays well below the
// in-flight bound's wake-up slack (maxInFlight/16).
const ackBurst = 64

// step is what the send stage does for one binlog item, in order.
type step struct {
	marker bool
	pos    binlog.Position // marker
	index  int             // slot: captured row index in its transaction
	txn    string          // slot: transaction identity
	out    *outRecord      // slot: the record; nil when nothing is sent
}

// pump reads changes, transforms them and hands records to the producer
// until ctx is done or an error occurs. The steps decoded before an error
// are still handed on, so that the checkpoint reaches the failing row.
func (c *Connector) pump(ctx context.Context, reader *binlog.Reader, tr *tracker, prod *kafka.Producer, batch *txnBatcher, sem *inFlight, opts RunOptions) error {
	pctx, cancel := context.WithCancel(ctx)
	defer cancel()
	batches := make(chan []step, pipeDepth)
	free := make(chan []step, pipeDepth+2)
	var decodeErr error
	decoded := make(chan struct{})
	go func() {
		defer close(decoded)
		defer close(batches)
		decodeErr = c.decode(pctx, reader, prod, batches, free)
	}()
	err := c.send(pctx, batches, free, tr, prod, batch, sem, opts)
	cancel()
	for range batches { // let decode finish
	}
	<-decoded
	if err != nil {
		return err
	}
	return decodeErr
}

// decode is the first pipeline stage: binlog items to steps.
func (c *Connector) decode(ctx context.Context, reader *binlog.Reader, prod *kafka.Producer, out chan<- []step, free chan []step) error {
	buf := make([]step, 0, pipeBatch)
	var recs records
	flush := func() error {
		if len(buf) == 0 {
			return nil
		}
		select {
		case out <- buf:
		case <-ctx.Done():
			return ctx.Err()
		}
		select {
		case buf = <-free:
		default:
			buf = make([]step, 0, pipeBatch)
		}
		return nil
	}
	for {
		it, err := reader.Next(ctx)
		if err != nil {
			if ferr := flush(); ferr != nil {
				return ferr
			}
			return err
		}
		st, err := c.decodeItem(&it, prod, &recs)
		if err != nil {
			if ferr := flush(); ferr != nil {
				return ferr
			}
			return err
		}
		buf = append(buf, st)
		// Hand on a full batch, and whatever is there once the reader
		// has nothing decoded left: a batch never waits for the network.
		if len(buf) == cap(buf) || reader.Buffered() == 0 {
			if err := flush(); err != nil {
				return err
			}
		}
	}
}

// decodeItem turns one binlog item into its step: a marker, a record to
// send, or a row that sends nothing. A poison event is an error with
// on_error fail, and a dead-letter record with dead_letter.
func (c *Connector) decodeItem(it *binlog.Item, prod *kafka.Producer, recs *records) (step, error) {
	if it.Kind == binlog.ItemMarker {
		c.m.Marker(it.Marker)
		return step{marker: true, pos: it.Marker}, nil
	}
	ch := &it.Change
	c.m.Read(ch.Table)
	txn := ch.Txn.GTID
	if txn == "" {
		txn = ch.Txn.Begin.File + ":" + strconv.FormatUint(uint64(ch.Txn.Begin.Pos), 10)
	}
	st := step{index: ch.Index, txn: txn}
	res, err := c.xform.Transform(ch)
	var poison error
	if err != nil {
		if !outbox.IsPoison(err) {
			return st, fmt.Errorf("transform row of %s at %s:%d: %w", ch.Table, ch.File, ch.Pos, err)
		}
		poison = err
	}
	if res.Warning != "" {
		c.log.Warn().Str("table", ch.Table.String()).Str("binlog_file", ch.File).Uint32("binlog_pos", ch.Pos).
			Str("gtid", ch.Txn.GTID).Str("op", ch.Op.String()).Msg(res.Warning)
	}
	if poison == nil && res.Action != outbox.Publish {
		return st, nil
	}
	out := recs.of(&res.Event)
	rec := &out.Record
	if poison == nil && prod != nil {
		poison = prod.Fits(rec)
	}
	if poison != nil {
		if !c.deadLettering() {
			c.m.Rejected(rec.Topic, poison)
			return st, fmt.Errorf("%w: event %s (row %d of transaction %s in %s at %s:%d): %w (outbox.on_error is fail: stopped before it, the checkpoint stays before it; fix the row or the route template, set on_error: dead_letter, or move past it with `tailbox offsets set`)",
				ErrRejected, res.Event.ID, ch.Index, txn, ch.Table, ch.File, ch.Pos, poison)
		}
		c.m.DeadLettered(rec.Topic, poison)
		out = c.deadLetter(rec, poison, prod)
		rec = &out.Record
		c.log.Warn().Err(poison).Str("event_id", res.Event.ID).Str("topic", rec.Topic).Str("table", ch.Table.String()).
			Str("binlog_file", ch.File).Uint32("binlog_pos", ch.Pos).Msg("event sent to the dead-letter topic")
	}
	out.meta = sendMeta{commit: commitNanos(ch.Txn), size: rec.Size()}
	st.out = out
	return st, nil
}

// send is the second pipeline stage: it applies the steps in order until
// in closes or an error occurs.
func (c *Connector) send(ctx context.Context, in <-chan []step, free chan<- []step, tr *tracker, prod *kafka.Producer, batch *txnBatcher, sem *inFlight, opts RunOptions) error {
	out := opts.DryRunOut
	if out == nil {
		out = os.Stdout
	}
	for b := range in {
		for i := range b {
			if err := c.sendStep(ctx, &b[i], out, tr, prod, batch, sem); err != nil {
				return err
			}
			b[i] = step{}
		}
		select {
		case free <- b[:0]:
		default:
		}
	}
	return nil
}

func (c *Connector) sendStep(ctx context.Context, st *step, out io.Writer, tr *tracker, prod *kafka.Producer, batch *txnBatcher, sem *inFlight) error {
	switch {
	case st.marker:
		tr.pushMarker(st.pos)
		return nil
	case st.out == nil:
		tr.pushSlot(st.index, st.txn, true)
		return nil
	case prod == nil:
		if err := printRecord(out, &st.out.Record); err != nil {
			return fmt.Errorf("dry run output: %w", err)
		}
		tr.pushSlot(st.index, st.txn, true)
		return nil
	}
	// Back-pressure: bounded by count and by bytes in flight.
	size := st.out.meta.size
	if err := sem.acquire(ctx, size); err != nil {
		return err
	}
	if batch != nil {
		// exactly_once: the slot and its record join the open
		// transaction together (see txnBatcher).
		if err := batch.lock(); err != nil {
			return err
		}
	}
	st.out.meta.seq = tr.pushSlot(st.index, st.txn, false)
	err := prod.Send(ctx, &st.out.Record)
	if batch != nil {
		if cerr := batch.unlock(ctx, size, err == nil); err == nil {
			err = cerr
		}
	}
	return err
}

// outRecord is a record the connector sends, with its sendMeta (the
// record's Meta points to it) and room for its headers.
type outRecord struct {
	kafka.Record
	meta sendMeta
	hdrs [4]kafka.Header
}

// records hands out the outRecords of the decode stage from blocks of
// recordBlock: one allocation for a block instead of one per event. A
// block stays allocated, with what its records point to, while any of its
// records is referenced: records are acknowledged about in the order they
// were made, so that is not long. Used by one goroutine.
type records struct{ free []outRecord }

const recordBlock = 16

// of returns a new record of ev.
func (r *records) of(ev *outbox.Event) *outRecord {
	if len(r.free) == 0 {
		r.free = make([]outRecord, recordBlock)
	}
	o := &r.free[0]
	r.free = r.free[1:]
	o.Record = kafka.Record{Topic: ev.Topic, Key: ev.Key, Value: ev.Value, Timestamp: ev.Timestamp}
	o.Meta = &o.meta
	if len(ev.Headers) > 0 {
		hs := o.hdrs[:0]
		if len(ev.Headers) > len(o.hdrs) {
			hs = make([]kafka.Header, 0, len(ev.Headers))
		}
		for _, h := range ev.Headers {
			hs = append(hs, kafka.Header{Key: h.Key, Value: h.Value})
		}
		o.Headers = hs
	}
	return o
}

// Headers of dead-lettered records.
const (
	headerError         = "tailbox.error"
	headerOriginalTopic = "tailbox.original.topic"
	headerValueDropped  = "tailbox.value.dropped"
)

// deadLetter readdresses rec to outbox.dead_letter_topic with the reason and
// the original topic in headers. A value that alone makes the record too
// large is dropped (header tailbox.value.dropped=true), so that the
// dead-letter record itself can be delivered.
func (c *Connector) deadLetter(rec *kafka.Record, reason error, prod *kafka.Producer) *outRecord {
	o := &outRecord{Record: *rec}
	o.Meta = &o.meta
	dl := &o.Record
	dl.Topic = c.cfg.Outbox.DeadLetterTopic
	dl.Headers = append(append([]kafka.Header(nil), rec.Headers...),
		kafka.Header{Key: headerError, Value: []byte(reason.Error())},
		kafka.Header{Key: headerOriginalTopic, Value: []byte(rec.Topic)})
	if prod != nil && prod.Fits(dl) != nil {
		dl.Value = nil
		dl.Headers = append(dl.Headers, kafka.Header{Key: headerValueDropped, Value: []byte("true")})
	}
	return o
}

// deliveryError classifies a failed acknowledgement.
func (c *Connector) deliveryError(ack kafka.Ack) error {
	r := ack.Record
	id := ""
	for _, h := range r.Headers {
		if h.Key == "id" {
			id = string(h.Value)
		}
	}
	if c.exactlyOnce() && kafka.IsFenced(ack.Err) {
		return fmt.Errorf("%w: deliver event %s to topic %s: %w (another tailbox named %q took over)", kafka.ErrFenced, id, r.Topic, ack.Err, c.cfg.Name)
	}
	if kafka.IsPermanent(ack.Err) {
		return fmt.Errorf("%w: Kafka refused event %s for topic %s for good: %w (the checkpoint stays before it)", ErrRejected, id, r.Topic, ack.Err)
	}
	return fmt.Errorf("%w: deliver event %s to topic %s: %w", errRetry, id, r.Topic, ack.Err)
}

// closeProducer closes a producer that has sent nothing the caller waits
// for, dropping its acknowledgements.
func (c *Connector) closeProducer(prod *kafka.Producer) {
	go func() {
		for range prod.Acks() {
		}
	}()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	_ = prod.Close(ctx)
}

// openProducer connects to Kafka, retrying with back-off while no broker
// is reachable or the brokers refuse the SASL login (which an operator may
// fix on the broker's side).
func (c *Connector) openProducer(ctx context.Context) (*kafka.Producer, error) {
	pc, err := c.producerConfig()
	if err != nil {
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
	wait := 500 * time.Millisecond
	for attempt := 1; ; attempt++ {
		v, err := open()
		if err == nil {
			return v, nil
		}
		switch {
		case ctx.Err() != nil:
			return v, ctx.Err()
		case errors.Is(err, kafka.ErrAuthentication):
			c.log.Error().Err(err).Int("attempt", attempt).Dur("backoff", wait).Msg("kafka refused the login (fix kafka.sasl, or the user on the brokers), retrying")
		case errors.Is(err, kafka.ErrUnreachable), errors.Is(err, checkpoint.ErrUnavailable):
			c.log.Warn().Err(err).Int("attempt", attempt).Dur("backoff", wait).Msg("kafka unreachable, retrying")
		default:
			return v, err
		}
		select {
		case <-ctx.Done():
			return v, ctx.Err()
		case <-time.After(wait):
		}
		wait = min(wait*2, 30*time.Second)
	}
}

// dryRunRecord is one line of --dry-run output.
type dryRunRecord struct {
	Topic     string            `json:"topic"`
	Key       *string           `json:"key"`
	Headers   map[string]string `json:"headers"`
	Timestamp string            `json:"timestamp"`
	Value     json.RawMessage   `json:"value"`
}

func printRecord(w io.Writer, rec *kafka.Record) error {
	r := dryRunRecord{Topic: rec.Topic, Headers: map[string]string{}, Timestamp: rec.Timestamp.UTC().Format(time.RFC3339Nano)}
	if rec.Key != nil {
		k := string(rec.Key)
		r.Key = &k
	}
	for _, h := range rec.Headers {
		r.Headers[h.Key] = string(h.Value)
	}
	switch {
	case rec.Value == nil:
		r.Value = json.RawMessage("null")
	case json.Valid(rec.Value):
		r.Value = rec.Value
	default:
		b, _ := json.Marshal(string(rec.Value))
		r.Value = b
	}
	b, err := json.Marshal(r)
	if err != nil {
		return err
	}
	_, err = w.Write(append(b, '\n'))
	return err
}
