package pipeline

import (
	"context"
	"errors"
	"fmt"
	"io"
	"sync"
	"time"

	"github.com/rs/zerolog"

	"github.com/tailbox-cdc/tailbox/pkg/binlog"
	"github.com/tailbox-cdc/tailbox/pkg/checkpoint"
	"github.com/tailbox-cdc/tailbox/pkg/kafka"
	"github.com/tailbox-cdc/tailbox/pkg/outbox"
)

// DrainTimeout bounds waiting for outstanding acknowledgements on stop
// (SIGINT/SIGTERM): a supervisor's stop timeout (systemd TimeoutStopSec,
// Kubernetes terminationGracePeriodSeconds) must be longer, with room for
// writing the checkpoint and closing the connections.
const DrainTimeout = 30 * time.Second

// drainProgressEvery is how often a drain that still waits logs how many
// events are in flight and how long it has waited.
const drainProgressEvery = 5 * time.Second

// Deps are what a session works with; the lobby owns them.
type Deps struct {
	Reader      *binlog.Reader
	Transformer *outbox.Transformer
	// OpenProducer connects a producer (with exactly_once, a
	// transactional one, which fences its former producer), retrying
	// while Kafka is unreachable.
	OpenProducer func(context.Context) (*kafka.Producer, error)
	// StartReader starts Reader at a point, retrying while the source is
	// unreachable.
	StartReader func(context.Context, binlog.Point) error
	// Checkpointer writes the run's checkpoints.
	Checkpointer *Checkpointer
	Hooks        Hooks
	Log          zerolog.Logger
	// DryRun prints the records to DryRunOut instead of producing them.
	DryRun    bool
	DryRunOut io.Writer
}

// Session runs the pipeline: each Run is one session, from a start point
// until it stops or fails.
type Session struct {
	cfg  Config
	deps Deps
}

// New returns a Session of cfg over deps.
func New(cfg Config, deps Deps) *Session { return &Session{cfg: cfg, deps: deps} }

// session is the state of one Run.
type session struct {
	cfg    *Config
	cp     *Checkpointer
	reader *binlog.Reader
	hooks  Hooks
	log    zerolog.Logger
	// ctx is the session's: cancelled at its first failure, so that the
	// pump stops.
	ctx    context.Context
	cancel context.CancelFunc

	tr    *Tracker
	prod  *kafka.Producer // nil in a dry run
	batch *txnBatcher     // exactly_once
	clean *Cleanup        // outbox.cleanup; nil when off
	sem   *inFlight

	ackMu  sync.Mutex
	ackErr error // the first failed delivery
	// failed is cancelled at the first failed delivery: the producer is
	// then abandoned rather than drained (see abandon).
	failed context.Context
	fail   context.CancelFunc
}

// Run runs one session from start, the acknowledged checkpoint, until ctx
// is done (it then drains what is in flight) or a failure ends it. It
// returns the point everything before which is acknowledged: where the
// next session starts. Errors wrapping ErrRetry are worth a restart from
// there.
func (ss *Session) Run(ctx context.Context, start binlog.Point) (binlog.Point, error) {
	sctx, cancel := context.WithCancel(ctx)
	defer cancel()
	s := &session{
		cfg: &ss.cfg, cp: ss.deps.Checkpointer, reader: ss.deps.Reader, hooks: ss.deps.Hooks, log: ss.deps.Log,
		ctx: sctx, cancel: cancel, sem: newInFlight(maxInFlight, maxInFlightBytes),
	}
	s.failed, s.fail = context.WithCancel(context.Background())
	defer s.fail()

	if s.cp.cfg.Transactional && !ss.deps.DryRun {
		var err error
		if start, err = s.fenceAndReload(ss.deps.OpenProducer, start); err != nil {
			return start, err
		}
	}
	s.tr = NewTracker(start)
	if !ss.deps.DryRun {
		s.clean = s.cp.cfg.Cleanup
	}
	if s.clean != nil {
		s.clean.beginSession()
	}
	s.hooks.Tracking(s.tr, start)
	if s.cp.cfg.Store != nil && !s.cp.cfg.Transactional {
		s.tr.caughtUp = make(chan struct{}, 1) // see the cadence
	}
	if err := ss.deps.StartReader(ctx, start); err != nil {
		if s.prod != nil {
			CloseProducer(s.prod)
		}
		return start, err
	}
	if s.prod == nil && !ss.deps.DryRun {
		var err error
		if s.prod, err = ss.deps.OpenProducer(sctx); err != nil {
			return start, err
		}
	}
	if s.cp.cfg.Transactional && s.prod != nil {
		s.batch = newTxnBatcher(s, start, s.cp.unsaved)
	}

	var wg sync.WaitGroup
	if s.prod != nil {
		wg.Go(s.runAcks)
	}
	stop := make(chan struct{})
	wg.Go(func() { s.runCadence(stop) })

	dec := &decoder{s: s, xform: ss.deps.Transformer}
	snd := &sender{s: s, out: ss.deps.DryRunOut}
	readErr := s.pump(dec, snd)
	txnErr := s.endTxn()
	s.drain()
	close(stop)
	wg.Wait()
	s.streaming() // for the caller's final checkpoint
	p, seq := s.tr.CommittedMark()
	end := s.clean.global(seq)
	if s.batch != nil {
		p, end = s.batch.last()
		s.cp.unsaved = s.cp.unsaved && !s.batch.stored()
	}
	if s.clean != nil {
		s.clean.endSession(end)
	}
	return p, s.outcome(ctx, readErr, txnErr)
}

