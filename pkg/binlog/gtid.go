package binlog

import (
	"context"
	"errors"
	"fmt"
	"sort"
	"strconv"
	"strings"

	"github.com/go-mysql-org/go-mysql/mysql"
	"github.com/go-mysql-org/go-mysql/replication"
)

// deriveMySQLGTID computes the executed GTID set at pos, a transaction
// boundary of the file that next reads from its start: the file's
// PREVIOUS_GTIDS plus the GTIDs of the transactions that end before pos.
// go-mysql tracks GTID sets only for streams started by GTID, so a FILE:POS
// start on a GTID server derives the set this way and continues by GTID.
// A pos that is no transaction boundary is an error (a *boundaryError).
func deriveMySQLGTID(next func() (*replication.BinlogEvent, error), pos uint32) (string, error) {
	s := newTxnScan("", true)
	if err := scanTo(next, s, pos); err != nil {
		return "", err
	}
	return s.gtidSet(), nil
}

// mysqlGTIDAt reads file from its start up to pos on the server to check
// that pos is a transaction boundary and derive the GTID set there.
func (r *Reader) mysqlGTIDAt(ctx context.Context, file string, pos uint32) (string, error) {
	g, err := r.boundaryAt(ctx, Position{File: file, Pos: pos})
	if err != nil {
		return "", fmt.Errorf("derive the gtid set at %s:%d: %w", file, pos, err)
	}
	return g, nil
}

// CheckGTID reports whether the server can stream every transaction after
// set, a GTID set already processed (a checkpoint or gtid:SET): set must be
// contained in what the server executed (else it holds transactions of
// another server, or from before RESET MASTER), and the server must still
// have every transaction not in set (MySQL: @@gtid_purged ⊆ set; MariaDB:
// for every domain of the oldest binlog's GTID state, set is at or after
// it). Errors wrap ErrPositionUnavailable and name the oldest and newest
// available positions.
func (r *Reader) CheckGTID(ctx context.Context, set string) error {
	if r.closed {
		return ErrClosed
	}
	c, err := r.metaConn(ctx)
	if err != nil {
		return err
	}
	switch {
	case r.srv.Flavor == FlavorMariaDB:
		executed, err := c.variable("gtid_binlog_pos")
		if err != nil {
			return err
		}
		oldest, err := r.Earliest(ctx)
		if err != nil {
			return err
		}
		err = checkMariaDBGTID(set, executed, oldest.GTID, oldest.File)
		if err != nil {
			return fmt.Errorf("%w: %w%s", err, ErrPositionUnavailable, r.available(ctx))
		}
	case !r.srv.GTIDMode:
		return fmt.Errorf("gtid:%s: the server has no GTIDs (gtid_mode is not ON); start at a FILE:POS instead: %w", set, ErrPositionUnavailable)
	default:
		executed, err := c.variable("gtid_executed")
		if err != nil {
			return err
		}
		purged, err := c.variable("gtid_purged")
		if err != nil {
			return err
		}
		err = checkMySQLGTID(set, strings.ReplaceAll(executed, "\n", ""), strings.ReplaceAll(purged, "\n", ""))
		if err != nil {
			return fmt.Errorf("%w: %w%s", err, ErrPositionUnavailable, r.available(ctx))
		}
	}
	return nil
}

// checkMySQLGTID reports why a MySQL server whose @@gtid_executed is
// executed and @@gtid_purged is purged cannot stream what follows set.
func checkMySQLGTID(set, executed, purged string) error {
	s, err := mysql.ParseMysqlGTIDSet(strings.ReplaceAll(set, "\n", ""))
	if err != nil {
		return fmt.Errorf("gtid set %q is not a MySQL GTID set (uuid:interval[,...]): %w", set, err)
	}
	ex, err := mysql.ParseMysqlGTIDSet(executed)
	if err != nil {
		return fmt.Errorf("parse @@gtid_executed %q: %w", executed, err)
	}
	pu, err := mysql.ParseMysqlGTIDSet(purged)
	if err != nil {
		return fmt.Errorf("parse @@gtid_purged %q: %w", purged, err)
	}
	if !ex.Contain(s) {
		return fmt.Errorf("gtid set %s is not contained in the server's executed set %s: it names transactions this server never executed (another server, or the binary logs were reset)", s, ex)
	}
	if !s.Contain(pu) {
		return fmt.Errorf("the server has purged transactions that follow gtid set %s (@@gtid_purged is %s)", s, pu)
	}
	return nil
}

