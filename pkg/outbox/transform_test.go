package outbox

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"
	_ "time/tzdata" // Europe/Berlin without a system zoneinfo

	"github.com/tailbox-cdc/tailbox/pkg/binlog"
)

func TestTransform(t *testing.T) {
	berlin, err := time.LoadLocation("Europe/Berlin")
	if err != nil {
		t.Fatal(err)
	}
	uuid16 := []byte{0x5b, 0x0c, 0xfa, 0x8e, 0x3f, 0x7a, 0x4c, 0x55, 0x9d, 0x0e, 0x2f, 0x1a, 0x9c, 0x1e, 0x7b, 0x21}

	tests := []struct {
		name string
		// opts changes Options{ConnectorName: "shop-outbox"}.
		opts func(*Options)
		// base makes the change; nil means mariaDBChange.
		base func() *binlog.Change
		// change changes the change.
		change  func(*binlog.Change)
		wantErr error
		// wantAction is checked when wantErr is nil.
		wantAction Action
		check      func(t *testing.T, r Result, err error)
	}{
		// Payloads.
		{
			name:       "a NULL payload is null in the envelope",
			change:     func(c *binlog.Change) { c.Row[colPayload] = nil },
			wantAction: Publish,
			check: func(t *testing.T, r Result, _ error) {
				wantField(t, r, "payload", "null")
			},
		},
		{
			name:       "a NULL payload is a tombstone in the debezium format",
			opts:       func(o *Options) { o.Format = FormatDebezium },
			change:     func(c *binlog.Change) { c.Row[colPayload] = nil },
			wantAction: Publish,
			check: func(t *testing.T, r Result, _ error) {
				if r.Event.Value != nil {
					t.Errorf("Value = %q, want nil (tombstone)", r.Event.Value)
				}
				if string(r.Event.Key) != "ORD-1001" {
					t.Errorf("Key = %q, want ORD-1001", r.Event.Key)
				}
			},
		},
		{
			name:       "a NULL payload leaves out data and datacontenttype in a CloudEvent",
			opts:       func(o *Options) { o.Format = FormatCloudEvents },
			change:     func(c *binlog.Change) { c.Row[colPayload] = nil },
			wantAction: Publish,
			check: func(t *testing.T, r Result, _ error) {
				wantField(t, r, "data", "<absent>")
				wantField(t, r, "datacontenttype", "<absent>")
			},
		},
		{
			name:       "a non-JSON text payload is a JSON string",
			change:     func(c *binlog.Change) { c.Row[colPayload] = "order 1001 shipped" },
			wantAction: Publish,
			check: func(t *testing.T, r Result, _ error) {
				wantField(t, r, "payload", `"order 1001 shipped"`)
			},
		},
		{
			name:       "a non-JSON text payload is text/plain data in a CloudEvent",
			opts:       func(o *Options) { o.Format = FormatCloudEvents },
			change:     func(c *binlog.Change) { c.Row[colPayload] = "order 1001 shipped" },
			wantAction: Publish,
			check: func(t *testing.T, r Result, _ error) {
				wantField(t, r, "datacontenttype", `"text/plain"`)
				wantField(t, r, "data", `"order 1001 shipped"`)
			},
		},
		{
			name:       "a JSON scalar in a text column is a string under payload_type auto",
			change:     func(c *binlog.Change) { c.Row[colPayload] = "42" },
			wantAction: Publish,
			check: func(t *testing.T, r Result, _ error) {
				wantField(t, r, "payload", `"42"`)
			},
		},
		{
			name:       "a JSON scalar in a text column is embedded under payload_type json",
			opts:       func(o *Options) { o.PayloadType = PayloadJSON },
			change:     func(c *binlog.Change) { c.Row[colPayload] = " 42 " },
			wantAction: Publish,
			check: func(t *testing.T, r Result, _ error) {
				wantField(t, r, "payload", `42`)
			},
		},
		{
			name:       "a JSON object with surrounding whitespace is embedded compactly",
			change:     func(c *binlog.Change) { c.Row[colPayload] = " \r\n\t{\"a\": [1, 2]}\n " },
			wantAction: Publish,
			check: func(t *testing.T, r Result, _ error) {
				wantField(t, r, "payload", `{"a":[1,2]}`)
				if !bytes.Contains(r.Event.Value, []byte(`"payload":{"a":[1,2]},`)) {
					t.Errorf("payload not compacted: %s", r.Event.Value)
				}
			},
		},
		{
			name:       "a truncated JSON object in a text column is a string",
			change:     func(c *binlog.Change) { c.Row[colPayload] = `{"a":` },
			wantAction: Publish,
			check: func(t *testing.T, r Result, _ error) {
				wantField(t, r, "payload", `"{\"a\":"`)
			},
		},
		{
			name:       "a JSON object with invalid UTF-8 in a text column is a string with U+FFFD",
			change:     func(c *binlog.Change) { c.Row[colPayload] = "{\"a\":\"\xff\"}" },
			wantAction: Publish,
			check: func(t *testing.T, r Result, _ error) {
				wantField(t, r, "payload", `"{\"a\":\"\ufffd\"}"`)
			},
		},
		{
			name: "a BLOB payload is base64",
			change: func(c *binlog.Change) {
				c.Table.Columns[colPayload].Kind = binlog.KindBinary
				c.Row[colPayload] = []byte{0x00, 0x01, 0x02, 0xff}
			},
			wantAction: Publish,
			check: func(t *testing.T, r Result, _ error) {
				wantField(t, r, "payload", `"AAEC/w=="`)
			},
		},
		{
			name: "a BLOB payload is data_base64 in a CloudEvent",
			opts: func(o *Options) { o.Format = FormatCloudEvents },
			change: func(c *binlog.Change) {
				c.Table.Columns[colPayload].Kind = binlog.KindBinary
				c.Row[colPayload] = []byte{0x00, 0x01, 0x02, 0xff}
			},
			wantAction: Publish,
			check: func(t *testing.T, r Result, _ error) {
				wantField(t, r, "datacontenttype", `"application/octet-stream"`)
				wantField(t, r, "data_base64", `"AAEC/w=="`)
				wantField(t, r, "data", "<absent>")
			},
		},
		{
			name: "a BLOB payload is the raw bytes in the debezium format",
			opts: func(o *Options) { o.Format = FormatDebezium },
			change: func(c *binlog.Change) {
				c.Table.Columns[colPayload].Kind = binlog.KindBinary
				c.Row[colPayload] = []byte{0x00, 0x01, 0x02, 0xff}
			},
			wantAction: Publish,
			check: func(t *testing.T, r Result, _ error) {
				if !bytes.Equal(r.Event.Value, []byte{0x00, 0x01, 0x02, 0xff}) {
					t.Errorf("Value = %q", r.Event.Value)
				}
			},
		},
		{
			name: "an empty MySQL JSON document is null",
			base: mySQLChange,
			change: func(c *binlog.Change) {
				c.Row[colPayload] = ""
			},
			wantAction: Publish,
			check: func(t *testing.T, r Result, _ error) {
				wantField(t, r, "payload", "null")
			},
		},
		{
			name:    "payload_type json rejects invalid JSON as a poison event",
			opts:    func(o *Options) { o.PayloadType = PayloadJSON },
			change:  func(c *binlog.Change) { c.Row[colPayload] = "not json" },
			wantErr: ErrInvalidPayload,
			check: func(t *testing.T, r Result, err error) {
				if !IsPoison(err) {
					t.Errorf("IsPoison(%v) = false", err)
				}
				if r.Action != Skip {
					t.Errorf("Action = %s, want skip", r.Action)
				}
				ev := r.Event
				if string(ev.Value) != "not json" || string(ev.Key) != "ORD-1001" || ev.Topic != "outbox.event.order" || ev.ID == "" {
					t.Errorf("dead-letter event = %+v, want the stored payload with key, topic and id", ev)
				}
			},
		},
		{
			name:    "payload_type json rejects invalid JSON in the debezium format",
			opts:    func(o *Options) { o.Format, o.PayloadType = FormatDebezium, PayloadJSON },
			change:  func(c *binlog.Change) { c.Row[colPayload] = `{"a":1` },
			wantErr: ErrInvalidPayload,
		},
		{
			name:       "payload_type json accepts a JSON string in the debezium format unchanged",
			opts:       func(o *Options) { o.Format, o.PayloadType = FormatDebezium, PayloadJSON },
			change:     func(c *binlog.Change) { c.Row[colPayload] = ` "x" ` },
			wantAction: Publish,
			check: func(t *testing.T, r Result, _ error) {
				if string(r.Event.Value) != ` "x" ` {
					t.Errorf("Value = %q, want the stored text", r.Event.Value)
				}
			},
		},
		{
			name:       "payload_type string carries a JSON object as a string",
			opts:       func(o *Options) { o.PayloadType = PayloadString },
			change:     func(c *binlog.Change) { c.Row[colPayload] = `{"a": 1}` },
			wantAction: Publish,
			check: func(t *testing.T, r Result, _ error) {
				wantField(t, r, "payload", `"{\"a\": 1}"`)
			},
		},
		{
			name:       "payload_type bytes carries text as base64",
			opts:       func(o *Options) { o.PayloadType = PayloadBytes },
			change:     func(c *binlog.Change) { c.Row[colPayload] = `{}` },
			wantAction: Publish,
			check: func(t *testing.T, r Result, _ error) {
				wantField(t, r, "payload", `"e30="`)
			},
		},
		{
			name:       "a blank payload is a tombstone with TombstoneOnEmptyPayload",
			opts:       func(o *Options) { o.Format, o.TombstoneOnEmptyPayload = FormatDebezium, true },
			change:     func(c *binlog.Change) { c.Row[colPayload] = " \n" },
			wantAction: Publish,
			check: func(t *testing.T, r Result, _ error) {
				if r.Event.Value != nil {
					t.Errorf("Value = %q, want nil", r.Event.Value)
				}
			},
		},
		{
			name:       "a blank payload is an empty value without TombstoneOnEmptyPayload",
			opts:       func(o *Options) { o.Format = FormatDebezium },
			change:     func(c *binlog.Change) { c.Row[colPayload] = "" },
			wantAction: Publish,
			check: func(t *testing.T, r Result, _ error) {
				if r.Event.Value == nil || len(r.Event.Value) != 0 {
					t.Errorf("Value = %#v, want empty and non-nil", r.Event.Value)
				}
			},
		},
		{
			name: "an integer payload is a JSON number under auto",
			change: func(c *binlog.Change) {
				c.Table.Columns[colPayload].Kind = binlog.KindInt
				c.Row[colPayload] = int64(-7)
			},
			wantAction: Publish,
			check: func(t *testing.T, r Result, _ error) {
				wantField(t, r, "payload", `-7`)
			},
		},

		// Topics.
		{
			name:    "a route_by value with a space and ! makes an invalid topic",
			change:  func(c *binlog.Change) { c.Row[colRoute] = "bad topic!" },
			wantErr: ErrInvalidTopic,
			check: func(t *testing.T, r Result, err error) {
				if !IsPoison(err) {
					t.Errorf("IsPoison(%v) = false", err)
				}
				if !strings.Contains(err.Error(), `"outbox.event.bad topic!"`) {
					t.Errorf("error %q does not name the rendered topic", err)
				}
				if r.Event.Topic != "outbox.event.bad topic!" || r.Action != Skip {
					t.Errorf("Result = %+v", r)
				}
			},
		},
		{
			name:    "a NULL route_by value makes an invalid topic",
			change:  func(c *binlog.Change) { c.Row[colRoute] = nil },
			wantErr: ErrInvalidTopic,
		},
		{
			name:    "a rendered topic over 249 characters is invalid",
			change:  func(c *binlog.Change) { c.Row[colRoute] = strings.Repeat("a", 237) },
			wantErr: ErrInvalidTopic,
		},
		{
			name:    "a rendered topic of .. is invalid",
			opts:    func(o *Options) { o.TopicTemplate = "${routedByValue}" },
			change:  func(c *binlog.Change) { c.Row[colRoute] = ".." },
			wantErr: ErrInvalidTopic,
		},
		{
			name:       "a template renders every placeholder",
			opts:       func(o *Options) { o.TopicTemplate = "events.${routedByValue}.v1-${routedByValue}" },
			wantAction: Publish,
			check: func(t *testing.T, r Result, _ error) {
				if r.Event.Topic != "events.order.v1-order" {
					t.Errorf("Topic = %q", r.Event.Topic)
				}
			},
		},
		{
			name:       "a fixed topic does not need the route_by value",
			opts:       func(o *Options) { o.TopicTemplate = "all-events" },
			change:     func(c *binlog.Change) { c.Row[colRoute] = nil },
			wantAction: Publish,
			check: func(t *testing.T, r Result, _ error) {
				if r.Event.Topic != "all-events" {
					t.Errorf("Topic = %q", r.Event.Topic)
				}
				wantField(t, r, "aggregateType", "null")
			},
		},

		// Keys and ids.
		{
			name:       "a NULL aggregate id gives a NULL key",
			change:     func(c *binlog.Change) { c.Row[colKey] = nil },
			wantAction: Publish,
			check: func(t *testing.T, r Result, _ error) {
				if r.Event.Key != nil {
					t.Errorf("Key = %q, want nil", r.Event.Key)
				}
				wantField(t, r, "aggregateId", "null")
			},
		},
		{
			name:       "a NULL aggregate id leaves out the CloudEvents subject",
			opts:       func(o *Options) { o.Format = FormatCloudEvents },
			change:     func(c *binlog.Change) { c.Row[colKey] = nil },
			wantAction: Publish,
			check: func(t *testing.T, r Result, _ error) {
				wantField(t, r, "subject", "<absent>")
			},
		},
		{
			name:       "an empty aggregate id gives an empty, non-NULL key",
			change:     func(c *binlog.Change) { c.Row[colKey] = "" },
			wantAction: Publish,
			check: func(t *testing.T, r Result, _ error) {
				if r.Event.Key == nil || len(r.Event.Key) != 0 {
					t.Errorf("Key = %#v, want empty and non-nil", r.Event.Key)
				}
			},
		},
		{
			name: "a BINARY(16) id is canonical UUID text",
			change: func(c *binlog.Change) {
				c.Table.Columns[colID].Kind = binlog.KindBinary
				c.Row[colID] = uuid16
			},
			wantAction: Publish,
			check: func(t *testing.T, r Result, _ error) {
				const want = "5b0cfa8e-3f7a-4c55-9d0e-2f1a9c1e7b21"
				if r.Event.ID != want {
					t.Errorf("ID = %q, want %q", r.Event.ID, want)
				}
				if h, _ := header(r.Event, "id"); string(h) != want {
					t.Errorf("id header = %q, want %q", h, want)
				}
				wantField(t, r, "id", `"`+want+`"`)
			},
		},
		{
			name: "a BINARY(16) aggregate id is a UUID text key",
			change: func(c *binlog.Change) {
				c.Table.Columns[colKey].Kind = binlog.KindBinary
				c.Row[colKey] = uuid16
			},
			wantAction: Publish,
			check: func(t *testing.T, r Result, _ error) {
				if string(r.Event.Key) != "5b0cfa8e-3f7a-4c55-9d0e-2f1a9c1e7b21" {
					t.Errorf("Key = %q", r.Event.Key)
				}
			},
		},
		{
			name: "a BINARY(8) id is lowercase hex",
			change: func(c *binlog.Change) {
				c.Table.Columns[colID].Kind = binlog.KindBinary
				c.Row[colID] = []byte{0xde, 0xad, 0xbe, 0xef, 0, 1, 2, 0xAB}
			},
			wantAction: Publish,
			check: func(t *testing.T, r Result, _ error) {
				if r.Event.ID != "deadbeef000102ab" {
					t.Errorf("ID = %q", r.Event.ID)
				}
			},
		},
		{
			name: "an integer aggregate id is decimal text",
			change: func(c *binlog.Change) {
				c.Table.Columns[colKey].Kind = binlog.KindUint
				c.Row[colKey] = uint64(18446744073709551615)
			},
			wantAction: Publish,
			check: func(t *testing.T, r Result, _ error) {
				if string(r.Event.Key) != "18446744073709551615" {
					t.Errorf("Key = %q", r.Event.Key)
				}
				wantField(t, r, "aggregateId", `"18446744073709551615"`)
			},
		},
		{
			name:    "a NULL event id is an invalid event",
			change:  func(c *binlog.Change) { c.Row[colID] = nil },
			wantErr: ErrInvalidEvent,
			check: func(t *testing.T, r Result, err error) {
				if !IsPoison(err) {
					t.Errorf("IsPoison(%v) = false", err)
				}
				if h, ok := header(r.Event, "id"); !ok || h != nil {
					t.Errorf("id header = %q, %v; want present with nil value", h, ok)
				}
			},
		},
		{
			name:    "a poison CloudEvent has no content-type header",
			opts:    func(o *Options) { o.Format = FormatCloudEvents },
			change:  func(c *binlog.Change) { c.Row[colID] = nil },
			wantErr: ErrInvalidEvent,
			check: func(t *testing.T, r Result, _ error) {
				wantHeaders(t, r.Event, "id", "type")
				if !strings.HasPrefix(string(r.Event.Value), `{"orderId"`) {
					t.Errorf("Value = %s, want the stored payload", r.Event.Value)
				}
			},
		},
		{
			name:    "an empty event type is an invalid CloudEvent",
			opts:    func(o *Options) { o.Format = FormatCloudEvents },
			change:  func(c *binlog.Change) { c.Row[colType] = "" },
			wantErr: ErrInvalidEvent,
		},
		{
			name:       "a NULL event type is null in the envelope with an empty type header",
			change:     func(c *binlog.Change) { c.Row[colType] = nil },
			wantAction: Publish,
			check: func(t *testing.T, r Result, _ error) {
				wantField(t, r, "type", "null")
				if h, ok := header(r.Event, "type"); !ok || h != nil {
					t.Errorf("type header = %q, %v; want present with nil value", h, ok)
				}
			},
		},

		// Operations.
		{
			name:       "an update under on_update=warn is skipped with a warning",
			change:     func(c *binlog.Change) { c.Op = binlog.OpUpdate },
			wantAction: Skip,
			check: func(t *testing.T, r Result, _ error) {
				if r.Warning == "" {
					t.Error("no warning")
				}
			},
		},
		{
			name:       "an update under on_update=ignore is skipped silently",
			opts:       func(o *Options) { o.OnUpdate = OnUpdateIgnore },
			change:     func(c *binlog.Change) { c.Op = binlog.OpUpdate },
			wantAction: Skip,
			check: func(t *testing.T, r Result, _ error) {
				if r.Warning != "" {
					t.Errorf("Warning = %q", r.Warning)
				}
			},
		},
		{
			name:    "an update under on_update=fail is a fatal error",
			opts:    func(o *Options) { o.OnUpdate = OnUpdateFail },
			change:  func(c *binlog.Change) { c.Op = binlog.OpUpdate },
			wantErr: ErrUpdate,
			check: func(t *testing.T, _ Result, err error) {
				if IsPoison(err) {
					t.Errorf("IsPoison(%v) = true", err)
				}
			},
		},
		{
			name:       "a delete is skipped without a warning",
			change:     func(c *binlog.Change) { c.Op = binlog.OpDelete },
			wantAction: Skip,
			check: func(t *testing.T, r Result, _ error) {
				if r.Warning != "" {
					t.Errorf("Warning = %q", r.Warning)
				}
			},
		},
		{
			name:    "a missing payload column is a fatal error naming table and column",
			opts:    func(o *Options) { o.Fields.Payload = "body" },
			wantErr: ErrMissingColumn,
			check: func(t *testing.T, _ Result, err error) {
				if IsPoison(err) {
					t.Errorf("IsPoison(%v) = true", err)
				}
				for _, s := range []string{"shop.outbox", `"body"`, "Fields.Payload"} {
					if !strings.Contains(err.Error(), s) {
						t.Errorf("error %q does not contain %s", err, s)
					}
				}
			},
		},
		{
			name: "missing timestamp and additional columns are all reported",
			opts: func(o *Options) {
				o.Fields.Timestamp = "occurred"
				o.Additional = []Additional{{Column: "trace"}}
			},
			wantErr: ErrMissingColumn,
			check: func(t *testing.T, _ Result, err error) {
				for _, s := range []string{`"occurred"`, `"trace"`, "Additional[0].Column"} {
					if !strings.Contains(err.Error(), s) {
						t.Errorf("error %q does not contain %s", err, s)
					}
				}
			},
		},
		{
			name:       "column names match case-insensitively",
			opts:       func(o *Options) { o.Fields.Key = "AggregateID" },
			wantAction: Publish,
		},

		// Timestamps.
		{
			name:       "a TIMESTAMP column with microseconds is occurredAt",
			opts:       func(o *Options) { o.Fields.Timestamp = "created_at" },
			wantAction: Publish,
			check: func(t *testing.T, r Result, _ error) {
				wantField(t, r, "occurredAt", `"2026-11-24T17:21:10.987654Z"`)
				wantTime(t, r, time.Date(2026, 11, 24, 17, 21, 10, 987654000, time.UTC))
			},
		},
		{
			name:       "a TIMESTAMP column without fraction prints seconds only",
			opts:       func(o *Options) { o.Fields.Timestamp = "created_at" },
			change:     func(c *binlog.Change) { c.Row[colCreated] = time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC) },
			wantAction: Publish,
			check: func(t *testing.T, r Result, _ error) {
				wantField(t, r, "occurredAt", `"2026-01-02T03:04:05Z"`)
			},
		},
		{
			name: "a DATETIME column is read in Europe/Berlin in winter",
			opts: func(o *Options) { o.Fields.Timestamp, o.TimestampZone = "created_at", berlin },
			change: func(c *binlog.Change) {
				c.Table.Columns[colCreated].Kind = binlog.KindDatetime
				c.Row[colCreated] = time.Date(2026, 11, 24, 18, 21, 10, 500000000, time.UTC)
			},
			wantAction: Publish,
			check: func(t *testing.T, r Result, _ error) {
				wantField(t, r, "occurredAt", `"2026-11-24T17:21:10.500000Z"`)
				wantTime(t, r, time.Date(2026, 11, 24, 17, 21, 10, 500000000, time.UTC))
			},
		},
		{
			name: "a DATETIME column is read in Europe/Berlin in summer",
			opts: func(o *Options) { o.Fields.Timestamp, o.TimestampZone = "created_at", berlin },
			change: func(c *binlog.Change) {
				c.Table.Columns[colCreated].Kind = binlog.KindDatetime
				c.Row[colCreated] = time.Date(2026, 7, 1, 12, 0, 0, 0, time.UTC)
			},
			wantAction: Publish,
			check: func(t *testing.T, r Result, _ error) {
				wantField(t, r, "occurredAt", `"2026-07-01T10:00:00Z"`)
			},
		},
		{
			name:       "a zero TIMESTAMP falls back to the commit time with a warning",
			opts:       func(o *Options) { o.Fields.Timestamp = "created_at" },
			change:     func(c *binlog.Change) { c.Row[colCreated] = time.Time{} },
			wantAction: Publish,
			check: func(t *testing.T, r Result, _ error) {
				wantField(t, r, "occurredAt", `"2026-11-24T17:21:11Z"`)
				if !strings.Contains(r.Warning, "zero date") {
					t.Errorf("Warning = %q, want it to mention the zero date", r.Warning)
				}
			},
		},
		{
			name: "a zero DATETIME falls back to the microsecond commit time with a warning",
			base: mySQLChange,
			opts: func(o *Options) { o.Fields.Timestamp = "created_at" },
			change: func(c *binlog.Change) {
				c.Table.Columns[colCreated].Kind = binlog.KindDatetime
				c.Row[colCreated] = time.Time{}
			},
			wantAction: Publish,
			check: func(t *testing.T, r Result, _ error) {
				wantField(t, r, "occurredAt", `"2026-11-24T17:21:11.123456Z"`)
				if r.Warning == "" {
					t.Error("no warning")
				}
			},
		},
		{
			name:       "a NULL timestamp falls back to the commit time with a warning",
			opts:       func(o *Options) { o.Fields.Timestamp = "created_at" },
			change:     func(c *binlog.Change) { c.Row[colCreated] = nil },
			wantAction: Publish,
			check: func(t *testing.T, r Result, _ error) {
				wantField(t, r, "occurredAt", `"2026-11-24T17:21:11Z"`)
				if r.Warning == "" {
					t.Error("no warning")
				}
			},
		},
		{
			name: "a text timestamp in RFC 3339 keeps its offset",
			opts: func(o *Options) { o.Fields.Timestamp, o.TimestampZone = "created_at", berlin },
			change: func(c *binlog.Change) {
				c.Table.Columns[colCreated].Kind = binlog.KindText
				c.Row[colCreated] = "2026-11-24T20:21:10.25+03:00"
			},
			wantAction: Publish,
			check: func(t *testing.T, r Result, _ error) {
				wantField(t, r, "occurredAt", `"2026-11-24T17:21:10.250000Z"`)
			},
		},
		{
			name: "a text timestamp without zone is read in the timestamp zone",
			opts: func(o *Options) { o.Fields.Timestamp, o.TimestampZone = "created_at", berlin },
			change: func(c *binlog.Change) {
				c.Table.Columns[colCreated].Kind = binlog.KindText
				c.Row[colCreated] = "2026-11-24 18:21:10"
			},
			wantAction: Publish,
			check: func(t *testing.T, r Result, _ error) {
				wantField(t, r, "occurredAt", `"2026-11-24T17:21:10Z"`)
			},
		},
		{
			name: "a TIMESTAMP decoded as text without zone is UTC",
			opts: func(o *Options) { o.Fields.Timestamp, o.TimestampZone = "created_at", berlin },
			change: func(c *binlog.Change) {
				c.Row[colCreated] = "2026-11-24 17:21:10.5"
			},
			wantAction: Publish,
			check: func(t *testing.T, r Result, _ error) {
				wantField(t, r, "occurredAt", `"2026-11-24T17:21:10.500000Z"`)
			},
		},
		{
			name: "an unparsable text timestamp falls back with a warning",
			opts: func(o *Options) { o.Fields.Timestamp = "created_at" },
			change: func(c *binlog.Change) {
				c.Table.Columns[colCreated].Kind = binlog.KindText
				c.Row[colCreated] = "0000-00-00 00:00:00"
			},
			wantAction: Publish,
			check: func(t *testing.T, r Result, _ error) {
				wantField(t, r, "occurredAt", `"2026-11-24T17:21:11Z"`)
				if !strings.Contains(r.Warning, "0000-00-00 00:00:00") {
					t.Errorf("Warning = %q, want it to quote the value", r.Warning)
				}
			},
		},
		{
			name:       "a microsecond commit time prints six digits even when they are zero",
			base:       mySQLChange,
			change:     func(c *binlog.Change) { c.Txn.CommitTime = time.Date(2026, 11, 24, 17, 21, 11, 0, time.UTC) },
			wantAction: Publish,
			check: func(t *testing.T, r Result, _ error) {
				wantField(t, r, "occurredAt", `"2026-11-24T17:21:11.000000Z"`)
			},
		},

		// Additional columns.
		{
			name: "additional header and envelope columns are copied under their names",
			opts: func(o *Options) {
				o.Additional = []Additional{
					{Column: "tenant", As: "tenantId"},
					{Column: "priority", Placement: PlacementEnvelope},
					{Column: "tenant", Placement: PlacementEnvelope, As: "tenant"},
					{Column: "created_at", As: "created"},
				}
			},
			wantAction: Publish,
			check: func(t *testing.T, r Result, _ error) {
				wantHeaders(t, r.Event, "id", "type", "tenantId", "created")
				if h, _ := header(r.Event, "tenantId"); string(h) != "acme" {
					t.Errorf("tenantId header = %q", h)
				}
				if h, _ := header(r.Event, "created"); string(h) != "2026-11-24T17:21:10.987654Z" {
					t.Errorf("created header = %q", h)
				}
				wantField(t, r, "priority", "3")
				wantField(t, r, "tenant", `"acme"`)
				if !bytes.Contains(r.Event.Value, []byte(`"priority":3,"tenant":"acme","source":{`)) {
					t.Errorf("envelope fields not between payload and source: %s", r.Event.Value)
				}
			},
		},
		{
			name: "a NULL additional column is a header without value and null in the envelope",
			opts: func(o *Options) {
				o.Additional = []Additional{{Column: "tenant"}, {Column: "tenant", Placement: PlacementEnvelope}}
			},
			change:     func(c *binlog.Change) { c.Row[colTenant] = nil },
			wantAction: Publish,
			check: func(t *testing.T, r Result, _ error) {
				if h, ok := header(r.Event, "tenant"); !ok || h != nil {
					t.Errorf("tenant header = %q, %v; want present with nil value", h, ok)
				}
				wantField(t, r, "tenant", "null")
			},
		},
		{
			name: "additional envelope columns are CloudEvents extensions",
			opts: func(o *Options) {
				o.Format = FormatCloudEvents
				o.Additional = []Additional{
					{Column: "tenant", Placement: PlacementEnvelope},
					{Column: "priority", Placement: PlacementEnvelope, As: "prio"},
				}
			},
			wantAction: Publish,
			check: func(t *testing.T, r Result, _ error) {
				wantField(t, r, "tenant", `"acme"`)
				wantField(t, r, "prio", `3`)
				wantHeaders(t, r.Event, "id", "type", "content-type")
			},
		},
		{
			name: "a NULL or 64-bit CloudEvents extension is absent or a string",
			opts: func(o *Options) {
				o.Format = FormatCloudEvents
				o.Additional = []Additional{
					{Column: "tenant", Placement: PlacementEnvelope},
					{Column: "priority", Placement: PlacementEnvelope},
				}
			},
			change: func(c *binlog.Change) {
				c.Row[colTenant] = nil
				c.Row[colPriority] = int64(1) << 40
			},
			wantAction: Publish,
			check: func(t *testing.T, r Result, _ error) {
				wantField(t, r, "tenant", "<absent>")
				wantField(t, r, "priority", `"1099511627776"`)
			},
		},
		{
			name: "the debezium format has the id header and additional headers only",
			opts: func(o *Options) {
				o.Format = FormatDebezium
				o.Additional = []Additional{{Column: "type", As: "eventType"}}
			},
			wantAction: Publish,
			check: func(t *testing.T, r Result, _ error) {
				wantHeaders(t, r.Event, "id", "eventType")
				if h, _ := header(r.Event, "eventType"); string(h) != "OrderCreated" {
					t.Errorf("eventType header = %q", h)
				}
			},
		},

		// Escaping.
		{
			name: "control characters, quotes and invalid UTF-8 are escaped",
			change: func(c *binlog.Change) {
				c.Row[colType] = "Order\x00Created\t\"x\"\\\x1f\xff\u2028é"
				c.Row[colPayload] = "line1\nline2\r\x7f\xc3"
			},
			wantAction: Publish,
			check: func(t *testing.T, r Result, _ error) {
				wantField(t, r, "type", `"Order\u0000Created\t\"x\"\\\u001f\ufffd\u2028é"`)
				wantField(t, r, "payload", "\"line1\\nline2\\r\x7f\\ufffd\"")
				if h, _ := header(r.Event, "type"); string(h) != "Order\x00Created\t\"x\"\\\x1f\xff\u2028é" {
					t.Errorf("type header = %q, want the text unchanged", h)
				}
			},
		},
		{
			name: "names with JSON special characters are escaped in source",
			opts: func(o *Options) { o.ConnectorName = "a\"b" },
			change: func(c *binlog.Change) {
				c.Table.Schema = "we\\ird"
				c.Txn.GTID = ""
			},
			wantAction: Publish,
			check: func(t *testing.T, r Result, _ error) {
				wantField(t, r, "source", `{"connector":"a\"b","db":"we\\ird","table":"outbox","file":"mariadb-bin.000002","pos":1894,"gtid":"","serverId":1}`)
			},
		},
		{
			name: "odd names are escaped in the CloudEvents source",
			opts: func(o *Options) { o.ConnectorName, o.Format = "my outbox", FormatCloudEvents },
			change: func(c *binlog.Change) {
				c.Table.Name = "out/box"
			},
			wantAction: Publish,
			check: func(t *testing.T, r Result, _ error) {
				wantField(t, r, "source", `"/tailbox/my%20outbox/shop/out%2Fbox"`)
			},
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			o := Options{ConnectorName: "shop-outbox"}
			if tc.opts != nil {
				tc.opts(&o)
			}
			tr := mustNew(t, o)
			base := tc.base
			if base == nil {
				base = mariaDBChange
			}
			c := base()
			if tc.change != nil {
				tc.change(c)
			}
			r, err := tr.Transform(c)
			if tc.wantErr != nil {
				if !errors.Is(err, tc.wantErr) {
					t.Fatalf("Transform error = %v, want %v", err, tc.wantErr)
				}
			} else {
				if err != nil {
					t.Fatalf("Transform: %v", err)
				}
				if r.Action != tc.wantAction {
					t.Fatalf("Action = %s, want %s", r.Action, tc.wantAction)
				}
			}
			if r.Action == Publish && o.Format != FormatDebezium && !json.Valid(r.Event.Value) {
				t.Fatalf("value is not valid JSON:\n%s", r.Event.Value)
			}
			if tc.check != nil {
				tc.check(t, r, err)
			}
		})
	}
}

