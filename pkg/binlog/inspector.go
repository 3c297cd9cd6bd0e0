package binlog

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"

	"github.com/rs/zerolog"
)

// Inspector answers questions about one server over a plain SQL connection
// of its own (the metadata connection, reconnected on demand): where its
// binlog begins and ends, whether it can stream from a position, which
// account and grants the login has, the tables and replicas it has. It
// streams nothing; a short-lived dump of its own reads binlog files where an
// answer needs their events.
//
// An Inspector comes from Inspect, or from Reader.Inspector: then it is the
// Reader's own, whose identity follows the server the stream reads from,
// and like the Reader it must be used from the Reader's goroutine only.
// Its methods, but Server and FileStartTime, must be called from one
// goroutine. The zero value is not usable.
type Inspector struct {
	// cfg has TLS settled (cfg.tls): every connection uses that decision,
	// shared with the Reader's copy of cfg.
	cfg Config
	log zerolog.Logger
	// meta is the metadata connection; metaConn replaces it when it broke.
	meta *conn
	// unbind ends the binding of meta to the context of the last metaConn
	// call (see metaConn).
	unbind func() bool
	// srv is the identity of the server the answers are about; a Reader
	// replaces it when another server answers at the address on a
	// reconnect (Reader.checkServer). Written under srvMu, which Server
	// takes; read without it on the one goroutine that writes it.
	srv    Server
	srvMu  sync.Mutex
	closed bool
}

// Inspect settles cfg.TLS with one login (an error matching ErrTLS when TLS
// cannot work as configured; see TLSMode), connects the metadata
// connection, detects the flavor and reads the server's identity. It needs
// cfg.Addr and the login; it registers as no replica, so cfg.ServerID and
// cfg.Tables are not used. log receives the TLS fallback warning. Close
// releases the connection.
func Inspect(ctx context.Context, cfg Config, log zerolog.Logger) (*Inspector, error) {
	if err := errors.Join(cfg.validateAddr()...); err != nil {
		return nil, fmt.Errorf("binlog config: %w", err)
	}
	if err := resolveTLS(ctx, &cfg, log); err != nil {
		return nil, err
	}
	return inspect(ctx, cfg, log)
}

// inspect connects the metadata connection with cfg, whose TLS is settled,
// and reads the server's identity.
func inspect(ctx context.Context, cfg Config, log zerolog.Logger) (*Inspector, error) {
	in := &Inspector{cfg: cfg, log: log}
	c, err := dial(ctx, &in.cfg)
	if err != nil {
		return nil, err
	}
	in.meta = &conn{cfg: &in.cfg, c: c}
	if in.srv, err = in.meta.server(cfg.Flavor); err != nil {
		in.meta.close()
		return nil, fmt.Errorf("read server identity: %w", err)
	}
	return in, nil
}

// Server returns what Inspect learned about the server or, for a Reader's
// Inspector, what Reader.Server returns. It is safe to call from any
// goroutine.
func (in *Inspector) Server() Server {
	in.srvMu.Lock()
	defer in.srvMu.Unlock()
	return in.srv
}

// setServer replaces the identity with that of the server that answers at
// the address now.
func (in *Inspector) setServer(s Server) {
	in.srvMu.Lock()
	in.srv = s
	in.srvMu.Unlock()
}

// identify reads the identity of the server that answers at the address
// now, on a new metadata connection: an open one may still lead to the
// former server behind a failover address. Errors reading the identity wrap
// ErrConnection.
func (in *Inspector) identify(ctx context.Context) (Server, error) {
	in.meta.close()
	c, err := in.metaConn(ctx)
	if err != nil {
		return Server{}, err
	}
	cur, err := c.server(in.cfg.Flavor)
	if err != nil {
		in.meta.close()
		return Server{}, fmt.Errorf("read the identity of the server at %s: %w: %w", in.cfg.Addr, ErrConnection, err)
	}
	return cur, nil
}

// metaConn returns the metadata connection, connecting a new one when
// there is none or the open one does not answer a ping.
func (in *Inspector) metaConn(ctx context.Context) (*conn, error) {
	if in.unbind != nil {
		in.unbind()
		in.unbind = nil
	}
	if in.meta != nil && in.meta.c != nil {
		in.bind(ctx) // the Ping too may meet a stalled server
		if err := in.meta.c.Ping(); err == nil {
			return in.meta, nil
		}
		if in.unbind != nil {
			in.unbind()
			in.unbind = nil
		}
		in.meta.close()
	}
	c, err := dial(ctx, &in.cfg)
	if err != nil {
		return nil, err
	}
	in.meta = &conn{cfg: &in.cfg, c: c}
	in.bind(ctx)
	return in.meta, nil
}