// mariadbPos is a MariaDB GTID position: the last sequence number per
// domain (server ids do not order transactions).
type mariadbPos map[uint32]mariadbGTID

type mariadbGTID struct {
	server uint32
	seq    uint64
}

// parseMariaDBPos parses "domain-server-seq[,...]"; a domain given twice
// keeps its highest sequence number.
func parseMariaDBPos(s string) (mariadbPos, error) {
	p := mariadbPos{}
	for _, f := range strings.Split(s, ",") {
		f = strings.TrimSpace(f)
		if f == "" {
			continue
		}
		parts := strings.Split(f, "-")
		if len(parts) != 3 {
			return nil, fmt.Errorf("%q is not domain-server-sequence", f)
		}
		d, err1 := strconv.ParseUint(parts[0], 10, 32)
		sv, err2 := strconv.ParseUint(parts[1], 10, 32)
		n, err3 := strconv.ParseUint(parts[2], 10, 64)
		if err := errors.Join(err1, err2, err3); err != nil {
			return nil, fmt.Errorf("%q is not domain-server-sequence", f)
		}
		if old, ok := p[uint32(d)]; !ok || n > old.seq {
			p[uint32(d)] = mariadbGTID{uint32(sv), n}
		}
	}
	return p, nil
}

func (p mariadbPos) domains() []uint32 {
	ds := make([]uint32, 0, len(p))
	for d := range p {
		ds = append(ds, d)
	}
	sort.Slice(ds, func(i, j int) bool { return ds[i] < ds[j] })
	return ds
}

func (p mariadbPos) gtid(d uint32) string {
	g := p[d]
	return fmt.Sprintf("%d-%d-%d", d, g.server, g.seq)
}

// checkMariaDBGTID reports why a MariaDB server whose @@gtid_binlog_pos is
// executed, and whose oldest binlog file oldestFile starts at GTID state
// oldest, cannot stream what follows set.
func checkMariaDBGTID(set, executed, oldest, oldestFile string) error {
	s, err := parseMariaDBPos(set)
	if err != nil {
		return fmt.Errorf("gtid set %q is not a MariaDB GTID position: %w", set, err)
	}
	ex, err := parseMariaDBPos(executed)
	if err != nil {
		return fmt.Errorf("parse @@gtid_binlog_pos %q: %w", executed, err)
	}
	old, err := parseMariaDBPos(oldest)
	if err != nil {
		return fmt.Errorf("parse the gtid state at the start of %s %q: %w", oldestFile, oldest, err)
	}
	for _, d := range s.domains() {
		e, ok := ex[d]
		if !ok || e.seq < s[d].seq {
			have := "nothing in domain " + strconv.FormatUint(uint64(d), 10)
			if ok {
				have = ex.gtid(d)
			}
			return fmt.Errorf("gtid %s is beyond the server's binlog (@@gtid_binlog_pos has %s): it names transactions this server never wrote (another server, or the binary logs were reset)", s.gtid(d), have)
		}
	}
	for _, d := range old.domains() {
		g, ok := s[d]
		if !ok {
			return fmt.Errorf("gtid set %s has nothing of domain %d, but the oldest binlog %s starts after %s: earlier transactions of that domain were purged", set, d, oldestFile, old.gtid(d))
		}
		if g.seq < old[d].seq {
			return fmt.Errorf("the transactions after %s were purged: the oldest binlog %s starts after %s", s.gtid(d), oldestFile, old.gtid(d))
		}
	}
	return nil
}
