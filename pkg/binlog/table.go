package binlog

import (
	"bytes"
	"encoding/hex"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"time"
	"unsafe"

	"github.com/go-mysql-org/go-mysql/mysql"
	"github.com/go-mysql-org/go-mysql/replication"
)

// colConv is the precomputed conversion of one column.
type colConv struct {
	kind  Kind
	text  *textCodec // a text column not in UTF-8: converts it (charset.go)
	padTo int        // BINARY(n): pad to n bytes
	names []string   // ENUM/SET member names, when known, in UTF-8
}

// table is a captured table as decoded from one TABLE_MAP shape.
type table struct {
	pub   *Table
	conv  []colConv
	types []byte
	meta  []uint16
	names [][]byte
	// More of the TABLE_MAP that pub and conv are made from: a DDL that
	// changes only these (signedness, a charset, ENUM or SET members,
	// nullability) keeps types, meta and names.
	nulls, signed                  []byte
	charsets, colCharsets          []uint64
	enumSetCharsets, enumSetColCss []uint64
	enums, sets                    [][][]byte
}

// binaryCollation is the collation id of the binary character set.
const binaryCollation = 63

// newTable builds the conversion plan for a TABLE_MAP of a captured table
// on a server of flavor f. names stands in for the column names, and
// charsets (the character set name of each column, "" for one without)
// for the column charsets, when the TABLE_MAP carries none
// (binlog_row_metadata=NO_LOG): both from information_schema. Without
// either, text columns are taken to be UTF-8 and binary strings to be text.
// The error, wrapping ErrUnsupported, names a column in a character set
// that cannot be converted to UTF-8 or one with an unknown collation id;
// the table is complete all the same, its column kinds usable.
func newTable(tm *replication.TableMapEvent, names []string, f Flavor, charsets []string) (*table, error) {
	n := int(tm.ColumnCount)
	t := &table{
		pub:   &Table{Schema: string(tm.Schema), Name: string(tm.Table), Columns: make([]Column, n)},
		conv:  make([]colConv, n),
		types: bytes.Clone(tm.ColumnType),
		meta:  append([]uint16(nil), tm.ColumnMeta...),
		names: cloneAll(tm.ColumnName),

		nulls:           bytes.Clone(tm.NullBitmap),
		signed:          bytes.Clone(tm.SignednessBitmap),
		charsets:        slices.Clone(tm.DefaultCharset),
		colCharsets:     slices.Clone(tm.ColumnCharset),
		enumSetCharsets: slices.Clone(tm.EnumSetDefaultCharset),
		enumSetColCss:   slices.Clone(tm.EnumSetColumnCharset),
		enums:           make([][][]byte, len(tm.EnumStrValue)),
		sets:            make([][][]byte, len(tm.SetStrValue)),
	}
	for i, v := range tm.EnumStrValue {
		t.enums[i] = cloneAll(v)
	}
	for i, v := range tm.SetStrValue {
		t.sets[i] = cloneAll(v)
	}
	unsigned := tm.UnsignedMap()
	collations := tm.CollationMap()
	enumSetCollations := tm.EnumSetCollationMap()
	enums := memberLists(tm, tm.IsEnumColumn, tm.EnumStrValue)
	sets := memberLists(tm, tm.IsSetColumn, tm.SetStrValue)
	var errs []error
	// charsetOf returns the character set of column i from collations,
	// or from charsets when the TABLE_MAP has no character set metadata;
	// "" when unknown.
	noMetadata := len(tm.DefaultCharset) == 0 && len(tm.ColumnCharset) == 0
	charsetOf := func(i int, collations map[int]uint64) string {
		if noMetadata {
			switch {
			case i >= len(charsets):
				return ""
			case charsets[i] == "":
				return "binary" // information_schema has no character set for binary strings
			}
			return charsets[i]
		}
		coll, ok := collations[i]
		if !ok {
			return ""
		}
		if coll == binaryCollation {
			return "binary"
		}
		cs, ok := collationCharset(f, coll)
		if !ok {
			errs = append(errs, fmt.Errorf("%w: column %s of %s has collation id %d, which tailbox does not know", ErrUnsupported, t.pub.Columns[i].Name, t.pub, coll))
		}
		return cs
	}
	codecOf := func(i int, cs string) *textCodec {
		if cs == "" || cs == "binary" {
			return nil
		}
		c, err := codecFor(cs)
		if err != nil {
			errs = append(errs, fmt.Errorf("column %s of %s: %w", t.pub.Columns[i].Name, t.pub, err))
		}
		return c
	}
	// memberNames converts ENUM or SET member names to UTF-8.
	memberNames := func(i int, raw [][]byte) []string {
		if raw == nil {
			return nil
		}
		c := codecOf(i, charsetOf(i, enumSetCollations))
		out := make([]string, len(raw))
		for j, b := range raw {
			out[j] = string(b)
			if c != nil {
				out[j] = c.decode(out[j])
			}
		}
		return out
	}
	for i := 0; i < n; i++ {
		col := &t.pub.Columns[i]
		if i < len(names) {
			col.Name = names[i]
		}
		col.Type = tm.ColumnType[i]
		if avail, nullable := tm.Nullable(i); avail {
			col.Nullable = nullable
		}
		c := &t.conv[i]
		switch {
		case tm.IsEnumColumn(i):
			c.kind = KindEnum
			c.names = memberNames(i, enums[i])
		case tm.IsSetColumn(i):
			c.kind = KindSet
			c.names = memberNames(i, sets[i])
		default:
			switch tm.ColumnType[i] {
			case mysql.MYSQL_TYPE_TINY, mysql.MYSQL_TYPE_SHORT, mysql.MYSQL_TYPE_INT24,
				mysql.MYSQL_TYPE_LONG, mysql.MYSQL_TYPE_LONGLONG:
				c.kind = KindInt
				if unsigned[i] {
					c.kind = KindUint
				}
			case mysql.MYSQL_TYPE_YEAR, mysql.MYSQL_TYPE_BIT:
				c.kind = KindUint
			case mysql.MYSQL_TYPE_FLOAT, mysql.MYSQL_TYPE_DOUBLE:
				c.kind = KindFloat
			case mysql.MYSQL_TYPE_DECIMAL, mysql.MYSQL_TYPE_NEWDECIMAL:
				c.kind = KindDecimal
			case mysql.MYSQL_TYPE_TIMESTAMP, mysql.MYSQL_TYPE_TIMESTAMP2:
				c.kind = KindTimestamp
			case mysql.MYSQL_TYPE_DATETIME, mysql.MYSQL_TYPE_DATETIME2:
				c.kind = KindDatetime
			case mysql.MYSQL_TYPE_DATE, mysql.MYSQL_TYPE_NEWDATE:
				c.kind = KindDate
			case mysql.MYSQL_TYPE_TIME, mysql.MYSQL_TYPE_TIME2:
				c.kind = KindTime
			case mysql.MYSQL_TYPE_JSON:
				c.kind = KindJSON
			case mysql.MYSQL_TYPE_GEOMETRY:
				c.kind = KindBinary
			case mysql.MYSQL_TYPE_STRING, mysql.MYSQL_TYPE_VARCHAR, mysql.MYSQL_TYPE_VAR_STRING, mysql.MYSQL_TYPE_BLOB:
				c.kind = KindText
				if cs := charsetOf(i, collations); cs == "binary" {
					c.kind = KindBinary
				} else {
					c.text = codecOf(i, cs)
				}
				if c.kind == KindBinary && tm.ColumnType[i] == mysql.MYSQL_TYPE_STRING {
					c.padTo = stringLength(tm.ColumnMeta[i])
				}
			default:
				c.kind = KindOther
			}
		}
		col.Kind = c.kind
	}
	return t, errors.Join(errs...)
}

