package config

import (
	"net"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"time"
)

var (
	// validName is a connector name: it becomes part of file names and client ids.
	validName = regexp.MustCompile(`^[a-zA-Z0-9._-]{1,100}$`)
	// validTopic is a legal Kafka topic name.
	validTopic = regexp.MustCompile(`^[a-zA-Z0-9._-]{1,249}$`)
	// placeholder is a ${...} or $N in a topic template.
	placeholder = regexp.MustCompile(`\$\{[^}]*\}|\$[0-9]+`)
)

// RoutedByValue is the placeholder of Route.Topic replaced by the route_by
// column's value.
const RoutedByValue = "${routedByValue}"

// Placeholders of Route.Topic replaced by the captured table's names.
const (
	tablePlaceholder  = "${table}"
	schemaPlaceholder = "${schema}"
)

// schemaVersionHeader is the header of outbox.fields.schema_version.
const schemaVersionHeader = "schemaVersion"

// envelopeKeys are the envelope format's own keys; an additional column
// placed in the envelope may not take one of them.
var envelopeKeys = []string{"id", "type", "aggregateType", "aggregateId", "occurredAt", "payload", "source"}

// reservedHeaders are the headers tailbox sets itself.
var reservedHeaders = []string{"id", "type"}

// acksKafkaAll is Kafka's numeric spelling of acks=all. It is no Acks value
// Validate accepts: the kafka.acks check reports it, so the check of
// delivery: exactly_once does not report it a second time.
const acksKafkaAll Acks = "-1"

// maxMessageBytes is the bound sarama puts on a producer message
// (sarama.MaxRequestSize, 100 MiB, exclusive).
const maxMessageBytes = 100*1024*1024 - 1

// Validate checks c and returns nil or an error, matching ErrInvalid, that is
// a Problems listing every problem found — not only the first. It does not
// change c. It checks a Config as Parse leaves it, after FillDerived: empty
// derived fields (kafka.client_id, checkpoint.file, additional placement and
// as) are problems. It reads no file and connects to nothing; whether
// source.password and source.password_file are both set is checked by Parse,
// which reads the file into Password.
func (c *Config) Validate() error {
	var ps Problems
	v := validator{ps: &ps}

	switch {
	case c.Name == "":
		ps.add("name", "required", "")
	case !validName.MatchString(c.Name):
		ps.add("name", "must be 1 to 100 letters, digits, '.', '_' or '-'", q(c.Name))
	}

	// source
	v.hostPort("source.addr", c.Source.Addr, true, 1)
	v.required("source.user", c.Source.User)
	if c.Source.ServerID == 0 && c.Name != "" {
		// Parse derives it from a name (FillDerived); without a name, that is the problem.
		ps.add("source.server_id", "must not be 0; use an id unique among the server's replicas", "0")
	}
	v.enum("source.flavor", c.Source.Flavor, "auto", "mysql", "mariadb")
	v.enum("source.tls.mode", string(c.Source.TLS.Mode),
		string(TLSDisabled), string(TLSPreferred), string(TLSRequired), string(TLSVerifyCA), string(TLSVerifyIdentity))
	switch c.Source.TLS.Mode {
	case TLSVerifyCA, TLSVerifyIdentity:
		if c.Source.TLS.CAFile == "" {
			ps.add("source.tls.ca_file", "required with tls.mode "+string(c.Source.TLS.Mode), "")
		}
	case TLSDisabled:
		const why = "has no effect with source.tls.mode disabled"
		v.unused("source.tls.ca_file", c.Source.TLS.CAFile, why)
		v.unused("source.tls.cert_file", c.Source.TLS.CertFile, why)
		v.unused("source.tls.key_file", c.Source.TLS.KeyFile, why)
	}
	v.certPair("source.tls", c.Source.TLS.CertFile, c.Source.TLS.KeyFile)
	v.atLeast("source.heartbeat", c.Source.Heartbeat, time.Second)

	// start
	if _, reason := parseStartSpec(c.Start.From); reason != "" {
		ps.add("start.from", reason, q(c.Start.From))
	}

	// outbox
	c.validateOutbox(&v)

	// kafka
	c.validateKafka(&v)

	// checkpoint, delivery, ha
	c.validateDelivery(&v)

	// http, log
	if c.HTTP.Listen != "" {
		v.hostPort("http.listen", c.HTTP.Listen, false, 0)
	}
	v.enum("log.level", c.Log.Level, "debug", "info", "warn", "error")
	v.enum("log.format", c.Log.Format, "json", "console")
	if d := c.Log.StatusInterval; d != 0 && d.D() < time.Second {
		ps.add("log.status_interval", "must be 0 (off) or at least 1s", d.String())
	}

	return ps.err()
}

