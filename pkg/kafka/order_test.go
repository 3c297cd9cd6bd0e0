package kafka

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/IBM/sarama"
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kfake"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/tailbox-cdc/tailbox/internal/testenv"
)

// failStage makes the broker hold the first produce request of its topic
// until released, then refuse every partition of it with code, and counts
// the records of the produce requests that follow.
type failStage struct {
	c     *kfake.Cluster
	topic string
	code  int16

	held        chan struct{} // closed when the first request is held
	release     chan struct{} // closed by refuse
	releaseOnce sync.Once

	mu    sync.Mutex
	first bool // the first request was seen
	later int  // records of the topic in the requests after it
}

func newFailStage(t *testing.T, c *kfake.Cluster, topic string, code int16) *failStage {
	s := &failStage{c: c, topic: topic, code: code, held: make(chan struct{}), release: make(chan struct{})}
	t.Cleanup(s.refuse)
	c.ControlKey(int16(kmsg.Produce), s.control)
	return s
}

// refuse lets the broker answer the held request.
func (s *failStage) refuse() { s.releaseOnce.Do(func() { close(s.release) }) }

func (s *failStage) control(kr kmsg.Request) (kmsg.Response, error, bool) {
	s.c.KeepControl()
	req := kr.(*kmsg.ProduceRequest)
	records := 0
	for _, rt := range req.Topics {
		if rt.Topic != s.topic {
			continue
		}
		for _, rp := range rt.Partitions {
			var b kmsg.RecordBatch
			if err := b.ReadFrom(rp.Records); err == nil {
				records += int(b.NumRecords)
			}
		}
	}
	if records == 0 {
		return nil, nil, false
	}
	s.mu.Lock()
	first := !s.first
	s.first = true
	if !first {
		s.later += records
	}
	s.mu.Unlock()
	if !first {
		return nil, nil, false
	}
	close(s.held)
	s.c.SleepControl(func() { <-s.release })
	resp := req.ResponseKind().(*kmsg.ProduceResponse)
	for _, rt := range req.Topics {
		st := kmsg.NewProduceResponseTopic()
		st.Topic = rt.Topic
		for _, rp := range rt.Partitions {
			sp := kmsg.NewProduceResponseTopicPartition()
			sp.Partition = rp.Partition
			sp.ErrorCode = s.code
			sp.BaseOffset = -1
			st.Partitions = append(st.Partitions, sp)
		}
		resp.Topics = append(resp.Topics, st)
	}
	return resp, nil, true
}

// orderRecords returns n records of topic alternating between keys "a" and
// "b", each value the record's index.
func orderRecords(topic string, n int) []*Record {
	recs := make([]*Record, n)
	for i := range recs {
		recs[i] = &Record{Topic: topic, Key: []byte{"ab"[i%2]}, Value: strconv.AppendInt(nil, int64(i), 10)}
	}
	return recs
}

// checkKeyOrder fails t unless, per key, the first occurrence of each
// value in recs (what a consumer that drops duplicates keeps) gives every
// record of want in increasing order: a record written again by a later
// session is a duplicate, a record that first appears after a later one of
// its key is out of order.
func checkKeyOrder(t *testing.T, recs []*kgo.Record, want []*Record) {
	t.Helper()
	seen := map[string]bool{}
	last := map[string]int{}
	var got []string
	for _, r := range recs {
		got = append(got, fmt.Sprintf("%s=%s", r.Key, r.Value))
	}
	for _, r := range recs {
		if seen[string(r.Value)] {
			continue
		}
		seen[string(r.Value)] = true
		v, err := strconv.Atoi(string(r.Value))
		if err != nil {
			t.Fatalf("record value %q: %v", r.Value, err)
		}
		if l, ok := last[string(r.Key)]; ok && v < l {
			t.Fatalf("key %s: record %d first appears after record %d; the log holds %v", r.Key, v, l, got)
		}
		last[string(r.Key)] = v
	}
	for _, w := range want {
		if !seen[string(w.Value)] {
			t.Fatalf("record %s is missing; the log holds %v", w.Value, got)
		}
	}
}

