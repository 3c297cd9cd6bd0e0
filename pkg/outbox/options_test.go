package outbox

import (
	"errors"
	"strings"
	"testing"
	"time"
)

// PH lists the topic template placeholders as errors name them.
const PH = "placeholders are ${routedByValue}, ${table}, ${schema} and the capture groups of TopicRegex ($1, ${1}, ${name})"

func TestOptionsValidate(t *testing.T) {
	tests := []struct {
		name    string
		mutate  func(*Options)
		wantErr string // "" for valid options
	}{
		{
			name:   "the zero options with a connector name are valid",
			mutate: func(*Options) {},
		},
		{
			name:   "a fixed topic without placeholder is valid",
			mutate: func(o *Options) { o.TopicTemplate = "domain-events" },
		},
		{
			name: "a type header is allowed in the debezium format",
			mutate: func(o *Options) {
				o.Format = FormatDebezium
				o.TombstoneOnEmptyPayload = true
				o.Additional = []Additional{{Column: "type"}}
			},
		},
		{
			name:   "a per-table topic with ${schema} and ${table} is valid",
			mutate: func(o *Options) { o.TopicTemplate = "${schema}.${table}.${routedByValue}" },
		},
		{
			name:   "a per-table topic without the route value is valid",
			mutate: func(o *Options) { o.TopicTemplate = "events.${table}" },
		},
		{
			name: "capture groups by number, braced number and name are valid",
			mutate: func(o *Options) {
				o.TopicRegex = `(?<domain>[a-z]+)\.(\w+)`
				o.TopicTemplate = "${domain}.$2.${2}.${1}"
			},
		},
		{
			name: "a partition column, a schema version and trace columns are valid",
			mutate: func(o *Options) {
				o.Additional = []Additional{{Column: "shard", Placement: PlacementPartition}}
				o.Fields.SchemaVersion = "schema_version"
				o.Tracing = Tracing{TraceParent: "traceparent", TraceState: "tracestate"}
			},
		},
		{
			name:    "a capture group without a regex is rejected",
			mutate:  func(o *Options) { o.TopicTemplate = "outbox.$1" },
			wantErr: `TopicTemplate: capture group $1 needs TopicRegex (got "outbox.$1")`,
		},
		{
			name: "a capture group the regex does not have is rejected",
			mutate: func(o *Options) {
				o.TopicRegex = `(a)(b)`
				o.TopicTemplate = "t.${3}"
			},
			wantErr: `TopicTemplate: capture group ${3}: TopicRegex has 2 groups (got "t.${3}")`,
		},
		{
			name: "a group name the regex does not have is rejected",
			mutate: func(o *Options) {
				o.TopicRegex = `(?<domain>.*)`
				o.TopicTemplate = "t.${domian}"
			},
			wantErr: `TopicTemplate: unknown placeholder "${domian}": TopicRegex has no group of that name; ` + PH + ` (got "t.${domian}")`,
		},
		{
			name: "a regex RE2 cannot compile is rejected once",
			mutate: func(o *Options) {
				o.TopicRegex = `(?=look)(.*)`
				o.TopicTemplate = "t.$1"
			},
			wantErr: "TopicRegex: not a valid regular expression (RE2 syntax): invalid or unsupported Perl syntax: `(?=` (got \"(?=look)(.*)\")",
		},
		{
			name: "two partition columns are rejected",
			mutate: func(o *Options) {
				o.Additional = []Additional{{Column: "a", Placement: PlacementPartition}, {Column: "b", Placement: PlacementPartition}}
			},
			wantErr: `Additional[1].Placement: only one column can choose the partition; Additional[0] does (got "partition")`,
		},
		{
			name: "a header named like the schema version header is rejected when it is set",
			mutate: func(o *Options) {
				o.Fields.SchemaVersion = "v"
				o.Additional = []Additional{{Column: "version", As: "schemaVersion"}}
			},
			wantErr: `Additional[0].As: header name already taken by the format or another column (got "schemaVersion")`,
		},
		{
			name: "a tracestate column needs a traceparent column",
			mutate: func(o *Options) {
				o.Tracing = Tracing{TraceState: "ts"}
			},
			wantErr: `Tracing.TraceState: needs Tracing.TraceParent (got "ts")`,
		},
		{
			name: "a traceparent column and a span context column are rejected together",
			mutate: func(o *Options) {
				o.Tracing = Tracing{TraceParent: "tp", SpanContext: "tracingspancontext"}
			},
			wantErr: `Tracing.SpanContext: not with Tracing.TraceParent: one column carries the trace context (got "tracingspancontext")`,
		},
		{
			name: "a traceparent header column is rejected when tracing is on",
			mutate: func(o *Options) {
				o.Tracing = Tracing{SpanContext: "tracingspancontext"}
				o.Additional = []Additional{{Column: "traceparent"}}
			},
			wantErr: `Additional[0].As: header name already taken by the format or another column (got "traceparent")`,
		},
		{
			name:    "an empty connector name is rejected",
			mutate:  func(o *Options) { o.ConnectorName = "" },
			wantErr: `ConnectorName: must not be empty (got "")`,
		},
		{
			name:    "an unknown placeholder is rejected",
			mutate:  func(o *Options) { o.TopicTemplate = "outbox.${aggregateType}" },
			wantErr: `TopicTemplate: unknown placeholder "${aggregateType}"; placeholders are ${routedByValue}, ${table}, ${schema} and the capture groups of TopicRegex ($1, ${1}, ${name}) (got "outbox.${aggregateType}")`,
		},
		{
			name:    "an unterminated placeholder is rejected",
			mutate:  func(o *Options) { o.TopicTemplate = "outbox.${routedByValue" },
			wantErr: `TopicTemplate: unterminated placeholder "${" (got "outbox.${routedByValue")`,
		},
		{
			name:    "a dollar outside a placeholder is rejected",
			mutate:  func(o *Options) { o.TopicTemplate = "outbox.$routedByValue" },
			wantErr: `TopicTemplate: "$" outside a placeholder; placeholders are ${routedByValue}, ${table}, ${schema} and the capture groups of TopicRegex ($1, ${1}, ${name}) (got "outbox.$routedByValue")`,
		},
		{
			name:    "a character Kafka does not allow is rejected",
			mutate:  func(o *Options) { o.TopicTemplate = "outbox/${routedByValue}" },
			wantErr: `TopicTemplate: character '/' not allowed in a topic name (want [a-zA-Z0-9._-]) (got "outbox/${routedByValue}")`,
		},
		{
			name:    "a fixed topic of .. is rejected",
			mutate:  func(o *Options) { o.TopicTemplate = ".." },
			wantErr: `TopicTemplate: a fixed topic must match ^[a-zA-Z0-9._-]{1,249}$ and not be . or .. (got "..")`,
		},
		{
			name:    "a template with a literal part over 249 characters is rejected",
			mutate:  func(o *Options) { o.TopicTemplate = strings.Repeat("t", 250) + "${routedByValue}" },
			wantErr: `TopicTemplate: longer than 249 characters (got "` + strings.Repeat("t", 250) + `${routedByValue}")`,
		},
		{
			name:    "an unknown format is rejected",
			mutate:  func(o *Options) { o.Format = Format(9) },
			wantErr: `Format: unknown format (got "format(9)")`,
		},
		{
			name:    "tombstones on empty payload need the debezium format",
			mutate:  func(o *Options) { o.TombstoneOnEmptyPayload = true },
			wantErr: `TombstoneOnEmptyPayload: needs Format debezium (got "envelope")`,
		},
		{
			name:    "a header named id is rejected",
			mutate:  func(o *Options) { o.Additional = []Additional{{Column: "tenant", As: "id"}} },
			wantErr: `Additional[0].As: header name already taken by the format or another column (got "id")`,
		},
		{
			name:    "a header named type is rejected in the envelope format",
			mutate:  func(o *Options) { o.Additional = []Additional{{Column: "type"}} },
			wantErr: `Additional[0].As: header name already taken by the format or another column (got "type")`,
		},
		{
			name: "two headers with one name are rejected",
			mutate: func(o *Options) {
				o.Additional = []Additional{{Column: "tenant"}, {Column: "tenant_id", As: "tenant"}}
			},
			wantErr: `Additional[1].As: header name already taken by the format or another column (got "tenant")`,
		},
		{
			name: "an envelope field named like an envelope key is rejected",
			mutate: func(o *Options) {
				o.Additional = []Additional{{Column: "occurred_at", Placement: PlacementEnvelope, As: "occurredAt"}}
			},
			wantErr: `Additional[0].As: name already used in the envelope value (got "occurredAt")`,
		},
		{
			name: "an envelope column in the debezium format is rejected",
			mutate: func(o *Options) {
				o.Format, o.Additional = FormatDebezium, []Additional{{Column: "tenant", Placement: PlacementEnvelope}}
			},
			wantErr: `Additional[0].Placement: format debezium has no envelope; use header (got "envelope")`,
		},
		{
			name: "a CloudEvents extension name with an underscore is rejected",
			mutate: func(o *Options) {
				o.Format, o.Additional = FormatCloudEvents, []Additional{{Column: "tenant_id", Placement: PlacementEnvelope}}
			},
			wantErr: `Additional[0].As: a CloudEvents extension name must be lowercase letters and digits (got "tenant_id")`,
		},
		{
			name: "a CloudEvents extension named like a context attribute is rejected",
			mutate: func(o *Options) {
				o.Format, o.Additional = FormatCloudEvents, []Additional{{Column: "t", Placement: PlacementEnvelope, As: "subject"}}
			},
			wantErr: `Additional[0].As: name already used in the cloudevents value (got "subject")`,
		},
		{
			name: "a content-type header is rejected in the cloudevents format",
			mutate: func(o *Options) {
				o.Format, o.Additional = FormatCloudEvents, []Additional{{Column: "ct", As: "content-type"}}
			},
			wantErr: `Additional[0].As: header name already taken by the format or another column (got "content-type")`,
		},
		{
			name: "every problem is reported at once",
			mutate: func(o *Options) {
				o.ConnectorName = ""
				o.OnUpdate = OnUpdate(7)
				o.Additional = []Additional{{Column: ""}, {Column: "x", Placement: Placement(3)}}
			},
			wantErr: `ConnectorName: must not be empty (got "")` + "\n" +
				`OnUpdate: unknown on_update policy (got "on_update(7)")` + "\n" +
				`Additional[0].Column: must not be empty (got "")` + "\n" +
				`Additional[1].Placement: unknown placement (got "placement(3)")`,
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			o := Options{ConnectorName: "shop-outbox"}
			tc.mutate(&o)
			before := len(o.Additional)
			err := o.Validate()
			if len(o.Additional) != before {
				t.Error("Validate changed the options")
			}
			if tc.wantErr == "" {
				if err != nil {
					t.Fatalf("Validate: %v", err)
				}
				if _, err := New(o); err != nil {
					t.Fatalf("New: %v", err)
				}
				return
			}
			if err == nil {
				t.Fatalf("Validate = nil, want %q", tc.wantErr)
			}
			if err.Error() != tc.wantErr {
				t.Errorf("Validate error:\n%s\nwant:\n%s", err, tc.wantErr)
			}
			if _, err := New(o); err == nil || !strings.Contains(err.Error(), tc.wantErr) {
				t.Errorf("New error = %v, want it to contain %q", err, tc.wantErr)
			}
		})
	}
}

