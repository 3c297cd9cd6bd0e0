package checkpoint

import (
	"cmp"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"slices"
	"sync"
	"time"

	"github.com/IBM/sarama"

	"github.com/tailbox-cdc/tailbox/internal/retry"
)

// Store is where a connector keeps its checkpoint: a File (the default) or
// a Kafka topic. Both hold the same JSON and apply the same validity rules.
type Store interface {
	// Load returns the stored checkpoint, an error wrapping ErrNotFound
	// when there is none, or ErrCorrupt when it cannot be trusted. It
	// never modifies what is stored. When ctx ends first it returns
	// promptly with an error wrapping ctx's error.
	Load(ctx context.Context) (*Checkpoint, error)
	// Save replaces the stored checkpoint; it sets cp.Version and
	// cp.UpdatedAt and rejects an invalid cp with ErrInvalid.
	Save(cp *Checkpoint) error
	// Close releases the store; Load and Save then fail with ErrClosed.
	Close() error
	// String names the store in messages: the file's path, or
	// "kafka topic T key K".
	String() string
}

var (
	_ Store = (*File)(nil)
	_ Store = (*Kafka)(nil)
)

// String returns the checkpoint file's path.
func (f *File) String() string { return f.path }

// DefaultTopic is the checkpoint topic when KafkaOptions.Topic is empty.
const DefaultTopic = "tailbox.checkpoints"

// Bounds of the Kafka store's operations.
const (
	defaultKafkaTimeout = 30 * time.Second
	// DefaultTxnWait is KafkaOptions.TxnWait when zero: a tailbox
	// producer's transaction timeout (1 min), plus the 10 s between the
	// transaction coordinator's checks for expired transactions, plus a
	// margin. A transaction of a tailbox connector that stalled or died
	// ends within it, committed or aborted by the coordinator.
	DefaultTxnWait = 75 * time.Second
	// lsoPoll is how often Load asks again for the last stable offset
	// while another producer's transaction holds it back.
	lsoPoll = 100 * time.Millisecond
	// firstWindow is how many offsets below the end Load reads first;
	// each further window back is four times as large, so a load reads
	// about as many offsets as the partition holds after the key's
	// latest record, whatever the partition's history.
	firstWindow = 256
	// fetchBytes is the size of one fetch; the broker returns at least
	// one whole batch even when it is larger.
	fetchBytes = 4 << 20
)

// KafkaOptions configures a Kafka checkpoint store.
type KafkaOptions struct {
	// Brokers are the bootstrap brokers, host:port.
	Brokers []string
	// Config carries the connection settings (Version, ClientID, Net.TLS,
	// Net.SASL, timeouts); OpenKafka copies it and sets the producer and
	// consumer settings the store needs. nil means sarama's defaults with
	// Kafka 2.8.
	Config *sarama.Config
	// Topic is the compacted checkpoint topic; DefaultTopic when empty.
	// OpenKafka creates it (one partition, cleanup.policy=compact) when
	// it does not exist, and refuses a topic that is not compacted.
	Topic string
	// Name is the connector's name: the key of its checkpoint records.
	Name string
	// Timeout bounds opening, each Load and each Save; 30 s when zero.
	Timeout time.Duration
	// TxnWait is how long Load waits, before it reads, for another
	// producer's transaction open on the topic to end; DefaultTxnWait
	// when zero.
	TxnWait time.Duration
	// ReadOnly opens the store for Load only (offsets show, check): a
	// missing topic is not created, and Load then reports ErrNotFound.
	ReadOnly bool
}

// Kafka keeps the checkpoint as the latest record with key Name in a
// compacted topic, as Kafka Connect keeps source offsets: Save produces a
// record (acks=all, idempotent), Load reads the topic to its end and keeps
// the last record of the key. Its methods are safe for concurrent use.
//
// Unlike File, it takes no lock: two connectors with the same name and
// topic would overwrite each other's checkpoint. ha.enabled provides the
// exclusivity.
type Kafka struct {
	topic, name string
	timeout     time.Duration
	txnWait     time.Duration
	readOnly    bool
	missing     bool // ReadOnly and the topic does not exist

	mu       sync.Mutex
	client   sarama.Client
	producer sarama.SyncProducer // nil once closed
	// read remembers, per partition, how far earlier loads read and the
	// key's latest record below that: a later load reads only above it.
	read map[int32]readMark
}

