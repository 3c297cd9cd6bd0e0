package outbox

import (
	"encoding/binary"
	"math/bits"
	"unicode/utf8"
)

// maxJSONDepth is the deepest nesting of arrays and objects accepted, as in
// encoding/json.
const maxJSONDepth = 10000

// appendCompactJSON appends the compact form of src to dst when src is one
// valid JSON value in valid UTF-8, and reports whether it is. It accepts
// exactly what utf8.Valid and json.Valid together accept (including
// encoding/json's nesting limit) and appends what json.Compact writes:
// src without the whitespace outside strings. Input without such
// whitespace is copied in one piece. When src is not valid, dst is
// returned at its original length.
func appendCompactJSON(dst, src []byte) ([]byte, bool) {
	n := len(dst)
	dst, ok := scanJSON(dst, src, true)
	if !ok {
		return dst[:n], false
	}
	return dst, true
}

// validJSON reports whether b is valid UTF-8 JSON (utf8.Valid and
// json.Valid).
func validJSON(b []byte) bool {
	_, ok := scanJSON(nil, b, false)
	return ok
}

// isJSONSpace reports whether c is JSON whitespace.
func isJSONSpace(c byte) bool {
	return c <= ' ' && (c == ' ' || c == '\t' || c == '\n' || c == '\r')
}

// scanJSON validates src as one JSON value in valid UTF-8 in a single pass
// and, when emit is set, appends it to dst without the whitespace outside
// strings. The bytes appended are only meaningful when it returns true.
func scanJSON(dst, src []byte, emit bool) ([]byte, bool) {
	// stack holds the open containers, innermost last: true for an object.
	var stackBuf [64]bool
	stack := stackBuf[:0]
	n := len(src)
	i := 0
	start := 0 // src[start:i] is still to be appended

	// skipSpace passes over whitespace at i, appending what precedes it.
	skipSpace := func() {
		if i < n && isJSONSpace(src[i]) {
			if emit {
				dst = append(dst, src[start:i]...)
			}
			i++
			for i < n && isJSONSpace(src[i]) {
				i++
			}
			start = i
		}
	}
	// key reads `"name"` `:` at i, with the whitespace around the colon.
	key := func() bool {
		skipSpace()
		if i >= n || src[i] != '"' {
			return false
		}
		if i = scanJSONString(src, i+1); i < 0 {
			return false
		}
		skipSpace()
		if i >= n || src[i] != ':' {
			return false
		}
		i++
		return true
	}

	for {
		// A value starts at i, after optional whitespace.
		skipSpace()
		if i >= n {
			return dst, false
		}
		switch c := src[i]; c {
		case '"':
			if i = scanJSONString(src, i+1); i < 0 {
				return dst, false
			}
		case '{', '[':
			if len(stack) == maxJSONDepth {
				return dst, false
			}
			stack = append(stack, c == '{')
			i++
			skipSpace()
			if i < n && src[i] == c+2 { // '}' or ']'
				i++
				stack = stack[:len(stack)-1]
				break
			}
			if c == '{' && !key() {
				return dst, false
			}
			continue
		case 't':
			if n-i < 4 || string(src[i:i+4]) != "true" {
				return dst, false
			}
			i += 4
		case 'f':
			if n-i < 5 || string(src[i:i+5]) != "false" {
				return dst, false
			}
			i += 5
		case 'n':
			if n-i < 4 || string(src[i:i+4]) != "null" {
				return dst, false
			}
			i += 4
		default:
			if i = scanJSONNumber(src, i); i < 0 {
				return dst, false
			}
		}

		// A value ended at i: close containers until one continues.
		for {
			skipSpace()
			if len(stack) == 0 {
				if i != n {
					return dst, false
				}
				if emit {
					dst = append(dst, src[start:]...)
				}
				return dst, true
			}
			if i >= n {
				return dst, false
			}
			obj := stack[len(stack)-1]
			c := src[i]
			if c == ',' {
				i++
				if obj && !key() {
					return dst, false
				}
				break
			}
			if obj && c == '}' || !obj && c == ']' {
				i++
				stack = stack[:len(stack)-1]
				continue
			}
			return dst, false
		}
	}
}

// Masks of the SWAR string scan: every byte 0x01, 0x80, or a character.
const (
	lsb8   = 0x0101010101010101
	msb8   = 0x8080808080808080
	quote8 = lsb8 * '"'
	bslash = lsb8 * '\\'
	space8 = lsb8 * 0x20
)

// special flags, in the top bit of each byte, the bytes of the 8-byte
// word x that are a quote, a backslash, a control character or non-ASCII.
// The lowest flag is a true hit; flags above it may be false (borrows only
// move up), so callers look at the lowest only.
func special(x uint64) uint64 {
	q, b := x^quote8, x^bslash
	return (((q - lsb8) &^ q) | ((b - lsb8) &^ b) | ((x - space8) &^ x) | x) & msb8
}

