package pipeline

import (
	"testing"
	"time"

	"github.com/rs/zerolog"

	"github.com/tailbox-cdc/tailbox/pkg/binlog"
	"github.com/tailbox-cdc/tailbox/pkg/outbox"
)

type countHooks struct{ deleted, waiting int }

func (h *countHooks) RowsDeleted(n int64) { h.deleted += int(n) }
func (h *countHooks) RowsWaiting(n int)   { h.waiting = n }

func pointAt(pos uint32) binlog.Point {
	return binlog.Point{Pos: binlog.Position{File: "b.000001", Pos: pos}}
}

// TestCleanupDeletesOnlyWhatADurableCheckpointCovers drives a Cleanup as
// the send stage and the checkpoint writes do, without a server.
func TestCleanupDeletesOnlyWhatADurableCheckpointCovers(t *testing.T) {
	tbl := &binlog.Table{Schema: "s", Name: "outbox"}
	newC := func(retention time.Duration, maxPending int) *Cleanup {
		return NewCleanup(CleanupConfig{IDColumn: "id", Retention: retention, BatchSize: 2, Rate: 1000, MaxPending: maxPending,
			Hooks: &countHooks{}, Log: zerolog.Nop()}, pointAt(4))
	}
	keysOf := func(c *Cleanup) []any {
		_, keys, _ := c.batch(time.Now(), nil)
		return keys
	}
	now := time.Now().UnixNano()

	t.Run("rows wait until a durable checkpoint covers them, in batches", func(t *testing.T) {
		c := newC(0, 100)
		c.beginSession()
		for i := range 5 {
			c.track(uint64(i), tbl, i, now)
		}
		if k := keysOf(c); len(k) != 0 {
			t.Fatalf("before any durable checkpoint: batch %v, want none", k)
		}
		c.durableAt(pointAt(100), c.global(3)) // covers slots 0..2
		if k := keysOf(c); len(k) != 2 || k[0] != 0 || k[1] != 1 {
			t.Fatalf("batch %v, want [0 1]", k)
		}
		c.deleted(2)
		if k := keysOf(c); len(k) != 1 || k[0] != 2 {
			t.Fatalf("batch %v, want [2]: slot 3 is not covered", k)
		}
		if got := c.Cleaned(); got != pointAt(4) {
			t.Errorf("cleaned %v before the covered rows are deleted, want the start", got)
		}
		c.deleted(1)
		if got := c.Cleaned(); got != pointAt(100) {
			t.Errorf("cleaned %v once the covered rows are deleted, want the checkpoint's point", got)
		}
	})
	t.Run("a session's rows after its acknowledged point are forgotten and the next session's are covered on their own", func(t *testing.T) {
		c := newC(0, 100)
		c.beginSession()
		for i := range 4 {
			c.track(uint64(i), tbl, i, now)
		}
		c.endSession(c.global(2)) // acknowledged up to slot 2
		c.durableAt(pointAt(50), all)
		if k := keysOf(c); len(k) != 2 || k[0] != 0 || k[1] != 1 {
			t.Fatalf("batch %v, want [0 1]", k)
		}
		c.deleted(2)
		c.beginSession() // reads slots 2, 3 again as its 0, 1
		c.track(0, tbl, 2, now)
		c.track(1, tbl, 3, now)
		c.durableAt(pointAt(60), c.global(1))
		if k := keysOf(c); len(k) != 1 || k[0] != 2 {
			t.Fatalf("batch %v, want [2]", k)
		}
	})
	t.Run("a retention holds covered rows until their commit is old enough", func(t *testing.T) {
		c := newC(time.Hour, 100)
		c.beginSession()
		c.track(0, tbl, "old", time.Now().Add(-2*time.Hour).UnixNano())
		c.track(1, tbl, "new", now)
		c.durableAt(pointAt(70), all)
		_, keys, wait := c.batch(time.Now(), nil)
		if len(keys) != 1 || keys[0] != "old" {
			t.Fatalf("batch %v, want [old]", keys)
		}
		c.deleted(1)
		_, keys, wait = c.batch(time.Now(), nil)
		if len(keys) != 0 || wait < 59*time.Minute {
			t.Fatalf("batch %v, wait %s: want none for about an hour", keys, wait)
		}
	})
	t.Run("rows beyond max_pending are not remembered and hold the cleaned point", func(t *testing.T) {
		c := newC(0, 1)
		c.beginSession()
		c.track(0, tbl, "a", now)
		c.track(1, tbl, "b", now) // not remembered
		c.durableAt(pointAt(80), all)
		if k := keysOf(c); len(k) != 1 || k[0] != "a" {
			t.Fatalf("batch %v, want [a]", k)
		}
		c.deleted(1)
		if got := c.Cleaned(); got != pointAt(4) {
			t.Errorf("cleaned %v, want the start: row b was left out", got)
		}
	})
}

