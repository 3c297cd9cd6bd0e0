package binlog

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"time"

	"github.com/go-mysql-org/go-mysql/mysql"
	"github.com/go-mysql-org/go-mysql/replication"
)

// txnScan follows transaction boundaries through events read from the start
// of a binlog file onwards, with the transaction rules of Reader.handle but
// without decoding rows. It is the pure part of resolving FILE:POS and
// time:T starts: feed it events with apply.
type txnScan struct {
	// end is the boundary after the last transaction end applied (or the
	// start of a file after a real rotate): where a stream can start.
	end Position
	// set is, on MySQL with GTIDs, the executed set at end: the file's
	// PREVIOUS_GTIDS plus the GTIDs of the transactions ended since; nil
	// when not tracked (MariaDB, whose GTID state BINLOG_GTID_POS gives).
	set mysql.GTIDSet
	// previous reports that the current file's PREVIOUS_GTIDS was read.
	previous bool

	file   string // the file the events come from
	open   bool   // inside a transaction
	begun  bool   // inside BEGIN ... COMMIT (or a MariaDB non-standalone GTID group)
	gtid   string // the open transaction's GTID, "" without
	start  uint32 // where the open transaction's first event starts
	openAt time.Time
	commit time.Time // original_commit_timestamp (MySQL 8), zero when absent
	micros bool

	// before, when set, is asked at every transaction end, before the end
	// is applied, with the transaction's commit time; when it returns
	// true the scan stops there: stopped is set and end stays the
	// boundary before that transaction.
	before  func(commit time.Time, micros bool) bool
	stopped bool
}

// newTxnScan returns a scan of file; trackGTID makes it track MySQL's
// executed GTID set.
func newTxnScan(file string, trackGTID bool) *txnScan {
	s := &txnScan{file: file, end: Position{File: file, Pos: 4}}
	if trackGTID {
		s.set, _ = mysql.ParseMysqlGTIDSet("")
	}
	return s
}

func isArtificial(h *replication.EventHeader) bool {
	return h.Timestamp == 0 || h.Flags&replication.LOG_EVENT_ARTIFICIAL_F != 0
}

// apply moves the scan past ev.
func (s *txnScan) apply(ev *replication.BinlogEvent) error {
	return s.event(ev, ev.Header.LogPos)
}

func (s *txnScan) event(ev *replication.BinlogEvent, pos uint32) error {
	if s.stopped {
		return nil
	}
	h := ev.Header
	at := time.Unix(int64(h.Timestamp), 0).UTC()
	switch e := ev.Event.(type) {
	case *replication.RotateEvent:
		s.file = string(e.NextLogName)
		if !isArtificial(h) && !s.open {
			s.end = Position{File: s.file, Pos: uint32(e.Position)}
			s.previous = false
		}
	case *replication.PreviousGTIDsEvent:
		s.previous = true
		if s.set != nil {
			set, err := mysql.ParseMysqlGTIDSet(e.GTIDSets)
			if err != nil {
				return fmt.Errorf("parse previous gtids %q: %w", e.GTIDSets, err)
			}
			s.set = set
		}
	case *replication.GTIDEvent:
		s.begin(h, pos, at)
		if h.EventType != replication.ANONYMOUS_GTID_EVENT {
			s.gtid = gtidOf(e.SID, "", e.GNO)
		}
		if e.OriginalCommitTimestamp != 0 {
			s.commit, s.micros = e.OriginalCommitTime().UTC(), true
		} else if e.ImmediateCommitTimestamp != 0 {
			s.commit, s.micros = e.ImmediateCommitTime().UTC(), true
		}
	case *replication.GtidTaggedLogEvent:
		s.begin(h, pos, at)
		s.gtid = gtidOf(e.SID, e.Tag.String(), e.GNO)
		if e.OriginalCommitTimestamp != 0 {
			s.commit, s.micros = e.OriginalCommitTime().UTC(), true
		}
	case *replication.MariadbGTIDEvent:
		s.begin(h, pos, at)
		s.gtid = e.GTID.String()
		s.begun = !e.IsStandalone()
	case *replication.QueryEvent:
		q := bytes.TrimSpace(e.Query)
		switch {
		case bytes.EqualFold(q, []byte("BEGIN")), hasPrefixFold(q, "XA START"), hasPrefixFold(q, "XA BEGIN"):
			if !s.open {
				s.begin(h, pos, at)
			}
			s.begun = true
		case bytes.EqualFold(q, []byte("COMMIT")), bytes.EqualFold(q, []byte("ROLLBACK")), hasPrefixFold(q, "XA PREPARE"):
			return s.endTxn(pos, at)
		case s.begun:
			// A statement inside BEGIN ... COMMIT (XA END, SAVEPOINT, ...).
		default:
			// A DDL or other standalone statement is its own transaction.
			if !s.open {
				s.begin(h, pos, at)
			}
			return s.endTxn(pos, at)
		}
	case *replication.XIDEvent:
		return s.endTxn(pos, at)
	case *replication.TransactionPayloadEvent:
		// A whole compressed transaction (after its GTID event); its inner
		// events share its position.
		for _, inner := range e.Events {
			if err := s.event(inner, pos); err != nil {
				return err
			}
		}
	default:
		if h.EventType == replication.XA_PREPARE_LOG_EVENT {
			return s.endTxn(pos, at)
		}
	}
	return nil
}

