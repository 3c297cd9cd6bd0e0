package outbox

import (
	"encoding/hex"
	"fmt"
	"math"
	"strconv"
	"time"
	"unicode/utf8"

	"github.com/tailbox-cdc/tailbox/pkg/binlog"
)

const hexDigits = "0123456789abcdef"

// appendQuoted appends s as a JSON string: quotes, backslashes and control
// characters are escaped (\n, \r, \t, \b, \f, else \u00XX), U+2028 and
// U+2029 are escaped for JavaScript, every byte of invalid UTF-8 becomes
// \ufffd, and all other valid UTF-8 passes through. <, > and & are not
// escaped. The output is what encoding/json writes with SetEscapeHTML(false).
func appendQuoted[S ~string | ~[]byte](dst []byte, s S) []byte {
	dst = append(dst, '"')
	i := plainPrefix(s)
	if i == len(s) { // nothing to escape, as in most keys, ids and names
		dst = append(dst, s...)
		return append(dst, '"')
	}
	start := 0
	for i < len(s) {
		if i = plainRun(s, i); i >= len(s) {
			break
		}
		c := s[i]
		if c < utf8.RuneSelf {
			if c >= 0x20 && c != '"' && c != '\\' {
				i++
				continue
			}
			dst = append(dst, s[start:i]...)
			switch c {
			case '"', '\\':
				dst = append(dst, '\\', c)
			case '\n':
				dst = append(dst, '\\', 'n')
			case '\r':
				dst = append(dst, '\\', 'r')
			case '\t':
				dst = append(dst, '\\', 't')
			case '\b':
				dst = append(dst, '\\', 'b')
			case '\f':
				dst = append(dst, '\\', 'f')
			default:
				dst = append(dst, '\\', 'u', '0', '0', hexDigits[c>>4], hexDigits[c&0xf])
			}
			i++
			start = i
			continue
		}
		r, size := decodeRune(s[i:])
		if r == utf8.RuneError && size == 1 {
			dst = append(dst, s[start:i]...)
			dst = append(dst, `\ufffd`...)
			i++
			start = i
			continue
		}
		if r == '\u2028' || r == '\u2029' {
			dst = append(dst, s[start:i]...)
			dst = append(dst, '\\', 'u', '2', '0', '2', hexDigits[r&0xf])
			i += size
			start = i
			continue
		}
		i += size
	}
	dst = append(dst, s[start:]...)
	return append(dst, '"')
}

// decodeRune decodes the UTF-8 sequence at the start of s, which starts with
// a byte >= 0x80. It returns (utf8.RuneError, 1) for an invalid sequence:
// stray continuation bytes, overlong forms, surrogates, values past U+10FFFF
// and truncated sequences, as utf8.DecodeRune does.
func decodeRune[S ~string | ~[]byte](s S) (rune, int) {
	const bad = utf8.RuneError
	n := len(s)
	c0 := s[0]
	cont := func(c byte) bool { return c&0xC0 == 0x80 }
	switch {
	case c0 < 0xC2: // continuation byte or overlong two-byte lead
		return bad, 1
	case c0 < 0xE0:
		if n < 2 || !cont(s[1]) {
			return bad, 1
		}
		return rune(c0&0x1F)<<6 | rune(s[1]&0x3F), 2
	case c0 < 0xF0:
		lo, hi := byte(0x80), byte(0xBF)
		switch c0 {
		case 0xE0:
			lo = 0xA0 // overlong
		case 0xED:
			hi = 0x9F // surrogates
		}
		if n < 3 || s[1] < lo || s[1] > hi || !cont(s[2]) {
			return bad, 1
		}
		return rune(c0&0x0F)<<12 | rune(s[1]&0x3F)<<6 | rune(s[2]&0x3F), 3
	case c0 < 0xF5:
		lo, hi := byte(0x80), byte(0xBF)
		switch c0 {
		case 0xF0:
			lo = 0x90 // overlong
		case 0xF4:
			hi = 0x8F // past U+10FFFF
		}
		if n < 4 || s[1] < lo || s[1] > hi || !cont(s[2]) || !cont(s[3]) {
			return bad, 1
		}
		return rune(c0&0x07)<<18 | rune(s[1]&0x3F)<<12 | rune(s[2]&0x3F)<<6 | rune(s[3]&0x3F), 4
	}
	return bad, 1
}

// appendText appends the text form of a non-NULL column value, as used for
// the event id, key, type, route_by value and headers: strings as they are;
// 16-byte binary values as canonical UUID text, other binary values as
// lowercase hex; integers in decimal; floats as encoding/json prints them;
// times in RFC 3339 UTC with as many fractional digits as needed (DATETIME
// wall clocks read in zone; the zero date as "0000-00-00T00:00:00Z").
func appendText(dst []byte, v any, kind binlog.Kind, zone *time.Location) []byte {
	switch x := v.(type) {
	case string:
		return append(dst, x...)
	case []byte:
		if len(x) == 16 {
			return appendUUID(dst, x)
		}
		return hex.AppendEncode(dst, x)
	case int64:
		return strconv.AppendInt(dst, x, 10)
	case uint64:
		return strconv.AppendUint(dst, x, 10)
	case float64:
		return appendFloat(dst, x)
	case time.Time:
		if x.IsZero() {
			return append(dst, "0000-00-00T00:00:00Z"...)
		}
		if kind == binlog.KindDatetime {
			x = wallClockIn(x, zone)
		}
		return x.UTC().AppendFormat(dst, time.RFC3339Nano)
	}
	return fmt.Append(dst, v)
}

