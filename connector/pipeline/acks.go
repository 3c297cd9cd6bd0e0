package pipeline

import (
	"context"
	"fmt"
	"time"

	"github.com/tailbox-cdc/tailbox/pkg/kafka"
)

// ackBurst bounds the acknowledgements settled at once: a burst releases
// its in-flight room only when it is settled, so it stays well below the
// in-flight bound's wake-up slack (maxInFlight/16).
const ackBurst = 64

// acks settles the session's acknowledgements in bursts.
type acks struct {
	s     *session
	burst []kafka.Ack
	seqs  []uint64 // settled slots not yet handed to the tracker
	size  int64    // their bytes in flight
}

// runAcks settles acknowledgements until the producer's channel closes. A
// broker's response acknowledges a whole batch: the acknowledgements
// already waiting are taken too, so that the tracker and the in-flight
// bound are updated once per burst. The first failed delivery cancels the
// session; without a transaction to abort it abandons the producer and
// drops later acknowledgements (their records are resent).
func (s *session) runAcks() {
	a := &acks{s: s, burst: make([]kafka.Ack, 0, ackBurst), seqs: make([]uint64, 0, ackBurst)}
	in := s.prod.Acks()
	for ack := range in {
		a.burst = append(a.burst[:0], ack)
	more:
		for len(a.burst) < cap(a.burst) {
			select {
			case next, ok := <-in:
				if !ok {
					break more // a closed channel ends the burst, then the loop
				}
				a.burst = append(a.burst, next)
			default:
				break more
			}
		}
		if !a.take(time.Now().UnixNano()) {
			return
		}
		clear(a.burst) // hold no record until the next burst
	}
}

// take settles a burst that arrived at now (Unix ns). It reports false
// when a failed delivery abandoned the producer.
func (a *acks) take(now int64) bool {
	s := a.s
	for i := range a.burst {
		ack := &a.burst[i]
		meta, event := ack.Record.Meta.(*sendMeta)
		if event || ack.Err != nil {
			s.hooks.Acked(ack.Record.Topic, meta.commitNanos(), ack.Err, now)
		}
		if ack.Err != nil {
			a.settle() // the acknowledgements before it
			s.ackMu.Lock()
			if s.ackErr == nil {
				s.ackErr = s.deliveryError(*ack)
			}
			s.ackMu.Unlock()
			s.cancel()
			if s.batch != nil {
				// The open transaction is aborted at the end of the
				// session, which needs the producer: keep draining it.
				continue
			}
			s.fail()
			abandon(s.failed, s.prod)
			return false // later acks are dropped: their records are resent
		}
		if event {
			a.seqs = append(a.seqs, meta.seq)
			a.size += int64(meta.size)
		}
	}
	a.settle()
	return true
}

// settle hands the settled slots to the tracker and frees their room.
func (a *acks) settle() {
	if len(a.seqs) > 0 {
		a.s.tr.Settle(a.seqs...)
		a.s.sem.release(len(a.seqs), a.size)
		a.seqs, a.size = a.seqs[:0], 0
	}
}

// abandon stops prod at once after a failed delivery (failed is done),
// instead of draining it: the producer has halted at that failure (see
// kafka.ErrHalted), so what it still holds can only fail, and a drain
// would wait through sarama's retries for nothing. Records it holds are
// never acknowledged, so the checkpoint stays before them and the next
// session resends them after the failed one.
func abandon(failed context.Context, prod *kafka.Producer) {
	_ = prod.Close(failed) // reports the records given up
}

// deliveryError classifies a failed acknowledgement.
func (s *session) deliveryError(ack kafka.Ack) error {
	r := ack.Record
	id := ""
	for _, h := range r.Headers {
		if h.Key == "id" {
			id = string(h.Value)
		}
	}
	if s.cfg.ExactlyOnce && kafka.IsFenced(ack.Err) {
		return fmt.Errorf("%w: deliver event %s to topic %s: %w (another tailbox named %q took over)", kafka.ErrFenced, id, r.Topic, ack.Err, s.cfg.Name)
	}
	if kafka.IsPermanent(ack.Err) {
		return fmt.Errorf("%w: Kafka refused event %s for topic %s for good: %w (the checkpoint stays before it)", ErrRejected, id, r.Topic, ack.Err)
	}
	return fmt.Errorf("%w: deliver event %s to topic %s: %w", ErrRetry, id, r.Topic, ack.Err)
}
