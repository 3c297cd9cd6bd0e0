package kafka

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/IBM/sarama"
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kfake"
	"github.com/twmb/franz-go/pkg/kmsg"
)

// releaseFallback is how long a test that holds a broker answer back
// waits for the event that releases it before releasing it anyway: the
// event happens only when Close misbehaves, so a correct producer waits
// this long. It is never asserted on.
const releaseFallback = time.Second

// keyFor returns a key that murmur2 places on partition p of n.
func keyFor(t *testing.T, p, n int32) []byte {
	t.Helper()
	for i := range 10000 {
		if k := fmt.Appendf(nil, "key-%d", i); PartitionForKey(k, n) == p {
			return k
		}
	}
	t.Fatalf("no key for partition %d of %d", p, n)
	return nil
}

// waitClosed waits until Close has stopped intake.
func waitClosed(t *testing.T, p *Producer) {
	t.Helper()
	deadline := time.Now().Add(testTimeout)
	for {
		p.mu.RLock()
		closed := p.closed
		p.mu.RUnlock()
		if closed {
			return
		}
		if time.Now().After(deadline) {
			t.Fatal("Close did not stop intake")
		}
		time.Sleep(time.Millisecond)
	}
}

// receive returns the value from c, failing the test after testTimeout.
func receive[T any](t *testing.T, c <-chan T, what string) T {
	t.Helper()
	select {
	case v := <-c:
		return v
	case <-time.After(testTimeout):
		t.Fatalf("timed out waiting for %s", what)
		var zero T
		return zero
	}
}

// retryStage sets up a record (A) that sarama is retrying when Close is
// called, in a way that makes the old failure certain: sarama's idempotent
// (and transactional) producer resends a batch the broker refused with a
// retriable error itself, after a back-off, and gives it up with "in
// process of shutting down" when the producer was closed meanwhile and
// the batch cannot be handed over at once. The stage keeps that hand-over
// waiting: the broker refuses A's first produce request with
// NOT_LEADER_FOR_PARTITION, holds B's first produce request, and C's
// request is queued behind it (one request in flight per broker), so the
// goroutine that sends requests is busy when A's back-off ends. A, B and C
// go to partitions 0, 1 and 2 of a three-partition topic.
type retryStage struct {
	c                *kfake.Cluster
	topic            string
	recA, recB, recC *Record

	retryOnce sync.Once
	retrying  chan struct{} // closed when A's back-off begins
	proceed   chan struct{} // closed by the test: A's back-off goes on

	mu       sync.Mutex
	refusedA bool
	heldB    bool
	held     chan struct{} // closed when the broker holds B's request

	releaseOnce sync.Once
	release     chan struct{} // closed to answer B's request
}

func newRetryStage(t *testing.T, c *kfake.Cluster, topic string) *retryStage {
	s := &retryStage{
		c: c, topic: topic,
		recA:     &Record{Topic: topic, Key: keyFor(t, 0, 3), Value: []byte("a")},
		recB:     &Record{Topic: topic, Key: keyFor(t, 1, 3), Value: []byte("b")},
		recC:     &Record{Topic: topic, Key: keyFor(t, 2, 3), Value: []byte("c")},
		retrying: make(chan struct{}),
		proceed:  make(chan struct{}),
		held:     make(chan struct{}),
		release:  make(chan struct{}),
	}
	t.Cleanup(s.releaseB)
	c.ControlKey(int16(kmsg.Produce), s.control)
	return s
}

// control is the broker's produce request handler.
func (s *retryStage) control(kr kmsg.Request) (kmsg.Response, error, bool) {
	s.c.KeepControl()
	req := kr.(*kmsg.ProduceRequest)
	has := func(p int32) bool {
		for _, rt := range req.Topics {
			for _, rp := range rt.Partitions {
				if rt.Topic == s.topic && rp.Partition == p {
					return true
				}
			}
		}
		return false
	}
	s.mu.Lock()
	refuse := has(0) && !s.refusedA
	s.refusedA = s.refusedA || refuse
	hold := has(1) && !s.heldB
	s.heldB = s.heldB || hold
	s.mu.Unlock()
	switch {
	case refuse:
		resp := req.ResponseKind().(*kmsg.ProduceResponse)
		for _, rt := range req.Topics {
			st := kmsg.NewProduceResponseTopic()
			st.Topic = rt.Topic
			for _, rp := range rt.Partitions {
				sp := kmsg.NewProduceResponseTopicPartition()
				sp.Partition = rp.Partition
				sp.ErrorCode = kerr.NotLeaderForPartition.Code
				st.Partitions = append(st.Partitions, sp)
			}
			resp.Topics = append(resp.Topics, st)
		}
		return resp, nil, true
	case hold:
		close(s.held)
		s.c.SleepControl(func() { <-s.release })
	}
	return nil, nil, false
}

// onRetry is the producer's Config.OnRetry: the first back-off is A's,
// held until the test lets it proceed.
func (s *retryStage) onRetry() {
	s.retryOnce.Do(func() {
		close(s.retrying)
		<-s.proceed
	})
}

func (s *retryStage) releaseB() { s.releaseOnce.Do(func() { close(s.release) }) }

