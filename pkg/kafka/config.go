package kafka

import (
	"crypto/tls"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"strconv"
	"strings"
	"time"

	"github.com/IBM/sarama"
)

// Defaults applied to the zero values of Config; each field's documentation
// names the one it uses.
const (
	// DefaultClientID is the client.id used when Config.ClientID is empty.
	DefaultClientID = "tailbox"
	// DefaultMaxMessageBytes is the record size limit used when
	// Config.MaxMessageBytes is 0: 1 MiB, sarama's and the Java producer's
	// max.request.size default, just under the broker's message.max.bytes.
	DefaultMaxMessageBytes = 1 << 20
	// DefaultDialTimeout is used when Config.DialTimeout is 0.
	DefaultDialTimeout = 10 * time.Second
)

// Settings that are not configurable because the delivery guarantees of
// DESIGN.md depend on them.
const (
	// kafkaVersion is the protocol level sarama assumes: the newest for
	// which sarama claims full protocol coverage; it has idempotence
	// (0.11), headers (0.11) and zstd (2.1), and is accepted by Kafka 4.x,
	// which dropped the oldest request versions.
	kafkaVersion = "2.8.0"

	// retryMax bounds sarama's per-batch retries. Sarama sizes a slice of
	// Retry.Max+1 entries for every partition it produces to, so "retry
	// forever" (1<<30) would allocate gigabytes; 300 retries with the
	// back-off below keep retrying for about ten minutes (the Java producer
	// gives up after delivery.timeout.ms = 2 minutes) at 9.6 KB per partition.
	retryMax = 300
	// retryBackoffMin and retryBackoffMax bound the capped exponential
	// back-off between retries: 100ms, 200ms, 400ms, ... 2s, 2s, ...
	retryBackoffMin = 100 * time.Millisecond
	retryBackoffMax = 2 * time.Second

	// flushBytes and flushMessages end a batch before Linger expires, once
	// that many bytes or records are buffered for one broker. They apply
	// only when Linger > 0: sarama never flushes a batch below them without
	// a flush frequency.
	flushBytes    = 1 << 20
	flushMessages = 10000
)

// Acks is how many replicas must have a record before the broker acknowledges
// it (the producer's acks setting). The zero value is AcksAll.
type Acks int8

// Acknowledgement levels. Only AcksAll allows the idempotent producer, which
// keeps records of one key in order across retries; the others turn
// idempotence off and can lose or reorder records.
const (
	// AcksAll waits for every in-sync replica (acks=all, -1). Default.
	AcksAll Acks = iota
	// AcksLeader waits for the partition leader only (acks=1).
	AcksLeader
	// AcksNone does not wait for the broker at all (acks=0): offsets in
	// Acks are meaningless and failures go unnoticed.
	AcksNone
)

// String returns "all", "leader" or "none".
func (a Acks) String() string {
	switch a {
	case AcksAll:
		return "all"
	case AcksLeader:
		return "leader"
	case AcksNone:
		return "none"
	default:
		return "Acks(" + strconv.Itoa(int(a)) + ")"
	}
}

// ParseAcks parses "all" (or "-1"), "leader" (or "1") and "none" (or "0").
// It returns an error wrapping ErrInvalidConfig for anything else.
func ParseAcks(s string) (Acks, error) {
	switch strings.ToLower(strings.TrimSpace(s)) {
	case "all", "-1":
		return AcksAll, nil
	case "leader", "1":
		return AcksLeader, nil
	case "none", "0":
		return AcksNone, nil
	}
	return 0, &fieldError{"acks", "must be one of all, leader, none", fmt.Sprintf("%q", s)}
}

// SASL mechanisms accepted in SASL.Mechanism.
const (
	SASLPlain       = "PLAIN"
	SASLScramSHA256 = "SCRAM-SHA-256"
	SASLScramSHA512 = "SCRAM-SHA-512"
)

