package pipeline

import (
	"bytes"
	"context"
	"math"
	"strings"
	"sync"
	"time"

	"github.com/rs/zerolog"

	"github.com/tailbox-cdc/tailbox/internal/retry"
	"github.com/tailbox-cdc/tailbox/pkg/binlog"
	"github.com/tailbox-cdc/tailbox/pkg/outbox"
)

// CleanupConfig is outbox.cleanup and what the cleaner deletes with.
type CleanupConfig struct {
	// IDColumn is outbox.fields.id, the tables' primary key: rows are
	// deleted by it.
	IDColumn string
	// Retention keeps a row this long after its transaction committed.
	Retention time.Duration
	// BatchSize is the most rows one Delete call removes.
	BatchSize int
	// Rate is the most rows deleted per second.
	Rate int
	// MaxPending is the most rows remembered for deletion.
	MaxPending int
	// MaxMessageBytes is the producer's record size limit: Recover keeps
	// a row whose record is larger, which the stream dead-lettered (maybe
	// without its value) rather than published.
	MaxMessageBytes int
	// Delete deletes the rows of schema.table whose IDColumn is one of
	// keys, on a connection of its own, and returns how many it deleted.
	// Called from Run's goroutine only.
	Delete func(ctx context.Context, schema, table string, keys []any) (int64, error)
	// Hooks receive the counts.
	Hooks CleanupHooks
	Log   zerolog.Logger
}

// CleanupHooks is the instrumentation of a Cleanup.
type CleanupHooks interface {
	// RowsDeleted counts n rows deleted.
	RowsDeleted(n int64)
	// RowsWaiting records the rows remembered and not deleted yet.
	RowsWaiting(n int)
}

// A Cleanup deletes the outbox rows of published events once a durable
// checkpoint covers them, for one run (all its sessions). Its invariant:
// a row is deleted only when the checkpoint store holds a checkpoint at or
// after its event — the checkpoint file fsynced, the Kafka store's record
// acknowledged, or (exactly_once) the Kafka transaction that holds the
// event and its checkpoint committed — and, with a retention, once its
// transaction committed at least that long ago.
//
// How it knows which rows a checkpoint covers: the send stage tracks the
// key of each published row (not skipped rows, nor dead-lettered ones,
// whose rows are kept for the operator) under its slot's sequence number
// in the session's Tracker; a checkpoint written from the Tracker's state
// carries the sequence number up to which it covers slots. Sequence numbers
// are made global over the run's sessions by an offset per session; at the
// end of a session the rows after its acknowledged point are forgotten
// (the next session reads them again).
//
// The rows remembered are bounded by MaxPending: once it is reached, rows
// are not remembered (and stay in the table) until room frees. What a
// kill -9 forgets, and the rows not remembered, are found again at the
// next start: the checkpoint records the point before which every row
// remembered was deleted (Cleaned, which never passes a row left out), and
// Recover reads the binlog from there to the checkpoint for their keys.
//
// Its methods are safe for concurrent use; nil is a Cleanup that does
// nothing (cleanup off), and the pipeline tests for nil once per event.
type Cleanup struct {
	cfg  CleanupConfig
	wake chan struct{}

	mu      sync.Mutex
	q       []pending // in binlog order; q[head:] remembered, not deleted
	head    int
	offset  uint64 // global sequence number of the current session's slot 0
	hi      uint64 // above every global sequence number used so far
	durable uint64 // rows below it are covered by a durable checkpoint
	marks   []mark // durable checkpoints not yet cleaned, ascending
	cleaned binlog.Point
	// dropped is the global sequence number of the first row left out
	// (MaxPending reached); dropped rows stay in the table until a restart.
	dropped    uint64
	hasDropped bool
	warned     bool
	// keyTable and keyIndex cache the id column's index for a table; used
	// by the decode goroutine only.
	keyTable *binlog.Table
	keyIndex int
}

