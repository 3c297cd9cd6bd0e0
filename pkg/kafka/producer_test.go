package kafka

import (
	"bytes"
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"net"
	"runtime"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/IBM/sarama"
	"github.com/twmb/franz-go/pkg/kfake"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/tailbox-cdc/tailbox/internal/testenv"
)

// testTimeout bounds every wait; it is generous and never asserted on.
const testTimeout = 60 * time.Second

func newCluster(t *testing.T, opts ...kfake.Opt) *kfake.Cluster {
	t.Helper()
	c, err := kfake.NewCluster(append([]kfake.Opt{kfake.NumBrokers(1)}, opts...)...)
	if err != nil {
		t.Fatalf("start kfake: %v", err)
	}
	t.Cleanup(c.Close)
	return c
}

func newProducer(t *testing.T, c *kfake.Cluster, mutate func(*Config)) *Producer {
	t.Helper()
	cfg := Config{Brokers: c.ListenAddrs(), ClientID: "tailbox-test", DialTimeout: 5 * time.Second}
	if mutate != nil {
		mutate(&cfg)
	}
	ctx, cancel := context.WithTimeout(context.Background(), testTimeout)
	defer cancel()
	p, err := New(ctx, cfg)
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), testTimeout)
		defer cancel()
		go func() {
			for range p.Acks() {
			}
		}()
		_ = p.Close(ctx)
	})
	return p
}

// collect reads Acks until the channel is closed, in a goroutine; wait
// returns them.
func collect(p *Producer) (wait func(t *testing.T) []Ack) {
	done := make(chan []Ack, 1)
	go func() {
		var acks []Ack
		for a := range p.Acks() {
			acks = append(acks, a)
		}
		done <- acks
	}()
	return func(t *testing.T) []Ack {
		t.Helper()
		select {
		case acks := <-done:
			return acks
		case <-time.After(testTimeout):
			t.Fatal("Acks was not closed")
			return nil
		}
	}
}

func closeProducer(t *testing.T, p *Producer) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), testTimeout)
	defer cancel()
	if err := p.Close(ctx); err != nil {
		t.Fatalf("Close: %v", err)
	}
}

func send(t *testing.T, p *Producer, r *Record) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), testTimeout)
	defer cancel()
	if err := p.Send(ctx, r); err != nil {
		t.Fatalf("Send: %v", err)
	}
}

// consume reads n records of topic from the start with franz-go.
func consume(t *testing.T, c *kfake.Cluster, topic string, n int) []*kgo.Record {
	t.Helper()
	cl, err := kgo.NewClient(kgo.SeedBrokers(c.ListenAddrs()...), kgo.ConsumeTopics(topic),
		kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()))
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	ctx, cancel := context.WithTimeout(context.Background(), testTimeout)
	defer cancel()
	var recs []*kgo.Record
	for len(recs) < n {
		fs := cl.PollFetches(ctx)
		if err := ctx.Err(); err != nil {
			t.Fatalf("consumed %d of %d records from %s: %v", len(recs), n, topic, err)
		}
		fs.EachError(func(topic string, p int32, err error) { t.Fatalf("fetch %s/%d: %v", topic, p, err) })
		recs = append(recs, fs.Records()...)
	}
	if len(recs) != n {
		t.Fatalf("consumed %d records from %s, want %d", len(recs), topic, n)
	}
	return recs
}