// readMark is what a load learned of one partition: every committed record
// below end was read, and the key's latest one among them (if found) is at
// offset with value (nil for a tombstone) and ts. Compaction removes a
// record only when the same key has a newer one, so the mark stays true
// while the partition's log start is at or below offset, and only for the
// topic it was read from: topic is that topic's id (zero when the broker
// has no topic ids), which changes when the topic is deleted and created
// again under the same name.
type readMark struct {
	topic       sarama.Uuid
	end, offset int64
	found       bool
	value       []byte
	ts          time.Time
}

// OpenKafka connects to the brokers, makes sure the checkpoint topic exists
// and is compacted, and returns the store. It does not read the checkpoint.
// When no broker answers, one refuses the login or the cluster does not
// answer within o.Timeout, the error wraps ErrUnavailable.
func OpenKafka(ctx context.Context, o KafkaOptions) (*Kafka, error) {
	if o.Name == "" {
		return nil, errors.New("open kafka checkpoint store: empty name")
	}
	if o.Topic == "" {
		o.Topic = DefaultTopic
	}
	if o.Timeout <= 0 {
		o.Timeout = defaultKafkaTimeout
	}
	if o.TxnWait <= 0 {
		o.TxnWait = DefaultTxnWait
	}
	sc := sarama.NewConfig()
	if o.Config != nil {
		c := *o.Config
		sc = &c
	} else {
		sc.Version = sarama.V2_8_0_0
	}
	sc.Producer.RequiredAcks = sarama.WaitForAll
	sc.Producer.Idempotent = true
	sc.Producer.Transaction.ID = ""
	sc.Net.MaxOpenRequests = 1
	sc.Producer.Return.Successes = true
	sc.Producer.Return.Errors = true
	sc.Producer.Retry.Max = 10
	sc.Producer.Partitioner = sarama.NewHashPartitioner
	sc.Producer.Compression = sarama.CompressionNone
	sc.Producer.Flush = sarama.NewConfig().Producer.Flush
	sc.Producer.MaxMessageBytes = 1 << 20
	sc.Consumer.IsolationLevel = sarama.ReadCommitted
	// A client with no topic of its own yet must fetch all metadata
	// (sarama refuses an empty topic list otherwise).
	sc.Metadata.Full = true
	sc.Consumer.Return.Errors = true
	if err := sc.Validate(); err != nil {
		return nil, fmt.Errorf("open kafka checkpoint store: sarama rejected the configuration: %w", err)
	}

	k := &Kafka{topic: o.Topic, name: o.Name, timeout: o.Timeout, txnWait: o.TxnWait, readOnly: o.ReadOnly}
	type result struct {
		client   sarama.Client
		producer sarama.SyncProducer
		err      error
	}
	done := make(chan result, 1)
	go func() {
		var r result
		defer func() { done <- r }()
		if r.client, r.err = sarama.NewClient(o.Brokers, sc); r.err != nil {
			r.err = fmt.Errorf("connect to kafka %v: %w: %w", o.Brokers, ErrUnavailable, r.err)
			return
		}
		if o.ReadOnly {
			topics, err := r.client.Topics()
			if err != nil {
				_ = r.client.Close()
				r.err = fmt.Errorf("list topics: %w: %w", ErrUnavailable, err)
				return
			}
			k.missing = !slices.Contains(topics, o.Topic)
		} else if r.err = ensureTopic(r.client, o.Topic); r.err != nil {
			_ = r.client.Close()
			return
		}
		if r.producer, r.err = sarama.NewSyncProducerFromClient(r.client); r.err != nil {
			_ = r.client.Close()
			r.err = fmt.Errorf("start checkpoint producer: %w", r.err)
		}
	}()
	ctx, cancel := context.WithTimeout(ctx, o.Timeout)
	defer cancel()
	select {
	case r := <-done:
		if r.err != nil {
			return nil, fmt.Errorf("open kafka checkpoint store (topic %s): %w", o.Topic, r.err)
		}
		k.client, k.producer = r.client, r.producer
		return k, nil
	case <-ctx.Done():
		go func() {
			if r := <-done; r.err == nil {
				_ = r.producer.Close()
				_ = r.client.Close()
			}
		}()
		return nil, fmt.Errorf("open kafka checkpoint store (topic %s) on %v: %w: %w", o.Topic, o.Brokers, ErrUnavailable, ctx.Err())
	}
}

