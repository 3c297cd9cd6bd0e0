package preflight

import (
	"errors"
	"slices"
	"strings"
	"testing"

	"github.com/tailbox-cdc/tailbox/pkg/binlog"
)

func TestGlobalPrivileges(t *testing.T) {
	tests := []struct {
		name   string
		grants []string
		has    []string
		hasnt  []string
	}{
		{
			name: "MariaDB prints REPLICATION CLIENT as BINLOG MONITOR",
			grants: []string{
				"GRANT REPLICATION SLAVE, BINLOG MONITOR ON *.* TO `cdc`@`%` IDENTIFIED BY PASSWORD '*4AEA'",
				"GRANT SELECT ON `shop`.* TO `cdc`@`%`",
			},
			has:   []string{"REPLICATION SLAVE", "BINLOG MONITOR"},
			hasnt: []string{"SELECT", "REPLICATION CLIENT"},
		},
		{
			name:   "ALL PRIVILEGES grants everything",
			grants: []string{"GRANT ALL PRIVILEGES ON *.* TO `tailbox`@`127.0.0.1` WITH GRANT OPTION"},
			has:    []string{"REPLICATION SLAVE", "REPLICATION CLIENT"},
		},
		{
			name:   "privileges on one schema are not global",
			grants: []string{"GRANT ALL PRIVILEGES ON `shop`.* TO `cdc`@`%`", "GRANT USAGE ON *.* TO `cdc`@`%`"},
			hasnt:  []string{"REPLICATION SLAVE"},
		},
		{
			name: "a role's grants listed with the user's count",
			grants: []string{
				"GRANT USAGE ON *.* TO `cdc`@`%`",
				"GRANT `replicator` TO `cdc`@`%`",
				"grant replication slave,  replication client on *.* to `replicator`",
			},
			has: []string{"REPLICATION SLAVE", "REPLICATION CLIENT"},
		},
		{
			name:   "MySQL 8 lists static privileges one by one",
			grants: []string{"GRANT SELECT, REPLICATION SLAVE, REPLICATION CLIENT ON *.* TO `cdc`@`%`", "GRANT BACKUP_ADMIN ON *.* TO `cdc`@`%`"},
			has:    []string{"REPLICATION SLAVE", "REPLICATION CLIENT", "SELECT"},
			hasnt:  []string{"SUPER"},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p := globalPrivileges(tt.grants)
			for _, h := range tt.has {
				if !p.has(h) {
					t.Errorf("has(%q) = false, want true (parsed %v)", h, p)
				}
			}
			for _, h := range tt.hasnt {
				if p.has(h) {
					t.Errorf("has(%q) = true, want false (parsed %v)", h, p)
				}
			}
		})
	}
}

func TestVersionAtLeast(t *testing.T) {
	tests := []struct {
		version string
		want    bool
	}{
		{"10.11.6-MariaDB-0+deb12u1-log", true},
		{"10.5.2-MariaDB", true},
		{"10.5.1-MariaDB", false},
		{"10.4.32-MariaDB", false},
		{"11.4.2-MariaDB", true},
		{"5.5.5-10.11.6-MariaDB", false}, // the old replication prefix is not parsed further
		{"garbage", false},
	}
	for _, tt := range tests {
		if got := versionAtLeast(tt.version, 10, 5, 2); got != tt.want {
			t.Errorf("versionAtLeast(%q, 10.5.2) = %v, want %v", tt.version, got, tt.want)
		}
	}
}

func TestReplicationClientName(t *testing.T) {
	if got := replicationClientName(binlog.Server{Flavor: binlog.FlavorMariaDB, Version: "10.11.6-MariaDB"}); got != "BINLOG MONITOR" {
		t.Errorf("MariaDB 10.11: %q, want BINLOG MONITOR", got)
	}
	if got := replicationClientName(binlog.Server{Flavor: binlog.FlavorMariaDB, Version: "10.4.30-MariaDB"}); got != "REPLICATION CLIENT" {
		t.Errorf("MariaDB 10.4: %q, want REPLICATION CLIENT", got)
	}
	if got := replicationClientName(binlog.Server{Flavor: binlog.FlavorMySQL, Version: "8.4.0"}); got != "REPLICATION CLIENT" {
		t.Errorf("MySQL 8.4: %q, want REPLICATION CLIENT", got)
	}
}

