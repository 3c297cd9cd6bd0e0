// Package binlog reads a MySQL or MariaDB binary log over the replication
// protocol (go-mysql's BinlogSyncer) and yields the row changes of captured
// tables, interleaved with transaction-end markers that are safe resume
// positions. A transaction's rows are handed out only once its end shows it
// committed, without the rows a ROLLBACK TO SAVEPOINT discarded (group.go).
// It reconnects by itself after connection failures, always from the last
// transaction end it read, passing over the rows of the partially re-read
// transaction that it already handed out.
//
// Two types divide the work. A Reader (Open) is the stream: Start, Next,
// Stats. An Inspector (Inspect, or Reader.Inspector) asks the server about
// its binlog and setup over a plain SQL connection: the bounds of the
// binlog, whether a position or GTID set can be streamed from and where a
// start spec (latest, earliest, FILE:POS, time) lands, the account, tables
// and replicas. A Reader uses its own Inspector to check its start and the
// server it reconnects to.
package binlog

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"slices"
	"strconv"
	"strings"
	"time"
	"unsafe"

	"github.com/go-mysql-org/go-mysql/mysql"
	"github.com/go-mysql-org/go-mysql/replication"
	"github.com/rs/zerolog"

	"github.com/tailbox-cdc/tailbox/internal/retry"
)

// ItemKind tells what an Item carries.
type ItemKind int

// Item kinds.
const (
	// ItemChange is a row change of a captured table.
	ItemChange ItemKind = iota + 1
	// ItemMarker is a transaction end: every event before Marker has been read.
	ItemMarker
)

// Item is what Reader.Next returns: a Change or a Marker.
type Item struct {
	Kind ItemKind
	// Change is set for ItemChange.
	Change Change
	// Marker is set for ItemMarker: the position after a transaction end
	// (XID, COMMIT, DDL or standalone statement) or {next file, 4} at a rotate.
	Marker Position
}

// Reader streams one server's binlog. Its methods, but Server, must be
// called from one goroutine. The zero value is not usable; call Open.
type Reader struct {
	cfg  Config
	log  zerolog.Logger
	slog *slog.Logger
	// insp holds the metadata connection and the identity of the server
	// the stream reads from; that identity changes when another server
	// answers at the address on a reconnect (see checkServer).
	insp     *Inspector
	captured map[string]map[string]struct{} // exact names (lower_case_table_names=0)
	// foldNames: lower_case_table_names is not 0, as Open found it; a
	// server that answers the address later has the same (serverChange).
	// Read by go-mysql's parsing goroutine, unlike srv.
	foldNames bool
	capList   [][2]string

	syncer *replication.BinlogSyncer
	stream *replication.BinlogStreamer
	closed bool
	// checksumLen is the length of the checksum that ends each event of
	// the current file (its FORMAT_DESCRIPTION says).
	checksumLen int
	// omit are the MariaDB domains whose binlog starts right after the
	// position Start was given; see connectState.
	omit mariadbPos

	// stream state
	file       string
	gset       mysql.GTIDSet
	lastEnd    Position
	txn        *Txn
	txnGTID    string
	txnBegun   bool // inside BEGIN ... COMMIT
	txnXA      bool
	txnRows    int // captured row images seen in the current transaction
	skip       int // captured rows to pass over at the head of the next transaction
	skipTxn    string
	backoff    retry.Backoff     // the waits between reconnect attempts in a row
	clashes    retry.Backoff     // the waits after the server_id was taken over (see serverIDInUse)
	tables     map[uint64]*table // captured tables by table id, for the current statement
	byName     map[string]*table
	infoSchema map[string]*infoColumns // by "schema.table", without FULL metadata
	pending    []Item
	head       int
	evStart    Position    // where the event being handled begins
	txnAt      Position    // where the open group's first event begins
	inPayload  bool        // handling the inner events of a TRANSACTION_PAYLOAD
	grp        group       // the open group's held rows and savepoints (group.go)
	replay     *replayPlan // an overflowed group that committed, to re-read
	restart    bool        // restart the stream at lastEnd before reading on

	st stats // what Stats reports; safe for concurrent reads

	rowsDec rowsDecoder // decodes captured rows in go-mysql's parsing goroutine
}

// Open validates cfg, settles cfg.TLS with one login (an error matching
// ErrTLS when TLS cannot work as configured; see TLSMode), connects a
// metadata connection, detects the flavor and reads the server's identity
// (its Inspector). It does not start streaming; every later connection of
// the Reader uses the TLS decision made here, or, when preferred could not
// be decided (the server unreachable), decides it (Config.tlsConfig). log receives the reader's own
// warnings; slogger receives go-mysql's logs (nil discards them).
func Open(ctx context.Context, cfg Config, log zerolog.Logger, slogger *slog.Logger) (*Reader, error) {
	if err := cfg.validate(); err != nil {
		return nil, fmt.Errorf("binlog config: %w", err)
	}
	if err := resolveTLS(ctx, &cfg, log); err != nil {
		return nil, err
	}
	return open(ctx, cfg, log, slogger)
}

