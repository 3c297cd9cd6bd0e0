// Package connector wires the pipeline stages — binlog reader, outbox
// transformer, Kafka producer and checkpoint store — and owns start-position
// resolution, the commit rule, retries and shutdown.
package connector

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"time"

	"github.com/rs/zerolog"

	"github.com/tailbox-cdc/tailbox/config"
	"github.com/tailbox-cdc/tailbox/connector/observe"
	"github.com/tailbox-cdc/tailbox/connector/pipeline"
	"github.com/tailbox-cdc/tailbox/internal/retry"
	"github.com/tailbox-cdc/tailbox/pkg/binlog"
	"github.com/tailbox-cdc/tailbox/pkg/checkpoint"
	"github.com/tailbox-cdc/tailbox/pkg/kafka"
	"github.com/tailbox-cdc/tailbox/pkg/lease"
	"github.com/tailbox-cdc/tailbox/pkg/outbox"
)

// Sentinel errors of the connector; test with errors.Is.
var (
	// ErrConfig is returned when the configuration cannot be turned into a
	// pipeline (exit status 2).
	ErrConfig = errors.New("invalid configuration")

	// ErrCheckpoint is returned when the stored checkpoint cannot be used:
	// unparseable, written for other tables or another server. The file is
	// left untouched; `tailbox offsets set` is the way out.
	ErrCheckpoint = pipeline.ErrCheckpoint

	// ErrServerSetup is returned when an item of the source that `tailbox
	// check` fails makes Run refuse to start: the server's settings
	// (binary log off, not ROW, row image not FULL), the account's grants,
	// an outbox table missing (misspelled), without a mapped column or not
	// transactional, source.server_id the server's own. The message
	// carries the exact fix; nothing was written.
	ErrServerSetup = errors.New("source server not set up for CDC")

	// ErrRejected is returned when an event cannot be delivered and
	// outbox.on_error is fail: the checkpoint stays before it.
	ErrRejected = pipeline.ErrRejected

	// ErrFenced is returned by Run when a newer producer with the same
	// transactional id — another tailbox with the same name, or the
	// replica that took over — fenced this one: it can never write again.
	ErrFenced = pipeline.ErrFenced
)

// RunOptions are the per-invocation options of Run.
type RunOptions struct {
	// From overrides the checkpoint and start.from ("" = none).
	From string
	// DryRun prints events to DryRunOut instead of producing them and
	// writes no checkpoint.
	DryRun    bool
	DryRunOut io.Writer
	// Version is the tailbox version for the tailbox_build_info metric; "" means
	// the module version (or VCS revision) of the build.
	Version string
}

// Connector is one configured pipeline. Create it with New.
type Connector struct {
	cfg   *config.Config
	log   zerolog.Logger
	slog  *slog.Logger
	xform *outbox.Transformer
	acks  kafka.Acks // kafka.acks, parsed by New
	m     *observe.Metrics

	// fromResolved: the last runActive resolved RunOptions.From into a
	// start position and stored it (runHA then drops it for later
	// takeovers; one that failed before storing it leaves it to the next).
	fromResolved bool
	// lease is the ha lease while this replica holds it (nil otherwise,
	// and without ha): openProducer confirms it before fencing.
	lease *lease.Lease
}

// New checks that cfg maps onto every stage; errors wrap ErrConfig.
func New(cfg *config.Config, log zerolog.Logger) (*Connector, error) {
	opts, err := outboxOptions(cfg)
	if err != nil {
		return nil, fmt.Errorf("%w: %w", ErrConfig, err)
	}
	x, err := outbox.New(opts)
	if err != nil {
		return nil, fmt.Errorf("%w: outbox: %w", ErrConfig, err)
	}
	if _, err := binlog.ParseFlavor(cfg.Source.Flavor); err != nil {
		return nil, fmt.Errorf("%w: source.flavor: %w", ErrConfig, err)
	}
	acks, err := kafka.ParseAcks(string(cfg.Kafka.Acks))
	if err != nil {
		return nil, fmt.Errorf("%w: kafka.acks: %w", ErrConfig, err)
	}
	return &Connector{cfg: cfg, log: log, slog: observe.NewSlogLogger(log), xform: x, acks: acks, m: observe.New(cfg)}, nil
}

func outboxOptions(cfg *config.Config) (outbox.Options, error) {
	o := cfg.Outbox
	format, err := outbox.ParseFormat(o.Format)
	if err != nil {
		return outbox.Options{}, fmt.Errorf("outbox.format: %w", err)
	}
	pt, err := outbox.ParsePayloadType(o.PayloadType)
	if err != nil {
		return outbox.Options{}, fmt.Errorf("outbox.payload_type: %w", err)
	}
	ou, err := outbox.ParseOnUpdate(o.OnUpdate)
	if err != nil {
		return outbox.Options{}, fmt.Errorf("outbox.on_update: %w", err)
	}
	zone, err := time.LoadLocation(o.TimestampZone)
	if err != nil {
		return outbox.Options{}, fmt.Errorf("outbox.timestamp_zone: %w", err)
	}
	opts := outbox.Options{
		ConnectorName: cfg.Name,
		Fields: outbox.Fields{
			ID: o.Fields.ID, Key: o.Fields.Key, Type: o.Fields.Type, Payload: o.Fields.Payload,
			RouteBy: o.Fields.RouteBy, Timestamp: o.Fields.Timestamp, SchemaVersion: o.Fields.SchemaVersion,
		},
		TopicTemplate:           o.Route.Topic,
		TopicRegex:              o.Route.TopicRegex,
		Tracing:                 outbox.Tracing{TraceParent: o.Tracing.TraceParent, TraceState: o.Tracing.TraceState, SpanContext: o.Tracing.SpanContext},
		Format:                  format,
		PayloadType:             pt,
		TimestampZone:           zone,
		OnUpdate:                ou,
		TombstoneOnEmptyPayload: o.TombstoneOnEmptyPayload,
	}
	for i, a := range o.Additional {
		pl, err := outbox.ParsePlacement(a.Placement)
		if err != nil {
			return outbox.Options{}, fmt.Errorf("outbox.additional[%d].placement: %w", i, err)
		}
		opts.Additional = append(opts.Additional, outbox.Additional{Column: a.Column, Placement: pl, As: a.As})
	}
	return opts, nil
}

