package testenv

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/go-mysql-org/go-mysql/client"
	"github.com/go-mysql-org/go-mysql/mysql"
)

// dialTimeout bounds connecting to MariaDB; the servers are local.
const dialTimeout = 5 * time.Second

// erConnectionKilled is MariaDB's error for a statement on a connection that
// KILL ended; like ER_SERVER_SHUTDOWN it means the connection is gone.
const erConnectionKilled = 1927

// MySQLServer is a MariaDB (or MySQL) server a test can use. Its zero value
// is not usable: get one from [MySQL] or [StartMariaDB]. Its methods are safe
// for concurrent use but call t.Fatal, so call them from test goroutines.
type MySQLServer struct {
	// Addr is the server's host:port.
	Addr string
	// User is a user with all privileges, WITH GRANT OPTION.
	User string
	// Password is User's password.
	Password string
	// Socket is the server's unix socket, "" when unknown.
	Socket string
	// Dir is the instance directory of a private instance from
	// [StartMariaDB] (my.cnf, data/, error.log); "" for the shared one.
	Dir string

	extraOpts string // [mysqld] lines of a private instance

	mu   sync.Mutex
	conn *client.Conn // nil until first used or after it broke
}

// MySQL returns the shared MariaDB configured by TAILBOX_TEST_MYSQL_*.
// When TAILBOX_TEST_MYSQL_ADDR is unset it skips t, or fails it when
// TAILBOX_TEST_REQUIRE_SERVERS=1. When the server cannot be reached it fails
// t. The returned value holds one connection, closed at t's cleanup.
func MySQL(t testing.TB) *MySQLServer {
	t.Helper()
	addr := os.Getenv(EnvMySQLAddr)
	if addr == "" {
		skipOrFail(t, "%s is not set: run `make test`, or `scripts/mariadb.sh start` and "+
			"`eval \"$(scripts/mariadb.sh env)\"`", EnvMySQLAddr)
	}
	m := &MySQLServer{
		Addr:     addr,
		User:     os.Getenv(EnvMySQLUser),
		Password: os.Getenv(EnvMySQLPassword),
		Socket:   os.Getenv(EnvMySQLSocket),
	}
	if m.User == "" {
		m.User = "root"
	}
	m.connect(t)
	return m
}

// connect opens m's connection and registers its closing with t.
func (m *MySQLServer) connect(t testing.TB) {
	t.Helper()
	conn, err := m.dial()
	if err != nil {
		t.Fatalf("connect to MariaDB at %s as %s (is it running? `scripts/mariadb.sh status`): %v", m.Addr, m.User, err)
	}
	m.mu.Lock()
	m.conn = conn
	m.mu.Unlock()
	t.Cleanup(m.closeConn)
}

func (m *MySQLServer) dial() (*client.Conn, error) {
	ctx, cancel := context.WithTimeout(context.Background(), dialTimeout)
	defer cancel()
	conn, err := client.ConnectWithContext(ctx, m.Addr, m.User, m.Password, "", dialTimeout)
	if err != nil {
		return nil, fmt.Errorf("connect to %s: %w", m.Addr, err)
	}
	return conn, nil
}

func (m *MySQLServer) closeConn() {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.conn != nil {
		m.conn.Close()
		m.conn = nil
	}
}

// Exec runs one statement on m's connection, with args as parameters of a
// prepared statement when given, and fails t on error. When the connection
// is broken (a network error, a killed connection or a server shutdown) it
// reconnects and runs the statement once more. Use fully qualified table names or a `USE` first:
// the connection has no default database.
func (m *MySQLServer) Exec(t testing.TB, query string, args ...any) *mysql.Result {
	t.Helper()
	res, err := m.exec(query, args...)
	if err != nil {
		t.Fatalf("exec %q on %s: %v", query, m.Addr, err)
	}
	return res
}