// wantField checks the raw JSON of a top-level member of the event value.
func wantField(t *testing.T, r Result, name, want string) {
	t.Helper()
	if got := field(t, r.Event.Value, name); got != want {
		t.Errorf("%s = %s, want %s", name, got, want)
	}
}

// wantTime checks Event.Timestamp.
func wantTime(t *testing.T, r Result, want time.Time) {
	t.Helper()
	if !r.Event.Timestamp.Equal(want) {
		t.Errorf("Timestamp = %s, want %s", r.Event.Timestamp, want)
	}
}

// wantHeaders checks the header keys, in order.
func wantHeaders(t *testing.T, ev Event, keys ...string) {
	t.Helper()
	var got []string
	for _, h := range ev.Headers {
		got = append(got, h.Key)
	}
	if strings.Join(got, ",") != strings.Join(keys, ",") {
		t.Errorf("headers = %v, want %v", got, keys)
	}
}

func TestTransformRejectsMalformedChanges(t *testing.T) {
	tests := []struct {
		name   string
		change func(*binlog.Change)
	}{
		{"a change without table", func(c *binlog.Change) { c.Table = nil }},
		{"a change without transaction", func(c *binlog.Change) { c.Txn = nil }},
		{"a row shorter than its table", func(c *binlog.Change) { c.Row = c.Row[:3] }},
		{"an unknown operation", func(c *binlog.Change) { c.Op = binlog.OpUnknown }},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			tr := mustNew(t, Options{ConnectorName: "x"})
			c := mariaDBChange()
			tc.change(c)
			r, err := tr.Transform(c)
			if err == nil || IsPoison(err) || r.Action != Skip {
				t.Fatalf("Transform = %+v, %v; want a fatal error", r, err)
			}
		})
	}
}

