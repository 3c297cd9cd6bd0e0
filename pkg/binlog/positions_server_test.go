package binlog_test

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"testing"
	"time"

	"github.com/tailbox-cdc/tailbox/pkg/binlog"
)

// dumpThreads returns the ids of the server's binlog dump threads.
func (f *fixture) dumpThreads(t *testing.T) []int64 {
	t.Helper()
	res := f.db.Exec(t, "SELECT ID FROM information_schema.PROCESSLIST WHERE COMMAND LIKE 'Binlog Dump%' ORDER BY ID")
	var ids []int64
	for i := 0; i < res.RowNumber(); i++ {
		id, _ := res.GetInt(i, 0)
		ids = append(ids, id)
	}
	return ids
}

// TestPositionLookupsLeaveTheStreamAlone checks that the short dumps behind
// FileStartTime, AtTime and Resolve (server_id 0, as mysqlbinlog) never
// displace the Reader's own replication stream, which MariaDB would do to
// a second dump with the same server_id.
func TestPositionLookupsLeaveTheStreamAlone(t *testing.T) {
	f := setup(t, 4120)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	start, err := f.r.Inspector().Latest(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if err := f.r.Start(ctx, start, 0, ""); err != nil {
		t.Fatal(err)
	}
	f.tx(t, f.insert(t, "s1", "1", "A", `{}`))
	_, markers := collect(t, f.r, 1)
	before := f.dumpThreads(t)
	if len(before) == 0 {
		t.Fatal("the reader's dump thread is not in the processlist")
	}

	started, err := f.r.Inspector().FileStartTime(ctx, start.File)
	if err != nil {
		t.Fatal(err)
	}
	if started.After(time.Now()) || started.Year() < 2020 || started.Location() != time.UTC {
		t.Fatalf("start time of %s = %v", start.File, started)
	}
	end := markers[len(markers)-1]
	at, err := f.r.Inspector().AtTime(ctx, time.Now().Add(time.Hour))
	if err != nil {
		t.Fatal(err)
	}
	if at.Compare(end) < 0 || at.GTID == "" {
		t.Fatalf("a time after every transaction gave %s, want the end of the binlog (at or after %s)", at, end)
	}
	resolved, err := f.r.Inspector().Resolve(ctx, binlog.Position{File: end.File, Pos: end.Pos})
	if err != nil {
		t.Fatal(err)
	}
	if resolved != end {
		t.Fatalf("Resolve(%s:%d) = %s, want the marker %s", end.File, end.Pos, resolved, end)
	}
	if err := f.r.Inspector().CheckGTID(ctx, end.GTID); err != nil {
		t.Fatalf("the GTID set of a marker is not available: %v", err)
	}
	if _, err := f.r.Inspector().FileStartTime(ctx, "mysql-bin.999999"); !errors.Is(err, binlog.ErrPositionUnavailable) {
		t.Fatalf("start time of a missing file: got %v, want ErrPositionUnavailable", err)
	}

	f.tx(t, f.insert(t, "s2", "1", "B", `{}`))
	got, _ := collect(t, f.r, 1)
	if len(got) != 1 || got[0].Row[0] != "s2" {
		t.Fatalf("after the lookups the stream gave %+v", got)
	}
	after := f.dumpThreads(t)
	for _, id := range before {
		if !slices.Contains(after, id) {
			t.Fatalf("dump thread %d is gone after the lookups (before %v, after %v): a lookup displaced a stream", id, before, after)
		}
	}
}

// TestAtTimeOnMariaDB checks a time seek on MariaDB, where commit times are
// the GTID events' header times in whole seconds.
func TestAtTimeOnMariaDB(t *testing.T) {
	f := setup(t, 4121)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	f.tx(t, f.insert(t, "t1", "1", "A", `{}`))
	now := time.Now()
	time.Sleep(now.Truncate(time.Second).Add(time.Second + 50*time.Millisecond).Sub(now))
	at := time.Now()
	f.tx(t, f.insert(t, "t2", "1", "B", `{}`))
	f.tx(t, fmt.Sprintf("INSERT INTO %s.members VALUES (7,'x','ACTIVE',NULL)", f.dbn), f.insert(t, "t3", "1", "C", `{}`))
	p, err := f.r.Inspector().AtTime(ctx, at)
	if err != nil {
		t.Fatal(err)
	}
	if p.GTID == "" {
		t.Fatalf("a MariaDB position without its GTID state: %s", p)
	}
	if err := f.r.Start(ctx, p, 0, ""); err != nil {
		t.Fatal(err)
	}
	got, _ := collect(t, f.r, 2)
	if len(got) != 2 || got[0].Row[0] != "t2" || got[1].Row[0] != "t3" {
		var ids []any
		for _, c := range got {
			ids = append(ids, c.Row[0])
		}
		t.Fatalf("from %s (time %s) got %v, want [t2 t3]", p, at.Format(time.RFC3339Nano), ids)
	}
}
