// Package testenv gives integration and end-to-end tests the servers they
// need: the shared MariaDB that scripts/mariadb.sh starts, private MariaDB
// instances with chosen settings, in-process Kafka-protocol clusters
// (franz-go kfake), and binaries of this module built once per test process.
//
// Environment (set by scripts/test.sh, i.e. `make test`; print it for a
// running instance with `scripts/mariadb.sh env`):
//
//	TAILBOX_TEST_MYSQL_ADDR       host:port of the shared MariaDB (TCP)
//	TAILBOX_TEST_MYSQL_USER       its user, with all privileges
//	TAILBOX_TEST_MYSQL_PASSWORD   that user's password
//	TAILBOX_TEST_MYSQL_SOCKET     its unix socket (informational)
//	TAILBOX_TEST_REQUIRE_SERVERS  "1": a test whose server is not configured
//	                              fails instead of skipping
//
// Without TAILBOX_TEST_MYSQL_ADDR, tests that need MariaDB skip, so that
// `go test ./...` works on a bare machine; `make test` sets
// TAILBOX_TEST_REQUIRE_SERVERS=1 so that nothing is skipped silently there.
// A configured server that cannot be reached always fails the test.
//
// Every test uses its own database ([MySQLServer.CreateDatabase]) and its own
// Kafka cluster ([Kafka]), so tests may run in parallel. Helpers call
// t.Fatal: use them from the test goroutine only.
//
// Packages that call [Binary] should run their tests through [Main]:
//
//	func TestMain(m *testing.M) { testenv.Main(m) }
//
// which removes the build directory when the tests end. Without it the
// directory ($TMPDIR/tailbox-testenv-<pid>) stays until a later test process
// calls Binary, which removes directories of processes that no longer run.
package testenv

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
)

// Environment variables read by this package.
const (
	EnvMySQLAddr      = "TAILBOX_TEST_MYSQL_ADDR"
	EnvMySQLUser      = "TAILBOX_TEST_MYSQL_USER"
	EnvMySQLPassword  = "TAILBOX_TEST_MYSQL_PASSWORD"
	EnvMySQLSocket    = "TAILBOX_TEST_MYSQL_SOCKET"
	EnvRequireServers = "TAILBOX_TEST_REQUIRE_SERVERS"
)

// ServersRequired reports whether TAILBOX_TEST_REQUIRE_SERVERS=1, i.e.
// whether a test must fail rather than skip when a server is not configured.
func ServersRequired() bool {
	return os.Getenv(EnvRequireServers) == "1"
}

// skipOrFail skips t, or fails it when the environment says the servers are
// there.
func skipOrFail(t testing.TB, format string, args ...any) {
	t.Helper()
	if ServersRequired() {
		t.Fatalf(format+" ("+EnvRequireServers+"=1)", args...)
	}
	t.Skipf(format, args...)
}

// Main runs the tests of a package and then removes what this package
// created for the whole process (the build directory of [Binary]). Call it
// from TestMain; it does not return.
func Main(m *testing.M) {
	code := m.Run()
	removeBinDir()
	os.Exit(code)
}

// moduleRoot finds, once, the directory of this module's go.mod.
var moduleRoot = sync.OnceValues(func() (string, error) {
	out, err := exec.Command("go", "env", "GOMOD").Output()
	if err != nil {
		return "", fmt.Errorf("go env GOMOD: %w", err)
	}
	gomod := strings.TrimSpace(string(out))
	if gomod == "" || gomod == os.DevNull {
		return "", fmt.Errorf("go env GOMOD: not inside a module (got %q)", gomod)
	}
	return filepath.Dir(gomod), nil
})

// RepoRoot returns the directory of this module's go.mod, found with
// `go env GOMOD` from the test's working directory.
func RepoRoot(t testing.TB) string {
	t.Helper()
	dir, err := moduleRoot()
	if err != nil {
		t.Fatalf("find the module root with go env GOMOD: %v", err)
	}
	return dir
}
