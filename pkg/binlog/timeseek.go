package binlog

import (
	"context"
	"errors"
	"fmt"
	"io"
	"sort"
	"time"

	"github.com/go-mysql-org/go-mysql/replication"
)

// AtTime returns the transaction boundary before the first transaction
// committed at or after t, or the end of the binlog when there is none: the
// position for a time:T start. The server cannot seek by time, so AtTime
// binary-searches the files of SHOW BINARY LOGS by their start time (the
// FORMAT_DESCRIPTION event's header time), reads from the last file surely
// created at or before t, and stops at the first transaction whose commit
// time is not before t. Commit time is MySQL 8's original_commit_timestamp
// (µs) when present, else the header time (seconds) of the transaction's
// GTID and end events; with seconds, every transaction of t's second counts
// as at or after t, so none committed at t is missed. The position carries
// the GTID state there on servers with GTIDs. A t before the oldest file's
// start is an error naming that file and its time (wrapping
// ErrPositionUnavailable): older transactions may have been purged.
func (in *Inspector) AtTime(ctx context.Context, t time.Time) (Position, error) {
	if in.closed {
		return Position{}, ErrClosed
	}
	c, logs, err := in.logFiles(ctx)
	if err != nil {
		return Position{}, err
	}
	starts := make([]time.Time, len(logs))
	startOf := func(i int) (time.Time, error) {
		if starts[i].IsZero() {
			st, err := fileStartTime(ctx, &in.cfg, in.srv.Flavor, logs[i].Name)
			if err != nil {
				return time.Time{}, err
			}
			starts[i] = st
		}
		return starts[i], nil
	}
	first, err := startOf(0)
	if err != nil {
		return Position{}, err
	}
	if t.Before(first) {
		return Position{}, fmt.Errorf("time %s is before the oldest binlog file %s, started %s: older transactions may have been purged (start at earliest, or at a later time): %w%s",
			t.Format(time.RFC3339Nano), logs[0].Name, first.Format(time.RFC3339), ErrPositionUnavailable, in.available(ctx))
	}
	i, err := lastStartedBefore(len(logs), startOf, t)
	if err != nil {
		return Position{}, err
	}
	d, err := openDump(ctx, &in.cfg, in.srv.Flavor, logs[i].Name, 4)
	if err != nil {
		return Position{}, err
	}
	defer d.close()
	p, err := seekTime(d.next, newTxnScan(logs[i].Name, in.srv.Flavor == FlavorMySQL && in.srv.GTIDMode), t)
	if err != nil {
		return Position{}, fmt.Errorf("read %s onwards for the first transaction at or after %s: %w", logs[i].Name, t.Format(time.RFC3339Nano), err)
	}
	d.close()
	if in.srv.Flavor == FlavorMariaDB {
		if p.GTID, err = c.mariadbGTIDAt(p.File, p.Pos); err != nil {
			return Position{}, fmt.Errorf("gtid state at %s: %w", p, err)
		}
	}
	return p, nil
}

// lastStartedBefore returns the last of n files (ordered, start times by
// startOf) that surely started at or before t: its start time, in whole
// seconds, plus one second is not after t. Earlier files then hold only
// transactions committed before t. It returns 0 when no file qualifies.
func lastStartedBefore(n int, startOf func(int) (time.Time, error), t time.Time) (int, error) {
	var ferr error
	// sort.Search finds the first file that does not qualify.
	k := sort.Search(n, func(i int) bool {
		if ferr != nil {
			return true
		}
		st, err := startOf(i)
		if err != nil {
			ferr = err
			return true
		}
		return st.Add(time.Second).After(t)
	})
	if ferr != nil {
		return 0, ferr
	}
	return max(k-1, 0), nil
}

// committedAtOrAfter reports whether a transaction committed at commit is
// at or after t; a time in whole seconds counts when it is in t's second.
func committedAtOrAfter(commit time.Time, micros bool, t time.Time) bool {
	if !micros {
		t = t.Truncate(time.Second)
	}
	return !commit.Before(t)
}

// seekTime reads events from the start of s's file onwards and returns the
// boundary before the first transaction committed at or after t, or, when
// next reports the end of the binlog (io.EOF) first, the boundary after the
// last transaction. The position carries s's tracked MySQL GTID set.
func seekTime(next func() (*replication.BinlogEvent, error), s *txnScan, t time.Time) (Position, error) {
	s.before = func(commit time.Time, micros bool) bool { return committedAtOrAfter(commit, micros, t) }
	for !s.stopped {
		ev, err := next()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			return Position{}, err
		}
		if err := s.apply(ev); err != nil {
			return Position{}, err
		}
	}
	p := s.end
	p.GTID = s.gtidSet()
	return p, nil
}
