package connector

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/tailbox-cdc/tailbox/pkg/binlog"
	"github.com/tailbox-cdc/tailbox/pkg/checkpoint"
	"github.com/tailbox-cdc/tailbox/pkg/kafka"
	"github.com/tailbox-cdc/tailbox/pkg/outbox"
)

const (
	// maxInFlight bounds records sent but not yet acknowledged.
	maxInFlight = 8192
	// drainTimeout bounds waiting for outstanding acknowledgements on stop.
	drainTimeout = 30 * time.Second
)

// Run streams until ctx is done — then it stops reading, drains in-flight
// sends, writes the checkpoint and returns nil — or until a fatal error.
// Kafka failures that a retry may fix restart the pipeline from the
// acknowledged checkpoint with back-off; MySQL connection failures are
// retried by the reader.
func (c *Connector) Run(ctx context.Context, opts RunOptions) error {
	var store *checkpoint.File
	var cp *checkpoint.Checkpoint
	var err error
	if opts.DryRun {
		cp, err = checkpoint.Read(c.cfg.Checkpoint.File)
	} else {
		if store, err = checkpoint.Open(c.cfg.Checkpoint.File); err != nil {
			return fmt.Errorf("open checkpoint: %w", err)
		}
		defer store.Close()
		cp, err = store.Load()
	}
	switch {
	case errors.Is(err, checkpoint.ErrNotFound):
		cp = nil
	case err != nil:
		return fmt.Errorf("%w: %w (the file is left as it is; use `tailbox offsets set` to replace it)", ErrCheckpoint, err)
	}

	reader, err := c.openReader(ctx)
	if err != nil {
		if ctx.Err() != nil {
			return nil
		}
		return err
	}
	defer reader.Close()
	srv := reader.Server()
	if ps := srv.Problems(); len(ps) > 0 {
		return fmt.Errorf("%w: %s is not set up for tailbox:\n  %s", ErrServerSetup, c.cfg.Source.Addr, strings.Join(ps, "\n  "))
	}
	if !srv.FullMetadata && !c.cfg.Source.AllowMinimalMetadata {
		return fmt.Errorf("%w: binlog_row_metadata is not FULL on %s, so the binlog carries no column names; fix: SET GLOBAL binlog_row_metadata = 'FULL' (and binlog_row_metadata=FULL in my.cnf), or set source.allow_minimal_metadata: true to read names from information_schema", binlog.ErrMetadata, c.cfg.Source.Addr)
	}

	start, source, err := c.startPoint(ctx, reader, cp, opts.From)
	if err != nil {
		return err
	}
	c.log.Info().Str("binlog_file", start.Pos.File).Uint32("binlog_pos", start.Pos.Pos).Str("gtid", start.Pos.GTID).
		Int("skip", start.Skip).Str("from", source).Str("server_version", srv.Version).Str("flavor", srv.Flavor.String()).
		Bool("dry_run", opts.DryRun).Msg("starting")

	s := &saver{c: c, store: store, srv: serverIdentity(srv)}
	if store != nil && (cp == nil || opts.From != "") {
		// Record where this run starts, so a restart never jumps to "latest".
		if err := s.save(start); err != nil {
			return err
		}
	}

	wait := time.Second
	for {
		next, err := c.session(ctx, reader, start, s, opts)
		if err == nil || ctx.Err() != nil {
			return s.final(next)
		}
		if ferr := s.final(next); ferr != nil {
			c.log.Error().Err(ferr).Msg("write checkpoint")
		}
		if !errors.Is(err, errRetry) {
			return err
		}
		c.log.Warn().Err(err).Dur("backoff", wait).Str("binlog_file", next.Pos.File).Uint32("binlog_pos", next.Pos.Pos).
			Int("skip", next.Skip).Msg("producer failed, restarting from the acknowledged checkpoint")
		select {
		case <-ctx.Done():
			return nil
		case <-time.After(wait):
		}
		wait = min(wait*2, 30*time.Second)
		start = next
	}
}

// errRetry marks session errors after which the pipeline restarts.
var errRetry = errors.New("retriable")

// saver writes checkpoints.
type saver struct {
	c     *Connector
	store *checkpoint.File
	srv   checkpoint.Server
	mu    sync.Mutex
	last  point
	saved bool
}