func TestTransformEventsDoNotShareMemory(t *testing.T) {
	tr := mustNew(t, Options{ConnectorName: "shop-outbox", Additional: []Additional{{Column: "tenant"}}})
	first, err := tr.Transform(mariaDBChange())
	if err != nil {
		t.Fatal(err)
	}
	// The Headers slice is reused by the next call (documented); the
	// values in it, the key and the value are the event's own.
	first.Event.Headers = slices.Clone(first.Event.Headers)
	keep := render(t, FormatEnvelope, first)

	c := mySQLChange()
	c.Row[colKey] = "a-much-longer-aggregate-id-than-before"
	c.Row[colTenant] = "globex"
	second, err := tr.Transform(c)
	if err != nil {
		t.Fatal(err)
	}
	second.Event.Headers = slices.Clone(second.Event.Headers)
	keepSecond := render(t, FormatEnvelope, second)
	// Appending to one slice must not write into its neighbours, nor into
	// the next event's memory (small events are carved from one block).
	_ = append(first.Event.Key, "XXXXXXXX"...)
	for _, h := range first.Event.Headers {
		_ = append(h.Value, "XXXXXXXX"...)
	}
	_ = append(first.Event.Value, "XXXXXXXX"...)
	if got := render(t, FormatEnvelope, first); !bytes.Equal(got, keep) {
		t.Errorf("first event changed:\n%s\nwas:\n%s", got, keep)
	}
	if got := render(t, FormatEnvelope, second); !bytes.Equal(got, keepSecond) {
		t.Errorf("second event changed:\n%s\nwas:\n%s", got, keepSecond)
	}
}

