package config

import (
	"errors"
	"reflect"
	"strings"
	"testing"
	"time"
)

// validConfig returns a valid Config, as Parse returns the minimal file.
func validConfig(t *testing.T) *Config {
	t.Helper()
	cfg, err := Parse([]byte(minimal), nil, "")
	if err != nil {
		t.Fatalf("Parse(minimal): %v", err)
	}
	return cfg
}

func TestValidate(t *testing.T) {
	tests := []struct {
		name   string
		mutate func(c *Config)
		want   []string // nil: valid
	}{
		{"the minimal file is valid", func(c *Config) {}, nil},
		{"a name with a space is rejected", func(c *Config) { c.Name = "shop outbox" },
			[]string{`name: must be 1 to 100 letters, digits, '.', '_' or '-' (got "shop outbox")`}},
		{"a 101-character name is rejected", func(c *Config) { c.Name = strings.Repeat("n", 101) },
			[]string{`name: must be 1 to 100 letters, digits, '.', '_' or '-' (got "` + strings.Repeat("n", 101) + `")`}},
		{"a name without derived defaults reports them", func(c *Config) { c.Kafka.ClientID, c.Checkpoint.File = "", "" },
			[]string{"kafka.client_id: required", "checkpoint.file: required"}},
		{"an address without a port is rejected", func(c *Config) { c.Source.Addr = "db" },
			[]string{`source.addr: must be host:port (got "db")`}},
		{"an address without a host is rejected", func(c *Config) { c.Source.Addr = ":3306" },
			[]string{`source.addr: must be host:port (got ":3306")`}},
		{"a port out of range is rejected", func(c *Config) { c.Source.Addr = "db:70000" },
			[]string{`source.addr: port must be a number from 1 to 65535 (got "db:70000")`}},
		{"an IPv6 address is accepted", func(c *Config) { c.Source.Addr = "[::1]:3306" }, nil},
		{"a missing user is rejected", func(c *Config) { c.Source.User = "" },
			[]string{"source.user: required"}},
		{"server_id 0 is rejected", func(c *Config) { c.Source.ServerID = 0 },
			[]string{"source.server_id: must not be 0; use an id unique among the server's replicas (got 0)"}},
		{"an unknown flavor is rejected", func(c *Config) { c.Source.Flavor = "percona" },
			[]string{`source.flavor: must be auto, mysql or mariadb (got "percona")`}},
		{"an unknown tls mode is rejected", func(c *Config) { c.Source.TLS.Mode = "on" },
			[]string{`source.tls.mode: must be disabled, preferred, required, verify_ca or verify_identity (got "on")`}},
		{"verify_identity needs a CA file", func(c *Config) { c.Source.TLS.Mode = "verify_identity" },
			[]string{"source.tls.ca_file: required with tls.mode verify_identity"}},
		{"verify_ca with a CA file is accepted", func(c *Config) { c.Source.TLS = SourceTLS{Mode: "verify_ca", CAFile: "ca.pem"} }, nil},
		{"TLS files with TLS disabled are rejected", func(c *Config) { c.Source.TLS = SourceTLS{Mode: "disabled", CAFile: "ca.pem"} },
			[]string{`source.tls.ca_file: has no effect with source.tls.mode disabled (got "ca.pem")`}},
		{"a certificate without its key is rejected", func(c *Config) { c.Source.TLS.CertFile = "client.pem" },
			[]string{"source.tls.key_file: required with source.tls.cert_file"}},
		{"a heartbeat under 1s is rejected", func(c *Config) { c.Source.Heartbeat = Duration(500 * time.Millisecond) },
			[]string{"source.heartbeat: must be at least 1s (got 500ms)"}},
		{"an unknown start is rejected", func(c *Config) { c.Start.From = "beginning" },
			[]string{`start.from: must be latest, earliest, FILE:POS, gtid:SET or time:RFC3339 (got "beginning")`}},
		{"an empty start is rejected", func(c *Config) { c.Start.From = "" },
			[]string{`start.from: must be latest, earliest, FILE:POS, gtid:SET or time:RFC3339 (got "")`}},
		{"no tables is rejected", func(c *Config) { c.Outbox.Tables = nil },
			[]string{"outbox.tables: at least one schema.table required"}},
		{"tables without a schema or with two dots are rejected", func(c *Config) { c.Outbox.Tables = []string{"outbox", ".outbox", "shop.", "a.b.c"} },
			[]string{
				`outbox.tables[0]: must be schema.table (got "outbox")`,
				`outbox.tables[1]: must be schema.table (got ".outbox")`,
				`outbox.tables[2]: must be schema.table (got "shop.")`,
				`outbox.tables[3]: must be schema.table (got "a.b.c")`,
			}},
		{"a duplicate table is rejected", func(c *Config) { c.Outbox.Tables = []string{"shop.outbox", "billing.outbox", "shop.outbox"} },
			[]string{`outbox.tables[2]: duplicate of outbox.tables[0] (got "shop.outbox")`}},
		{"empty field names are rejected, except timestamp", func(c *Config) { c.Outbox.Fields = Fields{} },
			[]string{
				"outbox.fields.id: required",
				"outbox.fields.key: required",
				"outbox.fields.type: required",
				"outbox.fields.payload: required",
				"outbox.fields.route_by: required",
			}},
		{"additional columns are checked", func(c *Config) {
			c.Outbox.Additional = []Additional{
				{Column: "tenant", Placement: "header", As: "tenantId"},
				{Column: "tenant2", Placement: "header", As: "tenantId"},
				{Column: "region", Placement: "envelope", As: "tenantId"},
				{Column: "t", Placement: "envelope", As: "occurredAt"},
				{Column: "u", Placement: "header", As: "id"},
				{Column: "v", Placement: "", As: ""},
			}
		},
			[]string{
				`outbox.additional[1].as: same header name as outbox.additional[0] (got "tenantId")`,
				`outbox.additional[3].as: is a key of the envelope itself (id, type, aggregateType, aggregateId, occurredAt, payload, source) (got "occurredAt")`,
				`outbox.additional[4].as: is a header tailbox sets itself (id, type) (got "id")`,
				`outbox.additional[5].placement: must be header, envelope or partition (got "")`,
				"outbox.additional[5].as: required",
			}},
		{"a fixed topic is accepted", func(c *Config) { c.Outbox.Route.Topic = "shop.events" }, nil},
		{"the router keys are accepted", func(c *Config) {
			c.Outbox.Route.Topic = "${schema}.${table}.${domain}.$2"
			c.Outbox.Route.TopicRegex = `(?<domain>[a-z]+)\.v([0-9]+)`
			c.Outbox.Fields.SchemaVersion = "schema_version"
			c.Outbox.Additional = []Additional{{Column: "shard", Placement: "partition", As: "shard"}}
			c.Outbox.Tracing = Tracing{TraceParent: "traceparent", TraceState: "tracestate"}
		}, nil},
		{"Debezium's span context column is accepted", func(c *Config) {
			c.Outbox.Tracing = Tracing{SpanContext: "tracingspancontext"}
		}, nil},
		{"router key problems are reported", func(c *Config) {
			c.Outbox.Route.Topic = "t.$3.${nope}"
			c.Outbox.Route.TopicRegex = `(a)(b)`
			c.Outbox.Additional = []Additional{
				{Column: "p", Placement: "partition", As: "p"},
				{Column: "q", Placement: "partition", As: "other"},
			}
			c.Outbox.Tracing = Tracing{TraceParent: "tp", SpanContext: "sc"}
		}, []string{
			`outbox.additional[1].placement: only one column can choose the partition; outbox.additional[0] does (got "partition")`,
			`outbox.additional[1].as: has no effect with placement partition (got "other")`,
			`outbox.route.topic: capture group $3: outbox.route.topic_regex has 2 groups (got "t.$3.${nope}")`,
			`outbox.route.topic: unknown placeholder ${nope}: outbox.route.topic_regex has no group of that name (got "t.$3.${nope}")`,
			`outbox.tracing.span_context: not with outbox.tracing.traceparent: one column carries the trace context (got "sc")`,
		}},
		{"a capture group without a regex and a bad regex are reported", func(c *Config) {
			c.Outbox.Route.Topic = "t.$1"
			c.Outbox.Tracing = Tracing{TraceState: "ts"}
		}, []string{
			`outbox.route.topic: capture group $1 needs outbox.route.topic_regex (got "t.$1")`,
			`outbox.tracing.tracestate: needs outbox.tracing.traceparent (got "ts")`,
		}},
		{"a regex RE2 does not support is reported", func(c *Config) {
			c.Outbox.Route.TopicRegex = `(?=x)(.*)`
			c.Outbox.Route.Topic = "t.$1"
		}, []string{
			"outbox.route.topic_regex: not a valid regular expression (RE2 syntax; no lookaround or backreferences): invalid or unsupported Perl syntax: `(?=` (got \"(?=x)(.*)\")",
		}},
		{"headers of the schema version and tracing are reserved", func(c *Config) {
			c.Outbox.Fields.SchemaVersion = "v"
			c.Outbox.Tracing = Tracing{TraceParent: "tp"}
			c.Outbox.Additional = []Additional{
				{Column: "sv", Placement: "header", As: "schemaVersion"},
				{Column: "tp2", Placement: "header", As: "traceparent"},
			}
		}, []string{
			`outbox.additional[0].as: is the header of outbox.fields.schema_version (got "schemaVersion")`,
			`outbox.additional[1].as: is a header of outbox.tracing (got "traceparent")`,
		}},
		{"an empty topic is rejected", func(c *Config) { c.Outbox.Route.Topic = "" },
			[]string{"outbox.route.topic: required"}},
		{"a topic of . is rejected", func(c *Config) { c.Outbox.Route.Topic = "." },
			[]string{`outbox.route.topic: must be a Kafka topic name (1 to 249 letters, digits, '.', '_' or '-') with optional placeholders ${routedByValue}, ${table}, ${schema}, $1, ${name} (got ".")`}},
		{"a template too long for a topic is rejected", func(c *Config) { c.Outbox.Route.Topic = strings.Repeat("t", 249) + "${routedByValue}" },
			[]string{`outbox.route.topic: must be a Kafka topic name (1 to 249 letters, digits, '.', '_' or '-') with optional placeholders ${routedByValue}, ${table}, ${schema}, $1, ${name} (got "` + strings.Repeat("t", 249) + `${routedByValue}")`}},
		{"a misspelt placeholder is rejected", func(c *Config) { c.Outbox.Route.Topic = "outbox.${routedbyvalue}" },
			[]string{`outbox.route.topic: unknown placeholder ${routedbyvalue}; use ${routedByValue}, ${table}, ${schema} or a group of outbox.route.topic_regex (got "outbox.${routedbyvalue}")`}},
		{"an unterminated placeholder is rejected", func(c *Config) { c.Outbox.Route.Topic = "outbox.${routedByValue" },
			[]string{`outbox.route.topic: must be a Kafka topic name (1 to 249 letters, digits, '.', '_' or '-') with optional placeholders ${routedByValue}, ${table}, ${schema}, $1, ${name} (got "outbox.${routedByValue")`}},
		{"outbox enums are checked", func(c *Config) {
			c.Outbox.Format, c.Outbox.PayloadType, c.Outbox.OnUpdate, c.Outbox.OnError = "avro", "text", "skip", "retry"
		},
			[]string{
				`outbox.format: must be envelope, debezium or cloudevents (got "avro")`,
				`outbox.payload_type: must be auto, json, string or bytes (got "text")`,
				`outbox.on_update: must be warn, ignore or fail (got "skip")`,
				`outbox.on_error: must be fail or dead_letter (got "retry")`,
			}},
		{"an empty time zone is rejected", func(c *Config) { c.Outbox.TimestampZone = "" },
			[]string{"outbox.timestamp_zone: required; an IANA time zone such as UTC or Europe/Berlin"}},
		{"a zone name is accepted", func(c *Config) { c.Outbox.TimestampZone = "Europe/Berlin" }, nil},
		{"dead_letter with a topic is accepted", func(c *Config) { c.Outbox.OnError, c.Outbox.DeadLetterTopic = "dead_letter", "outbox.dlq" }, nil},
		{"an illegal dead letter topic is rejected", func(c *Config) { c.Outbox.OnError, c.Outbox.DeadLetterTopic = "dead_letter", "outbox/dlq" },
			[]string{`outbox.dead_letter_topic: must be a Kafka topic name: 1 to 249 letters, digits, '.', '_' or '-', not . or .. (got "outbox/dlq")`}},
		{"cleanup with a retention is valid", func(c *Config) {
			c.Outbox.Cleanup.Enabled, c.Outbox.Cleanup.Retention = true, Duration(time.Hour)
		}, nil},
		{"cleanup bounds out of range are rejected, every one", func(c *Config) {
			c.Outbox.Cleanup = Cleanup{Enabled: true, Retention: Duration(-time.Second), BatchSize: 10001, Rate: 0, MaxPending: 0}
		}, []string{
			"outbox.cleanup.retention: must not be negative (got -1s)",
			"outbox.cleanup.batch_size: must be 1 to 10000 (got 10001)",
			"outbox.cleanup.rate: must be at least 1 (rows per second) (got 0)",
			"outbox.cleanup.max_pending: must be at least 1 (got 0)",
		}},
		{"cleanup with acks 1 is rejected: an acknowledged event may still be lost, and its deleted row", func(c *Config) {
			c.Outbox.Cleanup.Enabled, c.Kafka.Acks = true, AcksLeader
		}, []string{`outbox.cleanup.enabled: needs kafka.acks all (with acks 1 or 0 an acknowledged event can still be lost, and its deleted row with it) (got 1)`}},
		{"no brokers is rejected", func(c *Config) { c.Kafka.Brokers = []string{} },
			[]string{"kafka.brokers: at least one host:port required"}},
		{"kafka enums are checked", func(c *Config) { c.Kafka.Acks, c.Kafka.Compression = "2", "brotli" },
			[]string{
				`kafka.acks: must be all, 1 or 0 (got "2")`,
				`kafka.compression: must be none, gzip, snappy, lz4 or zstd (got "brotli")`,
			}},
		{"max_message_bytes 0 is rejected", func(c *Config) { c.Kafka.MaxMessageBytes = 0 },
			[]string{"kafka.max_message_bytes: must be from 1 to 104857599 (got 0)"}},
		{"max_message_bytes of sarama's request size is rejected", func(c *Config) { c.Kafka.MaxMessageBytes = 100 * 1024 * 1024 },
			[]string{"kafka.max_message_bytes: must be from 1 to 104857599 (got 104857600)"}},
		{"linger 0 is accepted", func(c *Config) { c.Kafka.Linger = 0 }, nil},
		{"kafka TLS settings without TLS are rejected", func(c *Config) { c.Kafka.TLS = KafkaTLS{CAFile: "ca.pem", InsecureSkipVerify: true} },
			[]string{
				`kafka.tls.ca_file: has no effect unless kafka.tls.enabled is true (got "ca.pem")`,
				"kafka.tls.insecure_skip_verify: has no effect unless kafka.tls.enabled is true (got true)",
			}},
		{"a kafka key without its certificate is rejected", func(c *Config) { c.Kafka.TLS = KafkaTLS{Enabled: true, KeyFile: "key.pem"} },
			[]string{"kafka.tls.cert_file: required with kafka.tls.key_file"}},
		{"SASL with user and password is accepted", func(c *Config) { c.Kafka.SASL = SASL{Mechanism: "SCRAM-SHA-256", User: "u", Password: "p"} }, nil},
		{"an unknown SASL mechanism is rejected", func(c *Config) { c.Kafka.SASL = SASL{Mechanism: "GSSAPI", User: "u", Password: "p"} },
			[]string{`kafka.sasl.mechanism: must be PLAIN, SCRAM-SHA-256 or SCRAM-SHA-512, or empty for none (got "GSSAPI")`}},
		{"SASL credentials without a mechanism are rejected and the password not shown", func(c *Config) { c.Kafka.SASL = SASL{User: "u", Password: "s3cret"} },
			[]string{
				`kafka.sasl.user: has no effect unless kafka.sasl.mechanism is set (got "u")`,
				"kafka.sasl.password: has no effect unless kafka.sasl.mechanism is set",
			}},
		{"an unknown checkpoint store is rejected", func(c *Config) { c.Checkpoint.Store = "redis" },
			[]string{`checkpoint.store: must be file or kafka (got "redis")`}},
		{"an illegal checkpoint topic is rejected", func(c *Config) { c.Checkpoint.Topic = "a b" },
			[]string{`checkpoint.topic: must be a Kafka topic name: 1 to 249 letters, digits, '.', '_' or '-', not . or .. (got "a b")`}},
		{"a checkpoint interval of 10ms is accepted", func(c *Config) { c.Checkpoint.Interval = Duration(10 * time.Millisecond) }, nil},
		{"exactly_once needs the kafka store", func(c *Config) { c.Delivery = "exactly_once" },
			[]string{`delivery: exactly_once needs checkpoint.store: kafka (the checkpoint commits in the same Kafka transaction as the events it covers) (got "exactly_once")`}},
		{"exactly_once needs acks all", func(c *Config) { c.Delivery, c.Checkpoint.Store, c.Kafka.Acks = "exactly_once", "kafka", "1" },
			[]string{`kafka.acks: must be all with delivery: exactly_once (got "1")`}},
		{"ha needs exactly_once", func(c *Config) { c.HA.Enabled, c.Checkpoint.Store = true, "kafka" },
			[]string{"ha.enabled: needs checkpoint.store: kafka and delivery: exactly_once (the new leader resumes from the Kafka-stored checkpoint, and its transactional producer fences the old one) (got true)"}},
		{"an unknown delivery is rejected", func(c *Config) { c.Delivery = "at_most_once" },
			[]string{`delivery: must be at_least_once or exactly_once (got "at_most_once")`}},
		{"an empty http.listen disables it", func(c *Config) { c.HTTP.Listen = "" }, nil},
		{"http.listen on all interfaces is accepted", func(c *Config) { c.HTTP.Listen = ":7391" }, nil},
		{"a bad http port is rejected", func(c *Config) { c.HTTP.Listen = "0.0.0.0:http" },
			[]string{`http.listen: port must be a number from 0 to 65535 (got "0.0.0.0:http")`}},
		{"http.listen port 0 picks a free port", func(c *Config) { c.HTTP.Listen = "127.0.0.1:0" }, nil},
		{"a status interval of 0 turns the status log off", func(c *Config) { c.Log.StatusInterval = 0 }, nil},
		{"a status interval of 1s is accepted", func(c *Config) { c.Log.StatusInterval = Duration(time.Second) }, nil},
		{"a status interval under 1s is rejected", func(c *Config) { c.Log.StatusInterval = Duration(500 * time.Millisecond) },
			[]string{`log.status_interval: must be 0 (off) or at least 1s (got 500ms)`}},
		{"a negative status interval is rejected", func(c *Config) { c.Log.StatusInterval = Duration(-time.Second) },
			[]string{`log.status_interval: must be 0 (off) or at least 1s (got -1s)`}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cfg := validConfig(t)
			tt.mutate(cfg)
			before := *cfg
			before.Outbox.Tables = append([]string(nil), cfg.Outbox.Tables...)
			before.Outbox.Additional = append([]Additional(nil), cfg.Outbox.Additional...)
			err := cfg.Validate()
			if tt.want == nil {
				if err != nil {
					t.Fatalf("Validate: %v", err)
				}
			} else {
				assertLines(t, problemLines(t, err), tt.want)
			}
			if !reflect.DeepEqual(before.Outbox.Tables, cfg.Outbox.Tables) ||
				!reflect.DeepEqual(before.Outbox.Additional, cfg.Outbox.Additional) {
				t.Error("Validate changed the config")
			}
			before.Outbox.Tables, before.Outbox.Additional = cfg.Outbox.Tables, cfg.Outbox.Additional
			if !reflect.DeepEqual(before, *cfg) {
				t.Error("Validate changed the config")
			}
		})
	}
}

