package binlog

import (
	"errors"
	"strings"
	"testing"

	"github.com/go-mysql-org/go-mysql/mysql"
)

// serverChange is what a (re)connect decides when it finds a server at the
// source address; the MySQL cases (gtid_mode OFF and ON) have no server in
// the test environment.
func TestServerChange(t *testing.T) {
	const addr = "db.example:3306"
	mysqlA := Server{Flavor: FlavorMySQL, ServerID: 1, ServerUUID: "3e11fa47-71ca-11e1-9e33-c80aa9429562", BinlogBasename: "binlog"}
	mysqlB := Server{Flavor: FlavorMySQL, ServerID: 1, ServerUUID: "8a94f357-aab4-11df-86ab-c80aa9429563", BinlogBasename: "binlog"}
	mysqlAOn, mysqlBOn := mysqlA, mysqlB
	mysqlAOn.GTIDMode, mysqlBOn.GTIDMode = true, true
	maria1 := Server{Flavor: FlavorMariaDB, ServerID: 1, BinlogBasename: "mysql-bin", GTIDMode: true}
	maria2 := Server{Flavor: FlavorMariaDB, ServerID: 2, BinlogBasename: "mysql-bin", GTIDMode: true}
	maria2Lower := maria2
	maria2Lower.LowerCaseTableNames = 1
	filePos := Position{File: "binlog.000042", Pos: 1234}
	mysqlGTID := Position{File: "binlog.000042", Pos: 1234, GTID: "3e11fa47-71ca-11e1-9e33-c80aa9429562:1-77"}
	mariaGTID := Position{File: "mysql-bin.000007", Pos: 4, GTID: "0-1-77"}
	for _, tc := range []struct {
		name        string
		former, cur Server
		at          Position
		want        []string // substrings of the error; nil: the stream goes on
	}{
		{name: "the same MySQL server goes on with a file position", former: mysqlA, cur: mysqlA, at: filePos},
		{name: "the same MySQL server is known by its uuid whatever its server_id",
			former: mysqlA, cur: Server{Flavor: FlavorMySQL, ServerID: 9, ServerUUID: mysqlA.ServerUUID, BinlogBasename: "binlog"}, at: filePos},
		{name: "another MySQL server with gtid_mode OFF refuses a file position, naming both servers and the fix",
			former: mysqlA, cur: mysqlB, at: filePos,
			want: []string{addr, "server_uuid " + mysqlA.ServerUUID, "server_uuid " + mysqlB.ServerUUID, "binlog.000042:1234 is a file position without GTIDs", "tailbox offsets set", "--from"}},
		{name: "another MySQL server with gtid_mode ON goes on with a GTID position", former: mysqlAOn, cur: mysqlBOn, at: mysqlGTID},
		{name: "another MySQL server with gtid_mode ON refuses a file position without GTIDs", former: mysqlAOn, cur: mysqlBOn, at: filePos,
			want: []string{"file position without GTIDs"}},
		{name: "another MySQL server without GTIDs refuses a GTID position", former: mysqlAOn, cur: mysqlB, at: mysqlGTID,
			want: []string{"gtid_mode is not ON"}},
		{name: "another MariaDB server goes on with a GTID position", former: maria1, cur: maria2, at: mariaGTID},
		{name: "another MariaDB server refuses a position without GTID", former: maria1, cur: maria2, at: Position{File: "mysql-bin.000007", Pos: 4},
			want: []string{"server_id 1", "server_id 2", "file position without GTIDs"}},
		{name: "a server of the other flavor refuses every position", former: maria1, cur: mysqlBOn, at: mariaGTID,
			want: []string{"one flavor cannot continue on the other"}},
		{name: "another server that matches table names otherwise refuses the stream", former: maria1, cur: maria2Lower, at: mariaGTID,
			want: []string{"lower_case_table_names changed from 0 to 1"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			err := serverChange(addr, tc.former, tc.cur, tc.at)
			if tc.want == nil {
				if err != nil {
					t.Fatalf("serverChange = %v, want nil", err)
				}
				return
			}
			if !errors.Is(err, ErrServerChanged) {
				t.Fatalf("serverChange = %v, want ErrServerChanged", err)
			}
			for _, w := range tc.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("the error does not say %q: %v", w, err)
				}
			}
		})
	}
}

// The server errors that end a dump because a replica with the same
// server_id connected, as MariaDB and MySQL word them, and only those.
func TestIsServerIDClash(t *testing.T) {
	tests := []struct {
		name string
		me   mysql.MyError
		want bool
	}{
		{"MariaDB ER_SLAVE_SAME_ID", mysql.MyError{Code: 4052, Message: "A slave with the same server_uuid/server_id is already connected; the first event 'mysql-bin.000087' at 3336587, ..."}, true},
		{"MySQL before 8.0.26", mysql.MyError{Code: 1236, Message: "A slave with the same server_uuid/server_id as this slave has connected to the master; the first event 'mysql-bin.000255' at 61694776, ..."}, true},
		{"MySQL 8.0.26 and later", mysql.MyError{Code: 1236, Message: "A replica with the same server_uuid/server_id as this replica has connected to the source; the first event 'binlog.000002' at 157, ..."}, true},
		{"a purged position", mysql.MyError{Code: 1236, Message: "Could not find first log file name in binary log index file"}, false},
		{"a lost connection", mysql.MyError{Code: 2013, Message: "Lost connection to MySQL server during query"}, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := isServerIDClash(&tt.me); got != tt.want {
				t.Fatalf("isServerIDClash = %v, want %v", got, tt.want)
			}
			if !tt.want {
				return
			}
			err := error(&serverIDError{id: 77, addr: "db:3306", me: &tt.me})
			if !errors.Is(err, ErrServerIDInUse) || errors.Is(err, ErrPositionUnavailable) {
				t.Fatalf("%v: want ErrServerIDInUse and not ErrPositionUnavailable", err)
			}
			if !strings.HasPrefix(err.Error(), "source.server_id 77 is in use: another replica registered at db:3306") {
				t.Fatalf("message %q", err)
			}
		})
	}
}
