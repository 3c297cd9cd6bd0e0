package binlog

import (
	"reflect"
	"strings"
	"testing"
	"time"
	"unsafe"

	"github.com/go-mysql-org/go-mysql/mysql"
	"github.com/go-mysql-org/go-mysql/replication"
)

func TestConvertRow(t *testing.T) {
	berlin := time.FixedZone("CET", 3600)
	at := time.Date(2026, 11, 24, 17, 21, 10, 987654000, berlin)
	tests := []struct {
		name string
		conv colConv
		in   any
		want any
	}{
		{"int64 stays", colConv{kind: KindInt}, int64(-5_000_000_000), int64(-5_000_000_000)},
		{"int8 widens", colConv{kind: KindInt}, int8(-7), int64(-7)},
		{"int32 widens", colConv{kind: KindInt}, int32(-70000), int64(-70000)},
		{"uint32 widens", colConv{kind: KindUint}, uint32(4_000_000_000), uint64(4_000_000_000)},
		{"negative int32 of an unsigned column is reinterpreted", colConv{kind: KindUint}, int32(-1), uint64(0xFFFFFFFF)},
		{"uint64 stays", colConv{kind: KindUint}, uint64(1 << 63), uint64(1 << 63)},
		{"float32 widens", colConv{kind: KindFloat}, float32(2.5), float64(2.5)},
		{"text string stays", colConv{kind: KindText}, "Zoë", "Zoë"},
		{"text bytes become a string", colConv{kind: KindText}, []byte(`{"a": 1}`), `{"a": 1}`},
		{"empty text bytes become the empty string", colConv{kind: KindText}, []byte{}, ""},
		{"latin1 text becomes UTF-8", colConv{kind: KindText, text: codecs["latin1"]}, []byte("caf\xe9 \x80"), "café €"},
		{"latin1 ASCII string stays", colConv{kind: KindText, text: codecs["latin1"]}, "plain", "plain"},
		{"JSON bytes become a string", colConv{kind: KindJSON}, []byte(`[1,2]`), `[1,2]`},
		{"JSON string stays", colConv{kind: KindJSON}, `{"b":true}`, `{"b":true}`},
		{"decimal string stays", colConv{kind: KindDecimal}, "119.90", "119.90"},
		{"blob stays", colConv{kind: KindBinary}, []byte{0, 1, 0xff}, []byte{0, 1, 0xff}},
		{"binary(4) is padded", colConv{kind: KindBinary, padTo: 4}, []byte{0xde, 0xad}, []byte{0xde, 0xad, 0, 0}},
		{"binary string becomes bytes", colConv{kind: KindBinary}, "ab", []byte("ab")},
		{"enum index becomes its name", colConv{kind: KindEnum, names: []string{"web", "app"}}, int64(2), "app"},
		{"enum 0 is the empty string", colConv{kind: KindEnum, names: []string{"web"}}, int64(0), ""},
		{"enum without names stays an index", colConv{kind: KindEnum}, int64(2), int64(2)},
		{"set bits become names", colConv{kind: KindSet, names: []string{"a", "b", "c"}}, int64(5), "a,c"},
		{"set without names is a mask", colConv{kind: KindSet}, int64(5), uint64(5)},
		{"timestamp becomes UTC", colConv{kind: KindTimestamp}, at, at.UTC()},
		{"datetime keeps its wall clock", colConv{kind: KindDatetime}, time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC), time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)},
		{"zero datetime string is the zero time", colConv{kind: KindDatetime}, "0000-00-00 00:00:00", time.Time{}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			tb := &table{pub: &Table{Schema: "s", Name: "t", Columns: []Column{{Name: "c", Kind: tt.conv.kind}, {Name: "n"}}},
				conv: []colConv{tt.conv, {kind: KindText}}}
			in := []any{tt.in, nil}
			row, err := tb.convertRow(in)
			if err != nil {
				t.Fatalf("convertRow: %v", err)
			}
			if !reflect.DeepEqual(row, []any{tt.want, nil}) {
				t.Errorf("convertRow = %#v, want %#v", row, []any{tt.want, nil})
			}
			if ts, ok := row[0].(time.Time); ok && !ts.IsZero() && ts.Location() != time.UTC {
				t.Errorf("time %v is in %s, want UTC", ts, ts.Location())
			}
			if &row[0] != &in[0] {
				t.Error("convertRow did not convert in place")
			}
		})
	}
}