// memberLists returns the member names of the columns is selects (ENUM or
// SET), by column index, from raw (TableMapEvent.EnumStrValue or
// SetStrValue): nil without FULL metadata. It reads the event's decoded
// fields only. go-mysql's EnumStrValueMap and SetStrValueMap fill a cache
// in the event without synchronisation, and newTable runs on two
// goroutines for one event (the Reader's, and go-mysql's parser through
// rowsDecoder): one could see the other's cache half made.
func memberLists(tm *replication.TableMapEvent, is func(int) bool, raw [][][]byte) map[int][][]byte {
	if len(raw) == 0 {
		return nil
	}
	out := map[int][][]byte{}
	p := 0
	for i := 0; i < int(tm.ColumnCount) && p < len(raw); i++ {
		if is(i) {
			out[i] = raw[p]
			p++
		}
	}
	return out
}

// stringLength decodes the byte length of a MYSQL_TYPE_STRING column from its metadata.
func stringLength(meta uint16) int {
	if meta >= 256 {
		b0, b1 := uint8(meta>>8), uint8(meta&0xFF)
		if b0&0x30 != 0x30 {
			return int(uint16(b1) | (uint16((b0&0x30)^0x30) << 4))
		}
		return int(meta & 0xFF)
	}
	return int(meta)
}

