package binlog

import (
	"errors"
	"io"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/go-mysql-org/go-mysql/mysql"
	"github.com/go-mysql-org/go-mysql/replication"
)

// fixtureEvents parses a recorded MySQL binlog as a non-blocking dump of it
// would deliver it (rows undecoded) and returns a next function that ends
// with io.EOF.
func fixtureEvents(t *testing.T, file string) func() (*replication.BinlogEvent, error) {
	t.Helper()
	var events []*replication.BinlogEvent
	p := replication.NewBinlogParser()
	p.SetFlavor(mysql.MySQLFlavor)
	p.SetVerifyChecksum(false) // four files carry the in-use FDE checksum quirk
	p.SetRowsEventDecodeFunc(func(*replication.RowsEvent, []byte) error { return nil })
	if err := p.ParseFile(filepath.Join(fixtureDir, file), 0, func(e *replication.BinlogEvent) error {
		events = append(events, e)
		return nil
	}); err != nil {
		t.Fatalf("parse %s: %v (the shared fixtures must sit beside the repository)", file, err)
	}
	i := 0
	return func() (*replication.BinlogEvent, error) {
		if i == len(events) {
			return nil, io.EOF
		}
		i++
		return events[i-1], nil
	}
}

func utc(s string) time.Time {
	t, err := time.Parse(time.RFC3339Nano, s)
	if err != nil {
		panic(err)
	}
	return t
}

const (
	enumSet    = "mysql-8.0.28-fullmeta-gtid-enum-set.binlog"
	enumSetSID = "93e95066-a2f4-11ec-9b69-9657f0ae95e2"
	zstdGTID   = "mysql-8.0.31-zstd-payload-json-rowsquery.binlog"
	zstdSID    = "76f3e7be-6720-11ed-9cad-0242ac110002"
)

// TestSeekTimeOnMySQLFixtures checks time:T resolution within a file on
// recorded MySQL 8 binlogs: the boundary before the first transaction whose
// original_commit_timestamp (µs) is at or after T, with the GTID set there.
func TestSeekTimeOnMySQLFixtures(t *testing.T) {
	tests := []struct {
		name string
		file string
		at   string
		want Position
	}{
		{"a time between two transactions starts after the earlier one", enumSet, "2022-03-13T17:41:30Z",
			Position{File: enumSet, Pos: 1560, GTID: enumSetSID + ":1-3"}},
		{"a transaction committed exactly at the time is included", enumSet, "2022-03-13T17:41:37.443211Z",
			Position{File: enumSet, Pos: 1560, GTID: enumSetSID + ":1-3"}},
		{"a transaction committed a microsecond before the time is not", enumSet, "2022-03-13T17:41:37.443212Z",
			Position{File: enumSet, Pos: 2659, GTID: enumSetSID + ":1-4"}},
		{"a time zone offset is honoured", enumSet, "2022-03-13T18:41:30+01:00",
			Position{File: enumSet, Pos: 1560, GTID: enumSetSID + ":1-3"}},
		{"a time before the first transaction starts at the file's start", enumSet, "2022-03-13T17:00:00Z",
			Position{File: enumSet, Pos: 4, GTID: ""}},
		{"a time after the last transaction gives the end of the binlog", enumSet, "2022-03-13T18:00:00Z",
			Position{File: enumSet, Pos: 3331, GTID: enumSetSID + ":1-5"}},
		{"the file's start carries its PREVIOUS_GTIDS", zstdGTID, "2022-11-20T13:00:00Z",
			Position{File: zstdGTID, Pos: 4, GTID: zstdSID + ":1-10"}},
		{"a DDL counts as a transaction", zstdGTID, "2022-11-20T13:52:38Z",
			Position{File: zstdGTID, Pos: 378, GTID: zstdSID + ":1-11"}},
		{"a compressed transaction ends at its payload event", zstdGTID, "2022-11-20T13:53:00Z",
			Position{File: zstdGTID, Pos: 651, GTID: zstdSID + ":1-12"}},
		{"the commit time decides, not when the transaction began", "mysql-9.0.1-fullmeta-json-opaque.binlog", "2024-10-01T09:30:00Z",
			Position{File: "mysql-9.0.1-fullmeta-json-opaque.binlog", Pos: 529}},
		{"anonymous transactions without GTIDs give a file position only", "mysql-8.0.22-json-partial-update.binlog", "2021-03-15T08:43:40Z",
			Position{File: "mysql-8.0.22-json-partial-update.binlog", Pos: 1545}},
		{"the end after a rotate is the next file's start", "mysql-8.0.32-zstd-payload.binlog", "2023-09-20T00:00:00Z",
			Position{File: "binlog.000043", Pos: 4, GTID: "357df524-4139-11ee-9979-b033ee13919e:1"}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got, err := seekTime(fixtureEvents(t, tc.file), newTxnScan(tc.file, true), utc(tc.at))
			if err != nil {
				t.Fatal(err)
			}
			if got != tc.want {
				t.Fatalf("at %s: got %s, want %s", tc.at, got, tc.want)
			}
		})
	}
}