// ensureTopic creates topic (one partition, compacted) when it is missing
// and refuses it when it exists with another cleanup.policy: with "delete"
// the checkpoint would expire with the retention time.
func ensureTopic(client sarama.Client, topic string) error {
	admin, err := sarama.NewClusterAdminFromClient(client)
	if err != nil {
		return err
	}
	// Closing an admin made from a client closes the client: leave it.
	compact := "compact"
	err = admin.CreateTopic(topic, &sarama.TopicDetail{
		NumPartitions:     1,
		ReplicationFactor: -1,
		ConfigEntries:     map[string]*string{"cleanup.policy": &compact},
	}, false)
	var terr *sarama.TopicError
	switch {
	case err == nil:
		return nil
	case errors.As(err, &terr) && terr.Err == sarama.ErrTopicAlreadyExists, errors.Is(err, sarama.ErrTopicAlreadyExists):
	default:
		return fmt.Errorf("create topic %s: %w", topic, err)
	}
	entries, err := admin.DescribeConfig(sarama.ConfigResource{
		Type: sarama.TopicResource, Name: topic, ConfigNames: []string{"cleanup.policy"},
	})
	if err != nil {
		return fmt.Errorf("describe topic %s: %w", topic, err)
	}
	for _, e := range entries {
		if e.Name == "cleanup.policy" && e.Value != "compact" && e.Value != "compact,delete" && e.Value != "delete,compact" {
			return fmt.Errorf("topic %s has cleanup.policy=%s: the checkpoint topic must be compacted, or the checkpoint expires with the retention time (fix: kafka-configs.sh --alter --entity-type topics --entity-name %s --add-config cleanup.policy=compact)", topic, e.Value, topic)
		}
	}
	return nil
}

// String returns "kafka topic T key K".
func (k *Kafka) String() string { return "kafka topic " + k.topic + " key " + k.name }

// Load returns the checkpoint in the latest committed record with the
// store's key. It reads each partition of the topic (read_committed) up to
// its last stable offset, once that offset has reached the partition's end
// as of the start of the load: while another producer's transaction holds
// records below that end undecided, Load waits for it to commit or abort,
// and fails after the store's TxnWait rather than return a record that
// may be older than one in or after that transaction. It reads backwards
// from the end and stops at the key's latest record, and reads only above
// what an earlier Load of this store read, so its time does not grow with
// the topic's history.
//
// It returns an error wrapping ErrNotFound when the topic holds no record
// with the key or the latest one is a tombstone, ErrOpenTransaction when
// it gave up waiting, ErrCorrupt when the value is not a valid checkpoint
// of this name, and ctx's error when ctx ends first: the wait for an open
// transaction ends at once, a read between two requests to the broker.
func (k *Kafka) Load(ctx context.Context) (*Checkpoint, error) {
	k.mu.Lock()
	defer k.mu.Unlock()
	if k.producer == nil {
		return nil, fmt.Errorf("load checkpoint from %s: %w", k, ErrClosed)
	}
	if k.missing {
		return nil, fmt.Errorf("load checkpoint from %s: the topic does not exist: %w", k, ErrNotFound)
	}
	value, found, err := k.latest(ctx)
	if err != nil {
		return nil, fmt.Errorf("load checkpoint from %s: %w", k, err)
	}
	if !found || value == nil {
		return nil, fmt.Errorf("load checkpoint from %s: %w", k, ErrNotFound)
	}
	cp, err := decode(value)
	if err != nil {
		return nil, fmt.Errorf("load checkpoint from %s: %w", k, err)
	}
	if cp.Name != k.name {
		return nil, fmt.Errorf("load checkpoint from %s: %w: name: want %q (got %q)", k, ErrCorrupt, k.name, cp.Name)
	}
	return cp, nil
}

