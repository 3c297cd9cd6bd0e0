package binlog

import (
	"encoding/hex"
	"errors"
	"strings"
	"testing"
	"unsafe"

	"github.com/go-mysql-org/go-mysql/mysql"
	"github.com/go-mysql-org/go-mysql/replication"
)

func unhex(t *testing.T, s string) string {
	t.Helper()
	b, err := hex.DecodeString(s)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

// The bytes are what MariaDB 10.11 stores for the text (SELECT
// HEX(CONVERT('...' USING charset))).
func TestCodecsDecodeWhatTheServerStores(t *testing.T) {
	tests := []struct {
		name, charset, hex, want string
	}{
		{"euckr Hangul", "euckr", "C8ABB1E6B5BF", "홍길동"},
		{"sjis keeps JIS's wave dash", "sjis", "93FA967B8CEA8160", "日本語〜"},
		{"cp932 has Microsoft's fullwidth tilde and NEC's circled digits", "cp932", "93FA967B8CEA81608740", "日本語～①"},
		{"ujis keeps JIS's wave dash", "ujis", "C6FCCBDCA1C1", "日本〜"},
		{"gbk", "gbk", "D6D0CEC4B2E2CAD4", "中文测试"},
		{"gb2312 has the katakana middle dot", "gb2312", "A1A4", "・"},
		{"big5", "big5", "A4A4A4E5B4FAB8D5", "中文測試"},
		{"latin1 is Windows-1252", "latin1", "8089", "€‰"},
		{"latin1's undefined codes are C1 controls", "latin1", "818D8F909D", "\u0081\u008d\u008f\u0090\u009d"},
		{"tis620", "tis620", "C0D2C9D2", "ภาษา"},
		{"ucs2 is big-endian", "ucs2", "D64D", "홍"},
		{"utf16 with a surrogate pair", "utf16", "D64DD83DDE00", "홍😀"},
		{"utf16le", "utf16le", "4DD63DD800DE", "홍😀"},
		{"utf32 is big-endian", "utf32", "0000D64D0001F600", "홍😀"},
		{"an invalid euckr sequence becomes U+FFFD", "euckr", "41C8", "A\uFFFD"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c, err := codecFor(tt.charset)
			if err != nil || c == nil {
				t.Fatalf("codecFor(%s) = %v, %v", tt.charset, c, err)
			}
			if got := c.decode(unhex(t, tt.hex)); got != tt.want {
				t.Errorf("decode(%s) = %q, want %q", tt.hex, got, tt.want)
			}
		})
	}
}

func TestASCIIValuesAreNotCopied(t *testing.T) {
	for name, c := range codecs {
		if !c.ascii {
			continue
		}
		s := strings.Repeat("order-4711 ", 3)
		if got := c.decode(s); unsafe.StringData(got) != unsafe.StringData(s) {
			t.Errorf("%s: decode(%q) = %q, a copy", name, s, got)
		}
	}
	for _, name := range []string{"ucs2", "utf16", "utf16le", "utf32"} {
		if codecs[name].ascii {
			t.Errorf("%s is marked ASCII-compatible", name)
		}
	}
}

func TestCodecForPassesUTF8AndRefusesWhatItCannotConvert(t *testing.T) {
	for _, cs := range []string{"utf8mb4", "utf8mb3", "utf8", "ascii", "UTF8MB4"} {
		if c, err := codecFor(cs); c != nil || err != nil {
			t.Errorf("codecFor(%s) = %v, %v; want no conversion", cs, c, err)
		}
	}
	for _, cs := range append(unconvertible, "filename", "nonsense") {
		c, err := codecFor(cs)
		if c != nil || !errors.Is(err, ErrUnsupported) || !strings.Contains(err.Error(), "character set "+cs+" ") {
			t.Errorf("codecFor(%s) = %v, %v; want an ErrUnsupported naming it", cs, c, err)
		}
	}
}

// unconvertible are the character sets of MySQL and MariaDB without a
// decoder in golang.org/x/text.
var unconvertible = []string{"armscii8", "dec8", "geostd8", "hp8", "keybcs2", "macce", "swe7"}

