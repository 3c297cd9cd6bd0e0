package outboxwriter

import "strings"

// Lengths of the trace context columns, as the W3C Trace Context
// recommendation sizes them: a version-00 traceparent is 55 characters; a
// tracestate of up to 512 characters must be propagated.
const (
	traceParentLen = 55
	traceStateLen  = 512
)

// traceColumns returns what goes into the traceparent and tracestate
// columns for the values a TraceContext function returned: nil (NULL) for an
// empty or invalid traceparent — with its tracestate, as the W3C
// recommendation requires and as tailbox itself would drop it — and for an
// empty tracestate or one longer than its column.
func traceColumns(parent, state string) (any, any) {
	parent, ok := validTraceParent(parent)
	if !ok {
		return nil, nil
	}
	if state == "" || len(state) > traceStateLen {
		return parent, nil
	}
	return parent, state
}

// validTraceParent checks a W3C traceparent: version-traceid-parentid-flags
// in lowercase hex, version not ff, ids not all zeros, exactly 55 characters
// for version 00. A later version may be longer; its first 55 characters are
// what a version-00 reader uses, and are returned.
func validTraceParent(s string) (string, bool) {
	if len(s) < traceParentLen {
		return "", false
	}
	if s[:2] == "00" && len(s) != traceParentLen || len(s) > traceParentLen && s[traceParentLen] != '-' {
		return "", false
	}
	s = s[:traceParentLen]
	if s[2] != '-' || s[35] != '-' || s[52] != '-' || s[:2] == "ff" {
		return "", false
	}
	version, traceID, parentID, flags := s[:2], s[3:35], s[36:52], s[53:]
	for _, part := range []string{version, traceID, parentID, flags} {
		if !lowerHex(part) {
			return "", false
		}
	}
	if strings.Trim(traceID, "0") == "" || strings.Trim(parentID, "0") == "" {
		return "", false
	}
	return s, true
}

func lowerHex(s string) bool {
	for i := 0; i < len(s); i++ {
		if c := s[i]; !('0' <= c && c <= '9' || 'a' <= c && c <= 'f') {
			return false
		}
	}
	return true
}