func TestRecordsArriveWithKeyValueHeadersAndTimestamp(t *testing.T) {
	const topic = "arrive"
	c := newCluster(t, kfake.SeedTopics(3, topic))
	p := newProducer(t, c, func(c *Config) { c.Compression = "lz4" })
	wait := collect(p)

	ts := time.Date(2025, 3, 4, 5, 6, 7, 8_000_000, time.UTC)
	records := []*Record{
		{Topic: topic, Key: []byte("order-1"), Value: []byte(`{"a":1}`), Timestamp: ts, Meta: 1,
			Headers: []Header{{"id", []byte("e1")}, {"type", []byte("OrderCreated")}, {"empty", nil}}},
		{Topic: topic, Key: []byte("order-1"), Value: nil, Timestamp: ts, Meta: 2},               // tombstone
		{Topic: topic, Key: []byte{}, Value: []byte{}, Timestamp: ts, Meta: 3},                   // empty key and value
		{Topic: topic, Key: nil, Value: []byte("no key"), Timestamp: ts.Add(time.Hour), Meta: 4}, // NULL key
	}
	for _, r := range records {
		send(t, p, r)
	}
	closeProducer(t, p)
	acks := wait(t)
	if len(acks) != len(records) {
		t.Fatalf("got %d acks, want %d", len(acks), len(records))
	}
	byRecord := map[*Record]Ack{}
	for _, a := range acks {
		if a.Err != nil {
			t.Fatalf("ack of record %v: %v", a.Record.Meta, a.Err)
		}
		byRecord[a.Record] = a
	}

	got := consume(t, c, topic, len(records))
	for _, r := range records {
		a, ok := byRecord[r]
		if !ok {
			t.Fatalf("no ack for record %v", r.Meta)
		}
		var rec *kgo.Record
		for _, g := range got {
			if g.Partition == a.Partition && g.Offset == a.Offset {
				rec = g
			}
		}
		if rec == nil {
			t.Fatalf("record %v: nothing consumed at partition %d offset %d", r.Meta, a.Partition, a.Offset)
		}
		if (rec.Key == nil) != (r.Key == nil) || !bytes.Equal(rec.Key, r.Key) {
			t.Errorf("record %v: key %q (nil %v), want %q (nil %v)", r.Meta, rec.Key, rec.Key == nil, r.Key, r.Key == nil)
		}
		if (rec.Value == nil) != (r.Value == nil) || !bytes.Equal(rec.Value, r.Value) {
			t.Errorf("record %v: value %q (nil %v), want %q (nil %v)", r.Meta, rec.Value, rec.Value == nil, r.Value, r.Value == nil)
		}
		if !rec.Timestamp.Equal(r.Timestamp.Truncate(time.Millisecond)) {
			t.Errorf("record %v: timestamp %s, want %s", r.Meta, rec.Timestamp, r.Timestamp)
		}
		if len(rec.Headers) != len(r.Headers) {
			t.Fatalf("record %v: %d headers, want %d", r.Meta, len(rec.Headers), len(r.Headers))
		}
		for i, h := range r.Headers {
			if rec.Headers[i].Key != h.Key || !bytes.Equal(rec.Headers[i].Value, h.Value) {
				t.Errorf("record %v: header %d = %s=%q, want %s=%q", r.Meta, i, rec.Headers[i].Key, rec.Headers[i].Value, h.Key, h.Value)
			}
		}
		if r.Key != nil {
			if want := PartitionForKey(r.Key, 3); rec.Partition != want {
				t.Errorf("record %v: partition %d, want %d", r.Meta, rec.Partition, want)
			}
		}
	}
}