// fenceAndReload opens the transactional producer, which first fences any
// former producer of this name (InitProducerId); then the checkpoint is
// read: every transaction committed before the fence is in it, and none
// can commit after. It returns the point to start from.
func (s *session) fenceAndReload(open func(context.Context) (*kafka.Producer, error), start binlog.Point) (binlog.Point, error) {
	var err error
	if s.prod, err = open(s.ctx); err != nil {
		return start, err
	}
	if !s.cp.unsaved {
		cp, err := s.cp.cfg.Store.Load(s.ctx)
		switch {
		case errors.Is(err, checkpoint.ErrNotFound):
			// Deleted meanwhile: keep the start, which commits at once.
			s.log.Warn().Err(err).Msg("the checkpoint stored in Kafka is gone; writing it again")
			s.cp.unsaved, cp = true, nil
		case errors.Is(err, checkpoint.ErrCorrupt):
			CloseProducer(s.prod)
			s.prod = nil
			return start, fmt.Errorf("%w: %w (the checkpoint is left as it is; use `tailbox offsets set` to replace it)", ErrCheckpoint, err)
		case err != nil:
			CloseProducer(s.prod)
			s.prod = nil
			return start, fmt.Errorf("%w: reload the checkpoint after fencing: %w", ErrRetry, err)
		}
		if cp != nil {
			if p := cp.Point(); p != start {
				s.log.Info().Str("binlog_file", p.Pos.File).Uint32("binlog_pos", p.Pos.Pos).Str("gtid", p.Pos.GTID).Int("skip", p.Skip).
					Msg("resuming from the checkpoint stored in Kafka")
				start = p
				// Rows published between the two points (a commit that
				// counted as failed went through) are read no more in
				// this run: the next start's binlog re-read deletes them.
				s.cp.cfg.Cleanup.leaveOut()
			}
		}
	}
	return start, nil
}

// streaming reports whether the stream flows from the start point, and
// from its first true answer on marks the Checkpointer started: the reader
// handed on an item (a transaction end or a captured row read after the
// start), or the server sent a heartbeat, which it does only when it has
// sent everything from the start and waits for more. A server that cannot
// serve the start refuses it (error 1236) before either.
func (s *session) streaming() bool {
	if s.cp.started.Load() {
		return true
	}
	if s.tr.Streamed() || !s.reader.Stats().LastHeartbeat.IsZero() {
		// The cadence and the transaction ticker may both get here: the
		// hook hears of the start once.
		if s.cp.started.CompareAndSwap(false, true) {
			s.hooks.Streaming()
		}
		return true
	}
	return false
}

// endTxn ends exactly_once's open transaction once the pump has stopped:
// aborted after a failed delivery, else committed — what was read is
// consistent with the read point, after a clean stop as after a source
// error.
func (s *session) endTxn() error {
	if s.batch == nil {
		return nil
	}
	if s.deliveryErr() != nil {
		err := s.batch.abort()
		// Nothing of the aborted transaction needs to drain (sarama may
		// retry a fenced batch for minutes): give it up.
		s.fail()
		return err
	}
	return s.batch.finish(context.Background())
}

// drain stops intake and waits for what is in flight, unless a delivery
// failed (then the producer is abandoned).
func (s *session) drain() {
	if s.prod == nil {
		return
	}
	dctx, dcancel := context.WithTimeout(s.failed, DrainTimeout)
	defer dcancel()
	stop := s.reportDrain(time.Now())
	err := s.prod.Close(dctx)
	stop()
	if err != nil && s.failed.Err() == nil {
		s.log.Warn().Err(err).Int("in_flight", s.tr.InFlight()).Msg("producer did not drain before the timeout")
	}
}

// reportDrain logs, every drainProgressEvery until the returned function
// is called, that the drain begun at start still waits: a broker that does
// not answer holds the stop for up to DrainTimeout, which the operator
// sees happen instead of a silent process.
func (s *session) reportDrain(start time.Time) (stop func()) {
	done := make(chan struct{})
	var wg sync.WaitGroup
	wg.Go(func() {
		t := time.NewTicker(drainProgressEvery)
		defer t.Stop()
		for {
			select {
			case <-done:
				return
			case now := <-t.C:
				s.log.Info().Int("in_flight", s.tr.InFlight()).Dur("waited_ms", now.Sub(start)).
					Dur("timeout_ms", DrainTimeout).Msg("draining: waiting for kafka to acknowledge the events in flight")
			}
		}
	})
	return func() { close(done); wg.Wait() }
}

// outcome is the error that ends the session: a fence first (never
// retried: that would fence the new producer), then a failed delivery, a
// failed commit, and a source error that is no stop.
func (s *session) outcome(ctx context.Context, readErr, txnErr error) error {
	aerr := s.deliveryErr()
	switch {
	case errors.Is(txnErr, kafka.ErrFenced):
		return txnErr
	case errors.Is(aerr, kafka.ErrFenced):
		return aerr
	case aerr != nil:
		return aerr
	case txnErr != nil:
		return txnErr
	case readErr != nil && ctx.Err() == nil && !errors.Is(readErr, context.Canceled):
		return readErr
	}
	return nil
}

// deliveryErr returns the first failed delivery, if any.
func (s *session) deliveryErr() error {
	s.ackMu.Lock()
	defer s.ackMu.Unlock()
	return s.ackErr
}

// CloseProducer closes a producer that has sent nothing the caller waits
// for, dropping its acknowledgements.
func CloseProducer(prod *kafka.Producer) {
	go func() {
		for range prod.Acks() {
		}
	}()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	_ = prod.Close(ctx)
}
