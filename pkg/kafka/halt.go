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
// client: before each write to a broker it waits until the producer's run
// loop has handled every error sarama handed over, and once one of them
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
	// halted is set by the run loop when it receives a failed record.
	halted atomic.Bool
	// syncs carries the requests of writers to the run loop, which closes
	// each once it has handled every error it received before.
	syncs chan chan struct{}
	// started is set once the run loop answers syncs; done is closed
	// when it has ended.
	started atomic.Bool
	done    chan struct{}
}

func newHalt(dialTimeout, keepAlive time.Duration, local net.Addr) *halt {
	return &halt{
		dialer: net.Dialer{Timeout: dialTimeout, KeepAlive: keepAlive, LocalAddr: local},
		syncs:  make(chan chan struct{}),
		done:   make(chan struct{}),
	}
}

// halts reports whether a record that failed with err halts the producer:
// every failure does but sarama's own rejection of a record before
// sending it (a ConfigurationError: over Producer.MaxMessageBytes), which
// the caller is told of like a failure known before sending.
func (h *halt) halts(err error) bool {
	var cfgErr sarama.ConfigurationError
	return !errors.As(err, &cfgErr)
}

// check returns errHaltedWrite once a record has failed. Before the run
// loop starts (sarama's start-up requests) nothing can have failed.
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