// SASL holds the SASL credentials. The zero value (empty Mechanism) means no
// SASL. String, GoString and MarshalJSON redact the password so that a SASL
// (or a Config) can be logged.
type SASL struct {
	// Mechanism is "" (no SASL, the default), "PLAIN", "SCRAM-SHA-256" or
	// "SCRAM-SHA-512".
	Mechanism string
	// User is the SASL user name; required with a mechanism.
	User string
	// Password is the SASL password; required with a mechanism.
	Password string
}

const redacted = "[redacted]"

func (s SASL) redacted() map[string]string {
	pw := ""
	if s.Password != "" {
		pw = redacted
	}
	return map[string]string{"mechanism": s.Mechanism, "user": s.User, "password": pw}
}

// String describes s without its password.
func (s SASL) String() string {
	r := s.redacted()
	return fmt.Sprintf("{mechanism:%q user:%q password:%q}", r["mechanism"], r["user"], r["password"])
}

// GoString is String, so that %#v does not print the password either.
func (s SASL) GoString() string { return "kafka.SASL" + s.String() }

// MarshalJSON encodes s with its password redacted; it never fails.
func (s SASL) MarshalJSON() ([]byte, error) { return json.Marshal(s.redacted()) }

// Config is the producer configuration. Every field's zero value is usable
// except Brokers; Validate lists every problem at once. The settings that
// make delivery safe (idempotence, one in-flight request per broker, bounded
// retries with capped back-off, murmur2 partitioning) are not configurable.
type Config struct {
	// Brokers are the bootstrap brokers, each "host:port". Required.
	Brokers []string
	// ClientID is the client.id sent to the brokers; "" means DefaultClientID.
	ClientID string
	// Acks is the acknowledgement level; the zero value is AcksAll, which
	// also enables the idempotent producer.
	Acks Acks
	// Compression is "none", "gzip", "snappy", "lz4" or "zstd"; "" means none.
	Compression string
	// MaxMessageBytes is the largest record (key, value, headers and
	// overhead, before compression) the producer sends, and the largest
	// batch per partition; 0 means DefaultMaxMessageBytes. Larger records
	// fail with ErrTooLarge without being sent.
	MaxMessageBytes int
	// Linger is how long records wait to fill a batch (sarama's
	// Producer.Flush.Frequency, Java's linger.ms); a batch also leaves once
	// it holds 1 MiB or 10000 records. 0 (default) sends as soon as the
	// previous request to the broker is answered, batching whatever
	// accumulated meanwhile.
	Linger time.Duration
	// TLS, when not nil, enables TLS with this configuration; nil means
	// plaintext.
	TLS *tls.Config
	// SASL holds the SASL mechanism and credentials; the zero value means
	// no SASL.
	SASL SASL
	// DialTimeout bounds each connection attempt; 0 means
	// DefaultDialTimeout. New fails with ErrUnreachable when no broker
	// accepts a connection within it.
	DialTimeout time.Duration
	// OnRetry, when not nil, is called each time the producer backs off
	// before retrying a batch or a partition leader lookup (sarama's
	// Retry.BackoffFunc), from sarama's goroutines: it must be safe for
	// concurrent use and must not block. nil means no call.
	OnRetry func() `json:"-"`
	// TransactionalID, when not empty, makes the producer transactional
	// (Kafka's transactional.id; requires AcksAll): records are sent
	// between BeginTxn and CommitTxn, and a new producer with the same
	// id fences this one.
	TransactionalID string
}

// fieldError is one problem found by Validate: "path: reason (got X)".
type fieldError struct {
	path, reason, got string
}

func (e *fieldError) Error() string {
	if e.got == "" {
		return e.path + ": " + e.reason
	}
	return e.path + ": " + e.reason + " (got " + e.got + ")"
}

func (e *fieldError) Unwrap() error { return ErrInvalidConfig }