// open is Open with cfg valid and its TLS settled.
func open(ctx context.Context, cfg Config, log zerolog.Logger, slogger *slog.Logger) (*Reader, error) {
	if slogger == nil {
		slogger = slog.New(slog.DiscardHandler)
	}
	insp, err := inspect(ctx, cfg, log)
	if err != nil {
		return nil, err
	}
	r := &Reader{cfg: insp.cfg, log: log, slog: slogger, insp: insp, infoSchema: map[string]*infoColumns{}}
	r.backoff = retry.Backoff{Initial: cfg.ReconnectBackoff, Max: maxReconnectBackoff}
	r.clashes = retry.Backoff{Initial: cfg.ReconnectBackoff, Max: maxReconnectBackoff, ResetAfter: clashResetAfter}
	srv := insp.srv
	r.rowsDec.flavor = srv.Flavor
	r.foldNames = srv.LowerCaseTableNames != 0
	r.captured = map[string]map[string]struct{}{}
	for _, t := range cfg.Tables {
		s, n, _ := strings.Cut(t, ".")
		if srv.LowerCaseTableNames != 0 {
			s, n = strings.ToLower(s), strings.ToLower(n)
		}
		r.capList = append(r.capList, [2]string{s, n})
		if r.captured[s] == nil {
			r.captured[s] = map[string]struct{}{}
		}
		r.captured[s][n] = struct{}{}
	}
	return r, nil
}

// maxReconnectBackoff is the longest wait between reconnect attempts.
const maxReconnectBackoff = 30 * time.Second

// Server returns what Open learned about the server, or, once another
// server answered at the address on a reconnect and the stream went on
// there by GTID, about that server: the positions the reader hands out
// from then on are that server's. Unlike the other methods, it is safe to
// call from any goroutine.
func (r *Reader) Server() Server { return r.insp.Server() }

// Inspector returns the Reader's Inspector: the questions about the server
// the stream reads from, asked over the Reader's metadata connection, on
// the Reader's goroutine. The Reader's Close closes it.
func (r *Reader) Inspector() *Inspector { return r.insp }

// checkServer reads the identity of the server that answers at the address
// now (Inspector.identify) and decides with serverChange whether the
// stream at at can go on there. When it can on another server, that
// server's identity replaces Server's. Errors reading the identity wrap
// ErrConnection.
func (r *Reader) checkServer(ctx context.Context, at Position) error {
	cur, err := r.insp.identify(ctx)
	if err != nil {
		return err
	}
	former := r.insp.srv
	if err := serverChange(r.cfg.Addr, former, cur, at); err != nil {
		return err
	}
	if !SameServer(former, cur) {
		r.log.Warn().Str("addr", r.cfg.Addr).Str("former", former.identity()).Str("server", cur.identity()).Str("gtid", at.GTID).
			Msg("another server answers at the source address: continuing there by GTID")
		r.insp.setServer(cur)
	}
	return nil
}

// isCaptured reports whether schema.table is captured. Safe for concurrent
// use (go-mysql decodes compressed transaction payloads in parallel).
func (r *Reader) isCaptured(schema, table []byte) bool {
	if !r.foldNames {
		_, ok := r.captured[string(schema)][string(table)]
		return ok
	}
	for _, c := range r.capList {
		if strings.EqualFold(c[0], string(schema)) && strings.EqualFold(c[1], string(table)) {
			return true
		}
	}
	return false
}

// decodeRows is go-mysql's RowsEventDecodeFunc: rows of tables that are not
// captured are left undecoded; those of captured tables are decoded by
// rowsDecoder where it can, else by go-mysql.
func (r *Reader) decodeRows(e *replication.RowsEvent, data []byte) error {
	pos, err := e.DecodeHeader(data)
	if err != nil {
		return err
	}
	if e.Table == nil || !r.isCaptured(e.Table.Schema, e.Table.Table) {
		return nil
	}
	if r.rowsDec.decode(e, data[pos:]) {
		return nil
	}
	return e.DecodeData(pos, data)
}

// Start begins streaming after from, a transaction boundary (a Marker or a
// resolved start position). skip captured row images at the head of the
// first transaction are passed over; when skipTxn is a GTID, that first
// transaction must carry it, else Next fails with ErrPositionUnavailable.
// On a server with GTIDs a FILE:POS without GTID is converted to the GTID
// set at that position, and the stream continues by GTID. On MariaDB the
// position is checked as Inspector.CheckGTID does first (errors wrap
// ErrPositionUnavailable); a domain whose binlog starts right after it (a
// replica restored from a backup taken there) is streamed from the start of
// the binlog instead of being asked for by GTID, which the server's GTID
// strict mode would refuse (see planMariaDBStart).
func (r *Reader) Start(ctx context.Context, from Position, skip int, skipTxn string) error {
	if r.closed {
		return ErrClosed
	}
	if from.File == "" && from.GTID == "" {
		return fmt.Errorf("start binlog sync: empty position")
	}
	// The position is interpreted on the server it belongs to: a file
	// position without GTIDs only there (see startSync for the stream).
	if err := r.checkServer(ctx, from); err != nil {
		return fmt.Errorf("start binlog sync at %s: %w", from, err)
	}
	if r.insp.srv.Flavor == FlavorMariaDB && from.GTID == "" {
		c, err := r.insp.metaConn(ctx)
		if err != nil {
			return err
		}
		g, err := c.mariadbGTIDAt(from.File, from.Pos)
		if err != nil {
			return fmt.Errorf("start binlog sync at %s: %w", from, err)
		}
		from.GTID = g
	} else if r.insp.srv.GTIDMode && from.GTID == "" {
		g, err := r.insp.mysqlGTIDAt(ctx, from.File, from.Pos)
		if err != nil {
			return fmt.Errorf("start binlog sync at %s: %w", from, err)
		}
		from.GTID = g
	}
	r.omit = nil
	if r.insp.srv.Flavor == FlavorMariaDB && from.GTID != "" {
		omit, err := r.insp.mariadbStart(ctx, from.GTID)
		if err != nil {
			return fmt.Errorf("start binlog sync at %s: %w", from, err)
		}
		r.omit = omit
	}
	r.gset = nil
	if from.GTID != "" || r.insp.srv.Flavor == FlavorMariaDB {
		g, err := mysql.ParseGTIDSet(r.insp.srv.Flavor.String(), from.GTID)
		if err != nil {
			return fmt.Errorf("start binlog sync: parse gtid set %q: %w", from.GTID, err)
		}
		r.gset = g
	}
	r.lastEnd = from
	r.file = from.File
	r.skip, r.skipTxn = skip, skipTxn
	r.replay, r.restart = nil, false
	r.st.restart()
	return r.startSync(ctx, from)
}