// TestSeekTimeBoundariesAreMarkers checks that every position a time seek
// gives on the fixtures is a marker the stream itself emits.
func TestSeekTimeBoundariesAreMarkers(t *testing.T) {
	for _, file := range []string{enumSet, zstdGTID, "mysql-8.0.26-fullmeta-gtid-invisible-cols.binlog"} {
		t.Run(file, func(t *testing.T) {
			items, err := replay(t, file, []string{"none.none"}, true)
			if err != nil {
				t.Fatal(err)
			}
			valid := map[uint32]bool{4: true}
			for _, m := range markers(items) {
				valid[m.Pos] = true
			}
			// Every second from the file's first event to after its last.
			from, to := fileSpan(t, file)
			for at := from.Add(-time.Second); !at.After(to.Add(time.Second)); at = at.Add(time.Second) {
				got, err := seekTime(fixtureEvents(t, file), newTxnScan(file, true), at)
				if err != nil {
					t.Fatal(err)
				}
				if !valid[got.Pos] {
					t.Fatalf("at %s: %s is not a transaction boundary (markers %v)", at, got, markers(items))
				}
			}
		})
	}
}

func fileSpan(t *testing.T, file string) (from, to time.Time) {
	t.Helper()
	next := fixtureEvents(t, file)
	for {
		ev, err := next()
		if err != nil {
			return from, to
		}
		at := time.Unix(int64(ev.Header.Timestamp), 0)
		if from.IsZero() {
			from = at
		}
		if at.After(to) {
			to = at
		}
	}
}

func TestCommittedAtOrAfter(t *testing.T) {
	at := utc("2024-05-01T12:00:00.500Z")
	tests := []struct {
		name   string
		commit string
		micros bool
		want   bool
	}{
		{"microseconds before the time", "2024-05-01T12:00:00.499999Z", true, false},
		{"microseconds at the time", "2024-05-01T12:00:00.5Z", true, true},
		{"seconds in the time's second count as at or after it", "2024-05-01T12:00:00Z", false, true},
		{"seconds in the second before do not", "2024-05-01T11:59:59Z", false, false},
		{"seconds after", "2024-05-01T12:00:01Z", false, true},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if got := committedAtOrAfter(utc(tc.commit), tc.micros, at); got != tc.want {
				t.Fatalf("got %v, want %v", got, tc.want)
			}
		})
	}
}