// Rows Recover left out (max_pending reached, or the reading failed) keep
// Cleaned before them for the run, also once a checkpoint at the
// recovered range's end is durable and a session started after it.
func TestCleanupRecoveredRowsLeftOutKeepCleanedBeforeThem(t *testing.T) {
	tbl := &binlog.Table{Schema: "s", Name: "outbox"}
	c := NewCleanup(CleanupConfig{IDColumn: "id", BatchSize: 10, Rate: 1000, MaxPending: 1,
		Hooks: &countHooks{}, Log: zerolog.Nop()}, pointAt(500))
	from, to := pointAt(100), pointAt(500)
	// What Recover does: Cleaned goes back to from, one row is remembered,
	// the next is left out (max_pending 1), the range's end is durable.
	c.mu.Lock()
	c.cleaned = from
	c.q = append(c.q, pending{seq: c.hi, table: tbl, key: 1, commit: time.Now().UnixNano()})
	c.hi++
	c.leaveOutLocked()
	c.mu.Unlock()
	c.durableAt(to, all)
	if got := c.Cleaned(); got != from {
		t.Fatalf("cleaned %v with a recovered row not deleted, want from %v", got, from)
	}
	_, keys, _ := c.batch(time.Now(), nil)
	if len(keys) != 1 {
		t.Fatalf("batch %v, want the recovered row", keys)
	}
	c.deleted(1)
	if got := c.Cleaned(); got != from {
		t.Errorf("cleaned %v with a row left out, want from %v: the next start must read the range again", got, from)
	}
	// A session that makes no progress ends where it began: the left-out
	// row is not one it reads again.
	c.beginSession()
	c.endSession(c.global(0))
	c.durableAt(pointAt(600), all)
	if got := c.Cleaned(); got != from {
		t.Errorf("cleaned %v after an empty session, want from %v", got, from)
	}
}

// Recover keeps the rows the stream may have dead-lettered rather than
// published: a record over max_message_bytes, or one for an explicit
// partition (which only a producer could check).
func TestCleanupRecoverKeepsRowsTheStreamMayHaveDeadLettered(t *testing.T) {
	c := NewCleanup(CleanupConfig{MaxMessageBytes: 100}, pointAt(4))
	small := &outbox.Event{Topic: "t", Key: []byte("k"), Value: []byte("v")}
	if !c.publishable(small, &records{}) {
		t.Error("a small record is not publishable")
	}
	large := &outbox.Event{Topic: "t", Key: []byte("k"), Value: make([]byte, 200)}
	if c.publishable(large, &records{}) {
		t.Error("a record over max_message_bytes is publishable: its row would be deleted though the stream dead-lettered it")
	}
	placed := &outbox.Event{Topic: "t", Key: []byte("k"), Value: []byte("v"), ExplicitPartition: true, Partition: 3}
	if c.publishable(placed, &records{}) {
		t.Error("a record for an explicit partition is publishable: Recover cannot tell whether the topic has it")
	}
}