// pending is a published row remembered for deletion.
type pending struct {
	seq    uint64
	table  *binlog.Table
	key    any
	commit int64 // Unix ns of its transaction's commit
}

// mark is a durable checkpoint p that covers the rows below seq.
type mark struct {
	p   binlog.Point
	seq uint64
}

// maxMarks bounds the durable checkpoints remembered while rows wait (a
// retention): beyond it the newest replaces the last, and Cleaned moves in
// coarser steps.
const maxMarks = 1024

// NewCleanup returns the Cleanup of a run whose stream starts at start,
// before which every remembered row is deleted.
func NewCleanup(cfg CleanupConfig, start binlog.Point) *Cleanup {
	return &Cleanup{cfg: cfg, wake: make(chan struct{}, 1), cleaned: start}
}

// Cleaned returns the point before which every row the Cleanup
// remembered is deleted and no row was left out.
func (c *Cleanup) Cleaned() binlog.Point {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.cleaned
}

// key returns the id of ch's row as the cleaner deletes it (a copy that
// holds no reader buffer), or nil when the row has no such column or it
// is NULL. Decode goroutine only.
func (c *Cleanup) key(ch *binlog.Change) any {
	if ch.Table != c.keyTable {
		c.keyTable, c.keyIndex = ch.Table, ch.Table.ColumnIndex(c.cfg.IDColumn)
	}
	if c.keyIndex < 0 || c.keyIndex >= len(ch.Row) {
		return nil
	}
	switch v := ch.Row[c.keyIndex].(type) {
	case string:
		return strings.Clone(v)
	case []byte:
		return bytes.Clone(v)
	default:
		return v // numbers; nil for NULL
	}
}

// beginSession starts counting a session's slots after everything before.
func (c *Cleanup) beginSession() {
	c.mu.Lock()
	c.offset = c.hi
	c.mu.Unlock()
}

