package config

import (
	"errors"
	"fmt"
	"slices"
	"strings"

	"github.com/tailbox-cdc/tailbox/internal/spell"
)

// Sentinel errors of the config package.
var (
	// ErrInvalid is matched (errors.Is) by every error Parse, Load and
	// Validate return — invalid YAML, an unknown key, a bad value, an unset
	// variable, an unreadable password_file, and Load's unreadable config
	// file — and by ValidateStartSpec's and ParseStartSpec's errors. Except
	// for the unreadable config file, the error is a Problems (errors.As)
	// listing each problem. The CLI exits with status 2 on it.
	ErrInvalid = errors.New("invalid configuration")
)

// Problem is one thing wrong with a configuration.
type Problem struct {
	// Path is the setting's dotted path as written in YAML, list items
	// indexed: "source.server_id", "outbox.additional[0].column". Empty for
	// a problem of the whole file (invalid YAML) or of a lone value
	// (ValidateStartSpec).
	Path string
	// Reason says what is wrong, lowercase, without the value.
	Reason string
	// Got is the offending value as shown to the user: strings quoted (%q),
	// numbers, booleans and durations bare, "a mapping" or "a list" for YAML
	// collections. Empty when there is nothing useful to show, and always for
	// secrets.
	Got string
}

// String formats p as "path: reason (got X)", leaving out "path: " when Path
// is empty and " (got X)" when Got is.
func (p Problem) String() string {
	var b strings.Builder
	if p.Path != "" {
		b.WriteString(p.Path)
		b.WriteString(": ")
	}
	b.WriteString(p.Reason)
	if p.Got != "" {
		b.WriteString(" (got ")
		b.WriteString(p.Got)
		b.WriteString(")")
	}
	return b.String()
}

// Problems is every problem found in a configuration, in the order found:
// problems of decoding in the file's order, then those of validation in the
// order of the Config fields. As an error it matches ErrInvalid. A nil or
// empty Problems is never returned as an error.
type Problems []Problem

// Error returns one problem per line, each as Problem.String formats it.
func (ps Problems) Error() string {
	lines := make([]string, len(ps))
	for i, p := range ps {
		lines[i] = p.String()
	}
	return strings.Join(lines, "\n")
}

// Is reports whether target is ErrInvalid.
func (ps Problems) Is(target error) bool { return target == ErrInvalid }

// err returns ps as an error, or nil when it is empty.
func (ps Problems) err() error {
	if len(ps) == 0 {
		return nil
	}
	return ps
}

// add records a problem; got is already formatted (see Problem.Got).
func (ps *Problems) add(path, reason, got string) {
	*ps = append(*ps, Problem{Path: path, Reason: reason, Got: got})
}

// addf records a problem with a formatted reason.
func (ps *Problems) addf(path, got, format string, args ...any) {
	ps.add(path, fmt.Sprintf(format, args...), got)
}

// q formats a string value for Problem.Got.
func q(s string) string { return fmt.Sprintf("%q", s) }

// oneOf phrases a choice: "a, b or c".
func oneOf[T ~string](allowed []T) string {
	names := make([]string, len(allowed))
	for i, a := range allowed {
		names[i] = string(a)
	}
	if len(names) == 1 {
		return names[0]
	}
	return strings.Join(names[:len(names)-1], ", ") + " or " + names[len(names)-1]
}

// under reports whether path is p or lies inside it (p.x, p[i]).
func under(path, p string) bool {
	if p == "" {
		return true
	}
	return path == p || strings.HasPrefix(path, p+".") || strings.HasPrefix(path, p+"[")
}

// Closest returns the candidate nearest to word by edit distance (optimal
// string alignment: insertions, deletions, substitutions and swaps of two
// neighbouring characters, case ignored), when it is near enough to be a
// likely misspelling — at most a third of the longer word's length apart —
// and "" otherwise. Ties go to the candidate first in sorted order. It
// phrases "did you mean" for unknown keys, and for the CLI's commands.
func Closest(word string, candidates []string) string {
	best, bestDist := "", -1
	for _, c := range slices.Sorted(slices.Values(candidates)) {
		d := spell.Distance(strings.ToLower(word), strings.ToLower(c))
		if d > max(len(word), len(c))/3 {
			continue
		}
		if bestDist < 0 || d < bestDist {
			best, bestDist = c, d
		}
	}
	return best
}