// cloneAll returns a deep copy of bs.
func cloneAll(bs [][]byte) [][]byte {
	out := make([][]byte, len(bs))
	for i, b := range bs {
		out[i] = bytes.Clone(b)
	}
	return out
}

// sameShape reports whether tm describes the same columns as t: everything
// newTable reads from it is equal.
func (t *table) sameShape(tm *replication.TableMapEvent) bool {
	eq := func(a, b [][]byte) bool { return slices.EqualFunc(a, b, bytes.Equal) }
	eq2 := func(a, b [][][]byte) bool { return slices.EqualFunc(a, b, eq) }
	return bytes.Equal(t.types, tm.ColumnType) && slices.Equal(t.meta, tm.ColumnMeta) && eq(t.names, tm.ColumnName) &&
		bytes.Equal(t.nulls, tm.NullBitmap) && bytes.Equal(t.signed, tm.SignednessBitmap) &&
		slices.Equal(t.charsets, tm.DefaultCharset) && slices.Equal(t.colCharsets, tm.ColumnCharset) &&
		slices.Equal(t.enumSetCharsets, tm.EnumSetDefaultCharset) && slices.Equal(t.enumSetColCss, tm.EnumSetColumnCharset) &&
		eq2(t.enums, tm.EnumStrValue) && eq2(t.sets, tm.SetStrValue) &&
		string(tm.Schema) == t.pub.Schema && string(tm.Table) == t.pub.Name
}

// convertRow turns go-mysql's decoded values into the documented Row
// types. It converts in place: go-mysql makes a new []any for every row
// image, which nothing else reads once the event is handled. Values that
// already have their documented type are kept as they are, neither copied
// nor boxed again.
func (t *table) convertRow(in []any) ([]any, error) {
	out := in
	if len(in) != len(t.conv) {
		// Not seen from go-mysql, which decodes every column of the table
		// map; missing values would be NULL.
		out = make([]any, len(t.conv))
	}
	for i := range t.conv {
		if i >= len(in) || in[i] == nil {
			out[i] = nil
			continue
		}
		v, err := t.conv[i].convert(in[i])
		if err != nil {
			return nil, fmt.Errorf("column %d (%s) of %s: %w", i, t.pub.Columns[i].Name, t.pub, err)
		}
		out[i] = v
	}
	return out, nil
}

