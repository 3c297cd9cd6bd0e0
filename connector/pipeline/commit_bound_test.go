package pipeline

import (
	"testing"

	"github.com/tailbox-cdc/tailbox/pkg/binlog"
)

func TestTrackerStaysSmallWhileAnEventIsInFlight(t *testing.T) {
	tests := []struct {
		name    string
		run     func(tr *Tracker) uint64 // returns the in-flight slot
		maxLen  int                      // FIFO entries while it is in flight
		before  binlog.Point             // committed point while it is in flight
		settled binlog.Point             // committed point once it settles
	}{
		{
			name: "transactions without events behind it keep only their last marker",
			run: func(tr *Tracker) uint64 {
				tr.PushMarker(pos(100))
				a := tr.PushSlot(0, "t1", false)
				for i := range 100000 {
					tr.PushMarker(pos(200 + uint32(i)))
				}
				return a
			},
			maxLen:  2,
			before:  binlog.Point{Pos: pos(100)},
			settled: binlog.Point{Pos: pos(200 + 99999)},
		},
		{
			name: "settled rows of one transaction behind it keep only the last",
			run: func(tr *Tracker) uint64 {
				a := tr.PushSlot(0, "t1", false)
				for i := 1; i <= 100000; i++ {
					tr.PushSlot(i, "t1", true) // ignored deletes
				}
				return a
			},
			maxLen:  2,
			before:  binlog.Point{Pos: pos(50)},
			settled: binlog.Point{Pos: pos(50), Skip: 100001, NextTxn: "t1"},
		},
		{
			name: "settled rows of another transaction are not merged across its marker",
			run: func(tr *Tracker) uint64 {
				a := tr.PushSlot(0, "t1", false)
				tr.PushMarker(pos(200))
				tr.PushSlot(0, "t2", true)
				tr.PushSlot(1, "t2", true)
				return a
			},
			maxLen:  3,
			before:  binlog.Point{Pos: pos(50)},
			settled: binlog.Point{Pos: pos(200), Skip: 2, NextTxn: "t2"},
		},
		{
			name: "a settled row merged into an acknowledged one keeps the later index",
			run: func(tr *Tracker) uint64 {
				a := tr.PushSlot(0, "t1", false)
				b := tr.PushSlot(1, "t1", false)
				tr.Settle(b)
				tr.PushSlot(2, "t1", true)
				tr.PushSlot(3, "t1", true)
				return a
			},
			maxLen:  2,
			before:  binlog.Point{Pos: pos(50)},
			settled: binlog.Point{Pos: pos(50), Skip: 4, NextTxn: "t1"},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			tr := NewTracker(binlog.Point{Pos: pos(50)})
			a := tt.run(tr)
			if n := len(tr.q) - tr.head; n > tt.maxLen {
				t.Fatalf("FIFO holds %d entries while one event is in flight, want at most %d", n, tt.maxLen)
			}
			if got, _ := tr.Committed(); got != tt.before {
				t.Fatalf("committed %+v while the first event is in flight, want %+v", got, tt.before)
			}
			tr.Settle(a)
			if got, _ := tr.Committed(); got != tt.settled {
				t.Fatalf("committed %+v after it settled, want %+v", got, tt.settled)
			}
			if n := tr.InFlight(); n != 0 {
				t.Fatalf("inFlight = %d after everything settled", n)
			}
		})
	}
}
