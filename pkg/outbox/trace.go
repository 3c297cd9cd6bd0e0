package outbox

import (
	"fmt"
	"unicode/utf8"

	"github.com/tailbox-cdc/tailbox/pkg/binlog"
)

// appendTrace appends the traceparent and tracestate of the row's trace
// columns (p.traceParent and p.traceState, or the properties text of
// p.spanContext) to b. A span is null when its header is to be left out:
// the column was NULL or empty, or the traceparent is not valid, which the
// warning then says (the tracestate goes with it, as the W3C Trace Context
// recommendation requires).
func (t *Transformer) appendTrace(b []byte, c *binlog.Change, p *plan) (out []byte, parent, state span, warning string) {
	row, cols := c.Row, c.Table.Columns
	parent, state = span{null: true}, span{null: true}
	column := t.opts.Tracing.TraceParent
	if p.traceParent >= 0 {
		b, parent = appendSpan(b, row[p.traceParent], cols[p.traceParent].Kind, t.zone)
		if p.traceState >= 0 {
			b, state = appendSpan(b, row[p.traceState], cols[p.traceState].Kind, t.zone)
		}
	} else {
		column = t.opts.Tracing.SpanContext
		v := row[p.spanContext]
		if v == nil {
			return b, parent, state, ""
		}
		t.tmp = appendText(t.tmp[:0], v, cols[p.spanContext].Kind, t.zone)
		b, parent, state = appendProperties(b, t.tmp)
	}
	parent, state = trimSpan(b, parent), trimSpan(b, state)
	if parent.empty() {
		return b, span{null: true}, span{null: true}, ""
	}
	if !validTraceparent(b[parent.start:parent.end]) {
		warning = fmt.Sprintf("trace column %q holds traceparent %q, which is not a W3C traceparent (version-traceid-parentid-flags); the traceparent and tracestate headers are left out",
			column, clip(b[parent.start:parent.end]))
		return b, span{null: true}, span{null: true}, warning
	}
	if state.empty() {
		state = span{null: true}
	}
	return b, parent, state, ""
}

// trimSpan trims spaces, tabs and line ends around the text at s in b.
func trimSpan(b []byte, s span) span {
	if s.null {
		return s
	}
	for s.start < s.end && isTraceSpace(b[s.start]) {
		s.start++
	}
	for s.end > s.start && isTraceSpace(b[s.end-1]) {
		s.end--
	}
	return s
}

func isTraceSpace(c byte) bool { return c == ' ' || c == '\t' || c == '\r' || c == '\n' }

// validTraceparent reports whether v is a W3C Trace Context traceparent:
// version (two lowercase hex digits, not ff), trace-id (32, not all zero),
// parent-id (16, not all zero) and flags (2), separated by '-'. Version 00
// has exactly these 55 characters; a later version may add fields after a
// further '-'.
func validTraceparent(v []byte) bool {
	if len(v) < 55 || v[2] != '-' || v[35] != '-' || v[52] != '-' {
		return false
	}
	hex := func(s []byte) (ok, nonZero bool) {
		for _, c := range s {
			switch {
			case '1' <= c && c <= '9', 'a' <= c && c <= 'f':
				nonZero = true
			case c != '0':
				return false, false
			}
		}
		return true, nonZero
	}
	if ok, _ := hex(v[0:2]); !ok || v[0] == 'f' && v[1] == 'f' {
		return false
	}
	if ok, nz := hex(v[3:35]); !ok || !nz {
		return false
	}
	if ok, nz := hex(v[36:52]); !ok || !nz {
		return false
	}
	if ok, _ := hex(v[53:55]); !ok {
		return false
	}
	if v[0] == '0' && v[1] == '0' {
		return len(v) == 55
	}
	return len(v) == 55 || v[55] == '-'
}

// appendProperties reads text as java.util.Properties.load does (one
// logical line per physical line: Properties.store never continues lines)
// and appends the values of its traceparent and tracestate keys to b,
// unescaped. Lines whose first non-blank character is '#' or '!' are
// comments; a key ends at the first unescaped '=', ':' or blank; the value
// starts after that separator and the blanks around it. A key given twice
// counts with its last value. Absent keys give null spans.
func appendProperties(b, text []byte) (out []byte, parent, state span) {
	parent, state = span{null: true}, span{null: true}
	var key []byte
	for len(text) > 0 {
		line := text
		end := len(text)
		for i, c := range text {
			if c == '\n' || c == '\r' {
				line, end = text[:i], i+1
				break
			}
		}
		text = text[end:]
		i := skipBlanks(line, 0)
		if i == len(line) || line[i] == '#' || line[i] == '!' {
			continue
		}
		// The key, unescaped.
		key = key[:0]
		for i < len(line) {
			c := line[i]
			if c == '=' || c == ':' || c == ' ' || c == '\t' || c == '\f' {
				break
			}
			if c == '\\' {
				key, i = appendUnescaped(key, line, i)
				continue
			}
			key = append(key, c)
			i++
		}
		i = skipBlanks(line, i)
		if i < len(line) && (line[i] == '=' || line[i] == ':') {
			i = skipBlanks(line, i+1)
		}
		var target *span
		switch string(key) {
		case traceparentHeader:
			target = &parent
		case tracestateHeader:
			target = &state
		default:
			continue
		}
		start := len(b)
		for i < len(line) {
			if line[i] == '\\' {
				b, i = appendUnescaped(b, line, i)
				continue
			}
			b = append(b, line[i])
			i++
		}
		*target = span{start: start, end: len(b)}
	}
	return b, parent, state
}

func skipBlanks(line []byte, i int) int {
	for i < len(line) && (line[i] == ' ' || line[i] == '\t' || line[i] == '\f') {
		i++
	}
	return i
}

// appendUnescaped appends the escape sequence at line[i] (a backslash) as
// Properties.load reads it: \t, \n, \r, \f, \uXXXX, and any other
// character standing for itself; a trailing backslash is dropped.
func appendUnescaped(dst, line []byte, i int) ([]byte, int) {
	if i+1 >= len(line) {
		return dst, len(line)
	}
	c := line[i+1]
	switch c {
	case 't':
		return append(dst, '\t'), i + 2
	case 'n':
		return append(dst, '\n'), i + 2
	case 'r':
		return append(dst, '\r'), i + 2
	case 'f':
		return append(dst, '\f'), i + 2
	case 'u':
		if i+6 <= len(line) {
			var r rune
			ok := true
			for _, h := range line[i+2 : i+6] {
				r <<= 4
				switch {
				case '0' <= h && h <= '9':
					r |= rune(h - '0')
				case 'a' <= h && h <= 'f':
					r |= rune(h-'a') + 10
				case 'A' <= h && h <= 'F':
					r |= rune(h-'A') + 10
				default:
					ok = false
				}
			}
			if ok {
				return utf8.AppendRune(dst, r), i + 6
			}
		}
	}
	return append(dst, c), i + 2
}
