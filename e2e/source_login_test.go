package e2e

import (
	"fmt"
	"strings"
	"testing"
)

// TestRunRetriesARefusedLoginSayingSo runs tailbox with a password the
// server refuses: each attempt is logged as a refused login naming the
// account as the server saw it, at error level, never as "source
// unreachable" and without go-mysql's call chain; run keeps retrying
// (DESIGN: an auth failure under run is retried with back-off), and once
// the account accepts the password it starts.
func TestRunRetriesARefusedLoginSayingSo(t *testing.T) {
	e := newEnv(t, "envelope")
	user := "login_" + secretHex(t, 4)
	e.db.Exec(t, fmt.Sprintf("CREATE USER '%s'@'127.0.0.1' IDENTIFIED BY 'not-the-configured-one'", user))
	t.Cleanup(func() { e.db.Exec(t, fmt.Sprintf("DROP USER IF EXISTS '%s'@'127.0.0.1'", user)) })
	e.db.Exec(t, fmt.Sprintf("GRANT REPLICATION SLAVE, REPLICATION CLIENT ON *.* TO '%s'@'127.0.0.1'", user))
	e.db.Exec(t, fmt.Sprintf("GRANT SELECT ON `%s`.* TO '%s'@'127.0.0.1'", e.dbn, user))
	e.editConfig("user: "+e.db.User+"\n", "user: "+user+"\n")
	e.editConfig("password: ${E2E_MYSQL_PASSWORD}", "password: configured-pw")

	p := e.startUnchecked()
	refused := `"level":"error"` // on the same line as the message
	waitForProc(t, "two refused logins", func() bool {
		n := 0
		for _, l := range strings.Split(p.stderr.String(), "\n") {
			if strings.Contains(l, "source refused the login") && strings.Contains(l, refused) {
				n++
			}
		}
		return n >= 2
	}, p)
	out := p.stderr.String()
	account := "'" + user + "'@'127.0.0.1'"
	if want := "authentication failed for " + account + " at " + e.db.Addr; !strings.Contains(out, want) {
		t.Errorf("the log does not say %q:\n%s", want, logTail(out))
	}
	if !strings.Contains(out, "check source.user and source.password (or source.password_file)") {
		t.Errorf("the log does not name the settings to fix:\n%s", logTail(out))
	}
	for _, bad := range []string{"source unreachable", "handleAuthResult", "readAuthResult", "configured-pw"} {
		if strings.Contains(out, bad) {
			t.Errorf("the log contains %q:\n%s", bad, logTail(out))
		}
	}

	e.db.Exec(t, fmt.Sprintf("ALTER USER '%s'@'127.0.0.1' IDENTIFIED BY 'configured-pw'", user))
	waitForProc(t, "the start once the login is accepted", func() bool {
		return strings.Contains(p.stderr.String(), `"message":"starting"`)
	}, p)
	if code := p.stop(t); code != 0 {
		t.Fatalf("exit status %d after SIGTERM, want 0:\n%s", code, logTail(p.stderr.String()))
	}
}