func (s *txnScan) begin(h *replication.EventHeader, pos uint32, at time.Time) {
	s.open, s.begun, s.gtid = true, false, ""
	s.start = pos - min(pos, h.EventSize)
	s.openAt, s.commit, s.micros = at, time.Time{}, false
}

func (s *txnScan) endTxn(pos uint32, at time.Time) error {
	commit, micros := s.commit, s.micros
	if commit.IsZero() {
		// Header times (seconds): MariaDB writes the GTID event at commit.
		commit = s.openAt
		if at.After(commit) {
			commit = at
		}
	}
	if s.before != nil && s.before(commit, micros) {
		s.stopped = true
		return nil
	}
	if s.set != nil && s.gtid != "" {
		if err := s.set.Update(s.gtid); err != nil {
			return fmt.Errorf("add gtid %s to the executed set: %w", s.gtid, err)
		}
	}
	s.end = Position{File: s.file, Pos: pos}
	s.open, s.begun, s.gtid = false, false, ""
	return nil
}

// gtidSet returns the tracked MySQL set at end, or "".
func (s *txnScan) gtidSet() string {
	if s.set == nil {
		return ""
	}
	return s.set.String()
}

// boundaryError is scanTo's error about the position itself: not an event
// or transaction boundary, or beyond the last event.
type boundaryError struct{ msg string }

func (e *boundaryError) Error() string { return e.msg }

func notBoundary(format string, args ...any) error {
	return &boundaryError{fmt.Sprintf(format, args...)}
}