// Events carved from one block keep their contents while later events are
// made, and large ones get memory of their own.
func TestTransformEventsKeepTheirMemory(t *testing.T) {
	tr := mustNew(t, Options{ConnectorName: "shop-outbox"})
	type kept struct {
		res  Result
		text []byte
	}
	var all []kept
	for i := range 200 {
		c := mariaDBChange()
		c.Row[colKey] = fmt.Sprintf("order-%d", i)
		c.Row[colPayload] = fmt.Sprintf(`{"n":%d,"pad":%q}`, i, strings.Repeat("x", i*i%5000))
		res, err := tr.Transform(c)
		if err != nil {
			t.Fatal(err)
		}
		res.Event.Headers = slices.Clone(res.Event.Headers)
		all = append(all, kept{res, render(t, FormatEnvelope, res)})
		if n := len(res.Event.Value); n > slabSize/4 && cap(res.Event.Value) != n {
			t.Fatalf("event %d: a value of %d bytes has capacity %d", i, n, cap(res.Event.Value))
		}
	}
	for i, k := range all {
		if got := render(t, FormatEnvelope, k.res); !bytes.Equal(got, k.text) {
			t.Fatalf("event %d changed after later events:\n%s\nwas:\n%s", i, got, k.text)
		}
		if want := fmt.Sprintf("order-%d", i); string(k.res.Event.Key) != want {
			t.Fatalf("event %d: key %q, want %q", i, k.res.Event.Key, want)
		}
	}
}

