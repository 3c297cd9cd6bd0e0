package e2e

import (
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/tailbox-cdc/tailbox/internal/testenv"
)

// checkLine is one item of `tailbox check` output.
type checkLine struct {
	status, detail, fix string
}

// check runs `tailbox check` and returns its items by name, its stdout and
// its exit code.
func (e *env) check() (map[string]checkLine, string, int) {
	e.t.Helper()
	out, errOut, code := e.runCmd("check", "-c", e.cfg)
	lines := map[string]checkLine{}
	last := ""
	for _, l := range strings.Split(out, "\n") {
		if fix, ok := strings.CutPrefix(l, "      fix: "); ok && last != "" {
			cl := lines[last]
			cl.fix = fix
			lines[last] = cl
			continue
		}
		last = ""
		if len(l) < 6 {
			continue
		}
		status := strings.TrimSpace(l[:6])
		if status != "ok" && status != "warn" && status != "FAIL" {
			continue
		}
		name, detail, ok := strings.Cut(l[6:], ": ")
		if !ok {
			e.t.Fatalf("check line without a name: %q", l)
		}
		if _, dup := lines[name]; dup {
			e.t.Fatalf("check printed %q twice:\n%s", name, out)
		}
		lines[name] = checkLine{status: status, detail: detail}
		last = name
	}
	if len(lines) == 0 {
		e.t.Fatalf("check printed no items (exit %d):\n%s\n%s", code, out, errOut)
	}
	return lines, out, code
}

// wantCheck asserts the status of item name and, when fix is not "", its exact fix.
func wantCheck(t *testing.T, lines map[string]checkLine, out, name, status, fix string) checkLine {
	t.Helper()
	l, ok := lines[name]
	if !ok {
		t.Fatalf("check printed no item %q:\n%s", name, out)
	}
	if l.status != status {
		t.Fatalf("item %q is %s, want %s:\n%s", name, l.status, status, out)
	}
	if fix != "" && l.fix != fix {
		t.Fatalf("item %q fix:\n got  %s\n want %s", name, l.fix, fix)
	}
	if status != "ok" && l.fix == "" {
		t.Fatalf("item %q is %s without a fix:\n%s", name, status, out)
	}
	return l
}

// editConfig replaces old by new in the config file; old must occur.
func (e *env) editConfig(old, new string) {
	e.t.Helper()
	b, err := os.ReadFile(e.cfg)
	if err != nil {
		e.t.Fatal(err)
	}
	if !strings.Contains(string(b), old) {
		e.t.Fatalf("config has no %q:\n%s", old, b)
	}
	if err := os.WriteFile(e.cfg, []byte(strings.Replace(string(b), old, new, 1)), 0o600); err != nil {
		e.t.Fatal(err)
	}
}

// privateEnv is an env on a private MariaDB started with extra my.cnf lines.
func privateEnv(t *testing.T, mycnf string) *env {
	t.Helper()
	srv := testenv.StartMariaDB(t, mycnf)
	e := &env{t: t, db: srv, kafka: testenv.Kafka(t), dir: t.TempDir()}
	e.dbn = srv.CreateDatabase(t, "check")
	e.db.Exec(t, fmt.Sprintf(testenv.OutboxDDL, e.dbn))
	e.cfg = filepath.Join(e.dir, "tailbox.yaml")
	e.writeConfig("envelope", "")
	return e
}

// closedAddr returns a 127.0.0.1 address nothing listens on.
func closedAddr(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()
	return addr
}