// startSync connects the stream at from, then checks the server that
// answers at the address (checkServer): a reconnect may reach another one.
func (r *Reader) startSync(ctx context.Context, from Position) error {
	r.closeSyncer()
	host, portS, _ := net.SplitHostPort(r.cfg.Addr)
	port, _ := strconv.ParseUint(portS, 10, 16)
	flavor := mysql.MySQLFlavor
	if r.insp.srv.Flavor == FlavorMariaDB {
		flavor = mysql.MariaDBFlavor
	}
	r.syncer = replication.NewBinlogSyncer(replication.BinlogSyncerConfig{
		ServerID:                r.cfg.ServerID,
		Flavor:                  flavor,
		Host:                    host,
		Port:                    uint16(port),
		User:                    r.cfg.User,
		Password:                r.cfg.Password,
		Localhost:               r.cfg.reportHost(),
		TLSConfig:               r.cfg.tlsConfig(ctx),
		ParseTime:               true,
		TimestampStringLocation: time.UTC,
		RenderJSONAsMySQLText:   true,
		HeartbeatPeriod:         r.cfg.heartbeat(),
		ReadTimeout:             r.cfg.readTimeout(),
		DisableRetrySync:        true,
		VerifyChecksum:          true,
		SemiSyncEnabled:         false,
		Logger:                  r.slog,
		RowsEventDecodeFunc:     r.decodeRows,
		// A count of parsed events, not bytes: each may hold a large row
		// (up to max_allowed_packet). The connector bounds what follows.
		EventCacheCount: 16,
		// MariaDB 11.4+ writes LogPos=0 inside transactions; markers only
		// come from transaction ends, which carry real positions.
		FillZeroLogPos: flavor == mysql.MariaDBFlavor,
	})
	var err error
	if r.gset != nil && from.GTID != "" {
		r.stream, err = r.syncer.StartSyncGTID(r.connectState())
	} else {
		r.stream, err = r.syncer.StartSync(mysql.Position{Name: from.File, Pos: from.Pos})
	}
	if err != nil {
		if ae := loginRefused(&r.cfg, err); ae != nil {
			return fmt.Errorf("start binlog sync at %s: %w", from, ae)
		}
		return fmt.Errorf("start binlog sync at %s: %w: %w", from, ErrConnection, err)
	}
	r.clashes.Started()
	// Checked once the stream is connected: a server that took over the
	// address since is then seen by the check, which connects later.
	if err := r.checkServer(ctx, from); err != nil {
		r.closeSyncer()
		return fmt.Errorf("start binlog sync at %s: %w", from, err)
	}
	r.txn, r.txnBegun, r.txnXA, r.txnRows = nil, false, false, 0
	r.grp.reset()
	r.tables = map[uint64]*table{}
	if r.byName == nil {
		r.byName = map[string]*table{}
	}
	r.pending, r.head = r.pending[:0], 0
	return nil
}

// Next returns the next change or marker, blocking until one is read or ctx
// is done. Connection failures are retried with back-off from the last
// transaction end; errors it returns are fatal for this stream (ctx errors,
// ErrPositionUnavailable, ErrUnsupported, ErrMetadata, or ErrConnection
// after Config.MaxReconnects failed attempts).
func (r *Reader) Next(ctx context.Context) (Item, error) {
	for {
		if r.closed {
			return Item{}, ErrClosed
		}
		if r.stream == nil {
			return Item{}, ErrNotStarted
		}
		if r.head < len(r.pending) {
			it := r.pending[r.head]
			r.pending[r.head] = Item{}
			r.head++
			if r.head == len(r.pending) {
				r.pending, r.head = r.pending[:0], 0
			}
			return it, nil
		}
		if r.restart {
			if err := r.restartAtGroup(ctx); err != nil {
				return Item{}, err
			}
			continue
		}
		r.st.waiting()
		ev, err := r.stream.GetEvent(ctx)
		r.st.received(err == nil)
		if err != nil {
			if ctx.Err() != nil {
				return Item{}, ctx.Err()
			}
			if err := r.recover(ctx, err); err != nil {
				return Item{}, err
			}
			continue
		}
		r.backoff.Reset()
		r.evStart = Position{File: r.file, Pos: ev.Header.LogPos - min(ev.Header.LogPos, ev.Header.EventSize)}
		if err := r.handle(ctx, ev, ev.Header.LogPos); err != nil {
			return Item{}, err
		}
	}
}

// Buffered returns the number of items Next returns without waiting for
// the server: the rest of the transaction or rows event it is in.
func (r *Reader) Buffered() int { return len(r.pending) - r.head }