// good is a server set up as tailbox needs it.
var good = binlog.Server{
	Flavor: binlog.FlavorMySQL, Version: "8.4.0", ServerID: 1, LogBin: true, BinlogFormat: "ROW", RowImage: "FULL",
	FullMetadata: true, RowMetadata: "FULL",
}

func TestSettingChecks(t *testing.T) {
	tests := []struct {
		name         string
		mutate       func(*binlog.Server)
		allowMinimal bool
		want         map[string]Result // by name; every other result must be ok
	}{
		{
			name:   "a good MySQL server passes every item",
			mutate: func(*binlog.Server) {},
		},
		{
			name: "MariaDB has no binlog_row_value_options item",
			mutate: func(s *binlog.Server) {
				s.Flavor, s.Version = binlog.FlavorMariaDB, "10.11.6-MariaDB"
			},
		},
		{
			name:   "binary logging off",
			mutate: func(s *binlog.Server) { s.LogBin = false },
			want: map[string]Result{"log_bin": {Status: StatusFail, Detail: "OFF: the server writes no binary log",
				Fix: "add log_bin=mysql-bin under [mysqld] in my.cnf (and remove skip-log-bin or disable-log-bin), then restart the server; binary logging cannot be switched on at runtime"}},
		},
		{
			name:   "MIXED format and MINIMAL row image",
			mutate: func(s *binlog.Server) { s.BinlogFormat, s.RowImage = "MIXED", "MINIMAL" },
			want: map[string]Result{
				"binlog_format": {Status: StatusFail, Detail: "MIXED; tailbox needs ROW",
					Fix: "SET GLOBAL binlog_format = 'ROW'; and binlog_format=ROW under [mysqld] in my.cnf (sessions open before keep their format until they reconnect)"},
				"binlog_row_image": {Status: StatusFail, Detail: "MINIMAL; tailbox needs FULL",
					Fix: "SET GLOBAL binlog_row_image = 'FULL'; and binlog_row_image=FULL under [mysqld] in my.cnf"},
			},
		},
		{
			name:   "NO_LOG metadata fails without allow_minimal_metadata",
			mutate: func(s *binlog.Server) { s.FullMetadata, s.RowMetadata = false, "NO_LOG" },
			want: map[string]Result{"binlog_row_metadata": {Status: StatusFail,
				Detail: "NO_LOG; tailbox needs FULL: the binlog carries no column names",
				Fix:    "SET GLOBAL binlog_row_metadata = 'FULL'; and binlog_row_metadata=FULL under [mysqld] in my.cnf (only binlogs written afterwards carry column names), or set source.allow_minimal_metadata: true to read column names from information_schema"}},
		},
		{
			name:         "MINIMAL metadata is a warning with allow_minimal_metadata",
			mutate:       func(s *binlog.Server) { s.FullMetadata, s.RowMetadata = false, "MINIMAL" },
			allowMinimal: true,
			want: map[string]Result{"binlog_row_metadata": {Status: StatusWarn,
				Detail: "MINIMAL; source.allow_minimal_metadata is true: column names come from information_schema and tailbox stops at a schema change of a captured table",
				Fix:    "SET GLOBAL binlog_row_metadata = 'FULL'; and binlog_row_metadata=FULL under [mysqld] in my.cnf (only binlogs written afterwards carry column names)"}},
		},
		{
			name:   "a server without the metadata variable",
			mutate: func(s *binlog.Server) { s.FullMetadata, s.RowMetadata, s.Version = false, "", "5.7.44" },
			want: map[string]Result{"binlog_row_metadata": {Status: StatusFail,
				Detail: "not supported by this server version (MySQL 8.0.1+ and MariaDB 10.5+ have it); tailbox needs FULL: the binlog carries no column names",
				Fix:    "upgrade the server, or set source.allow_minimal_metadata: true to read column names from information_schema"}},
		},
		{
			name:   "PARTIAL_JSON is a warning",
			mutate: func(s *binlog.Server) { s.RowValueOptions = "PARTIAL_JSON" },
			want: map[string]Result{"binlog_row_value_options": {Status: StatusWarn,
				Detail: "PARTIAL_JSON: an UPDATE of a JSON column logs only the change; tailbox treats it as an UPDATE (outbox.on_update) and never reads it as an event",
				Fix:    "SET GLOBAL binlog_row_value_options = ''; and binlog_row_value_options= under [mysqld] in my.cnf"}},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			srv := good
			tt.mutate(&srv)
			rs := settingChecks(srv, tt.allowMinimal)
			names := map[string]bool{}
			for _, r := range rs {
				names[r.Name] = true
				w, ok := tt.want[r.Name]
				if !ok {
					if r.Status != StatusOK || r.Fix != "" {
						t.Errorf("%s: %s, want ok without a fix", r.Name, r)
					}
					continue
				}
				w.Name = r.Name
				if r != w {
					t.Errorf("got  %+v\nwant %+v", r, w)
				}
			}
			for n := range tt.want {
				if !names[n] {
					t.Errorf("no result %q in %v", n, rs)
				}
			}
			if _, ok := names["binlog_row_value_options"]; ok != (srv.Flavor == binlog.FlavorMySQL) {
				t.Errorf("binlog_row_value_options present = %v for %s", ok, srv.Flavor)
			}
		})
	}
}

