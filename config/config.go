// Package config is tailbox's configuration: the YAML schema as Go types, the
// defaults, loading with environment expansion, and validation. It is plain
// data; connector/ maps it onto each stage's own options.
package config

import "time"

// Config is one connector's whole configuration, one YAML file.
type Config struct {
	// Name identifies the connector (checkpoint, logs, envelope source). Required.
	Name       string     `yaml:"name"`
	Source     Source     `yaml:"source"`
	Start      Start      `yaml:"start"`
	Outbox     Outbox     `yaml:"outbox"`
	Kafka      Kafka      `yaml:"kafka"`
	Checkpoint Checkpoint `yaml:"checkpoint"`
	// Delivery is at_least_once (default) or exactly_once (Kafka
	// transactions; needs checkpoint.store: kafka).
	Delivery Delivery `yaml:"delivery"`
	HA       HA       `yaml:"ha"`
	HTTP     HTTP     `yaml:"http"`
	Log      Log      `yaml:"log"`
}

// Secret is a password or other credential. Its String, GoString, YAML and
// JSON forms are redacted so that it never reaches a log or an error by
// accident; use Reveal to read it.
type Secret string

// Addrs is a list of host:port addresses, written in YAML as a list or as
// one string of comma-separated addresses ("h1:9092,h2:9092", the form
// Kafka's own tools take), spaces around each address dropped.
type Addrs []string

// Duration is a time.Duration written in YAML as a Go duration string ("10s", "1m30s").
type Duration time.Duration

// Delivery is the delivery guarantee, written in YAML as its value below.
// Parse keeps any string; Validate accepts only AtLeastOnce and ExactlyOnce.
// The zero value "" is invalid; Default sets AtLeastOnce.
type Delivery string

// Deliveries.
const (
	// AtLeastOnce sends every event at least once: after a crash or a
	// producer failure, events after the checkpoint may be sent again.
	AtLeastOnce Delivery = "at_least_once"
	// ExactlyOnce sends events and the checkpoint covering them in one Kafka
	// transaction; needs StoreKafka and AcksAll.
	ExactlyOnce Delivery = "exactly_once"
)

// OnError is what happens to an event that cannot be sent, known before
// sending (too large, invalid topic name, NULL key on a compacted topic).
// Parse keeps any string; Validate accepts only OnErrorFail and
// OnErrorDeadLetter. The zero value "" is invalid; Default sets OnErrorFail.
type OnError string

// Choices of outbox.on_error.
const (
	// OnErrorFail stops the connector before the event; the checkpoint
	// stays before it.
	OnErrorFail OnError = "fail"
	// OnErrorDeadLetter sends the event to outbox.dead_letter_topic instead.
	OnErrorDeadLetter OnError = "dead_letter"
)

// Store is where the checkpoint is kept. Parse keeps any string; Validate
// accepts only StoreFile and StoreKafka. The zero value "" is invalid;
// Default sets StoreFile.
type Store string

// Checkpoint stores.
const (
	// StoreFile keeps the checkpoint in the local file checkpoint.file.
	StoreFile Store = "file"
	// StoreKafka keeps the checkpoint in the compacted topic checkpoint.topic.
	StoreKafka Store = "kafka"
)

// Acks is the producer's acknowledgement level as written in YAML; connector
// maps it onto kafka.Acks with kafka.ParseAcks. Parse keeps any string;
// Validate accepts only AcksAll, AcksLeader and AcksNone. The zero value ""
// is invalid; Default sets AcksAll.
type Acks string

// Acknowledgement levels.
const (
	// AcksAll waits for every in-sync replica (Kafka's acks=all).
	AcksAll Acks = "all"
	// AcksLeader waits for the partition leader only (acks=1).
	AcksLeader Acks = "1"
	// AcksNone does not wait for the broker (acks=0).
	AcksNone Acks = "0"
)