func (s *saver) save(p point) error {
	if s.store == nil {
		return nil
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.saved && s.last == p {
		return nil
	}
	cp := &checkpoint.Checkpoint{
		Name:       s.c.cfg.Name,
		Position:   toCheckpointPos(p.Pos),
		Skip:       p.Skip,
		NextTxn:    p.NextTxn,
		Server:     s.srv,
		TablesHash: s.c.cfg.TablesHash(),
	}
	if err := s.store.Save(cp); err != nil {
		return fmt.Errorf("write checkpoint: %w", err)
	}
	s.last, s.saved = p, true
	s.c.log.Debug().Str("binlog_file", p.Pos.File).Uint32("binlog_pos", p.Pos.Pos).Str("gtid", p.Pos.GTID).Int("skip", p.Skip).Msg("checkpoint written")
	return nil
}

func (s *saver) final(p point) error {
	if err := s.save(p); err != nil {
		return err
	}
	if s.store != nil {
		s.c.log.Info().Str("binlog_file", p.Pos.File).Uint32("binlog_pos", p.Pos.Pos).Str("gtid", p.Pos.GTID).Int("skip", p.Skip).Msg("checkpoint saved")
	}
	return nil
}

// session runs the pipeline once from start and returns the committed point.
func (c *Connector) session(ctx context.Context, reader *binlog.Reader, start point, s *saver, opts RunOptions) (point, error) {
	tr := newTracker(start)
	if err := reader.Start(ctx, start.Pos, start.Skip, start.NextTxn); err != nil {
		return start, err
	}
	sctx, cancel := context.WithCancel(ctx)
	defer cancel()

	var prod *kafka.Producer
	if !opts.DryRun {
		var err error
		if prod, err = c.openProducer(sctx); err != nil {
			return start, err
		}
	}

	var (
		wg     sync.WaitGroup
		ackMu  sync.Mutex
		ackErr error
		sem    = make(chan struct{}, maxInFlight)
	)
	if prod != nil {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for ack := range prod.Acks() {
				seq := ack.Record.Meta.(uint64)
				if ack.Err != nil {
					ackMu.Lock()
					if ackErr == nil {
						ackErr = c.deliveryError(ack)
					}
					ackMu.Unlock()
					cancel()
				} else {
					tr.settle(seq)
				}
				<-sem
			}
		}()
	}

	// Periodic checkpoint.
	stopTick := make(chan struct{})
	wg.Add(1)
	go func() {
		defer wg.Done()
		t := time.NewTicker(c.cfg.Checkpoint.Interval.D())
		defer t.Stop()
		for {
			select {
			case <-stopTick:
				return
			case <-t.C:
				p, _ := tr.committed()
				if err := s.save(p); err != nil {
					c.log.Error().Err(err).Msg("periodic checkpoint")
				}
			}
		}
	}()

	readErr := c.pump(sctx, reader, tr, prod, sem, opts)

	// Stop: no more intake; drain what is in flight, then checkpoint.
	if prod != nil {
		dctx, dcancel := context.WithTimeout(context.Background(), drainTimeout)
		if err := prod.Close(dctx); err != nil {
			c.log.Warn().Err(err).Int("in_flight", tr.inFlight()).Msg("producer did not drain before the timeout")
		}
		dcancel()
	}
	close(stopTick)
	wg.Wait()
	p, _ := tr.committed()

	ackMu.Lock()
	aerr := ackErr
	ackMu.Unlock()
	switch {
	case aerr != nil:
		return p, aerr
	case readErr != nil && ctx.Err() == nil && !errors.Is(readErr, context.Canceled):
		return p, readErr
	}
	return p, nil
}

// pump reads changes, transforms them and hands records to the producer
// until ctx is done or an error occurs.
func (c *Connector) pump(ctx context.Context, reader *binlog.Reader, tr *tracker, prod *kafka.Producer, sem chan struct{}, opts RunOptions) error {
	out := opts.DryRunOut
	if out == nil {
		out = os.Stdout
	}
	for {
		it, err := reader.Next(ctx)
		if err != nil {
			return err
		}
		if it.Kind == binlog.ItemMarker {
			tr.pushMarker(it.Marker)
			continue
		}
		ch := &it.Change
		txn := ch.Txn.GTID
		if txn == "" {
			txn = ch.Txn.Begin.File + ":" + strconv.FormatUint(uint64(ch.Txn.Begin.Pos), 10)
		}
		res, err := c.xform.Transform(ch)
		var poison error
		if err != nil {
			if !outbox.IsPoison(err) {
				return fmt.Errorf("transform row of %s at %s:%d: %w", ch.Table, ch.File, ch.Pos, err)
			}
			poison = err
		}
		if res.Warning != "" {
			c.log.Warn().Str("table", ch.Table.String()).Str("binlog_file", ch.File).Uint32("binlog_pos", ch.Pos).
				Str("gtid", ch.Txn.GTID).Str("op", ch.Op.String()).Msg(res.Warning)
		}
		if poison == nil && res.Action != outbox.Publish {
			tr.pushSlot(ch.Index, txn, true)
			continue
		}
		rec := toRecord(&res.Event)
		if poison == nil && prod != nil {
			poison = prod.Fits(rec)
		}
		if poison != nil {
			if c.cfg.Outbox.OnError != "dead_letter" {
				return fmt.Errorf("%w: event %s (row %d of transaction %s in %s at %s:%d): %w (outbox.on_error is fail: stopped before it, the checkpoint stays before it; fix the row or the route template, set on_error: dead_letter, or move past it with `tailbox offsets set`)",
					ErrRejected, res.Event.ID, ch.Index, txn, ch.Table, ch.File, ch.Pos, poison)
			}
			rec = c.deadLetter(rec, poison, prod)
			c.log.Warn().Err(poison).Str("event_id", res.Event.ID).Str("topic", rec.Topic).Str("table", ch.Table.String()).
				Str("binlog_file", ch.File).Uint32("binlog_pos", ch.Pos).Msg("event sent to the dead-letter topic")
		}
		if prod == nil {
			if err := printRecord(out, rec); err != nil {
				return fmt.Errorf("dry run output: %w", err)
			}
			tr.pushSlot(ch.Index, txn, true)
			continue
		}
		select {
		case sem <- struct{}{}:
		case <-ctx.Done():
			return ctx.Err()
		}
		rec.Meta = tr.pushSlot(ch.Index, txn, false)
		if err := prod.Send(ctx, rec); err != nil {
			return err
		}
	}
}