// recover handles a stream error: fatal server errors are returned, others
// lead to a reconnect from the last transaction end, retried with back-off
// while the server cannot be reached (it may be restarting), up to
// Config.MaxReconnects consecutive attempts.
func (r *Reader) recover(ctx context.Context, cause error) error {
	var me *mysql.MyError
	wait := time.Duration(-1) // the first wait, when not the back-off's
	if errors.As(cause, &me) && isServerIDClash(me) {
		cause = r.serverIDInUse(ctx, me)
		wait = r.clashWait(cause)
	} else if errors.As(cause, &me) && me.Code == mysql.ER_MASTER_FATAL_ERROR_READING_BINLOG {
		if !strings.Contains(me.Message, "truncated in the middle of event") {
			return fmt.Errorf("stream binlog from %s: %w: %s%s", r.lastEnd, ErrPositionUnavailable, me.Message, r.insp.available(ctx))
		}
		if err := r.skipTruncatedFile(ctx, cause); err != nil {
			return err
		}
	}
	if r.txn != nil && r.grp.replaying && r.txnRows > r.skip {
		// Re-read the partial replay, passing over what was handed out;
		// inside the first transaction after Start, at least what Start
		// was told to pass over (r.skip then still holds it). A group
		// still held has handed out nothing: it is read again whole.
		r.skip, r.skipTxn = r.txnRows, r.txnGTID
	}
	r.closeSyncer()
	for {
		r.st.lost()
		if n := r.backoff.Attempt(); r.cfg.MaxReconnects > 0 && n >= r.cfg.MaxReconnects {
			return fmt.Errorf("stream binlog from %s: %w: giving up after %d attempts: %w", r.lastEnd, ErrConnection, n, cause)
		}
		if wait < 0 {
			wait = r.backoff.Next()
			ev, msg := r.log.Warn(), "binlog connection lost, reconnecting from last transaction end"
			if errors.Is(cause, ErrAuthentication) {
				ev, msg = r.log.Error(), "source refused the login (fix source.user and source.password), reconnecting from last transaction end"
			}
			ev.Err(cause).Str("binlog_file", r.lastEnd.File).Uint32("binlog_pos", r.lastEnd.Pos).
				Str("gtid", r.lastEnd.GTID).Dur("backoff_ms", wait).Int("attempt", r.backoff.Attempt()).Msg(msg)
		}
		if !retry.Sleep(ctx, wait) {
			return ctx.Err()
		}
		wait = -1
		if r.gset != nil && r.lastEnd.GTID != "" {
			g, err := mysql.ParseGTIDSet(r.insp.srv.Flavor.String(), r.lastEnd.GTID)
			if err != nil {
				return fmt.Errorf("reconnect: parse gtid set %q: %w", r.lastEnd.GTID, err)
			}
			r.gset = g
		}
		r.file = r.lastEnd.File
		// startSync connects and registers as a replica: while the server
		// is down it fails with ErrConnection, and the next attempt waits
		// longer. Errors of the stream itself come from GetEvent.
		err := r.startSync(ctx, r.lastEnd)
		if err == nil {
			return nil
		}
		if !errors.Is(err, ErrConnection) {
			return err
		}
		cause = err
	}
}

// skipTruncatedFile handles the server's refusal to read on in a binlog
// file that ends inside an event: the server stopped (crashed) while
// writing it, and started a new file when it came back. What follows the
// last complete group of that file never committed (the open group is
// dropped): it moves lastEnd, where the stream reconnects, to the start of
// the next file. Without a next file the error stays fatal.
func (r *Reader) skipTruncatedFile(ctx context.Context, cause error) error {
	fatal := func(why string) error {
		return fmt.Errorf("stream binlog from %s: %w: %w (%s)%s", r.lastEnd, ErrPositionUnavailable, cause, why, r.insp.available(ctx))
	}
	c, logs, err := r.insp.logFiles(ctx)
	if err != nil {
		return fatal("list the binlog files: " + err.Error())
	}
	i := slices.IndexFunc(logs, func(l LogFile) bool { return l.Name == r.file })
	if i < 0 || i == len(logs)-1 {
		return fatal(fmt.Sprintf("no binlog file after %s to continue in", r.file))
	}
	next := Position{File: logs[i+1].Name, Pos: 4}
	switch {
	case r.insp.srv.Flavor == FlavorMariaDB:
		next.GTID, err = c.mariadbGTIDAt(next.File, 4)
	case r.insp.srv.GTIDMode:
		next.GTID, err = r.insp.mysqlGTIDAt(ctx, next.File, 4)
	}
	if err != nil {
		return fatal(fmt.Sprintf("read the GTID set at %s:4: %v", next.File, err))
	}
	r.log.Warn().Err(cause).Str("binlog_file", r.file).Str("next_file", next.File).Str("gtid", r.txnGTID).Int("rows", r.txnRows).
		Msg("binlog file ends inside an event (the server stopped while writing it): what follows its last complete transaction never committed; continuing at the next file")
	if r.txn != nil {
		r.abandonTxn("the binlog file ends inside an event")
	}
	r.file, r.lastEnd = next.File, next
	return nil
}

func (r *Reader) marker(pos uint32) {
	p := Position{File: r.file, Pos: pos}
	if r.gset != nil {
		p.GTID = r.gset.String()
	}
	r.lastEnd = p
	r.pending = append(r.pending, Item{Kind: ItemMarker, Marker: p})
}

// beginTxn opens a group. A group still open is one the server never
// finished writing (it crashed while writing it): its rows are dropped. The
// first group after a restart for a replay must be the group to replay.
func (r *Reader) beginTxn(gtid string, when time.Time, micros bool) error {
	if r.txn != nil {
		r.abandonTxn("a new transaction began")
	}
	r.txn = &Txn{Begin: r.lastEnd, GTID: gtid, CommitTime: when, CommitTimeMicros: micros}
	r.st.commit.Store(when.UnixNano())
	r.txnGTID, r.txnAt = gtid, r.evStart
	r.txnBegun, r.txnXA, r.txnRows = false, false, 0
	if rp := r.replay; rp != nil && gtid == rp.gtid && r.txnAt == rp.at {
		// Groups between the restart point and this one can only be
		// groups without an end, dropped again; this one is known to
		// commit.
		r.grp.replaying, r.grp.discard = true, rp.discard
	}
	return nil
}