func TestColumnCheck(t *testing.T) {
	mapped := []Column{
		{"id", "outbox.fields.id", "CHAR(36) NOT NULL PRIMARY KEY"},
		{"aggregatetype", "outbox.fields.route_by", "VARCHAR(255) NOT NULL"},
		{"aggregateid", "outbox.fields.key", "VARCHAR(255) NOT NULL"},
		{"type", "outbox.fields.type", "VARCHAR(255) NOT NULL"},
		{"payload", "outbox.fields.payload", "JSON"},
		{"tenant", "outbox.additional[0].column", "VARCHAR(255)"},
	}
	t.Run("names match ignoring case", func(t *testing.T) {
		r := columnCheck(Result{Name: "table s.outbox"}, "`s`.`outbox`", []string{"ID", "AggregateType", "aggregateid", "type", "payload", "Tenant"}, mapped)
		if r.Status != StatusOK || r.Detail != "has the mapped columns id, aggregatetype, aggregateid, type, payload, tenant" {
			t.Fatalf("got %s", r)
		}
	})
	t.Run("a missing column names its setting and the ALTER TABLE", func(t *testing.T) {
		r := columnCheck(Result{Name: "table s.outbox"}, "`s`.`outbox`", []string{"id", "aggregatetype", "aggregateid", "payload"}, mapped)
		want := Result{Name: "table s.outbox", Status: StatusFail,
			Detail: "has no column type (outbox.fields.type), tenant (outbox.additional[0].column); its columns are id, aggregatetype, aggregateid, payload",
			Fix:    "ALTER TABLE `s`.`outbox` ADD COLUMN `type` VARCHAR(255), ADD COLUMN `tenant` VARCHAR(255); or set outbox.fields.type, outbox.additional[0].column to existing columns"}
		if r != want {
			t.Fatalf("got  %+v\nwant %+v", r, want)
		}
	})
	t.Run("the CREATE TABLE hint has every mapped column once", func(t *testing.T) {
		got := createTable("`s`.`outbox`", append(mapped, Column{"ID", "outbox.additional[1].column", "VARCHAR(255)"}))
		want := "CREATE TABLE `s`.`outbox` (`id` CHAR(36) NOT NULL PRIMARY KEY, `aggregatetype` VARCHAR(255) NOT NULL, `aggregateid` VARCHAR(255) NOT NULL, `type` VARCHAR(255) NOT NULL, `payload` JSON, `tenant` VARCHAR(255));"
		if got != want {
			t.Fatalf("got  %s\nwant %s", got, want)
		}
	})
}