func TestCollationCharset(t *testing.T) {
	tests := []struct {
		flavor Flavor
		id     uint64
		want   string // "" for unknown
	}{
		{FlavorMariaDB, 8, "latin1"},
		{FlavorMariaDB, 19, "euckr"},
		{FlavorMariaDB, 33, "utf8mb3"},
		{FlavorMariaDB, 45, "utf8mb4"},
		{FlavorMariaDB, 63, "binary"},
		{FlavorMariaDB, 95, "cp932"},
		{FlavorMariaDB, 576, "utf8mb3"},  // utf8mb3_croatian_ci
		{FlavorMariaDB, 610, "utf8mb4"},  // utf8mb4_thai_520_w2
		{FlavorMariaDB, 736, "utf32"},    // utf32_croatian_ci
		{FlavorMariaDB, 1032, "latin1"},  // latin1_swedish_nopad_ci
		{FlavorMariaDB, 1270, "utf8mb4"}, // utf8mb4_unicode_520_nopad_ci
		{FlavorMariaDB, 2048, "utf8mb3"}, // utf8mb3_uca1400_ai_ci
		{FlavorMariaDB, 2308, "utf8mb4"}, // utf8mb4_uca1400_ai_ci
		{FlavorMariaDB, 3271, "utf32"},
		{FlavorMariaDB, 704, ""},
		{FlavorMariaDB, 3328, ""},
		{FlavorMySQL, 8, "latin1"},
		{FlavorMySQL, 248, "gb18030"},
		{FlavorMySQL, 255, "utf8mb4"}, // utf8mb4_0900_ai_ci
		{FlavorMySQL, 323, "utf8mb4"},
		{FlavorMySQL, 324, ""},
		{FlavorMySQL, 1032, ""},
	}
	for _, tt := range tests {
		got, ok := collationCharset(tt.flavor, tt.id)
		if got != tt.want || ok != (tt.want != "") {
			t.Errorf("collationCharset(%s, %d) = %q, %v; want %q", tt.flavor, tt.id, got, ok, tt.want)
		}
	}
}

// euckrTableMap is a TABLE_MAP with FULL metadata of a table in euckr:
// id INT, state ENUM('신규','완료'), note VARCHAR(100), memo VARCHAR(20)
// CHARACTER SET keybcs2 when keybcs2.
func euckrTableMap(keybcs2 bool) *replication.TableMapEvent {
	tm := &replication.TableMapEvent{
		TableID: 7, Schema: []byte("shop"), Table: []byte("outbox"), ColumnCount: 3,
		ColumnType:            []byte{mysql.MYSQL_TYPE_LONG, mysql.MYSQL_TYPE_STRING, mysql.MYSQL_TYPE_VARCHAR},
		ColumnMeta:            []uint16{0, uint16(mysql.MYSQL_TYPE_ENUM)<<8 | 1, 200},
		NullBitmap:            []byte{0b100},
		SignednessBitmap:      []byte{0x00},
		DefaultCharset:        []uint64{19},
		EnumSetDefaultCharset: []uint64{19},
		ColumnName:            [][]byte{[]byte("id"), []byte("state"), []byte("note")},
		EnumStrValue:          [][][]byte{{[]byte("\xbd\xc5\xb1\xd4"), []byte("\xbf\xcf\xb7\xe1")}},
	}
	if keybcs2 {
		tm.ColumnCount = 4
		tm.ColumnType = append(tm.ColumnType, mysql.MYSQL_TYPE_VARCHAR)
		tm.ColumnMeta = append(tm.ColumnMeta, 20)
		tm.DefaultCharset = []uint64{19, 1, 37} // the second character column: keybcs2_general_ci
		tm.ColumnName = append(tm.ColumnName, []byte("memo"))
	}
	return tm
}

func TestNewTableConvertsEnumMembersAndText(t *testing.T) {
	tb, err := newTable(euckrTableMap(false), nil, FlavorMariaDB, nil)
	if err != nil {
		t.Fatal(err)
	}
	row, err := tb.convertRow([]any{int32(1), int64(2), []byte("\xc8\xab\xb1\xe6\xb5\xbf")})
	if err != nil {
		t.Fatal(err)
	}
	if row[1] != "완료" || row[2] != "홍길동" {
		t.Errorf("row = %q; want the member 완료 and the text 홍길동", row)
	}
}

