package pipeline

import (
	"fmt"
	"sync"
	"sync/atomic"
	"time"

	"github.com/rs/zerolog"

	"github.com/tailbox-cdc/tailbox/pkg/binlog"
	"github.com/tailbox-cdc/tailbox/pkg/checkpoint"
)

// CheckpointerConfig is what a Checkpointer writes and where.
type CheckpointerConfig struct {
	// Name and TablesHash go into every checkpoint.
	Name       string
	TablesHash string
	// Store receives the checkpoints; nil writes none (a dry run).
	Store checkpoint.Store
	// Server returns what the checkpoint records about the source server:
	// the one the positions are read from, which a reconnect that found
	// another server at the address and went on by GTID changes.
	Server func() checkpoint.Server
	// FileStartTime returns when the server created a binlog file (the
	// zero time when unknown), recorded to detect RESET MASTER on load.
	FileStartTime func(flavor, file string) time.Time
	// Transactional: delivery exactly_once, where the Kafka transactions
	// write the checkpoints (see txnBatcher) and the Checkpointer only
	// knows whether the start point is stored.
	Transactional bool
	// Cleanup, when not nil (outbox.cleanup), learns of every checkpoint
	// once it is durable, and its Cleaned point goes into every checkpoint.
	Cleanup *Cleanup
	Hooks   Hooks
	Log     zerolog.Logger
}

// A Checkpointer writes the checkpoints of one run, over all its sessions.
//
// Nothing is written before the stream has started (see Started): then the
// first write records where the run started, even before anything moved,
// so that a restart never jumps to "latest" again; a start that fails at
// whatever step leaves the stored checkpoint byte for byte as it was.
type Checkpointer struct {
	cfg CheckpointerConfig
	// unsaved: exactly_once's start point is not stored yet.
	unsaved bool
	// none: the store held no checkpoint when the run began.
	none bool
	// started is set once this run's stream is known to flow from its
	// start point (see session's streaming) and stays set for the run.
	// Until then nothing is written — not periodically, not after a
	// failure. A stop signal before then writes the start point only
	// into an empty store (see Final).
	started atomic.Bool
	mu      sync.Mutex
	last    binlog.Point
	saved   bool
	// startFile is the binlog file whose start time (startTime, zero when
	// unknown) was last looked up on the server startSrv, for
	// checkpoint.Server.FileStartTime.
	startFile string
	startSrv  checkpoint.Server
	startTime time.Time
}

// NewCheckpointer returns the Checkpointer of a run that starts at start.
// stored: the store holds start (the run resumes from it); none: the store
// held no checkpoint when the run began.
func NewCheckpointer(cfg CheckpointerConfig, start binlog.Point, stored, none bool) *Checkpointer {
	s := &Checkpointer{cfg: cfg, none: none}
	switch {
	case cfg.Transactional:
		// Checkpoints are written only inside the Kafka transactions of
		// the events they cover; the first one records the start point.
		s.unsaved = !stored
	case stored:
		// The store holds the start point: the first write is the first
		// move past it.
		s.last, s.saved = start, true
	}
	return s
}

// Resolved reports whether the store holds this run's start point or a
// later one, so that a --from it resolved has taken effect.
func (s *Checkpointer) Resolved() bool {
	if s.cfg.Transactional {
		return !s.unsaved
	}
	return s.stored()
}

// save writes the checkpoint of p, which covers the slots below the global
// sequence number cover (see Cleanup), unless it is the one last written,
// or the stream has not started; it reports whether it wrote. Once the
// store holds p the Cleanup learns that it is durable.
func (s *Checkpointer) save(p binlog.Point, cover uint64) (bool, error) {
	if s.cfg.Store == nil || s.cfg.Transactional || !s.started.Load() {
		return false, nil
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.saved && s.last == p {
		s.cfg.Hooks.CheckpointUnchanged()
		s.cfg.Cleanup.durableAt(p, cover)
		return false, nil
	}
	cp := s.checkpoint(p)
	if err := s.cfg.Store.Save(cp); err != nil {
		return false, fmt.Errorf("write checkpoint: %w", err)
	}
	s.cfg.Cleanup.durableAt(p, cover)
	s.last, s.saved = p, true
	s.cfg.Hooks.Checkpointed(p)
	s.cfg.Log.Debug().Str("binlog_file", p.Pos.File).Uint32("binlog_pos", p.Pos.Pos).Str("gtid", p.Pos.GTID).Int("skip", p.Skip).Msg("checkpoint written")
	return true, nil
}

// stored reports whether the store holds this run's checkpoint: the
// stored one it resumed from, or one it wrote.
func (s *Checkpointer) stored() bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.saved
}

// checkpoint is the checkpoint of p, with the Cleanup's Cleaned point.
func (s *Checkpointer) checkpoint(p binlog.Point) *checkpoint.Checkpoint {
	cp := checkpoint.New(s.cfg.Name, s.cfg.TablesHash, p, s.server(p.Pos.File))
	if s.cfg.Cleanup != nil {
		c := s.cfg.Cleanup.Cleaned()
		cp.Cleaned = &checkpoint.Cleaned{Position: c.Pos, Skip: c.Skip, NextTxn: c.NextTxn}
	}
	return cp
}

