package binlog

import (
	"fmt"
	"strings"
	"unicode/utf8"

	tidbcharset "github.com/pingcap/tidb/pkg/parser/charset"
	"golang.org/x/text/encoding"
	"golang.org/x/text/encoding/charmap"
	"golang.org/x/text/encoding/japanese"
	"golang.org/x/text/encoding/korean"
	"golang.org/x/text/encoding/simplifiedchinese"
	"golang.org/x/text/encoding/traditionalchinese"
	"golang.org/x/text/encoding/unicode"
	"golang.org/x/text/encoding/unicode/utf32"
)

// A character column's bytes are in the column's character set; Row
// carries its text in UTF-8, the text a client reading the column over a
// utf8mb4 connection gets. The server's character set tables are the
// reference: TestCharsetsMatchTheServer compares every byte of every
// single-byte character set and every two-byte code of the multi-byte ones
// with the server's own conversion.
//
// The bytes of utf8mb3, utf8mb4 and ascii columns are UTF-8 already and
// are passed on as they are. Every other character set is decoded with
// golang.org/x/text. Its tables follow the WHATWG Encoding Standard and the
// current Unicode mapping files, which the server's tables predate in a few
// places; those code points are set to the server's (the patch and remap
// fields of textCodec). What is left differs only where the server maps
// user-defined or vendor-extension codes (see knownDeviations in the
// tests): there x/text gives U+FFFD or another character.

// textCodec converts the text of one character set to UTF-8. Immutable:
// shared by every column in that character set.
type textCodec struct {
	name string
	// bytes is the rune of every byte of a single-byte character set.
	bytes *[256]rune
	// enc decodes a multi-byte character set.
	enc encoding.Encoding
	// remap replaces runes enc decodes differently from the server.
	remap map[rune]rune
	// ascii reports that bytes below 0x80 are ASCII and never part of a
	// multi-byte character unless one of 0x80 and above came first: an
	// all-ASCII value converts to itself.
	ascii bool
}

// charsetSpec is how textCodec of one character set is made.
type charsetSpec struct {
	single *charmap.Charmap
	// c1 makes the bytes 0x80..0x9F that single leaves undefined
	// (U+FFFD) the C1 controls U+0080..U+009F, as the ISO 8859 mapping
	// files and the server have them; c1All makes all of them C1 controls,
	// replacing the Windows code page's characters there.
	c1, c1All bool
	patch     map[byte]rune // single-byte codes where the server's table differs
	multi     encoding.Encoding
	remap     map[rune]rune
	ascii     bool
}

// jisRow1 are the JIS X 0208 symbols that x/text's Shift_JIS and EUC-JP
// decoders (WHATWG, Microsoft's mapping) map to fullwidth forms and MySQL's
// sjis and ujis to the JIS mapping (cp932 and eucjpms use Microsoft's).
var jisRow1 = map[rune]rune{
	'\uFF3C': '\u005C', // 0x815F: REVERSE SOLIDUS
	'\uFF5E': '\u301C', // 0x8160: WAVE DASH
	'\u2225': '\u2016', // 0x8161: DOUBLE VERTICAL LINE
	'\uFF0D': '\u2212', // 0x817C: MINUS SIGN
	'\uFFE0': '\u00A2', // 0x8191: CENT SIGN
	'\uFFE1': '\u00A3', // 0x8192: POUND SIGN
	'\uFFE2': '\u00AC', // 0x81CA: NOT SIGN
}