// abandonTxn drops the open group, which has no end in the binlog.
func (r *Reader) abandonTxn(why string) {
	if r.txnRows == 0 {
		r.log.Debug().Str("gtid", r.txnGTID).Str("binlog_file", r.txnAt.File).Uint32("binlog_pos", r.txnAt.Pos).Str("reason", why).
			Msg("transaction without an end in the binlog, none of its rows captured")
	} else {
		r.log.Warn().Str("gtid", r.txnGTID).Str("binlog_file", r.txnAt.File).Uint32("binlog_pos", r.txnAt.Pos).
			Int("rows", r.txnRows).Str("reason", why).
			Msg("transaction without an end in the binlog (the server stopped while writing it): its rows are not published")
	}
	r.txn, r.txnGTID, r.txnBegun, r.txnXA, r.txnRows = nil, "", false, false, 0
	r.grp.reset()
}

// endTxn closes the open group at the end event at pos. A committed group's
// held rows are handed out, then its marker; a group that rolled back (a
// ROLLBACK query, or an XA PREPARE, whose outcome comes later as its own
// statement) hands out only its marker. A committed group whose rows
// outgrew the buffer is re-read from its start instead (see group.go).
func (r *Reader) endTxn(pos uint32, committed bool) error {
	if committed && r.skip > 0 && r.txnRows > 0 && r.skipTxn != "" && r.txnGTID != "" && r.skipTxn != r.txnGTID {
		// Checked at the end: a group without an end, or rolled back,
		// may come before the one the checkpoint names.
		return fmt.Errorf("%w: expected transaction %s at %s, found %s: the binlog does not match the checkpoint", ErrPositionUnavailable, r.skipTxn, r.lastEnd, r.txnGTID)
	}
	if committed && r.grp.overflow {
		r.log.Info().Str("gtid", r.txnGTID).Str("binlog_file", r.lastEnd.File).Uint32("binlog_pos", r.lastEnd.Pos).
			Int("rows", r.txnRows).Int("buffer_bytes", r.cfg.txnBuffer()).
			Msg("transaction larger than the buffer committed: re-reading it to publish its rows")
		r.replay = &replayPlan{gtid: r.txnGTID, at: r.txnAt, discard: r.grp.discard}
		r.restart = true
		r.txn, r.txnGTID, r.txnBegun, r.txnXA, r.txnRows = nil, "", false, false, 0
		r.grp.reset()
		return nil
	}
	if r.txnGTID != "" && r.gset != nil {
		if err := r.gset.Update(r.txnGTID); err != nil {
			return fmt.Errorf("add gtid %s to the executed set: %w", r.txnGTID, err)
		}
	}
	if committed && len(r.grp.held) > 0 {
		if len(r.pending) == r.head {
			// Nothing waits in pending: hand held over whole.
			r.pending, r.grp.held = r.grp.held, r.pending[:0]
			r.head = 0
		} else {
			r.pending = append(r.pending, r.grp.held...)
		}
	}
	if r.grp.replaying {
		r.replay = nil
	}
	r.txn, r.txnGTID, r.txnBegun, r.txnXA, r.txnRows = nil, "", false, false, 0
	r.grp.reset()
	if committed {
		// skip counts rows of the first committed group only.
		r.skip, r.skipTxn = 0, ""
	}
	r.marker(pos)
	return nil
}

// restartAtGroup restarts the stream at lastEnd, the start of the group to
// replay.
func (r *Reader) restartAtGroup(ctx context.Context) error {
	r.restart = false
	r.file = r.lastEnd.File
	err := r.startSync(ctx, r.lastEnd)
	if err == nil {
		return nil
	}
	if !errors.Is(err, ErrConnection) {
		return err
	}
	return r.recover(ctx, err)
}

func (r *Reader) handle(ctx context.Context, ev *replication.BinlogEvent, pos uint32) error {
	h := ev.Header
	switch e := ev.Event.(type) {
	case *replication.RotateEvent:
		r.file = string(e.NextLogName)
		if h.Timestamp == 0 || h.Flags&replication.LOG_EVENT_ARTIFICIAL_F != 0 {
			// The artificial rotate at stream start only names the file;
			// later, it follows a file that ended without a rotate (the
			// server stopped), maybe inside a group.
			if r.txn != nil {
				r.abandonTxn("the binlog file ended")
			}
			if r.lastEnd.File == "" {
				r.lastEnd.File = r.file
				r.lastEnd.Pos = uint32(e.Position)
			}
			return nil
		}
		if r.txn != nil {
			// Groups never span files: this one was cut short.
			r.abandonTxn("the binlog file ended")
		}
		r.marker(uint32(e.Position))
	case *replication.GTIDEvent:
		when, micros := time.Unix(int64(h.Timestamp), 0).UTC(), false
		if e.OriginalCommitTimestamp != 0 {
			when, micros = e.OriginalCommitTime().UTC(), true
		} else if e.ImmediateCommitTimestamp != 0 {
			when, micros = e.ImmediateCommitTime().UTC(), true
		}
		gtid := ""
		if h.EventType != replication.ANONYMOUS_GTID_EVENT {
			gtid = gtidOf(e.SID, "", e.GNO)
		}
		return r.beginTxn(gtid, when, micros)
	case *replication.GtidTaggedLogEvent:
		when, micros := time.Unix(int64(h.Timestamp), 0).UTC(), false
		if e.OriginalCommitTimestamp != 0 {
			when, micros = e.OriginalCommitTime().UTC(), true
		}
		return r.beginTxn(gtidOf(e.SID, e.Tag.String(), e.GNO), when, micros)
	case *replication.MariadbGTIDEvent:
		if err := r.beginTxn(e.GTID.String(), time.Unix(int64(h.Timestamp), 0).UTC(), false); err != nil {
			return err
		}
		// MariaDB writes no BEGIN: the GTID event opens the group, which a
		// standalone statement (DDL) closes by itself.
		r.txnBegun = !e.IsStandalone()
		if e.Flags&64 != 0 { // FL_PREPARED_XA
			r.txnXA = true
		}
	case *replication.QueryEvent:
		return r.query(ctx, e, h, pos)
	case *replication.ExecuteLoadQueryEvent:
		return r.loadQuery(ctx, e, ev.RawData, h, pos)
	case *replication.FormatDescriptionEvent:
		r.checksumLen = 0
		if e.ChecksumAlgorithm == replication.BINLOG_CHECKSUM_ALG_CRC32 {
			r.checksumLen = replication.BinlogChecksumLength
		}
	case *replication.HeartbeatEvent:
		r.st.heartbeat.Store(time.Now().UnixNano())
	case *replication.XIDEvent:
		return r.endTxn(pos, true)
	case *replication.TableMapEvent:
		return r.tableMap(ctx, e, pos)
	case *replication.RowsEvent:
		return r.rows(e, h, pos)
	case *replication.TransactionPayloadEvent:
		// The inner events of a compressed transaction share its position.
		r.inPayload = true
		defer func() { r.inPayload = false }()
		for _, inner := range e.Events {
			if err := r.handle(ctx, inner, pos); err != nil {
				return err
			}
		}
	default:
		if h.EventType == replication.XA_PREPARE_LOG_EVENT {
			return r.endTxn(pos, false)
		}
	}
	return nil
}

