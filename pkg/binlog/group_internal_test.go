package binlog

import (
	"errors"
	"slices"
	"testing"
	"time"

	"github.com/rs/zerolog"
)

func TestSavepointStatement(t *testing.T) {
	tests := []struct {
		name      string
		q         string
		verb, sp  string
		ok, isErr bool
	}{
		{name: "the server's SAVEPOINT is read", q: "SAVEPOINT `sp1`", verb: "SAVEPOINT", sp: "sp1", ok: true},
		{name: "the server's ROLLBACK TO is read", q: "ROLLBACK TO `sp1`", verb: "ROLLBACK TO", sp: "sp1", ok: true},
		{name: "a doubled backquote is one backquote", q: "ROLLBACK TO `x``y`", verb: "ROLLBACK TO", sp: "x`y", ok: true},
		{name: "a name with a space is kept whole", q: "SAVEPOINT `my sp`", verb: "SAVEPOINT", sp: "my sp", ok: true},
		{name: "WORK and SAVEPOINT may follow ROLLBACK", q: "rollback work to savepoint a", verb: "ROLLBACK TO", sp: "a", ok: true},
		{name: "a bare name is read", q: "ROLLBACK TO sp_2;", verb: "ROLLBACK TO", sp: "sp_2", ok: true},
		{name: "a name starting like a keyword is a name", q: "ROLLBACK TO savepoint_x", verb: "ROLLBACK TO", sp: "savepoint_x", ok: true},
		{name: "RELEASE SAVEPOINT is read", q: "RELEASE SAVEPOINT `a`", verb: "RELEASE", sp: "a", ok: true},
		{name: "ANSI quotes are read", q: `SAVEPOINT "q""x"`, verb: "SAVEPOINT", sp: `q"x`, ok: true},
		{name: "a plain ROLLBACK is not a savepoint statement", q: "ROLLBACK"},
		{name: "ROLLBACK AND CHAIN is not a savepoint statement", q: "ROLLBACK AND CHAIN"},
		{name: "RELEASE alone is not a savepoint statement", q: "RELEASE"},
		{name: "a missing name is an error", q: "SAVEPOINT ", verb: "SAVEPOINT", ok: true, isErr: true},
		{name: "text after a quoted name is an error", q: "ROLLBACK TO `a` b", verb: "ROLLBACK TO", ok: true, isErr: true},
		{name: "an unterminated name is an error", q: "SAVEPOINT `a", verb: "SAVEPOINT", ok: true, isErr: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			verb, sp, ok, err := savepointStatement([]byte(tt.q))
			if ok != tt.ok || (err != nil) != tt.isErr {
				t.Fatalf("savepointStatement(%q) = ok %v, err %v; want ok %v, error %v", tt.q, ok, err, tt.ok, tt.isErr)
			}
			if ok && !tt.isErr && (verb != tt.verb || sp != tt.sp) {
				t.Errorf("savepointStatement(%q) = %q %q, want %q %q", tt.q, verb, sp, tt.verb, tt.sp)
			}
		})
	}
}

func TestGroupSavepoints(t *testing.T) {
	var g group
	held := func(idx ...int) {
		for _, i := range idx {
			g.held = append(g.held, Item{Kind: ItemChange, Change: Change{Index: i}})
		}
	}
	heldIdx := func() []int {
		var out []int
		for _, it := range g.held {
			out = append(out, it.Change.Index)
		}
		return out
	}
	held(0)
	g.setSavepoint("a", 1)
	held(1, 2)
	g.setSavepoint("b", 3)
	held(3)
	g.setSavepoint("A", 4) // replaces a (names compare case-insensitively); b stays
	held(4, 5)
	if !g.rollbackTo("b", 6) {
		t.Fatal("rollback to b: not found")
	}
	// b was set before A: rolling back to b forgets A and discards 3-5.
	if got := heldIdx(); !slices.Equal(got, []int{0, 1, 2}) {
		t.Fatalf("held after ROLLBACK TO b: %v", got)
	}
	if g.rollbackTo("a", 6) {
		t.Fatal("a was replaced by A, which ROLLBACK TO b forgot: want not found")
	}
	held(6)
	if !g.rollbackTo("b", 7) {
		t.Fatal("b stays after a rollback to it")
	}
	if !slices.Equal(g.discard, []span{{3, 6}, {3, 7}}) {
		t.Errorf("discarded spans %v", g.discard)
	}
	for i, want := range []bool{false, false, false, true, true, true, true, false} {
		if g.discarded(i) != want {
			t.Errorf("discarded(%d) = %v, want %v", i, !want, want)
		}
	}
	g.setSavepoint("c", 7)
	g.setSavepoint("d", 7)
	if !g.releaseSavepoint("c", true) || g.rollbackTo("d", 7) {
		t.Error("RELEASE c must forget d, set after it")
	}
}

