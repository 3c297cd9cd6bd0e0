package checkpoint

import (
	"context"
	"errors"
	"net"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kfake"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"
)

// newBroker starts a kfake broker (no automatic topic creation: the store
// must create its topic) and returns its address.
func newBroker(t *testing.T, opts ...kfake.Opt) (*kfake.Cluster, string) {
	t.Helper()
	c, err := kfake.NewCluster(append([]kfake.Opt{kfake.NumBrokers(1)}, opts...)...)
	if err != nil {
		t.Fatalf("start kfake: %v", err)
	}
	t.Cleanup(c.Close)
	return c, c.ListenAddrs()[0]
}

func openKafka(t *testing.T, addr, topic, name string) *Kafka {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	k, err := OpenKafka(ctx, KafkaOptions{Brokers: []string{addr}, Topic: topic, Name: name, Timeout: 15 * time.Second})
	if err != nil {
		t.Fatalf("OpenKafka: %v", err)
	}
	t.Cleanup(func() { _ = k.Close() })
	return k
}

func produceRaw(t *testing.T, addr, topic string, key string, value []byte) {
	t.Helper()
	cl, err := kgo.NewClient(kgo.SeedBrokers(addr))
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	r := &kgo.Record{Topic: topic, Key: []byte(key), Value: value}
	if err := cl.ProduceSync(context.Background(), r).FirstErr(); err != nil {
		t.Fatalf("produce to %s: %v", topic, err)
	}
}

func TestKafkaStoreRoundTrip(t *testing.T) {
	_, addr := newBroker(t)
	k := openKafka(t, addr, "", "shop-outbox")
	if got := k.String(); got != "kafka topic tailbox.checkpoints key shop-outbox" {
		t.Errorf("String() = %q", got)
	}

	if _, err := k.Load(); !errors.Is(err, ErrNotFound) {
		t.Fatalf("Load on a new topic: got %v, want ErrNotFound", err)
	}

	// The topic was created with one partition and compaction.
	cl, err := kgo.NewClient(kgo.SeedBrokers(addr))
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	req := kmsg.NewPtrDescribeConfigsRequest()
	res := kmsg.NewDescribeConfigsRequestResource()
	res.ResourceType = kmsg.ConfigResourceTypeTopic
	res.ResourceName = DefaultTopic
	req.Resources = append(req.Resources, res)
	resp, err := req.RequestWith(context.Background(), cl)
	if err != nil {
		t.Fatal(err)
	}
	policy := ""
	for _, r := range resp.Resources {
		for _, cfg := range r.Configs {
			if cfg.Name == "cleanup.policy" && cfg.Value != nil {
				policy = *cfg.Value
			}
		}
	}
	if policy != "compact" {
		t.Errorf("cleanup.policy of %s = %q, want compact", DefaultTopic, policy)
	}

	// Other connectors' records share the topic without interfering.
	other := sample()
	other.Name = "billing-outbox"
	otherStore := openKafka(t, addr, "", "billing-outbox")
	if err := otherStore.Save(other); err != nil {
		t.Fatalf("Save other: %v", err)
	}

	var want *Checkpoint
	for i := range 3 {
		cp := sample()
		cp.Position.Pos = uint32(1000 + i)
		if err := k.Save(cp); err != nil {
			t.Fatalf("Save %d: %v", i, err)
		}
		want = cp
	}
	got, err := k.Load()
	if err != nil {
		t.Fatalf("Load: %v", err)
	}
	if got.Position != want.Position || got.Skip != want.Skip || got.NextTxn != want.NextTxn || got.Server != want.Server ||
		got.Version != Version || !got.UpdatedAt.Equal(want.UpdatedAt) {
		t.Errorf("Load = %+v, want %+v", got, want)
	}
	gotOther, err := otherStore.Load()
	if err != nil || gotOther.Position != other.Position {
		t.Errorf("other connector's Load = %+v, %v; want position %v", gotOther, err, other.Position)
	}

	// A fresh store (a restarted process) reads the same.
	again := openKafka(t, addr, "", "shop-outbox")
	got2, err := again.Load()
	if err != nil || got2.Position != want.Position {
		t.Errorf("Load from a new store = %+v, %v; want position %v", got2, err, want.Position)
	}
}