func (r *Reader) query(ctx context.Context, e *replication.QueryEvent, h *replication.EventHeader, pos uint32) error {
	q := bytes.TrimSpace(e.Query)
	switch {
	case bytes.EqualFold(q, []byte("BEGIN")):
		if r.txn == nil {
			if err := r.beginTxn("", time.Unix(int64(h.Timestamp), 0).UTC(), false); err != nil {
				return err
			}
		}
		r.txnBegun = true
		return nil
	case bytes.EqualFold(q, []byte("COMMIT")):
		return r.endTxn(pos, true)
	case bytes.EqualFold(q, []byte("ROLLBACK")):
		return r.endTxn(pos, false)
	case hasPrefixFold(q, "XA START"), hasPrefixFold(q, "XA BEGIN"):
		if r.txn == nil {
			if err := r.beginTxn("", time.Unix(int64(h.Timestamp), 0).UTC(), false); err != nil {
				return err
			}
		}
		r.txnBegun, r.txnXA = true, true
		return nil
	case hasPrefixFold(q, "XA END"):
		return nil
	case hasPrefixFold(q, "XA PREPARE"):
		return r.endTxn(pos, false)
	case hasPrefixFold(q, "SAVEPOINT"), hasPrefixFold(q, "ROLLBACK"), hasPrefixFold(q, "RELEASE"):
		if handled, err := r.savepoint(q, pos); handled || err != nil {
			return err
		}
	}
	switch st := classifyStatement(string(e.Schema), q, querySQLMode(e.StatusVars), r.insp.srv.LowerCaseTableNames, r.capList); st.kind {
	case stmtWritesCaptured:
		return fmt.Errorf("%w: statement-format DML on captured table %s at %s:%d (a session uses binlog_format=STATEMENT or MIXED): %.200s", ErrUnsupported, st.tables[0], r.file, pos, q)
	case stmtAltersCaptured:
		if !r.insp.srv.FullMetadata {
			return fmt.Errorf("%w: schema change on captured table %s at %s:%d without binlog_row_metadata=FULL: %.200s", ErrUnsupported, st.tables[0], r.file, pos, q)
		}
		// The next TABLE_MAP carries the new shape; forget cached names.
		for _, t := range st.tables {
			delete(r.infoSchema, t)
		}
	}
	if r.txnBegun {
		// A statement inside BEGIN ... COMMIT on another table.
		return nil
	}
	// A DDL or other standalone statement is its own transaction.
	if r.txn == nil {
		if err := r.beginTxn("", time.Unix(int64(h.Timestamp), 0).UTC(), false); err != nil {
			return err
		}
	}
	return r.endTxn(pos, true)
}

// loadQuery classifies the statement of an EXECUTE_LOAD_QUERY event, a
// LOAD DATA logged in STATEMENT format, as a QUERY event's: go-mysql does
// not keep its text, so it is cut from the raw event (header, the query
// post-header and the load's 13 bytes, status variables, the default
// schema and a NUL, the statement, the checksum).
func (r *Reader) loadQuery(ctx context.Context, e *replication.ExecuteLoadQueryEvent, raw []byte, h *replication.EventHeader, pos uint32) error {
	const postHeader = 13 + 13
	start := replication.EventHeaderSize + postHeader + int(e.StatusVars)
	schemaEnd := start + int(e.SchemaLength)
	end := len(raw) - r.checksumLen
	if schemaEnd+1 > end {
		return fmt.Errorf("%w: malformed EXECUTE_LOAD_QUERY event at %s:%d (%d bytes)", ErrUnsupported, r.file, pos, len(raw))
	}
	status := raw[replication.EventHeaderSize+postHeader : start]
	return r.query(ctx, &replication.QueryEvent{
		Schema: raw[start:schemaEnd], Query: raw[schemaEnd+1 : end], StatusVars: status,
	}, h, pos)
}

