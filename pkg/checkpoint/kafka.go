package checkpoint

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"sync"
	"time"

	"github.com/IBM/sarama"
)

// Store is where a connector keeps its checkpoint: a File (the default) or
// a Kafka topic. Both hold the same JSON and apply the same validity rules.
type Store interface {
	// Load returns the stored checkpoint, an error wrapping ErrNotFound
	// when there is none, or ErrCorrupt when it cannot be trusted. It
	// never modifies what is stored.
	Load() (*Checkpoint, error)
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
	// loadIdle is how long Load waits for more records before it takes
	// the partition as read: the offsets at the end of a partition may be
	// transaction markers, which are never delivered.
	loadIdle = time.Second
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
	readOnly    bool
	missing     bool // ReadOnly and the topic does not exist

	mu       sync.Mutex
	client   sarama.Client
	producer sarama.SyncProducer // nil once closed
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

	k := &Kafka{topic: o.Topic, name: o.Name, timeout: o.Timeout, readOnly: o.ReadOnly}
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

// Load reads every partition of the topic from its oldest to its newest
// offset (read_committed) and returns the last record with the store's key.
// It returns an error wrapping ErrNotFound when there is none or the last
// one is a tombstone, and ErrCorrupt when its value is not a valid
// checkpoint of this name.
func (k *Kafka) Load() (*Checkpoint, error) {
	k.mu.Lock()
	defer k.mu.Unlock()
	if k.producer == nil {
		return nil, fmt.Errorf("load checkpoint from %s: %w", k, ErrClosed)
	}
	if k.missing {
		return nil, fmt.Errorf("load checkpoint from %s: the topic does not exist: %w", k, ErrNotFound)
	}
	value, found, err := k.latest()
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

// latest returns the value of the newest record with the store's key.
func (k *Kafka) latest() (value []byte, found bool, err error) {
	if err := k.client.RefreshMetadata(k.topic); err != nil {
		return nil, false, fmt.Errorf("metadata: %w", err)
	}
	parts, err := k.client.Partitions(k.topic)
	if err != nil {
		return nil, false, err
	}
	consumer, err := sarama.NewConsumerFromClient(k.client)
	if err != nil {
		return nil, false, err
	}
	defer consumer.Close()
	var newest time.Time
	deadline := time.Now().Add(k.timeout)
	for _, p := range parts {
		oldest, err := k.client.GetOffset(k.topic, p, sarama.OffsetOldest)
		if err != nil {
			return nil, false, fmt.Errorf("partition %d: oldest offset: %w", p, err)
		}
		end, err := k.client.GetOffset(k.topic, p, sarama.OffsetNewest)
		if err != nil {
			return nil, false, fmt.Errorf("partition %d: newest offset: %w", p, err)
		}
		if end <= oldest {
			continue
		}
		v, ts, ok, err := k.readPartition(consumer, p, oldest, end, deadline)
		if err != nil {
			return nil, false, fmt.Errorf("partition %d: %w", p, err)
		}
		// A topic that gained partitions may hold the key in two of
		// them: the newer record wins.
		if ok && (!found || ts.After(newest)) {
			value, found, newest = v, true, ts
		}
	}
	return value, found, nil
}

// readPartition reads partition p from oldest up to end (exclusive) and
// returns the last record with the store's key.
func (k *Kafka) readPartition(consumer sarama.Consumer, p int32, oldest, end int64, deadline time.Time) (value []byte, ts time.Time, found bool, err error) {
	pc, err := consumer.ConsumePartition(k.topic, p, oldest)
	if err != nil {
		return nil, ts, false, err
	}
	defer pc.Close()
	idle := time.NewTimer(time.Until(deadline))
	defer idle.Stop()
	for {
		select {
		case m := <-pc.Messages():
			if string(m.Key) == k.name {
				value, ts, found = m.Value, m.Timestamp, true
			}
			if m.Offset+1 >= end {
				return value, ts, found, nil
			}
			// Past the first record, only transaction markers or
			// aborted records can keep the end from showing up.
			idle.Reset(min(loadIdle, time.Until(deadline)))
		case e := <-pc.Errors():
			return nil, ts, false, e.Err
		case <-idle.C:
			if time.Now().Before(deadline) {
				// Nothing more to read before end: the rest are
				// transaction markers or aborted records.
				return value, ts, found, nil
			}
			return nil, ts, false, fmt.Errorf("read offsets %d to %d: timed out after %s", oldest, end, k.timeout)
		}
	}
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
