// Package kafka is tailbox's producer: a sarama AsyncProducer with safe
// settings (acks=all, idempotent, one in-flight request per broker, bounded
// retries with capped back-off) and Kafka's murmur2 partitioner, so that the
// records of one key land where Java clients put them and keep their order
// within one producer session.
//
// Records go in with Send, which blocks while the producer is full; exactly
// one Ack per record comes back on Acks, in the order sarama returns them
// (acknowledgements of different partitions interleave arbitrarily; the
// caller restores binlog order). Once a record failed, a producer that is
// not transactional writes nothing more (ErrHalted): no record is written
// ahead of a failed one. Close stops intake, waits for the outcome of every
// record sent (bounded by its context), then closes.
package kafka

import (
	"context"
	"crypto/tls"
	"encoding/binary"
	"fmt"
	"net"
	"strings"
	"sync"
	"sync/atomic"
	"time"
	"unsafe"

	"github.com/IBM/sarama"
)

// Header is one record header.
type Header struct {
	Key   string
	Value []byte
}

// Record is one record to produce. The producer does not modify it; the
// caller must not modify it until its Ack arrives.
type Record struct {
	// Topic is the topic to produce to. An empty or illegal name fails in
	// the Ack with a permanent error.
	Topic string
	// Key is the record key; nil means a NULL key, sent to a random
	// partition. A non-nil key (even empty) is placed by murmur2 like the
	// Java client.
	Key []byte
	// Value is the record value; nil means NULL (a tombstone), while an
	// empty non-nil slice is an empty value.
	Value []byte
	// Headers are the record headers, in order; nil means none.
	Headers []Header
	// ExplicitPartition, when true, sends the record to Partition instead
	// of the partition its key hashes to (or a random one for a NULL key).
	// A Partition outside the topic's partitions fails the record with an
	// error wrapping ErrInvalidPartition. Zero value false: placed by key.
	ExplicitPartition bool
	// Partition is the partition of a record with ExplicitPartition.
	Partition int32
	// Timestamp is the record's CreateTime, sent with millisecond
	// precision; the zero value means the time the record is batched.
	Timestamp time.Time
	// Meta is the caller's; the producer returns it untouched in the Ack.
	Meta any
}

// Ack reports the outcome of one Record passed to Send.
type Ack struct {
	// Record is the pointer passed to Send.
	Record *Record
	// Partition and Offset locate the record in its topic; both are -1
	// when Err is not nil. With AcksNone the offset is meaningless.
	Partition int32
	Offset    int64
	// Err is nil when the broker acknowledged the record. Otherwise it
	// names the topic and wraps the sarama error (errors.Is works with
	// sarama's KError values) or ErrTooLarge; IsPermanent classifies it.
	Err error
}

// Producer produces Records to Kafka. Its methods are safe for concurrent
// use. The caller must keep receiving from Acks until it is closed: an
// unread Ack eventually blocks Send and Close.
type Producer struct {
	maxMessageBytes int
	client          sarama.Client
	ap              sarama.AsyncProducer

	acks     chan Ack
	stop     chan struct{} // closed by Close: Send refuses and unblocks
	abandon  chan struct{} // closed when a Close gave up: undelivered acks are dropped
	drained  chan struct{} // closed once every ack is delivered and acks is closed
	inFlight atomic.Int64

	mu      sync.RWMutex // guards closed against senders.Add
	closed  bool
	senders sync.WaitGroup // Sends and transaction calls in progress

	stopOnce    sync.Once
	abandonOnce sync.Once
	abandonErr  error // what Close returns once it gave up; set in abandonOnce
	clientOnce  sync.Once
	clientErr   error

	// settled receives a signal (dropped when one is pending) each time
	// inFlight drops to zero once closing is set: Close shuts sarama down
	// only then, so that no record is still being retried.
	settled chan struct{}
	closing atomic.Bool
	// gaveUp is set when a Close gave up: sarama's retries no longer back
	// off, and the records it then fails carry ErrAbandoned. Shared with
	// sarama's BackoffFunc, which exists before p.
	gaveUp *atomic.Bool
	// halt stops all writes once a record failed; nil for a
	// transactional producer. Shared with sarama's dialer and BackoffFunc.
	halt *halt
}