func TestNewTableRefusesACharsetItCannotConvert(t *testing.T) {
	tm := euckrTableMap(true)
	tb, err := newTable(tm, tm.ColumnNameString(), FlavorMariaDB, nil)
	if !errors.Is(err, ErrUnsupported) {
		t.Fatalf("newTable = %v; want ErrUnsupported", err)
	}
	if want := "column memo of shop.outbox: unsupported binlog content for a captured table: character set keybcs2 cannot be converted to UTF-8"; err.Error() != want {
		t.Errorf("error = %q\nwant    %q", err, want)
	}
	if tb == nil || tb.conv[3].kind != KindText || tb.conv[2].text != codecs["euckr"] {
		t.Errorf("the table's kinds and other columns are not set: %+v", tb)
	}
	tm = euckrTableMap(false)
	tm.DefaultCharset = []uint64{4000}
	if _, err := newTable(tm, tm.ColumnNameString(), FlavorMariaDB, nil); !errors.Is(err, ErrUnsupported) || !strings.Contains(err.Error(), "column note of shop.outbox has collation id 4000") {
		t.Errorf("newTable with an unknown collation = %v", err)
	}
}

func TestNewTableTakesCharsetsFromInformationSchemaWithoutMetadata(t *testing.T) {
	tm := euckrTableMap(false)
	tm.DefaultCharset, tm.EnumSetDefaultCharset, tm.ColumnName, tm.EnumStrValue = nil, nil, nil, nil
	tm.ColumnType = append(tm.ColumnType, mysql.MYSQL_TYPE_BLOB)
	tm.ColumnMeta = append(tm.ColumnMeta, 2)
	tm.ColumnCount = 4
	tb, err := newTable(tm, []string{"id", "state", "note", "secret"}, FlavorMariaDB, []string{"", "euckr", "euckr", ""})
	if err != nil {
		t.Fatal(err)
	}
	row, err := tb.convertRow([]any{int32(1), int64(2), "\xc8\xab\xb1\xe6\xb5\xbf", []byte{0, 0xff}})
	if err != nil {
		t.Fatal(err)
	}
	if row[1] != int64(2) || row[2] != "홍길동" || string(row[3].([]byte)) != "\x00\xff" {
		t.Errorf("row = %#v; want the ENUM index, the text in UTF-8 and the BLOB's bytes", row)
	}
	if tb.pub.Columns[3].Kind != KindBinary {
		t.Errorf("the BLOB without a character set is %s, want binary", tb.pub.Columns[3].Kind)
	}
}

// BenchmarkConvertText converts one text value of an outbox row (a JSON
// payload of about 400 bytes) from its column's character set.
func BenchmarkConvertText(b *testing.B) {
	payload := func(name string) string {
		return `{"memberId":4711,"seq":42,"name":"` + name + `","note":"` + strings.Repeat("3f9a0c7be15d42", 24) + `"}`
	}
	tests := []struct {
		name, charset, value string
	}{
		{"utf8mb4", "utf8mb4", payload("홍길동")},
		{"latin1 ASCII", "latin1", payload("Zoe")},
		{"latin1 accents", "latin1", payload("Zo\xeb M\xfcller \x80")},
		{"euckr ASCII", "euckr", payload("Hong")},
		{"euckr Hangul", "euckr", payload("\xc8\xab\xb1\xe6\xb5\xbf")},
		{"sjis kanji", "sjis", payload("\x93\xfa\x96\x7b\x8c\xea\x81\x60")},
	}
	for _, tt := range tests {
		b.Run(tt.name, func(b *testing.B) {
			c, err := codecFor(tt.charset)
			if err != nil {
				b.Fatal(err)
			}
			conv := colConv{kind: KindText, text: c}
			in := []byte(tt.value)
			b.ReportAllocs()
			for b.Loop() {
				if _, err := conv.convert(in); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}