func TestTransformRoutesAlternatingAggregateTypes(t *testing.T) {
	tr := mustNew(t, Options{ConnectorName: "shop-outbox"})
	for i, route := range []string{"order", "order", "payment", "order", "bad topic!", "bad topic!", "payment", "payment", "order"} {
		c := mariaDBChange()
		c.Row[colRoute] = route
		r, err := tr.Transform(c)
		want := "outbox.event." + route
		if r.Event.Topic != want {
			t.Errorf("change %d: Topic = %q, want %q", i, r.Event.Topic, want)
		}
		if (err != nil) != (route == "bad topic!") {
			t.Errorf("change %d: error = %v", i, err)
		}
	}
}

func TestTransformCachesPlanPerTable(t *testing.T) {
	tr := mustNew(t, Options{ConnectorName: "shop-outbox"})
	a, b := mariaDBChange(), mariaDBChange() // distinct *binlog.Table
	b.Table.Columns[colPayload], b.Table.Columns[colType] = b.Table.Columns[colType], b.Table.Columns[colPayload]
	b.Row[colPayload], b.Row[colType] = b.Row[colType], b.Row[colPayload]
	for i, c := range []*binlog.Change{a, b, a, b} {
		r, err := tr.Transform(c)
		if err != nil {
			t.Fatal(err)
		}
		if got := field(t, r.Event.Value, "type"); got != `"OrderCreated"` {
			t.Errorf("change %d: type = %s", i, got)
		}
	}
	if len(tr.plans) != 2 {
		t.Errorf("%d plans cached, want 2", len(tr.plans))
	}
}

