package outbox

import (
	"errors"
	"fmt"
	"regexp"
	"strconv"
	"strings"
	"time"
)

// DefaultTopicTemplate is the topic template used when Options.TopicTemplate
// is empty: Debezium's default route.topic.replacement.
const DefaultTopicTemplate = "outbox.event.${routedByValue}"

// Placeholders of a topic template besides capture groups ($1, ${1},
// ${name}) of Options.TopicRegex.
const (
	routedByValue = "${routedByValue}"
	tablePH       = "${table}"
	schemaPH      = "${schema}"
)

// placeholderList names the placeholders in error messages.
const placeholderList = routedByValue + ", " + tablePH + ", " + schemaPH + " and the capture groups of TopicRegex ($1, ${1}, ${name})"

// Header names set by the features that have fixed names.
const (
	schemaVersionHeader = "schemaVersion"
	traceparentHeader   = "traceparent"
	tracestateHeader    = "tracestate"
)

// Format selects how Event.Value is encoded. The zero value is
// FormatEnvelope.
type Format int

// Formats.
const (
	// FormatEnvelope is the tailbox domain-event envelope: a JSON object
	// {"id","type","aggregateType","aggregateId","occurredAt","payload",
	// additional envelope columns…,"source":{…}}. Headers: id, type.
	FormatEnvelope Format = iota
	// FormatDebezium is what Debezium's Outbox Event Router 2.x writes with
	// its defaults and a String/ByteArray converter: the payload column as
	// stored; a NULL payload is a tombstone. Headers: id only.
	FormatDebezium
	// FormatCloudEvents is a CloudEvents 1.0 structured-mode JSON event.
	// Headers: id, type and content-type.
	FormatCloudEvents
)

var formatNames = []string{"envelope", "debezium", "cloudevents"}

// String returns "envelope", "debezium" or "cloudevents".
func (f Format) String() string { return enumString("format", formatNames, int(f)) }

// ParseFormat maps "envelope" (also ""), "debezium" and "cloudevents",
// case-insensitively, to a Format.
func ParseFormat(s string) (Format, error) {
	i, err := parseEnum("format", formatNames, s)
	return Format(i), err
}

// PayloadType says how the payload column becomes the event payload. The
// zero value is PayloadAuto.
type PayloadType int

// Payload types.
const (
	// PayloadAuto decides by column type, never by sniffing alone: MySQL JSON
	// is embedded (the empty document is null); a text column is embedded
	// when it holds a JSON object or array, else carried as a JSON string;
	// binary columns are base64 strings; numbers are JSON numbers.
	PayloadAuto PayloadType = iota
	// PayloadJSON requires any valid JSON value and embeds it; anything else
	// is ErrInvalidPayload.
	PayloadJSON
	// PayloadString always carries the payload as a JSON string.
	PayloadString
	// PayloadBytes always carries the stored bytes as a base64 JSON string.
	PayloadBytes
)

var payloadTypeNames = []string{"auto", "json", "string", "bytes"}

// String returns "auto", "json", "string" or "bytes".
func (p PayloadType) String() string { return enumString("payload type", payloadTypeNames, int(p)) }

// ParsePayloadType maps "auto" (also ""), "json", "string" and "bytes",
// case-insensitively, to a PayloadType.
func ParsePayloadType(s string) (PayloadType, error) {
	i, err := parseEnum("payload type", payloadTypeNames, s)
	return PayloadType(i), err
}

// OnUpdate says what happens to an UPDATE of an outbox row. The zero value
// is OnUpdateWarn.
type OnUpdate int

// Update policies.
const (
	// OnUpdateWarn drops the row with a Result.Warning.
	OnUpdateWarn OnUpdate = iota
	// OnUpdateIgnore drops the row silently.
	OnUpdateIgnore
	// OnUpdateFail makes Transform return an error wrapping ErrUpdate.
	OnUpdateFail
)

var onUpdateNames = []string{"warn", "ignore", "fail"}

// String returns "warn", "ignore" or "fail".
func (o OnUpdate) String() string { return enumString("on_update", onUpdateNames, int(o)) }

