package kafka

import (
	"errors"
	"fmt"
	"time"

	"github.com/IBM/sarama"
)

// transactionTimeout is transaction.timeout.ms: how long the coordinator
// lets a transaction stay open before it aborts it. Batches commit within
// a second, so a longer open transaction belongs to a dead producer.
const transactionTimeout = time.Minute

// txnRetryMax bounds the retries of a transactional producer's batch: with
// the back-off capped at 2 s, about 30 s.
const txnRetryMax = 15

// ErrFenced is returned by the transaction methods when a newer producer
// with the same transactional id (another tailbox with the same name, or
// the replica that took over) has fenced this one: it can never write
// again and must be closed.
var ErrFenced = errors.New("producer fenced by a newer producer with the same transactional id")

// IsFenced reports whether err says that a newer producer with the same
// transactional id exists: ErrFenced, or the broker's PRODUCER_FENCED or
// INVALID_PRODUCER_EPOCH in an Ack of a transactional producer.
func IsFenced(err error) bool {
	return errors.Is(err, ErrFenced) || errors.Is(err, sarama.ErrProducerFenced) || errors.Is(err, sarama.ErrInvalidProducerEpoch)
}

// Transactional reports whether p was created with a TransactionalID.
func (p *Producer) Transactional() bool { return p.ap.IsTransactional() }

// BeginTxn starts a transaction: the records sent until CommitTxn or
// AbortTxn belong to it.
func (p *Producer) BeginTxn() error {
	if err := p.txnOp(p.ap.BeginTxn); err != nil {
		return p.txnError("begin transaction", err)
	}
	return nil
}

// txnOp runs a transaction call of sarama's as a sender: Close closes
// sarama only after the call returned, since sarama panics when a call
// meets a closed producer and fails the records a commit is still
// flushing. It returns ErrClosed once Close has been called.
func (p *Producer) txnOp(op func() error) error {
	p.mu.RLock()
	if p.closed {
		p.mu.RUnlock()
		return ErrClosed
	}
	p.senders.Add(1)
	p.mu.RUnlock()
	defer p.senders.Done()
	return op()
}

// CommitTxn waits until every record sent since BeginTxn is written and
// commits them, atomically: read_committed consumers see all or none. On
// error the transaction is not committed; unless the error wraps ErrFenced,
// AbortTxn may make the producer usable again.
func (p *Producer) CommitTxn() error {
	if err := p.txnOp(p.ap.CommitTxn); err != nil {
		return p.txnError("commit transaction", err)
	}
	return nil
}

// AbortTxn aborts the open transaction: its records are never visible to
// read_committed consumers.
func (p *Producer) AbortTxn() error {
	if err := p.txnOp(p.ap.AbortTxn); err != nil {
		return p.txnError("abort transaction", err)
	}
	return nil
}

// txnError wraps err, adding ErrFenced when the broker says a newer
// producer epoch exists.
func (p *Producer) txnError(op string, err error) error {
	if errors.Is(err, sarama.ErrProducerFenced) {
		// sarama has no text for this code ("Unknown error ... 90").
		return fmt.Errorf("%s: %w (the broker answered PRODUCER_FENCED)", op, ErrFenced)
	}
	if IsFenced(err) {
		return fmt.Errorf("%s: %w: %w", op, ErrFenced, err)
	}
	if p.ap.TxnStatus()&sarama.ProducerTxnFlagFatalError != 0 {
		return fmt.Errorf("%s (the producer cannot continue): %w", op, err)
	}
	return fmt.Errorf("%s: %w", op, err)
}