// Keys land where franz-go's Java-compatible partitioner puts them, and the
// records of each key keep their order.
func TestSameKeySamePartitionInOrder(t *testing.T) {
	const (
		topic, kgoTopic = "ordered", "ordered-by-kgo"
		partitions      = 8
		keys            = 50
		n               = 5000
	)
	c := newCluster(t, kfake.SeedTopics(partitions, topic, kgoTopic))
	p := newProducer(t, c, func(c *Config) { c.Linger = 2 * time.Millisecond })
	wait := collect(p)
	for i := range n {
		key := fmt.Sprintf("aggregate-%d", i%keys)
		send(t, p, &Record{Topic: topic, Key: []byte(key), Value: fmt.Appendf(nil, "%d", i), Meta: i})
	}
	closeProducer(t, p)
	acks := wait(t)
	if len(acks) != n {
		t.Fatalf("got %d acks, want %d", len(acks), n)
	}
	seen := make([]bool, n)
	for _, a := range acks {
		if a.Err != nil {
			t.Fatalf("ack %v: %v", a.Record.Meta, a.Err)
		}
		i := a.Record.Meta.(int)
		if seen[i] {
			t.Fatalf("record %d acknowledged twice", i)
		}
		seen[i] = true
	}

	// The same keys produced by franz-go with kgo.StickyKeyPartitioner(nil).
	cl, err := kgo.NewClient(kgo.SeedBrokers(c.ListenAddrs()...), kgo.RecordPartitioner(kgo.StickyKeyPartitioner(nil)))
	if err != nil {
		t.Fatal(err)
	}
	kgoPartition := map[string]int32{}
	ctx, cancel := context.WithTimeout(context.Background(), testTimeout)
	defer cancel()
	for k := range keys {
		key := fmt.Sprintf("aggregate-%d", k)
		r, err := cl.ProduceSync(ctx, &kgo.Record{Topic: kgoTopic, Key: []byte(key)}).First()
		if err != nil {
			t.Fatal(err)
		}
		kgoPartition[key] = r.Partition
	}
	cl.Close()

	partitionOf := map[string]int32{}
	last := map[string]int{}
	used := map[int32]bool{}
	for _, r := range consume(t, c, topic, n) { // in offset order within each partition
		key := string(r.Key)
		if want, ok := partitionOf[key]; ok && want != r.Partition {
			t.Fatalf("key %s in partitions %d and %d", key, want, r.Partition)
		}
		partitionOf[key] = r.Partition
		used[r.Partition] = true
		var i int
		fmt.Sscanf(string(r.Value), "%d", &i)
		if prev, ok := last[key]; ok && i <= prev {
			t.Fatalf("key %s: record %d after %d", key, i, prev)
		}
		last[key] = i
	}
	for key, got := range partitionOf {
		if got != kgoPartition[key] {
			t.Errorf("key %s: tailbox chose partition %d, franz-go %d", key, got, kgoPartition[key])
		}
	}
	if len(used) < 2 {
		t.Errorf("%d keys all landed in partitions %v", keys, used)
	}
}

func TestRecordTooLargeIsPermanent(t *testing.T) {
	const topic = "large"
	t.Run("a record over MaxMessageBytes fails without being sent", func(t *testing.T) {
		c := newCluster(t, kfake.SeedTopics(1, topic))
		p := newProducer(t, c, func(c *Config) { c.MaxMessageBytes = 1000 })
		wait := collect(p)
		big := &Record{Topic: topic, Key: []byte("k"), Value: bytes.Repeat([]byte("x"), 2000)}
		small := &Record{Topic: topic, Key: []byte("k"), Value: []byte("ok")}
		send(t, p, big)
		send(t, p, small)
		closeProducer(t, p)
		acks := wait(t)
		if len(acks) != 2 {
			t.Fatalf("got %d acks, want 2", len(acks))
		}
		for _, a := range acks {
			switch a.Record {
			case big:
				if a.Err == nil || !errors.Is(a.Err, ErrTooLarge) || !IsPermanent(a.Err) {
					t.Errorf("big record: err %v, want ErrTooLarge and permanent", a.Err)
				}
				if a.Partition != -1 || a.Offset != -1 {
					t.Errorf("big record: partition %d offset %d, want -1 -1", a.Partition, a.Offset)
				}
				t.Logf("Ack.Err: %v", a.Err)
				if !strings.Contains(a.Err.Error(), topic) {
					t.Errorf("error %q does not name the topic", a.Err)
				}
			case small:
				if a.Err != nil {
					t.Errorf("small record: %v", a.Err)
				}
			}
		}
	})
	t.Run("a record over the broker's limit fails with MESSAGE_TOO_LARGE", func(t *testing.T) {
		c := newCluster(t, kfake.SeedTopics(1, topic), kfake.BrokerConfigs(map[string]string{"message.max.bytes": "1000"}))
		p := newProducer(t, c, nil)
		wait := collect(p)
		send(t, p, &Record{Topic: topic, Key: []byte("k"), Value: bytes.Repeat([]byte("x"), 5000)})
		closeProducer(t, p)
		acks := wait(t)
		if len(acks) != 1 {
			t.Fatalf("got %d acks, want 1", len(acks))
		}
		err := acks[0].Err
		t.Logf("Ack.Err: %v", err)
		if !errors.Is(err, sarama.ErrMessageSizeTooLarge) || !errors.Is(err, ErrTooLarge) || !IsPermanent(err) {
			t.Errorf("err %v, want MESSAGE_TOO_LARGE, ErrTooLarge and permanent", err)
		}
	})
}

