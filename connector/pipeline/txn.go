package pipeline

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/tailbox-cdc/tailbox/pkg/binlog"
	"github.com/tailbox-cdc/tailbox/pkg/checkpoint"
	"github.com/tailbox-cdc/tailbox/pkg/kafka"
)

// Bounds of one Kafka transaction of delivery: exactly_once, besides
// kafka.transaction_interval.
const (
	txnMaxRecords = 20000
	txnMaxBytes   = 32 << 20
)

// txnOpTimeout bounds a commit or an abort: sarama first flushes the
// transaction's records, and a batch the broker keeps refusing is retried
// for half a minute. A commit that times out counts as failed; if it
// completes later, its checkpoint record covers its events all the same.
const txnOpTimeout = 10 * time.Second

// bounded runs op, giving up after txnOpTimeout.
func bounded(op func() error) error {
	done := make(chan error, 1)
	go func() { done <- op() }()
	select {
	case err := <-done:
		return err
	case <-time.After(txnOpTimeout):
		return fmt.Errorf("no answer from Kafka within %s", txnOpTimeout)
	}
}

// checkpointMeta marks the checkpoint record of a transaction in its Ack.
type checkpointMeta struct{}

// txnBatcher groups the records of delivery: exactly_once into Kafka
// transactions, each ending with the checkpoint record that covers it: the
// point after everything pushed to the tracker so far. The events and the
// checkpoint commit atomically, so a read_committed consumer sees each
// event once, also across crashes: a restart resumes from the last
// committed checkpoint, and whatever an unfinished transaction wrote is
// aborted.
//
// The pump holds mu from pushing a slot to handing its record to the
// producer (lock, unlock), so that a commit never covers a slot whose
// record is not in the transaction; commits come from the pump (a full
// batch) and from a ticker (kafka.transaction_interval).
type txnBatcher struct {
	s    *session
	prod *kafka.Producer
	tr   *Tracker
	// streaming reports whether the stream flows from the start point:
	// an unsaved start point is committed only then.
	streaming func() bool

	mu         sync.Mutex
	open       bool
	began      time.Time
	records    int
	bytes      int
	committed  binlog.Point // last committed checkpoint
	cover      uint64       // global sequence number below which committed covers every slot
	lastCommit time.Time
	unsaved    bool  // committed is not stored yet (first start, --from)
	err        error // the first commit failure: the batcher is done
	shut       bool  // finish or abort ran: the producer is not touched again
}

// newTxnBatcher returns the batcher of session s, which starts at start;
// unsaved: start is not stored yet. An unsaved start point is committed
// once the stream flows from it (see session.streaming).
func newTxnBatcher(s *session, start binlog.Point, unsaved bool) *txnBatcher {
	return &txnBatcher{s: s, prod: s.prod, tr: s.tr, streaming: s.streaming, committed: start, cover: s.cp.cfg.Cleanup.global(0), unsaved: unsaved, lastCommit: time.Now()}
}

// lock is called by the pump before it pushes a slot whose record it
// sends; it opens a transaction when none is open.
func (b *txnBatcher) lock() error {
	b.mu.Lock()
	if b.err != nil || b.shut {
		err := b.err
		if err == nil {
			err = errBatcherShut
		}
		b.mu.Unlock()
		return err
	}
	if !b.open {
		if err := b.prod.BeginTxn(); err != nil {
			b.fail(err)
			err = b.err
			b.mu.Unlock()
			return err
		}
		b.open, b.began = true, time.Now()
	}
	return nil
}

// fail ends the batcher with err: ErrFenced stops the connector (or sends
// an HA replica back to standby), anything else restarts the session from
// the last committed checkpoint.
func (b *txnBatcher) fail(err error) {
	if errors.Is(err, kafka.ErrFenced) {
		b.err = fmt.Errorf("%w (another tailbox named %q took over: the transactional id %s is fenced; the checkpoint stays at %s)", err, b.s.cfg.Name, b.s.cfg.TransactionalID, b.committed.Pos)
	} else {
		b.err = fmt.Errorf("%w: Kafka transaction: %w", ErrRetry, err)
	}
}

// unlock is called once the record of size bytes is handed to the
// producer (sent false when it was not); it commits when the batch is
// full.
func (b *txnBatcher) unlock(ctx context.Context, size int, sent bool) error {
	defer b.mu.Unlock()
	if !sent {
		// The read point now covers a slot whose record is not in the
		// transaction: it must never commit.
		if b.err == nil {
			b.err = fmt.Errorf("%w: a record of the open transaction was not sent", ErrRetry)
		}
		if b.open {
			_ = bounded(b.prod.AbortTxn)
			b.open = false
		}
		return nil
	}
	b.records++
	b.bytes += size
	if b.records >= txnMaxRecords || b.bytes >= txnMaxBytes {
		return b.commitLocked(ctx)
	}
	return nil
}

// tick commits the open transaction once it is kafka.transaction_interval
// old, and writes a checkpoint-only transaction when the read point moved
// without events (other tables' transactions, skipped rows) at most every
// checkpoint.interval, or at once when the start point is not stored yet
// and the stream has started.
func (b *txnBatcher) tick(ctx context.Context) error {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.err != nil || b.shut {
		return b.err
	}
	now := time.Now()
	switch {
	case b.open:
		if now.Sub(b.began) < b.s.cfg.TransactionInterval {
			return nil
		}
	case b.unsaved && b.streaming():
	default:
		if now.Sub(b.lastCommit) < b.s.cfg.CheckpointInterval || b.tr.ReadPoint() == b.committed {
			return nil
		}
	}
	return b.commitLocked(ctx)
}