func TestCheckPassesOnACorrectSetup(t *testing.T) {
	e := newEnv(t, "envelope")
	e.writeConfig("envelope", "  fields: {timestamp: created_at}\n  additional: [{column: aggregatetype, as: aggType}]\n")
	lines, out, code := e.check()
	if code != 0 {
		t.Fatalf("exit code %d, want 0:\n%s", code, out)
	}
	for _, name := range []string{"source", "log_bin", "binlog_format", "binlog_row_image", "binlog_row_metadata",
		"grant REPLICATION SLAVE", "grant SELECT on " + e.dbn + ".outbox", "table " + e.dbn + ".outbox", "server_id",
		"start position", "kafka"} {
		wantCheck(t, lines, out, name, "ok", "")
	}
	if _, ok := lines["grant BINLOG MONITOR"]; !ok {
		t.Fatalf("no grant BINLOG MONITOR item for MariaDB 10.11:\n%s", out)
	}
	for name, l := range lines {
		if l.status != "ok" || l.fix != "" {
			t.Errorf("item %s: %s %s (fix %q), want ok", name, l.status, l.detail, l.fix)
		}
	}
	if !strings.Contains(out, fmt.Sprintf("\nall %d items passed, 0 warnings\n", len(lines))) {
		t.Fatalf("no summary line:\n%s", out)
	}
	if d := lines["table "+e.dbn+".outbox"].detail; d != "has the mapped columns id, aggregatetype, aggregateid, type, payload, created_at" {
		t.Fatalf("table detail %q", d)
	}
	if d := lines["start position"].detail; !strings.HasPrefix(d, "start.from latest: mysql-bin.") {
		t.Fatalf("start position detail %q, want start.from latest", d)
	}
	// check writes nothing and produces nothing.
	if _, err := os.Stat(e.checkpointPath()); !os.IsNotExist(err) {
		t.Fatalf("check wrote a checkpoint (stat: %v)", err)
	}
	if got := e.topics(); len(got) != 0 {
		t.Fatalf("check created topics %v", got)
	}

	// With a stored checkpoint, check validates that one.
	if out, errOut, code := e.runCmd("offsets", "set", "-c", e.cfg, "--from", "latest"); code != 0 {
		t.Fatalf("offsets set: %d\n%s\n%s", code, out, errOut)
	}
	lines, out, code = e.check()
	if code != 0 {
		t.Fatalf("with a checkpoint: exit code %d:\n%s", code, out)
	}
	if d := lines["start position"].detail; !strings.HasPrefix(d, "checkpoint: mysql-bin.") {
		t.Fatalf("start position detail %q, want the checkpoint", d)
	}
}