// savepoint applies a savepoint statement of the open group: SAVEPOINT
// marks the row number it comes before, ROLLBACK TO discards the rows after
// that mark, RELEASE forgets it. It reports whether q was one.
func (r *Reader) savepoint(q []byte, pos uint32) (bool, error) {
	verb, name, ok, err := savepointStatement(q)
	if !ok || err != nil {
		return ok, err
	}
	if r.txn == nil {
		return true, fmt.Errorf("%w: %s outside a transaction at %s:%d", ErrUnsupported, verb, r.file, pos)
	}
	switch verb {
	case "SAVEPOINT":
		r.grp.setSavepoint(name, r.txnRows)
	case "RELEASE":
		r.grp.releaseSavepoint(name, true)
	case "ROLLBACK TO":
		if r.grp.replaying {
			// The first pass recorded what this discards.
			return true, nil
		}
		if !r.grp.rollbackTo(name, r.txnRows) {
			// Rows of the group may be discarded, and which is unknown.
			return true, fmt.Errorf("%w: ROLLBACK TO savepoint %q, which the transaction at %s:%d did not set in the binlog", ErrUnsupported, name, r.file, pos)
		}
	}
	return true, nil
}

func hasPrefixFold(b []byte, p string) bool {
	return len(b) >= len(p) && strings.EqualFold(string(b[:len(p)]), p)
}

func (r *Reader) tableMap(ctx context.Context, tm *replication.TableMapEvent, pos uint32) error {
	if !r.isCaptured(tm.Schema, tm.Table) {
		delete(r.tables, tm.TableID) // the id may have been a captured table's
		return nil
	}
	key := string(tm.Schema) + "." + string(tm.Table)
	if t, ok := r.tables[tm.TableID]; ok && t.sameShape(tm) {
		return nil
	}
	if t, ok := r.byName[key]; ok && t.sameShape(tm) {
		r.tables[tm.TableID] = t
		return nil
	}
	var names, charsets []string
	if len(tm.ColumnName) > 0 {
		names = tm.ColumnNameString()
	} else {
		if !r.cfg.AllowMinimalMetadata {
			return fmt.Errorf("%w: the TABLE_MAP of %s carries no column names: set binlog_row_metadata=FULL on the server (SET GLOBAL binlog_row_metadata = 'FULL'), or allow_minimal_metadata to read names from information_schema", ErrMetadata, key)
		}
		if old, ok := r.byName[key]; ok && len(old.pub.Columns) != int(tm.ColumnCount) {
			return fmt.Errorf("%w: %s changed from %d to %d columns without binlog_row_metadata=FULL", ErrUnsupported, key, len(old.pub.Columns), tm.ColumnCount)
		} else if ok && !bytes.Equal(old.types, tm.ColumnType) {
			return fmt.Errorf("%w: column types of %s changed without binlog_row_metadata=FULL", ErrUnsupported, key)
		}
		info := r.infoSchema[key]
		if info == nil {
			c, err := r.insp.metaConn(ctx)
			if err != nil {
				return err
			}
			if info, err = c.columns(string(tm.Schema), string(tm.Table)); err != nil {
				return fmt.Errorf("read columns of %s: %w", key, err)
			}
			r.log.Warn().Str("table", key).Msg("binlog has no column names (binlog_row_metadata is not FULL), using information_schema")
			r.infoSchema[key] = info
		}
		if len(info.names) != int(tm.ColumnCount) {
			return fmt.Errorf("%w: information_schema lists %d columns for %s, the binlog %d", ErrMetadata, len(info.names), key, tm.ColumnCount)
		}
		names, charsets = info.names, info.charsets
	}
	t, err := newTable(tm, names, r.insp.srv.Flavor, charsets)
	if err != nil {
		return fmt.Errorf("table map of %s at %s:%d: %w", key, r.file, pos, err)
	}
	r.tables[tm.TableID] = t
	r.byName[key] = t
	return nil
}

// rowsOp returns the operation of a rows event and the number of row
// images per changed row: two (before and after) for an update.
func rowsOp(e *replication.RowsEvent, h *replication.EventHeader) (Op, int, error) {
	switch e.Type() {
	case replication.EnumRowsEventTypeInsert:
		return OpInsert, 1, nil
	case replication.EnumRowsEventTypeDelete:
		return OpDelete, 1, nil
	case replication.EnumRowsEventTypeUpdate:
		return OpUpdate, 2, nil
	}
	if h.EventType == replication.PARTIAL_UPDATE_ROWS_EVENT {
		return OpUpdate, 2, nil
	}
	return 0, 0, fmt.Errorf("unknown rows event type %s", h.EventType)
}

