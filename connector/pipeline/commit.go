package pipeline

import (
	"sync"

	"github.com/tailbox-cdc/tailbox/pkg/binlog"
)

// entry is one FIFO element: an event slot or a transaction-end marker.
type entry struct {
	marker  bool
	settled bool
	pos     binlog.Position // marker
	index   int             // slot: captured row index in its transaction
	txn     string          // slot: transaction identity for NextTxn
}

// Tracker implements the checkpoint rule: a FIFO, in binlog order, of event
// slots and markers. Slots settle in any order (Kafka acknowledges partitions
// independently); the committed point only moves over settled slots.
// Consecutive markers, and consecutive settled slots of one transaction,
// are kept as their last one (the committed point moves over all of them
// at once), so the FIFO stays within a few entries per unsettled slot
// however many transactions without events pass while an event is in
// flight. It is safe for concurrent use by one pusher and one settler.
type Tracker struct {
	mu      sync.Mutex
	q       []entry
	head    int
	base    uint64 // sequence number of q[head]
	next    uint64 // sequence number of the next pushed entry
	commit  binlog.Point
	version uint64       // bumps when commit changes
	pending int          // unsettled slots
	read    binlog.Point // the point after everything pushed

	// caughtUp, when not nil, is signalled (without blocking: a signal
	// not yet taken stands for later ones) whenever the committed point
	// moves to the point after everything pushed, so that the checkpoint
	// can be written once the stream pauses (see cadence).
	caughtUp chan struct{}
}

// NewTracker returns a Tracker whose committed and read points are start.
func NewTracker(start binlog.Point) *Tracker {
	return &Tracker{commit: start, read: start}
}

// PushMarker records a transaction end.
func (t *Tracker) PushMarker(pos binlog.Position) {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.read = binlog.Point{Pos: pos}
	if t.head == len(t.q) {
		// Nothing unsettled before it: the marker is committed at once.
		t.commit = binlog.Point{Pos: pos}
		t.version++
		t.base++
		t.next++
		t.signalCaughtUp()
		return
	}
	if last := &t.q[len(t.q)-1]; last.marker {
		last.pos = pos // supersedes it: nothing lies between them
		return
	}
	t.q = append(t.q, entry{marker: true, pos: pos})
	t.next++
}

// PushSlot records a captured row and returns its sequence number. A row
// that produces no record (skipped, dry run) is pushed settled.
func (t *Tracker) PushSlot(index int, txn string, settled bool) uint64 {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.read.Skip, t.read.NextTxn = index+1, txn
	if settled && t.head < len(t.q) {
		if last := &t.q[len(t.q)-1]; !last.marker && last.settled && last.txn == txn {
			last.index = index // supersedes it: settled rows of one transaction
			return t.next - 1
		}
	}
	seq := t.next
	t.next++
	if settled && t.head == len(t.q) {
		t.commit.Skip = index + 1
		t.commit.NextTxn = txn
		t.version++
		t.base++
		t.signalCaughtUp()
		return seq
	}
	t.q = append(t.q, entry{settled: settled, index: index, txn: txn})
	if !settled {
		t.pending++
	}
	return seq
}

// Settle marks slots seqs acknowledged and advances the committed point
// over the settled prefix: one call for a burst of acknowledgements takes
// the lock once.
func (t *Tracker) Settle(seqs ...uint64) {
	t.mu.Lock()
	defer t.mu.Unlock()
	for _, seq := range seqs {
		i := t.head + int(seq-t.base)
		if seq < t.base || i >= len(t.q) || t.q[i].settled {
			continue
		}
		t.q[i].settled = true
		t.pending--
	}
	moved := false
	for t.head < len(t.q) && (t.q[t.head].marker || t.q[t.head].settled) {
		e := t.q[t.head]
		if e.marker {
			t.commit = binlog.Point{Pos: e.pos}
		} else {
			t.commit.Skip = e.index + 1
			t.commit.NextTxn = e.txn
		}
		t.q[t.head] = entry{}
		t.head++
		t.base++
		moved = true
	}
	if t.head == len(t.q) {
		t.q, t.head = t.q[:0], 0
		if moved {
			t.signalCaughtUp()
		}
	} else if t.head > 4096 && t.head*2 > len(t.q) {
		n := copy(t.q, t.q[t.head:])
		t.q, t.head = t.q[:n], 0
	}
	if moved {
		t.version++
	}
}

// signalCaughtUp signals caughtUp, if set, unless a signal is pending.
// Called with mu held.
func (t *Tracker) signalCaughtUp() {
	if t.caughtUp != nil {
		select {
		case t.caughtUp <- struct{}{}:
		default:
		}
	}
}

// Committed returns the committed point and its version.
func (t *Tracker) Committed() (binlog.Point, uint64) {
	t.mu.Lock()
	defer t.mu.Unlock()
	return t.commit, t.version
}

// CommittedMark returns the committed point and the sequence number below
// which it covers every slot.
func (t *Tracker) CommittedMark() (binlog.Point, uint64) {
	t.mu.Lock()
	defer t.mu.Unlock()
	return t.commit, t.base
}

// ReadMark returns the read point and the sequence number below which it
// covers every slot: every slot pushed.
func (t *Tracker) ReadMark() (binlog.Point, uint64) {
	t.mu.Lock()
	defer t.mu.Unlock()
	return t.read, t.next
}

// Streamed reports whether anything was pushed: the stream delivered an
// item after the start point.
func (t *Tracker) Streamed() bool {
	t.mu.Lock()
	defer t.mu.Unlock()
	return t.next > 0
}

// InFlight returns the number of unsettled slots.
func (t *Tracker) InFlight() int {
	t.mu.Lock()
	defer t.mu.Unlock()
	return t.pending
}

// ReadPoint returns the point after everything pushed: the committed point
// once every pushed slot is settled. delivery: exactly_once commits it with
// the records of those slots in one Kafka transaction.
func (t *Tracker) ReadPoint() binlog.Point {
	t.mu.Lock()
	defer t.mu.Unlock()
	return t.read
}