// latest returns the value of the newest committed record with the
// store's key.
func (k *Kafka) latest(ctx context.Context) (value []byte, found bool, err error) {
	if err := ctx.Err(); err != nil {
		return nil, false, err
	}
	if err := k.client.RefreshMetadata(k.topic); err != nil {
		return nil, false, fmt.Errorf("metadata: %w", err)
	}
	parts, err := k.client.Partitions(k.topic)
	if err != nil {
		return nil, false, err
	}
	waitUntil := time.Now().Add(k.txnWait)
	var newest time.Time
	for _, p := range parts {
		m, err := k.readPart(ctx, p, waitUntil)
		if err != nil {
			return nil, false, fmt.Errorf("partition %d: %w", p, err)
		}
		// A topic that gained partitions may hold the key in two of
		// them: the newer record wins.
		if m.found && (!found || m.ts.After(newest)) {
			value, found, newest = m.value, true, m.ts
		}
	}
	return value, found, nil
}

// readPart finds the key's latest committed record in partition p and
// remembers it for the next load.
// It waits until waitUntil for the records below the partition's end to be
// decided, and then reads for up to the store's timeout; it returns ctx's
// error when ctx ends first.
func (k *Kafka) readPart(ctx context.Context, p int32, waitUntil time.Time) (readMark, error) {
	broker, err := k.client.Leader(k.topic, p)
	if err != nil {
		return readMark{}, fmt.Errorf("leader: %w", err)
	}
	id, err := topicID(broker, k.client.Config().Version, k.topic)
	if err != nil {
		return readMark{}, fmt.Errorf("topic id: %w", err)
	}
	start, err := listOffset(broker, k.topic, p, sarama.OffsetOldest, sarama.ReadUncommitted)
	if err != nil {
		return readMark{}, fmt.Errorf("log start offset: %w", err)
	}
	hwm, err := listOffset(broker, k.topic, p, sarama.OffsetNewest, sarama.ReadUncommitted)
	if err != nil {
		return readMark{}, fmt.Errorf("high watermark: %w", err)
	}
	// Every record written before this load is below hwm; the load is
	// complete once all of them are decided (committed or aborted).
	end, err := listOffset(broker, k.topic, p, sarama.OffsetNewest, sarama.ReadCommitted)
	for err == nil && end < hwm {
		if !time.Now().Before(waitUntil) {
			return readMark{}, fmt.Errorf("%w: topic %s partition %d: last stable offset %d is short of the high watermark %d after waiting %s: another producer holds a transaction open on the topic, and a checkpoint read now could be older than one it holds back (it ends when that producer commits or aborts, or at its transaction timeout)",
				ErrOpenTransaction, k.topic, p, end, hwm, k.txnWait)
		}
		if !retry.Sleep(ctx, min(lsoPoll, time.Until(waitUntil))) {
			return readMark{}, fmt.Errorf("wait for the open transaction on topic %s partition %d to end (last stable offset %d, high watermark %d): %w", k.topic, p, end, hwm, ctx.Err())
		}
		end, err = listOffset(broker, k.topic, p, sarama.OffsetNewest, sarama.ReadCommitted)
	}
	if err != nil {
		return readMark{}, fmt.Errorf("last stable offset: %w", err)
	}

	deadline := time.Now().Add(k.timeout)
	floor := start
	prev, ok := k.read[p]
	if ok && (prev.topic != id || prev.end > end || (prev.found && prev.offset < start) || prev.end < start) {
		// The topic was deleted and created again (a new id, or offsets
		// that no longer reach the mark), or records were deleted below
		// the mark: it no longer holds.
		ok = false
	}
	if ok {
		floor = prev.end
	}
	m := readMark{topic: id, end: end}
	for hi, size := end, int64(firstWindow); hi > floor && !m.found; size *= 4 {
		lo := max(floor, hi-size)
		if m, err = k.scan(ctx, broker, p, lo, hi, deadline); err != nil {
			return readMark{}, err
		}
		m.topic, m.end = id, end
		hi = lo
	}
	if !m.found && ok {
		m = prev
		m.end = end
	}
	if k.read == nil {
		k.read = make(map[int32]readMark)
	}
	k.read[p] = m
	return m, nil
}

