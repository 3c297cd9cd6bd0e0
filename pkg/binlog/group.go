package binlog

import (
	"bytes"
	"fmt"
	"strings"
)

// A transaction group's captured rows are handed out only once the group's
// end is known to be a commit. The server writes a group to the binlog
// whole, at commit, but not every group it writes commits:
//   - a transaction that touched a temporary table (on MySQL also one that
//     mixed non-transactional tables with transactional ones) is written
//     anyway and ends with a ROLLBACK query event;
//   - a ROLLBACK TO <savepoint> query event inside a group discards the row
//     images after that savepoint's SAVEPOINT event;
//   - a server that crashed while writing a group leaves its head in the
//     binlog with no end at all; the next group's GTID (or the next file)
//     follows.
//
// So rows are held until the end event. Held rows are bounded by
// Config.TxnBuffer: when a group's rows outgrow it, the reader drops them and
// reads on to the group's end counting rows and savepoints only; if the group
// commits, it reconnects at the group's start and re-reads it, handing out
// each row as it is read except those a savepoint rollback discarded (whose
// row numbers the first pass recorded). Memory stays bounded whatever the
// transaction size; a group larger than the buffer is read twice.

// defaultTxnBuffer is Config.TxnBuffer's default: small against the
// connector's other memory, large enough that groups of thousands of outbox
// rows are read once.
const defaultTxnBuffer = 4 << 20

// span is a half-open range [from, to) of captured row numbers of a group.
type span struct{ from, to int }

// savepoint is a SAVEPOINT of the open group: rows numbered from onwards
// come after it.
type savepoint struct {
	name string
	from int
}

// replayPlan is a group read to its end without holding its rows that turned
// out to commit: the reader restarts at the last marker before it and hands
// its rows out as it re-reads them. The group is known by its GTID and the
// position of its first event: groups without an end may lie between that
// marker and it.
type replayPlan struct {
	gtid    string
	at      Position
	discard []span
}

// group is the state of the transaction group being read.
type group struct {
	held       []Item // changes waiting for the group's end, in row order
	heldBytes  int    // estimated memory of held
	overflow   bool   // held outgrew the buffer and was dropped
	replaying  bool   // this group is the replay: rows go out as read
	savepoints []savepoint
	discard    []span // rows rolled back to a savepoint
}

// reset forgets the group, keeping held's storage.
func (g *group) reset() {
	clear(g.held)
	g.held = g.held[:0]
	g.heldBytes, g.overflow, g.replaying = 0, false, false
	g.savepoints = g.savepoints[:0]
	g.discard = nil
}

// discarded reports whether row idx was rolled back to a savepoint.
func (g *group) discarded(idx int) bool {
	for _, s := range g.discard {
		if idx >= s.from && idx < s.to {
			return true
		}
	}
	return false
}

// setSavepoint records SAVEPOINT name before row number at. A savepoint of
// the same name set earlier is replaced, as the server does.
func (g *group) setSavepoint(name string, at int) {
	g.releaseSavepoint(name, false)
	g.savepoints = append(g.savepoints, savepoint{name: name, from: at})
}

// releaseSavepoint removes the savepoint called name, and with all the
// savepoints set after it; it reports whether one was found.
func (g *group) releaseSavepoint(name string, withLater bool) bool {
	for i := len(g.savepoints) - 1; i >= 0; i-- {
		if strings.EqualFold(g.savepoints[i].name, name) {
			if withLater {
				g.savepoints = g.savepoints[:i]
			} else {
				g.savepoints = append(g.savepoints[:i], g.savepoints[i+1:]...)
			}
			return true
		}
	}
	return false
}

