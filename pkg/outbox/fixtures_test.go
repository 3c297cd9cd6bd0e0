package outbox

import (
	"encoding/json"
	"testing"
	"time"

	"github.com/tailbox-cdc/tailbox/pkg/binlog"
)

// Ordinals of the test outbox table's columns.
const (
	colID = iota
	colRoute
	colKey
	colType
	colPayload
	colCreated
	colTenant
	colPriority
)

// newTable returns the outbox table of DESIGN.md plus tenant and priority
// columns; payload has the given kind.
func newTable(payload binlog.Kind) *binlog.Table {
	return &binlog.Table{
		Schema: "shop",
		Name:   "outbox",
		Columns: []binlog.Column{
			{Name: "id", Kind: binlog.KindText},
			{Name: "aggregatetype", Kind: binlog.KindText},
			{Name: "aggregateid", Kind: binlog.KindText},
			{Name: "type", Kind: binlog.KindText},
			{Name: "payload", Kind: payload, Nullable: true},
			{Name: "created_at", Kind: binlog.KindTimestamp},
			{Name: "tenant", Kind: binlog.KindText, Nullable: true},
			{Name: "priority", Kind: binlog.KindInt},
		},
	}
}

// mariaDBChange is an insert as the reader decodes it from MariaDB 10.11:
// the JSON payload is a LONGTEXT, the commit time has seconds only and the
// GTID is domain-server-seq.
func mariaDBChange() *binlog.Change {
	return &binlog.Change{
		Table: newTable(binlog.KindText),
		Op:    binlog.OpInsert,
		Row: []any{
			"5b0cfa8e-3f7a-4c55-9d0e-2f1a9c1e7b21",
			"order",
			"ORD-1001",
			"OrderCreated",
			`{"orderId": "ORD-1001", "customer": {"name": "Zoë Müller", "email": "zoe@example.com"},
  "lines": [{"sku": "BK-42", "qty": 2, "price": "19.95"}], "total": "39.90",
  "note": "gift \"wrap\"\n<please> & thanks"}`,
			time.Date(2026, 11, 24, 17, 21, 10, 987654000, time.UTC),
			"acme",
			int64(3),
		},
		Txn: &binlog.Txn{
			Begin:      binlog.Position{File: "mariadb-bin.000002", Pos: 1702, GTID: "0-1-56"},
			GTID:       "0-1-57",
			CommitTime: time.Date(2026, 11, 24, 17, 21, 11, 0, time.UTC),
		},
		ServerID: 1,
		File:     "mariadb-bin.000002",
		Pos:      1894,
	}
}

// mySQLChange is an insert as the reader decodes it from MySQL 8.4: the
// payload is a JSON column (re-rendered by go-mysql), the commit time has
// microseconds and the GTID is uuid:n.
func mySQLChange() *binlog.Change {
	return &binlog.Change{
		Table: newTable(binlog.KindJSON),
		Op:    binlog.OpInsert,
		Row: []any{
			"0f9c2d4e-8b1a-4e6f-a3c5-7d2e9b0a1c34",
			"payment",
			"PAY-77",
			"PaymentCaptured",
			`{"amount": 12.5, "currency": "EUR", "orderId": "ORD-1002", "captured": true, "card": {"last4": "4242"}}`,
			time.Date(2026, 11, 24, 17, 21, 11, 120000000, time.UTC),
			nil,
			int64(-1),
		},
		Txn: &binlog.Txn{
			Begin:            binlog.Position{File: "binlog.000007", Pos: 4500},
			GTID:             "3e11fa47-71ca-11e1-9e33-c80aa9429562:23",
			CommitTime:       time.Date(2026, 11, 24, 17, 21, 11, 123456000, time.UTC),
			CommitTimeMicros: true,
		},
		ServerID: 8401,
		File:     "binlog.000007",
		Pos:      4711,
	}
}

// mustNew is New that fails the test on error.
func mustNew(t testing.TB, o Options) *Transformer {
	t.Helper()
	tr, err := New(o)
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	return tr
}

// field returns the raw JSON of a top-level member of the JSON object v,
// or "<absent>".
func field(t *testing.T, v []byte, name string) string {
	t.Helper()
	var m map[string]json.RawMessage
	if err := json.Unmarshal(v, &m); err != nil {
		t.Fatalf("value is not a JSON object: %v\n%s", err, v)
	}
	raw, ok := m[name]
	if !ok {
		return "<absent>"
	}
	return string(raw)
}

// header returns the value of header key and whether it is present.
func header(ev Event, key string) ([]byte, bool) {
	for _, h := range ev.Headers {
		if h.Key == key {
			return h.Value, true
		}
	}
	return nil, false
}
