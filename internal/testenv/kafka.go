package testenv

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kfake"
	"github.com/twmb/franz-go/pkg/kgo"
)

// KafkaPartitions is the partition count of topics a [Kafka] cluster creates
// on first use, unless a kfake.DefaultNumPartitions option overrides it.
const KafkaPartitions = 3

// consumeAllLimit bounds ConsumeAll when records never stop arriving.
const consumeAllLimit = 2 * time.Minute

// KafkaCluster is an in-process Kafka-protocol cluster (franz-go kfake) on
// 127.0.0.1. Get one from [Kafka].
type KafkaCluster struct {
	// Addrs are the brokers' host:port addresses, for seed brokers.
	Addrs []string
	// Cluster is the kfake cluster, for fault injection (ControlKey) and
	// inspection.
	Cluster *kfake.Cluster
	// ClientOpts are appended to the options of every client of Client,
	// Consume and ConsumeAll: kgo.DialTLSConfig and kgo.SASL for a cluster
	// started with kfake.TLS or kfake.EnableSASL. Nil means none.
	ClientOpts []kgo.Opt
}

// Kafka starts a cluster of one broker on a random port of 127.0.0.1 that
// creates topics on first use with [KafkaPartitions] partitions, and closes
// it at t's cleanup. opts come after these defaults and override them (e.g.
// kfake.NumBrokers(3), kfake.SeedTopics, kfake.BrokerConfigs).
func Kafka(t testing.TB, opts ...kfake.Opt) *KafkaCluster {
	t.Helper()
	all := append([]kfake.Opt{
		kfake.NumBrokers(1),
		kfake.AllowAutoTopicCreation(),
		kfake.DefaultNumPartitions(KafkaPartitions),
	}, opts...)
	c, err := kfake.NewCluster(all...)
	if err != nil {
		t.Fatalf("start kfake cluster: %v", err)
	}
	t.Cleanup(c.Close)
	return &KafkaCluster{Addrs: c.ListenAddrs(), Cluster: c}
}

// Client returns a kgo client seeded with k's brokers that, like sarama and
// the Java client, asks for topics to be created on first use; opts are
// appended. It is closed at t's cleanup: for producing test records or custom
// consumers.
func (k *KafkaCluster) Client(t testing.TB, opts ...kgo.Opt) *kgo.Client {
	t.Helper()
	return k.newClient(t, append([]kgo.Opt{kgo.AllowAutoTopicCreation()}, opts...)...)
}

// newClient returns a kgo client seeded with k's brokers, with opts
// appended, closed at t's cleanup.
func (k *KafkaCluster) newClient(t testing.TB, opts ...kgo.Opt) *kgo.Client {
	t.Helper()
	all := append([]kgo.Opt{
		kgo.SeedBrokers(k.Addrs...),
		// Find topics created after the client started within a poll or two.
		kgo.MetadataMinAge(50 * time.Millisecond),
		kgo.MetadataMaxAge(time.Second),
	}, append(append([]kgo.Opt(nil), k.ClientOpts...), opts...)...)
	cl, err := kgo.NewClient(all...)
	if err != nil {
		t.Fatalf("create kafka client for %v: %v", k.Addrs, err)
	}
	t.Cleanup(cl.Close)
	return cl
}

// consumer returns a client that reads topics from the beginning, with
// read_committed isolation (what a consumer of a transactional producer
// sees). It does not create topics: it waits for them.
func (k *KafkaCluster) consumer(t testing.TB, topics []string) *kgo.Client {
	t.Helper()
	return k.newClient(t,
		kgo.ConsumeTopics(topics...),
		kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()),
		kgo.FetchIsolationLevel(kgo.ReadCommitted()),
		kgo.FetchMaxWait(100*time.Millisecond),
	)
}

// Consume reads topics from the beginning until at least n records arrived
// and returns all records read, in arrival order (ordered within a
// partition). Topics that do not exist yet are waited for. When timeout
// passes first it fails t, listing the records it got.
func (k *KafkaCluster) Consume(t testing.TB, topics []string, n int, timeout time.Duration) []*kgo.Record {
	t.Helper()
	cl := k.consumer(t, topics)
	defer cl.Close()
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	var got []*kgo.Record
	for len(got) < n {
		recs, err := poll(ctx, cl)
		got = append(got, recs...)
		if err != nil {
			t.Fatalf("consume %v from %v: %v\ngot %d of %d records:\n%s", topics, k.Addrs, err, len(got), n, FormatRecords(got))
		}
		if ctx.Err() != nil && len(got) < n {
			t.Fatalf("consume %v: got %d of %d records within %v:\n%s", topics, len(got), n, timeout, FormatRecords(got))
		}
	}
	return got
}

// ConsumeAll reads topics from the beginning until no new record arrived for
// quiet, and returns every record read: to prove that nothing beyond the
// expected records arrived. It fails t if records keep arriving for two
// minutes.
func (k *KafkaCluster) ConsumeAll(t testing.TB, topics []string, quiet time.Duration) []*kgo.Record {
	t.Helper()
	cl := k.consumer(t, topics)
	defer cl.Close()
	deadline := time.Now().Add(consumeAllLimit)
	var got []*kgo.Record
	for {
		ctx, cancel := context.WithTimeout(context.Background(), quiet)
		recs, err := poll(ctx, cl)
		timedOut := ctx.Err() != nil
		cancel()
		got = append(got, recs...)
		if err != nil {
			t.Fatalf("consume %v from %v: %v\ngot %d records:\n%s", topics, k.Addrs, err, len(got), FormatRecords(got))
		}
		if timedOut && len(recs) == 0 {
			return got
		}
		if time.Now().After(deadline) {
			t.Fatalf("consume %v: records still arriving after %v (got %d)", topics, consumeAllLimit, len(got))
		}
	}
}

// poll returns the records of one PollFetches and the first fetch error
// other than the end of ctx.
func poll(ctx context.Context, cl *kgo.Client) ([]*kgo.Record, error) {
	fetches := cl.PollFetches(ctx)
	var errs []error
	for _, fe := range fetches.Errors() {
		if errors.Is(fe.Err, context.DeadlineExceeded) || errors.Is(fe.Err, context.Canceled) ||
			errors.Is(fe.Err, kgo.ErrClientClosed) {
			continue
		}
		errs = append(errs, fmt.Errorf("fetch %s[%d]: %w", fe.Topic, fe.Partition, fe.Err))
	}
	return fetches.Records(), errors.Join(errs...)
}

// FormatRecords renders records one per line as
// topic[partition]@offset key=... headers=... value=..., values cut to 300
// bytes: for failure messages.
func FormatRecords(recs []*kgo.Record) string {
	if len(recs) == 0 {
		return "  (none)"
	}
	var b strings.Builder
	for _, r := range recs {
		fmt.Fprintf(&b, "  %s[%d]@%d key=%q", r.Topic, r.Partition, r.Offset, r.Key)
		if len(r.Headers) > 0 {
			b.WriteString(" headers=")
			for i, h := range r.Headers {
				if i > 0 {
					b.WriteByte(',')
				}
				fmt.Fprintf(&b, "%s=%q", h.Key, h.Value)
			}
		}
		v := r.Value
		if len(v) > 300 {
			v = v[:300]
		}
		fmt.Fprintf(&b, " value=%q\n", v)
	}
	return strings.TrimRight(b.String(), "\n")
}