// validateKafka checks the kafka section; validateDelivery checks what
// delivery requires of it (kafka.acks, kafka.transaction_interval).
func (c *Config) validateKafka(v *validator) {
	ps := v.ps
	if len(c.Kafka.Brokers) == 0 {
		ps.add("kafka.brokers", "at least one host:port required", "")
	}
	for i, b := range c.Kafka.Brokers {
		v.hostPort("kafka.brokers["+strconv.Itoa(i)+"]", b, true, 1)
	}
	enumOf(*v, "kafka.acks", c.Kafka.Acks, AcksAll, AcksLeader, AcksNone)
	v.enum("kafka.compression", c.Kafka.Compression, "none", "gzip", "snappy", "lz4", "zstd")
	if c.Name != "" { // else derived once name is set
		v.required("kafka.client_id", c.Kafka.ClientID)
	}
	if c.Kafka.MaxMessageBytes < 1 || c.Kafka.MaxMessageBytes > maxMessageBytes {
		ps.add("kafka.max_message_bytes", "must be from 1 to "+strconv.Itoa(maxMessageBytes), strconv.Itoa(c.Kafka.MaxMessageBytes))
	}
	v.atLeast("kafka.linger", c.Kafka.Linger, 0)
	if !c.Kafka.TLS.Enabled {
		const why = "has no effect unless kafka.tls.enabled is true"
		v.unused("kafka.tls.ca_file", c.Kafka.TLS.CAFile, why)
		v.unused("kafka.tls.cert_file", c.Kafka.TLS.CertFile, why)
		v.unused("kafka.tls.key_file", c.Kafka.TLS.KeyFile, why)
		if c.Kafka.TLS.InsecureSkipVerify {
			ps.add("kafka.tls.insecure_skip_verify", why, "true")
		}
	}
	v.certPair("kafka.tls", c.Kafka.TLS.CertFile, c.Kafka.TLS.KeyFile)
	switch sasl := c.Kafka.SASL; sasl.Mechanism {
	case "":
		const why = "has no effect unless kafka.sasl.mechanism is set"
		v.unused("kafka.sasl.user", sasl.User, why)
		if sasl.Password != "" {
			ps.add("kafka.sasl.password", why, "")
		}
		v.unused("kafka.sasl.password_file", sasl.PasswordFile, why)
	case "PLAIN", "SCRAM-SHA-256", "SCRAM-SHA-512":
		v.required("kafka.sasl.user", sasl.User)
		if sasl.Password == "" {
			ps.add("kafka.sasl.password", "required with sasl.mechanism "+sasl.Mechanism, "")
		}
	default:
		ps.add("kafka.sasl.mechanism", "must be PLAIN, SCRAM-SHA-256 or SCRAM-SHA-512, or empty for none", q(sasl.Mechanism))
	}
}

