package outbox

import (
	"bytes"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/tailbox-cdc/tailbox/pkg/binlog"
)

// A W3C traceparent and tracestate as OpenTelemetry writes them.
const (
	testTraceparent = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"
	testTracestate  = "rojo=00f067aa0ba902b7,congo=t61rcWkgMzE"
)

// routerTable is an outbox table with the columns of the router features:
// a partition column, a schema version and trace context columns.
func routerTable(schema, name string) *binlog.Table {
	return &binlog.Table{
		Schema: schema,
		Name:   name,
		Columns: []binlog.Column{
			{Name: "id", Kind: binlog.KindText},
			{Name: "aggregatetype", Kind: binlog.KindText},
			{Name: "aggregateid", Kind: binlog.KindText},
			{Name: "type", Kind: binlog.KindText},
			{Name: "payload", Kind: binlog.KindJSON, Nullable: true},
			{Name: "shard", Kind: binlog.KindInt, Nullable: true},
			{Name: "schema_version", Kind: binlog.KindInt, Nullable: true},
			{Name: "traceparent", Kind: binlog.KindText, Nullable: true},
			{Name: "tracestate", Kind: binlog.KindText, Nullable: true},
			{Name: "tracingspancontext", Kind: binlog.KindText, Nullable: true},
		},
	}
}

// routerRow holds the values of a routerTable row that the tests vary.
type routerRow struct {
	route                   string
	shard, version          any
	parent, state, spanText any
}

func routerChange(tb *binlog.Table, r routerRow) *binlog.Change {
	return &binlog.Change{
		Table: tb,
		Op:    binlog.OpInsert,
		Row: []any{"7d1e4c1a-2b3c-4d5e-8f90-a1b2c3d4e5f6", r.route, "ORD-1001", "OrderCreated",
			`{"orderId":"ORD-1001"}`, r.shard, r.version, r.parent, r.state, r.spanText},
		Txn: &binlog.Txn{
			Begin:      binlog.Position{File: "binlog.000003", Pos: 4},
			GTID:       "3e11fa47-71ca-11e1-9e33-c80aa9429562:5",
			CommitTime: time.Date(2026, 11, 24, 17, 21, 11, 0, time.UTC),
		},
		ServerID: 1,
		File:     "binlog.000003",
		Pos:      900,
	}
}

func TestTransformPartitionPlacement(t *testing.T) {
	tr := mustNew(t, Options{ConnectorName: "c", Format: FormatDebezium,
		Additional: []Additional{{Column: "shard", Placement: PlacementPartition}}})
	tb := routerTable("shop", "outbox")
	tests := []struct {
		name     string
		value    any
		want     int32
		explicit bool
		poison   string
	}{
		{name: "an integer column value is the partition", value: int64(5), want: 5, explicit: true},
		{name: "partition 0 is explicit", value: int64(0), want: 0, explicit: true},
		{name: "an unsigned value is the partition", value: uint64(2147483647), want: 2147483647, explicit: true},
		{name: "decimal text is the partition", value: "12", want: 12, explicit: true},
		{name: "NULL leaves the partition to the key", value: nil},
		{name: "a negative value is a poison event", value: int64(-1), poison: `partition column "shard" holds "-1"`},
		{name: "a value past int32 is a poison event", value: int64(1 << 31), poison: `holds "2147483648"`},
		{name: "text that is no number is a poison event", value: "eu-1", poison: `holds "eu-1", not a partition number`},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			r, err := tr.Transform(routerChange(tb, routerRow{route: "order", shard: tc.value}))
			if tc.poison != "" {
				if !errors.Is(err, ErrInvalidEvent) || !IsPoison(err) || !strings.Contains(err.Error(), tc.poison) {
					t.Fatalf("err = %v, want ErrInvalidEvent containing %q", err, tc.poison)
				}
				return
			}
			if err != nil {
				t.Fatalf("Transform: %v", err)
			}
			if r.Event.ExplicitPartition != tc.explicit || r.Event.Partition != tc.want {
				t.Fatalf("partition = %d (explicit %v), want %d (explicit %v)", r.Event.Partition, r.Event.ExplicitPartition, tc.want, tc.explicit)
			}
			if _, ok := header(r.Event, "shard"); ok {
				t.Error("the partition column is also a header")
			}
		})
	}
}

