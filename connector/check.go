package connector

import (
	"context"
	"fmt"
	"strconv"
	"strings"

	"github.com/tailbox-cdc/tailbox/connector/preflight"
	"github.com/tailbox-cdc/tailbox/pkg/binlog"
	"github.com/tailbox-cdc/tailbox/pkg/checkpoint"
)

// Check runs the preflight of `tailbox check` and returns the checklist
// (see preflight.Checker.Check): it connects to the source once, without
// retrying, and to Kafka within a bounded time, and writes nothing.
func (c *Connector) Check(ctx context.Context) []preflight.Result {
	return c.checker().Check(ctx)
}

// checker maps the configuration and the connector's own start rules onto
// the preflight checks.
func (c *Connector) checker() *preflight.Checker {
	src := c.cfg.Source
	flavor, _ := binlog.ParseFlavor(src.Flavor)
	return &preflight.Checker{
		Addr:                 src.Addr,
		User:                 src.User,
		Flavor:               flavor,
		ServerID:             src.ServerID,
		AllowMinimalMetadata: src.AllowMinimalMetadata,
		Tables:               c.cfg.Outbox.Tables,
		Columns:              c.mappedColumns(),
		Store:                c.storeName(),
		DeleteBy:             c.deleteBy(),
		Dial:                 c.inspect,
		ReadCheckpoint:       c.readCheckpoint,
		StartPoint: func(ctx context.Context, insp *binlog.Inspector, cp *checkpoint.Checkpoint) (binlog.Point, string, error) {
			return c.startPoint(ctx, insp, cp, "")
		},
		ProducerConfig: c.producerConfig,
	}
}

// deleteBy is the column outbox.cleanup deletes by, "" when it is off.
func (c *Connector) deleteBy() string {
	if !c.cfg.Outbox.Cleanup.Enabled {
		return ""
	}
	return c.cfg.Outbox.Fields.ID
}

// mappedColumns lists the columns every outbox table must have, in the
// order of outbox.fields and outbox.additional.
func (c *Connector) mappedColumns() []preflight.Column {
	f := c.cfg.Outbox.Fields
	cols := []preflight.Column{
		{Name: f.ID, Setting: "outbox.fields.id", SQLType: "CHAR(36) NOT NULL PRIMARY KEY"},
		{Name: f.RouteBy, Setting: "outbox.fields.route_by", SQLType: "VARCHAR(255) NOT NULL"},
		{Name: f.Key, Setting: "outbox.fields.key", SQLType: "VARCHAR(255) NOT NULL"},
		{Name: f.Type, Setting: "outbox.fields.type", SQLType: "VARCHAR(255) NOT NULL"},
		{Name: f.Payload, Setting: "outbox.fields.payload", SQLType: "JSON"},
	}
	if f.Timestamp != "" {
		cols = append(cols, preflight.Column{Name: f.Timestamp, Setting: "outbox.fields.timestamp", SQLType: "TIMESTAMP(6) NOT NULL DEFAULT CURRENT_TIMESTAMP(6)"})
	}
	for i, a := range c.cfg.Outbox.Additional {
		cols = append(cols, preflight.Column{Name: a.Column, Setting: "outbox.additional[" + strconv.Itoa(i) + "].column", SQLType: "VARCHAR(255)"})
	}
	return cols
}

// preflight runs the source checks for Run, before anything is written: it
// returns an error wrapping ErrServerSetup that lists every failure, in the
// text of `tailbox check` — run refuses what check fails. The one failure
// it only logs as a warning is a RunTolerates one (server_id in use by a
// connected replica: at run time that is often this connector's former
// connection, or that of the ha replica it takes over from, which the
// server has not dropped yet). Warnings are logged as information.
func (c *Connector) preflight(ctx context.Context, insp *binlog.Inspector) error {
	var fatal []string
	for _, r := range c.checker().SourceChecks(ctx, insp) {
		switch {
		case r.Status == preflight.StatusFail && !r.RunTolerates:
			fatal = append(fatal, r.String())
		case r.Status == preflight.StatusFail:
			c.log.Warn().Str("check", r.Name).Str("detail", r.Detail).Str("fix", r.Fix).
				Msg("source check failed; starting anyway")
		case r.Status == preflight.StatusWarn:
			c.log.Info().Str("check", r.Name).Str("detail", r.Detail).Str("fix", r.Fix).
				Msg("source check warning")
		}
	}
	if len(fatal) > 0 {
		return fmt.Errorf("%w: %s is not set up for tailbox (nothing was written; `tailbox check` lists every item):\n%s", ErrServerSetup, c.cfg.Source.Addr, strings.Join(fatal, "\n"))
	}
	return nil
}
