package binlog

import (
	"encoding/binary"
	"math"
	"math/rand/v2"
	"reflect"
	"slices"
	"strings"
	"testing"
	"unsafe"

	"github.com/go-mysql-org/go-mysql/mysql"
	"github.com/go-mysql-org/go-mysql/replication"
)

// jsonObj is an object for encodeJSONB, its members in stored order.
type jsonObj struct {
	keys []string
	vals []any
}

// encodeJSONB encodes v in MySQL's binary JSON format (json_binary.cc):
// nil, bool, int16, uint16, int32, uint32, int64, uint64, float64, string,
// []any and jsonObj. Containers use the large format when large is set or
// when the small one cannot address them.
func encodeJSONB(v any, large bool) (byte, []byte) {
	le := binary.LittleEndian
	switch x := v.(type) {
	case nil:
		return replication.JSONB_LITERAL, []byte{replication.JSONB_NULL_LITERAL}
	case bool:
		if x {
			return replication.JSONB_LITERAL, []byte{replication.JSONB_TRUE_LITERAL}
		}
		return replication.JSONB_LITERAL, []byte{replication.JSONB_FALSE_LITERAL}
	case int16:
		return replication.JSONB_INT16, le.AppendUint16(nil, uint16(x))
	case uint16:
		return replication.JSONB_UINT16, le.AppendUint16(nil, x)
	case int32:
		return replication.JSONB_INT32, le.AppendUint32(nil, uint32(x))
	case uint32:
		return replication.JSONB_UINT32, le.AppendUint32(nil, x)
	case int64:
		return replication.JSONB_INT64, le.AppendUint64(nil, uint64(x))
	case uint64:
		return replication.JSONB_UINT64, le.AppendUint64(nil, x)
	case float64:
		return replication.JSONB_DOUBLE, le.AppendUint64(nil, math.Float64bits(x))
	case string:
		var b []byte
		n := uint64(len(x))
		for {
			if n < 0x80 {
				b = append(b, byte(n))
				break
			}
			b = append(b, byte(n)|0x80)
			n >>= 7
		}
		return replication.JSONB_STRING, append(b, x...)
	case []any:
		return encodeContainer(nil, x, large)
	case jsonObj:
		return encodeContainer(x.keys, x.vals, large)
	}
	panic("encodeJSONB: unsupported value")
}

func encodeContainer(keys []string, vals []any, large bool) (byte, []byte) {
	if !large {
		if tp, b := encodeContainerAs(keys, vals, false); len(b) <= math.MaxUint16 {
			return tp, b
		}
	}
	return encodeContainerAs(keys, vals, true)
}

func encodeContainerAs(keys []string, vals []any, large bool) (byte, []byte) {
	obj := keys != nil
	off := 2
	tp := replication.JSONB_SMALL_ARRAY
	if obj {
		tp = replication.JSONB_SMALL_OBJECT
	}
	if large {
		off = 4
		tp++
	}
	put := func(b []byte, n int) {
		if large {
			binary.LittleEndian.PutUint32(b, uint32(n))
		} else {
			binary.LittleEndian.PutUint16(b, uint16(n))
		}
	}
	n := len(vals)
	keyEntry, valEntry := off+2, 1+off
	header := 2*off + n*valEntry
	if obj {
		header += n * keyEntry
	}
	buf := make([]byte, header)
	put(buf, n)
	for i, k := range keys {
		e := 2*off + i*keyEntry
		put(buf[e:], len(buf))
		binary.LittleEndian.PutUint16(buf[e+off:], uint16(len(k)))
		buf = append(buf, k...)
	}
	for i, v := range vals {
		e := 2*off + i*valEntry
		if obj {
			e += n * keyEntry
		}
		vt, vb := encodeJSONB(v, large)
		buf[e] = vt
		inline := vt == replication.JSONB_LITERAL || vt == replication.JSONB_INT16 || vt == replication.JSONB_UINT16 ||
			large && (vt == replication.JSONB_INT32 || vt == replication.JSONB_UINT32)
		if inline {
			copy(buf[e+1:e+valEntry], vb)
			continue
		}
		put(buf[e+1:], len(buf))
		buf = append(buf, vb...)
	}
	put(buf[off:], len(buf))
	return tp, buf
}

