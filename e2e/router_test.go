package e2e

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"os/exec"
	"slices"
	"strings"
	"testing"
	"time"
)

// kcatRecord is one record as kcat prints it with the format kcatFormat.
type kcatRecord struct {
	partition string
	key       string
	headers   map[string]string // kcat's %h: key=value pairs joined by ','
	value     string
}

// kcatFormat prints partition, key, headers and value separated by tabs.
const kcatFormat = "%p\t%k\t%h\t%s\n"

// kcat reads topic from the start with kcat, an independent client, until
// it has n records or 30s have passed.
func kcat(t *testing.T, broker, topic string, n int) []kcatRecord {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for {
		ctx, cancel := context.WithTimeout(context.Background(), 15*time.Second)
		out, err := exec.CommandContext(ctx, "kcat", "-C", "-b", broker, "-t", topic, "-o", "beginning", "-e", "-q", "-f", kcatFormat).Output()
		cancel()
		var recs []kcatRecord
		if err == nil {
			for _, line := range strings.Split(strings.TrimSuffix(string(out), "\n"), "\n") {
				if line == "" {
					continue
				}
				f := strings.SplitN(line, "\t", 4)
				if len(f) != 4 {
					t.Fatalf("kcat line %q is not partition, key, headers and value", line)
				}
				r := kcatRecord{partition: f[0], key: f[1], headers: map[string]string{}, value: f[3]}
				for _, h := range strings.Split(f[2], ",") {
					if k, v, ok := strings.Cut(h, "="); ok {
						r.headers[k] = v
					}
				}
				recs = append(recs, r)
			}
			if len(recs) >= n {
				return recs
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("kcat read %d of %d records of %s (err %v):\n%s", len(recs), n, topic, err, out)
		}
		time.Sleep(200 * time.Millisecond)
	}
}

// TestRouterKeysAndTraceHeaders runs the binary with the Debezium router
// keys on two outbox tables and reads the records with kcat: the partition
// column places the record, the regex and ${schema}/${table} name the topic,
// and the schemaVersion, traceparent and tracestate headers are present
// with their values, or absent when their column is NULL or the
// traceparent is invalid.
func TestRouterKeysAndTraceHeaders(t *testing.T) {
	e := newEnv(t, "debezium")
	const traceparent = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"
	const tracestate = "congo=t61rcWkgMzE"
	e.db.Exec(t, fmt.Sprintf("ALTER TABLE %s.outbox ADD COLUMN shard INT NULL, ADD COLUMN schema_version INT NULL, "+
		"ADD COLUMN traceparent VARCHAR(64) NULL, ADD COLUMN tracestate VARCHAR(512) NULL", e.dbn))
	e.db.Exec(t, fmt.Sprintf("CREATE TABLE %s.outbox_eu LIKE %s.outbox", e.dbn, e.dbn))
	e.writeConfig("debezium", `  additional: [{column: shard, placement: partition}]
  fields: {schema_version: schema_version}
  route:
    topic_regex: '(?<domain>[a-z]+)(\.v[0-9]+)?'
    topic: '${schema}.${table}.${domain}'
  tracing: {traceparent: traceparent, tracestate: tracestate}
`)
	cfg, err := os.ReadFile(e.cfg)
	if err != nil {
		t.Fatal(err)
	}
	cfg = bytes.Replace(cfg, []byte("tables: ["+e.dbn+".outbox]"), []byte("tables: ["+e.dbn+".outbox, "+e.dbn+".outbox_eu]"), 1)
	if err := os.WriteFile(e.cfg, cfg, 0o600); err != nil {
		t.Fatal(err)
	}

	p := e.start()
	insert := func(tb, id, route, key string, shard, version, parent, state string) string {
		return fmt.Sprintf("INSERT INTO %s.%s (id, aggregatetype, aggregateid, type, payload, shard, schema_version, traceparent, tracestate) "+
			"VALUES ('%s','%s','%s','Created','{\"n\":1}',%s,%s,%s,%s)", e.dbn, tb, id, route, key, shard, version, parent, state)
	}
	q := func(s string) string { return "'" + s + "'" }
	// One key on two partitions: the column places them, not the key.
	e.tx(
		insert("outbox", "a1", "order.v2", "ORD-1", "2", "2", q(traceparent), q(tracestate)),
		insert("outbox", "a2", "order", "ORD-1", "0", "NULL", "NULL", "NULL"),
		insert("outbox_eu", "b1", "invoice.v1", "INV-1", "1", "1", q("not-a-traceparent"), q(tracestate)),
	)
	broker := e.kafka.Addrs[0]
	orders := kcat(t, broker, e.dbn+".outbox.order", 2)
	invoices := kcat(t, broker, e.dbn+".outbox_eu.invoice", 1)
	p.stop(t)

	byID := map[string]kcatRecord{}
	for _, r := range append(orders, invoices...) {
		byID[r.headers["id"]] = r
	}
	tests := []struct {
		id, partition, key string
		headers            map[string]string
	}{
		{"a1", "2", "ORD-1", map[string]string{"id": "a1", "schemaVersion": "2", "traceparent": traceparent, "tracestate": tracestate}},
		{"a2", "0", "ORD-1", map[string]string{"id": "a2"}},
		{"b1", "1", "INV-1", map[string]string{"id": "b1", "schemaVersion": "1"}},
	}
	for _, tc := range tests {
		r, ok := byID[tc.id]
		if !ok {
			t.Fatalf("no record with id %s in %v", tc.id, byID)
		}
		if r.partition != tc.partition || r.key != tc.key {
			t.Errorf("record %s: partition %s key %q, want partition %s key %q", tc.id, r.partition, r.key, tc.partition, tc.key)
		}
		var got []string
		for k, v := range r.headers {
			got = append(got, k+"="+v)
		}
		var want []string
		for k, v := range tc.headers {
			want = append(want, k+"="+v)
		}
		slices.Sort(got)
		slices.Sort(want)
		if !slices.Equal(got, want) {
			t.Errorf("record %s: headers %v, want %v", tc.id, got, want)
		}
		if r.value != `{"n":1}` {
			t.Errorf("record %s: value %q", tc.id, r.value)
		}
	}
	if log := p.stderr.String(); !strings.Contains(log, `holds traceparent \"not-a-traceparent\", which is not a W3C traceparent`) {
		t.Errorf("no warning about the invalid traceparent in the log:\n%s", logTail(log))
	}
}
