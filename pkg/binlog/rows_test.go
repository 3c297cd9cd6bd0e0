package binlog

import (
	"context"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"net"
	"path/filepath"
	"reflect"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"
	"unsafe"

	"github.com/go-mysql-org/go-mysql/mysql"
	"github.com/go-mysql-org/go-mysql/replication"

	"github.com/tailbox-cdc/tailbox/internal/testenv"
)

// rowsCheck decodes captured rows events both ways, with rowsDecoder and
// with go-mysql's DecodeData, and compares what table.convertRow makes of
// each: the two must give the same rows.
type rowsCheck struct {
	dec rowsDecoder

	mu         sync.Mutex
	fast, slow map[string]int // rows events by table
	rows       int            // row images compared
	// MariaDB's compressed rows events, and how many rowsDecoder took.
	compressed, compressedFast int
	problems                   []string
}

func newRowsCheck() *rowsCheck {
	return &rowsCheck{fast: map[string]int{}, slow: map[string]int{}}
}

func (c *rowsCheck) fail(format string, args ...any) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if len(c.problems) < 20 {
		c.problems = append(c.problems, fmt.Sprintf(format, args...))
	}
}

// decode is a RowsEventDecodeFunc for the tables in want (nil: all): it
// leaves e as DecodeData does.
func (c *rowsCheck) decode(want map[string]bool) func(*replication.RowsEvent, []byte) error {
	return func(e *replication.RowsEvent, data []byte) error {
		pos, err := e.DecodeHeader(data)
		if err != nil {
			return err
		}
		name := string(e.Table.Schema) + "." + string(e.Table.Table)
		if want != nil && !want[name] {
			return nil
		}
		ref := *e // go-mysql's settings for this event included
		if err := ref.DecodeData(pos, data); err != nil {
			return err
		}
		body := data[pos:]
		c.mangled(e, body)
		fast := c.dec.decode(e, body)
		typ, _ := rowsEventType(e)
		compressed := typ >= replication.MARIADB_WRITE_ROWS_COMPRESSED_EVENT_V1 && typ <= replication.MARIADB_DELETE_ROWS_COMPRESSED_EVENT_V1
		c.mu.Lock()
		if fast {
			c.fast[name]++
		} else {
			c.slow[name]++
		}
		if compressed {
			c.compressed++
			if fast {
				c.compressedFast++
			}
		}
		c.mu.Unlock()
		if !fast {
			e.Rows, e.SkippedColumns = ref.Rows, ref.SkippedColumns
			return nil
		}
		tb, err := newTable(e.Table, e.Table.ColumnNameString(), c.dec.flavor, nil)
		if err != nil {
			c.fail("%s: %v", name, err)
			return nil
		}
		c.compare(name, tb, &ref, e)
		return nil
	}
}

// compare checks the rows rowsDecoder made (got) against DecodeData's.
func (c *rowsCheck) compare(name string, tb *table, ref, got *replication.RowsEvent) {
	if len(got.Rows) != len(ref.Rows) || len(got.SkippedColumns) != len(ref.SkippedColumns) {
		c.fail("%s: %d rows, %d skip lists; DecodeData %d, %d", name, len(got.Rows), len(got.SkippedColumns), len(ref.Rows), len(ref.SkippedColumns))
		return
	}
	for i := range ref.Rows {
		if len(got.SkippedColumns[i]) != 0 || len(ref.SkippedColumns[i]) != 0 {
			c.fail("%s row %d: skipped columns %v, DecodeData %v", name, i, got.SkippedColumns[i], ref.SkippedColumns[i])
		}
		want, err := tb.convertRow(ref.Rows[i])
		if err != nil {
			c.fail("%s row %d: convert DecodeData's row: %v", name, i, err)
			continue
		}
		have, err := tb.convertRow(append([]any(nil), got.Rows[i]...))
		if err != nil {
			c.fail("%s row %d: convert: %v", name, i, err)
			continue
		}
		for j := range want {
			if !reflect.DeepEqual(have[j], want[j]) {
				c.fail("%s row %d column %s: %#v (%T), DecodeData %#v (%T)", name, i, tb.pub.Columns[j].Name, have[j], have[j], want[j], want[j])
			}
		}
		// What convertRow keeps must be the decoded value itself, so that
		// the fast path saves the allocations it is for.
		for j, v := range got.Rows[i] {
			if v != nil && !sameValue(v, have[j]) && tb.conv[j].kind != KindEnum && tb.conv[j].kind != KindSet &&
				tb.conv[j].text == nil && tb.conv[j].padTo == 0 {
				c.fail("%s row %d column %s: convertRow replaced %T %#v by %T", name, i, tb.pub.Columns[j].Name, v, v, have[j])
			}
		}
		c.mu.Lock()
		c.rows++
		c.mu.Unlock()
	}
}