func TestExplicitPartition(t *testing.T) {
	const topic = "placed"
	c := newCluster(t, kfake.SeedTopics(3, topic))
	p := newProducer(t, c, nil)
	wait := collect(p)
	// The same key on every partition: the explicit partition wins.
	var placed []*Record
	for i := range 6 {
		r := &Record{Topic: topic, Key: []byte("one-key"), Value: fmt.Appendf(nil, "%d", i%3), ExplicitPartition: true, Partition: int32(i % 3)}
		placed = append(placed, r)
	}
	outside := &Record{Topic: topic, Key: []byte("one-key"), Value: []byte("outside"), ExplicitPartition: true, Partition: 3}
	if err := p.Fits(outside); !errors.Is(err, ErrInvalidPartition) {
		t.Errorf("Fits(partition 3 of 3) = %v, want ErrInvalidPartition", err)
	} else {
		t.Logf("Fits: %v", err)
	}
	if err := p.Fits(placed[2]); err != nil {
		t.Errorf("Fits(partition 2 of 3) = %v", err)
	}
	for _, r := range placed[:3] {
		send(t, p, r)
	}
	send(t, p, outside) // fails alone, without halting the producer
	for _, r := range placed[3:] {
		send(t, p, r)
	}
	closeProducer(t, p)
	acks := wait(t)
	if len(acks) != len(placed)+1 {
		t.Fatalf("got %d acks, want %d", len(acks), len(placed)+1)
	}
	for _, a := range acks {
		if a.Record == outside {
			if !errors.Is(a.Err, ErrInvalidPartition) || !IsPermanent(a.Err) || errors.Is(a.Err, ErrHalted) {
				t.Errorf("partition 3 of 3: Ack.Err %v, want ErrInvalidPartition, permanent", a.Err)
			}
			continue
		}
		if a.Err != nil || a.Partition != a.Record.Partition {
			t.Errorf("record for partition %d: acked on %d, err %v", a.Record.Partition, a.Partition, a.Err)
		}
	}
	for _, r := range consume(t, c, topic, len(placed)) {
		if want := fmt.Sprint(r.Partition); string(r.Value) != want {
			t.Errorf("record %q on partition %d", r.Value, r.Partition)
		}
	}
}

func TestIsPermanent(t *testing.T) {
	tests := []struct {
		name string
		err  error
		want bool
	}{
		{"nil is not permanent", nil, false},
		{"too large is permanent", fmt.Errorf("x: %w", ErrTooLarge), true},
		{"an invalid topic is permanent", fmt.Errorf("x: %w", sarama.ErrInvalidTopic), true},
		{"a denied topic is permanent", sarama.ErrTopicAuthorizationFailed, true},
		{"an invalid record is permanent", sarama.ErrInvalidRecord, true},
		{"an unknown topic may yet be created", sarama.ErrUnknownTopicOrPartition, false},
		{"a leader change is retriable", sarama.ErrNotLeaderForPartition, false},
		{"no brokers is retriable", sarama.ErrOutOfBrokers, false},
		{"a failed SASL login is not about the record", sarama.ErrSASLAuthenticationFailed, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := IsPermanent(tt.err); got != tt.want {
				t.Errorf("IsPermanent(%v) = %v, want %v", tt.err, got, tt.want)
			}
		})
	}
}

func TestEmptyTopicIsPermanent(t *testing.T) {
	c := newCluster(t)
	p := newProducer(t, c, nil)
	wait := collect(p)
	send(t, p, &Record{Topic: "", Key: []byte("k"), Value: []byte("v")})
	closeProducer(t, p)
	acks := wait(t)
	if len(acks) != 1 || acks[0].Err == nil || !IsPermanent(acks[0].Err) {
		t.Fatalf("acks %+v, want one permanent error", acks)
	}
	t.Logf("Ack.Err: %v", acks[0].Err)
}