// charsetSpecs maps the character sets of MySQL and MariaDB that x/text can
// decode, by their server names. MySQL's latin1 is Windows-1252 with the
// C1 controls in its five undefined codes; tis620 is TIS-620 (Windows-874
// without its additions in 0x80..0x9F); gb2312 is decoded as its superset
// GBK, big5 as x/text's Big5 (which includes HKSCS), cp932 and sjis as
// x/text's Shift_JIS (Windows-31J), ujis and eucjpms as its EUC-JP; ucs2,
// utf16 and utf32 are big-endian.
var charsetSpecs = map[string]charsetSpec{
	"latin1":   {single: charmap.Windows1252, c1: true},
	"latin2":   {single: charmap.ISO8859_2, c1: true},
	"latin5":   {single: charmap.ISO8859_9, c1: true},
	"latin7":   {single: charmap.ISO8859_13, c1: true},
	"greek":    {single: charmap.ISO8859_7, c1: true, patch: map[byte]rune{0xA1: '\u02BD', 0xA2: '\u02BC'}}, // ISO 8859-7:1987
	"hebrew":   {single: charmap.ISO8859_8, c1: true, patch: map[byte]rune{0xAF: '\u203E'}},                 // ISO 8859-8:1988
	"tis620":   {single: charmap.Windows874, c1All: true},
	"cp1250":   {single: charmap.Windows1250},
	"cp1251":   {single: charmap.Windows1251},
	"cp1256":   {single: charmap.Windows1256},
	"cp1257":   {single: charmap.Windows1257},
	"cp850":    {single: charmap.CodePage850},
	"cp852":    {single: charmap.CodePage852},
	"cp866":    {single: charmap.CodePage866, patch: map[byte]rune{0xFC: '\u207F', 0xFD: '\u00B2'}},           // IBM's, not WHATWG's
	"koi8r":    {single: charmap.KOI8R},                                                                       //
	"koi8u":    {single: charmap.KOI8U, patch: map[byte]rune{0x95: '\u2022', 0xAE: '\u255D', 0xBE: '\u256C'}}, // RFC 2319
	"macroman": {single: charmap.Macintosh},                                                                   //
	"big5": {multi: traditionalchinese.Big5, ascii: true, remap: map[rune]rune{
		'\u2027': '\u2022', '\uFE51': '\uFF64', '\u00AF': '\u203E', '\uFF5E': '\u223C', '\u2295': '\u2641', '\u2299': '\u2609',
		'\u2215': '\uFF0F', '\uFE68': '\uFF3C', '\uFFE5': '\u00A5', '\uFFE0': '\u00A2', '\uFFE1': '\u00A3',
	}},
	"gb2312":  {multi: simplifiedchinese.GBK, ascii: true, remap: map[rune]rune{'\u00B7': '\u30FB', '\u2014': '\u2015'}},
	"gbk":     {multi: simplifiedchinese.GBK, ascii: true},
	"gb18030": {multi: simplifiedchinese.GB18030, ascii: true},
	"euckr":   {multi: korean.EUCKR, ascii: true},
	"sjis":    {multi: japanese.ShiftJIS, ascii: true, remap: jisRow1},
	"cp932":   {multi: japanese.ShiftJIS, ascii: true},
	"ujis":    {multi: japanese.EUCJP, ascii: true, remap: jisRow1},
	"eucjpms": {multi: japanese.EUCJP, ascii: true},
	"ucs2":    {multi: unicode.UTF16(unicode.BigEndian, unicode.IgnoreBOM)},
	"utf16":   {multi: unicode.UTF16(unicode.BigEndian, unicode.IgnoreBOM)},
	"utf16le": {multi: unicode.UTF16(unicode.LittleEndian, unicode.IgnoreBOM)},
	"utf32":   {multi: utf32.UTF32(utf32.BigEndian, utf32.IgnoreBOM)},
}

// passThrough are the character sets whose bytes are UTF-8 already.
var passThrough = map[string]bool{"utf8mb4": true, "utf8mb3": true, "utf8": true, "ascii": true}

// codecs holds the textCodec of every character set in charsetSpecs.
var codecs = func() map[string]*textCodec {
	m := make(map[string]*textCodec, len(charsetSpecs))
	for name, s := range charsetSpecs {
		c := &textCodec{name: name, enc: s.multi, remap: s.remap, ascii: s.ascii}
		if s.single != nil {
			var t [256]rune
			for b := range t {
				t[b] = s.single.DecodeByte(byte(b))
				if b >= 0x80 && b <= 0x9F && (s.c1All || s.c1 && t[b] == utf8.RuneError) {
					t[b] = rune(b)
				}
			}
			for b, r := range s.patch {
				t[b] = r
			}
			c.bytes, c.ascii = &t, true
			for b := range 0x80 {
				c.ascii = c.ascii && t[b] == rune(b)
			}
		}
		m[name] = c
	}
	return m
}()