func TestZeroOptionsAreTheDefaults(t *testing.T) {
	zero, err := New(Options{ConnectorName: "c"})
	if err != nil {
		t.Fatal(err)
	}
	d := DefaultOptions()
	d.ConnectorName = "c"
	d.Additional = []Additional{}
	if zero.opts.Fields != d.Fields || zero.opts.TopicTemplate != d.TopicTemplate ||
		zero.opts.Format != FormatEnvelope || zero.opts.PayloadType != PayloadAuto ||
		zero.opts.OnUpdate != OnUpdateWarn || zero.opts.TimestampZone != time.UTC {
		t.Errorf("zero options = %+v, want %+v", zero.opts, d)
	}
	if d.Fields.ID != "id" || d.Fields.Key != "aggregateid" || d.Fields.Type != "type" ||
		d.Fields.Payload != "payload" || d.Fields.RouteBy != "aggregatetype" || d.Fields.Timestamp != "" ||
		d.TopicTemplate != "outbox.event.${routedByValue}" {
		t.Errorf("DefaultOptions = %+v, want Debezium's names", d)
	}
}

func TestEnums(t *testing.T) {
	type enum interface{ String() string }
	tests := []struct {
		name  string
		parse func(string) (enum, error)
		names []string
	}{
		{"format", func(s string) (enum, error) { return ParseFormat(s) }, []string{"envelope", "debezium", "cloudevents"}},
		{"payload type", func(s string) (enum, error) { return ParsePayloadType(s) }, []string{"auto", "json", "string", "bytes"}},
		{"on_update", func(s string) (enum, error) { return ParseOnUpdate(s) }, []string{"warn", "ignore", "fail"}},
		{"placement", func(s string) (enum, error) { return ParsePlacement(s) }, []string{"header", "envelope"}},
	}
	for _, tc := range tests {
		t.Run("each "+tc.name+" name parses back to itself", func(t *testing.T) {
			for _, n := range tc.names {
				v, err := tc.parse(strings.ToUpper(n))
				if err != nil || v.String() != n {
					t.Errorf("parse(%q) = %v, %v", strings.ToUpper(n), v, err)
				}
			}
			if v, err := tc.parse(""); err != nil || v.String() != tc.names[0] {
				t.Errorf(`parse("") = %v, %v; want the default %s`, v, err, tc.names[0])
			}
			if _, err := tc.parse("nope"); err == nil || !strings.Contains(err.Error(), `"nope"`) {
				t.Errorf(`parse("nope") error = %v`, err)
			}
		})
	}
	if Skip.String() != "skip" || Publish.String() != "publish" {
		t.Error("Action names")
	}
}

func TestIsPoison(t *testing.T) {
	for _, err := range []error{ErrInvalidTopic, ErrInvalidPayload, ErrInvalidEvent} {
		if !IsPoison(errors.Join(errors.New("context"), err)) {
			t.Errorf("IsPoison(%v) = false", err)
		}
	}
	for _, err := range []error{nil, ErrUpdate, ErrMissingColumn, errors.New("other")} {
		if IsPoison(err) {
			t.Errorf("IsPoison(%v) = true", err)
		}
	}
}