// scan reads the committed records of partition p with offsets from lo up
// to hi (exclusive) and returns the key's latest one among them; it
// returns ctx's error when ctx ends first.
func (k *Kafka) scan(ctx context.Context, broker *sarama.Broker, p int32, lo, hi int64, deadline time.Time) (readMark, error) {
	var m readMark
	maxBytes := int32(fetchBytes)
	for next := lo; next < hi; {
		if err := ctx.Err(); err != nil {
			return m, fmt.Errorf("read offsets %d to %d: %w", lo, hi, err)
		}
		if !time.Now().Before(deadline) {
			return m, fmt.Errorf("read offsets %d to %d: timed out after %s at offset %d", lo, hi, k.timeout, next)
		}
		req := &sarama.FetchRequest{Version: 4, MinBytes: 1, MaxWaitTime: 100, MaxBytes: maxBytes, Isolation: sarama.ReadCommitted}
		if k.client.Config().Version.IsAtLeast(sarama.V1_1_0_0) {
			req.Version, req.SessionID, req.SessionEpoch = 7, 0, -1
		}
		req.AddBlock(k.topic, p, next, maxBytes, -1)
		resp, err := broker.Fetch(req)
		if err != nil {
			_ = broker.Close()
			return m, fmt.Errorf("fetch from offset %d: %w", next, err)
		}
		block := resp.GetBlock(k.topic, p)
		if block == nil {
			return m, fmt.Errorf("fetch from offset %d: %w", next, sarama.ErrIncompleteResponse)
		}
		if !errors.Is(block.Err, sarama.ErrNoError) {
			return m, fmt.Errorf("fetch from offset %d: %w", next, block.Err)
		}
		// Producers whose records are aborted from here on: added at the
		// first offset of their aborted transaction, removed at its
		// abort marker.
		aborted := make(map[int64]bool)
		txns := slices.Clone(block.AbortedTransactions)
		slices.SortFunc(txns, func(a, b *sarama.AbortedTransaction) int { return cmp.Compare(a.FirstOffset, b.FirstOffset) })
		progressed := false
		for _, recs := range block.RecordsSet {
			b := recs.RecordBatch
			if b == nil {
				return m, fmt.Errorf("fetch from offset %d: the partition holds records in the message format of Kafka before 0.11, which the store does not read", next)
			}
			if b.PartialTrailingRecord {
				break
			}
			for len(txns) > 0 && txns[0].FirstOffset <= b.LastOffset() {
				aborted[txns[0].ProducerID] = true
				txns = txns[1:]
			}
			switch {
			case b.Control:
				if len(b.Records) > 0 && isAbortMarker(b.Records[0].Key) {
					delete(aborted, b.ProducerID)
				}
			case b.IsTransactional && aborted[b.ProducerID]:
			default:
				for _, r := range b.Records {
					off := b.FirstOffset + r.OffsetDelta
					if off < lo || off >= hi || string(r.Key) != k.name || (m.found && off < m.offset) {
						continue
					}
					ts := b.FirstTimestamp.Add(r.TimestampDelta)
					if b.LogAppendTime {
						ts = b.MaxTimestamp
					}
					m = readMark{offset: off, found: true, value: r.Value, ts: ts}
				}
			}
			if b.LastOffset() >= next {
				progressed, next = true, b.LastOffset()+1
			}
			if next >= hi {
				break
			}
		}
		if !progressed {
			if maxBytes >= 1<<30 {
				return m, fmt.Errorf("fetch from offset %d: no record batch returned below offset %d", next, hi)
			}
			// A batch larger than the fetch: ask for more.
			maxBytes *= 2
		}
	}
	return m, nil
}

// isAbortMarker reports whether a control record's key (version int16,
// type int16) marks the end of an aborted transaction (type 0).
func isAbortMarker(key []byte) bool {
	return len(key) >= 4 && binary.BigEndian.Uint16(key[2:4]) == 0
}

