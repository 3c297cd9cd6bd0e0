package binlog

import (
	"context"
	"errors"
	"fmt"
	"io"
	"sort"
	"strconv"
	"strings"
	"time"

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
func (in *Inspector) mysqlGTIDAt(ctx context.Context, file string, pos uint32) (string, error) {
	g, err := in.boundaryAt(ctx, Position{File: file, Pos: pos})
	if err != nil {
		return "", fmt.Errorf("derive the gtid set at %s:%d: %w", file, pos, err)
	}
	return g, nil
}

// CheckGTID reports whether the server can stream every transaction after
// set, a GTID set already processed (a checkpoint or gtid:SET): set must be
// contained in what the server executed — on MariaDB also what it applied
// as a replica (@@gtid_current_pos) — (else it holds transactions of
// another server, or from before RESET MASTER), and the server must still
// have every transaction not in set (MySQL: @@gtid_purged ⊆ set; MariaDB:
// see planMariaDBStart). Errors wrap ErrPositionUnavailable and name the
// oldest and newest available positions.
func (in *Inspector) CheckGTID(ctx context.Context, set string) error {
	if in.closed {
		return ErrClosed
	}
	c, err := in.metaConn(ctx)
	if err != nil {
		return err
	}
	switch {
	case in.srv.Flavor == FlavorMariaDB:
		if _, err := in.mariadbStart(ctx, set); err != nil {
			return err
		}
	case !in.srv.GTIDMode:
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
			return fmt.Errorf("%w: %w%s", err, ErrPositionUnavailable, in.available(ctx))
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

// mariadbState is what a MariaDB server says about its GTIDs, for
// planMariaDBStart.
type mariadbState struct {
	// binlog is @@gtid_binlog_pos: the last GTID per domain in the binlog.
	binlog string
	// current is @@gtid_current_pos: per domain, the last GTID this server
	// wrote or, as a replica, applied (@@gtid_slave_pos), which may be
	// newer than anything in its binlog.
	current string
	// oldest is the GTID state at the start of the oldest binlog file
	// oldestFile (its GTID_LIST): the domains the binlog has history of
	// before its first transaction.
	oldest, oldestFile string
}

// firstGTID is where the binlog's first transaction of a domain begins.
type firstGTID struct {
	gtid mariadbGTID
	file string
	pos  uint32
}

// mariadbStart reads the server's GTID state and plans a start after set
// with planMariaDBStart. Errors wrap ErrPositionUnavailable and name the
// oldest and newest available positions, except errors talking to the
// server.
func (in *Inspector) mariadbStart(ctx context.Context, set string) (mariadbPos, error) {
	c, logs, err := in.logFiles(ctx)
	if err != nil {
		return nil, err
	}
	var st mariadbState
	if st.binlog, err = c.variable("gtid_binlog_pos"); err != nil {
		return nil, err
	}
	if st.current, err = c.variable("gtid_current_pos"); err != nil {
		return nil, err
	}
	st.oldestFile = logs[0].Name
	if st.oldest, err = c.mariadbGTIDAt(st.oldestFile, 4); err != nil {
		return nil, err
	}
	// planMariaDBStart is pure: a failed lookup is returned as itself, not
	// as its verdict on a domain whose first transaction it could not see.
	var ioErr error
	first := func(domain uint32) (firstGTID, bool) {
		f, ok, err := in.firstMariaDBGTID(ctx, logs, domain)
		if err != nil {
			ioErr = err
		}
		return f, ok
	}
	omit, err := planMariaDBStart(set, st, first)
	if ioErr != nil {
		return nil, fmt.Errorf("find the first transaction of each domain in the binlog: %w", ioErr)
	}
	if err != nil {
		return nil, fmt.Errorf("%w: %w%s", err, ErrPositionUnavailable, in.available(ctx))
	}
	return omit, nil
}

// planMariaDBStart reports whether a MariaDB server in state st can stream
// every transaction after set, a GTID position already processed, and
// returns the domains of set to leave out of the GTID connect state.
//
// For every domain of set, the server must have executed or applied
// set's GTID (its @@gtid_binlog_pos or @@gtid_current_pos is at or after
// it), and its binlog must hold every later transaction of the domain:
//   - a domain in the oldest file's GTID state: set is at or after that
//     state (else the transactions in between were purged); the server
//     finds set's GTID in its binlog.
//   - a domain the binlog has no history of before its first transaction
//     (a fresh server, or a replica restored from a backup and reset): the
//     binlog's first transaction of the domain (first) is at or before
//     set's GTID — the server finds it — or is its direct successor
//     (sequence number + 1): the binlog starts right after set, as on a
//     replica built from a backup taken at set. Anything else means
//     transactions after set are not on the server.
//   - a domain whose binlog ends before set's GTID (the server applied it
//     as a replica, or is a replica that has written nothing since its
//     backup): the server applied nothing after set in the domain.
//
// A domain whose binlog starts right after set is returned in omit: asked
// for set's GTID, which is not in the binlog, MariaDB in GTID strict mode
// (which go-mysql always requests) refuses ("missing the GTID"), and without
// it would start at whatever comes next, checking nothing. Left out of the
// connect state, the domain is streamed from the start of the binlog, which
// the check above proved is the successor of set's GTID.
//
// MariaDB numbers the transactions of a domain consecutively unless a
// session sets @@gtid_seq_no; a binlog that starts with a gap after set is
// refused even then, as the server cannot tell a gap from a lost
// transaction.
//
// Errors name the positions; they do not wrap ErrPositionUnavailable.
func planMariaDBStart(set string, st mariadbState, first func(domain uint32) (firstGTID, bool)) (omit mariadbPos, err error) {
	s, err := parseMariaDBPos(set)
	if err != nil {
		return nil, fmt.Errorf("gtid set %q is not a MariaDB GTID position: %w", set, err)
	}
	bin, err := parseMariaDBPos(st.binlog)
	if err != nil {
		return nil, fmt.Errorf("parse @@gtid_binlog_pos %q: %w", st.binlog, err)
	}
	cur, err := parseMariaDBPos(st.current)
	if err != nil {
		return nil, fmt.Errorf("parse @@gtid_current_pos %q: %w", st.current, err)
	}
	old, err := parseMariaDBPos(st.oldest)
	if err != nil {
		return nil, fmt.Errorf("parse the gtid state at the start of %s %q: %w", st.oldestFile, st.oldest, err)
	}
	has := func(p mariadbPos, d uint32) string {
		if _, ok := p[d]; ok {
			return p.gtid(d)
		}
		return "nothing in domain " + strconv.FormatUint(uint64(d), 10)
	}
	for _, d := range s.domains() {
		want := s[d].seq
		b, inBinlog := bin[d]
		c, applied := cur[d]
		if (!inBinlog || b.seq < want) && (!applied || c.seq < want) {
			return nil, fmt.Errorf("gtid %s is beyond what the server has executed or applied (@@gtid_binlog_pos has %s, @@gtid_current_pos has %s): it names transactions this server never had (another server, a replica that has not caught up, or the binary logs were reset)",
				s.gtid(d), has(bin, d), has(cur, d))
		}
		if !inBinlog || b.seq < want {
			// The server applied set's GTID as a replica but has not
			// written it to its binlog: nothing after it may be missing.
			if c.seq > want {
				ends := "has nothing of that domain"
				if inBinlog {
					ends = "ends at " + bin.gtid(d)
				}
				return nil, fmt.Errorf("the server applied transactions of domain %d after gtid %s (@@gtid_current_pos has %s), but its binlog %s: they are not in it (is log_slave_updates off?)",
					d, s.gtid(d), cur.gtid(d), ends)
			}
			if !inBinlog {
				// The binlog has nothing of the domain: stream what comes.
				omit = addDomain(omit, d, s[d])
			}
			// Else the binlog ends before set's GTID, which is the
			// server's own @@gtid_slave_pos: MariaDB starts such a
			// replica at the binlog's end itself.
			continue
		}
		if _, ok := old[d]; ok {
			continue // checked against the oldest file's state below
		}
		f, ok := first(d)
		switch {
		case !ok:
			return nil, fmt.Errorf("the binlog has no transaction of domain %d, although @@gtid_binlog_pos has %s", d, bin.gtid(d))
		case f.gtid.seq <= want:
			// set's GTID is in the binlog, where the server finds it.
		case f.gtid.seq == want+1:
			omit = addDomain(omit, d, s[d])
		default:
			return nil, fmt.Errorf("the binlog has domain %d only from %d-%d-%d (in %s at %d): the transactions after %s and before it are not on this server (a replica restored from a backup taken later than %s, or binary logs reset since)",
				d, d, f.gtid.server, f.gtid.seq, f.file, f.pos, s.gtid(d), s.gtid(d))
		}
	}
	for _, d := range old.domains() {
		g, ok := s[d]
		if !ok {
			return nil, fmt.Errorf("gtid set %s has nothing of domain %d, but the oldest binlog %s starts after %s: earlier transactions of that domain were purged", set, d, st.oldestFile, old.gtid(d))
		}
		if g.seq < old[d].seq {
			return nil, fmt.Errorf("the transactions after %s were purged: the oldest binlog %s starts after %s", s.gtid(d), st.oldestFile, old.gtid(d))
		}
	}
	return omit, nil
}

func addDomain(p mariadbPos, d uint32, g mariadbGTID) mariadbPos {
	if p == nil {
		p = mariadbPos{}
	}
	p[d] = g
	return p
}

// firstMariaDBGTID finds the first transaction of domain in the binlog
// files logs (SHOW BINARY LOGS, oldest first): in the last file whose
// starting GTID state lacks the domain (every later file's lists it), read
// from its start until the first GTID event of the domain. ok is false when
// the binlog has none.
func (in *Inspector) firstMariaDBGTID(ctx context.Context, logs []LogFile, domain uint32) (f firstGTID, ok bool, err error) {
	c, err := in.metaConn(ctx)
	if err != nil {
		return f, false, err
	}
	from := len(logs) - 1
	for i := 1; i < len(logs); i++ {
		g, err := c.mariadbGTIDAt(logs[i].Name, 4)
		if err != nil {
			return f, false, err
		}
		p, err := parseMariaDBPos(g)
		if err != nil {
			return f, false, fmt.Errorf("parse the gtid state at the start of %s %q: %w", logs[i].Name, g, err)
		}
		if _, ok := p[domain]; ok {
			from = i - 1
			break
		}
	}
	ctx, cancel := context.WithTimeout(ctx, 5*time.Minute)
	defer cancel()
	d, err := openDump(ctx, &in.cfg, in.srv.Flavor, logs[from].Name, 4)
	if err != nil {
		return f, false, err
	}
	defer d.close()
	file := logs[from].Name
	for {
		ev, err := d.next()
		if errors.Is(err, io.EOF) {
			return f, false, nil
		}
		if err != nil {
			return f, false, fmt.Errorf("read %s and later files: %w", file, err)
		}
		switch e := ev.Event.(type) {
		case *replication.RotateEvent:
			file = string(e.NextLogName)
		case *replication.MariadbGTIDEvent:
			if e.GTID.DomainID == domain {
				h := ev.Header
				return firstGTID{
					gtid: mariadbGTID{server: e.GTID.ServerID, seq: e.GTID.SequenceNumber},
					file: file,
					pos:  h.LogPos - min(h.LogPos, h.EventSize),
				}, true, nil
			}
		}
	}
}

// connectState returns the GTID position to ask the server for: r.gset
// without the domains of r.omit that are still where Start began (see
// planMariaDBStart). Once a transaction of such a domain was read, its GTID
// is in the binlog and the domain is asked for as any other.
func (r *Reader) connectState() mysql.GTIDSet {
	g := r.gset.Clone()
	m, ok := g.(*mysql.MariadbGTIDSet)
	if !ok {
		return g
	}
	for d, o := range r.omit {
		if cur, ok := m.Sets[d]; ok && cur.ServerID == o.server && cur.SequenceNumber == o.seq {
			delete(m.Sets, d)
		}
	}
	return m
}
