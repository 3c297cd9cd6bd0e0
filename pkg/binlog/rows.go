package binlog

import (
	"encoding/binary"
	"reflect"
	"sync"
	"sync/atomic"
	"time"
	"unsafe"

	"github.com/go-mysql-org/go-mysql/mysql"
	"github.com/go-mysql-org/go-mysql/replication"
)

// rowsDecoder decodes the row images of captured tables in place of
// go-mysql's RowsEvent.DecodeData, for the column types outbox tables are
// made of: integers, character and binary strings, TEXT and BLOB (MariaDB's
// JSON), MySQL's JSON (appendJSONBDoc), ENUM, SET, TIMESTAMP and DATETIME.
// Its values are the ones DecodeData gives, in the types table.convertRow turns them into
// (int64, uint64, string for text, []byte for binary strings, int64 for
// ENUM and SET, time.Time in UTC), so that convertRow keeps them as they
// are; and rather than each value being boxed in an allocation of its own,
// the values of an event share a few blocks (see boxes). That is most of the
// garbage reading a backlog made: DecodeData allocated about ten objects
// per outbox row.
//
// Anything else goes to DecodeData, which stays the reference: an event of a
// table with another column type, a compressed or partial-update event,
// an image that misses columns, a zero or pre-1970 date, a JSON document
// with opaque values (DECIMAL, dates and times), a malformed image.
// decode gives up on the first such value and changes nothing the caller
// reads; TestRowsDecoderMatchesGoMySQL holds the two to the same values.
//
// Safe for concurrent use: go-mysql decodes the events of a compressed
// transaction payload in parallel.
type rowsDecoder struct {
	// flavor is the server's, for the collation ids of text columns.
	flavor Flavor
	mu     sync.Mutex
	plans  map[uint64]*rowsPlan // by table id
}

// rowsPlan is how the images of one table shape are decoded.
type rowsPlan struct {
	tm    *replication.TableMapEvent // the TABLE_MAP last checked against tbl
	tbl   *table
	cols  []colOp // nil when a column's type is not decoded here
	kinds [nBoxKinds]int
	rows  atomic.Int32 // rows in the last event: the blocks' first size
}

// colOp is how one column is decoded.
type colOp struct {
	op     uint8
	size   int  // bytes of a fixed-size value, or of a length prefix
	dec    int  // fractional digits of a time
	binary bool // a binary string, decoded as []byte
}

const (
	opInt uint8 = iota + 1
	opUint
	opString // length-prefixed: CHAR, VARCHAR, TEXT, BLOB
	opEnum   // ENUM and SET: little-endian integers
	opTimestamp
	opDatetime
	opJSON // MySQL's binary JSON, length-prefixed: rendered as text (jsonb.go)
)

// Box kinds: what the values of a column are boxed as.
const (
	boxInt = iota
	boxUint
	boxString
	boxBytes
	boxTime
	nBoxKinds
)

// rowsEventTypeOffset locates go-mysql's unexported RowsEvent.eventType,
// the binlog event type, which tells compressed MariaDB events (whose
// images DecodeData decompresses first) and v0 and partial-update events
// from the plain ones; go-mysql exports no other way to tell. It is found
// with reflect once, and read directly per event. When a go-mysql version
// renames the field or changes its type, it is all ones and rowsDecoder
// leaves every event to DecodeData (TestRowsEventTypeIsReadable fails).
var rowsEventTypeOffset = func() uintptr {
	f, ok := reflect.TypeFor[replication.RowsEvent]().FieldByName("eventType")
	if !ok || f.Type != reflect.TypeFor[replication.EventType]() || len(f.Index) != 1 {
		return ^uintptr(0)
	}
	return f.Offset
}()

func rowsEventType(e *replication.RowsEvent) (replication.EventType, bool) {
	if rowsEventTypeOffset == ^uintptr(0) {
		return 0, false
	}
	return *(*replication.EventType)(unsafe.Add(unsafe.Pointer(e), rowsEventTypeOffset)), true
}

