package checkpoint

import (
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/tailbox-cdc/tailbox/pkg/binlog"
	"github.com/twmb/franz-go/pkg/kfake"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"
)

// newBroker starts a kfake broker (no automatic topic creation: the store
// must create its topic) and returns its address.
func newBroker(t testing.TB, opts ...kfake.Opt) (*kfake.Cluster, string) {
	t.Helper()
	c, err := kfake.NewCluster(append([]kfake.Opt{kfake.NumBrokers(1)}, opts...)...)
	if err != nil {
		t.Fatalf("start kfake: %v", err)
	}
	t.Cleanup(c.Close)
	return c, c.ListenAddrs()[0]
}

func openKafka(t testing.TB, addr, topic, name string) *Kafka {
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

func produceRaw(t testing.TB, addr, topic string, key string, value []byte) {
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

	if _, err := k.Load(context.Background()); !errors.Is(err, ErrNotFound) {
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
	got, err := k.Load(context.Background())
	if err != nil {
		t.Fatalf("Load: %v", err)
	}
	if got.Position != want.Position || got.Skip != want.Skip || got.NextTxn != want.NextTxn || got.Server != want.Server ||
		got.Version != Version || !got.UpdatedAt.Equal(want.UpdatedAt) {
		t.Errorf("Load = %+v, want %+v", got, want)
	}
	gotOther, err := otherStore.Load(context.Background())
	if err != nil || gotOther.Position != other.Position {
		t.Errorf("other connector's Load = %+v, %v; want position %v", gotOther, err, other.Position)
	}

	// A fresh store (a restarted process) reads the same.
	again := openKafka(t, addr, "", "shop-outbox")
	got2, err := again.Load(context.Background())
	if err != nil || got2.Position != want.Position {
		t.Errorf("Load from a new store = %+v, %v; want position %v", got2, err, want.Position)
	}
}

func TestKafkaStoreRejects(t *testing.T) {
	_, addr := newBroker(t)
	k := openKafka(t, addr, "cp", "shop-outbox")

	bad := sample()
	bad.Position = binlog.Position{}
	if err := k.Save(bad); !errors.Is(err, ErrInvalid) {
		t.Errorf("Save of a checkpoint without position: got %v, want ErrInvalid", err)
	}
	foreign := sample()
	foreign.Name = "other"
	if err := k.Save(foreign); !errors.Is(err, ErrInvalid) || !strings.Contains(err.Error(), `want "shop-outbox" (got "other")`) {
		t.Errorf("Save of another connector's checkpoint: got %v, want ErrInvalid naming both names", err)
	}
	if _, err := k.Load(context.Background()); !errors.Is(err, ErrNotFound) {
		t.Fatalf("rejected saves wrote something: Load = %v", err)
	}

	// A record that is not a checkpoint: corrupt, and Load leaves it.
	produceRaw(t, addr, "cp", "shop-outbox", []byte(`{"version":1,"name":"shop-outbox"`))
	if _, err := k.Load(context.Background()); !errors.Is(err, ErrCorrupt) {
		t.Errorf("Load of a truncated record: got %v, want ErrCorrupt", err)
	}
	produceRaw(t, addr, "cp", "shop-outbox", []byte(`{"version":7,"name":"shop-outbox"}`))
	if _, err := k.Load(context.Background()); !errors.Is(err, ErrCorrupt) || !strings.Contains(err.Error(), "got 7") {
		t.Errorf("Load of a version-7 record: got %v, want ErrCorrupt naming the version", err)
	}
	// A tombstone deletes the checkpoint.
	produceRaw(t, addr, "cp", "shop-outbox", nil)
	if _, err := k.Load(context.Background()); !errors.Is(err, ErrNotFound) {
		t.Errorf("Load after a tombstone: got %v, want ErrNotFound", err)
	}

	if err := k.Close(); err != nil {
		t.Fatalf("Close: %v", err)
	}
	if _, err := k.Load(context.Background()); !errors.Is(err, ErrClosed) {
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
	got, err := k2.Load(context.Background())
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
	if _, err := k.Load(context.Background()); !errors.Is(err, ErrNotFound) {
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

// txnProducer returns a franz-go transactional producer with id: another
// connector's exactly_once producer on the checkpoint topic.
func txnProducer(t testing.TB, addr, id string) *kgo.Client {
	t.Helper()
	cl, err := kgo.NewClient(kgo.SeedBrokers(addr), kgo.TransactionalID(id), kgo.TransactionTimeout(2*time.Minute))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(cl.Close)
	return cl
}

// checkpointAt returns a valid checkpoint of name at binlog position pos,
// encoded as a connector stores it.
func checkpointAt(t testing.TB, name string, pos uint32) (*Checkpoint, []byte) {
	t.Helper()
	cp := sample()
	cp.Name, cp.Position.Pos = name, pos
	cp.Version, cp.UpdatedAt = Version, time.Now().UTC()
	data, err := Encode(cp)
	if err != nil {
		t.Fatal(err)
	}
	return cp, data
}

// produceTxn produces records in one transaction of cl, which it leaves
// open, and returns the offset of the first one.
func produceTxn(t testing.TB, cl *kgo.Client, recs ...*kgo.Record) int64 {
	t.Helper()
	if err := cl.BeginTransaction(); err != nil {
		t.Fatal(err)
	}
	res := cl.ProduceSync(context.Background(), recs...)
	if err := res.FirstErr(); err != nil {
		t.Fatalf("produce in a transaction: %v", err)
	}
	return res[0].Record.Offset
}

func endTxn(t testing.TB, cl *kgo.Client, commit bool) {
	t.Helper()
	if err := cl.EndTransaction(context.Background(), kgo.TransactionEndTry(commit)); err != nil {
		t.Fatalf("end transaction (commit %v): %v", commit, err)
	}
}

// TestKafkaLoadWaitsForOpenTransaction: connectors share the checkpoint
// topic, and another producer holds a transaction open on it (a connector
// killed or stalled between appending its checkpoint record and
// committing). A restarting connector's Load never returns a record older
// than the latest committed one of its key: it waits for the transaction
// to end, and fails naming the offsets when it does not end in time. Under
// both deliveries: the connector's own checkpoint records come from Save
// (at_least_once) or a committed transaction (exactly_once).
func TestKafkaLoadWaitsForOpenTransaction(t *testing.T) {
	const topic, name = "cp", "shop-outbox"
	cases := []struct {
		name    string
		openKey string // the key of the open transaction's record
		earlier bool   // a checkpoint of name committed before the open transaction
		commit  bool   // how the open transaction ends
		want    uint32 // the position Load returns once it ended
	}{
		{"other key, commits", "billing-outbox", true, true, 2000},
		{"other key, aborts", "billing-outbox", true, false, 2000},
		{"other key, no earlier checkpoint", "billing-outbox", false, true, 2000},
		{"same key, commits", name, true, true, 3000},
		{"same key, aborts", name, true, false, 2000},
	}
	for _, delivery := range []string{"at_least_once", "exactly_once"} {
		for _, tc := range cases {
			t.Run(delivery+"/"+tc.name, func(t *testing.T) {
				c, addr := newBroker(t)
				w := openKafka(t, addr, topic, name)
				own := txnProducer(t, addr, "tailbox-"+name)
				save := func(pos uint32) {
					t.Helper()
					cp, data := checkpointAt(t, name, pos)
					if delivery == "at_least_once" {
						if err := w.Save(cp); err != nil {
							t.Fatalf("Save: %v", err)
						}
						return
					}
					produceTxn(t, own, &kgo.Record{Topic: topic, Key: []byte(name), Value: data})
					endTxn(t, own, true)
				}
				// Another connector's checkpoint, committed: shares the topic.
				_, billing := checkpointAt(t, "billing-outbox", 500)
				produceRaw(t, addr, topic, "billing-outbox", billing)
				if tc.earlier {
					save(1000)
				}
				open := txnProducer(t, addr, "tailbox-stalled")
				var lso int64
				if tc.openKey == name {
					save(2000)
					_, data := checkpointAt(t, name, 3000)
					lso = produceTxn(t, open, &kgo.Record{Topic: topic, Key: []byte(name), Value: data})
				} else {
					_, data := checkpointAt(t, tc.openKey, 600)
					lso = produceTxn(t, open, &kgo.Record{Topic: topic, Key: []byte(tc.openKey), Value: data})
					save(2000)
				}
				hwm := c.PartitionInfo(topic, 0).HighWatermark

				// The restarted connector: Load fails, naming the offsets.
				ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
				defer cancel()
				r, err := OpenKafka(ctx, KafkaOptions{Brokers: []string{addr}, Topic: topic, Name: name, Timeout: 15 * time.Second, TxnWait: time.Second})
				if err != nil {
					t.Fatal(err)
				}
				defer r.Close()
				got, err := r.Load(context.Background())
				wantMsg := fmt.Sprintf("topic %s partition 0: last stable offset %d is short of the high watermark %d after waiting 1s: another producer holds a transaction open", topic, lso, hwm)
				if !errors.Is(err, ErrOpenTransaction) || !strings.Contains(err.Error(), wantMsg) {
					t.Errorf("Load with a transaction open: got %+v, %v; want ErrOpenTransaction containing %q", got, err, wantMsg)
				}

				// A Load that runs while the transaction ends returns the
				// latest committed record.
				r2 := openKafka(t, addr, topic, name)
				type result struct {
					cp  *Checkpoint
					err error
				}
				done := make(chan result, 1)
				go func() {
					cp, err := r2.Load(context.Background())
					done <- result{cp, err}
				}()
				// Longer than one second: no quiet time ends a load while
				// a transaction holds records back.
				time.Sleep(1500 * time.Millisecond)
				select {
				case res := <-done:
					t.Fatalf("Load returned while the transaction was open: %+v, %v", res.cp, res.err)
				default:
				}
				endTxn(t, open, tc.commit)
				var res result
				select {
				case res = <-done:
				case <-time.After(20 * time.Second):
					t.Fatal("Load did not return after the transaction ended")
				}
				if res.err != nil || res.cp.Position.Pos != tc.want {
					t.Fatalf("Load after the transaction ended: got %+v, %v; want position %d", res.cp, res.err, tc.want)
				}
				// And so does a load after it, of a new store and of the same.
				for _, s := range []*Kafka{openKafka(t, addr, topic, name), r2} {
					if cp, err := s.Load(context.Background()); err != nil || cp.Position.Pos != tc.want {
						t.Errorf("Load after the transaction: got %+v, %v; want position %d", cp, err, tc.want)
					}
				}
			})
		}
	}
}

// produceOthers produces n records of other keys to topic.
func produceOthers(t testing.TB, addr, topic string, n int) {
	t.Helper()
	cl, err := kgo.NewClient(kgo.SeedBrokers(addr), kgo.ProducerLinger(0), kgo.MaxBufferedRecords(100000))
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	_, value := checkpointAt(t, "other-0", 1)
	const chunk = 10000
	for i := 0; i < n; i += chunk {
		recs := make([]*kgo.Record, 0, chunk)
		for j := i; j < min(n, i+chunk); j++ {
			recs = append(recs, &kgo.Record{Topic: topic, Key: []byte("other-" + strconv.Itoa(j%1000)), Value: value})
		}
		if err := cl.ProduceSync(context.Background(), recs...).FirstErr(); err != nil {
			t.Fatalf("produce %d records of other keys: %v", len(recs), err)
		}
	}
}

// TestKafkaLoadReadsBackAndAhead: Load reads back from the end until the
// key's latest record, and a later Load of the same store reads what came
// after it, including records another store of the same name saved, an
// aborted transaction whose records span many offsets, and a tombstone.
func TestKafkaLoadReadsBackAndAhead(t *testing.T) {
	const topic, name = "cp", "shop-outbox"
	_, addr := newBroker(t)
	k := openKafka(t, addr, topic, name)
	check := func(s *Kafka, want uint32) {
		t.Helper()
		cp, err := s.Load(context.Background())
		if err != nil || cp.Position.Pos != want {
			t.Fatalf("Load: got %+v, %v; want position %d", cp, err, want)
		}
	}
	produceOthers(t, addr, topic, 1000)
	cp, _ := checkpointAt(t, name, 1000)
	if err := k.Save(cp); err != nil {
		t.Fatal(err)
	}
	// Many windows back from the end.
	produceOthers(t, addr, topic, 5000)
	check(k, 1000)
	check(openKafka(t, addr, topic, name), 1000)

	// Another store of the name saves; the first reads only ahead.
	other := openKafka(t, addr, topic, name)
	cp, _ = checkpointAt(t, name, 2000)
	if err := other.Save(cp); err != nil {
		t.Fatal(err)
	}
	produceOthers(t, addr, topic, 3000)
	check(k, 2000)

	// An aborted transaction with the key at its start and end, other
	// records between: neither of its records counts.
	txn := txnProducer(t, addr, "tailbox-zombie")
	_, v1 := checkpointAt(t, name, 3000)
	produceTxn(t, txn, &kgo.Record{Topic: topic, Key: []byte(name), Value: v1})
	produceOthers(t, addr, topic, 2000)
	_, v2 := checkpointAt(t, name, 4000)
	if err := txn.ProduceSync(context.Background(), &kgo.Record{Topic: topic, Key: []byte(name), Value: v2}).FirstErr(); err != nil {
		t.Fatal(err)
	}
	endTxn(t, txn, false)
	check(k, 2000)
	check(openKafka(t, addr, topic, name), 2000)

	// A tombstone after the mark deletes the checkpoint.
	produceRaw(t, addr, topic, name, nil)
	for _, s := range []*Kafka{k, openKafka(t, addr, topic, name)} {
		if cp, err := s.Load(context.Background()); !errors.Is(err, ErrNotFound) {
			t.Errorf("Load after a tombstone: got %+v, %v; want ErrNotFound", cp, err)
		}
	}
}

// BenchmarkKafkaLoad measures the Load of a restarted connector (a new
// store) whose latest checkpoint record has TAILBOX_BENCH_OLDER (100000
// when unset) older records of other keys before it and 100 after it.
func BenchmarkKafkaLoad(b *testing.B) {
	const topic, name = "cp", "shop-outbox"
	older := 100000
	if v := os.Getenv("TAILBOX_BENCH_OLDER"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil {
			b.Fatalf("TAILBOX_BENCH_OLDER=%q: %v", v, err)
		}
		older = n
	}
	c, addr := newBroker(b)
	w := openKafka(b, addr, topic, name)
	produceOthers(b, addr, topic, older)
	cp, _ := checkpointAt(b, name, 1000)
	if err := w.Save(cp); err != nil {
		b.Fatal(err)
	}
	produceOthers(b, addr, topic, 100)
	b.Logf("%d records in the partition", c.PartitionInfo(topic, 0).HighWatermark)
	b.ResetTimer()
	for b.Loop() {
		b.StopTimer()
		k := openKafka(b, addr, topic, name)
		b.StartTimer()
		got, err := k.Load(context.Background())
		if err != nil || got.Position.Pos != 1000 {
			b.Fatalf("Load: got %+v, %v", got, err)
		}
		b.StopTimer()
		_ = k.Close()
		b.StartTimer()
	}
}

// TestKafkaLoadOutwaitsAStalledTransaction: a connector stalled with its
// transaction open; the coordinator aborts it at its transaction timeout,
// and a Load waiting meanwhile then returns the latest committed record.
func TestKafkaLoadOutwaitsAStalledTransaction(t *testing.T) {
	const topic, name = "cp", "shop-outbox"
	_, addr := newBroker(t)
	w := openKafka(t, addr, topic, name)
	cp, _ := checkpointAt(t, name, 1000)
	if err := w.Save(cp); err != nil {
		t.Fatal(err)
	}
	stalled, err := kgo.NewClient(kgo.SeedBrokers(addr), kgo.TransactionalID("tailbox-billing-outbox"), kgo.TransactionTimeout(2*time.Second))
	if err != nil {
		t.Fatal(err)
	}
	defer stalled.Close()
	_, data := checkpointAt(t, "billing-outbox", 600)
	produceTxn(t, stalled, &kgo.Record{Topic: topic, Key: []byte("billing-outbox"), Value: data})
	cp, _ = checkpointAt(t, name, 2000)
	if err := w.Save(cp); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	r, err := OpenKafka(ctx, KafkaOptions{Brokers: []string{addr}, Topic: topic, Name: name, Timeout: 15 * time.Second, TxnWait: 30 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	start := time.Now()
	got, err := r.Load(context.Background())
	if err != nil || got.Position.Pos != 2000 {
		t.Fatalf("Load while a stalled transaction expires: got %+v, %v; want position 2000", got, err)
	}
	t.Logf("Load returned after %v (transaction timeout 2s)", time.Since(start).Round(10*time.Millisecond))
}

// TestKafkaLoadEndsWithItsContext: while another producer's transaction
// holds the checkpoint topic's last stable offset back, Load waits (here up
// to a minute); a context cancelled before or during that wait ends it at
// once with the context's error, and the store loads normally afterwards.
func TestKafkaLoadEndsWithItsContext(t *testing.T) {
	const topic, name = "cp", "shop-outbox"
	_, addr := newBroker(t)
	w := openKafka(t, addr, topic, name)
	cp, _ := checkpointAt(t, name, 1000)
	if err := w.Save(cp); err != nil {
		t.Fatal(err)
	}
	open := txnProducer(t, addr, "tailbox-billing-outbox")
	_, data := checkpointAt(t, "billing-outbox", 600)
	produceTxn(t, open, &kgo.Record{Topic: topic, Key: []byte("billing-outbox"), Value: data})

	octx, ocancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer ocancel()
	r, err := OpenKafka(octx, KafkaOptions{Brokers: []string{addr}, Topic: topic, Name: name, Timeout: 15 * time.Second, TxnWait: time.Minute})
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	for _, tc := range []struct {
		name  string
		after time.Duration // when the context is cancelled; 0: before Load
	}{
		{"a context cancelled before Load", 0},
		{"a context cancelled while Load waits", 500 * time.Millisecond},
	} {
		t.Run(tc.name, func(t *testing.T) {
			ctx, cancel := context.WithCancel(context.Background())
			defer cancel()
			if tc.after == 0 {
				cancel()
			} else {
				time.AfterFunc(tc.after, cancel)
			}
			done := make(chan error, 1)
			go func() {
				got, err := r.Load(ctx)
				if err == nil {
					err = fmt.Errorf("no error, checkpoint %+v", got)
				}
				done <- err
			}()
			select {
			case err := <-done:
				if !errors.Is(err, context.Canceled) || errors.Is(err, ErrOpenTransaction) {
					t.Errorf("Load with a cancelled context: %v; want context.Canceled", err)
				}
			case <-time.After(20 * time.Second):
				t.Fatal("Load did not return within 20s of its context's cancellation (it waits up to 1 min for the open transaction)")
			}
		})
	}
	endTxn(t, open, false)
	if got, err := r.Load(context.Background()); err != nil || got.Position.Pos != 1000 {
		t.Errorf("Load after the transaction ended: got %+v, %v; want position 1000", got, err)
	}
}

// recreateTopic deletes topic and creates it again, empty, with one
// partition: offsets start at 0 again and the topic gets a new id.
func recreateTopic(t testing.TB, addr, topic string) {
	t.Helper()
	cl, err := kgo.NewClient(kgo.SeedBrokers(addr))
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	del := kmsg.NewPtrDeleteTopicsRequest()
	del.TopicNames = []string{topic}
	dt := kmsg.NewDeleteTopicsRequestTopic()
	dt.Topic = kmsg.StringPtr(topic)
	del.Topics = append(del.Topics, dt)
	dresp, err := del.RequestWith(ctx, cl)
	if err != nil {
		t.Fatalf("delete topic %s: %v", topic, err)
	}
	for _, r := range dresp.Topics {
		if r.ErrorCode != 0 {
			t.Fatalf("delete topic %s: error code %d", topic, r.ErrorCode)
		}
	}
	create := kmsg.NewPtrCreateTopicsRequest()
	ct := kmsg.NewCreateTopicsRequestTopic()
	ct.Topic, ct.NumPartitions, ct.ReplicationFactor = topic, 1, 1
	cc := kmsg.NewCreateTopicsRequestTopicConfig()
	cc.Name, cc.Value = "cleanup.policy", kmsg.StringPtr("compact")
	ct.Configs = append(ct.Configs, cc)
	create.Topics = append(create.Topics, ct)
	cresp, err := create.RequestWith(ctx, cl)
	if err != nil {
		t.Fatalf("create topic %s: %v", topic, err)
	}
	for _, r := range cresp.Topics {
		if r.ErrorCode != 0 {
			t.Fatalf("create topic %s: error code %d", topic, r.ErrorCode)
		}
	}
}

// TestKafkaLoadAfterTheTopicWasRecreated: a store remembers how far its
// loads read; once the checkpoint topic is deleted and created again, that
// mark belongs to the old topic, whatever the new one's offsets: a load
// reads the new topic whole, and never returns the old topic's record.
func TestKafkaLoadAfterTheTopicWasRecreated(t *testing.T) {
	const topic, name = "cp", "shop-outbox"
	cases := []struct {
		name   string
		before int    // records of other keys in the new topic before the key's
		key    bool   // the new topic holds a checkpoint of the key
		others int    // records of other keys after it
		want   uint32 // 0: ErrNotFound
	}{
		{"new topic as long as the old, without the key", 0, false, 30, 0},
		{"new topic shorter than the old, without the key", 0, false, 3, 0},
		{"the key's record below the old mark", 2, true, 30, 2000},
		{"the key's record above the old mark", 30, true, 2, 2000},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			_, addr := newBroker(t)
			k := openKafka(t, addr, topic, name)
			produceOthers(t, addr, topic, 10)
			cp, _ := checkpointAt(t, name, 1000)
			if err := k.Save(cp); err != nil {
				t.Fatal(err)
			}
			produceOthers(t, addr, topic, 10)
			if got, err := k.Load(context.Background()); err != nil || got.Position.Pos != 1000 {
				t.Fatalf("Load before the topic was recreated: got %+v, %v; want position 1000", got, err)
			}

			recreateTopic(t, addr, topic)
			produceOthers(t, addr, topic, tc.before)
			if tc.key {
				_, data := checkpointAt(t, name, 2000)
				produceRaw(t, addr, topic, name, data)
			}
			produceOthers(t, addr, topic, tc.others)
			got, err := k.Load(context.Background())
			switch {
			case tc.want == 0 && !errors.Is(err, ErrNotFound):
				t.Errorf("Load from the recreated topic: got %+v, %v; want ErrNotFound", got, err)
			case tc.want != 0 && (err != nil || got.Position.Pos != tc.want):
				t.Errorf("Load from the recreated topic: got %+v, %v; want position %d", got, err, tc.want)
			}
		})
	}
}