func TestConvertRowShortImageIsPaddedWithNulls(t *testing.T) {
	tb := &table{pub: &Table{Schema: "s", Name: "t"}, conv: []colConv{{kind: KindInt}, {kind: KindText}}}
	row, err := tb.convertRow([]any{int32(1)})
	if err != nil || !reflect.DeepEqual(row, []any{int64(1), nil}) {
		t.Fatalf("convertRow = %#v, %v; want [1 <nil>]", row, err)
	}
}

func TestConvertRowRejectsUnexpectedTypes(t *testing.T) {
	tb := &table{pub: &Table{Schema: "s", Name: "t", Columns: []Column{{Name: "qty"}}}, conv: []colConv{{kind: KindInt}}}
	_, err := tb.convertRow([]any{"7"})
	if err == nil || !strings.Contains(err.Error(), "column 0 (qty) of s.t: unexpected string value for a int column") {
		t.Fatalf("convertRow error = %v", err)
	}
}

func TestTextFromBytesSharesTheDecodedBuffer(t *testing.T) {
	// The event buffer go-mysql decoded from is never written again; the
	// string is made without a copy.
	buf := []byte(`xx{"memberId":1}yy`)
	v, err := (&colConv{kind: KindText}).convert(buf[2:16])
	if err != nil {
		t.Fatal(err)
	}
	s := v.(string)
	if s != `{"memberId":1}` {
		t.Fatalf("text = %q", s)
	}
	if unsafe.StringData(s) != &buf[2] {
		t.Error("text was copied")
	}
}

// benchTables are rows as go-mysql decodes them (with ParseTime), with the
// conversion plans newTable makes for them.
var benchTables = []struct {
	name string
	t    *table
	in   []any
}{
	{
		// DESIGN.md's outbox table on MariaDB: payload JSON is a LONGTEXT,
		// which go-mysql returns as []byte.
		name: "outbox",
		t: &table{pub: &Table{Schema: "shop", Name: "outbox"}, conv: []colConv{
			{kind: KindText}, {kind: KindText}, {kind: KindText}, {kind: KindText}, {kind: KindText}, {kind: KindTimestamp},
		}},
		in: []any{
			"00000000-0000-4000-8000-00000000002a", "member", "member-4711", "MemberUpdated",
			[]byte(`{"memberId":4711,"seq":42,"note":"` + strings.Repeat("3f9a0c7be15d42", 24) + `"}`),
			time.Date(2026, 11, 24, 17, 21, 10, 987654000, time.Local),
		},
	},
	{
		// A wide business row: integers of every width, decimals, dates,
		// an ENUM and a SET, TEXT and a MariaDB JSON.
		name: "wide",
		t: &table{pub: &Table{Schema: "shop", Name: "orders"}, conv: []colConv{
			{kind: KindInt}, {kind: KindInt}, {kind: KindText}, {kind: KindDecimal}, {kind: KindInt},
			{kind: KindUint}, {kind: KindFloat}, {kind: KindDatetime}, {kind: KindDate},
			{kind: KindEnum, names: []string{"web", "app", "store"}}, {kind: KindSet, names: []string{"new", "vip", "promo"}},
			{kind: KindText}, {kind: KindText},
		}},
		in: []any{
			int64(1234567), int32(998877), "ORD-0000012345", "119.90", int8(1),
			uint16(5), float64(2.5), time.Date(2026, 11, 24, 12, 0, 0, 0, time.UTC), "2026-11-24",
			int64(2), int64(6),
			[]byte("Please leave the parcel with the neighbour at number 7."),
			[]byte(`{"source":"bench","score":17,"flags":[1,2,3]}`),
		},
	},
}

