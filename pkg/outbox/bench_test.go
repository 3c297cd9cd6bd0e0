package outbox

import (
	"bytes"
	"encoding/json"
	"strings"
	"testing"
	"unicode/utf8"

	"github.com/tailbox-cdc/tailbox/pkg/binlog"
)

// benchPayload is a realistic JSON order of about 400 bytes, as a MariaDB
// LONGTEXT (so it is validated and compacted).
var benchPayload = `{"orderId": "ORD-1001", "customer": {"id": "C-7781", "name": "Zoë Müller", "email": "zoe@example.com"}, ` +
	`"lines": [{"sku": "BK-42", "qty": 2, "price": "19.95"}, {"sku": "MUG-7", "qty": 1, "price": "8.50"}], ` +
	`"shipping": {"method": "express", "address": {"street": "Hauptstraße 5", "city": "Berlin", "zip": "10115"}}, ` +
	`"total": "48.40", "currency": "EUR", "note": "leave at the door"}`

func benchmarkTransform(b *testing.B, f Format, change func() *binlog.Change) {
	o := Options{ConnectorName: "shop-outbox", Format: f, Additional: []Additional{{Column: "tenant", As: "tenantId"}}}
	tr := mustNew(b, o)
	c := change()
	c.Row[colPayload] = benchPayload
	b.ReportAllocs()
	b.SetBytes(int64(len(benchPayload)))
	for b.Loop() {
		r, err := tr.Transform(c)
		if err != nil || r.Action != Publish {
			b.Fatalf("Transform = %v, %v", r.Action, err)
		}
	}
}

func BenchmarkTransform(b *testing.B) {
	if n := len(benchPayload); n < 380 || n > 420 {
		b.Fatalf("payload is %d bytes, want about 400", n)
	}
	b.Run("envelope", func(b *testing.B) { benchmarkTransform(b, FormatEnvelope, mariaDBChange) })
	b.Run("envelope_mysql_json", func(b *testing.B) { benchmarkTransform(b, FormatEnvelope, mySQLChange) })
	b.Run("debezium", func(b *testing.B) { benchmarkTransform(b, FormatDebezium, mariaDBChange) })
	b.Run("cloudevents", func(b *testing.B) { benchmarkTransform(b, FormatCloudEvents, mariaDBChange) })
}

func BenchmarkAppendQuoted(b *testing.B) {
	s := strings.Repeat("plain text with \"quotes\", ümlauts and a\ttab. ", 10)
	buf := make([]byte, 0, 1024)
	b.SetBytes(int64(len(s)))
	b.ReportAllocs()
	for b.Loop() {
		buf = appendQuoted(buf[:0], s)
	}
}

// benchCompactPayload is the payload internal/bench writes: compact JSON
// whose bulk is one long string of hex filler.
var benchCompactPayload = `{"memberId":4711,"seq":123456,"note":"` + strings.Repeat("3f9a0c7be15d42", 24) + `"}`

func BenchmarkTransformCompactPayload(b *testing.B) {
	o := Options{ConnectorName: "shop-outbox"}
	tr := mustNew(b, o)
	c := mariaDBChange()
	c.Row[colPayload] = benchCompactPayload
	b.ReportAllocs()
	b.SetBytes(int64(len(benchCompactPayload)))
	for b.Loop() {
		r, err := tr.Transform(c)
		if err != nil || r.Action != Publish {
			b.Fatalf("Transform = %v, %v", r.Action, err)
		}
	}
}

// BenchmarkCompactJSON compares appendCompactJSON with encoding/json
// (utf8.Valid, then json.Compact into a reused buffer, which is what
// Transform used before).
func BenchmarkCompactJSON(b *testing.B) {
	for _, p := range []struct{ name, s string }{{"spaced", benchPayload}, {"compact", benchCompactPayload}} {
		src := []byte(p.s)
		b.Run(p.name+"/appendCompactJSON", func(b *testing.B) {
			buf := make([]byte, 0, 1024)
			b.SetBytes(int64(len(src)))
			b.ReportAllocs()
			for b.Loop() {
				var ok bool
				if buf, ok = appendCompactJSON(buf[:0], src); !ok {
					b.Fatal("invalid")
				}
			}
		})
		b.Run(p.name+"/encoding_json", func(b *testing.B) {
			var buf bytes.Buffer
			b.SetBytes(int64(len(src)))
			b.ReportAllocs()
			for b.Loop() {
				buf.Reset()
				if !utf8.Valid(src) || json.Compact(&buf, src) != nil {
					b.Fatal("invalid")
				}
			}
		})
	}
}

var sinkQuoted []byte

// BenchmarkAppendQuotedID quotes an event id, the kind of short text every
// event carries several of.
func BenchmarkAppendQuotedID(b *testing.B) {
	s := "3f9a0c7b-e15d-42aa-9c1e-0123456789ab"
	buf := make([]byte, 0, 128)
	for b.Loop() {
		sinkQuoted = appendQuoted(buf[:0], s)
	}
}
