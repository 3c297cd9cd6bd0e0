package pipeline

import (
	"fmt"
	"math/rand/v2"
	"testing"

	"github.com/tailbox-cdc/tailbox/pkg/binlog"
)

func pos(n uint32) binlog.Position { return binlog.Position{File: "mysql-bin.000001", Pos: n} }

func TestTrackerCommitRule(t *testing.T) {
	tests := []struct {
		name string
		run  func(tr *Tracker)
		want binlog.Point
	}{
		{
			name: "a transaction without captured rows advances the checkpoint at once",
			run:  func(tr *Tracker) { tr.PushMarker(pos(100)) },
			want: binlog.Point{Pos: pos(100)},
		},
		{
			name: "an unacknowledged event pins the checkpoint before its transaction",
			run: func(tr *Tracker) {
				tr.PushMarker(pos(100))
				tr.PushSlot(0, "t1", false)
				tr.PushMarker(pos(200))
				tr.PushMarker(pos(300))
			},
			want: binlog.Point{Pos: pos(100)},
		},
		{
			name: "acknowledgements out of order advance only over the settled prefix",
			run: func(tr *Tracker) {
				a := tr.PushSlot(0, "t1", false)
				b := tr.PushSlot(1, "t1", false)
				c := tr.PushSlot(2, "t1", false)
				tr.PushMarker(pos(200))
				tr.Settle(c)
				tr.Settle(a)
				_ = b
			},
			want: binlog.Point{Pos: pos(50), Skip: 1, NextTxn: "t1"},
		},
		{
			name: "all acknowledged reaches the marker after them",
			run: func(tr *Tracker) {
				a := tr.PushSlot(0, "t1", false)
				b := tr.PushSlot(1, "t1", false)
				tr.PushMarker(pos(200))
				tr.Settle(b)
				tr.Settle(a)
			},
			want: binlog.Point{Pos: pos(200)},
		},
		{
			name: "skipped rows count towards skip",
			run: func(tr *Tracker) {
				tr.PushSlot(0, "t1", true) // an ignored delete
				tr.PushSlot(1, "t1", true)
			},
			want: binlog.Point{Pos: pos(50), Skip: 2, NextTxn: "t1"},
		},
		{
			name: "a settled row behind an unsettled one waits",
			run: func(tr *Tracker) {
				a := tr.PushSlot(0, "t1", false)
				tr.PushSlot(1, "t1", true)
				tr.PushMarker(pos(200))
				b := tr.PushSlot(0, "t2", false)
				tr.Settle(a)
				_ = b
			},
			want: binlog.Point{Pos: pos(200)},
		},
		{
			name: "a duplicate or unknown acknowledgement changes nothing",
			run: func(tr *Tracker) {
				a := tr.PushSlot(0, "t1", false)
				tr.PushSlot(1, "t1", false)
				tr.Settle(a)
				tr.Settle(a)
				tr.Settle(999)
			},
			want: binlog.Point{Pos: pos(50), Skip: 1, NextTxn: "t1"},
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			tr := NewTracker(binlog.Point{Pos: pos(50)})
			tc.run(tr)
			if got, _ := tr.Committed(); got != tc.want {
				t.Fatalf("committed = %+v, want %+v", got, tc.want)
			}
		})
	}
}

func TestTrackerLongRunCompactsAndCounts(t *testing.T) {
	tr := NewTracker(binlog.Point{Pos: pos(4)})
	var seqs []uint64
	for i := 0; i < 10000; i++ {
		seqs = append(seqs, tr.PushSlot(i%10, "t", false))
		if i%10 == 9 {
			tr.PushMarker(pos(uint32(1000 + i)))
		}
	}
	if tr.InFlight() != 10000 {
		t.Fatalf("in flight = %d", tr.InFlight())
	}
	for i := len(seqs) - 1; i >= 0; i-- {
		tr.Settle(seqs[i])
	}
	got, _ := tr.Committed()
	if got.Pos != pos(1000+9999) || got.Skip != 0 || tr.InFlight() != 0 {
		t.Fatalf("committed = %+v, in flight %d", got, tr.InFlight())
	}
}

