package kafka

import (
	"errors"
	"fmt"

	"github.com/IBM/sarama"
)

// Sentinel errors. Callers test for them with errors.Is; the errors returned
// carry what the call was doing around them.
var (
	// ErrInvalidConfig is wrapped by every problem Config.Validate reports,
	// and so by New for an invalid Config, and by ParseAcks. Fatal: fix the
	// configuration.
	ErrInvalidConfig = errors.New("invalid kafka configuration")

	// ErrUnreachable is wrapped by New when no broker accepted a TCP
	// connection within Config.DialTimeout; the message names the brokers
	// and the last dial error. Retriable: the brokers may come back.
	ErrUnreachable = errors.New("no kafka broker reachable")

	// ErrAuthentication is wrapped by New when a broker refused the SASL
	// credentials (SASL_AUTHENTICATION_FAILED, an unsupported mechanism, or
	// a broker that closes the connection during the SASL exchange, as
	// kfake and Kafka before 1.0 do); the message names the mechanism, the
	// user and the broker, never the password. Fatal: retrying with the
	// same credentials cannot succeed.
	ErrAuthentication = errors.New("kafka SASL authentication failed")

	// ErrClosed is returned by Send once Close has been called, also to a
	// Send that was blocked when Close was called, and by BeginTxn,
	// CommitTxn and AbortTxn once Close has been called.
	ErrClosed = errors.New("kafka producer is closed")

	// ErrAbandoned is wrapped by Close's error when its context ended
	// before the outcome of every record sent was known, and by the
	// Ack.Err of each record sarama failed after that. Retriable: those
	// records may or may not have been written; send them again.
	ErrAbandoned = errors.New("kafka producer closed before the record's outcome was known")

	// ErrHalted is wrapped, with the error sarama returned, by the Ack.Err
	// of every record that failed after another record did, in a producer
	// that is not transactional: from the first failed record on, such a
	// producer writes nothing more to Kafka (the records queued behind it
	// or sent after it fail instead), so that no record is written ahead
	// of one that must be sent again. The first failure's Ack does not
	// wrap it. A record rejected before it is sent, for being over
	// MaxMessageBytes, does not halt the producer. Retriable: send the
	// failed records again, in order, with a new producer.
	ErrHalted = errors.New("kafka producer halted by an earlier failed record")

	// ErrNilRecord is returned by Send for a nil *Record.
	ErrNilRecord = errors.New("nil record")

	// ErrInvalidPartition is wrapped by Ack.Err (and by Fits) for a record
	// with Record.ExplicitPartition whose Partition is negative or not
	// below the topic's partition count. Permanent: see IsPermanent. It
	// does not halt the producer: the record is rejected before it is
	// sent.
	ErrInvalidPartition = errors.New("record partition outside the topic's partitions")

	// ErrTooLarge is wrapped by Ack.Err for a record larger than
	// Config.MaxMessageBytes (rejected before it is sent) or than the broker
	// or topic accepts (MESSAGE_TOO_LARGE, RECORD_LIST_TOO_LARGE; the sarama
	// KError is wrapped too). Permanent: see IsPermanent.
	ErrTooLarge = errors.New("record too large")
)

// permanentKErrors are the broker errors about a record or its topic that
// sending the same record to the same topic again cannot fix.
var permanentKErrors = []sarama.KError{
	sarama.ErrMessageSizeTooLarge,         // MESSAGE_TOO_LARGE: over the topic's max.message.bytes
	sarama.ErrMessageSetSizeTooLarge,      // RECORD_LIST_TOO_LARGE
	sarama.ErrInvalidTopic,                // INVALID_TOPIC_EXCEPTION: illegal name, or an internal topic
	sarama.ErrTopicAuthorizationFailed,    // TOPIC_AUTHORIZATION_FAILED: no WRITE on this topic
	sarama.ErrInvalidRecord,               // INVALID_RECORD: e.g. a NULL key on a compacted topic
	sarama.ErrInvalidTimestamp,            // INVALID_TIMESTAMP: outside message.timestamp.*.max.ms
	sarama.ErrPolicyViolation,             // POLICY_VIOLATION
	sarama.ErrUnsupportedForMessageFormat, // UNSUPPORTED_FOR_MESSAGE_FORMAT: e.g. headers on an old format
}

// IsPermanent reports whether err, an Ack.Err, is a rejection of that record
// or its topic that no retry can fix, so that the caller may dead-letter the
// record instead of stopping: ErrTooLarge (over MaxMessageBytes, or the
// broker's MESSAGE_TOO_LARGE / RECORD_LIST_TOO_LARGE), ErrInvalidPartition
// (an explicit partition the topic does not have) and the broker errors
// INVALID_TOPIC_EXCEPTION (also returned by sarama for an empty topic),
// TOPIC_AUTHORIZATION_FAILED, INVALID_RECORD (a NULL key on a compacted
// topic), INVALID_TIMESTAMP, POLICY_VIOLATION and
// UNSUPPORTED_FOR_MESSAGE_FORMAT.
//
// Everything else is not permanent: unreachable or restarting brokers,
// leader changes, UNKNOWN_TOPIC_OR_PARTITION (the topic may yet be created),
// timeouts, and failures of the whole connection that are not about the
// record (SASL authentication, CLUSTER_AUTHORIZATION_FAILED), which the
// connector handles by restarting the producer with back-off. Sarama's
// ErrMessageTooLarge is a consumer error and never appears in an Ack.
func IsPermanent(err error) bool {
	if err == nil {
		return false
	}
	if errors.Is(err, ErrTooLarge) || errors.Is(err, ErrInvalidPartition) {
		return true
	}
	for _, k := range permanentKErrors {
		if errors.Is(err, k) {
			return true
		}
	}
	return false
}

// ackError wraps the error sarama returned for msg with the topic and, for a
// record too large, ErrTooLarge.
func ackError(msg *sarama.ProducerMessage, err error, maxMessageBytes int) error {
	var cfgErr sarama.ConfigurationError
	switch {
	case errors.Is(err, sarama.ErrMessageSizeTooLarge), errors.Is(err, sarama.ErrMessageSetSizeTooLarge):
		err = fmt.Errorf("%w: %w", ErrTooLarge, err)
	case errors.As(err, &cfgErr) && msg.ByteSize(2) > maxMessageBytes:
		// Sarama's dispatcher rejects records over Producer.MaxMessageBytes
		// with a ConfigurationError before sending them.
		err = fmt.Errorf("%w: %d bytes > max_message_bytes %d", ErrTooLarge, msg.ByteSize(2), maxMessageBytes)
	}
	return fmt.Errorf("produce to topic %q: %w", msg.Topic, err)
}

// partitionError is the error of a record whose explicit partition the
// topic does not have; n < 0 when the partition count is not known.
func partitionError(topic string, partition, n int32) error {
	if n < 0 {
		return fmt.Errorf("%w: partition %d of topic %q is negative", ErrInvalidPartition, partition, topic)
	}
	return fmt.Errorf("%w: partition %d of topic %q, which has %d partitions (0 to %d)", ErrInvalidPartition, partition, topic, n, n-1)
}
