// Package pipeline runs one session of a connector: from a start point, it
// turns binlog items into records and hands them to Kafka, and moves the
// checkpoint over what Kafka acknowledged.
//
// Where things are decided:
//   - decode.go: the event decision — each binlog item becomes a
//     transaction-end marker, a record to publish, nothing (a row the
//     transformer skips), a dead-letter record, or a stop (outbox.on_error
//     fail);
//   - send.go and inflight.go: records are handed to the producer in binlog
//     order, bounded by count and bytes in flight;
//   - acks.go: acknowledgements settle their slots; the first failed one
//     ends the session;
//   - commit.go: the checkpoint rule — the committed point moves only over
//     settled slots and transaction ends (Tracker);
//   - checkpointer.go: when and how the committed point is written (a
//     Checkpointer outlives the sessions of one run), and txn.go the same
//     for delivery exactly_once, where checkpoints commit inside the Kafka
//     transactions of the events they cover;
//   - session.go: one session's goroutines, its shutdown order and which
//     error ends it.
//
// The lobby (package connector) resolves where a session starts, restarts it
// after a failure and owns the process's lifecycle; instrumentation reaches
// the pipeline only through Hooks.
package pipeline

import (
	"errors"
	"time"

	"github.com/tailbox-cdc/tailbox/pkg/binlog"
	"github.com/tailbox-cdc/tailbox/pkg/kafka"
)

// Config is what a session needs of the connector's configuration.
type Config struct {
	// Name is the connector's name: the key of its checkpoint record.
	Name string
	// ExactlyOnce: delivery exactly_once, in Kafka transactions that each
	// end with their checkpoint record.
	ExactlyOnce bool
	// TransactionalID is the producer's transactional.id (ExactlyOnce).
	TransactionalID string
	// TransactionInterval is how long a transaction stays open (ExactlyOnce).
	TransactionInterval time.Duration
	// CheckpointTopic is where a transaction's checkpoint record goes
	// (ExactlyOnce).
	CheckpointTopic string
	// CheckpointInterval is how often the checkpoint is written while the
	// stream moves.
	CheckpointInterval time.Duration
	// DeadLetterTopic, when set (outbox.on_error dead_letter), receives
	// poison events instead of the connector stopping before them.
	DeadLetterTopic string
}

// Hooks is the instrumentation a session calls, from its hot paths: an
// implementation must be cheap and must not block.
type Hooks interface {
	// Read counts a captured row change of t with operation op (decode
	// goroutine); only inserts are events.
	Read(t *binlog.Table, op binlog.Op)
	// Marker records a transaction end read (decode goroutine).
	Marker(p binlog.Position)
	// Acked counts an acknowledgement that arrived at now (Unix ns): a
	// record published to topic, with its transaction's commit time
	// (commitNanos, Unix ns; 0 unknown), or a failed one (err).
	Acked(topic string, commitNanos int64, err error, now int64)
	// Rejected counts an event for topic that stops the connector.
	Rejected(topic string, err error)
	// DeadLettered counts an event sent to the dead-letter topic instead
	// of topic.
	DeadLettered(topic string, err error)
	// Checkpointed records a checkpoint written (or committed) at p.
	Checkpointed(p binlog.Point)
	// CheckpointUnchanged records a periodic checkpoint that had nothing
	// new to write.
	CheckpointUnchanged()
	// Tracking records the progress of the session that starts from start.
	Tracking(pr Progress, start binlog.Point)
	// Streaming records that the run's stream flows from its start point
	// (an event or a heartbeat was read); it is called once per run, at the
	// latest when the session that streamed ends.
	Streaming()
}

// Progress is what the instrumentation reads of a session's progress.
type Progress = interface {
	// ReadPoint is the point after everything read.
	ReadPoint() binlog.Point
}

// Errors of a session; test with errors.Is.
var (
	// ErrRetry marks errors after which the lobby restarts the session
	// from the acknowledged checkpoint, with back-off.
	ErrRetry = errors.New("retriable")

	// ErrRejected is returned when an event cannot be delivered and
	// outbox.on_error is fail: the checkpoint stays before it.
	ErrRejected = errors.New("event rejected")

	// ErrCheckpoint is returned when the stored checkpoint cannot be used:
	// unparseable, written for other tables or another server. It is left
	// untouched; `tailbox offsets set` is the way out.
	ErrCheckpoint = errors.New("unusable checkpoint")

	// ErrFenced is returned when a newer producer with the same
	// transactional id — another tailbox with the same name, or the
	// replica that took over — fenced this one: it can never write again.
	ErrFenced = kafka.ErrFenced
)