func TestTrackerReadPoint(t *testing.T) {
	start := binlog.Point{Pos: pos(4)}
	tr := NewTracker(start)
	if got := tr.ReadPoint(); got != start {
		t.Fatalf("readPoint of a new tracker = %+v, want the start %+v", got, start)
	}
	tr.PushMarker(pos(100))
	tr.PushSlot(0, "t2", false)
	tr.PushSlot(1, "t2", true)
	if got, want := tr.ReadPoint(), (binlog.Point{Pos: pos(100), Skip: 2, NextTxn: "t2"}); got != want {
		t.Errorf("readPoint inside a transaction = %+v, want %+v", got, want)
	}
	if got, _ := tr.Committed(); got != (binlog.Point{Pos: pos(100)}) {
		t.Errorf("committed with an unsettled slot = %+v, want before it", got)
	}
	tr.PushMarker(pos(200))
	if got, want := tr.ReadPoint(), (binlog.Point{Pos: pos(200)}); got != want {
		t.Errorf("readPoint after the transaction end = %+v, want %+v", got, want)
	}
}

// A burst of acknowledgements settled in one call leaves the tracker where
// settling them one by one does, whatever their order, duplicates and
// unknown sequence numbers among them.
func TestTrackerSettlesBurstsLikeSingles(t *testing.T) {
	rng := rand.New(rand.NewPCG(7, 11))
	burst, single := NewTracker(binlog.Point{Pos: pos(4)}), NewTracker(binlog.Point{Pos: pos(4)})
	var open []uint64
	for round := 0; round < 2000; round++ {
		for n := rng.IntN(20); n > 0; n-- {
			if rng.IntN(8) == 0 {
				p := pos(uint32(100 + round))
				burst.PushMarker(p)
				single.PushMarker(p)
				continue
			}
			idx, txn, settled := rng.IntN(50), fmt.Sprintf("t%d", round/3), rng.IntN(5) == 0
			a, b := burst.PushSlot(idx, txn, settled), single.PushSlot(idx, txn, settled)
			if a != b {
				t.Fatalf("round %d: sequence numbers differ: %d, %d", round, a, b)
			}
			if !settled {
				open = append(open, a)
			}
		}
		rng.Shuffle(len(open), func(i, j int) { open[i], open[j] = open[j], open[i] })
		k := rng.IntN(len(open) + 1)
		seqs := append([]uint64(nil), open[:k]...)
		open = open[k:]
		if k > 0 && rng.IntN(4) == 0 {
			seqs = append(seqs, seqs[0], 1<<40) // a duplicate, an unknown one
		}
		burst.Settle(seqs...)
		for _, s := range seqs {
			single.Settle(s)
		}
		gb, vb := burst.Committed()
		gs, _ := single.Committed()
		if gb != gs || burst.InFlight() != single.InFlight() {
			t.Fatalf("round %d: burst committed %+v (in flight %d), singles %+v (in flight %d)", round, gb, burst.InFlight(), gs, single.InFlight())
		}
		if round == 1999 && vb == 0 {
			t.Fatal("the committed point never moved")
		}
	}
}

// TestTrackerSignalsCaughtUp: caughtUp is signalled whenever the committed
// point reaches everything pushed, and never while a slot is unsettled.
func TestTrackerSignalsCaughtUp(t *testing.T) {
	tr := NewTracker(binlog.Point{Pos: pos(4)})
	tr.caughtUp = make(chan struct{}, 1)
	signalled := func() bool {
		select {
		case <-tr.caughtUp:
			return true
		default:
			return false
		}
	}
	check := func(step string, want bool) {
		t.Helper()
		if got := signalled(); got != want {
			t.Errorf("%s: caught up signalled %v, want %v", step, got, want)
		}
		if p, _ := tr.Committed(); want && p != tr.ReadPoint() {
			t.Errorf("%s: signalled at %+v, but everything pushed ends at %+v", step, p, tr.ReadPoint())
		}
	}

	tr.PushMarker(pos(100))
	check("a marker with nothing in flight", true)
	tr.PushSlot(0, "t2", true)
	check("a settled slot with nothing in flight", true)
	a := tr.PushSlot(1, "t2", false)
	check("a slot sent", false)
	tr.PushMarker(pos(200))
	b := tr.PushSlot(0, "t3", false)
	tr.PushSlot(1, "t3", true)
	check("more pushed behind it", false)
	tr.Settle(b)
	check("a later slot acknowledged first", false)
	tr.Settle(a)
	check("the first slot acknowledged: all settled", true)
	tr.Settle(a, b)
	check("acknowledgements again", false)

	// A signal not yet taken stands for later ones: pushing never blocks.
	for i := range 10 {
		tr.PushMarker(pos(uint32(300 + i)))
	}
	check("ten markers, one signal", true)
	check("taken", false)
}
