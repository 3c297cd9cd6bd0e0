package binlog

import (
	"sync/atomic"
	"time"
)

// Stats is a snapshot of a Reader's stream, for health checks and metrics.
type Stats struct {
	// Connected is true from the first event a stream delivers until that
	// stream fails, a new one is started, or the Reader is closed.
	Connected bool
	// Waiting is true while Next waits for the server's next event.
	Waiting bool
	// Events counts what Next received from the stream since Open — events,
	// heartbeats included, and stream errors; it grows while the stream
	// moves and stands still while nobody calls Next or nothing arrives.
	Events uint64
	// Reconnects counts reconnect attempts after stream failures since Open.
	Reconnects uint64
	// LastCommit is the commit time (Txn.CommitTime) of the last
	// transaction whose start was read since the last Start; zero before
	// the first.
	LastCommit time.Time
	// LastHeartbeat is when, by the local clock, the last heartbeat arrived
	// since the last Start; zero before the first. The server sends one
	// only when it has had nothing else to send for the heartbeat period.
	LastHeartbeat time.Time
}

// stats holds what Stats reports. The Reader's goroutine writes it; any
// goroutine may read it.
type stats struct {
	calls      atomic.Uint64 // GetEvent calls begun plus ended: odd while one waits
	connected  atomic.Bool
	reconnects atomic.Uint64
	commit     atomic.Int64 // Unix ns, 0 = none
	heartbeat  atomic.Int64 // Unix ns, 0 = none
}

// waiting marks the start of a GetEvent call.
func (s *stats) waiting() { s.calls.Add(1) }

// received marks its end; ok when it returned an event.
func (s *stats) received(ok bool) {
	s.calls.Add(1)
	if ok && !s.connected.Load() {
		s.connected.Store(true)
	}
}

// lost marks a failed stream about to be reconnected.
func (s *stats) lost() {
	s.connected.Store(false)
	s.reconnects.Add(1)
}

// restart forgets the stream position facts at Start.
func (s *stats) restart() {
	s.connected.Store(false)
	s.commit.Store(0)
	s.heartbeat.Store(0)
}

func unixTime(ns int64) time.Time {
	if ns == 0 {
		return time.Time{}
	}
	return time.Unix(0, ns)
}

// Stats returns a snapshot of the stream's health. Unlike the other methods
// it may be called from any goroutine, also after Close; it never blocks.
func (r *Reader) Stats() Stats {
	calls := r.st.calls.Load()
	return Stats{
		Connected:     r.st.connected.Load(),
		Waiting:       calls%2 == 1,
		Events:        calls / 2,
		Reconnects:    r.st.reconnects.Load(),
		LastCommit:    unixTime(r.st.commit.Load()),
		LastHeartbeat: unixTime(r.st.heartbeat.Load()),
	}
}