func TestCloseDrainsEveryAck(t *testing.T) {
	const topic = "drain"
	c := newCluster(t, kfake.SeedTopics(4, topic))
	p := newProducer(t, c, nil)
	wait := collect(p)

	const n = 2000
	records := make([]*Record, n)
	var wg sync.WaitGroup
	for w := range 4 { // concurrent senders
		wg.Go(func() {
			for i := w; i < n; i += 4 {
				records[i] = &Record{Topic: topic, Key: fmt.Appendf(nil, "k%d", i%17), Value: []byte("v"), Meta: i}
				if err := p.Send(context.Background(), records[i]); err != nil {
					t.Errorf("Send %d: %v", i, err)
				}
			}
		})
	}
	wg.Wait()
	closeProducer(t, p)
	acks := wait(t)
	if len(acks) != n {
		t.Fatalf("got %d acks before Acks closed, want %d", len(acks), n)
	}
	got := map[*Record]bool{}
	for _, a := range acks {
		if a.Err != nil {
			t.Fatalf("ack %v: %v", a.Record.Meta, a.Err)
		}
		got[a.Record] = true
	}
	for i, r := range records {
		if !got[r] {
			t.Fatalf("record %d has no ack", i)
		}
	}
	if p.InFlight() != 0 {
		t.Errorf("InFlight() = %d after Close, want 0", p.InFlight())
	}

	t.Run("Send after Close fails with ErrClosed", func(t *testing.T) {
		err := p.Send(context.Background(), &Record{Topic: topic})
		if !errors.Is(err, ErrClosed) {
			t.Fatalf("Send after Close = %v, want ErrClosed", err)
		}
	})
	t.Run("Close is idempotent", func(t *testing.T) {
		closeProducer(t, p)
	})
}