// validateDelivery checks the checkpoint section, delivery and ha, which
// depend on each other (exactly_once needs the kafka store and acks all; ha
// needs both).
func (c *Config) validateDelivery(v *validator) {
	ps := v.ps

	// checkpoint
	enumOf(*v, "checkpoint.store", c.Checkpoint.Store, StoreFile, StoreKafka)
	if c.Name != "" {
		v.required("checkpoint.file", c.Checkpoint.File)
	}
	v.atLeast("checkpoint.interval", c.Checkpoint.Interval, 10*time.Millisecond)
	v.topic("checkpoint.topic", c.Checkpoint.Topic)

	// delivery, ha
	enumOf(*v, "delivery", c.Delivery, AtLeastOnce, ExactlyOnce)
	if c.Delivery == ExactlyOnce {
		if c.Checkpoint.Store != StoreKafka {
			ps.add("delivery", "exactly_once needs checkpoint.store: kafka (the checkpoint commits in the same Kafka transaction as the events it covers)", q(string(c.Delivery)))
		}
		if c.Kafka.Acks != AcksAll && c.Kafka.Acks != acksKafkaAll {
			ps.add("kafka.acks", "must be all with delivery: exactly_once", q(string(c.Kafka.Acks)))
		}
	}
	v.atLeast("kafka.transaction_interval", c.Kafka.TransactionInterval, time.Millisecond)
	if c.HA.Enabled {
		if c.Checkpoint.Store != StoreKafka || c.Delivery != ExactlyOnce {
			ps.add("ha.enabled", "needs checkpoint.store: kafka and delivery: exactly_once (the new leader resumes from the Kafka-stored checkpoint, and its transactional producer fences the old one)", "true")
		}
		v.atLeast("ha.session_timeout", c.HA.SessionTimeout, time.Second)
		v.topic("ha.lease_topic", c.HA.LeaseTopic)
	}
}

