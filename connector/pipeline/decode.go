package pipeline

import (
	"context"
	"fmt"
	"strconv"

	"github.com/tailbox-cdc/tailbox/pkg/binlog"
	"github.com/tailbox-cdc/tailbox/pkg/kafka"
	"github.com/tailbox-cdc/tailbox/pkg/outbox"
)

// decoder is the first pipeline stage: binlog items to steps. It runs on
// its own goroutine.
type decoder struct {
	s     *session
	xform *outbox.Transformer
	recs  records
}

// step is what the send stage does for one binlog item, in order.
type step struct {
	marker bool
	pos    binlog.Position // marker
	index  int             // slot: captured row index in its transaction
	txn    string          // slot: transaction identity
	out    *outRecord      // slot: the record; nil when nothing is sent
	// key is, with outbox.cleanup, the id of a published row of table,
	// to delete once its checkpoint is durable; nil otherwise.
	key   any
	table *binlog.Table
}

// sendMeta is what the acknowledgement of a record the session hands to
// the producer needs; the record's kafka.Record.Meta points to it.
type sendMeta struct {
	// seq is the record's slot in the tracker.
	seq uint64
	// commit is the commit time of its transaction (Unix ns, 0 unknown),
	// for the commit-to-ack latency.
	commit int64
	// size is the record's kafka.Record.Size, taken from the in-flight
	// bound at its acknowledgement.
	size int
}

// commitNanos returns sm.commit, or 0 (unknown) for a nil sm: the Meta of
// an acknowledged record that is no event.
func (sm *sendMeta) commitNanos() int64 {
	if sm == nil {
		return 0
	}
	return sm.commit
}

// commitNanos is sendMeta.commit for a change of txn: its commit time in
// Unix ns, 0 when unknown.
func commitNanos(txn *binlog.Txn) int64 {
	if txn == nil || txn.CommitTime.IsZero() {
		return 0
	}
	return txn.CommitTime.UnixNano()
}

// run decodes until ctx is done or the reader fails, handing batches of up
// to pipeBatch steps to out; free returns emptied batches for reuse. The
// steps decoded before an error are still handed on, so that the
// checkpoint reaches the failing row.
func (d *decoder) run(ctx context.Context, out chan<- []step, free chan []step) error {
	reader := d.s.reader
	buf := make([]step, 0, pipeBatch)
	flush := func() error {
		if len(buf) == 0 {
			return nil
		}
		select {
		case out <- buf:
		case <-ctx.Done():
			return ctx.Err()
		}
		select {
		case buf = <-free:
		default:
			buf = make([]step, 0, pipeBatch)
		}
		return nil
	}
	for {
		it, err := reader.Next(ctx)
		if err != nil {
			if ferr := flush(); ferr != nil {
				return ferr
			}
			return err
		}
		st, err := d.item(&it)
		if err != nil {
			if ferr := flush(); ferr != nil {
				return ferr
			}
			return err
		}
		buf = append(buf, st)
		// Hand on a full batch, and whatever is there once the reader
		// has nothing decoded left: a batch never waits for the network.
		if len(buf) == cap(buf) || reader.Buffered() == 0 {
			if err := flush(); err != nil {
				return err
			}
		}
	}
}