// topicID asks broker for topic's id (KIP-516); it is zero when the broker
// or the configured Kafka version predates topic ids.
func topicID(broker *sarama.Broker, version sarama.KafkaVersion, topic string) (sarama.Uuid, error) {
	req := sarama.NewMetadataRequest(version, []string{topic})
	if req.Version < 10 {
		return sarama.Uuid{}, nil
	}
	resp, err := broker.GetMetadata(req)
	if err != nil {
		_ = broker.Close()
		return sarama.Uuid{}, err
	}
	for _, t := range resp.Topics {
		if t.Name != topic {
			continue
		}
		if !errors.Is(t.Err, sarama.ErrNoError) {
			return sarama.Uuid{}, t.Err
		}
		return t.Uuid, nil
	}
	return sarama.Uuid{}, sarama.ErrIncompleteResponse
}

// listOffset asks broker, the leader of topic's partition p, for the
// offset at ts (sarama.OffsetOldest: the log start; sarama.OffsetNewest: the
// high watermark with ReadUncommitted, the last stable offset with
// ReadCommitted).
func listOffset(broker *sarama.Broker, topic string, p int32, ts int64, iso sarama.IsolationLevel) (int64, error) {
	req := &sarama.OffsetRequest{Version: 2, IsolationLevel: iso}
	req.AddBlock(topic, p, ts, 1)
	resp, err := broker.GetAvailableOffsets(req)
	if err != nil {
		_ = broker.Close()
		return 0, err
	}
	block := resp.GetBlock(topic, p)
	if block == nil {
		return 0, sarama.ErrIncompleteResponse
	}
	if !errors.Is(block.Err, sarama.ErrNoError) {
		return 0, block.Err
	}
	return block.Offset, nil
}

// Save sets cp.Version and cp.UpdatedAt and produces cp as the newest record
// of the store's key, waiting for all in-sync replicas. It returns an error
// wrapping ErrInvalid, without producing, when cp.Validate fails or cp is
// another connector's, and ErrClosed after Close.
func (k *Kafka) Save(cp *Checkpoint) error {
	k.mu.Lock()
	defer k.mu.Unlock()
	if k.producer == nil {
		return fmt.Errorf("save checkpoint to %s: %w", k, ErrClosed)
	}
	if k.readOnly {
		return fmt.Errorf("save checkpoint to %s: the store was opened read-only", k)
	}
	if cp == nil {
		return fmt.Errorf("save checkpoint to %s: %w: nil", k, ErrInvalid)
	}
	if err := cp.Validate(); err != nil {
		return fmt.Errorf("save checkpoint to %s: %w", k, err)
	}
	if cp.Name != k.name {
		return fmt.Errorf("save checkpoint to %s: %w: name: want %q (got %q)", k, ErrInvalid, k.name, cp.Name)
	}
	cp.Version = Version
	cp.UpdatedAt = time.Now().UTC()
	data, err := Encode(cp)
	if err != nil {
		return fmt.Errorf("save checkpoint to %s: %w", k, err)
	}
	_, _, err = k.producer.SendMessage(&sarama.ProducerMessage{
		Topic:     k.topic,
		Key:       sarama.StringEncoder(k.name),
		Value:     sarama.ByteEncoder(data),
		Timestamp: cp.UpdatedAt,
	})
	if err != nil {
		return fmt.Errorf("save checkpoint to %s at %s: %w", k, cp.Position, err)
	}
	return nil
}

// Close closes the producer and the client.
func (k *Kafka) Close() error {
	k.mu.Lock()
	defer k.mu.Unlock()
	if k.producer == nil {
		return nil
	}
	err := k.producer.Close()
	k.producer = nil
	if cerr := k.client.Close(); err == nil && !errors.Is(cerr, sarama.ErrClosedClient) {
		err = cerr
	}
	return err
}

// Encode renders cp as stored: indented JSON and a newline. The
// exactly-once producer uses it to write checkpoint records in its own
// transactions.
func Encode(cp *Checkpoint) ([]byte, error) { return encode(cp) }

// Decode parses a stored checkpoint strictly; errors wrap ErrCorrupt.
func Decode(data []byte) (*Checkpoint, error) { return decode(data) }