// codecFor returns the codec of the character set called name (as the
// server names it): nil for one whose bytes are UTF-8 already; an error
// wrapping ErrUnsupported for one tailbox cannot convert (MySQL's armscii8,
// dec8, geostd8, hp8, keybcs2, macce and swe7 have no maintained Go
// decoder) or does not know.
func codecFor(name string) (*textCodec, error) {
	name = strings.ToLower(name)
	if passThrough[name] {
		return nil, nil
	}
	if c := codecs[name]; c != nil {
		return c, nil
	}
	return nil, fmt.Errorf("%w: character set %s cannot be converted to UTF-8", ErrUnsupported, name)
}

// decode returns s converted to UTF-8. Byte sequences that are not valid
// in the character set become U+FFFD.
func (c *textCodec) decode(s string) string {
	ascii := 0 // the length of s's ASCII prefix, which converts to itself
	if c.ascii {
		for ascii < len(s) && s[ascii] < utf8.RuneSelf {
			ascii++
		}
		if ascii == len(s) {
			return s
		}
	}
	if c.bytes != nil {
		b := make([]byte, ascii, len(s)+len(s)/2)
		copy(b, s[:ascii])
		for i := ascii; i < len(s); i++ {
			if r := c.bytes[s[i]]; r < utf8.RuneSelf {
				b = append(b, byte(r))
			} else {
				b = utf8.AppendRune(b, r)
			}
		}
		return bytesString(b)
	}
	// The multi-byte character sets have no shift states: decoding can
	// start after the ASCII prefix. x/text's decoders replace invalid
	// input and never fail.
	out, _ := c.enc.NewDecoder().String(s[ascii:])
	if c.remap != nil && strings.ContainsFunc(out, func(r rune) bool { _, ok := c.remap[r]; return ok }) {
		out = strings.Map(func(r rune) rune {
			if m, ok := c.remap[r]; ok {
				return m
			}
			return r
		}, out)
	}
	if ascii > 0 {
		out = s[:ascii] + out
	}
	return out
}

// MariaDB's collation ids above 255 (its own numbering, unlike MySQL's).
const (
	mariadbNoPad   = 1024 // a NO PAD collation: 1024 + the id of its PAD SPACE twin
	mariadbUCA1400 = 2048 // utf8mb3, utf8mb4, ucs2, utf16, utf32: 256 ids each
)

// mariadbUnicodeSets are the character sets of MariaDB's collation id
// blocks: 32 ids each from 576 (croatian, myanmar and thai_520_w2 UCA
// collations), 256 each from 2048 (UCA 14.0.0 collations).
var (
	mariadbBlock32   = map[uint64]string{576: "utf8mb3", 608: "utf8mb4", 640: "ucs2", 672: "utf16", 736: "utf32"}
	mariadbUCA1400Of = [...]string{"utf8mb3", "utf8mb4", "ucs2", "utf16", "utf32"}
)

// collationCharset returns the character set of collation id on a server
// of flavor f, or false when the id is unknown. Ids up to 255 are shared by
// MySQL and MariaDB (TiDB's parser has MySQL's table, which go-mysql uses
// too); MySQL's higher ids (255..323) are utf8mb4 collations; MariaDB's
// follow the scheme of mariadbNoPad and mariadbUCA1400.
// TestCollationIDsMatchTheServer checks every id the server has.
func collationCharset(f Flavor, id uint64) (string, bool) {
	if f == FlavorMariaDB && id > 255 {
		switch {
		case id >= mariadbUCA1400 && id < mariadbUCA1400+256*uint64(len(mariadbUCA1400Of)):
			return mariadbUCA1400Of[(id-mariadbUCA1400)/256], true
		case id >= mariadbNoPad && id < mariadbNoPad+256:
			id -= mariadbNoPad
		default:
			cs, ok := mariadbBlock32[id&^31]
			return cs, ok
		}
	}
	if id > 1<<16 {
		return "", false
	}
	c, err := tidbcharset.GetCollationByID(int(id))
	if err != nil {
		if f == FlavorMySQL && id >= 255 && id <= 323 {
			return "utf8mb4", true // the utf8mb4 0900 collations of MySQL 8 and 9
		}
		return "", false
	}
	if c.CharsetName == "utf8" {
		return "utf8mb3", true
	}
	return c.CharsetName, true
}