// sameValue reports whether a and b are one interface value: same type,
// same data word.
func sameValue(a, b any) bool {
	ea, eb := (*eface)(unsafe.Pointer(&a)), (*eface)(unsafe.Pointer(&b))
	return ea.typ == eb.typ && ea.data == eb.data
}

// mangled runs the decoder on cut and corrupted copies of body: it must
// never panic, and a cut inside a row must not decode.
func (c *rowsCheck) mangled(e *replication.RowsEvent, body []byte) {
	var d rowsDecoder
	rng := rand.New(rand.NewPCG(uint64(len(body)), 7))
	try := func(what string, b []byte) (ok bool) {
		cp := *e
		defer func() {
			if r := recover(); r != nil {
				c.fail("%s.%s: decode of a %s body panicked: %v", e.Table.Schema, e.Table.Table, what, r)
			}
		}()
		return d.decode(&cp, b)
	}
	for n := 0; n < 12 && len(body) > 1; n++ {
		cut := rng.IntN(len(body))
		try("cut", body[:cut])
		b := append([]byte(nil), body...)
		b[rng.IntN(len(b))] ^= byte(1 + rng.IntN(255))
		try("corrupted", b)
	}
	if len(body) > 0 && try("one byte short", body[:len(body)-1]) {
		// A complete prefix of rows is possible only when the last row is
		// one byte long, which no row of these tables is.
		c.fail("%s.%s: a body one byte short decoded", e.Table.Schema, e.Table.Table)
	}
}

// typesDDL is a table of every column type rowsDecoder decodes, in the
// database named by its %s verbs.
const typesDDL = `CREATE TABLE %s.types (
  id INT NOT NULL AUTO_INCREMENT PRIMARY KEY,
  ti TINYINT, tiu TINYINT UNSIGNED, si SMALLINT, siu SMALLINT UNSIGNED,
  mi MEDIUMINT, miu MEDIUMINT UNSIGNED, i INT, iu INT UNSIGNED, bi BIGINT, biu BIGINT UNSIGNED,
  c CHAR(10), c100 CHAR(100) CHARACTER SET utf8mb4, c255 CHAR(255) CHARACTER SET utf8mb4, vc VARCHAR(100), vcl VARCHAR(1000) CHARACTER SET utf8mb4,
  lat VARCHAR(20) CHARACTER SET latin1, latc CHAR(5) CHARACTER SET latin1, latt TEXT CHARACTER SET latin1,
  bin BINARY(8), vb VARBINARY(300), tt TINYTEXT, tx TEXT, mt MEDIUMTEXT, lt LONGTEXT, js JSON,
  tb TINYBLOB, bl BLOB, mb MEDIUMBLOB, lb LONGBLOB,
  e ENUM('a','b','c'), e300 ENUM(%s), s SET('x','y','z'), s20 SET(%s),
  ts TIMESTAMP NULL, ts3 TIMESTAMP(3) NULL, ts6 TIMESTAMP(6) NULL,
  dt DATETIME, dt1 DATETIME(1), dt4 DATETIME(4), dt6 DATETIME(6))`

// othersDDL has a column type rowsDecoder leaves to DecodeData.
const othersDDL = `CREATE TABLE %s.others (id INT NOT NULL PRIMARY KEY, amount DECIMAL(10,2), note VARCHAR(20))`