func TestDefaultNeedsOnlyTheRequiredSettings(t *testing.T) {
	cfg := Default()
	cfg.Name = "orders"
	cfg.Source.Addr = "db:3306"
	cfg.Source.User = "cdc"
	cfg.Outbox.Tables = []string{"orders.outbox"}
	cfg.Kafka.Brokers = []string{"kafka:9092"}
	cfg.Outbox.Additional = []Additional{{Column: "tenant"}}
	cfg.FillDerived()
	if err := cfg.Validate(); err != nil {
		t.Fatalf("Validate: %v", err)
	}
	if cfg.Kafka.ClientID != "tailbox-orders" || cfg.Checkpoint.File != "./data/orders.checkpoint.json" {
		t.Errorf("derived client_id %q, checkpoint.file %q", cfg.Kafka.ClientID, cfg.Checkpoint.File)
	}
	if a := cfg.Outbox.Additional[0]; a != (Additional{Column: "tenant", Placement: "header", As: "tenant"}) {
		t.Errorf("derived additional %+v", a)
	}
	derived := cfg
	derived.FillDerived()
	if !reflect.DeepEqual(derived, cfg) {
		t.Error("FillDerived is not idempotent")
	}
}

func TestProblemString(t *testing.T) {
	tests := []struct {
		name string
		p    Problem
		want string
	}{
		{"all parts", Problem{Path: "a.b", Reason: "must be x", Got: `"y"`}, `a.b: must be x (got "y")`},
		{"without a value", Problem{Path: "a.b", Reason: "required"}, "a.b: required"},
		{"without a path", Problem{Reason: "invalid YAML: line 1: oops"}, "invalid YAML: line 1: oops"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := tt.p.String(); got != tt.want {
				t.Errorf("got %q, want %q", got, tt.want)
			}
		})
	}
	err := error(Problems{{Path: "a", Reason: "r1"}, {Path: "b", Reason: "r2", Got: "3"}})
	if err.Error() != "a: r1\nb: r2 (got 3)" {
		t.Errorf("Problems.Error() = %q", err.Error())
	}
	wrapped := errors.Join(errors.New("other"), err)
	var ps Problems
	if !errors.Is(wrapped, ErrInvalid) || !errors.As(wrapped, &ps) || len(ps) != 2 {
		t.Errorf("a wrapped Problems: errors.Is ErrInvalid %v, errors.As %v", errors.Is(wrapped, ErrInvalid), ps)
	}
}