// decode sets e.Rows and e.SkippedColumns from body, the event's data after
// its header, and reports true; or reports false and leaves them for
// DecodeData.
func (d *rowsDecoder) decode(e *replication.RowsEvent, body []byte) bool {
	typ, ok := rowsEventType(e)
	if !ok || e.Table == nil || e.ColumnCount != uint64(len(e.Table.ColumnType)) || e.ColumnCount == 0 {
		return false
	}
	images := 1
	switch typ {
	case replication.WRITE_ROWS_EVENTv1, replication.WRITE_ROWS_EVENTv2,
		replication.DELETE_ROWS_EVENTv1, replication.DELETE_ROWS_EVENTv2:
	case replication.UPDATE_ROWS_EVENTv1, replication.UPDATE_ROWS_EVENTv2:
		images = 2
		if !fullBitmap(e.ColumnBitmap2, int(e.ColumnCount)) {
			return false
		}
	default:
		return false
	}
	if !fullBitmap(e.ColumnBitmap1, int(e.ColumnCount)) {
		return false
	}
	p := d.plan(e.TableID, e.Table)
	if p.cols == nil {
		return false
	}

	hint := max(int(p.rows.Load()), 1) * images
	var bx boxes
	for k, n := range p.kinds {
		bx.size[k] = hint * n
	}
	bx.size[boxAny] = hint * len(p.cols)
	rows := make([][]any, 0, hint)
	nullBytes := (len(p.cols) + 7) / 8
	for pos := 0; pos < len(body); {
		if len(body)-pos < nullBytes {
			return false
		}
		nulls := body[pos : pos+nullBytes]
		pos += nullBytes
		row := bx.row(len(p.cols))
		for i := range p.cols {
			if nulls[i>>3]&(1<<(i&7)) != 0 {
				continue // row[i] is nil
			}
			n, ok := p.cols[i].decode(body[pos:], &row[i], &bx)
			if !ok {
				return false
			}
			pos += n
		}
		rows = append(rows, row)
	}
	if len(rows)%images != 0 {
		return false
	}
	p.rows.Store(int32(min(len(rows)/images, 1<<20)))
	e.Rows = rows
	e.SkippedColumns = make([][]int, len(rows)) // every image is complete
	return true
}

// fullBitmap reports whether the first n bits of b are all set.
func fullBitmap(b []byte, n int) bool {
	if len(b) < (n+7)/8 {
		return false
	}
	for i := 0; i < n/8; i++ {
		if b[i] != 0xff {
			return false
		}
	}
	if r := n % 8; r != 0 {
		m := byte(1)<<r - 1
		return b[n/8]&m == m
	}
	return true
}

// maxPlans bounds the plans kept: a table gets a new id whenever the server
// reopens it, and the old ids are never seen again.
const maxPlans = 1024

// plan returns the plan for tm, made anew when the table's shape changed.
func (d *rowsDecoder) plan(id uint64, tm *replication.TableMapEvent) *rowsPlan {
	d.mu.Lock()
	defer d.mu.Unlock()
	p := d.plans[id]
	if p != nil && (p.tm == tm || p.tbl.sameShape(tm)) {
		p.tm = tm
		return p
	}
	if d.plans == nil || len(d.plans) >= maxPlans {
		d.plans = map[uint64]*rowsPlan{}
	}
	p = newRowsPlan(tm, d.flavor)
	d.plans[id] = p
	return p
}

func newRowsPlan(tm *replication.TableMapEvent, f Flavor) *rowsPlan {
	// The plan needs the column kinds only: a column that cannot be
	// converted is the reader's error, at the TABLE_MAP (and its text
	// is converted by table.convertRow, on either path).
	tbl, _ := newTable(tm, nil, f, nil)
	p := &rowsPlan{tm: tm, tbl: tbl}
	cols := make([]colOp, len(tm.ColumnType))
	for i, tp := range tm.ColumnType {
		kind, meta := p.tbl.conv[i].kind, tm.ColumnMeta[i]
		c := &cols[i]
		switch tp {
		case mysql.MYSQL_TYPE_TINY, mysql.MYSQL_TYPE_SHORT, mysql.MYSQL_TYPE_INT24,
			mysql.MYSQL_TYPE_LONG, mysql.MYSQL_TYPE_LONGLONG:
			c.size = intSize[tp]
			switch kind {
			case KindInt:
				c.op = opInt
			case KindUint:
				c.op = opUint
			}
		case mysql.MYSQL_TYPE_VARCHAR, mysql.MYSQL_TYPE_VAR_STRING:
			c.op, c.size = opString, 1
			if meta >= 256 {
				c.size = 2
			}
		case mysql.MYSQL_TYPE_BLOB:
			if meta >= 1 && meta <= 4 {
				c.op, c.size = opString, int(meta)
			}
		case mysql.MYSQL_TYPE_STRING:
			// ENUM and SET are STRING columns whose real type is in the
			// metadata; newTable's kind tells them (as go-mysql's
			// IsEnumColumn), the low byte is their size.
			switch n := int(meta & 0xff); kind {
			case KindEnum:
				if n == 1 || n == 2 {
					c.op, c.size = opEnum, n
				}
			case KindSet:
				if n >= 1 && n <= 8 {
					c.op, c.size = opEnum, n
				}
			case KindText, KindBinary:
				c.op, c.size = opString, 1
				if stringLength(meta) >= 256 {
					c.size = 2
				}
			}
		case mysql.MYSQL_TYPE_JSON:
			if kind == KindJSON && meta >= 1 && meta <= 4 {
				c.op, c.size = opJSON, int(meta)
			}
		case mysql.MYSQL_TYPE_TIMESTAMP2:
			if meta <= 6 {
				c.op, c.dec, c.size = opTimestamp, int(meta), 4+int(meta+1)/2
			}
		case mysql.MYSQL_TYPE_DATETIME2:
			if meta <= 6 {
				c.op, c.dec, c.size = opDatetime, int(meta), 5+int(meta+1)/2
			}
		}
		if c.op == 0 {
			return p // cols stays nil: DecodeData decodes this table
		}
		c.binary = c.op == opString && kind == KindBinary
		p.kinds[c.boxKind()]++
	}
	p.cols = cols
	return p
}