func members(prefix string, n int) string {
	var b strings.Builder
	for i := 0; i < n; i++ {
		if i > 0 {
			b.WriteByte(',')
		}
		fmt.Fprintf(&b, "'%s%d'", prefix, i)
	}
	return b.String()
}

// typesRow returns the VALUES tuple of a random row of the types table
// (without id); a NULL in one column of five.
func typesRow(rng *rand.Rand) string {
	null := func() bool { return rng.IntN(5) == 0 }
	var vals []string
	add := func(v string) {
		if null() {
			v = "NULL"
		}
		vals = append(vals, v)
	}
	signed := func(bits int) string {
		switch rng.IntN(4) {
		case 0:
			return strconv.FormatInt(-1<<(bits-1), 10)
		case 1:
			return strconv.FormatInt(1<<(bits-1)-1, 10)
		}
		return strconv.FormatInt(int64(rng.Uint64())>>(64-bits), 10)
	}
	unsigned := func(bits int) string {
		if rng.IntN(3) == 0 {
			return strconv.FormatUint(1<<bits-1, 10)
		}
		return strconv.FormatUint(rng.Uint64()>>(64-bits), 10)
	}
	text := func(n int, alphabet []string) string {
		var b strings.Builder
		b.WriteByte('\'')
		for i := rng.IntN(n + 1); i > 0; i-- {
			b.WriteString(alphabet[rng.IntN(len(alphabet))])
		}
		b.WriteByte('\'')
		return b.String()
	}
	ascii := []string{"a", "b", "z", "0", " ", "-", "\\\\", "\\'", "\"", "\\n"}
	utf8 := append([]string{"é", "ß", "€", "漢", "😀"}, ascii...)
	latin1 := append([]string{"é", "ß", "ÿ", "€"}, ascii...) // € is 0x80 in MariaDB's latin1
	hexBytes := func(n int) string {
		b := make([]byte, rng.IntN(n+1))
		for i := range b {
			b[i] = byte(rng.Uint32())
		}
		return fmt.Sprintf("X'%x'", b)
	}
	withFraction := func(t time.Time, dec int) string {
		s := t.Format("2006-01-02 15:04:05")
		if dec > 0 {
			s += fmt.Sprintf(".%0*d", dec, rng.IntN(int(pow10(dec))))
		}
		return "'" + s + "'"
	}
	ts := func(dec int) string { return withFraction(time.Unix(1+rng.Int64N(2147483646), 0).UTC(), dec) }
	dt := func(dec int) string {
		return withFraction(time.Date(1970+rng.IntN(8000), time.January, 1, 0, 0, 0, 0, time.UTC).Add(time.Duration(rng.Int64N(365*24*3600))*time.Second), dec)
	}
	for _, bits := range []int{8, 16, 24, 32, 64} {
		add(signed(bits))
		add(unsigned(bits))
	}
	add(text(10, ascii))
	add(text(100, utf8))
	add(text(255, utf8))
	add(text(100, utf8))
	add(text(1000, utf8))
	add(text(20, latin1))
	add(text(5, latin1))
	add(text(300, latin1))
	add(hexBytes(8))
	add(hexBytes(300))
	add(text(60, utf8))
	add(text(400, utf8))
	add(text(3000, utf8))
	add(text(70000, ascii))
	add(fmt.Sprintf(`'{"n":%d,"s":"%s"}'`, rng.IntN(1000), strings.Repeat("x", rng.IntN(300))))
	add(hexBytes(255))
	add(hexBytes(2000))
	add(hexBytes(70000))
	add(hexBytes(300))
	add([]string{"'a'", "'b'", "'c'"}[rng.IntN(3)])
	add(fmt.Sprintf("'m%d'", rng.IntN(300)))
	add([]string{"''", "'x'", "'y,z'", "'x,y,z'"}[rng.IntN(4)])
	add(fmt.Sprintf("'s%d,s%d'", rng.IntN(20), rng.IntN(20)))
	add(ts(0))
	add(ts(3))
	add(ts(6))
	add(dt(0))
	add(dt(1))
	add(dt(4))
	add(dt(6))
	return "(" + strings.Join(vals, ",") + ")"
}

