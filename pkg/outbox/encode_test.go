package outbox

import (
	"bytes"
	"encoding/json"
	"math"
	"math/rand/v2"
	"slices"
	"strings"
	"testing"
	"time"
	"unicode/utf8"

	"github.com/tailbox-cdc/tailbox/pkg/binlog"
)

// stdQuote is encoding/json's string encoding without HTML escaping.
func stdQuote(t *testing.T, s string) string {
	t.Helper()
	var b bytes.Buffer
	enc := json.NewEncoder(&b)
	enc.SetEscapeHTML(false)
	if err := enc.Encode(s); err != nil {
		t.Fatal(err)
	}
	return string(bytes.TrimSuffix(b.Bytes(), []byte("\n")))
}

func TestAppendQuotedMatchesEncodingJSON(t *testing.T) {
	inputs := []string{
		"",
		"plain ascii",
		`quote " and backslash \`,
		"\x00\x01\x07\b\t\n\v\f\r\x1b\x1f\x7f",
		"<html> & 'apostrophe'",
		"Zoë Müller 日本語 🎉",
		"\u2028 and \u2029",
		"\xff\xfe bad lead bytes",
		"\xc3 truncated two-byte",
		"\xe2\x82 truncated three-byte",
		"\xf0\x9f\x8e truncated four-byte",
		"\xc0\xaf overlong slash",
		"\xe0\x80\xaf overlong three-byte",
		"\xed\xa0\x80 surrogate",
		"\xf4\x90\x80\x80 past U+10FFFF",
		"\x80 stray continuation",
		"tail\xc3",
	}
	// Random byte strings, biased towards the interesting bytes.
	rng := rand.New(rand.NewPCG(1, 2))
	alphabet := []byte{'a', '"', '\\', 0, 0x1f, 0x7f, 0x80, 0xbf, 0xc2, 0xc3, 0xe0, 0xe2, 0xed, 0xef, 0xf0, 0xf4, 0xf5, 0xff, 0xa8, 0xa9, 0x9f, 0x90}
	for range 2000 {
		// Up to 40 bytes, mostly plain, so that words of 8 are skipped
		// whole and stop at every offset.
		b := make([]byte, rng.IntN(40))
		for i := range b {
			if rng.IntN(4) == 0 {
				b[i] = alphabet[rng.IntN(len(alphabet))]
			} else {
				b[i] = byte(' ' + rng.IntN(95))
			}
		}
		inputs = append(inputs, string(b))
	}
	// Plain text with one byte to escape at every position, and none: the
	// plain-prefix test reads words that overlap at the end.
	for n := range 25 {
		plain := []byte(strings.Repeat("abcdefgh", 4)[:n])
		inputs = append(inputs, string(plain))
		for i := range n {
			for _, c := range []byte{'"', '\\', 0x1f, 0x80, 0xe2} {
				b := slices.Clone(plain)
				b[i] = c
				inputs = append(inputs, string(b))
			}
		}
	}
	for _, s := range inputs {
		want := stdQuote(t, s)
		if got := string(appendQuoted(nil, s)); got != want {
			t.Errorf("appendQuoted(%q) = %s, want %s", s, got, want)
		}
		if got := string(appendQuoted([]byte("x"), []byte(s))); got != "x"+want {
			t.Errorf("appendQuoted([]byte(%q)) = %s, want x%s", s, got, want)
		}
	}
}

func TestDecodeRuneMatchesUTF8(t *testing.T) {
	// Every lead byte >= 0x80 with every second byte and two fixed tails.
	for c0 := 0x80; c0 <= 0xff; c0++ {
		for c1 := 0; c1 <= 0xff; c1++ {
			for _, tail := range []string{"", "\x80", "\x80\xbf", "\xbf\x80", "a\x80", "\x80a"} {
				s := string([]byte{byte(c0), byte(c1)}) + tail
				r, n := decodeRune(s)
				wr, wn := utf8.DecodeRuneInString(s)
				if r != wr || n != wn {
					t.Fatalf("decodeRune(%q) = %U, %d; want %U, %d", s, r, n, wr, wn)
				}
			}
		}
		s := string([]byte{byte(c0)})
		if r, n := decodeRune(s); r != utf8.RuneError || n != 1 {
			t.Fatalf("decodeRune(%q) = %U, %d", s, r, n)
		}
	}
}

func TestAppendText(t *testing.T) {
	tests := []struct {
		name string
		v    any
		kind binlog.Kind
		want string
	}{
		{"a string is itself", "héllo", binlog.KindText, "héllo"},
		{"16 bytes are a UUID", []byte{0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 0xff}, binlog.KindBinary, "00010203-0405-0607-0809-0a0b0c0d0eff"},
		{"other bytes are lowercase hex", []byte{0xAB, 0x01}, binlog.KindBinary, "ab01"},
		{"empty bytes are empty", []byte{}, binlog.KindBinary, ""},
		{"a negative int is decimal", int64(-42), binlog.KindInt, "-42"},
		{"a uint is decimal", uint64(math.MaxUint64), binlog.KindUint, "18446744073709551615"},
		{"a float is shortest", 0.1, binlog.KindFloat, "0.1"},
		{"a large float uses an exponent", 1e21, binlog.KindFloat, "1e+21"},
		{"a tiny float uses an exponent", 1e-7, binlog.KindFloat, "1e-7"},
		{"a TIMESTAMP is RFC 3339 UTC", time.Date(2026, 1, 2, 3, 4, 5, 600000000, time.UTC), binlog.KindTimestamp, "2026-01-02T03:04:05.6Z"},
		{"a DATETIME is read in the zone", time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC), binlog.KindDatetime, "2026-01-02T02:04:05Z"},
		{"the zero date is 0000-00-00", time.Time{}, binlog.KindDatetime, "0000-00-00T00:00:00Z"},
		{"an unexpected type uses fmt", true, binlog.KindOther, "true"},
	}
	zone := time.FixedZone("UTC+1", 3600)
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if got := string(appendText(nil, tc.v, tc.kind, zone)); got != tc.want {
				t.Errorf("appendText(%#v) = %q, want %q", tc.v, got, tc.want)
			}
		})
	}
}

func TestAppendFloatMatchesEncodingJSON(t *testing.T) {
	for _, f := range []float64{0, -0.0, 1, -1.5, 0.1, 1e-6, 9.99e-7, 1e20, 1e21, 123456789.125, math.MaxFloat64, math.SmallestNonzeroFloat64, 3.4028234663852886e38} {
		want, err := json.Marshal(f)
		if err != nil {
			t.Fatal(err)
		}
		if got := appendFloat(nil, f); !bytes.Equal(got, want) {
			t.Errorf("appendFloat(%v) = %s, want %s", f, got, want)
		}
	}
}

func TestAppendJSONValue(t *testing.T) {
	tests := []struct {
		name string
		v    any
		want string
	}{
		{"NULL is null", nil, "null"},
		{"an int is a number", int64(-3), "-3"},
		{"a uint is a number", uint64(7), "7"},
		{"a float is a number", 2.5, "2.5"},
		{"NaN is a string", math.NaN(), `"NaN"`},
		{"a decimal is a string", "12.50", `"12.50"`},
		{"bytes are a hex string", []byte{1, 2}, `"0102"`},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got, _ := appendJSONValue(nil, nil, tc.v, binlog.KindOther, time.UTC)
			if string(got) != tc.want {
				t.Errorf("appendJSONValue(%#v) = %s, want %s", tc.v, got, tc.want)
			}
			if !json.Valid(got) {
				t.Errorf("%s is not valid JSON", got)
			}
		})
	}
}
