package binlog

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"time"

	"github.com/go-mysql-org/go-mysql/client"
	"github.com/go-mysql-org/go-mysql/mysql"
	"github.com/go-mysql-org/go-mysql/replication"
	"github.com/rs/zerolog"
)

// dumpReadTimeout bounds the wait for one packet of a non-blocking dump,
// which never waits for new events.
const dumpReadTimeout = time.Minute

// dump is a short-lived, non-blocking binlog dump on its own connection, for
// looking at a binlog file's events without streaming: a file's start time,
// the transaction boundaries up to a position, a time seek. It asks with
// server_id 0, as mysqlbinlog does, so the server does not treat it as a
// replica: it displaces no running dump with the same server_id (the
// connector's own stream among them) and needs no unique id.
type dump struct {
	ctx    context.Context // closes c when done
	c      *client.Conn
	p      *replication.BinlogParser
	stop   func() bool
	cur    uint32 // where the next event starts in the current file; 0 unknown
	closed bool
}

// openDump connects and asks for the binlog from file:pos to the current end
// of the binlog (later files included).
func openDump(ctx context.Context, cfg *Config, flavor Flavor, file string, pos uint32) (*dump, error) {
	c, err := dial(ctx, cfg)
	if err != nil {
		return nil, err
	}
	d := &dump{ctx: ctx, c: c, p: replication.NewBinlogParser()}
	d.stop = context.AfterFunc(ctx, func() { _ = c.Close() })
	fail := func(err error) (*dump, error) {
		d.close()
		if ctx.Err() != nil {
			return nil, ctx.Err()
		}
		return nil, err
	}
	// As go-mysql's syncer and mysqlbinlog: declare the client checksum-aware
	// (the parser learns the algorithm from each file's FORMAT_DESCRIPTION).
	r, err := c.Execute("SHOW GLOBAL VARIABLES LIKE 'BINLOG_CHECKSUM'")
	if err != nil {
		return fail(fmt.Errorf("dump %s:%d: %w", file, pos, err))
	}
	if s, _ := r.GetString(0, 1); s != "" {
		if _, err := c.Execute(`SET @master_binlog_checksum='NONE', @source_binlog_checksum='NONE'`); err != nil {
			return fail(fmt.Errorf("dump %s:%d: %w", file, pos, err))
		}
	}
	flags := replication.BINLOG_DUMP_NON_BLOCK
	d.p.SetFlavor(mysql.MySQLFlavor)
	if flavor == FlavorMariaDB {
		d.p.SetFlavor(mysql.MariaDBFlavor)
		// GTID events instead of their pre-10.0 stand-ins.
		if _, err := c.Execute("SET @mariadb_slave_capability=4"); err != nil {
			return fail(fmt.Errorf("dump %s:%d: %w", file, pos, err))
		}
		// Every event, so that positions can be counted where MariaDB
		// 11.4+ writes LogPos 0.
		flags |= replication.BINLOG_SEND_ANNOTATE_ROWS_EVENT
	}
	d.p.SetVerifyChecksum(true)
	// Rows are never needed here: leave them undecoded.
	d.p.SetRowsEventDecodeFunc(func(*replication.RowsEvent, []byte) error { return nil })

	// COM_BINLOG_DUMP: command, pos (4), flags (2), server_id (4), file name.
	pkt := make([]byte, 4+1+4+2+4+len(file))
	pkt[4] = mysql.COM_BINLOG_DUMP
	binary.LittleEndian.PutUint32(pkt[5:], pos)
	binary.LittleEndian.PutUint16(pkt[9:], flags)
	binary.LittleEndian.PutUint32(pkt[11:], 0)
	copy(pkt[15:], file)
	c.ResetSequence()
	if err := c.WritePacket(pkt); err != nil {
		return fail(fmt.Errorf("dump %s:%d: %w: %w", file, pos, ErrConnection, err))
	}
	return d, nil
}