// ParseOnUpdate maps "warn" (also ""), "ignore" and "fail",
// case-insensitively, to an OnUpdate.
func ParseOnUpdate(s string) (OnUpdate, error) {
	i, err := parseEnum("on_update", onUpdateNames, s)
	return OnUpdate(i), err
}

// Placement says where an additional column goes. The zero value is
// PlacementHeader.
type Placement int

// Placements.
const (
	// PlacementHeader adds a record header with the column's text.
	PlacementHeader Placement = iota
	// PlacementEnvelope adds a field to the envelope (FormatEnvelope) or an
	// extension attribute (FormatCloudEvents). FormatDebezium has no place
	// for it.
	PlacementEnvelope
	// PlacementPartition makes the column's value the record's Kafka
	// partition (Event.ExplicitPartition), like Debezium's partition
	// placement: an integer column, or text of a decimal integer, from 0 to
	// 2147483647; NULL leaves the partition to the key. Any other value
	// makes the row a poison event (ErrInvalidEvent). As is unused; at most
	// one column has this placement.
	PlacementPartition
)

var placementNames = []string{"header", "envelope", "partition"}

// String returns "header", "envelope" or "partition".
func (p Placement) String() string { return enumString("placement", placementNames, int(p)) }

// ParsePlacement maps "header" (also ""), "envelope" and "partition",
// case-insensitively, to a Placement.
func ParsePlacement(s string) (Placement, error) {
	i, err := parseEnum("placement", placementNames, s)
	return Placement(i), err
}

// Fields names the outbox columns. Names are compared case-insensitively, as
// MySQL does. Each empty name takes the default of Debezium's Outbox Event
// Router that its doc names.
type Fields struct {
	// ID is the event id column: header "id", envelope "id". Default "id".
	ID string
	// Key is the aggregate id column: the record key, envelope
	// "aggregateId", CloudEvents "subject". Default "aggregateid".
	Key string
	// Type is the event type column: header "type", envelope "type".
	// Default "type".
	Type string
	// Payload is the payload column. Default "payload".
	Payload string
	// RouteBy is the column whose value replaces ${routedByValue} in the
	// topic template; also envelope "aggregateType". Default "aggregatetype".
	RouteBy string
	// Timestamp is the optional occurredAt column (TIMESTAMP, DATETIME or
	// text). Default "": occurredAt is the commit time.
	Timestamp string
	// SchemaVersion is the optional column whose text becomes the
	// "schemaVersion" header (Debezium's table.field.event.schema.version,
	// which sets the Connect schema version of the value instead); NULL
	// leaves the header out. Default "": no header.
	SchemaVersion string
}

// Tracing names the columns that carry a W3C trace context from the
// writing service to the record headers "traceparent" and "tracestate".
// The zero value carries none.
type Tracing struct {
	// TraceParent is a column holding a W3C traceparent
	// (version-traceid-parentid-flags). A valid value becomes the
	// "traceparent" header; NULL or empty leaves the header out; any other
	// value is dropped, with its tracestate, and a Result.Warning. Default
	// "".
	TraceParent string
	// TraceState is a column holding the W3C tracestate that goes with
	// TraceParent; it becomes the "tracestate" header when the traceparent
	// is valid and it is neither NULL nor empty. Needs TraceParent.
	// Default "".
	TraceState string
	// SpanContext is a column in the form Debezium's
	// tracing.span.context.field reads (default name there
	// "tracingspancontext"): Java properties text, as
	// java.util.Properties.store writes it, whose traceparent and
	// tracestate keys are read as the two columns above would be. Not with
	// TraceParent. Default "".
	SpanContext string
}

// enabled reports whether any trace column is configured.
func (t Tracing) enabled() bool { return t.TraceParent != "" || t.SpanContext != "" }

// Additional copies one more column into every event.
type Additional struct {
	// Column is the outbox column to copy. Required.
	Column string
	// Placement is where it goes. Zero value PlacementHeader.
	Placement Placement
	// As is the header name, envelope field or CloudEvents extension name.
	// Default "": the column name.
	As string
}

