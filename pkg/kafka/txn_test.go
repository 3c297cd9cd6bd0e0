package kafka

import (
	"context"
	"errors"
	"fmt"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kfake"
	"github.com/twmb/franz-go/pkg/kgo"
)

// committedValues reads topic to its end with read_committed and returns
// the values in offset order per partition, partitions concatenated.
func committedValues(t *testing.T, c *kfake.Cluster, topic string) []string {
	t.Helper()
	cl, err := kgo.NewClient(kgo.SeedBrokers(c.ListenAddrs()...), kgo.ConsumeTopics(topic),
		kgo.FetchIsolationLevel(kgo.ReadCommitted()), kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()))
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	var out []string
	for {
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		fs := cl.PollFetches(ctx)
		done := ctx.Err() != nil
		cancel()
		if done {
			return out
		}
		fs.EachError(func(topic string, p int32, err error) { t.Logf("fetch %s/%d: %v", topic, p, err) })
		fs.EachRecord(func(r *kgo.Record) { out = append(out, string(r.Value)) })
	}
}

func TestTransactionsCommitAbortAndFence(t *testing.T) {
	const topic = "txn"
	c := newCluster(t, kfake.SeedTopics(1, topic))
	p := newProducer(t, c, func(c *Config) { c.TransactionalID = "tailbox-shop" })
	go func() {
		for range p.Acks() {
		}
	}()
	if !p.Transactional() {
		t.Fatal("Transactional() = false with a TransactionalID")
	}
	batch := func(p *Producer, prefix string, n int) {
		t.Helper()
		if err := p.BeginTxn(); err != nil {
			t.Fatalf("BeginTxn: %v", err)
		}
		for i := range n {
			send(t, p, &Record{Topic: topic, Key: []byte("k"), Value: fmt.Appendf(nil, "%s-%d", prefix, i)})
		}
	}
	batch(p, "committed", 3)
	if err := p.CommitTxn(); err != nil {
		t.Fatalf("CommitTxn: %v", err)
	}
	batch(p, "aborted", 2)
	if err := p.AbortTxn(); err != nil {
		t.Fatalf("AbortTxn: %v", err)
	}
	batch(p, "zombie", 2)

	// A second producer with the same id fences the first.
	p2 := newProducer(t, c, func(c *Config) { c.TransactionalID = "tailbox-shop" })
	go func() {
		for range p2.Acks() {
		}
	}()
	batch(p2, "new", 1)
	if err := p2.CommitTxn(); err != nil {
		t.Fatalf("new producer: CommitTxn: %v", err)
	}
	send(t, p, &Record{Topic: topic, Key: []byte("k"), Value: []byte("zombie-late")})
	err := p.CommitTxn()
	if err == nil {
		t.Fatal("the fenced producer committed")
	}
	t.Logf("fenced producer's commit: %v", err)
	if err := p.AbortTxn(); !errors.Is(err, ErrFenced) {
		t.Errorf("fenced producer's AbortTxn: got %v, want ErrFenced", err)
	}
	// The zombie's failed calls must not have taken the id back (sarama
	// bumps the epoch when it aborts after INVALID_PRODUCER_EPOCH, and
	// kfake accepts a stale epoch there): the new producer still commits.
	batch(p2, "new-again", 1)
	if err := p2.CommitTxn(); err != nil {
		t.Fatalf("new producer after the zombie's abort: CommitTxn: %v", err)
	}

	got := committedValues(t, c, topic)
	want := []string{"committed-0", "committed-1", "committed-2", "new-0", "new-again-0"}
	if fmt.Sprint(got) != fmt.Sprint(want) {
		t.Errorf("read_committed sees %q, want %q", got, want)
	}
}

func TestTransactionalNeedsAcksAll(t *testing.T) {
	err := Config{Brokers: []string{"127.0.0.1:9092"}, Acks: AcksLeader, TransactionalID: "x"}.Validate()
	if !errors.Is(err, ErrInvalidConfig) || err == nil {
		t.Fatalf("Validate: got %v, want ErrInvalidConfig for acks=leader with a transactional id", err)
	}
}

