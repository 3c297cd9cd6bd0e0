package binlog

import (
	"encoding/binary"
	"math"
	"strconv"

	"github.com/go-mysql-org/go-mysql/replication"
)

// appendJSONBDoc appends the text of doc, a MySQL JSON column's value in
// MySQL's binary JSON format (its type byte, then the value), and reports
// true; or reports false and leaves the column to go-mysql.
//
// The text is byte for byte what go-mysql's DecodeData gives with
// RenderJSONAsMySQLText, as the reader configures it: members in stored
// order, no whitespace, whole doubles with ".0" (others in the shortest
// 'g' form), NaN and infinities as null, strings with `"`, `\` and control
// characters escaped as in JSON, `<`, `>`, `&`, U+2028 and U+2029 as \u
// escapes, every other byte as it is. go-mysql gets there by building
// objects per document and running json.Marshal over them: reflection and
// several allocations per value, the cost of a MySQL outbox row with a
// JSON payload. TestJSONBMatchesGoMySQL holds the two to the same text.
//
// What it leaves to go-mysql: opaque values (DECIMAL, dates and times,
// other MySQL types inside a document), nesting deeper than maxJSONBDepth,
// and anything malformed or cut short, which go-mysql then refuses.
func appendJSONBDoc(dst, doc []byte) ([]byte, bool) {
	if len(doc) < 1 {
		return dst, false
	}
	return appendJSONB(dst, doc[0], doc[1:], 0)
}

// maxJSONBDepth bounds the containers nested in one another that
// appendJSONB follows (MySQL's own limit on a document's depth is 100).
const maxJSONBDepth = 128

// appendJSONB appends the value of type tp at the head of data. Its checks
// are go-mysql's (jsonBinaryDecoder), so that it fails where go-mysql does.
func appendJSONB(dst []byte, tp byte, data []byte, depth int) ([]byte, bool) {
	le := binary.LittleEndian
	switch tp {
	case replication.JSONB_SMALL_OBJECT, replication.JSONB_LARGE_OBJECT,
		replication.JSONB_SMALL_ARRAY, replication.JSONB_LARGE_ARRAY:
		if depth >= maxJSONBDepth {
			return dst, false
		}
		return appendJSONBContainer(dst, data, tp == replication.JSONB_SMALL_OBJECT || tp == replication.JSONB_SMALL_ARRAY,
			tp == replication.JSONB_SMALL_OBJECT || tp == replication.JSONB_LARGE_OBJECT, depth+1)
	case replication.JSONB_LITERAL:
		if len(data) < 1 {
			return dst, false
		}
		switch data[0] {
		case replication.JSONB_NULL_LITERAL:
			return append(dst, "null"...), true
		case replication.JSONB_TRUE_LITERAL:
			return append(dst, "true"...), true
		case replication.JSONB_FALSE_LITERAL:
			return append(dst, "false"...), true
		}
	case replication.JSONB_INT16:
		if len(data) >= 2 {
			return strconv.AppendInt(dst, int64(int16(le.Uint16(data))), 10), true
		}
	case replication.JSONB_UINT16:
		if len(data) >= 2 {
			return strconv.AppendUint(dst, uint64(le.Uint16(data)), 10), true
		}
	case replication.JSONB_INT32:
		if len(data) >= 4 {
			return strconv.AppendInt(dst, int64(int32(le.Uint32(data))), 10), true
		}
	case replication.JSONB_UINT32:
		if len(data) >= 4 {
			return strconv.AppendUint(dst, uint64(le.Uint32(data)), 10), true
		}
	case replication.JSONB_INT64:
		if len(data) >= 8 {
			return strconv.AppendInt(dst, int64(le.Uint64(data)), 10), true
		}
	case replication.JSONB_UINT64:
		if len(data) >= 8 {
			return strconv.AppendUint(dst, le.Uint64(data), 10), true
		}
	case replication.JSONB_DOUBLE:
		if len(data) >= 8 {
			f := math.Float64frombits(le.Uint64(data))
			switch {
			case math.IsNaN(f) || math.IsInf(f, 0):
				return append(dst, "null"...), true
			case f == math.Trunc(f):
				return strconv.AppendFloat(dst, f, 'f', 1, 64), true
			}
			return strconv.AppendFloat(dst, f, 'g', -1, 64), true
		}
	case replication.JSONB_STRING:
		n, w, ok := jsonbLength(data)
		if ok && len(data) >= w+n {
			return append(appendJSONBString(append(dst, '"'), data[w:w+n]), '"'), true
		}
	}
	return dst, false
}