func BenchmarkConvertRow(b *testing.B) {
	for _, bt := range benchTables {
		b.Run(bt.name, func(b *testing.B) {
			// go-mysql makes a new []any per row image.
			in := make([]any, len(bt.in))
			b.ReportAllocs()
			for b.Loop() {
				copy(in, bt.in)
				row, err := bt.t.convertRow(in)
				if err != nil || len(row) != len(bt.in) {
					b.Fatalf("convertRow = %d values, %v", len(row), err)
				}
			}
		})
	}
}

// outboxTableMap is a TABLE_MAP with FULL metadata: id INT, kind
// ENUM('a','b'), note VARCHAR(100) in utf8mb4.
func outboxTableMap() *replication.TableMapEvent {
	return &replication.TableMapEvent{
		TableID: 7, Schema: []byte("shop"), Table: []byte("outbox"), ColumnCount: 3,
		ColumnType:       []byte{mysql.MYSQL_TYPE_LONG, mysql.MYSQL_TYPE_STRING, mysql.MYSQL_TYPE_VARCHAR},
		ColumnMeta:       []uint16{0, uint16(mysql.MYSQL_TYPE_ENUM)<<8 | 1, 400},
		NullBitmap:       []byte{0b100},
		SignednessBitmap: []byte{0x00},
		DefaultCharset:   []uint64{255},
		ColumnName:       [][]byte{[]byte("id"), []byte("kind"), []byte("note")},
		EnumStrValue:     [][][]byte{{[]byte("a"), []byte("b")}},
	}
}

func TestSameShapeSeesEveryChangeNewTableReads(t *testing.T) {
	tests := []struct {
		name   string
		change func(tm *replication.TableMapEvent)
		same   bool
	}{
		{"an identical table map", func(*replication.TableMapEvent) {}, true},
		{"an ENUM member added", func(tm *replication.TableMapEvent) {
			tm.EnumStrValue = [][][]byte{{[]byte("a"), []byte("b"), []byte("c")}}
		}, false},
		{"an ENUM member renamed", func(tm *replication.TableMapEvent) { tm.EnumStrValue = [][][]byte{{[]byte("a"), []byte("x")}} }, false},
		{"a column made UNSIGNED", func(tm *replication.TableMapEvent) { tm.SignednessBitmap = []byte{0x80} }, false},
		{"a column's charset changed", func(tm *replication.TableMapEvent) { tm.DefaultCharset = []uint64{255, 2, 8} }, false},
		{"the table charset changed", func(tm *replication.TableMapEvent) { tm.DefaultCharset = []uint64{8} }, false},
		{"a column made NOT NULL", func(tm *replication.TableMapEvent) { tm.NullBitmap = []byte{0} }, false},
		{"a column renamed", func(tm *replication.TableMapEvent) { tm.ColumnName[2] = []byte("memo") }, false},
		{"a column widened", func(tm *replication.TableMapEvent) { tm.ColumnMeta[2] = 800 }, false},
		{"a column's type changed", func(tm *replication.TableMapEvent) { tm.ColumnType[0] = mysql.MYSQL_TYPE_LONGLONG }, false},
		{"the table renamed", func(tm *replication.TableMapEvent) { tm.Table = []byte("outbox2") }, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			tb, err := newTable(outboxTableMap(), nil, FlavorMySQL, nil)
			if err != nil {
				t.Fatal(err)
			}
			tm := outboxTableMap()
			tt.change(tm)
			if got := tb.sameShape(tm); got != tt.same {
				t.Errorf("sameShape = %v, want %v", got, tt.same)
			}
		})
	}
}

func TestNewTableUsesTheNewEnumMembers(t *testing.T) {
	tm := outboxTableMap()
	tm.EnumStrValue = [][][]byte{{[]byte("a"), []byte("b"), []byte("c")}}
	tb, err := newTable(tm, tm.ColumnNameString(), FlavorMySQL, nil)
	if err != nil {
		t.Fatal(err)
	}
	row, err := tb.convertRow([]any{int32(1), int64(3), "x"})
	if err != nil || !reflect.DeepEqual(row, []any{int64(1), "c", "x"}) {
		t.Fatalf("convertRow = %#v, %v; want [1 c x]", row, err)
	}
}