func TestTransformTopicRouting(t *testing.T) {
	tests := []struct {
		name          string
		regex, tmpl   string
		schema, table string
		route         string
		want          string
		poison        string
	}{
		{name: "the default template is Debezium's", route: "order", want: "outbox.event.order"},
		{name: "a numbered group of the regex", regex: `([a-z]+)\.v[0-9]+`, tmpl: "events.$1", route: "order.v2", want: "events.order"},
		{name: "a braced number and a name", regex: `(?<domain>[a-z]+)-(?P<kind>[a-z]+)`, tmpl: "${domain}.${2}.${kind}", route: "billing-invoice", want: "billing.invoice.invoice"},
		{name: "Debezium's default regex names the group routedByValue", regex: `(?<routedByValue>.*)`, route: "order", want: "outbox.event.order"},
		{name: "routedByValue is the group of that name when there is one", regex: `(?<routedByValue>[a-z]+)_.*`, route: "order_eu", want: "outbox.event.order"},
		{name: "routedByValue is the whole value when the regex has no such group", regex: `([a-z]+)_.*`, tmpl: "x.${routedByValue}.$1", route: "order_eu", want: "x.order_eu.order"},
		{name: "an optional group that did not match is empty", regex: `([a-z]+)(_[a-z]+)?`, tmpl: "t.$1$2", route: "order", want: "t.order"},
		{name: "the regex must match the whole value", regex: `[a-z]+`, route: "order.v2", poison: `route_by value "order.v2" does not match route.topic_regex "[a-z]+"`},
		{name: "the table and schema of each outbox table", tmpl: "${schema}.${table}.${routedByValue}", schema: "billing", table: "outbox_eu", route: "invoice", want: "billing.outbox_eu.invoice"},
		{name: "a per-table topic without the route value", tmpl: "events.${table}", schema: "shop", table: "outbox_us", route: "ignored", want: "events.outbox_us"},
		{name: "a table name Kafka does not accept is a poison event", tmpl: "events.${table}", schema: "shop", table: "outbox$eu", route: "x", poison: `render topic for table shop.outbox$eu: "events.outbox$eu" does not match`},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			tr := mustNew(t, Options{ConnectorName: "c", TopicRegex: tc.regex, TopicTemplate: tc.tmpl})
			schema, table := tc.schema, tc.table
			if schema == "" {
				schema, table = "shop", "outbox"
			}
			tb := routerTable(schema, table)
			for range 2 { // the second render comes from the cache
				r, err := tr.Transform(routerChange(tb, routerRow{route: tc.route}))
				if tc.poison != "" {
					if !errors.Is(err, ErrInvalidTopic) || !strings.Contains(err.Error(), tc.poison) {
						t.Fatalf("err = %v, want ErrInvalidTopic containing %q", err, tc.poison)
					}
					continue
				}
				if err != nil {
					t.Fatalf("Transform: %v", err)
				}
				if r.Event.Topic != tc.want {
					t.Fatalf("topic = %q, want %q", r.Event.Topic, tc.want)
				}
			}
		})
	}
}

func TestTransformPerTableTopicsDoNotShareTheCache(t *testing.T) {
	tr := mustNew(t, Options{ConnectorName: "c", TopicTemplate: "${table}.${routedByValue}"})
	us, eu := routerTable("shop", "outbox_us"), routerTable("shop", "outbox_eu")
	for i, want := range []string{"outbox_us.order", "outbox_eu.order", "outbox_us.order", "outbox_eu.payment"} {
		tb, route := us, "order"
		if i%2 == 1 {
			tb = eu
		}
		if i == 3 {
			route = "payment"
		}
		r, err := tr.Transform(routerChange(tb, routerRow{route: route}))
		if err != nil {
			t.Fatalf("event %d: %v", i, err)
		}
		if r.Event.Topic != want {
			t.Fatalf("event %d: topic %q, want %q", i, r.Event.Topic, want)
		}
	}
}

func TestTransformSchemaVersionHeader(t *testing.T) {
	tr := mustNew(t, Options{ConnectorName: "c", Fields: Fields{SchemaVersion: "schema_version"}})
	tb := routerTable("shop", "outbox")
	r, err := tr.Transform(routerChange(tb, routerRow{route: "order", version: int64(3)}))
	if err != nil {
		t.Fatal(err)
	}
	if v, ok := header(r.Event, "schemaVersion"); !ok || string(v) != "3" {
		t.Fatalf("schemaVersion header = %q, %v; want \"3\"", v, ok)
	}
	wantHeaders(t, r.Event, "id", "type", "schemaVersion")
	r, err = tr.Transform(routerChange(tb, routerRow{route: "order"}))
	if err != nil {
		t.Fatal(err)
	}
	wantHeaders(t, r.Event, "id", "type") // NULL: absent
}