// appendJSONBContainer appends the object or array whose header starts
// data (go-mysql's decodeObjectOrArray).
func appendJSONBContainer(dst, data []byte, small, obj bool, depth int) ([]byte, bool) {
	off := 4
	if small {
		off = 2
	}
	count := func(b []byte) int {
		if small {
			return int(binary.LittleEndian.Uint16(b))
		}
		return int(binary.LittleEndian.Uint32(b))
	}
	if len(data) < 2*off {
		return dst, false
	}
	n, size := count(data), count(data[off:])
	if len(data) < size {
		return dst, false
	}
	keyEntry, valEntry := off+2, 1+off
	header := 2*off + n*valEntry
	if obj {
		header += n * keyEntry
	}
	if header > size {
		return dst, false
	}
	open, end := byte('['), byte(']')
	if obj {
		open, end = '{', '}'
	}
	dst = append(dst, open)
	for i := range n {
		if i > 0 {
			dst = append(dst, ',')
		}
		if obj {
			e := 2*off + keyEntry*i
			at, length := count(data[e:]), int(binary.LittleEndian.Uint16(data[e+off:]))
			if at < header || len(data) < at+length {
				return dst, false
			}
			dst = append(dst, '"')
			dst = appendJSONBString(dst, data[at:at+length])
			dst = append(dst, '"', ':')
		}
		e := 2*off + valEntry*i
		if obj {
			e += keyEntry * n
		}
		tp := data[e]
		var ok bool
		if tp == replication.JSONB_LITERAL || tp == replication.JSONB_INT16 || tp == replication.JSONB_UINT16 ||
			!small && (tp == replication.JSONB_INT32 || tp == replication.JSONB_UINT32) {
			dst, ok = appendJSONB(dst, tp, data[e+1:e+valEntry], depth) // inline
		} else if at := count(data[e+1:]); len(data) >= at {
			dst, ok = appendJSONB(dst, tp, data[at:], depth)
		}
		if !ok {
			return dst, false
		}
	}
	return append(dst, end), true
}

// jsonbLength decodes a string's length: up to five bytes of seven bits,
// low bits first (go-mysql's decodeVariableLength). It returns the length
// and the bytes it took.
func jsonbLength(data []byte) (n, w int, ok bool) {
	var v uint64
	for i := 0; i < min(len(data), 5); i++ {
		v |= uint64(data[i]&0x7f) << (7 * i)
		if data[i]&0x80 == 0 {
			if v > math.MaxUint32 {
				return 0, 0, false
			}
			return int(v), i + 1, true
		}
	}
	return 0, 0, false
}

// jsonbEscape is what appendJSONBString writes for each byte that is not
// written as it is: a JSON escape, or "" for bytes that need a closer look
// (0xE2 may start U+2028 or U+2029).
var jsonbEscape = func() [256]string {
	var t [256]string
	const hex = "0123456789abcdef"
	for c := range 0x20 {
		t[c] = `\u00` + string(hex[c>>4]) + string(hex[c&0xf])
	}
	t['\b'], t['\f'], t['\n'], t['\r'], t['\t'] = `\b`, `\f`, `\n`, `\r`, `\t`
	t['"'], t['\\'] = `\"`, `\\`
	t['<'], t['>'], t['&'] = `\u003c`, `\u003e`, `\u0026`
	return t
}()

// appendJSONBString appends s, the bytes of a JSON string, escaped as
// go-mysql's text is (see appendJSONBDoc).
func appendJSONBString(dst, s []byte) []byte {
	start := 0
	for i := 0; i < len(s); i++ {
		c := s[i]
		esc := jsonbEscape[c]
		if esc == "" {
			if c != 0xe2 || i+2 >= len(s) || s[i+1] != 0x80 || s[i+2]&0xfe != 0xa8 {
				continue
			}
			esc = `\u2028`
			if s[i+2] == 0xa9 {
				esc = `\u2029`
			}
			dst = append(append(dst, s[start:i]...), esc...)
			i += 2
			start = i + 1
			continue
		}
		dst = append(append(dst, s[start:i]...), esc...)
		start = i + 1
	}
	return append(dst, s[start:]...)
}