// New validates cfg, checks that a broker accepts connections, fetches the
// cluster metadata and starts an idempotent producer (with AcksAll). ctx
// bounds only this start-up, not the producer's life.
//
// It returns an error wrapping ErrInvalidConfig for an invalid cfg,
// ErrUnreachable (naming the brokers) when no broker accepts a TCP
// connection within cfg.DialTimeout, ErrAuthentication when a broker refuses
// the SASL credentials, the context's error when ctx ends first, and
// otherwise sarama's error (TLS, metadata, producer ID).
func New(ctx context.Context, cfg Config) (*Producer, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	cfg = cfg.withDefaults()
	sc, err := cfg.saramaConfig()
	if err != nil {
		return nil, err
	}
	var running atomic.Pointer[sarama.AsyncProducer] // set once it exists
	gaveUp := new(atomic.Bool)
	var h *halt
	if cfg.TransactionalID == "" {
		h = newHalt(sc.Net.DialTimeout, sc.Net.KeepAlive, sc.Net.LocalAddr)
		sc.Net.Proxy.Enable = true
		sc.Net.Proxy.Dialer = h
		// A halted producer's metadata requests cannot succeed either.
		backoff := sc.Metadata.Retry.Backoff
		sc.Metadata.Retry.BackoffFunc = func(int, int) time.Duration {
			if h.halted.Load() {
				return 0
			}
			return backoff
		}
	}
	{
		// Once a Close has given up, or a record failed and nothing more
		// is sent, what sarama still holds is failed without waiting: its
		// retries cannot succeed.
		backoff := sc.Producer.Retry.BackoffFunc
		sc.Producer.Retry.BackoffFunc = func(retries, maxRetries int) time.Duration {
			if gaveUp.Load() || (h != nil && h.halted.Load()) {
				return 0
			}
			return backoff(retries, maxRetries)
		}
	}
	if cfg.TransactionalID != "" {
		// sarama retries a batch whose AddPartitionsToTxn failed as if the
		// connection were bad, also after a fatal answer such as
		// PRODUCER_FENCED, where every retry fails at once the same way.
		// Without back-off those retries end in milliseconds and the fatal
		// error reaches the Acks and CommitTxn, instead of after ~30 s of
		// back-off in which a fenced tailbox would time out its commit and
		// restart, fencing the newer producer in turn.
		backoff := sc.Producer.Retry.BackoffFunc
		sc.Producer.Retry.BackoffFunc = func(retries, maxRetries int) time.Duration {
			if ap := running.Load(); ap != nil && (*ap).TxnStatus()&sarama.ProducerTxnFlagFatalError != 0 {
				return 0
			}
			return backoff(retries, maxRetries)
		}
	}
	brokers := strings.Join(cfg.Brokers, ",")
	reachable, err := probe(ctx, cfg)
	if err != nil {
		return nil, fmt.Errorf("connect to kafka %s: %w", brokers, err)
	}

	// Sarama does not take a context: start it in a goroutine and, if ctx
	// ends first, let that goroutine close whatever it ends up with.
	type started struct {
		client sarama.Client
		ap     sarama.AsyncProducer
		err    error
	}
	result := make(chan started) // unbuffered: a result is either taken or abandoned
	abandoned := make(chan struct{})
	go func() {
		s := started{}
		s.client, s.ap, s.err = start(cfg.Brokers, sc)
		if s.err != nil {
			s.err = authFailure(cfg, reachable, s.err)
		}
		select {
		case result <- s:
		case <-abandoned:
			if s.err == nil {
				s.ap.AsyncClose()
				_ = s.client.Close()
			}
		}
	}()
	var s started
	select {
	case s = <-result:
	case <-ctx.Done():
		close(abandoned)
		return nil, fmt.Errorf("start kafka producer on %s: %w", brokers, ctx.Err())
	}
	if s.err != nil {
		return nil, fmt.Errorf("start kafka producer on %s: %w", brokers, s.err)
	}

	running.Store(&s.ap)
	p := &Producer{
		maxMessageBytes: cfg.MaxMessageBytes,
		client:          s.client,
		ap:              s.ap,
		acks:            make(chan Ack, sc.ChannelBufferSize),
		stop:            make(chan struct{}),
		abandon:         make(chan struct{}),
		drained:         make(chan struct{}),
		settled:         make(chan struct{}, 1),
		gaveUp:          gaveUp,
		halt:            h,
	}
	if h != nil {
		h.started.Store(true)
	}
	go p.run()
	return p, nil
}

