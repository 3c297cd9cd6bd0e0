package e2e

import (
	"fmt"
	"net"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"github.com/tailbox-cdc/tailbox/internal/testenv"
)

// configServerID returns the source.server_id of e's config.
func (e *env) configServerID() string {
	e.t.Helper()
	b, err := os.ReadFile(e.cfg)
	if err != nil {
		e.t.Fatal(err)
	}
	m := regexp.MustCompile(`(?m)^  server_id: (\d+)$`).FindSubmatch(b)
	if m == nil {
		e.t.Fatalf("no server_id in %s", b)
	}
	return string(m[1])
}

// TestTwoConnectorsWithOneServerID runs two connectors with the same
// source.server_id. The server drops the older one's stream when the newer
// registers: it says so in its own words, naming the id, the other
// connector (its report host) and the fix, without go-mysql's struct dumps
// or error lines, and counts the takeovers in a row instead of starting
// over at attempt 1 each time. `tailbox check`, logged in with exactly the
// grants of config/outbox.sql, sees the running connector that holds the id.
func TestTwoConnectorsWithOneServerID(t *testing.T) {
	first, second := newEnv(t, "envelope"), newEnv(t, "envelope")
	id := first.configServerID()
	second.editConfig("server_id: "+second.configServerID()+"\n", "server_id: "+id+"\n")

	t.Run("run: the connector taken over says so, and backs off", func(t *testing.T) {
		a := first.start()
		defer a.stop(t)
		b := second.start()
		defer b.stop(t)
		const msg = "another replica took over source.server_id"
		waitForProc(t, "the first connector's second takeover in a row", func() bool {
			return strings.Contains(a.stderr.String(), `"takeovers":2`)
		}, a)
		logA := a.stderr.String()
		want := "source.server_id " + id + " is in use: another replica (host tailbox:e2e-" + second.dbn
		if !strings.Contains(logA, want) || !strings.Contains(logA, "give every tailbox connector and replica of the server its own source.server_id") {
			t.Fatalf("the first connector's log does not say %q and the fix:\n%s", want, logTail(logA))
		}
		for name, log := range map[string]string{"first": logA, "second": b.stderr.String()} {
			for _, l := range strings.Split(log, "\n") {
				if strings.Contains(l, `"component":"go-mysql"`) && !strings.Contains(l, `"level":"debug"`) {
					t.Errorf("%s connector: a go-mysql line above debug: %s", name, l)
				}
				if strings.Contains(l, `"error":{`) {
					t.Errorf("%s connector: an error logged as a struct: %s", name, l)
				}
				if strings.Contains(l, msg) && strings.Contains(l, "binlog connection lost") {
					t.Errorf("%s connector: a takeover logged as a lost connection: %s", name, l)
				}
			}
		}
	})

	// Last: it points second's config at a user that its end drops.
	t.Run("check, with the grants of outbox.sql, fails naming the connector that holds the id", func(t *testing.T) {
		p := first.start()
		defer p.stop(t)
		user := second.outboxSQLUser(t)
		lines, out, code := second.check()
		if code != 1 {
			t.Fatalf("exit code %d, want 1:\n%s", code, out)
		}
		_, port, _ := net.SplitHostPort(second.db.Addr)
		l := wantCheck(t, lines, out, "server_id", "FAIL", "stop the other replica, or set source.server_id to an id unique among the server's replicas")
		if want := "source.server_id " + id + " is used by a connected replica (host tailbox:e2e-" + first.dbn + ", port " + port + ")"; !strings.Contains(l.detail, want) {
			t.Fatalf("detail %q does not contain %q", l.detail, want)
		}
		for _, name := range []string{"source", "grant REPLICATION SLAVE", "grant BINLOG MONITOR", "grant SELECT on " + second.dbn + ".outbox"} {
			wantCheck(t, lines, out, name, "ok", "")
		}
		if !strings.Contains(lines["source"].detail, "connected as '"+user+"'@") {
			t.Fatalf("check did not log in as %s: %s", user, lines["source"].detail)
		}
	})
}

// outboxSQLUser creates a user with exactly the grants config/outbox.sql
// gives its cdc user, on e's database instead of shop, and points e's
// config at it; it returns the user's name.
func (e *env) outboxSQLUser(t *testing.T) string {
	t.Helper()
	sql, err := os.ReadFile(filepath.Join(testenv.RepoRoot(t), "config", "outbox.sql"))
	if err != nil {
		t.Fatal(err)
	}
	user := "cdc_" + secretHex(t, 4)
	e.db.Exec(t, fmt.Sprintf("CREATE USER '%s'@'127.0.0.1' IDENTIFIED BY 'pw'", user))
	t.Cleanup(func() { e.db.Exec(t, fmt.Sprintf("DROP USER IF EXISTS '%s'@'127.0.0.1'", user)) })
	grants := 0
	for _, l := range strings.Split(string(sql), "\n") {
		if !strings.HasPrefix(l, "GRANT ") {
			continue
		}
		l = strings.ReplaceAll(l, "'cdc'@'%'", "'"+user+"'@'127.0.0.1'")
		l = strings.ReplaceAll(l, " shop.*", " `"+e.dbn+"`.*")
		e.db.Exec(t, strings.TrimSuffix(l, ";"))
		grants++
	}
	if grants < 2 {
		t.Fatalf("config/outbox.sql has %d GRANT statements, want the replication and the SELECT grant", grants)
	}
	e.editConfig("user: "+e.db.User+"\n", "user: "+user+"\n")
	e.editConfig("password: ${E2E_MYSQL_PASSWORD}", "password: pw")
	return user
}