// global is the run-wide sequence number of the current session's slot seq.
func (c *Cleanup) global(seq uint64) uint64 {
	if c == nil {
		return 0
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.offset + seq
}

// track remembers the row with key of table, published in slot seq of the
// current session, whose transaction committed at commit (Unix ns, 0
// unknown). Send goroutine.
func (c *Cleanup) track(seq uint64, table *binlog.Table, key any, commit int64) {
	if commit == 0 {
		commit = time.Now().UnixNano()
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	g := c.offset + seq
	c.hi = max(c.hi, g+1)
	if len(c.q)-c.head >= c.cfg.MaxPending {
		if !c.hasDropped {
			c.dropped, c.hasDropped = g, true
		}
		if !c.warned {
			c.warned = true
			c.cfg.Log.Warn().Int("max_pending", c.cfg.MaxPending).
				Msg("outbox cleanup: max_pending rows wait for deletion; rows published meanwhile stay in the table until the next start reads them back from the binlog")
		}
		return
	}
	c.q = append(c.q, pending{seq: g, table: table, key: key, commit: commit})
}

// endSession forgets the rows from global sequence number end on: the
// session's acknowledged point is before them, and the next session
// reads them again.
func (c *Cleanup) endSession(end uint64) {
	c.mu.Lock()
	defer c.mu.Unlock()
	n := len(c.q)
	for n > c.head && c.q[n-1].seq >= end {
		n--
	}
	clear(c.q[n:])
	c.q = c.q[:n]
	if c.hasDropped && c.dropped >= end {
		c.hasDropped = false // the next session reads that row again
	}
	c.cfg.Hooks.RowsWaiting(len(c.q) - c.head)
}

// all is the sequence number that stands for every row remembered so far.
const all = math.MaxUint64

// durableAt records that the checkpoint p, which covers the rows below the
// global sequence number seq (all: every row remembered), is durable.
func (c *Cleanup) durableAt(p binlog.Point, seq uint64) {
	if c == nil {
		return
	}
	c.mu.Lock()
	if seq == all {
		seq = c.hi
	}
	c.durable = max(c.durable, seq)
	if n := len(c.marks); n >= maxMarks {
		c.marks[n-1] = mark{p, seq}
	} else {
		c.marks = append(c.marks, mark{p, seq})
	}
	c.advance()
	c.mu.Unlock()
	select {
	case c.wake <- struct{}{}:
	default:
	}
}

// advance moves Cleaned to the newest durable checkpoint before which
// every remembered row is deleted and none was left out. Called with mu held.
func (c *Cleanup) advance() {
	low := c.hi // the lowest row not deleted
	if c.head < len(c.q) {
		low = c.q[c.head].seq
	}
	if c.hasDropped {
		low = min(low, c.dropped)
	}
	i := 0
	for i < len(c.marks) && c.marks[i].seq <= low {
		c.cleaned = c.marks[i].p
		i++
	}
	c.marks = append(c.marks[:0], c.marks[i:]...)
}

// batch returns up to BatchSize rows at the head, of one table, that a
// durable checkpoint covers and whose retention is over; when there is
// none it returns how long to wait before looking again (0: until woken).
func (c *Cleanup) batch(now time.Time, keys []any) (*binlog.Table, []any, time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	keys = keys[:0]
	var table *binlog.Table
	limit := now.Add(-c.cfg.Retention).UnixNano()
	for i := c.head; i < len(c.q) && len(keys) < c.cfg.BatchSize; i++ {
		r := &c.q[i]
		if r.seq >= c.durable {
			break
		}
		if r.commit > limit {
			if len(keys) == 0 {
				return nil, nil, time.Duration(r.commit - limit)
			}
			break
		}
		if table != nil && r.table != table && (r.table.Schema != table.Schema || r.table.Name != table.Name) {
			break
		}
		table = r.table
		keys = append(keys, r.key)
	}
	return table, keys, 0
}

// deleted drops the n rows at the head, which are deleted.
func (c *Cleanup) deleted(n int) {
	c.mu.Lock()
	defer c.mu.Unlock()
	clear(c.q[c.head : c.head+n])
	c.head += n
	if c.head == len(c.q) {
		c.q, c.head = c.q[:0], 0
	} else if c.head > 4096 && c.head*2 > len(c.q) {
		m := copy(c.q, c.q[c.head:])
		clear(c.q[m:])
		c.q, c.head = c.q[:m], 0
	}
	c.advance()
	c.cfg.Hooks.RowsWaiting(len(c.q) - c.head)
}

// Run deletes covered rows until ctx ends: a batch at a time, at most
// Rate rows per second, backing off while deleting fails. A failure never
// reaches the pipeline: the rows wait and are tried again.
func (c *Cleanup) Run(ctx context.Context) {
	var b retry.Backoff
	keys := make([]any, 0, c.cfg.BatchSize)
	for ctx.Err() == nil {
		table, batch, wait := c.batch(time.Now(), keys)
		if len(batch) == 0 {
			c.sleep(ctx, wait)
			continue
		}
		n, err := c.cfg.Delete(ctx, table.Schema, table.Name, batch)
		if err != nil {
			if ctx.Err() != nil {
				return
			}
			wait := b.Next()
			c.cfg.Log.Warn().Err(err).Str("table", table.String()).Int("rows", len(batch)).Int("attempt", b.Attempt()).
				Dur("backoff_ms", wait).Msg("outbox cleanup: delete failed, retrying (the rows stay until then)")
			retry.Sleep(ctx, wait)
			continue
		}
		b.Reset()
		c.deleted(len(batch))
		c.cfg.Hooks.RowsDeleted(n)
		retry.Sleep(ctx, time.Duration(len(batch))*time.Second/time.Duration(c.cfg.Rate))
	}
}

// leaveOut records that rows between Cleaned and the durable checkpoint
// were left out (not remembered): Cleaned stays before them for the run.
func (c *Cleanup) leaveOut() {
	if c == nil {
		return
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	c.leaveOutLocked()
}

// leaveOutLocked is leaveOut with mu held. The left-out rows get a
// sequence number of their own, below every later mark, so that no
// durable checkpoint covers them.
func (c *Cleanup) leaveOutLocked() {
	if !c.hasDropped {
		c.dropped, c.hasDropped = c.hi, true
		c.hi++
	}
}

// publishable reports whether the stream can have published ev rather
// than dead-lettered it, as the producer's Fits decides: a record over
// MaxMessageBytes is dead-lettered, and a record for an explicit
// partition may be (a partition the topic lacks), which Recover, without a
// producer to ask, cannot tell: its row is kept.
func (c *Cleanup) publishable(ev *outbox.Event, recs *records) bool {
	if ev.ExplicitPartition {
		return false
	}
	return c.cfg.MaxMessageBytes <= 0 || recs.of(ev).Size() <= c.cfg.MaxMessageBytes
}

// sleep waits until woken, ctx ends, or wait passes (a second at most).
func (c *Cleanup) sleep(ctx context.Context, wait time.Duration) {
	if wait <= 0 || wait > time.Second {
		wait = time.Second
	}
	t := time.NewTimer(wait)
	defer t.Stop()
	select {
	case <-ctx.Done():
	case <-c.wake:
	case <-t.C:
	}
}

// Recover remembers the rows published between from (the stored Cleaned
// point) and to (the stored checkpoint, durable), which a former run
// published but had not deleted when it stopped: it starts reader at from
// and reads to to, taking the key of each row xform publishes. The rows of
// a transaction count only once its end is read at or before to (a
// position past to ends the reading without them), and the first to.Skip
// rows of the transaction after to. It returns how many rows it
// remembered; the caller restarts the reader for the stream.
func (c *Cleanup) Recover(ctx context.Context, reader *binlog.Reader, xform *outbox.Transformer, from, to binlog.Point) (int, error) {
	// Until the rows found are deleted, no checkpoint may say they are:
	// Cleaned stays at from (also when the reading fails).
	c.mu.Lock()
	c.cleaned = from
	c.mu.Unlock()
	if err := reader.Start(ctx, from.Pos, from.Skip, from.NextTxn); err != nil {
		c.leaveOut()
		return 0, err
	}
	var txn []pending // rows of the transaction being read
	var recs records  // the records the stream would send, for their size
	found := 0
	keep := func() {
		c.mu.Lock()
		for _, r := range txn {
			if len(c.q)-c.head >= c.cfg.MaxPending {
				c.leaveOutLocked()
				break
			}
			r.seq = c.hi
			c.hi++
			c.q = append(c.q, r)
			found++
		}
		c.mu.Unlock()
		txn = txn[:0]
	}
	atTo := false // the marker read is to.Pos: the next rows are to's skipped ones
	for {
		it, err := reader.Next(ctx)
		if err != nil {
			c.leaveOut()
			return found, err
		}
		if it.Kind == binlog.ItemMarker {
			if atTo {
				break // to.Skip rows were fewer than the transaction's
			}
			cmp := it.Marker.Compare(to.Pos)
			if cmp > 0 {
				break // past to: this transaction's rows are not covered
			}
			keep()
			if cmp == 0 {
				if to.Skip == 0 {
					break
				}
				atTo = true
			}
			continue
		}
		ch := &it.Change
		if atTo && ch.Index >= to.Skip {
			break
		}
		if ch.Op != binlog.OpInsert {
			continue
		}
		res, err := xform.Transform(ch)
		if err != nil || res.Action != outbox.Publish || !c.publishable(&res.Event, &recs) {
			continue // dead-lettered or skipped: kept, as in the stream
		}
		if k := c.key(ch); k != nil {
			txn = append(txn, pending{table: ch.Table, key: k, commit: commitNanos(ch.Txn)})
		}
	}
	if atTo {
		keep()
	}
	c.durableAt(to, all)
	return found, nil
}
