package binlog

import (
	"errors"
	"fmt"
	"slices"
	"strings"
	"testing"

	"github.com/go-mysql-org/go-mysql/client"

	"github.com/tailbox-cdc/tailbox/internal/testenv"
)

// serverCharsets returns the server's character sets (SHOW CHARACTER SET)
// with their maximum character length.
func serverCharsets(t *testing.T, c *client.Conn) map[string]int64 {
	t.Helper()
	r, err := c.Execute("SHOW CHARACTER SET")
	if err != nil {
		t.Fatal(err)
	}
	out := map[string]int64{}
	for i := range r.RowNumber() {
		name, _ := r.GetStringByName(i, "Charset")
		maxlen, _ := r.GetIntByName(i, "Maxlen")
		out[name] = maxlen
	}
	if len(out) < 30 {
		t.Fatalf("SHOW CHARACTER SET lists %d character sets: %v", len(out), out)
	}
	return out
}

// TestCollationIDsMatchTheServer checks collationCharset against every
// collation id the server has, in every character set.
func TestCollationIDsMatchTheServer(t *testing.T) {
	c := testenv.MySQL(t).Conn(t)
	r, err := c.Execute("SELECT ID, CHARACTER_SET_NAME, FULL_COLLATION_NAME FROM information_schema.COLLATION_CHARACTER_SET_APPLICABILITY ORDER BY ID")
	if err != nil {
		t.Fatal(err)
	}
	if r.RowNumber() < 200 {
		t.Fatalf("the server lists %d collations", r.RowNumber())
	}
	for i := range r.RowNumber() {
		id, _ := r.GetUint(i, 0)
		want, _ := r.GetString(i, 1)
		name, _ := r.GetString(i, 2)
		if got, ok := collationCharset(FlavorMariaDB, id); got != want || !ok {
			t.Errorf("collation %d (%s) is in %s, collationCharset says %q, %v", id, name, want, got, ok)
		}
	}
	t.Logf("%d collation ids checked", r.RowNumber())
}

// TestEveryServerCharsetConvertsOrStops: every character set of the
// server is UTF-8 already, has a codec, or is one of the known
// unconvertible ones, which codecFor refuses with ErrUnsupported.
func TestEveryServerCharsetConvertsOrStops(t *testing.T) {
	var refused []string
	for name := range serverCharsets(t, testenv.MySQL(t).Conn(t)) {
		if name == "binary" {
			continue // binary strings are bytes, KindBinary
		}
		c, err := codecFor(name)
		switch {
		case errors.Is(err, ErrUnsupported):
			refused = append(refused, name)
		case err != nil:
			t.Errorf("codecFor(%s): %v", name, err)
		case c == nil && !passThrough[name]:
			t.Errorf("codecFor(%s) converts nothing", name)
		}
	}
	slices.Sort(refused)
	if !slices.Equal(refused, unconvertible) {
		t.Errorf("refused %v, want exactly %v", refused, unconvertible)
	}
}

// knownDeviations are the two-byte codes where the decoders of
// golang.org/x/text give another character than the server: user-defined
// areas, which the server maps to the Private Use Area (x/text: U+FFFD, or
// for ujis IBM extension kanji in F9A1..FCFE), and big5's ETEN extensions
// (kana, Cyrillic, circled numbers), which x/text's Big5 has in HKSCS's
// places.
var knownDeviations = map[string][][2]int{
	"cp932":   {{0xF040, 0xF9FC}},
	"eucjpms": {{0xF5A1, 0xFEFE}},
	"ujis":    {{0xF5A1, 0xFEFE}},
	"big5":    {{0xC6A1, 0xC7FC}},
}

// serverText returns what the server makes of each code (hex) in charset
// as utf8mb4 text: "" when it cannot convert it ('?' or U+FFFD), which
// means no client writing through a Unicode connection can have stored it.
func serverText(t *testing.T, c *client.Conn, charset string, codes []string) []string {
	t.Helper()
	cols := make([]string, len(codes))
	for i, h := range codes {
		cols[i] = fmt.Sprintf("HEX(CONVERT(CONVERT(X'%s' USING %s) USING utf8mb4))", h, charset)
	}
	r, err := c.Execute("SELECT " + strings.Join(cols, ","))
	if err != nil {
		t.Fatalf("convert %s codes %s..: %v", charset, codes[0], err)
	}
	out := make([]string, len(codes))
	for i := range codes {
		h, _ := r.GetString(0, i)
		var s string
		if _, err := fmt.Sscanf(h, "%x", &s); err != nil && h != "" {
			t.Fatalf("server hex %q: %v", h, err)
		}
		if !strings.ContainsAny(s, "?\uFFFD") || codes[i] == "3F" {
			out[i] = s
		}
	}
	return out
}

// TestCharsetsMatchTheServer compares each codec with the server's own
// conversion to utf8mb4: every byte of the single-byte character sets,
// every two-byte code (leads 0x81..0xFE, trails 0x40..0xFE) of the
// multi-byte ones outside knownDeviations, sample text for the UTF-16 and
// UTF-32 ones. Codes the server cannot convert are passed over.
func TestCharsetsMatchTheServer(t *testing.T) {
	c := testenv.MySQL(t).Conn(t)
	if _, err := c.Execute("SET NAMES utf8mb4"); err != nil {
		t.Fatal(err)
	}
	for name, maxlen := range serverCharsets(t, c) {
		codec := codecs[name]
		if codec == nil {
			continue // UTF-8, binary or unconvertible: TestEveryServerCharsetConvertsOrStops
		}
		t.Run(name, func(t *testing.T) {
			compare := func(codes []string) (n int) {
				for i, want := range serverText(t, c, name, codes) {
					if want == "" {
						continue
					}
					n++
					if got := codec.decode(unhex(t, codes[i])); got != want {
						t.Errorf("%s %s: %q (%U), the server %q (%U)", name, codes[i], got, []rune(got), want, []rune(want))
					}
				}
				return n
			}
			switch {
			case maxlen == 1:
				var codes []string
				for b := range 256 {
					codes = append(codes, fmt.Sprintf("%02X", b))
				}
				t.Logf("%d of 256 bytes compared", compare(codes))
			case codec.ascii:
				n := 0
				for lead := 0x81; lead <= 0xFE; lead++ {
					var codes []string
					for trail := 0x40; trail <= 0xFE; trail++ {
						code := lead<<8 | trail
						if !slices.ContainsFunc(knownDeviations[name], func(r [2]int) bool { return code >= r[0] && code <= r[1] }) {
							codes = append(codes, fmt.Sprintf("%04X", code))
						}
					}
					if len(codes) > 0 {
						n += compare(codes)
					}
				}
				t.Logf("%d two-byte codes compared", n)
			default:
				texts := []string{"plain ASCII", "café €", "Привет", "ภาษาไทย", "홍길동", "日本語テキスト", "中文测试", "😀𝄞", "\uFEFF\uFFFD\u0000"}
				for _, text := range texts {
					r, err := c.Execute(fmt.Sprintf("SELECT HEX(CONVERT('%s' USING %s))", text, name))
					if err != nil {
						t.Fatal(err)
					}
					h, _ := r.GetString(0, 0)
					if name == "ucs2" && strings.ContainsFunc(text, func(r rune) bool { return r > 0xFFFF }) {
						continue // outside UCS-2: the server stores '?'
					}
					if got := codec.decode(unhex(t, h)); got != text {
						t.Errorf("%s %s: %q, want %q", name, h, got, text)
					}
				}
			}
		})
	}
}