func TestKafkaStoreRejects(t *testing.T) {
	_, addr := newBroker(t)
	k := openKafka(t, addr, "cp", "shop-outbox")

	bad := sample()
	bad.Position = Position{}
	if err := k.Save(bad); !errors.Is(err, ErrInvalid) {
		t.Errorf("Save of a checkpoint without position: got %v, want ErrInvalid", err)
	}
	foreign := sample()
	foreign.Name = "other"
	if err := k.Save(foreign); !errors.Is(err, ErrInvalid) || !strings.Contains(err.Error(), `want "shop-outbox" (got "other")`) {
		t.Errorf("Save of another connector's checkpoint: got %v, want ErrInvalid naming both names", err)
	}
	if _, err := k.Load(); !errors.Is(err, ErrNotFound) {
		t.Fatalf("rejected saves wrote something: Load = %v", err)
	}

	// A record that is not a checkpoint: corrupt, and Load leaves it.
	produceRaw(t, addr, "cp", "shop-outbox", []byte(`{"version":1,"name":"shop-outbox"`))
	if _, err := k.Load(); !errors.Is(err, ErrCorrupt) {
		t.Errorf("Load of a truncated record: got %v, want ErrCorrupt", err)
	}
	produceRaw(t, addr, "cp", "shop-outbox", []byte(`{"version":7,"name":"shop-outbox"}`))
	if _, err := k.Load(); !errors.Is(err, ErrCorrupt) || !strings.Contains(err.Error(), "got 7") {
		t.Errorf("Load of a version-7 record: got %v, want ErrCorrupt naming the version", err)
	}
	// A tombstone deletes the checkpoint.
	produceRaw(t, addr, "cp", "shop-outbox", nil)
	if _, err := k.Load(); !errors.Is(err, ErrNotFound) {
		t.Errorf("Load after a tombstone: got %v, want ErrNotFound", err)
	}

	if err := k.Close(); err != nil {
		t.Fatalf("Close: %v", err)
	}
	if _, err := k.Load(); !errors.Is(err, ErrClosed) {
		t.Errorf("Load after Close: got %v, want ErrClosed", err)
	}
	if err := k.Save(sample()); !errors.Is(err, ErrClosed) {
		t.Errorf("Save after Close: got %v, want ErrClosed", err)
	}
}

func TestKafkaStoreRefusesDeleteTopic(t *testing.T) {
	c, addr := newBroker(t)
	if err := c.CreateTopic("plain", 1, map[string]string{"cleanup.policy": "delete"}); err != nil {
		t.Fatal(err)
	}
	_, err := OpenKafka(context.Background(), KafkaOptions{Brokers: []string{addr}, Topic: "plain", Name: "x", Timeout: 15 * time.Second})
	if err == nil || !strings.Contains(err.Error(), "cleanup.policy=delete") || !strings.Contains(err.Error(), "must be compacted") {
		t.Fatalf("OpenKafka on a delete-policy topic: got %v, want a refusal naming cleanup.policy", err)
	}
}

func TestKafkaStoreUnreachable(t *testing.T) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := l.Addr().String()
	l.Close()
	_, err = OpenKafka(context.Background(), KafkaOptions{Brokers: []string{addr}, Name: "x", Timeout: 5 * time.Second})
	if err == nil || !strings.Contains(err.Error(), addr) {
		t.Fatalf("OpenKafka on a closed port: got %v, want an error naming %s", err, addr)
	}
}

// TestKafkaStoreSurvivesBrokerRestart: the checkpoint is in the broker's
// log, so it is there after the broker restarts from its data directory.
func TestKafkaStoreSurvivesBrokerRestart(t *testing.T) {
	dir := t.TempDir()
	c1, err := kfake.NewCluster(kfake.NumBrokers(1), kfake.DataDir(dir), kfake.SyncWrites())
	if err != nil {
		t.Fatal(err)
	}
	addr := c1.ListenAddrs()[0]
	_, portStr, _ := net.SplitHostPort(addr)
	k, err := OpenKafka(context.Background(), KafkaOptions{Brokers: []string{addr}, Name: "shop-outbox", Timeout: 15 * time.Second})
	if err != nil {
		c1.Close()
		t.Fatal(err)
	}
	want := sample()
	if err := k.Save(want); err != nil {
		c1.Close()
		t.Fatal(err)
	}
	_ = k.Close()
	c1.Close()

	port, err := strconv.Atoi(portStr)
	if err != nil {
		t.Fatal(err)
	}
	c2, err := kfake.NewCluster(kfake.NumBrokers(1), kfake.DataDir(dir), kfake.Ports(port))
	if err != nil {
		t.Fatalf("restart kfake on port %d: %v", port, err)
	}
	defer c2.Close()
	k2 := openKafka(t, c2.ListenAddrs()[0], "", "shop-outbox")
	got, err := k2.Load()
	if err != nil {
		t.Fatalf("Load after broker restart: %v", err)
	}
	if got.Position != want.Position || got.Skip != want.Skip {
		t.Errorf("Load after broker restart = %+v, want position %v skip %d", got, want.Position, want.Skip)
	}
}

func TestKafkaStoreReadOnlyCreatesNothing(t *testing.T) {
	_, addr := newBroker(t)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	k, err := OpenKafka(ctx, KafkaOptions{Brokers: []string{addr}, Name: "shop-outbox", ReadOnly: true, Timeout: 15 * time.Second})
	if err != nil {
		t.Fatalf("OpenKafka read-only: %v", err)
	}
	defer k.Close()
	if _, err := k.Load(); !errors.Is(err, ErrNotFound) {
		t.Errorf("Load without the topic: got %v, want ErrNotFound", err)
	}
	if err := k.Save(sample()); err == nil {
		t.Error("Save on a read-only store succeeded")
	}
	cl, err := kgo.NewClient(kgo.SeedBrokers(addr))
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	md, err := kmsg.NewPtrMetadataRequest().RequestWith(ctx, cl)
	if err != nil {
		t.Fatal(err)
	}
	for _, tp := range md.Topics {
		if tp.Topic != nil && *tp.Topic == DefaultTopic {
			t.Errorf("a read-only store created %s", DefaultTopic)
		}
	}
}
