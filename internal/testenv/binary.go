package testenv

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
)

// binDirPrefix names the per-process build directories in os.TempDir().
const binDirPrefix = "tailbox-testenv-"

// built holds one build per command package for the whole test process.
var built struct {
	mu     sync.Mutex
	builds map[string]*build
	dir    string // "" until the first build
}

// build is the result of building one command package, shared by all tests.
type build struct {
	once sync.Once
	path string
	err  error
}

// Binary builds github.com/tailbox-cdc/tailbox/cmd/<pkg> (e.g. "tailbox",
// "devkafka") once per test process and returns the executable's path; later
// calls, from any test, return the same path. The build directory is
// $TMPDIR/tailbox-testenv-<pid>, removed by [Main]. A failed build fails t
// with the compiler's output.
func Binary(t testing.TB, pkg string) string {
	t.Helper()
	return binary(t, "cmd", pkg)
}

// ExampleBinary builds github.com/tailbox-cdc/tailbox/examples/<name> (e.g.
// "member", "board") as [Binary] builds a command.
func ExampleBinary(t testing.TB, name string) string {
	t.Helper()
	return binary(t, "examples", name)
}

// binary builds ./<parent>/<pkg> once per test process.
func binary(t testing.TB, parent, pkg string) string {
	t.Helper()
	if pkg == "" || strings.ContainsAny(pkg, `/\. `) {
		t.Fatalf("testenv: want a directory name under %s/ (got %q)", parent, pkg)
	}
	key := parent + "/" + pkg
	built.mu.Lock()
	if built.builds == nil {
		built.builds = map[string]*build{}
		removeStaleBinDirs()
	}
	b := built.builds[key]
	if b == nil {
		b = &build{}
		built.builds[key] = b
	}
	built.mu.Unlock()

	b.once.Do(func() { b.path, b.err = buildPackage(parent, pkg) })
	if b.err != nil {
		t.Fatalf("build %s: %v", key, b.err)
	}
	return b.path
}

// buildPackage runs go build for ./<parent>/<pkg> into the process's build
// dir: the executable is named pkg for a command, <parent>-<pkg> otherwise.
func buildPackage(parent, pkg string) (string, error) {
	root, err := moduleRoot()
	if err != nil {
		return "", fmt.Errorf("find the module root: %w", err)
	}
	dir, err := binDir()
	if err != nil {
		return "", err
	}
	name := pkg
	if parent != "cmd" {
		name = parent + "-" + pkg
	}
	out := filepath.Join(dir, name)
	src := "./" + parent + "/" + pkg
	cmd := exec.Command("go", "build", "-o", out, src)
	cmd.Dir = root
	if output, err := cmd.CombinedOutput(); err != nil {
		return "", fmt.Errorf("go build %s: %w\n%s", src, err, output)
	}
	return out, nil
}

// binDir creates, once, the build directory of this process.
func binDir() (string, error) {
	built.mu.Lock()
	defer built.mu.Unlock()
	if built.dir != "" {
		return built.dir, nil
	}
	dir := filepath.Join(os.TempDir(), binDirPrefix+strconv.Itoa(os.Getpid()))
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return "", fmt.Errorf("create build directory: %w", err)
	}
	built.dir = dir
	return dir, nil
}

// removeBinDir removes this process's build directory, if any.
func removeBinDir() {
	built.mu.Lock()
	defer built.mu.Unlock()
	if built.dir != "" {
		os.RemoveAll(built.dir)
		built.dir = ""
		built.builds = nil
	}
}

// removeStaleBinDirs removes build directories of processes that no longer
// run (test binaries that ended without Main).
func removeStaleBinDirs() {
	matches, _ := filepath.Glob(filepath.Join(os.TempDir(), binDirPrefix+"*"))
	for _, dir := range matches {
		pid, err := strconv.Atoi(strings.TrimPrefix(filepath.Base(dir), binDirPrefix))
		if err != nil || pid == os.Getpid() {
			continue
		}
		if err := syscall.Kill(pid, 0); err == syscall.ESRCH {
			os.RemoveAll(dir)
		}
	}
}