func TestValidateStartSpec(t *testing.T) {
	tests := []struct {
		name string
		spec string
		want StartSpec
		err  string
	}{
		{"latest", "latest", StartSpec{Kind: StartLatest}, ""},
		{"earliest", "earliest", StartSpec{Kind: StartEarliest}, ""},
		{"a file and position", "mysql-bin.000042:1234", StartSpec{Kind: StartFilePos, File: "mysql-bin.000042", Pos: 1234}, ""},
		{"position 4 is the first event", "mariadb-bin.000001:4", StartSpec{Kind: StartFilePos, File: "mariadb-bin.000001", Pos: 4}, ""},
		{"the largest position", "b.1:4294967295", StartSpec{Kind: StartFilePos, File: "b.1", Pos: 4294967295}, ""},
		{"a MariaDB GTID set", "gtid:0-1-100,1-2-5", StartSpec{Kind: StartGTID, GTID: "0-1-100,1-2-5"}, ""},
		{"a MySQL GTID set as the server prints it", "gtid:3E11FA47-71CA-11E1-9E33-C80AA9429562:1-5:11-18,\n3e11fa47-71ca-11e1-9e33-c80aa9429563:1",
			StartSpec{Kind: StartGTID, GTID: "3E11FA47-71CA-11E1-9E33-C80AA9429562:1-5:11-18,\n3e11fa47-71ca-11e1-9e33-c80aa9429563:1"}, ""},
		{"a tagged MySQL GTID set", "gtid:3e11fa47-71ca-11e1-9e33-c80aa9429562:1-5:orders:1-3", StartSpec{Kind: StartGTID, GTID: "3e11fa47-71ca-11e1-9e33-c80aa9429562:1-5:orders:1-3"}, ""},
		{"a time", "time:2024-05-01T12:00:00Z", StartSpec{Kind: StartTime, Time: time.Date(2024, 5, 1, 12, 0, 0, 0, time.UTC)}, ""},
		{"an empty spec", "", StartSpec{}, `must be latest, earliest, FILE:POS, gtid:SET or time:RFC3339 (got "")`},
		{"an unknown word", "LATEST", StartSpec{}, `must be latest, earliest, FILE:POS, gtid:SET or time:RFC3339 (got "LATEST")`},
		{"position below 4", "mysql-bin.000001:3", StartSpec{}, `binlog position must be an integer from 4 to 4294967295; expected FILE:POS (got "mysql-bin.000001:3")`},
		{"position over 32 bits", "mysql-bin.000001:4294967296", StartSpec{}, `binlog position must be an integer from 4 to 4294967295; expected FILE:POS (got "mysql-bin.000001:4294967296")`},
		{"position not a number", "mysql-bin.000001:end", StartSpec{}, `binlog position must be an integer from 4 to 4294967295; expected FILE:POS (got "mysql-bin.000001:end")`},
		{"no file", ":4", StartSpec{}, `binlog file name is empty; expected FILE:POS (got ":4")`},
		{"an empty GTID set", "gtid: ", StartSpec{}, `GTID set is empty (got "gtid: ")`},
		{"a malformed GTID set", "gtid:0-1", StartSpec{}, `invalid GTID set; expected MariaDB domain-server-sequence[,...] or MySQL uuid:interval[,...] (got "gtid:0-1")`},
		{"a time without a zone", "time:2024-05-01 12:00:00", StartSpec{}, `time must be RFC 3339, such as time:2024-05-01T12:00:00Z (got "time:2024-05-01 12:00:00")`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := ValidateStartSpec(tt.spec)
			spec, perr := ParseStartSpec(tt.spec)
			if tt.err == "" {
				if err != nil || perr != nil {
					t.Fatalf("got %v, %v; want no error", err, perr)
				}
				if !reflect.DeepEqual(spec, tt.want) {
					t.Errorf("ParseStartSpec = %+v, want %+v", spec, tt.want)
				}
				return
			}
			if err == nil || err.Error() != tt.err {
				t.Errorf("ValidateStartSpec error %v, want %s", err, tt.err)
			}
			if !errors.Is(err, ErrInvalid) {
				t.Errorf("error does not match ErrInvalid")
			}
			if perr == nil || perr.Error() != tt.err {
				t.Errorf("ParseStartSpec error %v, want %s", perr, tt.err)
			}
		})
	}
}

func TestTablesHash(t *testing.T) {
	hash := func(tables ...string) string {
		c := Config{Outbox: Outbox{Tables: tables}}
		return c.TablesHash()
	}
	// sha256("shop.outbox") and sha256("a.b\nshop.outbox"): the stored format.
	if got := hash("shop.outbox"); got != "a1f6866c675183d13697431840775f7b416d43add90706193d92610d21ac54aa" {
		t.Errorf("hash(shop.outbox) = %s", got)
	}
	if got := hash("Shop.Outbox", "A.B"); got != "d58f295ed1b9d233287f22918ff76eacba08e06ca416e27aaf3ac0b5a1866724" {
		t.Errorf("hash(Shop.Outbox, A.B) = %s", got)
	}
	if hash("a.b", "c.d") != hash("c.d", "a.b", "A.b") {
		t.Error("order, case or duplicates change the hash")
	}
	if hash("a.b") == hash("a.b", "c.d") {
		t.Error("an added table does not change the hash")
	}
	c := Config{Outbox: Outbox{Tables: []string{"B.x", "a.y"}}}
	c.TablesHash()
	if c.Outbox.Tables[0] != "B.x" {
		t.Error("TablesHash changed the tables")
	}
}