// finish commits what is open (on a clean stop, or the start point once
// the stream has started) and shuts the batcher; it returns the commit's
// error.
func (b *txnBatcher) finish(ctx context.Context) error {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.err == nil && !b.shut && (b.open || b.unsaved && b.streaming() || b.tr.ReadPoint() != b.committed) {
		_ = b.commitLocked(ctx)
	}
	b.shut = true
	return b.err
}

// abort aborts the open transaction after a failed delivery and shuts the
// batcher. It returns an error wrapping kafka.ErrFenced when the abort
// shows that a newer producer fenced this one, else the batcher's error.
func (b *txnBatcher) abort() error {
	b.mu.Lock()
	defer b.mu.Unlock()
	if !b.shut && (b.open || b.err != nil) {
		if err := bounded(b.prod.AbortTxn); errors.Is(err, kafka.ErrFenced) {
			b.fail(err)
		}
		b.open = false
	}
	b.shut = true
	return b.err
}

// errBatcherShut is returned by lock once the session is ending.
var errBatcherShut = errors.New("the session's Kafka transactions are closed")

// stored reports whether a checkpoint was committed (or was stored before).
func (b *txnBatcher) stored() bool {
	b.mu.Lock()
	defer b.mu.Unlock()
	return !b.unsaved
}

// last returns the last committed point and the global sequence number
// below which it covers every slot.
func (b *txnBatcher) last() (binlog.Point, uint64) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.committed, b.cover
}

// commitLocked appends the checkpoint record of the read point to the
// transaction (opening one if needed) and commits. A failed commit is
// aborted and ends the batcher: the session restarts from the last
// committed checkpoint with a new producer.
func (b *txnBatcher) commitLocked(ctx context.Context) error {
	if !b.open {
		if err := b.prod.BeginTxn(); err != nil {
			b.fail(err)
			return b.err
		}
		b.open, b.began = true, time.Now()
	}
	p, seq := b.tr.ReadMark()
	cover := b.s.cp.cfg.Cleanup.global(seq)
	cp := b.s.cp.checkpoint(p)
	cp.Version = checkpoint.Version
	cp.UpdatedAt = time.Now().UTC()
	value, err := checkpoint.Encode(cp)
	if err == nil {
		err = b.prod.Send(ctx, &kafka.Record{
			Topic: b.s.cfg.CheckpointTopic, Key: []byte(b.s.cfg.Name), Value: value,
			Timestamp: cp.UpdatedAt, Meta: checkpointMeta{},
		})
	}
	if err == nil {
		err = bounded(b.prod.CommitTxn)
	}
	b.open = false
	b.records, b.bytes = 0, 0
	if err != nil {
		if aerr := bounded(b.prod.AbortTxn); errors.Is(aerr, kafka.ErrFenced) {
			err = aerr
		}
		b.fail(fmt.Errorf("commit at %s: %w", p.Pos, err))
		return b.err
	}
	b.committed, b.cover, b.lastCommit, b.unsaved = p, cover, time.Now(), false
	b.s.cp.cfg.Cleanup.durableAt(p, cover)
	b.s.hooks.Checkpointed(p)
	b.s.log.Debug().Str("binlog_file", p.Pos.File).Uint32("binlog_pos", p.Pos.Pos).Str("gtid", p.Pos.GTID).Int("skip", p.Skip).Msg("transaction committed")
	return nil
}

// StoreStart commits, with prod (the producer that fenced before the
// load), a Kafka transaction that holds only the checkpoint of start: the
// point start.from resolved to in a store that held no checkpoint. Once it
// is committed the run's start point counts as stored; a commit that
// failed for a reason other than a newer producer leaves it unsaved (the
// stream's first transaction then stores it). It returns an error only
// when prod is fenced.
//
// An exactly_once run otherwise stores its start point with its first
// commit, once its stream flows; a run that fails or stops before (its own
// producer refused, Kafka gone, a kill) would leave the store empty, and
// the next run would resolve start.from (latest) again and pass over what
// was committed in between. Like at_least_once's start point on a clean
// stop before its stream started, this goes only into an empty store: a
// stored checkpoint is never replaced by a start that may still fail. A
// --from is not written before its stream flows: the next run with the
// same --from resolves it again anyway, and one without it must not be
// bound to a --from that never took effect.
//
// It is written inside a transaction, never by the store's
// non-transactional Save: a commit succeeds only while no newer producer of
// this transactional id has fenced this one since the load that found the
// store empty, so it can never land after a checkpoint of a replica that
// took over meanwhile (or of a second instance with this name); a record
// outside a transaction would, and a later load would then go back to this
// start and publish again what that replica committed.
func (ss *Session) StoreStart(prod *kafka.Producer, start binlog.Point) error {
	s := &session{cfg: &ss.cfg, cp: ss.deps.Checkpointer, hooks: ss.deps.Hooks, log: ss.deps.Log, prod: prod, tr: NewTracker(start)}
	b := &txnBatcher{s: s, prod: prod, tr: s.tr, streaming: func() bool { return true }, committed: start, unsaved: true, lastCommit: time.Now()}
	err := b.finish(context.Background())
	switch {
	case err == nil:
		s.cp.unsaved = false
		s.log.Info().Str("binlog_file", start.Pos.File).Uint32("binlog_pos", start.Pos.Pos).Str("gtid", start.Pos.GTID).
			Msg("start point stored: the checkpoint store held none")
		return nil
	case errors.Is(err, kafka.ErrFenced):
		return err
	}
	s.log.Warn().Err(err).Msg("store the start point: not stored yet, the stream's first transaction stores it")
	return nil
}