// next returns the next event, io.EOF at the end of the binlog, the
// server's error (error 1236 wrapped in ErrPositionUnavailable), or the
// context's error once the dump's context is done (which closes the
// connection). Events with LogPos 0 inside a file (MariaDB 11.4+) get
// their position filled in.
func (d *dump) next() (*replication.BinlogEvent, error) {
	if d.closed {
		return nil, io.EOF
	}
	_ = d.c.SetReadDeadline(time.Now().Add(dumpReadTimeout))
	data, err := d.c.ReadPacket()
	if err != nil {
		if cerr := d.ctx.Err(); cerr != nil {
			return nil, fmt.Errorf("read binlog dump: %w", cerr)
		}
		return nil, fmt.Errorf("read binlog dump: %w: %w", ErrConnection, err)
	}
	switch data[0] {
	case mysql.OK_HEADER:
	case mysql.EOF_HEADER:
		d.close()
		return nil, io.EOF
	case mysql.ERR_HEADER:
		err := d.c.HandleErrorPacket(data)
		var me *mysql.MyError
		if errors.As(err, &me) && me.Code == mysql.ER_MASTER_FATAL_ERROR_READING_BINLOG {
			return nil, fmt.Errorf("%w: %s", ErrPositionUnavailable, me.Message)
		}
		return nil, fmt.Errorf("read binlog dump: %w", err)
	default:
		return nil, fmt.Errorf("read binlog dump: unexpected packet header %#x", data[0])
	}
	ev, err := d.p.Parse(data[1:])
	if err != nil {
		return nil, fmt.Errorf("parse binlog event: %w", err)
	}
	h := ev.Header
	artificial := h.Timestamp == 0 || h.Flags&replication.LOG_EVENT_ARTIFICIAL_F != 0
	switch {
	case h.EventType == replication.ROTATE_EVENT:
		d.cur = uint32(ev.Event.(*replication.RotateEvent).Position)
	case h.LogPos != 0:
		d.cur = h.LogPos
	case !artificial && d.cur != 0:
		h.LogPos = d.cur + h.EventSize
		d.cur = h.LogPos
	}
	return ev, nil
}

// close ends the dump and its connection. It is idempotent.
func (d *dump) close() {
	if d.closed {
		return
	}
	d.closed = true
	d.stop()
	_ = d.c.Close()
}

// fileStartTime returns the header time of file's FORMAT_DESCRIPTION event:
// when the server created the file (seconds).
func fileStartTime(ctx context.Context, cfg *Config, flavor Flavor, file string) (time.Time, error) {
	d, err := openDump(ctx, cfg, flavor, file, 4)
	if err != nil {
		return time.Time{}, err
	}
	defer d.close()
	for {
		ev, err := d.next()
		if errors.Is(err, io.EOF) {
			return time.Time{}, fmt.Errorf("read the start of %s: the dump ended before its first event", file)
		}
		if err != nil {
			return time.Time{}, fmt.Errorf("read the start of %s: %w", file, err)
		}
		if ev.Header.EventType == replication.FORMAT_DESCRIPTION_EVENT {
			return time.Unix(int64(ev.Header.Timestamp), 0).UTC(), nil
		}
	}
}

// FileStartTime returns when the server at cfg.Addr created the binlog file,
// as Inspector.FileStartTime does, without an Inspector: for callers that
// must not share a Reader's goroutine. cfg.Flavor should be the server's flavor
// (FlavorUnknown reads the file as MySQL's, which is enough for its start).
// It settles cfg.TLS as Open does, with one login, without logging.
func FileStartTime(ctx context.Context, cfg Config, file string) (time.Time, error) {
	if cfg.Addr == "" {
		return time.Time{}, errors.New("binlog config: addr is empty")
	}
	if err := resolveTLS(ctx, &cfg, zerolog.Nop()); err != nil {
		return time.Time{}, err
	}
	return fileStartTime(ctx, &cfg, cfg.Flavor, file)
}

// FileStartTime returns when the server created the binlog file (the header
// time of its FORMAT_DESCRIPTION event, in seconds, UTC). A file name reused
// with another start time reveals RESET MASTER. It reads the file's first
// events over a connection of its own, so unlike the Inspector's other
// methods it is safe to call from any goroutine, also while a Reader whose
// Inspector it is streams. Errors wrap ErrPositionUnavailable when the file
// is not on the server.
func (in *Inspector) FileStartTime(ctx context.Context, file string) (time.Time, error) {
	return fileStartTime(ctx, &in.cfg, in.Server().Flavor, file)
}