// validateOutbox checks the outbox section.
func (c *Config) validateOutbox(v *validator) {
	ps, o := v.ps, &c.Outbox
	if len(o.Tables) == 0 {
		ps.add("outbox.tables", "at least one schema.table required", "")
	}
	first := map[string]int{}
	for i, t := range o.Tables {
		path := "outbox.tables[" + strconv.Itoa(i) + "]"
		schema, table, ok := strings.Cut(t, ".")
		if !ok || schema == "" || table == "" || strings.Contains(table, ".") {
			ps.add(path, "must be schema.table", q(t))
			continue
		}
		key := strings.ToLower(t)
		if j, dup := first[key]; dup {
			ps.addf(path, q(t), "duplicate of outbox.tables[%d]", j)
			continue
		}
		first[key] = i
	}

	v.required("outbox.fields.id", o.Fields.ID)
	v.required("outbox.fields.key", o.Fields.Key)
	v.required("outbox.fields.type", o.Fields.Type)
	v.required("outbox.fields.payload", o.Fields.Payload)
	v.required("outbox.fields.route_by", o.Fields.RouteBy)

	names := map[[2]string]int{} // {placement, as} -> index
	partition := -1
	for i, a := range o.Additional {
		path := "outbox.additional[" + strconv.Itoa(i) + "]"
		v.required(path+".column", a.Column)
		v.enum(path+".placement", a.Placement, "header", "envelope", "partition")
		if a.Placement == "partition" {
			if partition >= 0 {
				ps.addf(path+".placement", q(a.Placement), "only one column can choose the partition; outbox.additional[%d] does", partition)
			}
			partition = i
			if a.As != a.Column && a.As != "" {
				ps.add(path+".as", "has no effect with placement partition", q(a.As))
			}
			continue
		}
		switch {
		case a.As == "":
			if a.Column != "" { // else the column's problem says it
				ps.add(path+".as", "required", "")
			}
		case a.Placement == "envelope" && slices.Contains(envelopeKeys, a.As):
			ps.add(path+".as", "is a key of the envelope itself ("+strings.Join(envelopeKeys, ", ")+")", q(a.As))
		case a.Placement == "header" && slices.Contains(reservedHeaders, a.As):
			ps.add(path+".as", "is a header tailbox sets itself ("+strings.Join(reservedHeaders, ", ")+")", q(a.As))
		case a.Placement == "header" && a.As == schemaVersionHeader && o.Fields.SchemaVersion != "":
			ps.add(path+".as", "is the header of outbox.fields.schema_version", q(a.As))
		case a.Placement == "header" && (a.As == "traceparent" || a.As == "tracestate") && (o.Tracing.TraceParent != "" || o.Tracing.SpanContext != ""):
			ps.add(path+".as", "is a header of outbox.tracing", q(a.As))
		default:
			k := [2]string{a.Placement, a.As}
			if j, dup := names[k]; dup {
				ps.addf(path+".as", q(a.As), "same %s name as outbox.additional[%d]", a.Placement, j)
			} else {
				names[k] = i
			}
		}
	}

	v.topicTemplate("outbox.route.topic", o.Route.Topic, o.Route.TopicRegex)
	if o.Tracing.TraceParent != "" && o.Tracing.SpanContext != "" {
		ps.add("outbox.tracing.span_context", "not with outbox.tracing.traceparent: one column carries the trace context", q(o.Tracing.SpanContext))
	}
	if o.Tracing.TraceState != "" && o.Tracing.TraceParent == "" {
		ps.add("outbox.tracing.tracestate", "needs outbox.tracing.traceparent", q(o.Tracing.TraceState))
	}
	v.enum("outbox.format", o.Format, "envelope", "debezium", "cloudevents")
	v.enum("outbox.payload_type", o.PayloadType, "auto", "json", "string", "bytes")
	if o.TimestampZone == "" {
		ps.add("outbox.timestamp_zone", "required; an IANA time zone such as UTC or Europe/Berlin", "")
	} else if _, err := time.LoadLocation(o.TimestampZone); err != nil {
		ps.add("outbox.timestamp_zone", "unknown time zone; use an IANA name such as UTC or Europe/Berlin", q(o.TimestampZone))
	}
	v.enum("outbox.on_update", o.OnUpdate, "warn", "ignore", "fail")
	enumOf(*v, "outbox.on_error", o.OnError, OnErrorFail, OnErrorDeadLetter)
	if o.OnError == OnErrorDeadLetter && o.DeadLetterTopic == "" {
		ps.add("outbox.dead_letter_topic", "required with on_error dead_letter", "")
	}
	v.topic("outbox.dead_letter_topic", o.DeadLetterTopic)
	cl := o.Cleanup
	if cl.Retention < 0 {
		ps.add("outbox.cleanup.retention", "must not be negative", cl.Retention.String())
	}
	if cl.BatchSize < 1 || cl.BatchSize > 10000 {
		ps.add("outbox.cleanup.batch_size", "must be 1 to 10000", strconv.Itoa(cl.BatchSize))
	}
	if cl.Rate < 1 {
		ps.add("outbox.cleanup.rate", "must be at least 1 (rows per second)", strconv.Itoa(cl.Rate))
	}
	if cl.MaxPending < 1 {
		ps.add("outbox.cleanup.max_pending", "must be at least 1", strconv.Itoa(cl.MaxPending))
	}
	if cl.Enabled && c.Kafka.Acks != AcksAll && c.Kafka.Acks != acksKafkaAll {
		// A row is deleted once its event is acknowledged: with acks 1 or
		// 0 an acknowledged event may still be lost with its leader (or
		// never written), and the row with it.
		ps.add("outbox.cleanup.enabled", "needs kafka.acks all (with acks 1 or 0 an acknowledged event can still be lost, and its deleted row with it)", string(c.Kafka.Acks))
	}
}

// validator holds the checks Validate repeats, each adding to ps.
type validator struct {
	ps *Problems
}

// required reports an empty string.
func (v validator) required(path, s string) {
	if s == "" {
		v.ps.add(path, "required", "")
	}
}

// enum reports a value outside allowed.
func (v validator) enum(path, s string, allowed ...string) { enumOf(v, path, s, allowed...) }

// enumOf is enum for a setting of any string type (Delivery, Acks, ...).
func enumOf[T ~string](v validator, path string, s T, allowed ...T) {
	if !slices.Contains(allowed, s) {
		v.ps.add(path, "must be "+oneOf(allowed), q(string(s)))
	}
}

// unused reports a setting that is set but has no effect; reason says why.
func (v validator) unused(path, s, reason string) {
	if s != "" {
		v.ps.add(path, reason, q(s))
	}
}