// jsonDoc is a whole document: its type byte, then the value.
func jsonDoc(v any, large bool) []byte {
	tp, b := encodeJSONB(v, large)
	return append([]byte{tp}, b...)
}

// goMySQLJSON is go-mysql's text of doc, as the reader configures it
// (RenderJSONAsMySQLText): DecodeData of a one-column write event.
func goMySQLJSON(t testing.TB, doc []byte) (string, error) {
	t.Helper()
	tm := &replication.TableMapEvent{TableID: 1, Schema: []byte("s"), Table: []byte("t"), ColumnCount: 1,
		ColumnType: []byte{mysql.MYSQL_TYPE_JSON}, ColumnMeta: []uint16{4}, NullBitmap: []byte{1}}
	e := &replication.RowsEvent{Version: 2, Table: tm, ColumnCount: 1, ColumnBitmap1: []byte{1}}
	*(*replication.EventType)(unsafe.Add(unsafe.Pointer(e), rowsEventTypeOffset)) = replication.WRITE_ROWS_EVENTv2
	f, ok := reflect.TypeFor[replication.RowsEvent]().FieldByName("renderJSONAsMySQLText")
	if !ok || f.Type.Kind() != reflect.Bool {
		t.Fatal("go-mysql's RowsEvent has no renderJSONAsMySQLText")
	}
	*(*bool)(unsafe.Add(unsafe.Pointer(e), f.Offset)) = true
	body := binary.LittleEndian.AppendUint32([]byte{0}, uint32(len(doc)))
	if err := e.DecodeData(0, append(body, doc...)); err != nil {
		return "", err
	}
	switch v := e.Rows[0][0].(type) {
	case string:
		return v, nil
	case []byte:
		return string(v), nil
	default:
		t.Fatalf("go-mysql gave %T for a JSON column", v)
		return "", nil
	}
}

// randomJSON returns a random document of at most depth levels, its
// strings drawn from an alphabet heavy in what needs escaping (quotes,
// backslashes, control characters, <>&, U+2028/9, invalid UTF-8).
func randomJSON(rng *rand.Rand, depth int) any {
	k := rng.IntN(14)
	if depth == 0 && k >= 12 {
		k = rng.IntN(12)
	}
	switch k {
	case 0:
		return nil
	case 1:
		return rng.IntN(2) == 0
	case 2:
		return int16(rng.Uint32())
	case 3:
		return uint16(rng.Uint32())
	case 4:
		return int32(rng.Uint32())
	case 5:
		return uint32(rng.Uint32())
	case 6:
		return int64(rng.Uint64())
	case 7:
		return rng.Uint64()
	case 8:
		switch rng.IntN(6) {
		case 0:
			return float64(rng.IntN(2000) - 1000)
		case 1:
			return []float64{math.Inf(1), math.Inf(-1), math.NaN(), math.Copysign(0, -1), 1e21, 1e300, 5e-324, math.MaxFloat64}[rng.IntN(8)]
		case 2:
			return rng.NormFloat64() * math.Pow(10, float64(rng.IntN(40)-20))
		}
		return math.Float64frombits(rng.Uint64())
	case 9, 10, 11:
		return randomString(rng)
	case 12:
		a := make([]any, rng.IntN(6))
		for i := range a {
			a[i] = randomJSON(rng, depth-1)
		}
		return a
	}
	o := jsonObj{}
	for range rng.IntN(6) {
		o.keys = append(o.keys, randomString(rng))
		o.vals = append(o.vals, randomJSON(rng, depth-1))
	}
	if o.keys == nil {
		o.keys = []string{}
	}
	return o
}

var jsonAlphabet = []string{"a", "Z", "0", " ", "/", "\"", "\\", "\x00", "\x01", "\x1f", "\b", "\f", "\n", "\r", "\t",
	"<", ">", "&", "\x7f", "é", "€", "\u2028", "\u2029", "\u2027", "\xe2", "\xe2\x80", "\x80", "\xa8", "\xff", "\xf0\x9f\x98\x80", "\xed\xa0\x80"}

func randomString(rng *rand.Rand) string {
	var b strings.Builder
	n := rng.IntN(12)
	if rng.IntN(20) == 0 {
		n = 200 + rng.IntN(300) // a length of two bytes
	}
	for range n {
		b.WriteString(jsonAlphabet[rng.IntN(len(jsonAlphabet))])
	}
	return b.String()
}