func TestServerIDCheck(t *testing.T) {
	acct := account("cdc", "%")
	mariadb := binlog.Server{Flavor: binlog.FlavorMariaDB, ServerID: 1}
	tests := []struct {
		name     string
		id       uint32
		replicas []binlog.Replica
		err      error
		want     Result
	}{
		{
			name: "an unused id passes",
			id:   5401, replicas: []binlog.Replica{{ServerID: 2, Host: "replica", Port: 3306}},
			want: Result{Name: "server_id", Status: StatusOK, Detail: "5401 (the server's is 1), no connected replica uses it"},
		},
		{
			name: "the server's own id fails",
			id:   1,
			want: Result{Name: "server_id", Status: StatusFail, Detail: "source.server_id 1 is the server's own @@server_id",
				Fix: "set source.server_id to an id that no server or replica of this replication topology uses (not 1)"},
		},
		{
			name: "an id a connected replica uses fails, and run tolerates it",
			id:   5401, replicas: []binlog.Replica{{ServerID: 5401, Host: "tailbox", Port: 3306}},
			want: Result{Name: "server_id", Status: StatusFail, RunTolerates: true,
				Detail: "source.server_id 5401 is used by a connected replica (host tailbox, port 3306): the server drops one of two replicas with the same id; it may be this connector already running",
				Fix:    "stop the other replica, or set source.server_id to an id unique among the server's replicas"},
		},
		{
			name: "replicas that cannot be listed make a warning",
			id:   5401, err: errors.New("denied"),
			want: Result{Name: "server_id", Status: StatusWarn,
				Detail: "5401 (the server's is 1); cannot list the connected replicas to see whether one uses it (denied)",
				Fix:    "make sure no other replica uses it"},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := serverIDCheck(tt.id, mariadb, tt.replicas, tt.err, acct); got != tt.want {
				t.Fatalf("got  %+v\nwant %+v", got, tt.want)
			}
		})
	}
}

func TestResultString(t *testing.T) {
	r := Result{Name: "binlog_format", Status: StatusFail, Detail: "MIXED; tailbox needs ROW", Fix: "SET GLOBAL binlog_format = 'ROW';"}
	want := "FAIL  binlog_format: MIXED; tailbox needs ROW\n      fix: SET GLOBAL binlog_format = 'ROW';"
	if got := r.String(); got != want {
		t.Fatalf("got  %q\nwant %q", got, want)
	}
	if got := (Result{Name: "log_bin", Status: StatusOK, Detail: "ON"}).String(); got != "ok    log_bin: ON" {
		t.Fatalf("got %q", got)
	}
	if !Failed([]Result{{Status: StatusOK}, {Status: StatusWarn}, {Status: StatusFail}}) || Failed([]Result{{Status: StatusWarn}}) {
		t.Fatal("Failed does not report exactly the FAIL status")
	}
}

func TestAccountQuoting(t *testing.T) {
	if got := account("o'brien", "%"); got != "'o''brien'@'%'" {
		t.Fatalf("account = %s", got)
	}
	if got := quoteIdent("a`b"); got != "`a``b`" {
		t.Fatalf("quoteIdent = %s", got)
	}
	if got := serverMessage(errors.New(`query "SELECT * FROM ` + "`a`.`b`" + ` LIMIT 0": ERROR 1142 (42000): SELECT command denied`)); !strings.HasPrefix(got, "ERROR 1142") {
		t.Fatalf("serverMessage = %q", got)
	}
}

func TestClosestNames(t *testing.T) {
	names := []string{"shop.outbox", "shop.outbox2", "shop.outbox_archive", "shop.orders", "billing.outbox", "shop.members", "Shop.Outboxes"}
	tests := []struct {
		name string
		want string
		got  []string
	}{
		{name: "a dropped letter finds the table, closest first", want: "shop.outbx", got: []string{"shop.outbox", "shop.outbox2"}},
		{name: "two swapped letters are one edit", want: "shop.otubox", got: []string{"shop.outbox", "shop.outbox2"}},
		{name: "a misspelled schema finds the table, and the table of that name in other schemas", want: "shpo.outbox", got: []string{"shop.outbox", "shop.outbox2", "billing.outbox"}},
		{name: "a wrong schema finds the table of that name elsewhere", want: "orders.outbox", got: []string{"shop.outbox", "billing.outbox"}},
		{name: "a table missing from a schema that exists is not looked for elsewhere", want: "billing.orders", got: []string{}},
		{name: "letter case is ignored", want: "SHOP.OUTBX", got: []string{"shop.outbox", "shop.outbox2"}},
		{name: "the name itself is no suggestion", want: "shop.orders", got: []string{}},
		{name: "an unrelated name has none", want: "shop.events", got: []string{}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := closestNames(tt.want, names, 3); !slices.Equal(got, tt.got) {
				t.Fatalf("closestNames(%q) = %q, want %q", tt.want, got, tt.got)
			}
		})
	}
}