func TestLastStartedBefore(t *testing.T) {
	starts := []time.Time{utc("2024-05-01T10:00:00Z"), utc("2024-05-01T11:00:00Z"), utc("2024-05-01T12:00:00Z"), utc("2024-05-01T13:00:00Z")}
	tests := []struct {
		name string
		at   string
		want int
	}{
		{"before the second file", "2024-05-01T10:30:00Z", 0},
		{"within the oldest file's first second", "2024-05-01T10:00:00.5Z", 0},
		{"in the middle", "2024-05-01T12:30:00Z", 2},
		{"within a file's first second the file before is chosen", "2024-05-01T12:00:00.999Z", 1},
		{"one second after a file's start", "2024-05-01T12:00:01Z", 2},
		{"after the newest file's start", "2024-05-02T00:00:00Z", 3},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			reads := 0
			got, err := lastStartedBefore(len(starts), func(i int) (time.Time, error) { reads++; return starts[i], nil }, utc(tc.at))
			if err != nil {
				t.Fatal(err)
			}
			if got != tc.want {
				t.Fatalf("got file %d, want %d", got, tc.want)
			}
			if reads > 3 {
				t.Fatalf("read %d file starts for 4 files, want a binary search", reads)
			}
		})
	}
	want := errors.New("gone")
	if _, err := lastStartedBefore(4, func(int) (time.Time, error) { return time.Time{}, want }, time.Now()); !errors.Is(err, want) {
		t.Fatalf("got %v, want the read error", err)
	}
}

// TestScanToChecksTransactionBoundaries checks FILE:POS validation and the
// derived GTID set on recorded MySQL binlogs.
func TestScanToChecksTransactionBoundaries(t *testing.T) {
	tests := []struct {
		name    string
		file    string
		pos     uint32
		wantSet string
		wantErr string
	}{
		{"the file's start has its PREVIOUS_GTIDS", zstdGTID, 4, zstdSID + ":1-10", ""},
		{"after FORMAT_DESCRIPTION is the file's start too", zstdGTID, 126, zstdSID + ":1-10", ""},
		{"after PREVIOUS_GTIDS", zstdGTID, 197, zstdSID + ":1-10", ""},
		{"after a DDL", zstdGTID, 378, zstdSID + ":1-11", ""},
		{"after a compressed transaction", zstdGTID, 651, zstdSID + ":1-12", ""},
		{"the end of the file", zstdGTID, 1283, zstdSID + ":1-13", ""},
		{"after a GTID event is inside its transaction", zstdGTID, 457, "", "inside a transaction: start at " + zstdGTID + ":378 (before it) or " + zstdGTID + ":651 (after it)"},
		{"after BEGIN is inside the transaction", enumSet, 946, "", "inside a transaction: start at " + enumSet + ":791 (before it) or " + enumSet + ":1560 (after it)"},
		{"the middle of an event", enumSet, 1000, "", "is not at an event boundary (the TableMapEvent at 946 ends at 1077)"},
		{"beyond the last event of the binlog", enumSet, 4000, "", "is beyond the last event of the binlog"},
		{"beyond a rotate", "mysql-8.0.32-zstd-payload.binlog", 500, "", "is beyond the last event of mysql-8.0.32-zstd-payload.binlog (which ends at 475)"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			s := newTxnScan(tc.file, true)
			err := scanTo(fixtureEvents(t, tc.file), s, tc.pos)
			if tc.wantErr != "" {
				var be *boundaryError
				if !errors.As(err, &be) || !strings.Contains(err.Error(), tc.wantErr) {
					t.Fatalf("got %v, want a boundary error containing %q", err, tc.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if got := s.gtidSet(); got != tc.wantSet {
				t.Fatalf("gtid set %q, want %q", got, tc.wantSet)
			}
		})
	}
}

func TestCheckMySQLGTID(t *testing.T) {
	const a, b = "3e11fa47-71ca-11e1-9e33-c80aa9429562", "4e11fa47-71ca-11e1-9e33-c80aa9429562"
	tests := []struct {
		name                  string
		set, executed, purged string
		wantErr               string
	}{
		{"contained, nothing purged", a + ":1-5", a + ":1-10", "", ""},
		{"everything executed", a + ":1-10", a + ":1-10", a + ":1-3", ""},
		{"purged part already processed", a + ":1-5", a + ":1-10," + b + ":1-3", a + ":1-5", ""},
		{"a transaction the server never executed", a + ":1-11", a + ":1-10", "", "is not contained in the server's executed set"},
		{"another server's uuid", b + ":1", a + ":1-10", "", "never executed"},
		{"purged beyond the set", a + ":1-5", a + ":1-10", a + ":1-7", "the server has purged transactions that follow gtid set " + a + ":1-5 (@@gtid_purged is " + a + ":1-7)"},
		{"purged of another uuid the set lacks", a + ":1-5", a + ":1-10," + b + ":1-3", b + ":1-2", "has purged transactions"},
		{"a MariaDB set", "0-1-5", a + ":1-10", "", "is not a MySQL GTID set"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			err := checkMySQLGTID(tc.set, tc.executed, tc.purged)
			if tc.wantErr == "" {
				if err != nil {
					t.Fatal(err)
				}
				return
			}
			if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
				t.Fatalf("got %v, want an error containing %q", err, tc.wantErr)
			}
		})
	}
}