// rollbackTo discards the rows numbered from the savepoint called name up to
// end (exclusive) and the savepoints set after it; the savepoint itself stays.
// It reports whether the savepoint was found.
func (g *group) rollbackTo(name string, end int) bool {
	for i := len(g.savepoints) - 1; i >= 0; i-- {
		sp := g.savepoints[i]
		if !strings.EqualFold(sp.name, name) {
			continue
		}
		g.savepoints = g.savepoints[:i+1]
		if sp.from < end {
			g.discard = append(g.discard, span{sp.from, end})
		}
		// held is in row order: cut it at the first discarded row.
		cut := len(g.held)
		for cut > 0 && g.held[cut-1].Change.Index >= sp.from {
			cut--
		}
		clear(g.held[cut:])
		g.held = g.held[:cut]
		return true
	}
	return false
}

// savepointStatement recognises the savepoint statements the server writes
// into a group: "SAVEPOINT `x`", "ROLLBACK TO `x`" (also with WORK and
// SAVEPOINT) and "RELEASE SAVEPOINT `x`". It returns the statement's verb
// ("SAVEPOINT", "ROLLBACK TO" or "RELEASE"), the savepoint's name, and
// whether q is one of them; a name that cannot be read is an error.
func savepointStatement(q []byte) (verb, name string, ok bool, err error) {
	rest, found := cutWords(q, "SAVEPOINT")
	verb = "SAVEPOINT"
	if !found {
		if rest, found = cutWords(q, "ROLLBACK"); found {
			if r, ok := cutWords(rest, "WORK"); ok {
				rest = r
			}
			if rest, found = cutWords(rest, "TO"); !found {
				return "", "", false, nil // ROLLBACK, ROLLBACK AND CHAIN, ...
			}
			if r, ok := cutWords(rest, "SAVEPOINT"); ok {
				rest = r
			}
			verb = "ROLLBACK TO"
		} else if rest, found = cutWords(q, "RELEASE"); found {
			if rest, found = cutWords(rest, "SAVEPOINT"); !found {
				return "", "", false, nil
			}
			verb = "RELEASE"
		} else {
			return "", "", false, nil
		}
	}
	name, err = identifier(rest)
	if err != nil {
		return verb, "", true, fmt.Errorf("%s statement %.100q: %w", verb, q, err)
	}
	return verb, name, true, nil
}

// cutWords returns q after the keyword word and the white space that follows
// it, when q starts with word (case-insensitively) as a whole word.
func cutWords(q []byte, word string) ([]byte, bool) {
	q = bytes.TrimLeft(q, " \t\r\n")
	if len(q) < len(word) || !strings.EqualFold(string(q[:len(word)]), word) {
		return q, false
	}
	rest := q[len(word):]
	if len(rest) > 0 && rest[0] != ' ' && rest[0] != '\t' && rest[0] != '\r' && rest[0] != '\n' && rest[0] != '`' {
		return q, false
	}
	return bytes.TrimLeft(rest, " \t\r\n"), true
}

// identifier reads the SQL identifier that is all of q (trailing white space
// and a semicolon allowed): backquoted, with “ for a backquote, double-quoted
// (ANSI_QUOTES) or bare.
func identifier(q []byte) (string, error) {
	q = bytes.TrimRight(q, " \t\r\n;")
	if len(q) == 0 {
		return "", fmt.Errorf("no savepoint name")
	}
	if q[0] == '`' || q[0] == '"' {
		quote := q[0]
		var b strings.Builder
		for i := 1; i < len(q); i++ {
			if q[i] != quote {
				b.WriteByte(q[i])
				continue
			}
			if i+1 < len(q) && q[i+1] == quote {
				b.WriteByte(quote)
				i++
				continue
			}
			if i != len(q)-1 {
				return "", fmt.Errorf("text after the savepoint name")
			}
			return b.String(), nil
		}
		return "", fmt.Errorf("unterminated quoted name")
	}
	for _, c := range q {
		if c == ' ' || c == '\t' || c == '\r' || c == '\n' || c == '`' || c == '"' || c == '\'' {
			return "", fmt.Errorf("text after the savepoint name")
		}
	}
	return string(q), nil
}
