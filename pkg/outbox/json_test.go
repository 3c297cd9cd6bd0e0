package outbox

import (
	"bytes"
	"encoding/json"
	"strings"
	"testing"
	"unicode/utf8"
)

// jsonSamples are inputs for the comparison with encoding/json: valid and
// invalid JSON, with and without whitespace, at the edges of every token.
var jsonSamples = []string{
	``, ` `, `{}`, `[]`, ` { } `, "[\n]", `{"a":1}`, `{"a": 1}`, " \r\n\t{\"a\": [1, 2]}\n ",
	`null`, `true`, `false`, ` null `, `nul`, `nulll`, `tru`, `truex`, `fals`, `falsey`, `True`, `NULL`,
	`0`, `-0`, `01`, `-01`, `1.`, `1.5`, `.5`, `-`, `+1`, `1e`, `1e5`, `1E+5`, `1e-5`, `1.5e+10`, `1e+`, `-a`,
	`123456789012345678901234567890`, `1 2`, `[1 2]`, `[1,]`, `[,1]`, `{"a":1,}`, `{,"a":1}`, `{"a"}`, `{"a":}`,
	`{"a" 1}`, `{1:2}`, `{"a":1 "b":2}`, `[1}`, `{"a":1]`, `[[[]]]`, `[[[]]`, `]`, `}`, `{"a":{"b":{"c":[]}}}`,
	`""`, `"abc"`, `"a b  c"`, `"tab	in string"`, "\"nl\nin string\"", `"\""`, `"\\"`, `"\/"`, `"\b\f\n\r\t"`,
	`"\u00e9"`, `"\u00E9\uD83D\uDE00"`, `"\u00g9"`, `"\u00e"`, `"\x"`, `"\'"`, `"unterminated`, `"\`, `"a\"`,
	"\"\xff\"", "\"\xc3\"", "\"\xc3\xa9\"", "\"\xed\xa0\x80\"", "\"\xef\xbf\xbd\"", "\"\xf4\x90\x80\x80\"",
	"\"\xe2\x80\xa8\"", "\"\x00\"", "\"\x1f\"", "\"\x7f\"", "\xef\xbb\xbf{}", "{}\xff", "{} x", "{}{}", "{} ",
	`"Zoë Müller <zoe@example.com> & \"friends\""`, `{"a":"12345678\"12345678","b":"\\\\\\\\\\\\\\\\"}`,
	`{"k":"0123456789abcdef0123456789abcdef0123456789abcdef","l":[true,false,null,-1.5e-3]}`,
	benchPayload, benchCompactPayload,
	strings.Repeat("[", maxJSONDepth) + strings.Repeat("]", maxJSONDepth),
	strings.Repeat("[", maxJSONDepth+1) + strings.Repeat("]", maxJSONDepth+1),
	strings.Repeat(`{"a":`, maxJSONDepth) + "1" + strings.Repeat("}", maxJSONDepth),
	strings.Repeat(`{"a":`, maxJSONDepth+1) + "1" + strings.Repeat("}", maxJSONDepth+1),
	strings.Repeat("[", 100) + strings.Repeat("]", 99),
}

// checkAgainstEncodingJSON fails t when appendCompactJSON or validJSON
// disagree with encoding/json on src.
func checkAgainstEncodingJSON(t *testing.T, src []byte) {
	t.Helper()
	want := utf8.Valid(src) && json.Valid(src)
	if got := validJSON(src); got != want {
		t.Fatalf("validJSON(%q) = %v, encoding/json says %v", src, got, want)
	}
	prefix := []byte(`{"payload":`)
	dst := append(make([]byte, 0, len(prefix)+len(src)), prefix...)
	got, ok := appendCompactJSON(dst, src)
	if ok != want {
		t.Fatalf("appendCompactJSON(%q) ok = %v, encoding/json says %v", src, ok, want)
	}
	if !bytes.HasPrefix(got, prefix) {
		t.Fatalf("appendCompactJSON(%q) changed dst: %q", src, got)
	}
	if !ok {
		if len(got) != len(prefix) {
			t.Fatalf("appendCompactJSON(%q) failed but returned %q", src, got)
		}
		return
	}
	var c bytes.Buffer
	if err := json.Compact(&c, src); err != nil {
		t.Fatalf("json.Compact(%q): %v", src, err)
	}
	if !bytes.Equal(got[len(prefix):], c.Bytes()) {
		t.Fatalf("appendCompactJSON(%q) = %q, json.Compact = %q", src, got[len(prefix):], c.Bytes())
	}
}

func TestCompactJSONAgreesWithEncodingJSON(t *testing.T) {
	for _, s := range jsonSamples {
		checkAgainstEncodingJSON(t, []byte(s))
		// Every prefix exercises each place where input may end early.
		if len(s) < 200 {
			for i := range len(s) {
				checkAgainstEncodingJSON(t, []byte(s[:i]))
			}
		}
	}
}

func TestCompactJSONSpecialByteAtEveryOffset(t *testing.T) {
	// The string scan reads eight bytes at a time: put each kind of byte it
	// must stop at in every position of a word, and past the last one.
	for _, special := range []string{`"`, `\"`, `\\`, `\u0041`, "\n", "\x01", "é", "\xff", "\xe2\x82", " "} {
		for pad := range 17 {
			s := `"` + strings.Repeat("a", pad) + special + strings.Repeat("b", 17-pad) + `"`
			checkAgainstEncodingJSON(t, []byte(s))
			checkAgainstEncodingJSON(t, []byte(`[`+s+` , `+s+`]`))
		}
	}
}

// FuzzCompactJSON compares appendCompactJSON and validJSON with
// encoding/json (utf8.Valid and json.Valid, then json.Compact) on
// arbitrary input. The seed corpus runs with every go test.
func FuzzCompactJSON(f *testing.F) {
	for _, s := range jsonSamples {
		if len(s) < 4096 {
			f.Add([]byte(s))
		}
	}
	f.Fuzz(func(t *testing.T, src []byte) {
		checkAgainstEncodingJSON(t, src)
	})
}