// start creates the client, fetches metadata (which also drops seed brokers
// that fail, so that the producer ID is requested from one that answers) and
// the producer.
func start(brokers []string, sc *sarama.Config) (sarama.Client, sarama.AsyncProducer, error) {
	client, err := sarama.NewClient(brokers, sc)
	if err != nil {
		return nil, nil, fmt.Errorf("create client: %w", err)
	}
	if err := client.RefreshMetadata(); err != nil {
		_ = client.Close()
		return nil, nil, fmt.Errorf("fetch metadata: %w", err)
	}
	ap, err := sarama.NewAsyncProducerFromClient(client)
	if err != nil {
		_ = client.Close()
		return nil, nil, fmt.Errorf("create producer: %w", err)
	}
	return client, ap, nil
}

// probe dials every broker at once and returns the address of the first
// that accepts a connection (and, with TLS, completes the handshake). When
// none does it returns an error wrapping ErrUnreachable, or the TLS error
// when a broker was reachable but the handshake failed, or ctx's error.
func probe(parent context.Context, cfg Config) (string, error) {
	ctx, cancel := context.WithTimeout(parent, cfg.DialTimeout)
	defer cancel()

	type outcome struct {
		addr      string
		err       error
		reachable bool // TCP connected, whatever happened next
	}
	results := make(chan outcome, len(cfg.Brokers))
	for _, addr := range cfg.Brokers {
		go func() {
			dialer := &net.Dialer{}
			conn, err := dialer.DialContext(ctx, "tcp", addr)
			if err != nil {
				results <- outcome{addr: addr, err: err}
				return
			}
			defer conn.Close()
			if cfg.TLS != nil {
				tc := cfg.TLS.Clone()
				if tc.ServerName == "" && !tc.InsecureSkipVerify {
					if host, _, err := net.SplitHostPort(addr); err == nil {
						tc.ServerName = host
					}
				}
				if err := tls.Client(conn, tc).HandshakeContext(ctx); err != nil {
					results <- outcome{addr: addr, err: fmt.Errorf("tls handshake with %s (kafka.tls): %w", addr, err), reachable: true}
					return
				}
			}
			results <- outcome{addr: addr, reachable: true}
		}()
	}

	var tlsErr, lastErr error
	for range cfg.Brokers {
		o := <-results
		switch {
		case o.err == nil:
			return o.addr, nil
		case o.reachable:
			tlsErr = o.err
		default:
			lastErr = o.err
		}
	}
	if tlsErr != nil {
		return "", tlsErr
	}
	if err := parent.Err(); err != nil {
		return "", err
	}
	return "", fmt.Errorf("%w within %s: %w", ErrUnreachable, cfg.DialTimeout, lastErr)
}

// run turns sarama's successes and errors into Acks until sarama closes both
// channels (after AsyncClose has flushed everything), then closes acks. With
// a halt, sarama's errors come through its watch.
func (p *Producer) run() {
	defer close(p.drained)
	defer close(p.acks)
	successes, errs := p.ap.Successes(), p.ap.Errors()
	var failures <-chan failure // errs as the halt's watch passes them on
	if p.halt != nil {
		f := make(chan failure)
		go p.halt.watch(errs, f)
		errs, failures = nil, f
	}
	for successes != nil || errs != nil || failures != nil {
		select {
		case msg, ok := <-successes:
			if !ok {
				successes = nil
				continue
			}
			if r, ok := msg.Metadata.(*Record); ok {
				p.deliver(Ack{Record: r, Partition: msg.Partition, Offset: msg.Offset})
			}
		case pe, ok := <-errs:
			if !ok {
				errs = nil
				continue
			}
			p.fail(failure{ProducerError: pe})
		case f, ok := <-failures:
			if !ok {
				failures = nil
				continue
			}
			p.fail(f)
		}
	}
}

// fail delivers the Ack of a failed record.
func (p *Producer) fail(f failure) {
	err := f.Err
	if f.after {
		err = fmt.Errorf("%w: %w", ErrHalted, err)
	}
	if r, ok := f.Msg.Metadata.(*Record); ok {
		if p.gaveUp.Load() {
			err = fmt.Errorf("%w: %w", ErrAbandoned, err)
		}
		p.deliver(Ack{Record: r, Partition: -1, Offset: -1, Err: ackError(f.Msg, err, p.maxMessageBytes)})
	}
}

