package binlog

import (
	"context"
	"fmt"
	"net"
	"strconv"
	"time"

	"github.com/go-mysql-org/go-mysql/mysql"
	"github.com/go-mysql-org/go-mysql/replication"
)

// binlogDumpNonBlock asks the server to end the dump at the end of the
// binlog instead of waiting for new events (COM_BINLOG_DUMP flag).
const binlogDumpNonBlock = 0x01

// deriveMySQLGTID computes the executed GTID set at pos, a transaction
// boundary of the file that next reads from its start: the file's
// PREVIOUS_GTIDS plus the GTIDs of the transactions that begin before pos.
// go-mysql tracks GTID sets only for streams started by GTID, so a FILE:POS
// start on a GTID server derives the set this way and continues by GTID.
func deriveMySQLGTID(next func() (*replication.BinlogEvent, error), pos uint32) (string, error) {
	set, err := mysql.ParseMysqlGTIDSet("")
	if err != nil {
		return "", err
	}
	for {
		ev, err := next()
		if err != nil {
			return "", err
		}
		h := ev.Header
		if h.LogPos != 0 && h.LogPos-h.EventSize >= pos {
			break // the first event at or after pos
		}
		switch e := ev.Event.(type) {
		case *replication.PreviousGTIDsEvent:
			if set, err = mysql.ParseMysqlGTIDSet(e.GTIDSets); err != nil {
				return "", fmt.Errorf("parse previous gtids %q: %w", e.GTIDSets, err)
			}
		case *replication.GTIDEvent:
			if h.EventType != replication.ANONYMOUS_GTID_EVENT {
				if err := set.Update(gtidOf(e.SID, "", e.GNO)); err != nil {
					return "", err
				}
			}
		case *replication.GtidTaggedLogEvent:
			if err := set.Update(gtidOf(e.SID, e.Tag.String(), e.GNO)); err != nil {
				return "", err
			}
		case *replication.RotateEvent:
			if h.Timestamp != 0 && h.Flags&replication.LOG_EVENT_ARTIFICIAL_F == 0 {
				return set.String(), nil // end of the file
			}
		}
		if h.LogPos >= pos {
			break
		}
	}
	return set.String(), nil
}

// mysqlGTIDAt reads file from its start up to pos on the server to derive
// the GTID set there.
func (r *Reader) mysqlGTIDAt(ctx context.Context, file string, pos uint32) (string, error) {
	host, portS, _ := net.SplitHostPort(r.cfg.Addr)
	port, _ := strconv.ParseUint(portS, 10, 16)
	s := replication.NewBinlogSyncer(replication.BinlogSyncerConfig{
		ServerID: r.cfg.ServerID, Flavor: mysql.MySQLFlavor, Host: host, Port: uint16(port),
		User: r.cfg.User, Password: r.cfg.Password, Localhost: "tailbox", TLSConfig: r.cfg.TLS,
		DisableRetrySync: true, DumpCommandFlag: binlogDumpNonBlock, Logger: r.slog,
		ReadTimeout: r.cfg.readTimeout(),
	})
	defer s.Close()
	stream, err := s.StartSync(mysql.Position{Name: file, Pos: 4})
	if err != nil {
		return "", fmt.Errorf("read %s to derive its gtid set: %w", file, err)
	}
	ctx, cancel := context.WithTimeout(ctx, time.Minute)
	defer cancel()
	g, err := deriveMySQLGTID(func() (*replication.BinlogEvent, error) { return stream.GetEvent(ctx) }, pos)
	if err != nil {
		return "", fmt.Errorf("derive the gtid set at %s:%d: %w", file, pos, err)
	}
	return g, nil
}