// scanTo reads events of s's file from its start up to pos and checks that
// pos is a transaction boundary: an event ends exactly there (or pos is 4)
// and no transaction is open. Then s is the state at pos (with the file's
// PREVIOUS_GTIDS read when pos is in the file's header). Errors about pos
// itself are a *boundaryError.
func scanTo(next func() (*replication.BinlogEvent, error), s *txnScan, pos uint32) error {
	file := s.file
	var ev *replication.BinlogEvent
	for {
		var err error
		if ev, err = next(); err != nil {
			if errors.Is(err, io.EOF) {
				return notBoundary("%s:%d is beyond the last event of the binlog", file, pos)
			}
			return err
		}
		h := ev.Header
		if h.LogPos == 0 || isArtificial(h) && h.EventType == replication.ROTATE_EVENT {
			if err := s.apply(ev); err != nil {
				return err
			}
			continue
		}
		start := h.LogPos - min(h.LogPos, h.EventSize)
		if start == pos {
			break // pos is where ev starts; ev is not applied yet
		}
		if start < pos && h.LogPos > pos {
			return notBoundary("%s:%d is not at an event boundary (the %s at %d ends at %d)", file, pos, h.EventType, start, h.LogPos)
		}
		if h.EventType == replication.ROTATE_EVENT && h.LogPos < pos {
			return notBoundary("%s:%d is beyond the last event of %s (which ends at %d)", file, pos, file, h.LogPos)
		}
		if err := s.apply(ev); err != nil {
			return err
		}
		if h.LogPos == pos {
			ev = nil
			break
		}
	}
	if s.open {
		from := s.start
		// Read on to the transaction's end, to name both of its boundaries.
		for s.open {
			e, err := next()
			if errors.Is(err, io.EOF) {
				return notBoundary("%s:%d is inside the transaction that starts at %d", file, pos, from)
			}
			if err != nil {
				return err
			}
			if err := s.apply(e); err != nil {
				return err
			}
		}
		return notBoundary("%s:%d is inside a transaction: start at %s:%d (before it) or %s:%d (after it)", file, pos, file, from, s.end.File, s.end.Pos)
	}
	// A position in the file's header (4, or after FORMAT_DESCRIPTION):
	// the executed set is the file's PREVIOUS_GTIDS, which follows.
	for s.set != nil && !s.previous {
		if ev == nil {
			var err error
			if ev, err = next(); err != nil {
				break
			}
		}
		switch ev.Header.EventType {
		case replication.FORMAT_DESCRIPTION_EVENT, replication.PREVIOUS_GTIDS_EVENT, replication.ROTATE_EVENT:
			if err := s.apply(ev); err != nil {
				return err
			}
			ev = nil
			continue
		}
		return nil
	}
	return nil
}

// checkFile reports whether p.File is on the server and p.Pos within it;
// errors wrap ErrPositionUnavailable and name the oldest and newest
// available positions.
func (in *Inspector) checkFile(ctx context.Context, p Position) error {
	c, err := in.metaConn(ctx)
	if err != nil {
		return err
	}
	logs, err := c.binaryLogs()
	if err != nil {
		return err
	}
	for _, l := range logs {
		if l.Name != p.File {
			continue
		}
		if uint64(p.Pos) > l.Size {
			return fmt.Errorf("%s:%d is beyond the end of %s (%d bytes): %w%s", p.File, p.Pos, l.Name, l.Size, ErrPositionUnavailable, in.available(ctx))
		}
		if p.Pos < 4 {
			return fmt.Errorf("position %d in %s is before the first event (4): %w%s", p.Pos, p.File, ErrPositionUnavailable, in.available(ctx))
		}
		return nil
	}
	why := "purged, or never written"
	if len(logs) > 0 && compareFiles(p.File, logs[len(logs)-1].Name) > 0 {
		why = "newer than the newest file: the binary logs were reset (RESET MASTER) or this is another server"
	}
	return fmt.Errorf("binlog file %s is not on the server (%s): %w%s", p.File, why, ErrPositionUnavailable, in.available(ctx))
}

// CheckFile reports whether the server still has p.File and p.Pos lies
// within it (not whether p.Pos is an event boundary: Resolve checks that).
// Errors wrap ErrPositionUnavailable and name the oldest and newest
// available positions.
func (in *Inspector) CheckFile(ctx context.Context, p Position) error {
	if in.closed {
		return ErrClosed
	}
	return in.checkFile(ctx, p)
}

// boundaryAt reads p.File up to p.Pos and checks that p.Pos is a
// transaction boundary. On MySQL with GTIDs it returns the executed GTID
// set there, else "".
func (in *Inspector) boundaryAt(ctx context.Context, p Position) (string, error) {
	ctx, cancel := context.WithTimeout(ctx, 5*time.Minute)
	defer cancel()
	d, err := openDump(ctx, &in.cfg, in.srv.Flavor, p.File, 4)
	if err != nil {
		return "", err
	}
	defer d.close()
	s := newTxnScan(p.File, in.srv.Flavor == FlavorMySQL && in.srv.GTIDMode)
	if err := scanTo(d.next, s, p.Pos); err != nil {
		if be := (*boundaryError)(nil); errors.As(err, &be) {
			return "", fmt.Errorf("%w: %w%s", err, ErrPositionUnavailable, in.available(ctx))
		}
		return "", fmt.Errorf("read %s up to %d: %w", p.File, p.Pos, err)
	}
	return s.gtidSet(), nil
}