// readerConfig maps source onto binlog.Config. binlog.Open settles
// source.tls with one login when it connects (binlog.ErrTLS: a TLS
// misconfiguration is an error there, not a connection failure to retry).
func (c *Connector) readerConfig() binlog.Config {
	src := c.cfg.Source
	flavor, _ := binlog.ParseFlavor(src.Flavor)
	return binlog.Config{
		Addr:     src.Addr,
		User:     src.User,
		Password: src.Password.Reveal(),
		ServerID: src.ServerID,
		Flavor:   flavor,
		TLS: binlog.TLS{
			Mode:     binlog.TLSMode(src.TLS.Mode), // config.TLSMode values are binlog's
			CAFile:   src.TLS.CAFile,
			CertFile: src.TLS.CertFile,
			KeyFile:  src.TLS.KeyFile,
		},
		Heartbeat:            src.Heartbeat.D(),
		ReportHost:           reportHost(c.cfg.Name),
		Tables:               c.cfg.Outbox.Tables,
		AllowMinimalMetadata: src.AllowMinimalMetadata,
	}
}

// reportHost is the host name the reader reports as a replica, which SHOW
// REPLICAS lists and a server_id clash names: "tailbox:" and the connector
// name, cut to the 60 bytes every server version accepts.
func reportHost(name string) string {
	h := "tailbox:" + name
	return h[:min(len(h), 60)]
}

// exactlyOnce reports whether delivery is exactly_once: events and the
// checkpoint covering them commit in one Kafka transaction.
func (c *Connector) exactlyOnce() bool { return c.cfg.Delivery == config.ExactlyOnce }

// deadLettering reports whether outbox.on_error is dead_letter: an event
// that cannot be sent goes to the dead-letter topic instead of stopping the run.
func (c *Connector) deadLettering() bool { return c.cfg.Outbox.OnError == config.OnErrorDeadLetter }

func (c *Connector) producerConfig() (kafka.Config, error) {
	k := c.cfg.Kafka
	tlsCfg, err := kafkaTLS(k.TLS)
	if err != nil {
		return kafka.Config{}, err
	}
	txnID := ""
	if c.exactlyOnce() {
		txnID = c.transactionalID()
	}
	return kafka.Config{
		TransactionalID: txnID,
		Brokers:         k.Brokers,
		ClientID:        k.ClientID,
		Acks:            c.acks,
		Compression:     k.Compression,
		MaxMessageBytes: k.MaxMessageBytes,
		Linger:          k.Linger.D(),
		TLS:             tlsCfg,
		SASL:            kafka.SASL{Mechanism: k.SASL.Mechanism, User: k.SASL.User, Password: k.SASL.Password.Reveal()},
	}, nil
}

// openReader connects to the source, retrying with back-off until ctx ends.
func (c *Connector) openReader(ctx context.Context) (*binlog.Reader, error) {
	rc := c.readerConfig()
	var b retry.Backoff
	for {
		r, err := c.dialReader(ctx, rc)
		if err == nil {
			return r, nil
		}
		if !errors.Is(err, binlog.ErrConnection) {
			return nil, err
		}
		if !c.waitForSource(ctx, &b, err) {
			return nil, ctx.Err()
		}
	}
}

// waitForSource logs err, a failed attempt to connect to the source, and
// waits b's next back-off; it reports whether it waited the whole time. A
// refused login is an error naming the account (binlog.ErrAuthentication),
// anything else a warning that the source is unreachable; both are retried
// (DESIGN: run retries an unreachable server and a failed login).
func (c *Connector) waitForSource(ctx context.Context, b *retry.Backoff, err error) bool {
	c.m.SourceRetry()
	wait := b.Next()
	if errors.Is(err, binlog.ErrAuthentication) {
		c.log.Error().Err(err).Int("attempt", b.Attempt()).Dur("backoff_ms", wait).Msg("source refused the login (fix source.user and source.password), retrying")
	} else {
		c.log.Warn().Err(err).Int("attempt", b.Attempt()).Dur("backoff_ms", wait).Msg("source unreachable, retrying")
	}
	return retry.Sleep(ctx, wait)
}

// transactionalID is the Kafka transactional.id of delivery: exactly_once.
func (c *Connector) transactionalID() string { return "tailbox-" + c.cfg.Name }

// serverIdentity is what the checkpoint records about the server.
func serverIdentity(s binlog.Server) checkpoint.Server {
	return checkpoint.Server{
		Flavor:         s.Flavor.String(),
		ServerID:       s.ServerID,
		ServerUUID:     s.ServerUUID,
		BinlogBasename: s.BinlogBasename,
	}
}

// dialReader connects to the source once, without retrying.
func (c *Connector) dialReader(ctx context.Context, rc binlog.Config) (*binlog.Reader, error) {
	return binlog.Open(ctx, rc, c.log.With().Str("component", "binlog").Logger(), c.slog)
}

// inspect connects to the source once, without retrying, to ask it about
// its binlog and setup without streaming: `tailbox check` and `tailbox
// offsets set`.
func (c *Connector) inspect(ctx context.Context) (*binlog.Inspector, error) {
	return binlog.Inspect(ctx, c.readerConfig(), c.log.With().Str("component", "binlog").Logger())
}
