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

// ErrFenced is returned by the transaction methods when a newer producer
// with the same transactional id (another tailbox with the same name, or
// the replica that took over) has fenced this one: it can never write
// again and must be closed.
var ErrFenced = errors.New("producer fenced by a newer producer with the same transactional id")

// Transactional reports whether p was created with a TransactionalID.
func (p *Producer) Transactional() bool { return p.ap.IsTransactional() }

// BeginTxn starts a transaction: the records sent until CommitTxn or
// AbortTxn belong to it.
func (p *Producer) BeginTxn() error {
	if err := p.ap.BeginTxn(); err != nil {
		return p.txnError("begin transaction", err)
	}
	return nil
}

// CommitTxn waits until every record sent since BeginTxn is written and
// commits them, atomically: read_committed consumers see all or none. On
// error the transaction is not committed; unless the error wraps ErrFenced,
// AbortTxn may make the producer usable again.
func (p *Producer) CommitTxn() error {
	if err := p.ap.CommitTxn(); err != nil {
		return p.txnError("commit transaction", err)
	}
	return nil
}

// AbortTxn aborts the open transaction: its records are never visible to
// read_committed consumers.
func (p *Producer) AbortTxn() error {
	if err := p.ap.AbortTxn(); err != nil {
		return p.txnError("abort transaction", err)
	}
	return nil
}

// txnError wraps err, adding ErrFenced when the broker says a newer
// producer epoch exists.
func (p *Producer) txnError(op string, err error) error {
	if errors.Is(err, sarama.ErrProducerFenced) || errors.Is(err, sarama.ErrInvalidProducerEpoch) {
		return fmt.Errorf("%s: %w: %w", op, ErrFenced, err)
	}
	if p.ap.TxnStatus()&sarama.ProducerTxnFlagFatalError != 0 {
		return fmt.Errorf("%s (the producer cannot continue): %w", op, err)
	}
	return fmt.Errorf("%s: %w", op, err)
}