func pow10(n int) int64 {
	p := int64(1)
	for ; n > 0; n-- {
		p *= 10
	}
	return p
}

const typesColumns = "ti,tiu,si,siu,mi,miu,i,iu,bi,biu,c,c100,c255,vc,vcl,lat,latc,latt,bin,vb,tt,tx,mt,lt,js,tb,bl,mb,lb,e,e300,s,s20,ts,ts3,ts6,dt,dt1,dt4,dt6"

// TestRowsDecoderMatchesGoMySQL compares the two decoders on every column
// type rowsDecoder handles (checkTypes): every row must convert to the
// same values, and every cut or corrupted body must fail cleanly.
func TestRowsDecoderMatchesGoMySQL(t *testing.T) {
	db := testenv.MySQL(t)
	check, dbn, written := checkTypes(t, db)
	types, others := dbn+".types", dbn+".others"
	if check.fast[types] < 40 {
		t.Errorf("%d rows events of the types table decoded by rowsDecoder, want at least the 40 inserts", check.fast[types])
	}
	if check.slow[types] < 5 {
		t.Errorf("%d rows events of the types table left to DecodeData, want the 5 of zero or early dates", check.slow[types])
	}
	if check.fast[others] != 0 || check.slow[others] == 0 {
		t.Errorf("the DECIMAL table: %d events decoded here, %d by DecodeData; want 0 and some", check.fast[others], check.slow[others])
	}
	if check.rows < written {
		t.Errorf("%d row images compared, want at least the %d inserted", check.rows, written)
	}
}

// TestRowsDecoderLeavesCompressedEventsToGoMySQL runs the same rows on a
// MariaDB that compresses rows events (log_bin_compress): those must go to
// DecodeData, which decompresses them, and the rest still match.
func TestRowsDecoderLeavesCompressedEventsToGoMySQL(t *testing.T) {
	db := testenv.StartMariaDB(t, "log_bin_compress=ON")
	check, _, _ := checkTypes(t, db)
	if check.compressed < 30 || check.compressedFast != 0 {
		t.Errorf("%d compressed rows events, %d of them decoded by rowsDecoder; want at least 30 and none", check.compressed, check.compressedFast)
	}
}