// TestFencedMidTransactionNeverTakesTheIDBack fences a producer in the
// middle of its transaction, as a second tailbox with the same name does.
// The zombie's next batch and its commit fail, its abort reports ErrFenced
// (which stops tailbox rather than restarting a session that would fence
// the new producer in turn), it cannot begin again, and the new producer
// keeps committing; read_committed consumers see none of the zombie's
// records.
func TestFencedMidTransactionNeverTakesTheIDBack(t *testing.T) {
	const topic = "txn"
	c := newCluster(t, kfake.SeedTopics(1, topic))
	zombie, zacks := openTxnWithARecord(t, c, topic)
	fresh := newProducer(t, c, func(c *Config) { c.TransactionalID = "tailbox-shop" })
	go func() {
		for range fresh.Acks() {
		}
	}()
	send(t, zombie, &Record{Topic: topic, Key: []byte("k"), Value: []byte("zombie-1")})
	if a := <-zacks; a.Err == nil {
		t.Error("the zombie's record after the fence was acknowledged")
	} else {
		t.Logf("zombie's record after the fence: %v", a.Err)
	}
	if err := zombie.CommitTxn(); err == nil {
		t.Error("the zombie committed after the fence")
	}
	if err := zombie.AbortTxn(); !errors.Is(err, ErrFenced) {
		t.Errorf("zombie's AbortTxn: got %v, want ErrFenced", err)
	}
	if err := zombie.BeginTxn(); err == nil {
		t.Error("the zombie began a transaction after the fence")
	}

	for i := range 2 {
		if err := fresh.BeginTxn(); err != nil {
			t.Fatalf("new producer: BeginTxn %d: %v", i, err)
		}
		send(t, fresh, &Record{Topic: topic, Key: []byte("k"), Value: fmt.Appendf(nil, "new-%d", i)})
		if err := fresh.CommitTxn(); err != nil {
			t.Fatalf("new producer: CommitTxn %d after the zombie's calls: %v", i, err)
		}
	}
	got := committedValues(t, c, topic)
	if want := []string{"new-0", "new-1"}; fmt.Sprint(got) != fmt.Sprint(want) {
		t.Errorf("read_committed sees %q, want %q", got, want)
	}
}

// TestFencedProducerFailsFastOnANewPartition fences a producer whose next
// record goes to a partition not yet in its transaction: AddPartitionsToTxn
// answers PRODUCER_FENCED, which sarama makes fatal but then retries the
// batch as if the connection were bad. The record must fail, and CommitTxn
// report ErrFenced, well within the connector's 10 s bound on a commit
// (rather than after the ~30 s of retries), so that the connector stops
// instead of timing out and restarting, which would fence the new producer
// in turn.
func TestFencedProducerFailsFastOnANewPartition(t *testing.T) {
	c := newCluster(t, kfake.SeedTopics(1, "a", "b"))
	zombie, zacks := openTxnWithARecord(t, c, "a")
	fresh := newProducer(t, c, func(c *Config) { c.TransactionalID = "tailbox-shop" })
	go func() {
		for range fresh.Acks() {
		}
	}()

	send(t, zombie, &Record{Topic: "b", Key: []byte("k"), Value: []byte("zombie-b")})
	commit := make(chan error, 1)
	go func() { commit <- zombie.CommitTxn() }()
	select {
	case err := <-commit:
		if !errors.Is(err, ErrFenced) {
			t.Errorf("zombie's CommitTxn: got %v, want ErrFenced", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("the fenced producer's CommitTxn did not return within 10s")
	}
	select {
	case a := <-zacks:
		if !IsFenced(a.Err) {
			t.Errorf("zombie's record for a new partition: ack error %v, want one IsFenced reports", a.Err)
		}
	case <-time.After(time.Second):
		t.Error("no ack for the zombie's record once CommitTxn returned")
	}
	if err := zombie.AbortTxn(); !errors.Is(err, ErrFenced) {
		t.Errorf("zombie's AbortTxn: got %v, want ErrFenced", err)
	}
	if err := fresh.BeginTxn(); err != nil {
		t.Fatal(err)
	}
	send(t, fresh, &Record{Topic: "b", Key: []byte("k"), Value: []byte("new")})
	if err := fresh.CommitTxn(); err != nil {
		t.Fatalf("new producer: CommitTxn after the zombie's calls: %v", err)
	}
	if got := committedValues(t, c, "b"); fmt.Sprint(got) != "[new]" {
		t.Errorf("read_committed sees %q in b, want [new]", got)
	}
}

// openTxnWithARecord starts a producer with transactional id
// "tailbox-shop", begins a transaction and has one record of it in topic
// acknowledged; the producer's later acks arrive on the channel.
func openTxnWithARecord(t *testing.T, c *kfake.Cluster, topic string) (*Producer, <-chan Ack) {
	t.Helper()
	p := newProducer(t, c, func(c *Config) { c.TransactionalID = "tailbox-shop" })
	acks := make(chan Ack, 16)
	go func() {
		for a := range p.Acks() {
			acks <- a
		}
	}()
	if err := p.BeginTxn(); err != nil {
		t.Fatal(err)
	}
	send(t, p, &Record{Topic: topic, Key: []byte("k"), Value: []byte("first")})
	if a := <-acks; a.Err != nil {
		t.Fatalf("first record of the transaction: %v", a.Err)
	}
	return p, acks
}
