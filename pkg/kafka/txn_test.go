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

	got := committedValues(t, c, topic)
	want := []string{"committed-0", "committed-1", "committed-2", "new-0"}
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