// Options configures a Transformer. The zero value with ConnectorName set
// behaves as DefaultOptions: Debezium's column names and topic, the envelope
// format, PayloadAuto, UTC, OnUpdateWarn.
type Options struct {
	// ConnectorName is the connector's name, written to the envelope's
	// source.connector and to the CloudEvents source. Required.
	ConnectorName string
	// Fields maps event parts to columns; see Fields for each default.
	Fields Fields
	// Additional lists extra columns, copied in this order. Default none.
	Additional []Additional
	// TopicTemplate renders the topic name. Its placeholders are
	// ${routedByValue} (the route_by value's text, or the TopicRegex group
	// of that name when there is one), ${table} and ${schema} (the captured
	// table's name and schema, for several outbox tables) and, with
	// TopicRegex, its capture groups as $1, ${1} or ${name}; every other
	// character must be one of [a-zA-Z0-9._-]. Default "":
	// DefaultTopicTemplate.
	TopicTemplate string
	// TopicRegex, when set, is a regular expression (RE2 syntax; Java's
	// (?<name>...) groups are accepted) that must match the whole route_by
	// value, like Debezium's route.topic.regex; its capture groups can be
	// used in TopicTemplate. A route_by value it does not match makes the
	// row a poison event (ErrInvalidTopic). Default "": no regex.
	TopicRegex string
	// Format is the value encoding. Zero value FormatEnvelope.
	Format Format
	// PayloadType says how the payload is carried in the JSON formats. Zero
	// value PayloadAuto. In FormatDebezium the value is always the payload
	// as stored; PayloadJSON still rejects invalid JSON there.
	PayloadType PayloadType
	// TimestampZone is the zone in which DATETIME values and zone-less text
	// timestamps are read. Default nil: UTC.
	TimestampZone *time.Location
	// OnUpdate is what an UPDATE of an outbox row does. Zero value
	// OnUpdateWarn.
	OnUpdate OnUpdate
	// TombstoneOnEmptyPayload (FormatDebezium only, like Debezium's
	// route.tombstone.on.empty.payload) also makes an empty or blank payload
	// a tombstone; a NULL payload always is one in that format. Default
	// false.
	TombstoneOnEmptyPayload bool
	// Tracing names the trace context columns. Zero value: none.
	Tracing Tracing
}

// DefaultOptions returns the options every zero field of Options stands for.
// It is the one place that holds the defaults. ConnectorName is left empty:
// it has no default.
func DefaultOptions() Options {
	return Options{
		Fields: Fields{
			ID:      "id",
			Key:     "aggregateid",
			Type:    "type",
			Payload: "payload",
			RouteBy: "aggregatetype",
		},
		TopicTemplate: DefaultTopicTemplate,
		Format:        FormatEnvelope,
		PayloadType:   PayloadAuto,
		TimestampZone: time.UTC,
		OnUpdate:      OnUpdateWarn,
	}
}

// withDefaults returns a copy of o with every zero field set from
// DefaultOptions and every Additional.As filled in. It copies Additional.
func (o Options) withDefaults() Options {
	d := DefaultOptions()
	set := func(p *string, def string) {
		if *p == "" {
			*p = def
		}
	}
	set(&o.Fields.ID, d.Fields.ID)
	set(&o.Fields.Key, d.Fields.Key)
	set(&o.Fields.Type, d.Fields.Type)
	set(&o.Fields.Payload, d.Fields.Payload)
	set(&o.Fields.RouteBy, d.Fields.RouteBy)
	set(&o.TopicTemplate, d.TopicTemplate)
	if o.TimestampZone == nil {
		o.TimestampZone = d.TimestampZone
	}
	add := make([]Additional, len(o.Additional))
	copy(add, o.Additional)
	for i := range add {
		set(&add[i].As, add[i].Column)
	}
	o.Additional = add
	return o
}

// Reserved names of the value formats.
var (
	envelopeFieldNames = []string{"id", "type", "aggregateType", "aggregateId", "occurredAt", "payload", "source"}
	// CloudEvents 1.0 context attributes and data members.
	cloudEventsNames = []string{"specversion", "id", "source", "type", "subject", "time", "datacontenttype", "dataschema", "data"}
)