func (m *MySQLServer) exec(query string, args ...any) (*mysql.Result, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	for attempt := 0; ; attempt++ {
		if m.conn == nil {
			conn, err := m.dial()
			if err != nil {
				return nil, err
			}
			m.conn = conn
		}
		res, err := m.conn.Execute(query, args...)
		if err == nil {
			return res, nil
		}
		var myErr *mysql.MyError
		if errors.As(err, &myErr) && myErr.Code != mysql.ER_SERVER_SHUTDOWN && myErr.Code != erConnectionKilled {
			return nil, err
		}
		m.conn.Close()
		m.conn = nil
		if attempt > 0 {
			return nil, err
		}
	}
}

// Conn opens a new connection to m, with no default database, closed at t's
// cleanup: for transactions and session settings a test controls itself.
func (m *MySQLServer) Conn(t testing.TB) *client.Conn {
	t.Helper()
	conn, err := m.dial()
	if err != nil {
		t.Fatalf("open a connection to %s: %v", m.Addr, err)
	}
	t.Cleanup(func() { conn.Close() })
	return conn
}

// CreateDatabase creates a database named prefix plus a random suffix and
// returns the name; it is dropped at t's cleanup. Characters of prefix
// outside [a-z0-9_] become '_' and it is cut to 40 bytes, so the name is a
// valid identifier that needs no quoting.
func (m *MySQLServer) CreateDatabase(t testing.TB, prefix string) string {
	t.Helper()
	name := databaseName(prefix)
	m.Exec(t, "CREATE DATABASE "+name)
	t.Cleanup(func() {
		if _, err := m.exec("DROP DATABASE IF EXISTS " + name); err != nil {
			t.Errorf("drop test database %s: %v", name, err)
		}
	})
	return name
}

// databaseName returns prefix, made a safe identifier, plus a random suffix.
func databaseName(prefix string) string {
	var b strings.Builder
	for _, r := range strings.ToLower(prefix) {
		if b.Len() >= 40 {
			break
		}
		if r >= 'a' && r <= 'z' || r >= '0' && r <= '9' || r == '_' {
			b.WriteRune(r)
		} else {
			b.WriteByte('_')
		}
	}
	name := b.String()
	if name == "" || name[0] < 'a' || name[0] > 'z' {
		name = "t_" + name
	}
	var suffix [6]byte
	rand.Read(suffix[:])
	return strings.TrimRight(name, "_") + "_" + hex.EncodeToString(suffix[:])
}

// StartMariaDB starts a private MariaDB instance with scripts/mariadb.sh in
// a new temporary directory on a free port, with extraOpts (lines, e.g.
// "binlog_format=MIXED\nbinlog_row_metadata=NO_LOG") appended to its
// [mysqld] section, and stops it at t's cleanup. It is for tests of
// misconfigured servers and server restarts; everything else uses [MySQL].
// It skips t when no MariaDB server is installed, or fails it when
// TAILBOX_TEST_REQUIRE_SERVERS=1; it never installs packages. Starting takes
// about a second.
func StartMariaDB(t testing.TB, extraOpts string) *MySQLServer {
	t.Helper()
	if !mariadbInstalled() {
		skipOrFail(t, "no mariadbd found: run `make test` or `scripts/mariadb.sh start` once to install mariadb-server")
	}
	m := &MySQLServer{
		User:      "tailbox",
		Password:  "tailbox",
		Dir:       t.TempDir(),
		extraOpts: strings.TrimSpace(extraOpts),
	}
	t.Cleanup(func() {
		if m.Addr == "" {
			return
		}
		if out, err := m.runScript("stop"); err != nil {
			t.Errorf("stop MariaDB in %s: %v\n%s", m.Dir, err, out)
		}
	})
	// Another test process may take the free port before the server binds
	// it: try again on another port then.
	for attempt := 1; ; attempt++ {
		port, err := freePort()
		if err != nil {
			t.Fatalf("find a free port for MariaDB: %v", err)
		}
		m.Addr = fmt.Sprintf("127.0.0.1:%d", port)
		out, err := m.runScript("start")
		if err == nil {
			break
		}
		if attempt == 3 || !strings.Contains(string(out), "in use") {
			t.Fatalf("scripts/mariadb.sh start (dir %s, %s): %v\n%s", m.Dir, m.Addr, err, out)
		}
	}
	m.Socket = m.scriptEnv(t)[EnvMySQLSocket]
	m.connect(t)
	return m
}