// deliver hands a to the caller, unless a Close gave up waiting.
func (p *Producer) deliver(a Ack) {
	if p.inFlight.Add(-1) == 0 && p.closing.Load() {
		select {
		case p.settled <- struct{}{}:
		default: // a signal is pending already
		}
	}
	select { // the common case, without a full select
	case p.acks <- a:
		return
	default:
	}
	select {
	case p.acks <- a:
	case <-p.abandon:
	}
}

// Send hands r to the producer. It blocks while the producer's input is
// full (back-pressure) and returns once sarama has taken r; the outcome
// arrives later as an Ack carrying r. It returns an error wrapping ctx's
// error when ctx ends first, ErrClosed once Close has been called (r is then
// not sent and gets no Ack), and ErrNilRecord for a nil r.
func (p *Producer) Send(ctx context.Context, r *Record) error {
	if r == nil {
		return fmt.Errorf("send: %w", ErrNilRecord)
	}
	p.mu.RLock()
	if p.closed {
		p.mu.RUnlock()
		return fmt.Errorf("send to topic %q: %w", r.Topic, ErrClosed)
	}
	p.senders.Add(1)
	p.mu.RUnlock()
	defer p.senders.Done()

	msg := r.message()

	// Count before handing over: the Ack may come back at once.
	p.inFlight.Add(1)
	select { // the common case, without a full select
	case p.ap.Input() <- msg:
		return nil
	default:
	}
	select {
	case p.ap.Input() <- msg:
		return nil
	case <-ctx.Done():
		p.inFlight.Add(-1)
		return fmt.Errorf("send to topic %q: %w", r.Topic, ctx.Err())
	case <-p.stop:
		p.inFlight.Add(-1)
		return fmt.Errorf("send to topic %q: %w", r.Topic, ErrClosed)
	}
}

// message returns the sarama message for r. The key and value encoders
// are views of r (the caller does not modify r until its Ack), and the
// header keys share the bytes of r's strings (sarama only reads them), so
// that nothing but the message and its header slice is allocated.
func (r *Record) message() *sarama.ProducerMessage {
	msg := &sarama.ProducerMessage{Topic: r.Topic, Timestamp: r.Timestamp, Metadata: r}
	if r.Key != nil {
		msg.Key = (*recordKey)(r)
	}
	if r.Value != nil {
		msg.Value = (*recordValue)(r)
	}
	if len(r.Headers) > 0 {
		msg.Headers = make([]sarama.RecordHeader, len(r.Headers))
		for i, h := range r.Headers {
			msg.Headers[i] = sarama.RecordHeader{Key: unsafe.Slice(unsafe.StringData(h.Key), len(h.Key)), Value: h.Value}
		}
	}
	return msg
}

// recordKey is the sarama.Encoder of a Record's key; converting the
// pointer to the interface does not allocate, unlike sarama.ByteEncoder.
type recordKey Record

// Encode implements sarama.Encoder.
func (k *recordKey) Encode() ([]byte, error) { return k.Key, nil }

// Length implements sarama.Encoder.
func (k *recordKey) Length() int { return len(k.Key) }

// recordValue is the sarama.Encoder of a Record's value.
type recordValue Record

// Encode implements sarama.Encoder.
func (v *recordValue) Encode() ([]byte, error) { return v.Value, nil }

// Length implements sarama.Encoder.
func (v *recordValue) Length() int { return len(v.Value) }

// Acks returns the channel that carries one Ack per record accepted by Send,
// successes and failures merged in the order sarama reports them. It is the
// same channel on every call and is closed once Close has delivered the
// last outstanding Ack (or has given up, see Close).
func (p *Producer) Acks() <-chan Ack { return p.acks }

// InFlight returns the number of records accepted by Send whose Ack has not
// been handed to Acks yet (one may be waiting in the channel's buffer).
func (p *Producer) InFlight() int { return int(p.inFlight.Load()) }