func TestCheckFailsWithTheExactFix(t *testing.T) {
	t.Run("an outbox table on an engine without transactions fails, and ENGINE=InnoDB fixes it", func(t *testing.T) {
		e := newEnv(t, "envelope")
		e.db.Exec(t, fmt.Sprintf("ALTER TABLE %s.outbox ENGINE=MyISAM", e.dbn))
		lines, out, code := e.check()
		if code == 0 {
			t.Fatalf("exit code 0 with a MyISAM outbox table:\n%s", out)
		}
		fix := fmt.Sprintf("ALTER TABLE `%s`.`outbox` ENGINE=InnoDB;", e.dbn)
		l := wantCheck(t, lines, out, "table "+e.dbn+".outbox", "FAIL", fix)
		if !strings.Contains(l.detail, "uses the MyISAM engine, which does not roll back") {
			t.Fatalf("detail %q does not name the engine", l.detail)
		}
		e.db.Exec(t, fix)
		if lines, out, code = e.check(); code != 0 {
			t.Fatalf("after the fix: exit code %d:\n%s", code, out)
		}
		wantCheck(t, lines, out, "table "+e.dbn+".outbox", "ok", "")
	})
	t.Run("a user without grants gets one GRANT per privilege, and the GRANTs fix it", func(t *testing.T) {
		e := newEnv(t, "envelope")
		var b [4]byte
		_, _ = rand.Read(b[:])
		user := "chk_" + hex.EncodeToString(b[:])
		e.db.Exec(t, fmt.Sprintf("CREATE USER '%s'@'127.0.0.1' IDENTIFIED BY 'pw'", user))
		t.Cleanup(func() { e.db.Exec(t, fmt.Sprintf("DROP USER IF EXISTS '%s'@'127.0.0.1'", user)) })
		e.editConfig("user: "+e.db.User+"\n", "user: "+user+"\n")
		e.editConfig("password: ${E2E_MYSQL_PASSWORD}", "password: pw")

		lines, out, code := e.check()
		if code != 1 {
			t.Fatalf("exit code %d, want 1:\n%s", code, out)
		}
		acct := "'" + user + "'@'127.0.0.1'"
		wantCheck(t, lines, out, "source", "ok", "")
		fixes := []string{
			wantCheck(t, lines, out, "grant REPLICATION SLAVE", "FAIL", "GRANT REPLICATION SLAVE ON *.* TO "+acct+";").fix,
			wantCheck(t, lines, out, "grant BINLOG MONITOR", "FAIL", "GRANT BINLOG MONITOR ON *.* TO "+acct+";").fix,
			wantCheck(t, lines, out, "grant SELECT on "+e.dbn+".outbox", "FAIL", "GRANT SELECT ON `"+e.dbn+"`.`outbox` TO "+acct+";").fix,
		}
		if _, ok := lines["table "+e.dbn+".outbox"]; ok {
			t.Fatalf("a table without SELECT was checked:\n%s", out)
		}
		// Run the fixes as printed: those items pass.
		for _, f := range fixes {
			e.db.Exec(t, strings.TrimSuffix(f, ";"))
		}
		lines, out, _ = e.check()
		for _, name := range []string{"grant REPLICATION SLAVE", "grant BINLOG MONITOR", "grant SELECT on " + e.dbn + ".outbox", "table " + e.dbn + ".outbox", "start position"} {
			wantCheck(t, lines, out, name, "ok", "")
		}
		// Without REPLICATION MASTER ADMIN MariaDB does not list replicas.
		wantCheck(t, lines, out, "server_id", "warn", "make sure no other replica uses it, or let check see them: GRANT REPLICATION MASTER ADMIN ON *.* TO "+acct+";")
	})

	t.Run("a missing outbox table gets a CREATE TABLE that fixes it", func(t *testing.T) {
		e := newEnv(t, "envelope")
		e.editConfig("tables: ["+e.dbn+".outbox]", "tables: ["+e.dbn+".outbox, "+e.dbn+".events]")
		lines, out, code := e.check()
		if code != 1 {
			t.Fatalf("exit code %d, want 1:\n%s", code, out)
		}
		create := "CREATE TABLE `" + e.dbn + "`.`events` (`id` CHAR(36) NOT NULL PRIMARY KEY, `aggregatetype` VARCHAR(255) NOT NULL, `aggregateid` VARCHAR(255) NOT NULL, `type` VARCHAR(255) NOT NULL, `payload` JSON);"
		l := wantCheck(t, lines, out, "table "+e.dbn+".events", "FAIL", "create it, e.g. "+create)
		if l.detail != "does not exist" {
			t.Fatalf("detail %q", l.detail)
		}
		wantCheck(t, lines, out, "table "+e.dbn+".outbox", "ok", "")
		e.db.Exec(t, strings.TrimSuffix(create, ";"))
		if _, out, code := e.check(); code != 0 {
			t.Fatalf("after the CREATE TABLE: exit code %d:\n%s", code, out)
		}
	})

	t.Run("a table name in the wrong case names the table the server has", func(t *testing.T) {
		e := newEnv(t, "envelope")
		e.editConfig("tables: ["+e.dbn+".outbox]", "tables: ["+e.dbn+".OutBox]")
		lines, out, code := e.check()
		if code != 1 {
			t.Fatalf("exit code %d, want 1:\n%s", code, out)
		}
		l := wantCheck(t, lines, out, "table "+e.dbn+".OutBox", "FAIL", "set outbox.tables to the name as the server spells it: "+e.dbn+".outbox")
		if want := "does not exist; " + e.dbn + ".outbox does, and table names are case-sensitive on this server (lower_case_table_names=0)"; l.detail != want {
			t.Fatalf("detail %q, want %q", l.detail, want)
		}
	})

	t.Run("a missing mapped column gets an ALTER TABLE, and run refuses with the same text", func(t *testing.T) {
		e := newEnv(t, "envelope")
		e.writeConfig("envelope", "  fields: {timestamp: occurred_at}\n  additional: [{column: tenant}]\n")
		lines, out, code := e.check()
		if code != 1 {
			t.Fatalf("exit code %d, want 1:\n%s", code, out)
		}
		name := "table " + e.dbn + ".outbox"
		alter := "ALTER TABLE `" + e.dbn + "`.`outbox` ADD COLUMN `occurred_at` TIMESTAMP(6) DEFAULT CURRENT_TIMESTAMP(6), ADD COLUMN `tenant` VARCHAR(255);"
		l := wantCheck(t, lines, out, name, "FAIL", alter+" or set outbox.fields.timestamp, outbox.additional[0].column to existing columns")
		if want := "has no column occurred_at (outbox.fields.timestamp), tenant (outbox.additional[0].column); its columns are id, aggregatetype, aggregateid, type, payload, created_at"; l.detail != want {
			t.Fatalf("detail %q, want %q", l.detail, want)
		}
		_, stderr, code := e.runCmd("run", "-c", e.cfg)
		block := "FAIL  " + name + ": " + l.detail + "\n      fix: " + l.fix
		if code != 1 || !strings.Contains(runError(stderr), block) {
			t.Fatalf("run: exit code %d, want 1 with\n%s\nstderr:\n%s", code, block, stderr)
		}
		e.db.Exec(t, strings.TrimSuffix(alter, ";"))
		if _, out, code := e.check(); code != 0 {
			t.Fatalf("after the ALTER TABLE: exit code %d:\n%s", code, out)
		}
	})

	t.Run("a server_id equal to the server's", func(t *testing.T) {
		e := newEnv(t, "envelope")
		r := e.db.Exec(t, "SELECT @@GLOBAL.server_id")
		id, _ := r.GetUint(0, 0)
		b, _ := os.ReadFile(e.cfg)
		cfg := string(b)
		i := strings.Index(cfg, "server_id: ")
		j := strings.Index(cfg[i:], "\n")
		e.editConfig(cfg[i:i+j], fmt.Sprintf("server_id: %d", id))
		lines, out, code := e.check()
		if code != 1 {
			t.Fatalf("exit code %d, want 1:\n%s", code, out)
		}
		l := wantCheck(t, lines, out, "server_id", "FAIL", fmt.Sprintf("set source.server_id to an id that no server or replica of this replication topology uses (not %d)", id))
		if want := fmt.Sprintf("source.server_id %d is the server's own @@server_id", id); l.detail != want {
			t.Fatalf("detail %q, want %q", l.detail, want)
		}
	})

	t.Run("a server_id a running connector uses", func(t *testing.T) {
		e := newEnv(t, "envelope")
		p := e.start()
		defer p.stop(t)
		lines, out, code := e.check()
		if code != 1 {
			t.Fatalf("exit code %d, want 1:\n%s", code, out)
		}
		l := wantCheck(t, lines, out, "server_id", "FAIL", "stop the other replica, or set source.server_id to an id unique among the server's replicas")
		_, port, _ := net.SplitHostPort(e.db.Addr)
		if !strings.Contains(l.detail, "is used by a connected replica (host tailbox:e2e-"+e.dbn+", port "+port+")") {
			t.Fatalf("detail %q", l.detail)
		}
	})

	t.Run("an unreachable Kafka", func(t *testing.T) {
		e := newEnv(t, "envelope")
		addr := closedAddr(t)
		e.editConfig("brokers: ["+strings.Join(e.kafka.Addrs, ",")+"]", "brokers: ["+addr+"]")
		lines, out, code := e.check()
		if code != 1 {
			t.Fatalf("exit code %d, want 1:\n%s", code, out)
		}
		l := wantCheck(t, lines, out, "kafka", "FAIL", "check kafka.brokers (host:port) and that a broker accepts connections from this host")
		if !strings.Contains(l.detail, addr) || !strings.Contains(l.detail, "no kafka broker reachable") {
			t.Fatalf("detail %q does not name %s as unreachable", l.detail, addr)
		}
		wantCheck(t, lines, out, "log_bin", "ok", "") // the source is checked all the same
	})

	t.Run("an unreachable server fails at once, without retrying", func(t *testing.T) {
		e := newEnv(t, "envelope")
		addr := closedAddr(t)
		e.editConfig("addr: "+e.db.Addr, "addr: "+addr)
		lines, out, code := e.check()
		if code != 1 {
			t.Fatalf("exit code %d, want 1:\n%s", code, out)
		}
		l := wantCheck(t, lines, out, "source", "FAIL", "check source.addr (host:port) and that the server accepts TCP connections from this host (bind_address, port, firewall), and source.tls.mode")
		if !strings.HasPrefix(l.detail, "cannot connect to "+addr+": ") || !strings.Contains(l.detail, "connection refused") {
			t.Fatalf("detail %q", l.detail)
		}
		if len(lines) != 2 {
			t.Fatalf("want only the source and kafka items:\n%s", out)
		}
		wantCheck(t, lines, out, "kafka", "ok", "")
	})

	t.Run("a wrong password", func(t *testing.T) {
		e := newEnv(t, "envelope")
		e.editConfig("password: ${E2E_MYSQL_PASSWORD}", "password: wrong-password")
		lines, out, code := e.check()
		if code != 1 {
			t.Fatalf("exit code %d, want 1:\n%s", code, out)
		}
		l := wantCheck(t, lines, out, "source", "FAIL", "check source.user and source.password (or source.password_file); the server needs an account for user '"+e.db.User+"' from this host, e.g. CREATE USER '"+e.db.User+"'@'%' IDENTIFIED BY '...';")
		if !strings.Contains(l.detail, "Access denied for user") || strings.Contains(out, "wrong-password") {
			t.Fatalf("detail %q (the password must not be printed)", l.detail)
		}
	})
}

