package binlog

import (
	"fmt"
	"strconv"
	"strings"
	"time"
)

// Flavor is the kind of server the binlog comes from. The zero value is
// FlavorUnknown, which Config treats as "detect from the server version".
type Flavor int

// Flavors.
const (
	FlavorUnknown Flavor = iota
	FlavorMySQL
	FlavorMariaDB
)

// String returns "mysql", "mariadb" or "unknown".
func (f Flavor) String() string {
	switch f {
	case FlavorMySQL:
		return "mysql"
	case FlavorMariaDB:
		return "mariadb"
	default:
		return "unknown"
	}
}

// ParseFlavor maps "mysql", "mariadb" and "auto"/"" (FlavorUnknown) to a Flavor.
func ParseFlavor(s string) (Flavor, error) {
	switch strings.ToLower(s) {
	case "", "auto":
		return FlavorUnknown, nil
	case "mysql":
		return FlavorMySQL, nil
	case "mariadb":
		return FlavorMariaDB, nil
	}
	return FlavorUnknown, fmt.Errorf("unknown flavor %q (want auto, mysql or mariadb)", s)
}

// Position is a transaction boundary in the binlog: the end position of a
// real event in File (what the server calls LogPos) plus, on servers with
// GTIDs, the GTID set executed up to and including that point. The zero value
// means "no position".
type Position struct {
	// File is the binlog file name, for example "mysql-bin.000003".
	File string `json:"file"`
	// Pos is the byte offset in File where the next event starts.
	Pos uint32 `json:"pos"`
	// GTID is the executed GTID set after this point in the server's own
	// syntax (MySQL "uuid:1-5,uuid2:1-3", MariaDB "0-1-55,1-2-7"); empty when
	// the server has no GTIDs.
	GTID string `json:"gtid,omitempty"`
}

// IsZero reports whether p is the zero Position.
func (p Position) IsZero() bool { return p.File == "" && p.Pos == 0 && p.GTID == "" }

// String renders p as FILE:POS, gtid:SET, or both separated by a space —
// the syntax of a --from spec; the zero Position is "".
func (p Position) String() string {
	var s string
	if p.File != "" {
		s = p.File + ":" + strconv.FormatUint(uint64(p.Pos), 10)
	}
	if p.GTID != "" {
		if s != "" {
			s += " "
		}
		s += "gtid:" + p.GTID
	}
	return s
}

// Point is where a stream resumes: after the transaction boundary Pos,
// passing over the first Skip captured rows of the transaction that
// follows it, which NextTxn identifies (its GTID, or FILE:POS of its
// start; set when Skip > 0). A checkpoint stores a Point.
type Point struct {
	Pos     Position
	Skip    int
	NextTxn string
}

// Compare orders positions by file sequence number (the numeric suffix of
// File), then by Pos. GTID sets are not compared. It returns -1, 0 or +1.
func (p Position) Compare(o Position) int {
	if c := compareFiles(p.File, o.File); c != 0 {
		return c
	}
	switch {
	case p.Pos < o.Pos:
		return -1
	case p.Pos > o.Pos:
		return 1
	}
	return 0
}

// FileIndex returns the numeric suffix of a binlog file name ("mysql-bin.000042" → 42),
// or -1 when the name has none.
func FileIndex(name string) int64 {
	i := strings.LastIndexByte(name, '.')
	if i < 0 {
		return -1
	}
	n, err := strconv.ParseInt(name[i+1:], 10, 64)
	if err != nil {
		return -1
	}
	return n
}

func compareFiles(a, b string) int {
	ia, ib := FileIndex(a), FileIndex(b)
	if ia >= 0 && ib >= 0 && ia != ib {
		if ia < ib {
			return -1
		}
		return 1
	}
	return strings.Compare(a, b)
}

// Op is the operation of a row change.
type Op int

// Row operations. The zero value OpUnknown never appears in a Change.
const (
	OpUnknown Op = iota
	OpInsert
	OpUpdate
	OpDelete
)

// String returns "insert", "update", "delete" or "unknown".
func (o Op) String() string {
	switch o {
	case OpInsert:
		return "insert"
	case OpUpdate:
		return "update"
	case OpDelete:
		return "delete"
	}
	return "unknown"
}

// Kind is how a column's values are represented in Change.Row.
type Kind int

