package pipeline

import (
	"context"
	"sync"
)

// Bounds of records sent to Kafka but not yet acknowledged. Together with
// the binlog reader's small event cache they bound the connector's memory
// whatever the size of a transaction or of its rows.
const (
	// maxInFlight bounds their number: enough for a full request (1 MiB)
	// on the wire and the next one filling, and no more, since each record
	// in flight is live heap that the garbage collector marks at every
	// cycle and that sets the heap goal (see knobs.GCPercent).
	maxInFlight = 2048
	// maxInFlightBytes bounds their size (kafka.Record.Size: key, value,
	// headers and framing). A single record larger than this is still sent,
	// alone.
	maxInFlightBytes = 32 << 20
)

// inFlight is a semaphore over records in flight, bounded both by count and
// by bytes. acquire blocks while a record would exceed either bound; a
// record always fits when nothing else is in flight. Safe for concurrent
// use by one acquirer and any number of releasers.
//
// A waiting acquirer is woken once the count has fallen by a slack of
// maxCount/16 below the bound (or to zero), not at every release: in a
// backlog the bound is reached all the time, and waking the sender for each
// acknowledgement would cost a goroutine switch per record.
type inFlight struct {
	maxCount int
	maxBytes int64

	mu      sync.Mutex
	count   int
	bytes   int64
	waiting bool
	need    int64         // size of the record the acquirer waits to send
	wake    chan struct{} // closed by release when an acquirer waits
}

func newInFlight(maxCount int, maxBytes int64) *inFlight {
	return &inFlight{maxCount: maxCount, maxBytes: maxBytes, wake: make(chan struct{})}
}

// acquire takes room for one record of size bytes, blocking until there is
// room or ctx is done (then it returns ctx's error and takes nothing).
func (f *inFlight) acquire(ctx context.Context, size int) error {
	n := int64(size)
	for {
		f.mu.Lock()
		if f.count == 0 || f.count < f.maxCount && f.bytes+n <= f.maxBytes {
			f.count++
			f.bytes += n
			f.mu.Unlock()
			return nil
		}
		f.waiting, f.need = true, n
		wake := f.wake
		f.mu.Unlock()
		select {
		case <-wake:
		case <-ctx.Done():
			return ctx.Err()
		}
	}
}

// release gives back the room of n records of size bytes in all.
func (f *inFlight) release(n int, size int64) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.count -= n
	f.bytes -= size
	if f.waiting && (f.count == 0 || f.count <= f.maxCount-max(f.maxCount/16, 1) && f.bytes+f.need <= f.maxBytes) {
		close(f.wake)
		f.wake = make(chan struct{})
		f.waiting = false
	}
}

// load returns the number and total size of records in flight.
func (f *inFlight) load() (count int, bytes int64) {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.count, f.bytes
}