// Stop shuts down a private instance from [StartMariaDB], for tests of lost
// connections; m's connection is closed and Exec reconnects after [Start].
func (m *MySQLServer) Stop(t testing.TB) {
	t.Helper()
	m.mustBePrivate(t)
	m.closeConn()
	m.script(t, "stop")
}

// Start starts a private instance stopped with [MySQLServer.Stop] again, with
// the options it was first started with.
func (m *MySQLServer) Start(t testing.TB) {
	t.Helper()
	m.mustBePrivate(t)
	m.script(t, "start")
}

func (m *MySQLServer) mustBePrivate(t testing.TB) {
	t.Helper()
	if m.Dir == "" {
		t.Fatalf("MariaDB at %s is the shared instance: only instances from StartMariaDB can be stopped and started", m.Addr)
	}
}

// script runs scripts/mariadb.sh cmd for m's instance and fails t on error.
func (m *MySQLServer) script(t testing.TB, cmd string) {
	t.Helper()
	if out, err := m.runScript(cmd); err != nil {
		t.Fatalf("scripts/mariadb.sh %s (dir %s, %s): %v\n%s", cmd, m.Dir, m.Addr, err, out)
	}
}

// scriptEnv returns the variables `scripts/mariadb.sh env` prints.
func (m *MySQLServer) scriptEnv(t testing.TB) map[string]string {
	t.Helper()
	out, err := m.runScript("env")
	if err != nil {
		t.Fatalf("scripts/mariadb.sh env: %v\n%s", err, out)
	}
	vars := map[string]string{}
	for _, f := range strings.Fields(strings.TrimPrefix(strings.TrimSpace(string(out)), "export ")) {
		if k, v, ok := strings.Cut(f, "="); ok {
			vars[k] = v
		}
	}
	return vars
}

// runScript runs scripts/mariadb.sh cmd for m's private instance and returns
// its output (stdout only for env, which prints on stdout).
func (m *MySQLServer) runScript(cmd string) ([]byte, error) {
	root, err := moduleRoot()
	if err != nil {
		return nil, fmt.Errorf("find the module root: %w", err)
	}
	_, port, _ := net.SplitHostPort(m.Addr)
	c := exec.Command("bash", filepath.Join(root, "scripts", "mariadb.sh"), cmd)
	c.Env = append(os.Environ(),
		"TAILBOX_MARIADB_DIR="+m.Dir,
		"TAILBOX_MARIADB_PORT="+port,
		"TAILBOX_MARIADB_EXTRA_OPTS="+m.extraOpts,
		"TAILBOX_MARIADB_NO_INSTALL=1",
	)
	if cmd == "env" {
		return c.Output()
	}
	return c.CombinedOutput()
}

// mariadbInstalled reports whether a MariaDB server binary is installed.
func mariadbInstalled() bool {
	for _, name := range []string{"mariadbd", "mysqld"} {
		if _, err := exec.LookPath(name); err == nil {
			return true
		}
		for _, dir := range []string{"/usr/sbin", "/usr/local/sbin", "/sbin", "/usr/libexec"} {
			if fi, err := os.Stat(filepath.Join(dir, name)); err == nil && fi.Mode()&0o111 != 0 {
				return true
			}
		}
	}
	return false
}

// freePort returns a TCP port on 127.0.0.1 that was free a moment ago.
func freePort() (int, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, fmt.Errorf("listen on 127.0.0.1:0: %w", err)
	}
	defer ln.Close()
	return ln.Addr().(*net.TCPAddr).Port, nil
}

// OutboxDDL creates the outbox table of DESIGN.md (Debezium's column names)
// in the database named by its one %s verb.
const OutboxDDL = `CREATE TABLE %s.outbox (
  id            CHAR(36)     NOT NULL PRIMARY KEY,
  aggregatetype VARCHAR(255) NOT NULL,
  aggregateid   VARCHAR(255) NOT NULL,
  type          VARCHAR(255) NOT NULL,
  payload       JSON,
  created_at    TIMESTAMP(6) NOT NULL DEFAULT CURRENT_TIMESTAMP(6)
)`