// intSize is the byte size of each integer type.
var intSize = map[byte]int{mysql.MYSQL_TYPE_TINY: 1, mysql.MYSQL_TYPE_SHORT: 2, mysql.MYSQL_TYPE_INT24: 3,
	mysql.MYSQL_TYPE_LONG: 4, mysql.MYSQL_TYPE_LONGLONG: 8}

func (c *colOp) boxKind() int {
	switch c.op {
	case opInt, opEnum:
		return boxInt
	case opUint:
		return boxUint
	case opTimestamp, opDatetime:
		return boxTime
	}
	if c.binary {
		return boxBytes
	}
	return boxString
}

// datetimeMin is DATETIME2's packed 1970-01-01 00:00:00: go-mysql decodes
// earlier values as strings.
const datetimeMin = 107420450816

// decode decodes the value at the head of b into *v and returns its
// length; false when b is too short or the value is one DecodeData gives
// in another form.
func (c *colOp) decode(b []byte, v *any, bx *boxes) (int, bool) {
	switch c.op {
	case opString, opJSON:
		if len(b) < c.size {
			return 0, false
		}
		var n int
		switch c.size {
		case 1:
			n = int(b[0])
		case 2:
			n = int(binary.LittleEndian.Uint16(b))
		case 3:
			n = int(b[0]) | int(b[1])<<8 | int(b[2])<<16
		default:
			n = int(binary.LittleEndian.Uint32(b))
		}
		end := c.size + n
		if end > len(b) {
			return 0, false
		}
		s := b[c.size:end:end]
		switch {
		case c.op == opJSON && n == 0:
			*v = bx.string("") // an empty document (go-mysql: empty bytes)
		case c.op == opJSON:
			text, ok := appendJSONBDoc(make([]byte, 0, n+n/4+8), s)
			if !ok {
				return 0, false
			}
			*v = bx.string(bytesString(text))
		case c.binary:
			*v = bx.bytes(s)
		default:
			*v = bx.string(bytesString(s))
		}
		return end, true
	case opInt, opUint, opEnum:
		if len(b) < c.size {
			return 0, false
		}
		var u uint64
		for i := c.size - 1; i >= 0; i-- {
			u = u<<8 | uint64(b[i])
		}
		switch c.op {
		case opUint:
			*v = bx.uint(u)
		case opInt:
			shift := 64 - 8*c.size
			*v = bx.int(int64(u<<shift) >> shift) // sign-extended
		default:
			*v = bx.int(int64(u))
		}
		return c.size, true
	case opTimestamp:
		if len(b) < c.size {
			return 0, false
		}
		sec := int64(binary.BigEndian.Uint32(b))
		if sec == 0 {
			return 0, false // go-mysql's zero-date string
		}
		*v = bx.time(time.Unix(sec, fraction(b[4:], c.dec)*1000).UTC())
		return c.size, true
	case opDatetime:
		if len(b) < c.size {
			return 0, false
		}
		packed := int64(b[0])<<32 | int64(binary.BigEndian.Uint32(b[1:])) - 0x8000000000
		if packed < datetimeMin {
			return 0, false // zero, negative or before 1970: a string in go-mysql
		}
		ymd, hms := packed>>17, packed%(1<<17)
		day, month, year := int(ymd%(1<<5)), int((ymd>>5)%13), int((ymd>>5)/13)
		if month == 0 || day == 0 {
			return 0, false
		}
		sec, minute, hour := int(hms%(1<<6)), int((hms>>6)%(1<<6)), int(hms>>12)
		*v = bx.time(time.Date(year, time.Month(month), day, hour, minute, sec, int(fraction(b[5:], c.dec))*1000, time.UTC))
		return c.size, true
	}
	return 0, false
}

