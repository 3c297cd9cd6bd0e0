// Package outbox turns captured outbox rows into Kafka events.
//
// A Transformer is a pure function from a binlog.Change to an Event: it does
// no I/O, does not log and starts no goroutines. It maps the outbox columns
// (Debezium Outbox Event Router names by default) to a topic, a key, headers
// and a value in one of three formats: the tailbox domain-event envelope,
// the Debezium Outbox Event Router's raw payload, or a CloudEvents 1.0
// structured JSON event.
package outbox

import (
	"errors"
	"time"
)

// Errors returned by Transform, to be tested with errors.Is. ErrUpdate and
// ErrMissingColumn are fatal: the configuration does not fit the data and
// every later row would fail the same way. ErrInvalidTopic, ErrInvalidPayload
// and ErrInvalidEvent concern one row only (a "poison" event, see IsPoison):
// the connector applies its on_error policy to them.
var (
	// ErrUpdate is returned for an UPDATE of an outbox row when
	// Options.OnUpdate is OnUpdateFail.
	ErrUpdate = errors.New("update of an outbox row")

	// ErrMissingColumn is returned when a column named in Options.Fields or
	// Options.Additional is not a column of the captured table. The error
	// names the table, the column and the option.
	ErrMissingColumn = errors.New("mapped column missing from table")

	// ErrInvalidTopic is returned when the rendered topic name does not match
	// ^[a-zA-Z0-9._-]{1,249}$ (or is "." or ".."), or when the template needs
	// the route_by value and it is NULL or does not match
	// Options.TopicRegex.
	ErrInvalidTopic = errors.New("invalid topic name")

	// ErrInvalidPayload is returned when the payload must be JSON
	// (Options.PayloadType PayloadJSON, or a MySQL JSON column) and is not
	// valid UTF-8 JSON.
	ErrInvalidPayload = errors.New("invalid payload")

	// ErrInvalidEvent is returned when the row cannot make an event: the
	// event id is NULL or empty; in FormatCloudEvents, the event type is
	// NULL or empty; the PlacementPartition column holds no partition
	// number.
	ErrInvalidEvent = errors.New("invalid event")
)

// IsPoison reports whether err makes only its own row unpublishable:
// ErrInvalidTopic, ErrInvalidPayload or ErrInvalidEvent. These are the errors
// the connector's on_error policy (fail or dead_letter) handles; any other
// error from Transform is fatal.
func IsPoison(err error) bool {
	return errors.Is(err, ErrInvalidTopic) ||
		errors.Is(err, ErrInvalidPayload) ||
		errors.Is(err, ErrInvalidEvent)
}

// Header is one Kafka record header. A nil Value is a header without a value
// (the column was NULL).
type Header struct {
	Key   string
	Value []byte
}

// Event is one Kafka record made from an outbox row. Key, Value and the
// header values of one Event share a backing array that Transform allocates
// for that Event alone: they stay valid and unchanged after later calls.
// The Headers slice itself is the Transformer's and is reused by its next
// call: copy it to keep it.
type Event struct {
	// ID is the event id (the Fields.ID column as text); it is also the "id"
	// header. Consumers de-duplicate by it.
	ID string
	// Topic is the rendered topic name.
	Topic string
	// Key is the aggregate id as UTF-8 text; nil is a NULL key (the record
	// goes to a random partition, without order).
	Key []byte
	// Value is the encoded event; nil is a tombstone (NULL value).
	Value []byte
	// Headers are the record headers, "id" first. The slice is reused by
	// the Transformer's next call (the values in it are not).
	Headers []Header
	// ExplicitPartition is set when a column with PlacementPartition held
	// a partition number: the record goes to Partition, not to the
	// partition of its key. False when there is no such column or it was
	// NULL.
	ExplicitPartition bool
	// Partition is the record's partition when ExplicitPartition is set.
	Partition int32
	// Timestamp is occurredAt: the timestamp column when configured and
	// valid, else the commit time, in UTC, truncated to the precision that is
	// printed (microseconds or seconds). It is the Kafka record timestamp.
	Timestamp time.Time
}

// Action is what the caller does with a Result. The zero value is Skip.
type Action int

// Actions.
const (
	// Skip means there is nothing to publish for this row.
	Skip Action = iota
	// Publish means Result.Event is to be published.
	Publish
)

// String returns "skip" or "publish".
func (a Action) String() string {
	switch a {
	case Skip:
		return "skip"
	case Publish:
		return "publish"
	}
	return "action(" + itoa(int(a)) + ")"
}

// Result is the outcome of Transform for one row.
type Result struct {
	// Action says whether Event is to be published.
	Action Action
	// Event is the event when Action is Publish. With a poison error (see
	// IsPoison) it holds what could be built, for a dead-letter record:
	// Topic is the rendered (invalid) name or "", Key, Headers and Timestamp
	// are as usual, and Value is the payload column as stored (nil for
	// NULL), whatever the format.
	Event Event
	// Warning, when not empty, is something the caller should log: an
	// UPDATE dropped under OnUpdateWarn; a timestamp column value that
	// was NULL, a zero date or unparsable, so that occurredAt fell back to
	// the commit time; a trace context that is not a valid W3C traceparent,
	// so that the trace headers were left out. The event is still
	// published in the latter cases.
	Warning string
}