// TestReplayFindsItsGroupPastGroupsWithoutAnEnd: the marker a replay
// restarts at may lie before a group the server never finished (dropped
// again on the re-read); only the group itself, by GTID and position, is
// replayed, and a checkpoint's skip survives the dropped and rolled-back
// groups before the group it names.
func TestReplayFindsItsGroupPastGroupsWithoutAnEnd(t *testing.T) {
	r := &Reader{log: zerolog.Nop()}
	r.lastEnd = Position{File: "bin.000005", Pos: 400, GTID: "0-1-99"}
	a := Position{File: "bin.000005", Pos: 400}
	g := Position{File: "bin.000006", Pos: 300}
	r.replay = &replayPlan{gtid: "0-1-101", at: g, discard: []span{{1, 2}}}
	r.skip, r.skipTxn = 2, "0-1-101"

	// The re-read meets the dropped group A first: it is held, not replayed.
	r.evStart = a
	if err := r.beginTxn("0-1-100", time.Time{}, false); err != nil {
		t.Fatal(err)
	}
	r.txnRows = 3
	if r.grp.replaying {
		t.Fatal("group 0-1-100 at bin.000005:400 taken for the replay of 0-1-101")
	}
	// The file ends without its end; the next file holds a rolled-back
	// group, then the replayed one.
	r.abandonTxn("the binlog file ended")
	r.evStart = Position{File: "bin.000006", Pos: 120}
	if err := r.beginTxn("0-1-102", time.Time{}, false); err != nil {
		t.Fatal(err)
	}
	r.txnRows = 1
	if err := r.endTxn(200, false); err != nil {
		t.Fatalf("a rolled-back group before the checkpoint's: %v", err)
	}
	if r.skip != 2 || r.skipTxn != "0-1-101" {
		t.Fatalf("skip after dropped and rolled-back groups = %d %q, want 2 0-1-101", r.skip, r.skipTxn)
	}
	r.evStart = g
	if err := r.beginTxn("0-1-101", time.Time{}, false); err != nil {
		t.Fatal(err)
	}
	if !r.grp.replaying || !slices.Equal(r.grp.discard, []span{{1, 2}}) {
		t.Fatalf("group 0-1-101 at %s not replayed with its discarded rows (replaying %v, discard %v)", g, r.grp.replaying, r.grp.discard)
	}
	r.txnRows = 4
	if err := r.endTxn(900, true); err != nil {
		t.Fatal(err)
	}
	if r.replay != nil || r.skip != 0 {
		t.Errorf("after the replayed group: replay %v, skip %d; want both done", r.replay, r.skip)
	}

	// A committed group with captured rows that is not the one the
	// checkpoint names: the binlog does not match.
	r.skip, r.skipTxn = 1, "0-1-200"
	r.evStart = Position{File: "bin.000006", Pos: 900}
	if err := r.beginTxn("0-1-199", time.Time{}, false); err != nil {
		t.Fatal(err)
	}
	r.txnRows = 1
	if err := r.endTxn(1000, true); !errors.Is(err, ErrPositionUnavailable) {
		t.Errorf("committed group 0-1-199 where the checkpoint names 0-1-200: got %v, want ErrPositionUnavailable", err)
	}
}