// TestTransformDoesNotDependOnTheEventsBefore sends changes whose commit
// time, its precision, binlog file and GTID vary, repeat and come back
// through one Transformer, and through a new one each: the values must be
// the same (the texts it keeps from the last event must follow them).
func TestTransformDoesNotDependOnTheEventsBefore(t *testing.T) {
	t1 := time.Date(2026, 11, 24, 17, 21, 11, 0, time.UTC)
	t2 := time.Date(2026, 11, 24, 17, 21, 11, 500000000, time.UTC)
	steps := []struct {
		file, gtid string
		commit     time.Time
		micros     bool
	}{
		{"mariadb-bin.000002", "0-1-57", t1, false},
		{"mariadb-bin.000002", "0-1-57", t1, false},
		{"mariadb-bin.000002", "0-1-57", t1, true},
		{"mariadb-bin.000002", "0-1-58", t2, true},
		{"mariadb-bin.000003", "0-1-58", t2, false},
		{"mariadb-bin.000003", "", t1, false},
		{"mariadb-bin.000002", "0-1-57", t1, false},
	}
	for _, format := range []Format{FormatEnvelope, FormatCloudEvents} {
		t.Run(format.String(), func(t *testing.T) {
			o := Options{ConnectorName: "shop-outbox", Format: format}
			shared := mustNew(t, o)
			for i, s := range steps {
				c := mariaDBChange()
				c.File, c.Txn.GTID, c.Txn.CommitTime, c.Txn.CommitTimeMicros = s.file, s.gtid, s.commit, s.micros
				got, err := shared.Transform(c)
				if err != nil {
					t.Fatalf("step %d: %v", i, err)
				}
				want, err := mustNew(t, o).Transform(c)
				if err != nil {
					t.Fatalf("step %d, new Transformer: %v", i, err)
				}
				if !bytes.Equal(got.Event.Value, want.Event.Value) {
					t.Errorf("step %d:\n got %s\nwant %s", i, got.Event.Value, want.Event.Value)
				}
			}
		})
	}
}