var compressions = map[string]sarama.CompressionCodec{
	"":       sarama.CompressionNone,
	"none":   sarama.CompressionNone,
	"gzip":   sarama.CompressionGZIP,
	"snappy": sarama.CompressionSnappy,
	"lz4":    sarama.CompressionLZ4,
	"zstd":   sarama.CompressionZSTD,
}

// Validate reports every problem of c, each as "path: reason (got X)" with
// paths named like the YAML keys under kafka:, joined with errors.Join; each
// wraps ErrInvalidConfig. It returns nil when c is usable and never modifies c.
func (c Config) Validate() error {
	var errs []error
	add := func(path, reason, got string) { errs = append(errs, &fieldError{path, reason, got}) }

	if len(c.Brokers) == 0 {
		add("brokers", "at least one broker is required", "")
	}
	for i, b := range c.Brokers {
		path := fmt.Sprintf("brokers[%d]", i)
		host, port, err := net.SplitHostPort(b)
		if err != nil || host == "" {
			add(path, "must be host:port", fmt.Sprintf("%q", b))
			continue
		}
		if n, err := strconv.Atoi(port); err != nil || n < 1 || n > 65535 {
			add(path, "port must be 1-65535", fmt.Sprintf("%q", b))
		}
	}
	if c.Acks < AcksAll || c.Acks > AcksNone {
		add("acks", "must be one of all, leader, none", c.Acks.String())
	}
	if c.TransactionalID != "" && c.Acks != AcksAll {
		add("acks", "must be all with a transactional producer", c.Acks.String())
	}
	if _, ok := compressions[c.Compression]; !ok {
		add("compression", "must be one of none, gzip, snappy, lz4, zstd", fmt.Sprintf("%q", c.Compression))
	}
	if c.MaxMessageBytes < 0 || c.MaxMessageBytes >= int(sarama.MaxRequestSize) {
		add("max_message_bytes", fmt.Sprintf("must be between 0 (default) and %d", sarama.MaxRequestSize-1), strconv.Itoa(c.MaxMessageBytes))
	}
	if c.Linger < 0 {
		add("linger", "must not be negative", c.Linger.String())
	}
	if c.DialTimeout < 0 {
		add("dial_timeout", "must not be negative", c.DialTimeout.String())
	}
	switch c.SASL.Mechanism {
	case "":
		if c.SASL.User != "" || c.SASL.Password != "" {
			add("sasl.mechanism", "is required when a user or password is set", `""`)
		}
	case SASLPlain, SASLScramSHA256, SASLScramSHA512:
		if c.SASL.User == "" {
			add("sasl.user", "is required with sasl.mechanism "+c.SASL.Mechanism, `""`)
		}
		if c.SASL.Password == "" {
			add("sasl.password", "is required with sasl.mechanism "+c.SASL.Mechanism, `""`)
		}
	default:
		add("sasl.mechanism", "must be one of PLAIN, SCRAM-SHA-256, SCRAM-SHA-512 or empty", fmt.Sprintf("%q", c.SASL.Mechanism))
	}
	return errors.Join(errs...)
}

// withDefaults returns c with the documented defaults filled in.
func (c Config) withDefaults() Config {
	if c.ClientID == "" {
		c.ClientID = DefaultClientID
	}
	if c.MaxMessageBytes == 0 {
		c.MaxMessageBytes = DefaultMaxMessageBytes
	}
	if c.DialTimeout == 0 {
		c.DialTimeout = DefaultDialTimeout
	}
	return c
}

// retryBackoff is the capped exponential back-off between produce retries.
func retryBackoff(retries, _ int) time.Duration {
	d := retryBackoffMin
	for i := 1; i < retries && d < retryBackoffMax; i++ {
		d *= 2
	}
	return min(d, retryBackoffMax)
}

// ClientConfig validates cfg and returns its sarama configuration, for the
// connector's other Kafka clients (the checkpoint store, the HA lease):
// the same brokers version, client id, TLS, SASL and timeouts.
func ClientConfig(cfg Config) (*sarama.Config, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	cfg.TransactionalID = ""
	return cfg.withDefaults().saramaConfig()
}