// Column kinds and the Go type of their non-NULL values in a Row.
const (
	KindOther     Kind = iota // string (anything not listed below, e.g. GEOMETRY as []byte)
	KindInt                   // int64 (TINYINT..BIGINT signed)
	KindUint                  // uint64 (unsigned integers, BIT, YEAR)
	KindFloat                 // float64 (FLOAT, DOUBLE)
	KindDecimal               // string, exact decimal text
	KindText                  // string, UTF-8 (CHAR, VARCHAR, TEXT; converted from the column charset)
	KindBinary                // []byte (BINARY padded to its length, VARBINARY, BLOB)
	KindJSON                  // string, JSON text (MySQL JSON type; "" for the empty document)
	KindEnum                  // string, the member name ("" for the invalid member 0); int64 index without FULL metadata
	KindSet                   // string, comma-separated member names; uint64 bit mask without FULL metadata
	KindTimestamp             // time.Time, the UTC instant; zero time.Time for 0000-00-00
	KindDatetime              // time.Time, the stored wall clock in time.UTC; zero time.Time for 0000-00-00
	KindDate                  // string "YYYY-MM-DD"
	KindTime                  // string "HH:MM:SS[.ffffff]"
)

var kindNames = [...]string{"other", "int", "uint", "float", "decimal", "text", "binary", "json", "enum", "set", "timestamp", "datetime", "date", "time"}

// String returns the lowercase kind name.
func (k Kind) String() string {
	if int(k) < len(kindNames) {
		return kindNames[k]
	}
	return "kind(" + strconv.Itoa(int(k)) + ")"
}

// Column describes one column of a captured table as the TABLE_MAP event
// (or information_schema, without FULL metadata) gives it.
type Column struct {
	// Name is the column name; "" when unknown.
	Name string
	// Kind tells how values are represented in a Row.
	Kind Kind
	// Type is the server's MYSQL_TYPE_* code from the TABLE_MAP event.
	Type byte
	// Nullable reports whether the column allows NULL.
	Nullable bool
}

// Table is the shape of a captured table at one point of the binlog. A
// *Table is shared by all Changes decoded with the same TABLE_MAP, so
// consumers may cache per-table work keyed by the pointer; a new pointer is
// made when the table map changes.
type Table struct {
	// Schema is the database name as the server wrote it.
	Schema string
	// Name is the table name as the server wrote it.
	Name string
	// Columns are the table's columns in ordinal order.
	Columns []Column
}

// String returns "schema.name".
func (t *Table) String() string { return t.Schema + "." + t.Name }

// ColumnIndex returns the ordinal of the column called name (compared
// case-insensitively, as MySQL does), or -1.
func (t *Table) ColumnIndex(name string) int {
	for i, c := range t.Columns {
		if strings.EqualFold(c.Name, name) {
			return i
		}
	}
	return -1
}

// Txn identifies the transaction a Change belongs to.
type Txn struct {
	// Begin is the transaction boundary before this transaction: resuming
	// from Begin re-reads the whole transaction.
	Begin Position
	// GTID is the transaction's own GTID ("uuid:7" or "0-1-56"); "" without GTIDs.
	GTID string
	// CommitTime is when the transaction committed on the source: the
	// microsecond original_commit_timestamp of MySQL 8 GTID events when
	// present, else the header time (seconds) of the event that opened the
	// transaction (GTID or BEGIN), which MariaDB writes at commit.
	CommitTime time.Time
	// CommitTimeMicros reports whether CommitTime has microsecond precision.
	CommitTimeMicros bool
}

// Change is one row image of a captured table.
type Change struct {
	// Table is the table's shape; shared between Changes, never modified.
	Table *Table
	// Op is the operation.
	Op Op
	// Row holds the after image for inserts and updates, and the before
	// image for deletes, one value per Table.Columns entry; see Kind for
	// the Go types. nil means SQL NULL.
	Row []any
	// Txn is the transaction the row belongs to.
	Txn *Txn
	// Index is the 0-based number of this row among the captured row
	// images of its transaction (all operations counted); it is what a
	// checkpoint's skip counts.
	Index int
	// ServerID is the server_id of the server that wrote the event.
	ServerID uint32
	// File and Pos are the binlog file and end position of the rows event
	// that carried this row (informational; not a resumable position).
	File string
	Pos  uint32
}
