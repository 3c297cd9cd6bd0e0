package outbox

import (
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"
)

// DefaultTopicTemplate is the topic template used when Options.TopicTemplate
// is empty: Debezium's default route.topic.replacement.
const DefaultTopicTemplate = "outbox.event.${routedByValue}"

// routedByValue is the only placeholder a topic template may contain.
const routedByValue = "${routedByValue}"

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
)

var placementNames = []string{"header", "envelope"}

// String returns "header" or "envelope".
func (p Placement) String() string { return enumString("placement", placementNames, int(p)) }

// ParsePlacement maps "header" (also "") and "envelope", case-insensitively,
// to a Placement.
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
}

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
	// TopicTemplate renders the topic name. Its only placeholder is
	// ${routedByValue}, replaced by the route_by value's text; every other
	// character must be one of [a-zA-Z0-9._-]. Default "":
	// DefaultTopicTemplate.
	TopicTemplate string
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
	tmpl, err := parseTopicTemplate(o.TopicTemplate)
	if err != nil {
		bad("TopicTemplate", err.Error(), o.TopicTemplate)
	}

	// Header names already taken by the format.
	headers := map[string]bool{"id": true}
	if o.Format != FormatDebezium {
		headers["type"] = true
	}
	if o.Format == FormatCloudEvents {
		headers[contentTypeHeader] = true
	}
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
		default:
			bad(path+".Placement", "unknown placement", a.Placement)
		}
	}
	if len(errs) > 0 {
		return compiled{}, errors.Join(errs...)
	}
	return compiled{opts: o, tmpl: tmpl}, nil
}

// compiled is validated Options with defaults applied.
type compiled struct {
	opts Options
	tmpl topicTemplate
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

// topicTemplate is a parsed topic template: literal parts with the
// ${routedByValue} placeholder between consecutive parts.
type topicTemplate struct {
	parts []string
}

// usesRoute reports whether the template contains ${routedByValue}.
func (t topicTemplate) usesRoute() bool { return len(t.parts) > 1 }

// parseTopicTemplate splits s at each ${routedByValue} and checks that the
// rest can be part of a topic name.
func parseTopicTemplate(s string) (topicTemplate, error) {
	var parts []string
	lit := 0 // length of the literal text
	start := 0
	for i := 0; i < len(s); {
		c := s[i]
		if c == '$' {
			if !strings.HasPrefix(s[i:], "${") {
				return topicTemplate{}, errors.New(`"$" outside a placeholder; the only placeholder is ` + routedByValue)
			}
			end := strings.IndexByte(s[i:], '}')
			if end < 0 {
				return topicTemplate{}, errors.New(`unterminated placeholder "${"`)
			}
			if name := s[i : i+end+1]; name != routedByValue {
				return topicTemplate{}, fmt.Errorf("unknown placeholder %q; the only placeholder is %s", name, routedByValue)
			}
			parts = append(parts, s[start:i])
			i += end + 1
			start = i
			continue
		}
		if !isTopicChar(c) {
			return topicTemplate{}, fmt.Errorf("character %q not allowed in a topic name (want [a-zA-Z0-9._-])", rune(c))
		}
		lit++
		i++
	}
	parts = append(parts, s[start:])
	if lit > maxTopicLen {
		return topicTemplate{}, fmt.Errorf("longer than %d characters", maxTopicLen)
	}
	t := topicTemplate{parts: parts}
	if !t.usesRoute() && !validTopic(s) {
		return topicTemplate{}, fmt.Errorf("a fixed topic must match %s and not be . or ..", topicPattern)
	}
	return t, nil
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