// saramaConfig maps a validated Config with defaults onto sarama's.
func (c Config) saramaConfig() (*sarama.Config, error) {
	sc := sarama.NewConfig()
	version, err := sarama.ParseKafkaVersion(kafkaVersion)
	if err != nil {
		return nil, fmt.Errorf("parse kafka version %s: %w", kafkaVersion, err)
	}
	sc.Version = version
	sc.ClientID = c.ClientID

	sc.Net.DialTimeout = c.DialTimeout
	// One request per broker at a time: what keeps a key's records in
	// order when a batch is retried, and what sarama's idempotent producer
	// requires.
	sc.Net.MaxOpenRequests = 1
	if c.TLS != nil {
		sc.Net.TLS.Enable = true
		sc.Net.TLS.Config = c.TLS
	}
	if c.SASL.Mechanism != "" {
		sc.Net.SASL.Enable = true
		sc.Net.SASL.Mechanism = sarama.SASLMechanism(c.SASL.Mechanism)
		sc.Net.SASL.User = c.SASL.User
		sc.Net.SASL.Password = c.SASL.Password
		switch c.SASL.Mechanism {
		case SASLScramSHA256:
			sc.Net.SASL.SCRAMClientGeneratorFunc = func() sarama.SCRAMClient { return &scramClient{sha512: false} }
		case SASLScramSHA512:
			sc.Net.SASL.SCRAMClientGeneratorFunc = func() sarama.SCRAMClient { return &scramClient{sha512: true} }
		}
	}

	// Fetch metadata only for the topics produced to (as the Java
	// producer does), not for the whole cluster every refresh.
	sc.Metadata.Full = false

	switch c.Acks {
	case AcksAll:
		sc.Producer.RequiredAcks = sarama.WaitForAll
		sc.Producer.Idempotent = true
	case AcksLeader:
		sc.Producer.RequiredAcks = sarama.WaitForLocal
	case AcksNone:
		sc.Producer.RequiredAcks = sarama.NoResponse
	}
	sc.Producer.Return.Successes = true
	sc.Producer.Return.Errors = true
	sc.Producer.Retry.Max = retryMax
	sc.Producer.Retry.Backoff = retryBackoffMin
	sc.Producer.Retry.BackoffFunc = retryBackoff
	if onRetry := c.OnRetry; onRetry != nil {
		sc.Producer.Retry.BackoffFunc = func(retries, maxRetries int) time.Duration {
			onRetry()
			return retryBackoff(retries, maxRetries)
		}
	}
	if c.TransactionalID != "" {
		sc.Producer.Transaction.ID = c.TransactionalID
		sc.Producer.Transaction.Timeout = transactionTimeout
		// A transaction the coordinator aborts after transactionTimeout
		// gains nothing from longer retries, and sarama retries a batch
		// a newer epoch fenced (PRODUCER_FENCED) as if it could succeed:
		// fail it within about half a minute instead.
		sc.Producer.Retry.Max = txnRetryMax
	}
	// Room for a broker response's worth of acknowledgements (about a
	// thousand records of a full request) in sarama's channels and Acks,
	// so that the goroutines passing them on hand over a whole response
	// at a time instead of switching every 256 (sarama's default).
	sc.ChannelBufferSize = 1024
	sc.Producer.Partitioner = newMurmur2Partitioner
	sc.Producer.Compression = compressions[c.Compression]
	sc.Producer.MaxMessageBytes = c.MaxMessageBytes
	if c.Linger > 0 {
		sc.Producer.Flush.Frequency = c.Linger
		sc.Producer.Flush.Bytes = flushBytes
		sc.Producer.Flush.Messages = flushMessages
	}

	if err := sc.Validate(); err != nil {
		return nil, fmt.Errorf("%w: sarama rejected the configuration: %w", ErrInvalidConfig, err)
	}
	return sc, nil
}