// appendJSONBDoc gives go-mysql's text for every document: random ones in
// both container formats, and the same documents damaged, where it must
// fail wherever go-mysql fails and agree wherever it does not.
func TestJSONBMatchesGoMySQL(t *testing.T) {
	rng := rand.New(rand.NewPCG(5, 8))
	docs := [][]byte{
		jsonDoc(jsonObj{keys: []string{"memberId", "seq", "note"}, vals: []any{int32(4711), int32(123456), strings.Repeat("3f9a0c7be15d42", 24)}}, false),
		jsonDoc(jsonObj{keys: []string{}, vals: []any{}}, false),
		jsonDoc([]any{}, true),
		jsonDoc(strings.Repeat("x", 70000), false),
		jsonDoc([]any{strings.Repeat("y", 70000), int16(1)}, false), // too big for the small format
	}
	for range 3000 {
		docs = append(docs, jsonDoc(randomJSON(rng, 4), rng.IntN(3) == 0))
	}
	agreed, damaged, refused := 0, 0, 0
	check := func(doc []byte, mustAgree bool) {
		want, werr := goMySQLJSON(t, doc)
		got, ok := appendJSONBDoc([]byte("prefix"), doc)
		switch {
		case ok && werr != nil:
			t.Fatalf("document %x: rendered %q where go-mysql fails (%v)", doc, got, werr)
		case ok && string(got) != "prefix"+want:
			t.Fatalf("document %x:\n got %q\nwant %q", doc, got[6:], want)
		case !ok && mustAgree:
			t.Fatalf("document %x: refused; go-mysql gives %q (%v)", doc, want, werr)
		case !ok:
			refused++
		default:
			agreed++
		}
	}
	for _, doc := range docs {
		check(doc, true)
		for range 3 {
			bad := slices.Clone(doc)
			switch rng.IntN(3) {
			case 0:
				bad = bad[:rng.IntN(len(bad))]
			case 1:
				bad[rng.IntN(len(bad))] = byte(rng.Uint32())
			default:
				bad[rng.IntN(len(bad))] ^= 1 << rng.IntN(8)
			}
			damaged++
			check(bad, false)
		}
	}
	t.Logf("%d documents, %d damaged copies: %d texts agreed, %d refused", len(docs), damaged, agreed, refused)
}

// Opaque values (DECIMAL, dates and times in a document) and documents
// nested deeper than maxJSONBDepth are left to go-mysql.
func TestJSONBLeavesOpaqueAndDeepDocuments(t *testing.T) {
	opaque := []byte{replication.JSONB_OPAQUE, mysql.MYSQL_TYPE_DATE, 8, 0, 0, 0, 0, 0, 0x5a, 0xa1, 0x19}
	if _, err := goMySQLJSON(t, opaque); err != nil {
		t.Fatalf("go-mysql refuses the opaque date: %v", err)
	}
	if got, ok := appendJSONBDoc(nil, opaque); ok {
		t.Errorf("an opaque date was rendered as %q", got)
	}
	var deep any = int16(1)
	for range maxJSONBDepth {
		deep = []any{deep}
	}
	want, err := goMySQLJSON(t, jsonDoc(deep, false))
	if got, ok := appendJSONBDoc(nil, jsonDoc(deep, false)); !ok || err != nil || string(got) != want {
		t.Errorf("%d arrays in one another: %q, %v; go-mysql %q, %v", maxJSONBDepth, got, ok, want, err)
	}
	if got, ok := appendJSONBDoc(nil, jsonDoc([]any{deep}, false)); ok {
		t.Errorf("%d arrays in one another were rendered (%d bytes)", maxJSONBDepth+1, len(got))
	}
}

func BenchmarkJSONB(b *testing.B) {
	doc := jsonDoc(jsonObj{keys: []string{"note", "seq", "memberId"}, vals: []any{strings.Repeat("3f9a0c7be15d42", 24), int32(123456), int32(4711)}}, false)
	b.Run("tailbox", func(b *testing.B) {
		b.ReportAllocs()
		var buf []byte
		for b.Loop() {
			buf, _ = appendJSONBDoc(buf[:0], doc)
		}
	})
	b.Run("go-mysql", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			if _, err := goMySQLJSON(b, doc); err != nil {
				b.Fatal(err)
			}
		}
	})
}