// checkTypes writes rows of every column type the fast decoder handles to
// db, inserted, updated and deleted, with NULLs, extremes and multi-byte
// text, and rows it leaves to DecodeData (zero and pre-1970 dates, a
// DECIMAL table), then reads them from the binlog with both decoders and
// fails t where they differ. It returns the check, the database and the
// rows inserted.
func checkTypes(t *testing.T, db *testenv.MySQLServer) (check *rowsCheck, dbn string, written int) {
	t.Helper()
	dbn = db.CreateDatabase(t, "rowsdec")
	db.Exec(t, fmt.Sprintf(typesDDL, dbn, members("m", 300), members("s", 20)))
	db.Exec(t, fmt.Sprintf(othersDDL, dbn))
	from := db.Exec(t, "SHOW MASTER STATUS")
	file, _ := from.GetString(0, 0)
	pos, _ := from.GetInt(0, 1)

	rng := rand.New(rand.NewPCG(1, 2))
	c := db.Conn(t)
	exec := func(q string) {
		t.Helper()
		if _, err := c.Execute(q); err != nil {
			t.Fatalf("%.200s: %v", q, err)
		}
	}
	exec("SET SESSION sql_mode = ''") // zero dates below
	insert := "INSERT INTO " + dbn + ".types (" + typesColumns + ") VALUES "
	for i := 0; i < 40; i++ {
		var rows []string
		for j := rng.IntN(8); j >= 0; j-- {
			rows = append(rows, typesRow(rng))
		}
		exec(insert + strings.Join(rows, ","))
		written += len(rows)
	}
	exec("UPDATE " + dbn + ".types SET vc = CONCAT(IFNULL(vc, ''), 'ü'), bi = -1, ts6 = '2038-01-19 03:14:07.999999' WHERE id % 3 = 0")
	exec("DELETE FROM " + dbn + ".types WHERE id % 5 = 0")
	// DecodeData's: zero, partly zero and pre-1970 times.
	for _, v := range []string{"dt = '0000-00-00 00:00:00'", "dt6 = '2024-00-10 01:02:03.5'", "dt = '1969-12-31 23:59:59'", "ts = '0000-00-00 00:00:00'", "dt1 = '1000-01-01 00:00:00.1'"} {
		exec("INSERT INTO " + dbn + ".types SET " + v)
	}
	exec("INSERT INTO " + dbn + ".others VALUES (1, 12.34, 'a'), (2, NULL, NULL)")
	exec("FLUSH BINARY LOGS")

	check = newRowsCheck()
	check.dec.flavor = FlavorMariaDB
	host, port, _ := net.SplitHostPort(db.Addr)
	p, _ := strconv.Atoi(port)
	s := replication.NewBinlogSyncer(replication.BinlogSyncerConfig{
		ServerID: 4242, Flavor: mysql.MariaDBFlavor, Host: host, Port: uint16(p), User: db.User, Password: db.Password,
		ParseTime: true, TimestampStringLocation: time.UTC, RenderJSONAsMySQLText: true, VerifyChecksum: true,
		DisableRetrySync: true, Logger: slog.New(slog.DiscardHandler),
		RowsEventDecodeFunc: check.decode(map[string]bool{dbn + ".types": true, dbn + ".others": true}),
	})
	defer s.Close()
	st, err := s.StartSync(mysql.Position{Name: file, Pos: uint32(pos)})
	if err != nil {
		t.Fatalf("start sync: %v", err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	for {
		ev, err := st.GetEvent(ctx)
		if err != nil {
			t.Fatalf("read binlog: %v", err)
		}
		if _, ok := ev.Event.(*replication.RotateEvent); ok && ev.Header.Timestamp != 0 {
			break // the rotation of FLUSH BINARY LOGS
		}
	}
	for _, p := range check.problems {
		t.Error(p)
	}
	t.Logf("%d row images compared; rows events decoded here %v, by DecodeData %v; %d compressed", check.rows, check.fast, check.slow, check.compressed)
	return check, dbn, written
}

// recordedRows lists the recorded binlogs the decoders are compared on:
// the MySQL 8 fixtures (JSON, BIT and partial updates go to DecodeData;
// their other tables are decoded here) and testdata's MariaDB outbox
// transaction (see testdata/README.md).
var recordedRows = []struct{ path, flavor string }{
	{filepath.Join(fixtureDir, "mysql-8.0.26-fullmeta-gtid-bit.binlog"), mysql.MySQLFlavor},
	{filepath.Join(fixtureDir, "mysql-8.0.26-fullmeta-gtid-invisible-cols.binlog"), mysql.MySQLFlavor},
	{filepath.Join(fixtureDir, "mysql-8.0.28-fullmeta-gtid-enum-set.binlog"), mysql.MySQLFlavor},
	{filepath.Join(fixtureDir, "mysql-8.0.22-json-partial-update.binlog"), mysql.MySQLFlavor},
	{filepath.Join(fixtureDir, "mysql-8.0.32-zstd-payload.binlog"), mysql.MySQLFlavor},
	{filepath.Join(fixtureDir, "mysql-8.0.31-zstd-payload-json-rowsquery.binlog"), mysql.MySQLFlavor},
	{filepath.Join(fixtureDir, "mysql-9.0.1-fullmeta-json-opaque.binlog"), mysql.MySQLFlavor},
	{outboxBinlog, mysql.MariaDBFlavor},
}

// outboxBinlog holds one MariaDB transaction of 100 outbox rows, the
// shape and size of make bench's backlog.
const outboxBinlog = "testdata/mariadb-10.11-outbox-100rows.binlog"

// parseRecorded parses a recorded binlog file with tailbox's parser
// settings and decode as the rows decoder.
func parseRecorded(t testing.TB, path, flavor string, decode func(*replication.RowsEvent, []byte) error) {
	t.Helper()
	p := replication.NewBinlogParser()
	p.SetFlavor(flavor)
	p.SetParseTime(true)
	p.SetTimestampStringLocation(time.UTC)
	p.SetRenderJSONAsMySQLText(true)
	p.SetVerifyChecksum(false) // four MySQL files carry the in-use FDE checksum quirk
	p.SetRowsEventDecodeFunc(decode)
	if err := p.ParseFile(path, 0, func(*replication.BinlogEvent) error { return nil }); err != nil {
		t.Fatalf("parse %s: %v", path, err)
	}
}

func TestRowsDecoderMatchesGoMySQLOnRecordedBinlogs(t *testing.T) {
	for _, f := range recordedRows {
		t.Run(filepath.Base(f.path), func(t *testing.T) {
			check := newRowsCheck()
			parseRecorded(t, f.path, f.flavor, check.decode(nil))
			for _, p := range check.problems {
				t.Error(p)
			}
			t.Logf("%d row images compared; rows events decoded here %v, by DecodeData %v", check.rows, check.fast, check.slow)
			if f.path == outboxBinlog && (check.rows != 100 || len(check.slow) != 0) {
				t.Errorf("the outbox transaction: %d rows compared, DecodeData decoded %v; want 100 and none", check.rows, check.slow)
			}
		})
	}
}

// BenchmarkDecodeRows decodes the rows events of the recorded outbox
// transaction and converts each row, as the reader does: with go-mysql's
// DecodeData, and with rowsDecoder.
func BenchmarkDecodeRows(b *testing.B) {
	type event struct {
		e    replication.RowsEvent
		data []byte
		pos  int
	}
	var evs []event
	parseRecorded(b, outboxBinlog, mysql.MariaDBFlavor, func(e *replication.RowsEvent, data []byte) error {
		pos, err := e.DecodeHeader(data)
		evs = append(evs, event{*e, data, pos})
		return err
	})
	tb, err := newTable(evs[0].e.Table, evs[0].e.Table.ColumnNameString(), FlavorMariaDB, nil)
	if err != nil {
		b.Fatal(err)
	}
	rows := 0
	run := func(b *testing.B, decode func(e *replication.RowsEvent, ev *event) error) {
		b.ReportAllocs()
		for b.Loop() {
			n := 0
			for i := range evs {
				e := evs[i].e
				if err := decode(&e, &evs[i]); err != nil {
					b.Fatal(err)
				}
				for _, r := range e.Rows {
					if _, err := tb.convertRow(r); err != nil {
						b.Fatal(err)
					}
				}
				n += len(e.Rows)
			}
			rows = n
		}
		b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N*rows), "ns/row")
	}
	b.Run("go-mysql", func(b *testing.B) {
		run(b, func(e *replication.RowsEvent, ev *event) error { return e.DecodeData(ev.pos, ev.data) })
	})
	b.Run("rowsDecoder", func(b *testing.B) {
		var d rowsDecoder
		run(b, func(e *replication.RowsEvent, ev *event) error {
			if !d.decode(e, ev.data[ev.pos:]) {
				return fmt.Errorf("not decoded")
			}
			return nil
		})
	})
}

