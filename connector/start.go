package connector

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/tailbox-cdc/tailbox/config"
	"github.com/tailbox-cdc/tailbox/pkg/binlog"
	"github.com/tailbox-cdc/tailbox/pkg/checkpoint"
)

// offsetsSetHint ends every error about an unusable checkpoint.
const offsetsSetHint = "; use `tailbox offsets set -c FILE --from SPEC` to choose a position"

// startPoint applies the start rules: --from, then the checkpoint, then
// start.from. A checkpoint is checked against the connected server first
// (checkCheckpoint, checkAvailable); a spec is resolved and checked by
// resolveSpec. Errors about a position wrap binlog.ErrPositionUnavailable,
// errors about the checkpoint ErrCheckpoint.
func (c *Connector) startPoint(ctx context.Context, insp *binlog.Inspector, cp *checkpoint.Checkpoint, from string) (binlog.Point, string, error) {
	if from != "" {
		p, err := c.resolveSpec(ctx, insp, from)
		return binlog.Point{Pos: p}, "--from " + from, err
	}
	if cp != nil {
		if err := c.checkCheckpoint(cp, insp.Server()); err != nil {
			return binlog.Point{}, "", err
		}
		if err := c.checkAvailable(ctx, insp, cp); err != nil {
			return binlog.Point{}, "", err
		}
		return cp.Point(), "checkpoint", nil
	}
	spec := c.cfg.Start.From
	if spec == "" {
		spec = "latest"
	}
	p, err := c.resolveSpec(ctx, insp, spec)
	return binlog.Point{Pos: p}, "start.from " + spec, err
}

// checkCheckpoint verifies that cp was written by this connector, for these
// tables, on this server (file:pos checkpoints) or flavor (GTID checkpoints).
func (c *Connector) checkCheckpoint(cp *checkpoint.Checkpoint, srv binlog.Server) error {
	fix := offsetsSetHint
	if cp.Name != c.cfg.Name {
		return fmt.Errorf("%w: %s was written by connector %q, this is %q%s", ErrCheckpoint, c.storeName(), cp.Name, c.cfg.Name, fix)
	}
	if cp.TablesHash != "" && cp.TablesHash != c.cfg.TablesHash() {
		return fmt.Errorf("%w: outbox.tables changed since %s was written%s", ErrCheckpoint, c.storeName(), fix)
	}
	if cp.Server.Flavor != "" && cp.Server.Flavor != srv.Flavor.String() {
		return fmt.Errorf("%w: %s was written for a %s server, %s is %s%s", ErrCheckpoint, c.storeName(), cp.Server.Flavor, c.cfg.Source.Addr, srv.Flavor, fix)
	}
	if cp.Position.GTID == "" && !sameServer(cp.Server, srv) {
		return fmt.Errorf("%w: %s holds a file position of another server (server_id %d, binlog %s; connected to server_id %d, binlog %s)%s",
			ErrCheckpoint, c.storeName(), cp.Server.ServerID, cp.Server.BinlogBasename, srv.ServerID, srv.BinlogBasename, fix)
	}
	return nil
}

// sameServer reports whether a checkpoint's server is srv, as the reader
// decides it on a reconnect (binlog.SameServer).
func sameServer(s checkpoint.Server, srv binlog.Server) bool {
	return binlog.SameServer(binlog.Server{ServerID: s.ServerID, ServerUUID: s.ServerUUID, BinlogBasename: s.BinlogBasename}, srv)
}