// TestNoRecordOvertakesAFailedOne has the broker refuse a produce request
// with an error sarama does not retry while later records of the same
// partition are queued behind it. None of them may be written before the
// failed one is sent again: they all fail, and a second producer that
// sends all of them again (what the connector does from its checkpoint)
// leaves a log in which a consumer dropping duplicates sees every key's
// records in order.
func TestNoRecordOvertakesAFailedOne(t *testing.T) {
	tests := []struct {
		name string
		acks Acks
		code int16
	}{
		{"acks=all: records queued behind one refused with UNKNOWN_SERVER_ERROR are not written", AcksAll, kerr.UnknownServerError.Code},
		{"acks=all: records queued behind one refused with OUT_OF_ORDER_SEQUENCE_NUMBER are not written", AcksAll, kerr.OutOfOrderSequenceNumber.Code},
		{"acks=all: records queued behind one refused with UNKNOWN_PRODUCER_ID are not written", AcksAll, kerr.UnknownProducerID.Code},
		{"acks=leader: records queued behind one refused with UNKNOWN_SERVER_ERROR are not written", AcksLeader, kerr.UnknownServerError.Code},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			const topic, n = "order", 20
			k := testenv.Kafka(t, kfake.SeedTopics(1, topic))
			stage := newFailStage(t, k.Cluster, topic, tc.code)
			recs := orderRecords(topic, n)

			p := newProducer(t, k.Cluster, func(cfg *Config) { cfg.Acks = tc.acks })
			wait := collect(p)
			send(t, p, recs[0])
			receive(t, stage.held, "the first produce request")
			for _, r := range recs[1:] {
				send(t, p, r)
			}
			// Let sarama batch the queued records behind the held
			// request; they must not be written whether it did or not.
			time.Sleep(50 * time.Millisecond)
			stage.refuse()

			ctx, cancel := context.WithTimeout(context.Background(), testTimeout)
			defer cancel()
			closeErr := p.Close(ctx)
			acks := wait(t)
			if len(acks) != n {
				t.Fatalf("got %d acks, want %d", len(acks), n)
			}
			var acked []string
			refused := 0 // records whose write the halt refused
			for _, a := range acks {
				switch {
				case a.Record == recs[0]:
					if !errors.Is(a.Err, sarama.KError(tc.code)) || errors.Is(a.Err, ErrHalted) {
						t.Errorf("record 0: Ack.Err = %v, want the broker's %s", a.Err, kerr.ErrorForCode(tc.code))
					}
				case a.Err == nil:
					acked = append(acked, string(a.Record.Value))
				case !errors.Is(a.Err, ErrHalted) || IsPermanent(a.Err):
					t.Errorf("record %s: Ack.Err = %v, want ErrHalted, not permanent", a.Record.Value, a.Err)
				case errors.Is(a.Err, errHaltedWrite):
					refused++
				}
			}
			if len(acked) > 0 {
				t.Errorf("records %v were acknowledged after record 0 failed", acked)
			}
			// Sarama did try to send what was queued: the test is not
			// passing for want of a later request.
			if refused == 0 {
				t.Errorf("no record failed on a refused write; want sarama to have tried")
			}
			t.Logf("Close: %v; Ack of record 1: %v", closeErr, acks[1].Err)
			stage.mu.Lock()
			later := stage.later
			stage.mu.Unlock()
			if later > 0 {
				t.Errorf("the broker received %d records after record 0 failed", later)
			}
			if written := k.ConsumeAll(t, []string{topic}, 300*time.Millisecond); len(written) > 0 {
				t.Errorf("%d records written after record 0 failed:\n%s", len(written), testenv.FormatRecords(written))
			}

			// The next session sends everything again.
			p2 := newProducer(t, k.Cluster, func(cfg *Config) { cfg.Acks = tc.acks })
			wait2 := collect(p2)
			for _, r := range recs {
				send(t, p2, r)
			}
			closeProducer(t, p2)
			for _, a := range wait2(t) {
				if a.Err != nil {
					t.Fatalf("second session, record %s: %v", a.Record.Value, a.Err)
				}
			}
			checkKeyOrder(t, k.ConsumeAll(t, []string{topic}, 300*time.Millisecond), recs)
		})
	}
}

// TestSaramaErrorsAreUnbuffered guards what the halt relies on: sarama
// hands a failure over on an unbuffered channel, so that the run loop has
// received it before sarama sends the partition's next batch.
func TestSaramaErrorsAreUnbuffered(t *testing.T) {
	c := newCluster(t)
	p := newProducer(t, c, nil)
	if n := cap(p.ap.Errors()); n != 0 {
		t.Fatalf("sarama's Errors channel holds %d errors; the halt needs it unbuffered (see halt)", n)
	}
}