func TestPlanMariaDBStart(t *testing.T) {
	// first is the binlog's first transaction of domain 0, "" for none.
	tests := []struct {
		name                                string
		set, binlog, current, oldest, first string
		wantOmit                            string
		wantErr                             string
	}{
		{name: "contained, nothing purged", set: "0-1-5", binlog: "0-1-10", current: "0-1-10", first: "0-1-1"},
		{name: "at the end", set: "0-1-10", binlog: "0-1-10", current: "0-1-10", oldest: "0-1-3"},
		{name: "at the oldest file's start", set: "0-1-3", binlog: "0-1-10", current: "0-1-10", oldest: "0-1-3"},
		{name: "another server id in the same domain", set: "0-2-5", binlog: "0-1-10", current: "0-1-10", oldest: "0-1-1"},
		{name: "two domains", set: "0-1-5,1-2-7", binlog: "0-1-10,1-2-9", current: "0-1-10,1-2-9", oldest: "0-1-4,1-2-7"},
		{name: "a binlog that starts right after the set", set: "0-1-10", binlog: "0-1-15", current: "0-1-15", first: "0-1-11", wantOmit: "0-1-10"},
		{name: "a binlog that starts right after the set, from another server", set: "0-1-10", binlog: "0-2-15", current: "0-2-15", first: "0-2-11", wantOmit: "0-1-10"},
		{name: "a replica at the set with an empty binlog", set: "0-1-10", current: "0-1-10", wantOmit: "0-1-10"},
		{name: "only the domain with an empty binlog is left out", set: "0-1-10,1-2-7", binlog: "1-2-9", current: "0-1-10,1-2-9", oldest: "1-2-4", wantOmit: "0-1-10"},
		{name: "a binlog that ends before the server's own slave position", set: "0-1-10", binlog: "0-1-8", current: "0-1-10", first: "0-1-1"},
		{name: "beyond the binlog", set: "0-1-11", binlog: "0-1-10", current: "0-1-10", first: "0-1-1",
			wantErr: "gtid 0-1-11 is beyond what the server has executed or applied (@@gtid_binlog_pos has 0-1-10, @@gtid_current_pos has 0-1-10)"},
		{name: "a domain the server never wrote", set: "0-1-5,7-1-1", binlog: "0-1-10", current: "0-1-10", first: "0-1-1",
			wantErr: "@@gtid_binlog_pos has nothing in domain 7, @@gtid_current_pos has nothing in domain 7"},
		{name: "after RESET MASTER", set: "0-1-50", wantErr: "another server, a replica that has not caught up, or the binary logs were reset"},
		{name: "a replica behind the set", set: "0-1-10", current: "0-1-9",
			wantErr: "gtid 0-1-10 is beyond what the server has executed or applied (@@gtid_binlog_pos has nothing in domain 0, @@gtid_current_pos has 0-1-9)"},
		{name: "a binlog that starts after the set's successor", set: "0-1-10", binlog: "0-1-15", current: "0-1-15", first: "0-1-12",
			wantErr: "the binlog has domain 0 only from 0-1-12 (in mysql-bin.000002 at 256): the transactions after 0-1-10 and before it are not on this server"},
		{name: "applied after the set but not in the binlog", set: "0-1-10", current: "0-1-12",
			wantErr: "the server applied transactions of domain 0 after gtid 0-1-10 (@@gtid_current_pos has 0-1-12), but its binlog has nothing of that domain: they are not in it"},
		{name: "applied after the set, binlogged only before it", set: "0-1-10", binlog: "0-1-8", current: "0-1-12", first: "0-1-1",
			wantErr: "but its binlog ends at 0-1-8: they are not in it (is log_slave_updates off?)"},
		{name: "purged", set: "0-1-2", binlog: "0-1-10", current: "0-1-10", oldest: "0-1-3",
			wantErr: "the transactions after 0-1-2 were purged: the oldest binlog mysql-bin.000002 starts after 0-1-3"},
		{name: "a purged domain the set lacks", set: "0-1-5", binlog: "0-1-10,1-1-4", current: "0-1-10,1-1-4", oldest: "1-1-2", first: "0-1-1",
			wantErr: "has nothing of domain 1, but the oldest binlog mysql-bin.000002 starts after 1-1-2"},
		{name: "a MySQL set", set: "3e11fa47-71ca-11e1-9e33-c80aa9429562:1-5", binlog: "0-1-10", wantErr: "is not a MariaDB GTID position"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			st := mariadbState{binlog: tc.binlog, current: tc.current, oldest: tc.oldest, oldestFile: "mysql-bin.000002"}
			first := func(d uint32) (firstGTID, bool) {
				if d != 0 || tc.first == "" {
					return firstGTID{}, false
				}
				p, err := parseMariaDBPos(tc.first)
				if err != nil {
					t.Fatal(err)
				}
				return firstGTID{gtid: p[0], file: "mysql-bin.000002", pos: 256}, true
			}
			omit, err := planMariaDBStart(tc.set, st, first)
			if tc.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
					t.Fatalf("got %v, want an error containing %q", err, tc.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			var got []string
			for _, d := range omit.domains() {
				got = append(got, omit.gtid(d))
			}
			if g := strings.Join(got, ","); g != tc.wantOmit {
				t.Fatalf("left out of the connect state: %q, want %q", g, tc.wantOmit)
			}
		})
	}
}

