package kafka

import (
	"errors"
	"net"
	"sync/atomic"
	"time"

	"github.com/IBM/sarama"
)

// errHaltedWrite is what a halted producer's connections return for a
// write or a dial; sarama fails what it was sending with it (after its
// retries, which no longer back off).
var errHaltedWrite = errors.New("not sent")

// halt stops a producer that is not transactional from writing anything to
// the brokers once a record failed, so that no record is written ahead of
// an earlier one that must be sent again.
//
// Sarama fails a batch the broker refused with an error it does not retry
// (UNKNOWN_SERVER_ERROR, OUT_OF_ORDER_SEQUENCE_NUMBER, UNKNOWN_PRODUCER_ID,
// ...), or whose retries ran out, and goes on with the partition's next
// batch at once (an idempotent producer under a new epoch, starting at
// sequence 0, which Kafka and kfake accept): those later records would be
// written before the failed ones are sent again. Sarama hands the failure
// to its Errors channel, which is unbuffered, before it lets the
// partition's next batch go. The halt is the dialer of the producer's
// client: before each write to a broker it waits until watch has handled
// every error sarama handed over, and once one of them
// failed a record (see halts) it refuses that write, every later one and
// every dial. A request written before holds no later record of the failed
// partition: sarama keeps one batch per partition in flight and hands the
// failure over before it lets the partition's next one go. (Sarama may
// write the next request as soon as the failed answer is read, before it
// handles it; that request holds batches of other partitions only, whose
// records may then be written and are sent again with the rest.)
//
// A transactional producer is not halted: a failed transaction is aborted
// (which needs the connections), so read_committed consumers see none of it.
type halt struct {
	dialer net.Dialer
	// halted is set by watch when it receives a failed record that halts.
	halted atomic.Bool
	// syncs carries the requests of writers to watch, which closes each
	// once it has handled every error it received before.
	syncs chan chan struct{}
	// started is set once watch is about to run; done is closed when it
	// ends.
	started atomic.Bool
	done    chan struct{}
}

// failure is a record sarama failed, as watch passes it on.
type failure struct {
	*sarama.ProducerError
	// after is set when an earlier failure had halted the producer.
	after bool
}

func newHalt(dialTimeout, keepAlive time.Duration, local net.Addr) *halt {
	return &halt{
		dialer: net.Dialer{Timeout: dialTimeout, KeepAlive: keepAlive, LocalAddr: local},
		syncs:  make(chan chan struct{}),
		done:   make(chan struct{}),
	}
}

// watch takes sarama's errors from errs, which is unbuffered, and passes
// them on to out in order, until errs is closed and everything is passed
// on; then it closes out. It halts at the first error that halts (see
// halts) as soon as it has received it, and answers syncs meanwhile, so
// that every error sarama handed over before a sync has halted the
// producer when the sync is answered. It does nothing else, so that a
// write waits only for a goroutine that is ready to answer.
func (h *halt) watch(errs <-chan *sarama.ProducerError, out chan<- failure) {
	defer close(h.done)
	defer close(out)
	var queue []failure
	for errs != nil || len(queue) > 0 {
		var next chan<- failure
		var head failure
		if len(queue) > 0 {
			next, head = out, queue[0]
		}
		select {
		case reply := <-h.syncs:
			close(reply)
		case pe, ok := <-errs:
			if !ok {
				errs = nil
				continue
			}
			f := failure{ProducerError: pe}
			if halts(pe.Err) {
				f.after = h.halted.Swap(true)
			}
			queue = append(queue, f)
		case next <- head:
			queue[0] = failure{}
			queue = queue[1:]
		}
	}
}

// halts reports whether a record that failed with err halts the producer:
// every failure does but the rejections of a record before it is sent
// (sarama's ConfigurationError for a record over Producer.MaxMessageBytes,
// the partitioner's ErrInvalidPartition), which the caller is told of like
// failures known before sending.
func halts(err error) bool {
	var cfgErr sarama.ConfigurationError
	return !errors.As(err, &cfgErr) && !errors.Is(err, ErrInvalidPartition)
}

// check returns errHaltedWrite once a record has failed. Before watch
// starts (sarama's start-up requests) nothing can have failed.
func (h *halt) check() error {
	if h.halted.Load() {
		return errHaltedWrite
	}
	if !h.started.Load() {
		return nil
	}
	reply := make(chan struct{})
	select {
	case h.syncs <- reply:
		<-reply
	case <-h.done:
	}
	if h.halted.Load() {
		return errHaltedWrite
	}
	return nil
}

// Dial implements sarama's proxy.Dialer: sarama dials every broker
// connection of the producer's client with it.
func (h *halt) Dial(network, addr string) (net.Conn, error) {
	if h.halted.Load() {
		return nil, errHaltedWrite
	}
	c, err := h.dialer.Dial(network, addr)
	if err != nil {
		return nil, err
	}
	return &haltConn{Conn: c, h: h}, nil
}

// haltConn is a broker connection that refuses writes once its producer
// halted.
type haltConn struct {
	net.Conn
	h *halt
}

// Write implements net.Conn.
func (c *haltConn) Write(b []byte) (int, error) {
	if err := c.h.check(); err != nil {
		return 0, err
	}
	return c.Conn.Write(b)
}