func toRecord(ev *outbox.Event) *kafka.Record {
	rec := &kafka.Record{Topic: ev.Topic, Key: ev.Key, Value: ev.Value, Timestamp: ev.Timestamp}
	if len(ev.Headers) > 0 {
		rec.Headers = make([]kafka.Header, len(ev.Headers))
		for i, h := range ev.Headers {
			rec.Headers[i] = kafka.Header{Key: h.Key, Value: h.Value}
		}
	}
	return rec
}

// Headers of dead-lettered records.
const (
	headerError         = "tailbox.error"
	headerOriginalTopic = "tailbox.original.topic"
	headerValueDropped  = "tailbox.value.dropped"
)

// deadLetter readdresses rec to outbox.dead_letter_topic with the reason and
// the original topic in headers. A value that alone makes the record too
// large is dropped (header tailbox.value.dropped=true), so that the
// dead-letter record itself can be delivered.
func (c *Connector) deadLetter(rec *kafka.Record, reason error, prod *kafka.Producer) *kafka.Record {
	dl := *rec
	dl.Topic = c.cfg.Outbox.DeadLetterTopic
	dl.Headers = append(append([]kafka.Header(nil), rec.Headers...),
		kafka.Header{Key: headerError, Value: []byte(reason.Error())},
		kafka.Header{Key: headerOriginalTopic, Value: []byte(rec.Topic)})
	if prod != nil && prod.Fits(&dl) != nil {
		dl.Value = nil
		dl.Headers = append(dl.Headers, kafka.Header{Key: headerValueDropped, Value: []byte("true")})
	}
	return &dl
}

// deliveryError classifies a failed acknowledgement.
func (c *Connector) deliveryError(ack kafka.Ack) error {
	r := ack.Record
	id := ""
	for _, h := range r.Headers {
		if h.Key == "id" {
			id = string(h.Value)
		}
	}
	if kafka.IsPermanent(ack.Err) {
		return fmt.Errorf("%w: Kafka refused event %s for topic %s for good: %w (the checkpoint stays before it)", ErrRejected, id, r.Topic, ack.Err)
	}
	return fmt.Errorf("%w: deliver event %s to topic %s: %w", errRetry, id, r.Topic, ack.Err)
}

// openProducer connects to Kafka, retrying with back-off while unreachable.
func (c *Connector) openProducer(ctx context.Context) (*kafka.Producer, error) {
	pc, err := c.producerConfig()
	if err != nil {
		return nil, err
	}
	wait := 500 * time.Millisecond
	for attempt := 1; ; attempt++ {
		p, err := kafka.New(ctx, pc)
		if err == nil {
			return p, nil
		}
		if !errors.Is(err, kafka.ErrUnreachable) {
			return nil, err
		}
		c.log.Warn().Err(err).Int("attempt", attempt).Dur("backoff", wait).Msg("kafka unreachable, retrying")
		select {
		case <-ctx.Done():
			return nil, ctx.Err()
		case <-time.After(wait):
		}
		wait = min(wait*2, 30*time.Second)
	}
}

// dryRunRecord is one line of --dry-run output.
type dryRunRecord struct {
	Topic     string            `json:"topic"`
	Key       *string           `json:"key"`
	Headers   map[string]string `json:"headers"`
	Timestamp string            `json:"timestamp"`
	Value     json.RawMessage   `json:"value"`
}

func printRecord(w io.Writer, rec *kafka.Record) error {
	r := dryRunRecord{Topic: rec.Topic, Headers: map[string]string{}, Timestamp: rec.Timestamp.UTC().Format(time.RFC3339Nano)}
	if rec.Key != nil {
		k := string(rec.Key)
		r.Key = &k
	}
	for _, h := range rec.Headers {
		r.Headers[h.Key] = string(h.Value)
	}
	switch {
	case rec.Value == nil:
		r.Value = json.RawMessage("null")
	case json.Valid(rec.Value):
		r.Value = rec.Value
	default:
		b, _ := json.Marshal(string(rec.Value))
		r.Value = b
	}
	b, err := json.Marshal(r)
	if err != nil {
		return err
	}
	_, err = w.Write(append(b, '\n'))
	return err
}