// Source is the MySQL/MariaDB server tailbox reads the binlog from.
type Source struct {
	// Addr is host:port. Required.
	Addr string `yaml:"addr"`
	// User is the replication user. Required.
	User string `yaml:"user"`
	// Password is the user's password; mutually exclusive with PasswordFile.
	Password Secret `yaml:"password"`
	// PasswordFile names a file whose content (trailing newline trimmed) is the password.
	PasswordFile string `yaml:"password_file"`
	// ServerID is the replica server_id tailbox registers with; unique
	// among the server's replicas. Default (absent or 0): DefaultServerID
	// of Name, from 1,000,000,000 to 1,999,999,999.
	ServerID uint32 `yaml:"server_id"`
	// Flavor is auto (default), mysql or mariadb.
	Flavor string    `yaml:"flavor"`
	TLS    SourceTLS `yaml:"tls"`
	// Heartbeat is the replication heartbeat period the server is asked for;
	// the read timeout is 3× it. Default 10s.
	Heartbeat Duration `yaml:"heartbeat"`
	// AllowMinimalMetadata lets tailbox run without binlog_row_metadata=FULL,
	// taking column names from information_schema. Default false.
	AllowMinimalMetadata bool `yaml:"allow_minimal_metadata"`
}

// SourceTLS is the TLS setting of the MySQL connection.
type SourceTLS struct {
	// Mode is disabled, preferred (default), required, verify_ca or verify_identity.
	Mode     TLSMode `yaml:"mode"`
	CAFile   string  `yaml:"ca_file"`
	CertFile string  `yaml:"cert_file"`
	KeyFile  string  `yaml:"key_file"`
}

// TLSMode is source.tls.mode: whether and how the MySQL connections use
// TLS, named as MySQL's --ssl-mode values. Validate accepts exactly the
// constants below; Parse leaves any string for Validate to report.
type TLSMode string

// Values of source.tls.mode.
const (
	// TLSDisabled connects without TLS.
	TLSDisabled TLSMode = "disabled"
	// TLSPreferred uses TLS, without verifying the server, when the server
	// offers it (the default).
	TLSPreferred TLSMode = "preferred"
	// TLSRequired uses TLS without verifying the server.
	TLSRequired TLSMode = "required"
	// TLSVerifyCA uses TLS and checks the server's certificate against
	// source.tls.ca_file.
	TLSVerifyCA TLSMode = "verify_ca"
	// TLSVerifyIdentity is TLSVerifyCA, and the certificate must name the
	// host of source.addr.
	TLSVerifyIdentity TLSMode = "verify_identity"
)

// Start is where a connector without a checkpoint begins.
type Start struct {
	// From is latest (default), earliest, FILE:POS, gtid:SET or time:RFC3339.
	From string `yaml:"from"`
}

// Outbox says which tables are outbox tables and how their rows become events.
type Outbox struct {
	// Tables are the captured tables as schema.table. Required, at least one.
	Tables []string `yaml:"tables"`
	Fields Fields   `yaml:"fields"`
	// Additional are extra columns copied to headers or the envelope.
	Additional []Additional `yaml:"additional"`
	Route      Route        `yaml:"route"`
	// Format is envelope (default), debezium or cloudevents.
	Format string `yaml:"format"`
	// PayloadType is auto (default), json, string or bytes.
	PayloadType string `yaml:"payload_type"`
	// TimestampZone is the IANA zone DATETIME timestamp columns are read in. Default UTC.
	TimestampZone string `yaml:"timestamp_zone"`
	// OnUpdate is warn (default), ignore or fail.
	OnUpdate string `yaml:"on_update"`
	// OnError is fail (default) or dead_letter.
	OnError OnError `yaml:"on_error"`
	// DeadLetterTopic receives events on_error sends aside; required with dead_letter.
	DeadLetterTopic string `yaml:"dead_letter_topic"`
	// Tracing names the columns carrying a W3C trace context to the
	// traceparent and tracestate headers. Default: none.
	Tracing Tracing `yaml:"tracing"`
	// TombstoneOnEmptyPayload sends a record with a NULL value (a tombstone)
	// when the payload column is NULL, instead of an event whose payload is null.
	// Only meaningful with the debezium format. Default false.
	TombstoneOnEmptyPayload bool `yaml:"tombstone_on_empty_payload"`
	// Cleanup deletes published rows from the outbox tables once the
	// checkpoint that covers their events is durable. Off by default.
	Cleanup Cleanup `yaml:"cleanup"`
}