// plainRun returns i advanced over whole 8-byte words of s in which no byte
// is a quote, a backslash, a control character or non-ASCII: the bytes a
// JSON string holds as they are. The byte it stops at (if any word
// remains) is the first such byte; fewer than 8 bytes left are not looked
// at.
func plainRun[S ~string | ~[]byte](s S, i int) int {
	for len(s)-i >= 8 {
		if m := special(word8(s, i)); m != 0 {
			return i + bits.TrailingZeros64(m)>>3
		}
		i += 8
	}
	return i
}

// plainPrefix returns the length of the longest prefix of s in which no
// byte is a quote, a backslash, a control character or non-ASCII: all of s
// when such text needs no escaping. Unlike plainRun it looks at every byte,
// the last ones through a word that overlaps the one before. It has its own
// word loop because plainRun is too large to inline, and ids, keys and
// names of every event pass here.
func plainPrefix[S ~string | ~[]byte](s S) int {
	n := len(s)
	if n < 8 {
		for i := 0; i < n; i++ {
			if c := s[i]; c < 0x20 || c == '"' || c == '\\' || c >= utf8.RuneSelf {
				return i
			}
		}
		return n
	}
	i := 0
	for ; i+8 <= n; i += 8 {
		if m := special(word8(s, i)); m != 0 {
			return i + bits.TrailingZeros64(m)>>3
		}
	}
	if i < n {
		if m := special(word8(s, n-8)); m != 0 {
			return n - 8 + bits.TrailingZeros64(m)>>3
		}
	}
	return n
}

// word8 returns the 8 bytes of s at i as a little-endian word. Slicing
// first leaves one bounds check, so the compiler loads the word at once.
func word8[S ~string | ~[]byte](s S, i int) uint64 {
	s = s[i : i+8]
	return uint64(s[0]) | uint64(s[1])<<8 | uint64(s[2])<<16 | uint64(s[3])<<24 |
		uint64(s[4])<<32 | uint64(s[5])<<40 | uint64(s[6])<<48 | uint64(s[7])<<56
}

// scanJSONString checks the rest of a JSON string whose opening quote is
// just before src[i] and returns the index after its closing quote, or -1
// when it is not valid (a control character, a bad escape, invalid UTF-8 or
// no closing quote).
func scanJSONString(src []byte, i int) int {
	n := len(src)
	for {
		// Eight bytes at a time while none is a quote, a backslash, a
		// control character or non-ASCII: plainRun's loop, written out
		// because plainRun is too large to inline and every string of a
		// payload passes here.
		for n-i >= 8 {
			m := special(binary.LittleEndian.Uint64(src[i:]))
			if m == 0 {
				i += 8
				continue
			}
			i += bits.TrailingZeros64(m) >> 3
			break
		}
		if i >= n {
			return -1
		}
		c := src[i]
		switch {
		case c == '"':
			return i + 1
		case c == '\\':
			if i+1 >= n {
				return -1
			}
			switch src[i+1] {
			case '"', '\\', '/', 'b', 'f', 'n', 'r', 't':
				i += 2
			case 'u':
				if n-i < 6 || !isHex(src[i+2]) || !isHex(src[i+3]) || !isHex(src[i+4]) || !isHex(src[i+5]) {
					return -1
				}
				i += 6
			default:
				return -1
			}
		case c < 0x20:
			return -1
		case c < utf8.RuneSelf:
			i++
		default:
			r, size := utf8.DecodeRune(src[i:])
			if r == utf8.RuneError && size == 1 {
				return -1
			}
			i += size
		}
	}
}

func isHex(c byte) bool {
	return '0' <= c && c <= '9' || 'a' <= c && c <= 'f' || 'A' <= c && c <= 'F'
}

// scanJSONNumber checks the JSON number at src[i] and returns the index
// after it, or -1. What follows it is for the caller to check.
func scanJSONNumber(src []byte, i int) int {
	n := len(src)
	if src[i] == '-' {
		i++
		if i >= n {
			return -1
		}
	}
	switch c := src[i]; {
	case c == '0':
		i++
	case '1' <= c && c <= '9':
		i++
		for i < n && isDigit(src[i]) {
			i++
		}
	default:
		return -1
	}
	if i < n && src[i] == '.' {
		i++
		if i >= n || !isDigit(src[i]) {
			return -1
		}
		for i < n && isDigit(src[i]) {
			i++
		}
	}
	if i < n && (src[i] == 'e' || src[i] == 'E') {
		i++
		if i < n && (src[i] == '+' || src[i] == '-') {
			i++
		}
		if i >= n || !isDigit(src[i]) {
			return -1
		}
		for i < n && isDigit(src[i]) {
			i++
		}
	}
	return i
}

func isDigit(c byte) bool { return '0' <= c && c <= '9' }
