package pipeline

import (
	"context"
	"fmt"
	"io"
	"os"
)

// Pipeline stages: the decode stage (reader.Next, Transform, the poison
// rules) and the send stage (back-pressure, commit rule, producer) run on
// their own goroutines, handing over batches of up to pipeBatch steps in
// binlog order, at most pipeDepth batches ahead.
const (
	pipeBatch = 256
	pipeDepth = 4
)

// sender is the second pipeline stage: it applies the steps in order.
type sender struct {
	s   *session
	out io.Writer // dry run output; nil is stdout
}

// pump reads changes, transforms them and hands records to the producer
// until the session's ctx is done or an error occurs.
func (s *session) pump(dec *decoder, snd *sender) error {
	pctx, cancel := context.WithCancel(s.ctx)
	defer cancel()
	batches := make(chan []step, pipeDepth)
	free := make(chan []step, pipeDepth+2)
	var decodeErr error
	decoded := make(chan struct{})
	go func() {
		defer close(decoded)
		defer close(batches)
		decodeErr = dec.run(pctx, batches, free)
	}()
	err := snd.run(pctx, batches, free)
	cancel()
	for range batches { // let decode finish
	}
	<-decoded
	if err != nil {
		return err
	}
	return decodeErr
}

// run applies the steps of in, in order, until in closes or an error
// occurs; emptied batches go back to free.
func (snd *sender) run(ctx context.Context, in <-chan []step, free chan<- []step) error {
	if snd.out == nil {
		snd.out = os.Stdout
	}
	for b := range in {
		for i := range b {
			if err := snd.step(ctx, &b[i]); err != nil {
				return err
			}
			b[i] = step{}
		}
		select {
		case free <- b[:0]:
		default:
		}
	}
	return nil
}

// step pushes st to the tracker and hands its record, if any, to the
// producer (or prints it in a dry run).
func (snd *sender) step(ctx context.Context, st *step) error {
	s := snd.s
	tr := s.tr
	switch {
	case st.marker:
		tr.PushMarker(st.pos)
		return nil
	case st.out == nil:
		tr.PushSlot(st.index, st.txn, true)
		return nil
	case s.prod == nil:
		if err := printRecord(snd.out, &st.out.Record); err != nil {
			return fmt.Errorf("dry run output: %w", err)
		}
		tr.PushSlot(st.index, st.txn, true)
		return nil
	}
	// Back-pressure: bounded by count and by bytes in flight.
	size := st.out.meta.size
	if err := s.sem.acquire(ctx, size); err != nil {
		return err
	}
	if s.batch != nil {
		// exactly_once: the slot and its record join the open
		// transaction together (see txnBatcher).
		if err := s.batch.lock(); err != nil {
			return err
		}
	}
	st.out.meta.seq = tr.PushSlot(st.index, st.txn, false)
	if st.key != nil {
		s.clean.track(st.out.meta.seq, st.table, st.key, st.out.meta.commit)
	}
	err := s.prod.Send(ctx, &st.out.Record)
	if s.batch != nil {
		if cerr := s.batch.unlock(ctx, size, err == nil); err == nil {
			err = cerr
		}
	}
	return err
}