// server is what the checkpoint records about the server for a position
// in file: with the file's start time, which detects RESET MASTER on load.
func (s *Checkpointer) server(file string) checkpoint.Server {
	srv := s.cfg.Server()
	if file != "" {
		if file != s.startFile || srv != s.startSrv {
			s.startFile, s.startSrv, s.startTime = file, srv, s.cfg.FileStartTime(srv.Flavor, file)
		}
		srv.FileStartTime = s.startTime
	}
	return srv
}

// Final writes the checkpoint of p at the end of a session, once the
// stream has started. A clean stop before then writes the start point into
// a store that held no checkpoint: it was resolved and checked against the
// server, and without it a restart would resolve start.from (latest) again
// and pass over what was committed meanwhile. A stored checkpoint stays as
// it was (a --from that never took effect changes nothing), and a failure
// before then writes nothing.
func (s *Checkpointer) Final(p binlog.Point, clean bool) error {
	if s.cfg.Store == nil {
		return nil
	}
	if !s.started.Load() {
		if !clean || s.cfg.Transactional || !s.none || s.stored() {
			s.cfg.Log.Info().Msg("the stream did not start: the checkpoint is left as it was")
			return nil
		}
		s.cfg.Log.Info().Msg("stopped before the stream started: writing the start point, where the next run resumes")
		s.started.Store(true)
	}
	// p is the point the session ended at: it covers every row the
	// Cleanup still remembers (endSession forgot those after it).
	if _, err := s.save(p, all); err != nil {
		return err
	}
	s.cfg.Log.Info().Str("binlog_file", p.Pos.File).Uint32("binlog_pos", p.Pos.Pos).Str("gtid", p.Pos.GTID).Int("skip", p.Skip).Msg("checkpoint saved")
	return nil
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

// cadence decides when a session writes its checkpoint, or commits its
// Kafka transaction (exactly_once): periodically; once the stream pauses
// with everything read acknowledged (caughtUp, then nothing committed for
// caughtUpQuiet), at most every caughtUpGap(interval) on top of the
// periodic ones; and, as soon as the stream has started, the start point
// when the store lacks it.
type cadence struct {
	s     *session
	gap   time.Duration
	last  time.Time // of the last checkpoint written, but the run's first
	first bool      // the next write is the run's first, of its start point
	poll  <-chan time.Time
}

// runCadence runs the cadence until stop closes. With exactly_once a failed
// commit cancels the session (the pump sees it at its next record).
func (s *session) runCadence(stop <-chan struct{}) {
	every := s.cfg.CheckpointInterval
	if s.batch != nil {
		every = max(s.cfg.TransactionInterval/2, time.Millisecond)
	}
	t := time.NewTicker(every)
	defer t.Stop()
	cd := &cadence{s: s, gap: caughtUpGap(every), first: !s.cp.stored()}
	if cd.first && s.batch == nil && s.cp.cfg.Store != nil {
		// An idle stream starts with a heartbeat, which signals nothing.
		pt := time.NewTicker(startPoll)
		defer pt.Stop()
		cd.poll = pt.C
	}
	var (
		pause   *time.Timer      // runs from the last caught-up signal to its check
		due     <-chan time.Time // pause's channel while it runs
		version uint64           // of the committed point at the last signal
	)
	for {
		select {
		case <-stop:
			if pause != nil {
				pause.Stop()
			}
			return
		case <-cd.poll:
			cd.save("checkpoint of the start point")
		case <-t.C:
			if s.batch != nil {
				if err := s.batch.tick(s.ctx); err != nil {
					s.cancel()
					return
				}
				continue
			}
			cd.save("periodic checkpoint")
		case <-s.tr.caughtUp:
			// Each signal postpones the check: a steady stream, caught
			// up after every transaction, never lets it run.
			_, version = s.tr.Committed()
			wait := max(caughtUpQuiet, cd.gap-time.Since(cd.last))
			if pause == nil {
				pause = time.NewTimer(wait)
			} else {
				pause.Reset(wait)
			}
			due = pause.C
		case <-due:
			due = nil
			// Nothing committed since the last signal: the stream paused
			// there. Otherwise the stream went on without catching up, and
			// the next signal will come.
			if _, v := s.tr.Committed(); v == version {
				cd.save("checkpoint after catching up")
			}
		}
	}
}

// save writes the committed point once the stream has started.
func (cd *cadence) save(why string) {
	s := cd.s
	if !s.streaming() {
		return
	}
	cd.poll = nil
	p, seq := s.tr.CommittedMark()
	wrote, err := s.cp.save(p, s.cp.cfg.Cleanup.global(seq))
	if err != nil {
		s.log.Error().Err(err).Msg(why)
	}
	if wrote && cd.first {
		// The start point: not one of the caught-up writes the gap bounds.
		cd.first = false
		return
	}
	cd.last = time.Now()
}