func TestSendRejectsNilAndHonoursContext(t *testing.T) {
	c := newCluster(t, kfake.SeedTopics(1, "ctx"))
	p := newProducer(t, c, nil)
	if err := p.Send(context.Background(), nil); !errors.Is(err, ErrNilRecord) {
		t.Errorf("Send(nil) = %v, want ErrNilRecord", err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	// The input is unbuffered: with a cancelled context Send either hands
	// the record over or returns the context error, never blocks.
	for range 100 {
		err := p.Send(ctx, &Record{Topic: "ctx", Value: []byte("v")})
		if err != nil && !errors.Is(err, context.Canceled) {
			t.Fatalf("Send with a cancelled context = %v", err)
		}
	}
}

// Acks are not read: Send blocks on back-pressure until Close releases it.
func TestBlockedSendReturnsErrClosedOnClose(t *testing.T) {
	c := newCluster(t, kfake.SeedTopics(1, "full"))
	p := newProducer(t, c, nil)
	errc := make(chan error, 1)
	go func() {
		for {
			if err := p.Send(context.Background(), &Record{Topic: "full", Value: []byte("v")}); err != nil {
				errc <- err
				return
			}
		}
	}()
	// Wait until the producer is full (Acks buffer and sarama's buffers).
	deadline := time.Now().Add(testTimeout)
	for last := -1; ; {
		time.Sleep(200 * time.Millisecond)
		n := p.InFlight()
		if n == last && n > 0 {
			break
		}
		last = n
		if time.Now().After(deadline) {
			t.Fatal("producer never filled up")
		}
	}
	wait := collect(p) // Close needs Acks read to drain
	closeProducer(t, p)
	select {
	case err := <-errc:
		if !errors.Is(err, ErrClosed) {
			t.Fatalf("blocked Send = %v, want ErrClosed", err)
		}
	case <-time.After(testTimeout):
		t.Fatal("Send still blocked after Close")
	}
	for _, a := range wait(t) {
		if a.Err != nil {
			t.Fatalf("ack: %v", a.Err)
		}
	}
}

func TestCloseGivesUpWhenTheBrokerHangs(t *testing.T) {
	const topic = "hang"
	c := newCluster(t, kfake.SeedTopics(1, topic))
	p := newProducer(t, c, nil)
	release := make(chan struct{})
	defer close(release)
	c.ControlKey(int16(kmsg.Produce), func(kmsg.Request) (kmsg.Response, error, bool) {
		c.KeepControl()
		c.SleepControl(func() { <-release })
		return nil, nil, false
	})
	wait := collect(p)
	send(t, p, &Record{Topic: topic, Key: []byte("k"), Value: []byte("v")})
	ctx, cancel := context.WithTimeout(context.Background(), 200*time.Millisecond)
	defer cancel()
	err := p.Close(ctx)
	if !errors.Is(err, context.DeadlineExceeded) || !errors.Is(err, ErrAbandoned) || !strings.Contains(err.Error(), " 1 records abandoned") {
		t.Fatalf("Close = %v, want a deadline error wrapping ErrAbandoned that counts 1 record", err)
	}
	t.Logf("Close: %v", err)
	// Acks is closed once sarama has failed what it held; the record's
	// failure is reported.
	acks := wait(t)
	if len(acks) != 1 || !errors.Is(acks[0].Err, ErrAbandoned) || IsPermanent(acks[0].Err) {
		t.Fatalf("acks %+v, want one failure wrapping ErrAbandoned, not permanent", acks)
	}
	t.Logf("Ack.Err: %v", acks[0].Err)
	if err := p.Send(context.Background(), &Record{Topic: topic}); !errors.Is(err, ErrClosed) {
		t.Fatalf("Send after Close = %v, want ErrClosed", err)
	}
	t.Run("a later Close returns the same error", func(t *testing.T) {
		ctx, cancel := context.WithTimeout(context.Background(), testTimeout)
		defer cancel()
		if again := p.Close(ctx); again == nil || again.Error() != err.Error() {
			t.Fatalf("second Close = %v, want %v", again, err)
		}
	})
}

func TestNoGoroutineLeaksAfterClose(t *testing.T) {
	c := newCluster(t, kfake.SeedTopics(2, "leak"))
	run := func() {
		p := newProducer(t, c, nil)
		wait := collect(p)
		for i := range 100 {
			send(t, p, &Record{Topic: "leak", Key: fmt.Appendf(nil, "%d", i), Value: []byte("v")})
		}
		closeProducer(t, p)
		wait(t)
	}
	run() // warm up process-wide goroutines (go-metrics' meter arbiter)
	before := runtime.NumGoroutine()
	run()
	var after int
	for range 100 {
		if after = runtime.NumGoroutine(); after <= before {
			return
		}
		time.Sleep(50 * time.Millisecond)
	}
	buf := make([]byte, 1<<20)
	t.Fatalf("%d goroutines before, %d after Close:\n%s", before, after, buf[:runtime.Stack(buf, true)])
}

// closedAddr returns a loopback address nothing listens on.
func closedAddr(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close() // nothing listens there now
	return addr
}

func TestUnreachableBrokersFailFast(t *testing.T) {
	addr := closedAddr(t)
	ctx, cancel := context.WithTimeout(context.Background(), testTimeout)
	defer cancel()
	p, err := New(ctx, Config{Brokers: []string{addr}, DialTimeout: 2 * time.Second})
	if err == nil {
		p.Close(ctx)
		t.Fatal("New succeeded without a broker")
	}
	if !errors.Is(err, ErrUnreachable) {
		t.Fatalf("New = %v, want ErrUnreachable", err)
	}
	t.Logf("New: %v", err)
	if !strings.Contains(err.Error(), addr) {
		t.Errorf("error %q does not name the broker %s", err, addr)
	}
	if ctx.Err() != nil {
		t.Errorf("New took the whole test timeout")
	}
}

func TestOneReachableBrokerIsEnough(t *testing.T) {
	c := newCluster(t, kfake.SeedTopics(1, "seed"))
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	dead := ln.Addr().String()
	ln.Close()
	p := newProducer(t, c, func(cfg *Config) { cfg.Brokers = append([]string{dead}, cfg.Brokers...) })
	wait := collect(p)
	send(t, p, &Record{Topic: "seed", Value: []byte("v")})
	closeProducer(t, p)
	if acks := wait(t); len(acks) != 1 || acks[0].Err != nil {
		t.Fatalf("acks %+v", acks)
	}
}

func TestNewHonoursItsContext(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	_, err := New(ctx, Config{Brokers: []string{"127.0.0.1:9"}})
	if !errors.Is(err, context.Canceled) {
		t.Fatalf("New with a cancelled context = %v", err)
	}
	if _, err := New(context.Background(), Config{}); !errors.Is(err, ErrInvalidConfig) {
		t.Fatalf("New with an empty config = %v, want ErrInvalidConfig", err)
	}
}

func TestSASL(t *testing.T) {
	for _, mech := range []string{SASLPlain, SASLScramSHA256, SASLScramSHA512} {
		t.Run(mech+" authenticates", func(t *testing.T) {
			c := newCluster(t, kfake.EnableSASL(), kfake.Superuser(mech, "cdc", "s3cret"), kfake.SeedTopics(1, "sasl"))
			p := newProducer(t, c, func(cfg *Config) { cfg.SASL = SASL{Mechanism: mech, User: "cdc", Password: "s3cret"} })
			wait := collect(p)
			send(t, p, &Record{Topic: "sasl", Value: []byte("v")})
			closeProducer(t, p)
			if acks := wait(t); len(acks) != 1 || acks[0].Err != nil {
				t.Fatalf("acks %+v", acks)
			}
		})
	}
	for _, mech := range []string{SASLPlain, SASLScramSHA256, SASLScramSHA512} {
		t.Run("a wrong "+mech+" password fails New with ErrAuthentication naming mechanism and user", func(t *testing.T) {
			c := newCluster(t, kfake.EnableSASL(), kfake.Superuser(mech, "cdc", "s3cret"))
			ctx, cancel := context.WithTimeout(context.Background(), testTimeout)
			defer cancel()
			p, err := New(ctx, Config{Brokers: c.ListenAddrs(), SASL: SASL{Mechanism: mech, User: "cdc", Password: "wrong-pw"}})
			if err == nil {
				p.Close(ctx)
				t.Fatal("New succeeded with a wrong password")
			}
			t.Logf("New: %v", err)
			if !errors.Is(err, ErrAuthentication) || errors.Is(err, ErrUnreachable) {
				t.Fatalf("New = %v, want ErrAuthentication", err)
			}
			for _, want := range []string{"mechanism " + mech, `user "cdc"`, c.ListenAddrs()[0]} {
				if !strings.Contains(err.Error(), want) {
					t.Errorf("error does not contain %q", want)
				}
			}
			if strings.Contains(err.Error(), "wrong-pw") {
				t.Errorf("error shows the password")
			}
		})
	}
	t.Run("an unknown user fails New with ErrAuthentication", func(t *testing.T) {
		c := newCluster(t, kfake.EnableSASL(), kfake.Superuser(SASLScramSHA512, "cdc", "s3cret"))
		ctx, cancel := context.WithTimeout(context.Background(), testTimeout)
		defer cancel()
		_, err := New(ctx, Config{Brokers: c.ListenAddrs(), SASL: SASL{Mechanism: SASLScramSHA512, User: "nobody", Password: "s3cret"}})
		if !errors.Is(err, ErrAuthentication) || !strings.Contains(err.Error(), `user "nobody"`) {
			t.Fatalf("New = %v, want ErrAuthentication naming user nobody", err)
		}
	})
	t.Run("SASL against a broker without SASL fails New", func(t *testing.T) {
		c := newCluster(t)
		ctx, cancel := context.WithTimeout(context.Background(), testTimeout)
		defer cancel()
		p, err := New(ctx, Config{Brokers: c.ListenAddrs(), SASL: SASL{Mechanism: SASLPlain, User: "cdc", Password: "s3cret"}})
		if err == nil {
			p.Close(ctx)
			t.Fatal("New succeeded against a broker without SASL users")
		}
		t.Logf("New: %v", err) // kfake closes the connection: reported as a refused login
	})
}

// TestDiagnose checks the explanation given to clients whose own error
// says only that sarama ran out of brokers.
func TestDiagnose(t *testing.T) {
	c := newCluster(t, kfake.EnableSASL(), kfake.Superuser(SASLScramSHA256, "cdc", "s3cret"))
	ctx, cancel := context.WithTimeout(context.Background(), testTimeout)
	defer cancel()
	good := Config{Brokers: c.ListenAddrs(), SASL: SASL{Mechanism: SASLScramSHA256, User: "cdc", Password: "s3cret"}}
	if err := Diagnose(ctx, good); err != nil {
		t.Errorf("Diagnose with the right password = %v, want nil", err)
	}
	bad := good
	bad.SASL.Password = "wrong-pw"
	if err := Diagnose(ctx, bad); !errors.Is(err, ErrAuthentication) || !strings.Contains(err.Error(), `user "cdc"`) {
		t.Errorf("Diagnose with a wrong password = %v, want ErrAuthentication naming the user", err)
	}
	down := Config{Brokers: []string{closedAddr(t)}, DialTimeout: time.Second}
	if err := Diagnose(ctx, down); !errors.Is(err, ErrUnreachable) {
		t.Errorf("Diagnose of a closed port = %v, want ErrUnreachable", err)
	}
}

func TestEveryAcksLevelProduces(t *testing.T) {
	for _, acks := range []Acks{AcksAll, AcksLeader, AcksNone} {
		t.Run("acks="+acks.String()+" produces", func(t *testing.T) {
			c := newCluster(t, kfake.SeedTopics(2, "acks"))
			p := newProducer(t, c, func(cfg *Config) { cfg.Acks = acks })
			wait := collect(p)
			for i := range 10 {
				send(t, p, &Record{Topic: "acks", Key: fmt.Appendf(nil, "%d", i), Value: []byte("v")})
			}
			closeProducer(t, p)
			acked := wait(t)
			if len(acked) != 10 {
				t.Fatalf("got %d acks, want 10", len(acked))
			}
			for _, a := range acked {
				if a.Err != nil {
					t.Fatal(a.Err)
				}
			}
			consume(t, c, "acks", 10)
		})
	}
}

func TestTLS(t *testing.T) {
	ca := testenv.NewCA(t, "kafka CA")
	server := ca.Server(t, "broker", "127.0.0.1")
	client := ca.Client(t, "tailbox")
	c := newCluster(t, kfake.TLS(&tls.Config{
		Certificates: []tls.Certificate{server.TLSCertificate(t)},
		ClientAuth:   tls.RequireAndVerifyClientCert,
		ClientCAs:    ca.Pool(),
		MinVersion:   tls.VersionTLS12,
	}), kfake.SeedTopics(1, "tls"))

	t.Run("a client certificate of the broker's CA produces", func(t *testing.T) {
		p := newProducer(t, c, func(cfg *Config) {
			cfg.TLS = &tls.Config{RootCAs: ca.Pool(), Certificates: []tls.Certificate{client.TLSCertificate(t)}}
		})
		wait := collect(p)
		send(t, p, &Record{Topic: "tls", Value: []byte("v")})
		closeProducer(t, p)
		if acks := wait(t); len(acks) != 1 || acks[0].Err != nil {
			t.Fatalf("acks %+v", acks)
		}
	})
	for _, tc := range []struct {
		name string
		tls  *tls.Config
		want string
	}{
		{"a broker certificate of another CA fails New naming kafka.tls",
			&tls.Config{RootCAs: testenv.NewCA(t, "other CA").Pool(), Certificates: []tls.Certificate{client.TLSCertificate(t)}},
			"(kafka.tls): tls: failed to verify certificate: x509: certificate signed by unknown authority"},
		{"no client certificate fails New",
			&tls.Config{RootCAs: ca.Pool()},
			"certificate required"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			ctx, cancel := context.WithTimeout(context.Background(), testTimeout)
			defer cancel()
			p, err := New(ctx, Config{Brokers: c.ListenAddrs(), TLS: tc.tls, DialTimeout: 5 * time.Second})
			if err == nil {
				p.Close(ctx)
				t.Fatal("New succeeded")
			}
			t.Logf("New: %v", err)
			if errors.Is(err, ErrUnreachable) || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("New = %v, want an error containing %q", err, tc.want)
			}
		})
	}
}