// appendUUID appends the 16 bytes of b as 8-4-4-4-12 lowercase hex.
func appendUUID(dst, b []byte) []byte {
	for i, c := range b {
		if i == 4 || i == 6 || i == 8 || i == 10 {
			dst = append(dst, '-')
		}
		dst = append(dst, hexDigits[c>>4], hexDigits[c&0xf])
	}
	return dst
}

// appendFloat appends f the way encoding/json formats a float64: the
// shortest representation, in exponent form only below 1e-6 or from 1e21.
// Non-finite values are written as strconv does (NaN, +Inf, -Inf); callers
// writing JSON check math.IsInf/IsNaN first.
func appendFloat(dst []byte, f float64) []byte {
	abs := math.Abs(f)
	format := byte('f')
	if abs != 0 && (abs < 1e-6 || abs >= 1e21) {
		format = 'e'
	}
	dst = strconv.AppendFloat(dst, f, format, -1, 64)
	if format == 'e' {
		// Clean up e-09 to e-9.
		if n := len(dst); n >= 4 && dst[n-4] == 'e' && dst[n-3] == '-' && dst[n-2] == '0' {
			dst[n-2] = dst[n-1]
			dst = dst[:n-1]
		}
	}
	return dst
}

// finite reports whether f can be a JSON number.
func finite(f float64) bool { return !math.IsNaN(f) && !math.IsInf(f, 0) }

// appendJSONValue appends a column value as a JSON value: NULL as null,
// integers and finite floats as numbers, everything else as a string of its
// text form. tmp is scratch space; the grown tmp is returned for reuse.
func appendJSONValue(dst, tmp []byte, v any, kind binlog.Kind, zone *time.Location) (out, tmpOut []byte) {
	switch x := v.(type) {
	case nil:
		return append(dst, "null"...), tmp
	case int64:
		return strconv.AppendInt(dst, x, 10), tmp
	case uint64:
		return strconv.AppendUint(dst, x, 10), tmp
	case float64:
		if finite(x) {
			return appendFloat(dst, x), tmp
		}
	case string:
		return appendQuoted(dst, x), tmp
	}
	tmp = appendText(tmp[:0], v, kind, zone)
	return appendQuoted(dst, tmp), tmp
}

// appendExtensionValue appends a column value as a CloudEvents extension
// attribute value: integers within the CloudEvents Integer range (32 bits)
// as JSON numbers, everything else as a string. NULL values are not written
// at all; the caller checks.
func appendExtensionValue(dst, tmp []byte, v any, kind binlog.Kind, zone *time.Location) (out, tmpOut []byte) {
	switch x := v.(type) {
	case int64:
		if x >= math.MinInt32 && x <= math.MaxInt32 {
			return strconv.AppendInt(dst, x, 10), tmp
		}
	case uint64:
		if x <= math.MaxInt32 {
			return strconv.AppendUint(dst, x, 10), tmp
		}
	case string:
		return appendQuoted(dst, x), tmp
	}
	tmp = appendText(tmp[:0], v, kind, zone)
	return appendQuoted(dst, tmp), tmp
}

// wallClockIn reads the wall clock of t (a DATETIME value in time.UTC) as a
// time in zone.
func wallClockIn(t time.Time, zone *time.Location) time.Time {
	if zone == time.UTC {
		return t
	}
	y, mo, d := t.Date()
	h, mi, s := t.Clock()
	return time.Date(y, mo, d, h, mi, s, t.Nanosecond(), zone)
}

// Layouts of occurredAt.
const (
	layoutSeconds = "2006-01-02T15:04:05Z07:00"
	layoutMicros  = "2006-01-02T15:04:05.000000Z07:00"
)

// appendTime appends t (UTC) in RFC 3339 with exactly six fractional digits
// when micros is set, none otherwise.
func appendTime(dst []byte, t time.Time, micros bool) []byte {
	if micros {
		return t.UTC().AppendFormat(dst, layoutMicros)
	}
	return t.UTC().AppendFormat(dst, layoutSeconds)
}

// layoutSQL is the zone-less layout accepted for a text timestamp column; the
// fraction is optional.
const layoutSQL = "2006-01-02 15:04:05.999999999"

// parseTextTime parses a text timestamp column value: RFC 3339 (with any
// offset), or "2006-01-02 15:04:05[.ffffff]" read in zone.
func parseTextTime(s string, zone *time.Location) (time.Time, error) {
	if len(s) > 10 && s[10] == 'T' {
		return time.Parse(time.RFC3339Nano, s)
	}
	return time.ParseInLocation(layoutSQL, s, zone)
}