// contentTypeHeader is the structured-mode header of the CloudEvents Kafka
// protocol binding.
const (
	contentTypeHeader      = "content-type"
	cloudEventsContentType = "application/cloudevents+json; charset=UTF-8"
)

// Validate reports every problem of o (after defaults) at once, joined with
// errors.Join, each as "Path: reason (got X)". It does not modify o.
func (o Options) Validate() error {
	_, err := o.compile()
	return err
}

// compile applies the defaults, validates and parses the topic template.
func (o Options) compile() (compiled, error) {
	o = o.withDefaults()
	var errs []error
	bad := func(path, reason string, got any) {
		errs = append(errs, fmt.Errorf("%s: %s (got %q)", path, reason, fmt.Sprint(got)))
	}
	if strings.TrimSpace(o.ConnectorName) == "" {
		bad("ConnectorName", "must not be empty", o.ConnectorName)
	}
	if int(o.Format) < 0 || int(o.Format) >= len(formatNames) {
		bad("Format", "unknown format", o.Format)
	}
	if int(o.PayloadType) < 0 || int(o.PayloadType) >= len(payloadTypeNames) {
		bad("PayloadType", "unknown payload type", o.PayloadType)
	}
	if int(o.OnUpdate) < 0 || int(o.OnUpdate) >= len(onUpdateNames) {
		bad("OnUpdate", "unknown on_update policy", o.OnUpdate)
	}
	if o.TombstoneOnEmptyPayload && o.Format != FormatDebezium {
		bad("TombstoneOnEmptyPayload", "needs Format debezium", o.Format)
	}
	var re *regexp.Regexp
	if o.TopicRegex != "" {
		var err error
		// Anchored: the whole value must match, as Java's Matcher.matches
		// in Kafka's RegexRouter.
		if re, err = regexp.Compile(`^(?:` + o.TopicRegex + `)$`); err != nil {
			bad("TopicRegex", "not a valid regular expression (RE2 syntax): "+strings.TrimPrefix(err.Error(), "error parsing regexp: "), o.TopicRegex)
			re = nil
		}
	}
	tmpl, err := parseTopicTemplate(o.TopicTemplate, re, o.TopicRegex != "")
	if err != nil {
		bad("TopicTemplate", err.Error(), o.TopicTemplate)
	}
	if o.Tracing.TraceParent != "" && o.Tracing.SpanContext != "" {
		bad("Tracing.SpanContext", "not with Tracing.TraceParent: one column carries the trace context", o.Tracing.SpanContext)
	}
	if o.Tracing.TraceState != "" && o.Tracing.TraceParent == "" {
		bad("Tracing.TraceState", "needs Tracing.TraceParent", o.Tracing.TraceState)
	}

	// Header names already taken by the format.
	headers := map[string]bool{"id": true}
	if o.Format != FormatDebezium {
		headers["type"] = true
	}
	if o.Format == FormatCloudEvents {
		headers[contentTypeHeader] = true
	}
	if o.Fields.SchemaVersion != "" {
		headers[schemaVersionHeader] = true
	}
	if o.Tracing.enabled() {
		headers[traceparentHeader] = true
		headers[tracestateHeader] = true
	}
	partition := -1
	fields := map[string]bool{}
	switch o.Format {
	case FormatEnvelope:
		for _, n := range envelopeFieldNames {
			fields[n] = true
		}
	case FormatCloudEvents:
		for _, n := range cloudEventsNames {
			fields[n] = true
		}
	}
	for i, a := range o.Additional {
		path := "Additional[" + strconv.Itoa(i) + "]"
		if strings.TrimSpace(a.Column) == "" {
			bad(path+".Column", "must not be empty", a.Column)
			continue
		}
		switch a.Placement {
		case PlacementHeader:
			if headers[a.As] {
				bad(path+".As", "header name already taken by the format or another column", a.As)
			}
			headers[a.As] = true
		case PlacementEnvelope:
			switch {
			case o.Format == FormatDebezium:
				bad(path+".Placement", "format debezium has no envelope; use header", a.Placement)
			case o.Format == FormatCloudEvents && !isExtensionName(a.As):
				bad(path+".As", "a CloudEvents extension name must be lowercase letters and digits", a.As)
			case fields[a.As]:
				bad(path+".As", "name already used in the "+o.Format.String()+" value", a.As)
			}
			fields[a.As] = true
		case PlacementPartition:
			if partition >= 0 {
				bad(path+".Placement", "only one column can choose the partition; Additional["+strconv.Itoa(partition)+"] does", a.Placement)
			}
			partition = i
		default:
			bad(path+".Placement", "unknown placement", a.Placement)
		}
	}
	if len(errs) > 0 {
		return compiled{}, errors.Join(errs...)
	}
	return compiled{opts: o, tmpl: tmpl, re: re}, nil
}