// fraction decodes the microseconds of a TIMESTAMP2 or DATETIME2 with dec
// fractional digits from b, which holds (dec+1)/2 bytes.
func fraction(b []byte, dec int) int64 {
	switch dec {
	case 1, 2:
		return int64(b[0]) * 10000
	case 3, 4:
		return int64(binary.BigEndian.Uint16(b)) * 100
	case 5, 6:
		return int64(b[0])<<16 | int64(b[1])<<8 | int64(b[2])
	}
	return 0
}

// boxAny is the index of the rows' own []any blocks in boxes.size.
const boxAny = nBoxKinds

// boxes hands out the values of one event as interfaces whose data words
// point into shared blocks: one allocation per block instead of one per
// value. A block is never written after a value in it is handed out, so
// each interface holds its value unchanged, as one made by a conversion
// does; the garbage collector keeps a block while any interface into it is
// reachable.
type boxes struct {
	size  [nBoxKinds + 1]int // the size of the next block of each kind
	ints  []int64
	uints []uint64
	strs  []string
	bins  [][]byte
	times []time.Time
	anys  []any
}

// next returns the next free slot of *blk, allocating a block of *size
// (doubled for the one after) when *blk is full.
func next[T any](blk *[]T, size *int) *T {
	if len(*blk) == cap(*blk) {
		n := max(*size, 8)
		*blk = make([]T, 0, n)
		*size = min(2*n, 4096)
	}
	*blk = (*blk)[:len(*blk)+1]
	return &(*blk)[len(*blk)-1]
}

func (bx *boxes) row(n int) []any {
	if cap(bx.anys)-len(bx.anys) < n {
		bx.anys = make([]any, 0, max(bx.size[boxAny], n))
		bx.size[boxAny] = min(2*cap(bx.anys), 1<<16)
	}
	l := len(bx.anys)
	bx.anys = bx.anys[:l+n]
	return bx.anys[l : l+n : l+n]
}

func (bx *boxes) int(v int64) any {
	p := next(&bx.ints, &bx.size[boxInt])
	*p = v
	return pointAt(typeInt64, unsafe.Pointer(p))
}

func (bx *boxes) uint(v uint64) any {
	p := next(&bx.uints, &bx.size[boxUint])
	*p = v
	return pointAt(typeUint64, unsafe.Pointer(p))
}

func (bx *boxes) string(v string) any {
	p := next(&bx.strs, &bx.size[boxString])
	*p = v
	return pointAt(typeString, unsafe.Pointer(p))
}

func (bx *boxes) bytes(v []byte) any {
	p := next(&bx.bins, &bx.size[boxBytes])
	*p = v
	return pointAt(typeBytes, unsafe.Pointer(p))
}

func (bx *boxes) time(v time.Time) any {
	p := next(&bx.times, &bx.size[boxTime])
	*p = v
	return pointAt(typeTime, unsafe.Pointer(p))
}

// eface is the layout of an interface{} value: its dynamic type and a
// pointer to its value (for the types boxed here, which are not stored in
// the data word itself).
type eface struct {
	typ, data unsafe.Pointer
}

func typeOf(v any) unsafe.Pointer { return (*eface)(unsafe.Pointer(&v)).typ }

var (
	typeInt64  = typeOf(int64(0))
	typeUint64 = typeOf(uint64(0))
	typeString = typeOf("")
	typeBytes  = typeOf([]byte(nil))
	typeTime   = typeOf(time.Time{})
)

// pointAt returns the interface of type typ whose value is the one at p.
func pointAt(typ, p unsafe.Pointer) (v any) {
	*(*eface)(unsafe.Pointer(&v)) = eface{typ: typ, data: p}
	return v
}
