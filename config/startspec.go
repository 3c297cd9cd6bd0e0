package config

import (
	"regexp"
	"strconv"
	"strings"
	"time"
)

// StartKind is the kind of a start position (start.from, run --from,
// offsets set --from).
type StartKind int

// The start position kinds.
const (
	// StartLatest is "latest": the server's current end of binlog.
	StartLatest StartKind = iota + 1
	// StartEarliest is "earliest": the oldest binlog file the server still has.
	StartEarliest
	// StartFilePos is "FILE:POS": a binlog file and a position in it.
	StartFilePos
	// StartGTID is "gtid:SET": the GTID set already processed.
	StartGTID
	// StartTime is "time:RFC3339": the first transaction committed at or after it.
	StartTime
)

// String returns the kind as written in a spec: latest, earliest, FILE:POS,
// gtid or time; "StartKind(n)" for an unknown value.
func (k StartKind) String() string {
	switch k {
	case StartLatest:
		return "latest"
	case StartEarliest:
		return "earliest"
	case StartFilePos:
		return "FILE:POS"
	case StartGTID:
		return "gtid"
	case StartTime:
		return "time"
	}
	return "StartKind(" + strconv.Itoa(int(k)) + ")"
}

// StartSpec is a parsed start position. Only the fields of its Kind are set.
type StartSpec struct {
	Kind StartKind
	// File and Pos are set for StartFilePos.
	File string
	Pos  uint32
	// GTID is the set as written, for StartGTID (MySQL or MariaDB syntax).
	GTID string
	// Time is set for StartTime, in the zone the spec gave.
	Time time.Time
}

// minBinlogPos is the first event position in a binlog file, after its 4-byte magic.
const minBinlogPos = 4

// startSpecSyntax is the reason given for a spec of no known form.
const startSpecSyntax = "must be latest, earliest, FILE:POS, gtid:SET or time:RFC3339"

var (
	// mariadbGTIDSet is domain-server-sequence, comma-separated.
	mariadbGTIDSet = regexp.MustCompile(`^\s*\d+-\d+-\d+\s*(,\s*\d+-\d+-\d+\s*)*$`)
	// mysqlGTIDSet is uuid followed by intervals and (MySQL 8.3+) tags,
	// comma-separated, as @@gtid_executed prints it (newlines after commas).
	mysqlGTIDSet = regexp.MustCompile(`^\s*` + mysqlGTID + `\s*(,\s*` + mysqlGTID + `\s*)*$`)
)

const mysqlGTID = `[0-9a-fA-F]{8}-?[0-9a-fA-F]{4}-?[0-9a-fA-F]{4}-?[0-9a-fA-F]{4}-?[0-9a-fA-F]{12}` +
	`(:(\d+(-\d+)?|[A-Za-z_][A-Za-z0-9_]{0,31}))+`

// ParseStartSpec parses a start position: latest, earliest, FILE:POS (a
// binlog file name and a position from 4 to 4294967295), gtid:SET (a MySQL or
// MariaDB GTID set, non-empty) or time:RFC3339. The words and the gtid:/time:
// prefixes are lowercase. Its error matches ErrInvalid and reads as
// "reason (got "spec")"; a caller adds the setting's name.
func ParseStartSpec(s string) (StartSpec, error) {
	spec, reason := parseStartSpec(s)
	if reason != "" {
		return StartSpec{}, Problems{{Reason: reason, Got: q(s)}}
	}
	return spec, nil
}

// ValidateStartSpec checks a start position with ParseStartSpec's rules: the
// same rules apply to start.from, run --from and offsets set --from.
func ValidateStartSpec(s string) error {
	_, err := ParseStartSpec(s)
	return err
}

// parseStartSpec returns the spec, or the reason it is invalid.
func parseStartSpec(s string) (StartSpec, string) {
	switch s {
	case "latest":
		return StartSpec{Kind: StartLatest}, ""
	case "earliest":
		return StartSpec{Kind: StartEarliest}, ""
	}
	if set, ok := strings.CutPrefix(s, "gtid:"); ok {
		switch {
		case strings.TrimSpace(set) == "":
			return StartSpec{}, "GTID set is empty"
		case !mariadbGTIDSet.MatchString(set) && !mysqlGTIDSet.MatchString(set):
			return StartSpec{}, "invalid GTID set; expected MariaDB domain-server-sequence[,...] or MySQL uuid:interval[,...]"
		}
		return StartSpec{Kind: StartGTID, GTID: set}, ""
	}
	if ts, ok := strings.CutPrefix(s, "time:"); ok {
		t, err := time.Parse(time.RFC3339, ts)
		if err != nil {
			return StartSpec{}, "time must be RFC 3339, such as time:2024-05-01T12:00:00Z"
		}
		return StartSpec{Kind: StartTime, Time: t}, ""
	}
	i := strings.LastIndexByte(s, ':')
	if i < 0 {
		return StartSpec{}, startSpecSyntax
	}
	file, posText := s[:i], s[i+1:]
	if file == "" {
		return StartSpec{}, "binlog file name is empty; expected FILE:POS"
	}
	pos, err := strconv.ParseUint(posText, 10, 32)
	if err != nil || pos < minBinlogPos {
		return StartSpec{}, "binlog position must be an integer from 4 to 4294967295; expected FILE:POS"
	}
	return StartSpec{Kind: StartFilePos, File: file, Pos: uint32(pos)}, ""
}