// Cleanup is outbox.cleanup: tailbox deletes the rows of published events
// by outbox.fields.id (the tables' primary key), in batches, only once the
// checkpoint covering their events is durable (the file fsynced, the Kafka
// record acknowledged or the Kafka transaction committed).
type Cleanup struct {
	// Enabled turns cleanup on. Default false: tailbox never writes to
	// the source.
	Enabled bool `yaml:"enabled"`
	// Retention keeps a published row at least this long after its
	// transaction committed before deleting it, so the table can still be
	// re-read. Default 0: deleted as soon as its checkpoint is durable.
	Retention Duration `yaml:"retention"`
	// BatchSize is the most rows one DELETE statement removes. Default 500.
	BatchSize int `yaml:"batch_size"`
	// Rate is the most rows deleted per second. Default 5000.
	Rate int `yaml:"rate"`
	// MaxPending is the most published rows remembered for deletion; rows
	// published while it is reached are deleted after the next restart
	// (which reads their keys back from the binlog). Default 1000000.
	MaxPending int `yaml:"max_pending"`
}

// Fields maps the outbox roles to column names. Defaults follow Debezium's
// Outbox Event Router: id, aggregateid, type, payload, aggregatetype, and no
// timestamp column.
type Fields struct {
	ID        string `yaml:"id"`
	Key       string `yaml:"key"`
	Type      string `yaml:"type"`
	Payload   string `yaml:"payload"`
	RouteBy   string `yaml:"route_by"`
	Timestamp string `yaml:"timestamp"`
	// SchemaVersion is an optional column whose value becomes the
	// schemaVersion header (absent when NULL). Default "": none.
	SchemaVersion string `yaml:"schema_version"`
}

// Tracing names the trace context columns of the outbox table. A valid
// W3C traceparent becomes the traceparent header and its tracestate the
// tracestate header; NULL or empty values leave the headers out; an
// invalid traceparent is dropped with a warning.
type Tracing struct {
	// TraceParent is a column holding a W3C traceparent. Default "": none.
	TraceParent string `yaml:"traceparent"`
	// TraceState is a column holding the tracestate; needs TraceParent.
	TraceState string `yaml:"tracestate"`
	// SpanContext is a column in Debezium's tracingspancontext form (Java
	// properties text with traceparent= and tracestate= lines); not with
	// TraceParent. Default "": none.
	SpanContext string `yaml:"span_context"`
}

// Additional copies one more column into each event.
type Additional struct {
	// Column is the outbox column to copy. Required.
	Column string `yaml:"column"`
	// Placement is header (default), envelope or partition (the column's
	// integer value chooses the Kafka partition; at most one column).
	Placement string `yaml:"placement"`
	// As is the header or envelope field name; default the column name.
	// Unused with placement partition.
	As string `yaml:"as"`
}

// Route computes each event's topic.
type Route struct {
	// Topic is a template; ${routedByValue} is replaced by the route_by
	// column's value, ${table} and ${schema} by the captured table's names,
	// and $1, ${1}, ${name} by the groups of TopicRegex. Default
	// "outbox.event.${routedByValue}".
	Topic string `yaml:"topic"`
	// TopicRegex is a regular expression (RE2) that must match the whole
	// route_by value; its groups can be used in Topic. Default "": none.
	TopicRegex string `yaml:"topic_regex"`
}