// certPair reports a client certificate without its key or the reverse.
func (v validator) certPair(path, cert, key string) {
	switch {
	case cert != "" && key == "":
		v.ps.add(path+".key_file", "required with "+path+".cert_file", "")
	case cert == "" && key != "":
		v.ps.add(path+".cert_file", "required with "+path+".key_file", "")
	}
}

// atLeast reports a duration below min.
func (v validator) atLeast(path string, d Duration, min time.Duration) {
	if d.D() < min {
		v.ps.add(path, "must be at least "+min.String(), d.String())
	}
}

// hostPort reports an address that is not host:port with a port from
// minPort to 65535; needHost also requires the host part.
func (v validator) hostPort(path, addr string, needHost bool, minPort int) {
	if addr == "" {
		v.ps.add(path, "required", "")
		return
	}
	host, port, err := net.SplitHostPort(addr)
	if err != nil || (needHost && host == "") {
		v.ps.add(path, "must be host:port", q(addr))
		return
	}
	if n, err := strconv.Atoi(port); err != nil || n < minPort || n > 65535 {
		v.ps.addf(path, q(addr), "port must be a number from %d to 65535", minPort)
	}
}

// topic reports a non-empty string that is not a legal Kafka topic name.
func (v validator) topic(path, name string) {
	if name != "" && !legalTopic(name) {
		v.ps.add(path, "must be a Kafka topic name: 1 to 249 letters, digits, '.', '_' or '-', not . or ..", q(name))
	}
}

// topicTemplate reports a route.topic that cannot render legal topic
// names, and a route.topic_regex that does not compile or lacks a group
// the template names.
func (v validator) topicTemplate(path, tmpl, regex string) {
	var re *regexp.Regexp
	if regex != "" {
		var err error
		if re, err = regexp.Compile(`^(?:` + regex + `)$`); err != nil {
			v.ps.add("outbox.route.topic_regex", "not a valid regular expression (RE2 syntax; no lookaround or backreferences): "+strings.TrimPrefix(err.Error(), "error parsing regexp: "), q(regex))
		}
	}
	if tmpl == "" {
		v.ps.add(path, "required", "")
		return
	}
	bad := false
	for _, p := range placeholder.FindAllString(tmpl, -1) {
		name := strings.TrimSuffix(strings.TrimPrefix(strings.TrimPrefix(p, "$"), "{"), "}")
		n, numErr := strconv.Atoi(name)
		switch {
		case p == RoutedByValue || p == tablePlaceholder || p == schemaPlaceholder:
		case regex == "" && numErr == nil:
			v.ps.add(path, "capture group "+p+" needs outbox.route.topic_regex", q(tmpl))
			bad = true
		case regex == "":
			v.ps.add(path, "unknown placeholder "+p+"; use "+RoutedByValue+", "+tablePlaceholder+", "+schemaPlaceholder+" or a group of outbox.route.topic_regex", q(tmpl))
			bad = true
		case re == nil: // the regex's own problem is reported
			bad = true
		case numErr == nil && n > re.NumSubexp():
			v.ps.addf(path, q(tmpl), "capture group %s: outbox.route.topic_regex has %d groups", p, re.NumSubexp())
			bad = true
		case numErr != nil && re.SubexpIndex(name) < 0:
			v.ps.add(path, "unknown placeholder "+p+": outbox.route.topic_regex has no group of that name", q(tmpl))
			bad = true
		}
	}
	if bad {
		return
	}
	if !legalTopic(placeholder.ReplaceAllString(tmpl, "x")) {
		v.ps.add(path, "must be a Kafka topic name (1 to 249 letters, digits, '.', '_' or '-') with optional placeholders "+RoutedByValue+", "+tablePlaceholder+", "+schemaPlaceholder+", $1, ${name}", q(tmpl))
	}
}

// legalTopic reports whether Kafka accepts name as a topic name.
func legalTopic(name string) bool {
	return validTopic.MatchString(name) && name != "." && name != ".."
}