// Close stops intake (Send returns ErrClosed from now on), waits until the
// outcome of every record already sent is known — acknowledged, or failed
// after sarama's retries — and its Ack has been delivered on Acks, then
// closes Acks and the connections and returns nil. A transaction call in
// progress (BeginTxn, CommitTxn, AbortTxn) is waited for as well. The
// caller must keep reading Acks meanwhile.
//
// ctx bounds the wait. When it ends first, Close gives up: it closes the
// connections, so that sarama fails at once what it still holds, and
// returns an error wrapping ErrAbandoned and ctx's error that counts the
// records whose outcome was not known. Each of them still gets one Ack
// (an Err wrapping ErrAbandoned, unless the broker's answer arrived first)
// while the caller reads Acks until it is closed; a caller that stops
// reading after Close gave up makes the producer drop the Acks it does not
// take. Either way no such record was reported written: a caller that
// advances only on successful Acks never passes it. Those records may or
// may not have been written.
//
// Close is idempotent: later calls wait (bounded by their own ctx) for the
// same drain and return what the first returned, the give-up error
// included.
func (p *Producer) Close(ctx context.Context) error {
	p.stopOnce.Do(func() {
		p.mu.Lock()
		p.closed = true
		p.closing.Store(true)
		close(p.stop)
		p.mu.Unlock()
		go p.shutdown()
	})
	select {
	case <-p.drained:
	default:
		select {
		case <-p.drained:
		case <-ctx.Done():
			return p.giveUp(ctx.Err())
		}
	}
	if p.gaveUp.Load() {
		return p.abandonErr
	}
	return p.closeClient()
}

// shutdown closes sarama once nothing it holds is pending: every Send and
// transaction call has returned, so that sarama's shutdown marker follows
// the last record and no call uses a closed producer, and every record's
// outcome is known (sarama fails a record it is retrying when it is closed
// meanwhile) — or a Close gave up.
func (p *Producer) shutdown() {
	p.senders.Wait()
	for p.inFlight.Load() > 0 {
		select {
		case <-p.settled:
		case <-p.abandon:
			p.ap.AsyncClose()
			return
		}
	}
	p.ap.AsyncClose()
}

// giveUp ends the drain of a Close whose context ended with cause and
// returns Close's error; it runs once, later calls return the same error.
func (p *Producer) giveUp(cause error) error {
	p.abandonOnce.Do(func() {
		n := p.InFlight()
		p.abandonErr = fmt.Errorf("close kafka producer: %d records abandoned: %w: %w", n, ErrAbandoned, cause)
		p.gaveUp.Store(true)
		close(p.abandon)
		// The client's connections may be busy with a request the broker
		// does not answer: close them without waiting.
		go func() { _ = p.closeClient() }()
	})
	return p.abandonErr
}

// closeClient closes the sarama client once; the producer was created from
// it and does not close it.
func (p *Producer) closeClient() error {
	p.clientOnce.Do(func() {
		if err := p.client.Close(); err != nil {
			p.clientErr = fmt.Errorf("close kafka client: %w", err)
		}
	})
	return p.clientErr
}

// maximumRecordOverhead is sarama's upper bound of a v2 record's framing.
const maximumRecordOverhead = 5*binary.MaxVarintLen32 + binary.MaxVarintLen64 + 1

// Size returns the size sarama checks against Config.MaxMessageBytes for r
// (ProducerMessage.ByteSize for record batches).
func (r *Record) Size() int {
	n := maximumRecordOverhead + len(r.Key) + len(r.Value)
	for _, h := range r.Headers {
		n += len(h.Key) + len(h.Value) + 2*binary.MaxVarintLen32
	}
	return n
}

// Fits returns nil when r is within the producer's MaxMessageBytes and,
// for a record with ExplicitPartition, its Partition is one of the topic's
// partitions as far as the client's metadata knows; else an error wrapping
// ErrTooLarge or ErrInvalidPartition: a failure known before sending. For a
// record with ExplicitPartition it may ask the brokers for the topic's
// metadata (blocking) when the client does not know the topic yet; when
// that fails, the partition is left for the send to check.
func (p *Producer) Fits(r *Record) error {
	if s := r.Size(); s > p.maxMessageBytes {
		return fmt.Errorf("%w: %d bytes > max_message_bytes %d", ErrTooLarge, s, p.maxMessageBytes)
	}
	if r.ExplicitPartition {
		if r.Partition < 0 {
			return partitionError(r.Topic, r.Partition, -1)
		}
		if parts, err := p.client.Partitions(r.Topic); err == nil && r.Partition >= int32(len(parts)) {
			return partitionError(r.Topic, r.Partition, int32(len(parts)))
		}
	}
	return nil
}