func (r *Reader) rows(e *replication.RowsEvent, h *replication.EventHeader, pos uint32) error {
	if e.Flags&replication.RowsEventStmtEndFlag != 0 {
		// A table id holds until the end of its statement (go-mysql's
		// parser forgets its table maps there too); the server gives a
		// table a new id whenever it reopens it, and kept ids would pile up.
		defer clear(r.tables)
	}
	// r.tables holds captured tables only: one lookup decides.
	t := r.tables[e.TableID]
	if t == nil {
		if e.Table != nil && r.isCaptured(e.Table.Schema, e.Table.Table) {
			return fmt.Errorf("rows event for table id %d of %s.%s without a table map", e.TableID, e.Table.Schema, e.Table.Table)
		}
		return nil
	}
	if r.txn == nil {
		// Rows outside any transaction marker (should not happen).
		if err := r.beginTxn("", time.Unix(int64(h.Timestamp), 0).UTC(), false); err != nil {
			return err
		}
	}
	if r.txnXA {
		return fmt.Errorf("%w: XA transaction touching captured table %s at %s:%d (XA is not supported)", ErrUnsupported, t.pub, r.file, pos)
	}
	op, step, err := rowsOp(e, h)
	if err != nil {
		return err
	}
	// What a held row costs: its share of the event, which its decoded
	// values take about as much as, plus the Item and the values' slice.
	rowCost := int(h.EventSize)/max(1, len(e.Rows)/step) + int(unsafe.Sizeof(Item{})) + 16*len(t.pub.Columns)
	for i := 0; i+step-1 < len(e.Rows); i += step {
		img := i + step - 1 // the after image of an update
		for _, sk := range e.SkippedColumns[i : i+step] {
			if len(sk) > 0 {
				return fmt.Errorf("%w: row image of %s at %s:%d misses columns (a session uses binlog_row_image=MINIMAL or NOBLOB)", ErrUnsupported, t.pub, r.file, pos)
			}
		}
		idx := r.txnRows
		r.txnRows++
		if idx < r.skip && (r.skipTxn == "" || r.txnGTID == "" || r.skipTxn == r.txnGTID) {
			// Settled before; a group of another GTID is held and, if it
			// commits, refused by endTxn.
			continue
		}
		if r.grp.overflow || r.grp.replaying && r.grp.discarded(idx) {
			continue
		}
		row, err := t.convertRow(e.Rows[img])
		if err != nil {
			return fmt.Errorf("decode row at %s:%d: %w", r.file, pos, err)
		}
		it := Item{Kind: ItemChange, Change: Change{
			Table: t.pub, Op: op, Row: row, Txn: r.txn, Index: idx,
			ServerID: h.ServerID, File: r.file, Pos: pos,
		}}
		if r.grp.replaying {
			// Known to commit: out as read.
			r.pending = append(r.pending, it)
			continue
		}
		r.grp.held = append(r.grp.held, it)
		r.grp.heldBytes += rowCost
		if r.grp.heldBytes > r.cfg.txnBuffer() && !r.inPayload {
			// A compressed transaction is decoded whole in memory
			// already: re-reading it would save nothing.
			r.grp.overflow = true
			clear(r.grp.held)
			r.grp.held = nil
		}
	}
	return nil
}

func (r *Reader) closeSyncer() {
	if r.syncer != nil {
		r.syncer.Close()
		r.syncer, r.stream = nil, nil
	}
}

// Close stops streaming and closes both connections. It is idempotent.
func (r *Reader) Close() error {
	if r.closed {
		return nil
	}
	r.closed = true
	r.st.connected.Store(false)
	r.closeSyncer()
	return r.insp.Close()
}

// clashResetAfter is how long a stream must run without its server_id
// being taken over for the next takeover to count as the first of a new
// series.
const clashResetAfter = 5 * time.Minute

// clashLoud is the number of takeovers in a row after which, and then every
// clashLoud-th, clashWait logs an error rather than a warning.
const clashLoud = 5

// Server errors that end a dump because another replica registered with
// its server_id.
const (
	erSlaveSameID = 4052 // MariaDB ER_SLAVE_SAME_ID
)

// isServerIDClash reports whether me ended the stream because a replica
// with the same server_id connected: MariaDB's ER_SLAVE_SAME_ID, or
// MySQL's ER_SOURCE_FATAL_ERROR_READING_BINLOG (1236) saying so ("A slave
// with the same server_uuid/server_id as this slave has connected to the
// master", 8.0.26+ "A replica ... source").
func isServerIDClash(me *mysql.MyError) bool {
	return me.Code == erSlaveSameID ||
		me.Code == mysql.ER_MASTER_FATAL_ERROR_READING_BINLOG && strings.Contains(me.Message, "same server_uuid/server_id")
}

// serverIDError is a stream the server dropped because another replica
// registered with its server_id.
type serverIDError struct {
	id    uint32
	addr  string
	other string // the replica the server lists with the id, "" when unknown
	me    *mysql.MyError
}

func (e *serverIDError) Error() string {
	other := "another replica"
	if e.other != "" {
		other = "another replica (" + e.other + ")"
	}
	return fmt.Sprintf("source.server_id %d is in use: %s registered at %s with the same server_id, and the server dropped this stream (server error %d: %s); "+
		"give every tailbox connector and replica of the server its own source.server_id (the default is derived from name, so two connectors with one name, or with the same explicit server_id, clash)",
		e.id, other, e.addr, e.me.Code, e.me.Message)
}

func (e *serverIDError) Unwrap() []error { return []error{ErrServerIDInUse, e.me} }

// serverIDInUse returns the clash me reports as a *serverIDError, naming
// the replica the server lists with the id when the metadata connection
// may list them (see Inspector.Replicas).
func (r *Reader) serverIDInUse(ctx context.Context, me *mysql.MyError) error {
	e := &serverIDError{id: r.cfg.ServerID, addr: r.cfg.Addr, me: me}
	if reps, err := r.insp.Replicas(ctx); err == nil {
		for _, rep := range reps {
			if rep.ServerID == r.cfg.ServerID {
				e.other = fmt.Sprintf("host %s, port %d", rep.Host, rep.Port)
			}
		}
	}
	return e
}

// clashWait logs cause, a takeover of the server_id, and returns the wait
// before reconnecting: a back-off that, unlike the reconnect back-off, the
// events read in between do not reset (only a stream that ran for
// clashResetAfter does). Every takeover is logged once, as a warning; the
// clashLoud-th in a row, and every clashLoud-th after it, as an error.
func (r *Reader) clashWait(cause error) time.Duration {
	wait := r.clashes.Next()
	n := r.clashes.Attempt()
	ev := r.log.Warn()
	if n%clashLoud == 0 {
		ev = r.log.Error()
	}
	ev.Err(cause).Uint32("server_id", r.cfg.ServerID).Int("takeovers", n).Dur("backoff", wait).
		Str("binlog_file", r.lastEnd.File).Uint32("binlog_pos", r.lastEnd.Pos).Str("gtid", r.lastEnd.GTID).
		Msg("another replica took over source.server_id, reconnecting from last transaction end")
	return wait
}
