package connector

import (
	"context"
	"fmt"
	"strconv"
	"strings"

	"github.com/tailbox-cdc/tailbox/pkg/binlog"
	"github.com/tailbox-cdc/tailbox/pkg/checkpoint"
)

// startPoint applies the start rules: --from, then the checkpoint, then start.from.
func (c *Connector) startPoint(ctx context.Context, reader *binlog.Reader, cp *checkpoint.Checkpoint, from string) (point, string, error) {
	if from != "" {
		p, err := c.resolveSpec(ctx, reader, from)
		return point{Pos: p}, "--from " + from, err
	}
	if cp != nil {
		if err := c.checkCheckpoint(cp, reader.Server()); err != nil {
			return point{}, "", err
		}
		return point{Pos: fromCheckpointPos(cp.Position), Skip: cp.Skip, NextTxn: cp.NextTxn}, "checkpoint", nil
	}
	spec := c.cfg.Start.From
	if spec == "" {
		spec = "latest"
	}
	p, err := c.resolveSpec(ctx, reader, spec)
	return point{Pos: p}, "start.from " + spec, err
}

// checkCheckpoint verifies that cp was written by this connector, for these
// tables, on this server (file:pos checkpoints) or flavor (GTID checkpoints).
func (c *Connector) checkCheckpoint(cp *checkpoint.Checkpoint, srv binlog.Server) error {
	fix := "; use `tailbox offsets set -c FILE --from SPEC` to choose a position"
	if cp.Name != c.cfg.Name {
		return fmt.Errorf("%w: %s was written by connector %q, this is %q%s", ErrCheckpoint, c.cfg.Checkpoint.File, cp.Name, c.cfg.Name, fix)
	}
	if cp.TablesHash != "" && cp.TablesHash != c.cfg.TablesHash() {
		return fmt.Errorf("%w: outbox.tables changed since %s was written%s", ErrCheckpoint, c.cfg.Checkpoint.File, fix)
	}
	if cp.Server.Flavor != "" && cp.Server.Flavor != srv.Flavor.String() {
		return fmt.Errorf("%w: %s was written for a %s server, %s is %s%s", ErrCheckpoint, c.cfg.Checkpoint.File, cp.Server.Flavor, c.cfg.Source.Addr, srv.Flavor, fix)
	}
	if cp.Position.GTID == "" {
		same := cp.Server.ServerID == srv.ServerID && cp.Server.BinlogBasename == srv.BinlogBasename
		if srv.Flavor == binlog.FlavorMySQL && cp.Server.ServerUUID != "" {
			same = cp.Server.ServerUUID == srv.ServerUUID
		}
		if !same {
			return fmt.Errorf("%w: %s holds a file position of another server (server_id %d, binlog %s; connected to server_id %d, binlog %s)%s",
				ErrCheckpoint, c.cfg.Checkpoint.File, cp.Server.ServerID, cp.Server.BinlogBasename, srv.ServerID, srv.BinlogBasename, fix)
		}
	}
	return nil
}

// resolveSpec turns a start spec into a position on the connected server.
func (c *Connector) resolveSpec(ctx context.Context, reader *binlog.Reader, spec string) (binlog.Position, error) {
	switch {
	case spec == "latest":
		return reader.Latest(ctx)
	case spec == "earliest":
		return reader.Earliest(ctx)
	case strings.HasPrefix(spec, "gtid:"):
		return binlog.Position{GTID: strings.TrimPrefix(spec, "gtid:")}, nil
	case strings.HasPrefix(spec, "time:"):
		return binlog.Position{}, fmt.Errorf("start position %q: time: positions are not supported in this version (use FILE:POS or gtid:SET)", spec)
	}
	i := strings.LastIndexByte(spec, ':')
	if i <= 0 {
		return binlog.Position{}, fmt.Errorf("start position %q: want latest, earliest, FILE:POS, gtid:SET or time:RFC3339", spec)
	}
	pos, err := strconv.ParseUint(spec[i+1:], 10, 32)
	if err != nil {
		return binlog.Position{}, fmt.Errorf("start position %q: position is not a number", spec)
	}
	return reader.Resolve(ctx, binlog.Position{File: spec[:i], Pos: uint32(pos)})
}
