package binlog

import (
	"slices"
	"testing"
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