// checkAvailable verifies that the server can stream from cp's position: a
// GTID set must be contained in the server's executed set with nothing
// after it purged; a file position must still be on the server, in the
// same file (same first-event time: no RESET MASTER since) — also checked
// for a GTID checkpoint read from this very server, whose file name would
// otherwise mislead after RESET MASTER.
func (c *Connector) checkAvailable(ctx context.Context, insp *binlog.Inspector, cp *checkpoint.Checkpoint) error {
	pos := cp.Position
	where := c.storeName()
	if pos.GTID != "" {
		if err := insp.CheckGTID(ctx, pos.GTID); err != nil {
			return fmt.Errorf("%w: %s holds gtid %s, which this server cannot resume from: %w%s", ErrCheckpoint, where, pos.GTID, err, offsetsSetHint)
		}
	}
	if pos.File == "" || pos.GTID != "" && !sameServer(cp.Server, insp.Server()) {
		return nil
	}
	if !cp.Server.FileStartTime.IsZero() {
		// First, as a reset explains every other difference.
		started, err := insp.FileStartTime(ctx, pos.File)
		switch {
		case err != nil && !errors.Is(err, binlog.ErrPositionUnavailable):
			return fmt.Errorf("check the checkpoint's binlog file %s: %w", pos.File, err)
		case err == nil && !started.Equal(cp.Server.FileStartTime):
			return fmt.Errorf("%w: %s holds %s:%d of a binlog file %s started at %s, but the server's %s started at %s: the binary logs were reset (RESET MASTER) or replaced since, so the position would point into other transactions%s",
				ErrCheckpoint, where, pos.File, pos.Pos, pos.File, cp.Server.FileStartTime.UTC().Format(time.RFC3339), pos.File, started.Format(time.RFC3339), offsetsSetHint)
		}
	}
	if err := insp.CheckFile(ctx, pos); err != nil {
		if pos.GTID != "" && purged(ctx, insp, pos) {
			return nil // the GTID set says what the stream needs
		}
		return fmt.Errorf("%w: %s holds %s:%d: %w%s", ErrCheckpoint, where, pos.File, pos.Pos, err, offsetsSetHint)
	}
	return nil
}

// purged reports whether p's file comes before the server's oldest binlog
// file. (A missing file after it, or a position beyond its file's end, on
// the server that wrote it, means the binary logs were reset.)
func purged(ctx context.Context, insp *binlog.Inspector, p binlog.Position) bool {
	oldest, _, err := insp.Bounds(ctx)
	return err == nil && binlog.FileIndex(p.File) < binlog.FileIndex(oldest.File)
}

// resolveSpec turns a start spec into a position on the connected server
// and checks that the server can stream from it.
func (c *Connector) resolveSpec(ctx context.Context, insp *binlog.Inspector, spec string) (binlog.Position, error) {
	s, err := config.ParseStartSpec(spec)
	if err != nil {
		return binlog.Position{}, fmt.Errorf("start position: %w", err)
	}
	switch s.Kind {
	case config.StartLatest:
		return insp.Latest(ctx)
	case config.StartEarliest:
		return insp.Earliest(ctx)
	case config.StartGTID:
		// As @@gtid_executed prints it, a set may hold newlines.
		set := strings.Join(strings.Fields(s.GTID), "")
		if err := insp.CheckGTID(ctx, set); err != nil {
			return binlog.Position{}, fmt.Errorf("start position %s: %w", spec, err)
		}
		return binlog.Position{GTID: set}, nil
	case config.StartTime:
		p, err := insp.AtTime(ctx, s.Time)
		if err != nil {
			return binlog.Position{}, fmt.Errorf("start position %s: %w", spec, err)
		}
		return p, nil
	default:
		p, err := insp.Resolve(ctx, binlog.Position{File: s.File, Pos: s.Pos})
		if err != nil {
			return binlog.Position{}, fmt.Errorf("start position %s: %w", spec, err)
		}
		return p, nil
	}
}

// fileStartTime returns when the server created file, or the zero time
// when it cannot be read (the checkpoint is then saved without it, and its
// file is not checked against RESET MASTER on load). It uses a connection
// of its own, so the saver may call it while the reader streams.
func (c *Connector) fileStartTime(flavor, file string) time.Time {
	rc := c.readerConfig()
	if f, err := binlog.ParseFlavor(flavor); err == nil && f != binlog.FlavorUnknown {
		rc.Flavor = f
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	t, err := binlog.FileStartTime(ctx, rc, file)
	if err != nil {
		c.log.Debug().Err(err).Str("binlog_file", file).Msg("read binlog file start time")
		return time.Time{}
	}
	return t
}