// Kafka is the cluster events are produced to.
type Kafka struct {
	// Brokers are host:port bootstrap addresses, a list or one
	// comma-separated string. Required.
	Brokers Addrs `yaml:"brokers"`
	// Acks is all (default), 1 or 0.
	Acks Acks `yaml:"acks"`
	// Compression is none, gzip, snappy, lz4 (default) or zstd.
	Compression string `yaml:"compression"`
	// ClientID is the Kafka client id. Default "tailbox-" + name.
	ClientID string `yaml:"client_id"`
	// MaxMessageBytes is the largest record the producer sends. Default 1000000.
	MaxMessageBytes int `yaml:"max_message_bytes"`
	// Linger is how long the producer waits to fill a batch. Default 5ms.
	Linger Duration `yaml:"linger"`
	// TransactionInterval is how long a Kafka transaction of
	// delivery: exactly_once collects events before it commits them with
	// their checkpoint; read_committed consumers see events only then.
	// Default 100ms.
	TransactionInterval Duration `yaml:"transaction_interval"`
	TLS                 KafkaTLS `yaml:"tls"`
	SASL                SASL     `yaml:"sasl"`
}

// KafkaTLS is the TLS setting of the Kafka connections.
type KafkaTLS struct {
	Enabled            bool   `yaml:"enabled"`
	CAFile             string `yaml:"ca_file"`
	CertFile           string `yaml:"cert_file"`
	KeyFile            string `yaml:"key_file"`
	InsecureSkipVerify bool   `yaml:"insecure_skip_verify"`
}

// SASL is Kafka authentication. An empty Mechanism means none.
type SASL struct {
	// Mechanism is "", PLAIN, SCRAM-SHA-256 or SCRAM-SHA-512.
	Mechanism    string `yaml:"mechanism"`
	User         string `yaml:"user"`
	Password     Secret `yaml:"password"`
	PasswordFile string `yaml:"password_file"`
}

// Checkpoint is where the binlog position is stored.
type Checkpoint struct {
	// Store is file (default) or kafka: the latest record of key name in
	// the compacted topic Topic.
	Store Store `yaml:"store"`
	// File is the checkpoint file path; Load resolves a relative one
	// against the config file's directory. Default
	// ./data/<name>.checkpoint.json, next to the config file.
	File string `yaml:"file"`
	// Interval is how often the checkpoint is written while running. Default 1s.
	Interval Duration `yaml:"interval"`
	// Topic is the compacted topic of the kafka store. Default tailbox.checkpoints.
	Topic string `yaml:"topic"`
}

// HA runs several replicas with the same name, one of them active: the
// member of consumer group "tailbox-<name>" that the one-partition topic
// LeaseTopic is assigned to. Needs checkpoint.store: kafka and
// delivery: exactly_once (the transactional producer fences a former
// leader).
type HA struct {
	Enabled bool `yaml:"enabled"`
	// SessionTimeout is how long a silent active replica keeps the lease;
	// within the broker's group.min/max.session.timeout.ms (6s to 30min by
	// default). Default 10s.
	SessionTimeout Duration `yaml:"session_timeout"`
	// LeaseTopic is the one-partition lease topic. Default tailbox.lease.
	LeaseTopic string `yaml:"lease_topic"`
}

// HTTP is the observability endpoint run serves: /metrics (Prometheus),
// /healthz (liveness) and /readyz (readiness).
type HTTP struct {
	// Listen is host:port; default 127.0.0.1:7391, "" disables it. Port 0
	// picks a free port, which the "http listening" log line names. 7391
	// is outside the ports applications and their sidecars commonly take
	// (8080 and the rest of 8000-8099, 3000, 5000, 9000, Kafka Connect's
	// 8083, Istio's 15000-15090, Linkerd's 4140-4191) and outside the
	// Prometheus exporters' registry (9100-9999, fully allocated).
	Listen string `yaml:"listen"`
}

// Log configures logging.
type Log struct {
	// Level is debug, info (default), warn or error.
	Level string `yaml:"level"`
	// Format is json (default) or console.
	Format string `yaml:"format"`
	// StatusInterval is how often run logs a one-line status (events/s,
	// lag, position, in flight); 0 disables it. Default 30s.
	StatusInterval Duration `yaml:"status_interval"`
}