// convert returns v as the documented type of c's kind: v itself when it
// already has that type; strings of text made from []byte without copying
// (see bytesString).
func (c *colConv) convert(v any) (any, error) {
	switch c.kind {
	case KindInt:
		switch x := v.(type) {
		case int64:
			return v, nil
		case int8:
			return int64(x), nil
		case int16:
			return int64(x), nil
		case int32:
			return int64(x), nil
		case int:
			return int64(x), nil
		}
	case KindUint:
		switch x := v.(type) {
		case uint64:
			return v, nil
		case uint8:
			return uint64(x), nil
		case uint16:
			return uint64(x), nil
		case uint32:
			return uint64(x), nil
		case int64:
			return uint64(x), nil
		case int:
			return uint64(x), nil
		case int32:
			return uint64(uint32(x)), nil
		case int16:
			return uint64(uint16(x)), nil
		case int8:
			return uint64(uint8(x)), nil
		}
	case KindFloat:
		switch x := v.(type) {
		case float64:
			return v, nil
		case float32:
			return float64(x), nil
		}
	case KindEnum:
		if x, ok := v.(int64); ok {
			if c.names == nil {
				return v, nil
			}
			if x <= 0 || int(x) > len(c.names) {
				return "", nil
			}
			return c.names[x-1], nil
		}
	case KindSet:
		if x, ok := v.(int64); ok {
			if c.names == nil {
				return uint64(x), nil
			}
			var b strings.Builder
			for i, n := range c.names {
				if uint64(x)&(1<<uint(i)) != 0 {
					if b.Len() > 0 {
						b.WriteByte(',')
					}
					b.WriteString(n)
				}
			}
			return b.String(), nil
		}
	case KindTimestamp, KindDatetime:
		switch x := v.(type) {
		case time.Time:
			if c.kind == KindTimestamp && x.Location() != time.UTC {
				return x.UTC(), nil
			}
			return v, nil
		case string:
			return parseWallClock(x)
		}
	case KindText:
		if c.text != nil {
			switch x := v.(type) {
			case string:
				return c.text.decode(x), nil
			case []byte:
				return c.text.decode(bytesString(x)), nil
			}
			break
		}
		switch x := v.(type) {
		case string:
			return v, nil
		case []byte:
			return bytesString(x), nil
		}
	case KindBinary:
		var b []byte
		switch x := v.(type) {
		case string:
			b = []byte(x)
		case []byte:
			if c.padTo <= len(x) {
				return v, nil
			}
			b = x
		default:
			return nil, fmt.Errorf("unexpected %T for a binary column", v)
		}
		if c.padTo > len(b) {
			p := make([]byte, c.padTo)
			copy(p, b)
			b = p
		}
		return b, nil
	case KindJSON:
		switch x := v.(type) {
		case string:
			return v, nil
		case []byte:
			return bytesString(x), nil
		default:
			// A partial JSON update (binlog_row_value_options=PARTIAL_JSON).
			return fmt.Sprint(x), nil
		}
	case KindDecimal, KindDate, KindTime, KindOther:
		switch x := v.(type) {
		case string:
			return v, nil
		case []byte:
			return bytesString(x), nil
		default:
			return fmt.Sprint(x), nil
		}
	}
	return nil, fmt.Errorf("unexpected %T value for a %s column", v, c.kind)
}

// bytesString returns b as a string without copying. The []byte values
// go-mysql decodes alias the event's own buffer, which is allocated for that
// event and never written after it is decoded (go-mysql makes its VARCHAR
// and JSON strings the same way), so the string stays valid and unchanged
// for as long as it is referenced.
func bytesString(b []byte) string { return unsafe.String(unsafe.SliceData(b), len(b)) }

// parseWallClock parses go-mysql's string rendering of a DATETIME/TIMESTAMP.
// Zero dates become the zero time.Time.
func parseWallClock(s string) (time.Time, error) {
	if strings.HasPrefix(s, "0000-00-00") || strings.Contains(s, "-00") {
		return time.Time{}, nil
	}
	t, err := time.ParseInLocation("2006-01-02 15:04:05.999999", s, time.UTC)
	if err != nil {
		return time.Time{}, fmt.Errorf("parse time %q: %w", s, err)
	}
	return t, nil
}

// gtidOf renders a MySQL GTID event's own GTID ("uuid:gno", or "uuid:tag:gno").
func gtidOf(sid []byte, tag string, gno int64) string {
	if len(sid) != 16 {
		return ""
	}
	var b [36]byte
	hex.Encode(b[0:8], sid[0:4])
	b[8] = '-'
	hex.Encode(b[9:13], sid[4:6])
	b[13] = '-'
	hex.Encode(b[14:18], sid[6:8])
	b[18] = '-'
	hex.Encode(b[19:23], sid[8:10])
	b[23] = '-'
	hex.Encode(b[24:], sid[10:16])
	s := string(b[:])
	if tag != "" {
		s += ":" + tag
	}
	return s + ":" + strconv.FormatInt(gno, 10)
}