// send sends A, B and C, each once the stage is ready for it.
func (s *retryStage) send(t *testing.T, p *Producer) {
	t.Helper()
	send(t, p, s.recA)
	receive(t, s.retrying, "the retry of A")
	send(t, p, s.recB)
	receive(t, s.held, "B's produce request")
	send(t, p, s.recC)
}

// play lets A's back-off end once Close has stopped intake, then answers
// B's request when A's Ack arrives (which happens only if Close gave A up)
// or after releaseFallback.
func (s *retryStage) play(t *testing.T, p *Producer, ackedA <-chan struct{}) {
	t.Helper()
	waitClosed(t, p)
	close(s.proceed)
	select {
	case <-ackedA:
	case <-time.After(releaseFallback):
	}
	s.releaseB()
}

// check fails the test unless the broker refused A and held B.
func (s *retryStage) check(t *testing.T) {
	t.Helper()
	s.mu.Lock()
	defer s.mu.Unlock()
	if !s.refusedA || !s.heldB {
		t.Fatalf("the broker refused A: %v, held B: %v; want both", s.refusedA, s.heldB)
	}
}

// collectUntil reads Acks like collect and also signals on ackedA when the
// Ack of rec arrives.
func collectUntil(p *Producer, rec *Record) (ackedA <-chan struct{}, wait func(t *testing.T) []Ack) {
	acked := make(chan struct{}, 1)
	done := make(chan []Ack, 1)
	go func() {
		var acks []Ack
		for a := range p.Acks() {
			acks = append(acks, a)
			if a.Record == rec {
				acked <- struct{}{}
			}
		}
		done <- acks
	}()
	return acked, func(t *testing.T) []Ack {
		t.Helper()
		return receive(t, done, "Acks to be closed")
	}
}

// closeAsync calls Close in a goroutine; its result arrives on the channel.
func closeAsync(p *Producer) <-chan error {
	closed := make(chan error, 1)
	go func() {
		ctx, cancel := context.WithTimeout(context.Background(), testTimeout)
		defer cancel()
		closed <- p.Close(ctx)
	}()
	return closed
}

// checkAcks fails the test unless there are n acks, all successful.
func checkAcks(t *testing.T, acks []Ack, n int) {
	t.Helper()
	for _, a := range acks {
		if a.Err != nil {
			t.Errorf("record %q: %v", a.Record.Value, a.Err)
		}
	}
	if len(acks) != n {
		t.Errorf("got %d acks, want %d", len(acks), n)
	}
	if t.Failed() {
		t.FailNow()
	}
}

// TestCloseWaitsForARecordBeingRetried calls Close while sarama retries a
// record (see retryStage). Close must wait for its outcome: A, B and C are
// all acknowledged and written, and Close returns nil.
func TestCloseWaitsForARecordBeingRetried(t *testing.T) {
	const topic = "retry"
	c := newCluster(t, kfake.SeedTopics(3, topic))
	s := newRetryStage(t, c, topic)
	p := newProducer(t, c, func(cfg *Config) { cfg.OnRetry = s.onRetry })
	ackedA, wait := collectUntil(p, s.recA)

	s.send(t, p)
	closed := closeAsync(p)
	s.play(t, p, ackedA)

	if err := receive(t, closed, "Close"); err != nil {
		t.Errorf("Close = %v, want nil", err)
	}
	checkAcks(t, wait(t), 3)
	s.check(t)
	consume(t, c, topic, 3)
}

// TestCloseWaitsForACommitFlushingARecordBeingRetried calls Close while
// CommitTxn waits for a record of its transaction that sarama retries (see
// retryStage), as after the connector's commit timed out. Close must let
// the record and the commit finish: CommitTxn and Close return nil and
// read_committed consumers see every record of the transaction.
func TestCloseWaitsForACommitFlushingARecordBeingRetried(t *testing.T) {
	const topic = "commit"
	c := newCluster(t, kfake.SeedTopics(3, topic))
	s := newRetryStage(t, c, topic)
	p := newProducer(t, c, func(cfg *Config) {
		cfg.TransactionalID = "tailbox-drain"
		cfg.OnRetry = s.onRetry
	})
	ackedA, wait := collectUntil(p, s.recA)

	if err := p.BeginTxn(); err != nil {
		t.Fatalf("BeginTxn: %v", err)
	}
	s.send(t, p)
	committed := make(chan error, 1)
	go func() { committed <- p.CommitTxn() }()
	for deadline := time.Now().Add(testTimeout); p.ap.TxnStatus()&sarama.ProducerTxnFlagCommittingTransaction == 0; {
		if time.Now().After(deadline) {
			t.Fatal("CommitTxn did not begin")
		}
		time.Sleep(time.Millisecond)
	}
	closed := closeAsync(p)
	s.play(t, p, ackedA)

	if err := receive(t, committed, "CommitTxn"); err != nil {
		t.Errorf("CommitTxn = %v, want nil", err)
	}
	if err := receive(t, closed, "Close"); err != nil {
		t.Errorf("Close = %v, want nil", err)
	}
	checkAcks(t, wait(t), 3)
	s.check(t)
	got := committedValues(t, c, topic)
	slices.Sort(got)
	if fmt.Sprint(got) != "[a b c]" {
		t.Errorf("read_committed sees %q, want [a b c]", got)
	}
	if err := p.BeginTxn(); !errors.Is(err, ErrClosed) {
		t.Errorf("BeginTxn after Close = %v, want ErrClosed", err)
	}
}
