// Package retry holds tailbox's one back-off policy: every loop that waits
// before it tries again — reconnecting to MySQL or Kafka, restarting the
// pipeline, rejoining the HA group — waits through a Backoff.
package retry

import (
	"context"
	"time"
)

// Backoff is an exponential back-off: the first wait is Initial, each
// later one twice the one before, at most Max. A Backoff is not safe for
// concurrent use; the zero value waits 500 ms, up to 30 s, and never resets
// by itself.
//
// ResetAfter makes a failure count as the first of a new series when the
// attempt before it ran at least that long (see Started): a pipeline that
// streamed for an hour restarts after Initial, not after Max.
type Backoff struct {
	Initial    time.Duration
	Max        time.Duration
	ResetAfter time.Duration

	next    time.Duration
	attempt int
	began   time.Time
}

// Defaults of the zero Backoff.
const (
	defaultInitial = 500 * time.Millisecond
	defaultMax     = 30 * time.Second
)

// Started marks the start of an attempt: when it fails after running for
// ResetAfter or longer, the back-off starts over.
func (b *Backoff) Started() { b.began = time.Now() }

// Ended notes that the attempt marked by Started ended: when it ran for
// ResetAfter or longer, the next failure starts a new series. Next calls it.
func (b *Backoff) Ended() {
	if b.ResetAfter > 0 && !b.began.IsZero() && time.Since(b.began) >= b.ResetAfter {
		b.Reset()
	}
	b.began = time.Time{}
}

// Next returns the wait before the next attempt and doubles the one after
// it (up to Max). It counts the attempt that failed.
func (b *Backoff) Next() time.Duration {
	initial, ceiling := b.Initial, b.Max
	if initial <= 0 {
		initial = defaultInitial
	}
	if ceiling <= 0 {
		ceiling = defaultMax
	}
	b.Ended()
	if b.next <= 0 {
		b.next = initial
	}
	wait := min(b.next, ceiling)
	b.next = min(wait*2, ceiling)
	b.attempt++
	return wait
}

// Attempt is the number of failed attempts since the last Reset.
func (b *Backoff) Attempt() int { return b.attempt }

// Reset makes the next wait Initial again: the failures in a row ended.
func (b *Backoff) Reset() {
	b.next, b.attempt = 0, 0
}

// Sleep waits d unless ctx ends first; it reports whether it waited the
// whole time.
func Sleep(ctx context.Context, d time.Duration) bool {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return false
	case <-t.C:
		return true
	}
}

// Wait waits Next() unless ctx ends first; it reports whether it waited.
func (b *Backoff) Wait(ctx context.Context) bool { return Sleep(ctx, b.Next()) }