func TestConnectStateLeavesOutOnlyDomainsStillAtTheStart(t *testing.T) {
	tests := []struct {
		name, gset, omit, want string
	}{
		{"nothing left out", "0-1-10,1-2-7", "", "0-1-10,1-2-7"},
		{"a domain still where Start began", "0-1-10,1-2-7", "0-1-10", "1-2-7"},
		{"every domain", "0-1-10", "0-1-10", ""},
		{"a domain read past since", "0-1-12,1-2-7", "0-1-10", "0-1-12,1-2-7"},
		{"a domain continued by another server", "0-3-11,1-2-7", "0-1-10", "0-3-11,1-2-7"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			g, err := mysql.ParseGTIDSet(mysql.MariaDBFlavor, tc.gset)
			if err != nil {
				t.Fatal(err)
			}
			omit, err := parseMariaDBPos(tc.omit)
			if err != nil {
				t.Fatal(err)
			}
			r := &Reader{gset: g, omit: omit}
			if got := r.connectState().String(); got != tc.want {
				t.Fatalf("connect state %q, want %q", got, tc.want)
			}
			if r.gset.String() != tc.gset {
				t.Fatalf("the reader's own set changed to %q", r.gset.String())
			}
		})
	}
}

func TestPositionString(t *testing.T) {
	tests := []struct {
		name string
		p    Position
		want string
	}{
		{"a file position", Position{File: "b.000001", Pos: 4}, "b.000001:4"},
		{"a GTID position", Position{GTID: "0-1-5"}, "gtid:0-1-5"},
		{"both", Position{File: "b.000001", Pos: 4, GTID: "0-1-5"}, "b.000001:4 gtid:0-1-5"},
		{"the zero position", Position{}, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := tt.p.String(); got != tt.want {
				t.Errorf("String() = %q, want %q", got, tt.want)
			}
			if tt.p.IsZero() != (tt.want == "") {
				t.Errorf("IsZero() = %v", tt.p.IsZero())
			}
		})
	}
}