func TestCheckBinlogOff(t *testing.T) {
	e := privateEnv(t, "skip-log-bin")
	lines, out, code := e.check()
	if code != 1 {
		t.Fatalf("exit code %d, want 1:\n%s", code, out)
	}
	fix := "add log_bin=mysql-bin under [mysqld] in my.cnf (and remove skip-log-bin or disable-log-bin), then restart the server; binary logging cannot be switched on at runtime"
	l := wantCheck(t, lines, out, "log_bin", "FAIL", fix)
	wantCheck(t, lines, out, "binlog_format", "ok", "")
	// The grants are still judged (from SHOW GRANTS) without a binary log.
	wantCheck(t, lines, out, "grant BINLOG MONITOR", "ok", "")
	wantCheck(t, lines, out, "start position", "FAIL", "")

	_, stderr, code := e.runCmd("run", "-c", e.cfg)
	block := "FAIL  log_bin: " + l.detail + "\n      fix: " + fix
	if code != 1 || !strings.Contains(runError(stderr), block) {
		t.Fatalf("run: exit code %d, want 1 with\n%s\nstderr:\n%s", code, block, stderr)
	}
}

func TestCheckServerSettingsAndAPurgedCheckpoint(t *testing.T) {
	e := privateEnv(t, "binlog_format=MIXED\nbinlog_row_image=MINIMAL\nbinlog_row_metadata=NO_LOG")
	lines, out, code := e.check()
	if code != 1 {
		t.Fatalf("exit code %d, want 1:\n%s", code, out)
	}
	fixes := []string{
		wantCheck(t, lines, out, "binlog_format", "FAIL", "SET GLOBAL binlog_format = 'ROW'; and binlog_format=ROW under [mysqld] in my.cnf (sessions open before keep their format until they reconnect)").fix,
		wantCheck(t, lines, out, "binlog_row_image", "FAIL", "SET GLOBAL binlog_row_image = 'FULL'; and binlog_row_image=FULL under [mysqld] in my.cnf").fix,
		wantCheck(t, lines, out, "binlog_row_metadata", "FAIL", "SET GLOBAL binlog_row_metadata = 'FULL'; and binlog_row_metadata=FULL under [mysqld] in my.cnf (only binlogs written afterwards carry column names), or set source.allow_minimal_metadata: true to read column names from information_schema").fix,
	}
	if d := lines["binlog_row_metadata"].detail; d != "NO_LOG; tailbox needs FULL: the binlog carries no column names" {
		t.Fatalf("binlog_row_metadata detail %q", d)
	}
	if _, ok := lines["binlog_row_value_options"]; ok {
		t.Fatalf("binlog_row_value_options checked on MariaDB:\n%s", out)
	}

	// allow_minimal_metadata turns the metadata item into a warning.
	e.editConfig("  heartbeat: 1s\n", "  heartbeat: 1s\n  allow_minimal_metadata: true\n")
	lines, out, code = e.check()
	if code != 1 {
		t.Fatalf("allow_minimal_metadata: exit code %d, want 1 (format and row image still fail):\n%s", code, out)
	}
	wantCheck(t, lines, out, "binlog_row_metadata", "warn", "SET GLOBAL binlog_row_metadata = 'FULL'; and binlog_row_metadata=FULL under [mysqld] in my.cnf (only binlogs written afterwards carry column names)")
	e.editConfig("  allow_minimal_metadata: true\n", "")

	// The SET GLOBAL part of each fix, as printed, fixes the server.
	for _, f := range fixes {
		stmt, _, _ := strings.Cut(f, ";")
		e.db.Exec(t, stmt)
	}
	lines, out, code = e.check()
	if code != 0 {
		t.Fatalf("after the SET GLOBALs: exit code %d:\n%s", code, out)
	}

	// A checkpoint whose binlog was purged.
	if out, errOut, code := e.runCmd("offsets", "set", "-c", e.cfg, "--from", "latest"); code != 0 {
		t.Fatalf("offsets set: %d\n%s\n%s", code, out, errOut)
	}
	e.tx(e.outboxInsert("00000000-0000-0000-0000-0000000000f1", "member", "m-1", "Lost", `{}`))
	e.db.Exec(t, "FLUSH BINARY LOGS")
	r := e.db.Exec(t, "SHOW MASTER STATUS")
	newest, _ := r.GetString(0, 0)
	// MariaDB keeps a file until its binlog checkpoint is written: retry.
	for deadline := time.Now().Add(30 * time.Second); ; {
		e.db.Exec(t, "PURGE BINARY LOGS TO '"+newest+"'")
		r := e.db.Exec(t, "SHOW BINARY LOGS")
		if oldest, _ := r.GetString(0, 0); oldest == newest {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("PURGE BINARY LOGS TO '%s' left older files for 30s", newest)
		}
		time.Sleep(100 * time.Millisecond)
	}
	lines, out, code = e.check()
	if code != 1 {
		t.Fatalf("purged checkpoint: exit code %d, want 1:\n%s", code, out)
	}
	l := wantCheck(t, lines, out, "start position", "FAIL", "choose a position the server has with `tailbox offsets set -c FILE --from SPEC` (earliest, latest, FILE:POS, gtid:SET or time:RFC3339); events between the checkpoint and that position are not published")
	if !strings.Contains(l.detail, e.checkpointPath()) || !strings.Contains(l.detail, newest) {
		t.Fatalf("detail %q does not name the checkpoint and the oldest available file %s", l.detail, newest)
	}
	// The fix, as printed, works.
	if out, errOut, code := e.runCmd("offsets", "set", "-c", e.cfg, "--from", "earliest"); code != 0 {
		t.Fatalf("offsets set --from earliest: %d\n%s\n%s", code, out, errOut)
	}
	if _, out, code := e.check(); code != 0 {
		t.Fatalf("after offsets set --from earliest: exit code %d:\n%s", code, out)
	}
}