// compiled is validated Options with defaults applied.
type compiled struct {
	opts Options
	tmpl topicTemplate
	re   *regexp.Regexp // TopicRegex, anchored; nil without
}

// isExtensionName reports whether s is a valid CloudEvents attribute name:
// lowercase ASCII letters and digits, at least one.
func isExtensionName(s string) bool {
	if s == "" {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if (c < 'a' || c > 'z') && (c < '0' || c > '9') {
			return false
		}
	}
	return true
}

// segKind is the kind of one piece of a topic template.
type segKind uint8

const (
	segLit    segKind = iota // literal text
	segRoute                 // the whole route_by value
	segGroup                 // capture group group of TopicRegex
	segTable                 // the table name
	segSchema                // the schema name
)

// segment is one piece of a topic template.
type segment struct {
	kind  segKind
	lit   string
	group int
}

// topicTemplate is a parsed topic template.
type topicTemplate struct {
	segs []segment
}

// usesRoute reports whether the template needs the route_by value (the
// whole value or a capture group of it).
func (t topicTemplate) usesRoute() bool {
	for _, s := range t.segs {
		if s.kind == segRoute || s.kind == segGroup {
			return true
		}
	}
	return false
}

// forTable returns t with ${table} and ${schema} replaced by the names of
// a table and consecutive literals merged.
func (t topicTemplate) forTable(schema, table string) topicTemplate {
	var out []segment
	for _, s := range t.segs {
		switch s.kind {
		case segTable:
			s = segment{kind: segLit, lit: table}
		case segSchema:
			s = segment{kind: segLit, lit: schema}
		}
		if n := len(out); s.kind == segLit && n > 0 && out[n-1].kind == segLit {
			out[n-1].lit += s.lit
			continue
		}
		out = append(out, s)
	}
	if len(out) == 0 {
		out = append(out, segment{kind: segLit})
	}
	return topicTemplate{segs: out}
}

// fixed returns the text of a template without route_by pieces.
func (t topicTemplate) fixed() string {
	var b strings.Builder
	for _, s := range t.segs {
		b.WriteString(s.lit)
	}
	return b.String()
}