func TestRowsEventTypeIsReadable(t *testing.T) {
	if rowsEventTypeOffset == ^uintptr(0) {
		t.Fatal("go-mysql's RowsEvent has no eventType field of type EventType: rowsDecoder is off, find the event type another way")
	}
	var types []replication.EventType
	parseRecorded(t, outboxBinlog, mysql.MariaDBFlavor, func(e *replication.RowsEvent, data []byte) error {
		typ, ok := rowsEventType(e)
		if !ok {
			t.Fatal("rowsEventType is off")
		}
		types = append(types, typ)
		return nil
	})
	if len(types) != 6 || types[0] != replication.WRITE_ROWS_EVENTv1 {
		t.Errorf("event types of the recorded outbox transaction = %v, want 6 WRITE_ROWS_EVENTv1", types)
	}
}

func TestFullBitmap(t *testing.T) {
	tests := []struct {
		b    []byte
		n    int
		want bool
	}{
		{[]byte{0xff}, 8, true},
		{[]byte{0x7f}, 7, true},
		{[]byte{0x7f}, 8, false},
		{[]byte{0xff, 0x01}, 9, true},
		{[]byte{0xff, 0x02}, 9, false},
		{[]byte{0xff}, 9, false}, // too short
		{[]byte{0xfd, 0xff}, 16, false},
		{[]byte{0x07, 0xf0}, 3, true}, // bits past n are not looked at
	}
	for _, tt := range tests {
		if got := fullBitmap(tt.b, tt.n); got != tt.want {
			t.Errorf("fullBitmap(%08b, %d) = %v, want %v", tt.b, tt.n, got, tt.want)
		}
	}
}