// bind makes the end of ctx, the context of the call that uses the
// metadata connection, close its network connection: go-mysql's queries
// take no context, and one that a stalled server never answers then fails
// at once instead of holding its caller (a stop, or a sampling with a
// timeout) for good. The binding lasts until the next metaConn; a
// connection closed by it fails the next Ping and is dialled again.
func (in *Inspector) bind(ctx context.Context) {
	if ctx.Done() == nil {
		return
	}
	// The network connection itself: closing it is safe while another
	// goroutine reads or writes it, unlike go-mysql's Close.
	nc := in.meta.c.Conn.Conn
	in.unbind = context.AfterFunc(ctx, func() { _ = nc.Close() })
}

// Close closes the metadata connection; CheckGTID, CheckFile and AtTime
// return ErrClosed after it. It is idempotent. A Reader's Inspector is
// closed by the Reader's Close.
func (in *Inspector) Close() error {
	in.closed = true
	if in.unbind != nil {
		in.unbind()
		in.unbind = nil
	}
	in.meta.close()
	return nil
}

// logFiles returns the metadata connection and SHOW BINARY LOGS, which is
// an error when empty: binary logging is off.
func (in *Inspector) logFiles(ctx context.Context) (*conn, []LogFile, error) {
	c, err := in.metaConn(ctx)
	if err != nil {
		return nil, nil, err
	}
	logs, err := c.binaryLogs()
	if err != nil {
		return nil, nil, err
	}
	if len(logs) == 0 {
		return nil, nil, fmt.Errorf("SHOW BINARY LOGS is empty: binary logging (log_bin) is off")
	}
	return c, logs, nil
}

// Bounds returns the oldest and newest positions the server can stream from.
func (in *Inspector) Bounds(ctx context.Context) (oldest, newest Position, err error) {
	_, logs, err := in.logFiles(ctx)
	if err != nil {
		return oldest, newest, err
	}
	oldest = Position{File: logs[0].Name, Pos: 4}
	newest, err = in.Latest(ctx)
	return oldest, newest, err
}

// available describes the oldest and newest positions for an error message.
func (in *Inspector) available(ctx context.Context) string {
	oldest, newest, err := in.Bounds(ctx)
	if err != nil {
		return ""
	}
	return fmt.Sprintf(" (oldest available position %s, newest %s)", oldest, newest)
}

// Latest returns the current end of the binlog with its GTID set.
func (in *Inspector) Latest(ctx context.Context) (Position, error) {
	c, err := in.metaConn(ctx)
	if err != nil {
		return Position{}, err
	}
	file, pos, gtid, err := c.status(in.srv.Flavor)
	if err != nil {
		return Position{}, fmt.Errorf("read binlog status: %w", err)
	}
	p := Position{File: file, Pos: pos}
	switch {
	case in.srv.Flavor == FlavorMariaDB:
		if p.GTID, err = c.mariadbGTIDAt(file, pos); err != nil {
			return Position{}, err
		}
	case in.srv.GTIDMode:
		p.GTID = gtid
	}
	return p, nil
}

// Earliest returns the start of the oldest binlog file still on the server.
func (in *Inspector) Earliest(ctx context.Context) (Position, error) {
	c, logs, err := in.logFiles(ctx)
	if err != nil {
		return Position{}, err
	}
	p := Position{File: logs[0].Name, Pos: 4}
	switch {
	case in.srv.Flavor == FlavorMariaDB:
		if p.GTID, err = c.mariadbGTIDAt(p.File, 4); err != nil {
			return Position{}, err
		}
	case in.srv.GTIDMode:
		if p.GTID, err = c.variable("gtid_purged"); err != nil {
			return Position{}, err
		}
		p.GTID = strings.ReplaceAll(p.GTID, "\n", "")
	}
	return p, nil
}

// Resolve checks that FILE:POS exists on the server and is a transaction
// boundary (an event ends there, outside any transaction) and, on servers
// with GTIDs, adds the GTID set at that position (MariaDB: BINLOG_GTID_POS;
// MySQL: derived by reading the file up to the position). A p that already
// has a GTID set is only checked for its file. Errors about the position
// wrap ErrPositionUnavailable and name the oldest and newest available
// positions.
func (in *Inspector) Resolve(ctx context.Context, p Position) (Position, error) {
	c, err := in.metaConn(ctx)
	if err != nil {
		return Position{}, err
	}
	if p.File != "" {
		if err := in.checkFile(ctx, p); err != nil {
			return Position{}, err
		}
	}
	if p.GTID == "" && p.File != "" {
		// Reading the file up to the position checks it and, on MySQL
		// with GTIDs, derives the set.
		g, err := in.boundaryAt(ctx, p)
		if err != nil {
			return Position{}, err
		}
		switch {
		case in.srv.Flavor == FlavorMariaDB:
			if p.GTID, err = c.mariadbGTIDAt(p.File, p.Pos); err != nil {
				return Position{}, fmt.Errorf("resolve %s: %w%s", p, err, in.available(ctx))
			}
		case in.srv.GTIDMode:
			p.GTID = g
		}
	}
	return p, nil
}