// parseTopicTemplate splits s into literals and placeholders and checks
// that the literals can be part of a topic name and that every capture
// group named exists in re (hasRegex: a TopicRegex was given, also an
// invalid one, whose own error is reported elsewhere).
func parseTopicTemplate(s string, re *regexp.Regexp, hasRegex bool) (topicTemplate, error) {
	var t topicTemplate
	lit := 0 // length of the literal text
	start := 0
	flush := func(end int) {
		if end > start {
			t.segs = append(t.segs, segment{kind: segLit, lit: s[start:end]})
		}
	}
	group := func(ref string) (segment, error) {
		name := strings.TrimSuffix(strings.TrimPrefix(strings.TrimPrefix(ref, "$"), "{"), "}")
		n, numErr := strconv.Atoi(name)
		switch {
		case !hasRegex && numErr != nil:
			return segment{}, fmt.Errorf("unknown placeholder %q; placeholders are %s", ref, placeholderList)
		case !hasRegex:
			return segment{}, fmt.Errorf("capture group %s needs TopicRegex", ref)
		case re == nil: // the regex's own error says what is wrong
			return segment{kind: segGroup}, nil
		case numErr == nil:
			if n > re.NumSubexp() {
				return segment{}, fmt.Errorf("capture group %s: TopicRegex has %d groups", ref, re.NumSubexp())
			}
			return segment{kind: segGroup, group: n}, nil
		}
		if i := re.SubexpIndex(name); i > 0 {
			return segment{kind: segGroup, group: i}, nil
		}
		return segment{}, fmt.Errorf("unknown placeholder %q: TopicRegex has no group of that name; placeholders are %s", ref, placeholderList)
	}
	for i := 0; i < len(s); {
		c := s[i]
		if c != '$' {
			if !isTopicChar(c) {
				return topicTemplate{}, fmt.Errorf("character %q not allowed in a topic name (want [a-zA-Z0-9._-])", rune(c))
			}
			lit++
			i++
			continue
		}
		flush(i)
		var ref string
		switch {
		case strings.HasPrefix(s[i:], "${"):
			end := strings.IndexByte(s[i:], '}')
			if end < 0 {
				return topicTemplate{}, errors.New(`unterminated placeholder "${"`)
			}
			ref = s[i : i+end+1]
		case i+1 < len(s) && '0' <= s[i+1] && s[i+1] <= '9':
			j := i + 1
			for j < len(s) && '0' <= s[j] && s[j] <= '9' {
				j++
			}
			ref = s[i:j]
		default:
			return topicTemplate{}, errors.New(`"$" outside a placeholder; placeholders are ` + placeholderList)
		}
		var seg segment
		switch ref {
		case routedByValue:
			seg = segment{kind: segRoute}
			if re != nil {
				if g := re.SubexpIndex("routedByValue"); g > 0 {
					seg = segment{kind: segGroup, group: g}
				}
			}
		case tablePH:
			seg = segment{kind: segTable}
		case schemaPH:
			seg = segment{kind: segSchema}
		default:
			var err error
			if seg, err = group(ref); err != nil {
				return topicTemplate{}, err
			}
		}
		t.segs = append(t.segs, seg)
		i += len(ref)
		start = i
	}
	flush(len(s))
	if lit > maxTopicLen {
		return topicTemplate{}, fmt.Errorf("longer than %d characters", maxTopicLen)
	}
	if len(t.segs) == 0 || !t.usesRoute() && !t.hasTableParts() && !validTopic(s) {
		return topicTemplate{}, fmt.Errorf("a fixed topic must match %s and not be . or ..", topicPattern)
	}
	return t, nil
}

// hasTableParts reports whether the template contains ${table} or ${schema}.
func (t topicTemplate) hasTableParts() bool {
	for _, s := range t.segs {
		if s.kind == segTable || s.kind == segSchema {
			return true
		}
	}
	return false
}

// maxTopicLen is the longest topic name Kafka accepts.
const maxTopicLen = 249

// topicPattern describes validTopic in error messages.
const topicPattern = "^[a-zA-Z0-9._-]{1,249}$"

func isTopicChar(c byte) bool {
	return 'a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9' || c == '.' || c == '_' || c == '-'
}

// validTopic reports whether name matches ^[a-zA-Z0-9._-]{1,249}$ and is
// not "." or "..", which Kafka also rejects.
func validTopic[S ~string | ~[]byte](name S) bool {
	if len(name) == 0 || len(name) > maxTopicLen {
		return false
	}
	for i := 0; i < len(name); i++ {
		if !isTopicChar(name[i]) {
			return false
		}
	}
	return string(name) != "." && string(name) != ".."
}

// enumString returns names[i], or "what(i)" when i is out of range.
func enumString(what string, names []string, i int) string {
	if i >= 0 && i < len(names) {
		return names[i]
	}
	return strings.ReplaceAll(what, " ", "_") + "(" + itoa(i) + ")"
}

// parseEnum returns the index of s in names, case-insensitively; "" is 0.
func parseEnum(what string, names []string, s string) (int, error) {
	if s == "" {
		return 0, nil
	}
	for i, n := range names {
		if strings.EqualFold(s, n) {
			return i, nil
		}
	}
	return 0, fmt.Errorf("unknown %s %q (want %s)", what, s, strings.Join(names, ", "))
}

func itoa(i int) string { return strconv.Itoa(i) }