// item decides what becomes of one binlog item: a marker, a record to
// publish, or a row that publishes nothing. A poison event is an error
// with on_error fail, and a dead-letter record with dead_letter.
func (d *decoder) item(it *binlog.Item) (step, error) {
	s := d.s
	if it.Kind == binlog.ItemMarker {
		s.hooks.Marker(it.Marker)
		return step{marker: true, pos: it.Marker}, nil
	}
	ch := &it.Change
	s.hooks.Read(ch.Table, ch.Op)
	txn := ch.Txn.GTID
	if txn == "" {
		txn = ch.Txn.Begin.File + ":" + strconv.FormatUint(uint64(ch.Txn.Begin.Pos), 10)
	}
	st := step{index: ch.Index, txn: txn}
	res, err := d.xform.Transform(ch)
	var poison error
	if err != nil {
		if !outbox.IsPoison(err) {
			return st, fmt.Errorf("transform row of %s at %s:%d: %w", ch.Table, ch.File, ch.Pos, err)
		}
		poison = err
	}
	if res.Warning != "" {
		s.log.Warn().Str("table", ch.Table.String()).Str("binlog_file", ch.File).Uint32("binlog_pos", ch.Pos).
			Str("gtid", ch.Txn.GTID).Str("op", ch.Op.String()).Msg(res.Warning)
	}
	if poison == nil && res.Action != outbox.Publish {
		return st, nil
	}
	out := d.recs.of(&res.Event)
	rec := &out.Record
	if poison == nil && s.prod != nil {
		poison = s.prod.Fits(rec)
	}
	if poison != nil {
		if s.cfg.DeadLetterTopic == "" {
			s.hooks.Rejected(rec.Topic, poison)
			return st, fmt.Errorf("%w: event %s (row %d of transaction %s in %s at %s:%d): %w (outbox.on_error is fail: stopped before it, the checkpoint stays before it; fix the row or the route template, set on_error: dead_letter, or move past it with `tailbox offsets set`)",
				ErrRejected, res.Event.ID, ch.Index, txn, ch.Table, ch.File, ch.Pos, poison)
		}
		s.hooks.DeadLettered(rec.Topic, poison)
		out = s.deadLetter(rec, poison)
		rec = &out.Record
		s.log.Warn().Err(poison).Str("event_id", res.Event.ID).Str("topic", rec.Topic).Str("table", ch.Table.String()).
			Str("binlog_file", ch.File).Uint32("binlog_pos", ch.Pos).Msg("event sent to the dead-letter topic")
	}
	if s.clean != nil && poison == nil {
		// A published row, which the cleanup deletes once a durable
		// checkpoint covers it; a dead-lettered one stays for the operator.
		st.key, st.table = s.clean.key(ch), ch.Table
	}
	out.meta = sendMeta{commit: commitNanos(ch.Txn), size: rec.Size()}
	st.out = out
	return st, nil
}

// outRecord is a record the session sends, with its sendMeta (the record's
// Meta points to it) and room for its headers.
type outRecord struct {
	kafka.Record
	meta sendMeta
	hdrs [4]kafka.Header
}

// records hands out the outRecords of the decode stage from blocks of
// recordBlock: one allocation for a block instead of one per event. A
// block stays allocated, with what its records point to, while any of its
// records is referenced: records are acknowledged about in the order they
// were made, so that is not long. Used by one goroutine.
type records struct{ free []outRecord }

const recordBlock = 16

// of returns a new record of ev.
func (r *records) of(ev *outbox.Event) *outRecord {
	if len(r.free) == 0 {
		r.free = make([]outRecord, recordBlock)
	}
	o := &r.free[0]
	r.free = r.free[1:]
	o.Record = kafka.Record{Topic: ev.Topic, Key: ev.Key, Value: ev.Value, Timestamp: ev.Timestamp,
		ExplicitPartition: ev.ExplicitPartition, Partition: ev.Partition}
	o.Meta = &o.meta
	if len(ev.Headers) > 0 {
		hs := o.hdrs[:0]
		if len(ev.Headers) > len(o.hdrs) {
			hs = make([]kafka.Header, 0, len(ev.Headers))
		}
		for _, h := range ev.Headers {
			hs = append(hs, kafka.Header{Key: h.Key, Value: h.Value})
		}
		o.Headers = hs
	}
	return o
}

// Headers of dead-lettered records.
const (
	headerError         = "tailbox.error"
	headerOriginalTopic = "tailbox.original.topic"
	headerValueDropped  = "tailbox.value.dropped"
)

// deadLetter readdresses rec to the dead-letter topic with the reason and
// the original topic in headers. A value that alone makes the record too
// large is dropped (header tailbox.value.dropped=true), so that the
// dead-letter record itself can be delivered.
func (s *session) deadLetter(rec *kafka.Record, reason error) *outRecord {
	o := &outRecord{Record: *rec}
	o.Meta = &o.meta
	dl := &o.Record
	dl.Topic = s.cfg.DeadLetterTopic
	dl.ExplicitPartition, dl.Partition = false, 0 // a partition of the original topic
	dl.Headers = append(append([]kafka.Header(nil), rec.Headers...),
		kafka.Header{Key: headerError, Value: []byte(reason.Error())},
		kafka.Header{Key: headerOriginalTopic, Value: []byte(rec.Topic)})
	if s.prod != nil && s.prod.Fits(dl) != nil {
		dl.Value = nil
		dl.Headers = append(dl.Headers, kafka.Header{Key: headerValueDropped, Value: []byte("true")})
	}
	return o
}