// TestBoxesHoldTheirValues checks the interfaces boxes makes: each holds
// its own value, of its own type, through garbage collections, as a
// conversion to any would.
func TestBoxesHoldTheirValues(t *testing.T) {
	var bx boxes
	now := time.Date(2026, 11, 25, 1, 2, 3, 4000, time.UTC)
	var got, want []any
	for i := 0; i < 5000; i++ {
		s := strconv.Itoa(i)
		vals := []any{int64(-i), uint64(i) << 40, s, []byte(s), now.Add(time.Duration(i) * time.Second)}
		got = append(got, bx.int(vals[0].(int64)), bx.uint(vals[1].(uint64)), bx.string(vals[2].(string)),
			bx.bytes(vals[3].([]byte)), bx.time(vals[4].(time.Time)))
		want = append(want, vals...)
		if i%1000 == 0 {
			runtime.GC()
		}
	}
	bx = boxes{}
	runtime.GC()
	for i := range want {
		if reflect.TypeOf(got[i]) != reflect.TypeOf(want[i]) || !reflect.DeepEqual(got[i], want[i]) {
			t.Fatalf("value %d = %#v (%T), want %#v (%T)", i, got[i], got[i], want[i], want[i])
		}
	}
	if got[2] != any("0") || got[0] != any(int64(0)) {
		t.Errorf("== against converted values: %v %v", got[2] == any("0"), got[0] == any(int64(0)))
	}
	if s, ok := got[7].(string); !ok || s != "1" {
		t.Errorf("type assertion = %q, %v", s, ok)
	}
}

func TestRowsPlanFollowsTheTableMap(t *testing.T) {
	var d rowsDecoder
	p1 := d.plan(7, outboxTableMap())
	if p1.cols == nil || p1.cols[0].op != opInt || p1.cols[1].op != opEnum || p1.cols[2].op != opString || p1.cols[2].size != 2 {
		t.Fatalf("plan of INT, ENUM, VARCHAR(100) utf8mb4 = %+v", p1.cols)
	}
	if p2 := d.plan(7, outboxTableMap()); p2 != p1 {
		t.Error("a new TABLE_MAP of the same shape made a new plan")
	}
	tm := outboxTableMap()
	tm.SignednessBitmap = []byte{0x80}
	if p3 := d.plan(7, tm); p3 == p1 || p3.cols[0].op != opUint {
		t.Errorf("after the id column became UNSIGNED: same plan %v, id op %d", p3 == p1, p3.cols[0].op)
	}
	tm = outboxTableMap()
	tm.ColumnType[0] = mysql.MYSQL_TYPE_NEWDECIMAL
	if p4 := d.plan(7, tm); p4.cols != nil {
		t.Errorf("a DECIMAL column: plan %+v, want none (DecodeData)", p4.cols)
	}
	for id := uint64(100); id < 100+2*maxPlans; id++ {
		d.plan(id, outboxTableMap())
	}
	if len(d.plans) > maxPlans {
		t.Errorf("%d plans kept, want at most %d", len(d.plans), maxPlans)
	}
}