func TestTransformTraceContext(t *testing.T) {
	columns := Tracing{TraceParent: "traceparent", TraceState: "tracestate"}
	spanContext := Tracing{SpanContext: "tracingspancontext"}
	tests := []struct {
		name          string
		tracing       Tracing
		row           routerRow
		parent, state string // "" = header absent
		warning       string
	}{
		{name: "both columns become headers", tracing: columns,
			row: routerRow{parent: testTraceparent, state: testTracestate}, parent: testTraceparent, state: testTracestate},
		{name: "a NULL tracestate is absent", tracing: columns,
			row: routerRow{parent: testTraceparent}, parent: testTraceparent},
		{name: "an empty tracestate is absent", tracing: columns,
			row: routerRow{parent: testTraceparent, state: ""}, parent: testTraceparent},
		{name: "a NULL traceparent leaves both out, without a warning", tracing: columns,
			row: routerRow{state: testTracestate}},
		{name: "an empty traceparent leaves both out, without a warning", tracing: columns,
			row: routerRow{parent: "  ", state: testTracestate}},
		{name: "blanks around the values are trimmed", tracing: columns,
			row: routerRow{parent: " " + testTraceparent + "\n", state: testTracestate + " "}, parent: testTraceparent, state: testTracestate},
		{name: "a later version may carry more fields", tracing: columns,
			row: routerRow{parent: "01" + testTraceparent[2:] + "-extra"}, parent: "01" + testTraceparent[2:] + "-extra"},
		{name: "an invalid traceparent is dropped with its tracestate and a warning", tracing: columns,
			row:     routerRow{parent: "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7", state: testTracestate},
			warning: `trace column "traceparent" holds traceparent "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7", which is not a W3C traceparent`},
		{name: "an all-zero trace id is invalid", tracing: columns,
			row: routerRow{parent: "00-00000000000000000000000000000000-00f067aa0ba902b7-01"}, warning: "not a W3C traceparent"},
		{name: "upper-case hex is invalid", tracing: columns,
			row: routerRow{parent: strings.ToUpper(testTraceparent)}, warning: "not a W3C traceparent"},
		{name: "version ff is invalid", tracing: columns,
			row: routerRow{parent: "ff" + testTraceparent[2:]}, warning: "not a W3C traceparent"},
		{name: "version 00 with more fields is invalid", tracing: columns,
			row: routerRow{parent: testTraceparent + "-extra"}, warning: "not a W3C traceparent"},
		{name: "Debezium's span context column, as Properties.store writes it", tracing: spanContext,
			row:    routerRow{spanText: "#Tue Nov 24 17:21:11 UTC 2026\ntraceparent=" + testTraceparent + "\ntracestate=rojo\\=00f067aa0ba902b7,congo\\=t61rcWkgMzE\n"},
			parent: testTraceparent, state: testTracestate},
		{name: "a span context with CRLF, colons, blanks and comments", tracing: spanContext,
			row:    routerRow{spanText: "! comment\r\n  tracestate : a\\u003db\r\n\r\ntraceparent:" + testTraceparent + "\r\nuber-trace-id=x"},
			parent: testTraceparent, state: "a=b"},
		{name: "a span context without a traceparent gives no headers", tracing: spanContext,
			row: routerRow{spanText: "uber-trace-id=abc:def:0:1\n"}},
		{name: "a NULL span context gives no headers", tracing: spanContext, row: routerRow{}},
		{name: "an invalid traceparent in a span context is dropped with a warning", tracing: spanContext,
			row: routerRow{spanText: "traceparent=nope\ntracestate=a=b"}, warning: `trace column "tracingspancontext" holds traceparent "nope"`},
	}
	tb := routerTable("shop", "outbox")
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			tr := mustNew(t, Options{ConnectorName: "c", Format: FormatDebezium, Tracing: tc.tracing})
			tc.row.route = "order"
			r, err := tr.Transform(routerChange(tb, tc.row))
			if err != nil {
				t.Fatalf("Transform: %v", err)
			}
			if r.Action != Publish {
				t.Fatalf("action %s, want publish", r.Action)
			}
			check := func(key, want string) {
				v, ok := header(r.Event, key)
				switch {
				case want == "" && ok:
					t.Errorf("header %s = %q, want it absent", key, v)
				case want != "" && (!ok || string(v) != want):
					t.Errorf("header %s = %q (present %v), want %q", key, v, ok, want)
				}
			}
			check("traceparent", tc.parent)
			check("tracestate", tc.state)
			if tc.warning == "" && r.Warning != "" || !strings.Contains(r.Warning, tc.warning) {
				t.Errorf("warning %q, want %q", r.Warning, tc.warning)
			}
		})
	}
}

// TestRouterGolden pins one event with every router feature at once: a
// regex route, a per-table topic, an explicit partition, the schema
// version and the trace headers.
func TestRouterGolden(t *testing.T) {
	tr := mustNew(t, Options{
		ConnectorName: "shop-outbox",
		Format:        FormatDebezium,
		TopicRegex:    `(?<domain>[a-z]+)\.v(?<version>[0-9]+)`,
		TopicTemplate: "${schema}.${domain}.v$2",
		Fields:        Fields{SchemaVersion: "schema_version"},
		Additional:    []Additional{{Column: "shard", Placement: PlacementPartition}, {Column: "aggregatetype", As: "aggregateType"}},
		Tracing:       Tracing{TraceParent: "traceparent", TraceState: "tracestate"},
	})
	r, err := tr.Transform(routerChange(routerTable("billing", "outbox"), routerRow{
		route: "invoice.v2", shard: int64(4), version: int64(2), parent: testTraceparent, state: testTracestate,
	}))
	if err != nil {
		t.Fatal(err)
	}
	got := render(t, FormatDebezium, r)
	path := filepath.Join("testdata", "router_debezium.golden")
	if *update {
		if err := os.WriteFile(path, got, 0o644); err != nil {
			t.Fatal(err)
		}
		return
	}
	want, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("%v (run go test -update to create it)", err)
	}
	if !bytes.Equal(got, want) {
		t.Errorf("%s differs (run go test -update after checking the change)\ngot:\n%s\nwant:\n%s", path, got, want)
	}
}
