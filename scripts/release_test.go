package scripts

import (
	"bufio"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"runtime"
	"slices"
	"strings"
	"testing"
)

// repoRoot is the module root, the parent of this directory.
func repoRoot(t *testing.T) string {
	t.Helper()
	root, err := filepath.Abs("..")
	if err != nil {
		t.Fatalf("find the module root: %v", err)
	}
	return root
}

// command runs name with args in dir, extra environment variables env
// ("NAME=value") added, and returns its stdout; a failure fails t with
// its output.
func command(t *testing.T, dir string, env []string, name string, args ...string) string {
	t.Helper()
	cmd := exec.Command(name, args...)
	cmd.Dir = dir
	cmd.Env = append(os.Environ(), env...)
	var stdout, stderr strings.Builder
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Run(); err != nil {
		t.Fatalf("%s %s: %v\nstdout:\n%s\nstderr:\n%s", name, strings.Join(args, " "), err, stdout.String(), stderr.String())
	}
	return stdout.String()
}

// readSums parses a SHA256SUMS file (sha256sum's "HASH  NAME" lines) into
// name → hash.
func readSums(t *testing.T, path string) map[string]string {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("read SHA256SUMS: %v", err)
	}
	line := regexp.MustCompile(`^([0-9a-f]{64})  (\S+)$`)
	sums := map[string]string{}
	for l := range strings.Lines(string(b)) {
		m := line.FindStringSubmatch(strings.TrimSuffix(l, "\n"))
		if m == nil {
			t.Fatalf("SHA256SUMS line %q is not sha256sum's HASH  NAME", l)
		}
		sums[m[2]] = m[1]
	}
	return sums
}

func fileSHA256(t *testing.T, path string) string {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	sum := sha256.Sum256(b)
	return hex.EncodeToString(sum[:])
}

// copyDockerContext copies what .dockerignore lets into the Docker build
// context (its "!" lines, without tests and testdata) from root to dst.
func copyDockerContext(t *testing.T, root, dst string) {
	t.Helper()
	ignore, err := os.ReadFile(filepath.Join(root, ".dockerignore"))
	if err != nil {
		t.Fatalf("read .dockerignore: %v", err)
	}
	var included []string
	for l := range strings.Lines(string(ignore)) {
		if p, ok := strings.CutPrefix(strings.TrimSpace(l), "!"); ok {
			included = append(included, strings.TrimSuffix(p, "/"))
		}
	}
	if !slices.Contains(included, "Makefile") || !slices.Contains(included, "go.mod") {
		t.Fatalf(".dockerignore lets in %v, want at least go.mod and the Makefile that `make binary` needs", included)
	}
	for _, p := range included {
		err := filepath.WalkDir(filepath.Join(root, p), func(path string, d fs.DirEntry, err error) error {
			if err != nil {
				return err
			}
			if d.IsDir() && d.Name() == "testdata" || strings.HasSuffix(path, "_test.go") {
				if d.IsDir() {
					return filepath.SkipDir
				}
				return nil
			}
			rel, _ := filepath.Rel(root, path)
			info, err := d.Info()
			if err != nil {
				return err
			}
			if d.IsDir() {
				return os.MkdirAll(filepath.Join(dst, rel), 0o755)
			}
			b, err := os.ReadFile(path)
			if err != nil {
				return err
			}
			if err := os.MkdirAll(filepath.Dir(filepath.Join(dst, rel)), 0o755); err != nil {
				return err
			}
			return os.WriteFile(filepath.Join(dst, rel), b, info.Mode().Perm())
		})
		if err != nil {
			t.Fatalf("copy %s into the build context: %v", p, err)
		}
	}
}

// buildInfo is `tailbox version -o json`.
type buildInfo struct {
	Version  string `json:"version"`
	Commit   string `json:"commit"`
	Go       string `json:"go"`
	Date     string `json:"date"`
	Platform string `json:"platform"`
}

// TestReleaseIsReproducible runs `make release` for this machine's platform
// twice and `make binary` — the Dockerfile's build — in a copy of the
// Docker build context (another path, no .git): all three binaries are
// byte-identical, SHA256SUMS lists every file with its hash, the binary
// reports the version, commit and commit time git gives, and
// THIRD_PARTY_LICENSES covers every module linked into it.
func TestReleaseIsReproducible(t *testing.T) {
	platform := runtime.GOOS + "/" + runtime.GOARCH
	if !slices.Contains([]string{"linux/amd64", "linux/arm64", "darwin/amd64", "darwin/arm64"}, platform) {
		t.Skipf("make release does not build for %s, so its binary cannot run here", platform)
	}
	root := repoRoot(t)
	version := strings.TrimSpace(command(t, root, nil, "scripts/version.sh", "version"))
	commit := strings.TrimSpace(command(t, root, nil, "git", "rev-parse", "HEAD"))
	date := strings.TrimSpace(command(t, root, []string{"TZ=UTC0"}, "git", "show", "-s", "--format=%cd", "--date=format-local:%Y-%m-%dT%H:%M:%SZ", "HEAD"))
	goVersion := strings.TrimSpace(command(t, root, nil, "go", "env", "GOVERSION"))
	name := "tailbox-" + version + "-" + strings.ReplaceAll(platform, "/", "-")

	dists := []string{t.TempDir(), t.TempDir()}
	for _, dist := range dists {
		command(t, root, nil, "make", "--no-print-directory", "release", "PLATFORMS="+platform, "DIST="+dist)
	}
	ctx, out := t.TempDir(), filepath.Join(t.TempDir(), "tailbox")
	copyDockerContext(t, root, ctx)
	command(t, ctx, nil, "make", "--no-print-directory", "binary", "GOOS="+runtime.GOOS, "GOARCH="+runtime.GOARCH, "OUT="+out,
		"VERSION="+version, "COMMIT="+commit, "DATE="+date)

	t.Run("two releases and the Docker build are byte-identical", func(t *testing.T) {
		want := fileSHA256(t, filepath.Join(dists[0], name))
		for _, bin := range []string{filepath.Join(dists[1], name), out} {
			if got := fileSHA256(t, bin); got != want {
				t.Errorf("%s has SHA-256 %s, want %s (the first release's %s)", bin, got, want, name)
			}
		}
		first, err := os.ReadFile(filepath.Join(dists[0], "SHA256SUMS"))
		if err != nil {
			t.Fatal(err)
		}
		second, err := os.ReadFile(filepath.Join(dists[1], "SHA256SUMS"))
		if err != nil {
			t.Fatal(err)
		}
		if string(first) != string(second) {
			t.Errorf("the two releases' SHA256SUMS differ:\n%s\n%s", first, second)
		}
	})

	t.Run("SHA256SUMS lists every file of the release with its hash", func(t *testing.T) {
		sums := readSums(t, filepath.Join(dists[0], "SHA256SUMS"))
		entries, err := os.ReadDir(dists[0])
		if err != nil {
			t.Fatal(err)
		}
		var files []string
		for _, e := range entries {
			if e.Name() != "SHA256SUMS" {
				files = append(files, e.Name())
			}
		}
		want := []string{"LICENSE", "NOTICE", "THIRD_PARTY_LICENSES", name}
		slices.Sort(want)
		if !slices.Equal(files, want) {
			t.Errorf("the release holds %v, want %v and SHA256SUMS", files, want)
		}
		for _, f := range files {
			if got := fileSHA256(t, filepath.Join(dists[0], f)); sums[f] != got {
				t.Errorf("SHA256SUMS gives %s %q, the file hashes to %s", f, sums[f], got)
			}
		}
		if len(sums) != len(files) {
			t.Errorf("SHA256SUMS lists %d files, the release holds %d: %v", len(sums), len(files), sums)
		}
	})

	bin := filepath.Join(dists[0], name)
	t.Run("the binary reports the version, commit and commit time", func(t *testing.T) {
		var got buildInfo
		if err := json.Unmarshal([]byte(command(t, root, nil, bin, "version", "-o", "json")), &got); err != nil {
			t.Fatalf("tailbox version -o json: %v", err)
		}
		want := buildInfo{Version: version, Commit: commit, Go: goVersion, Date: date, Platform: platform}
		if got != want {
			t.Errorf("tailbox version -o json = %+v, want %+v", got, want)
		}
		text := command(t, root, nil, bin, "version")
		if want := "tailbox " + version + " (commit " + commit[:12] + ", built " + date + ", " + goVersion + " " + platform + ")\n"; text != want {
			t.Errorf("tailbox version = %q, want %q", text, want)
		}
	})

	t.Run("the binary is static, without build paths or a VCS stamp", func(t *testing.T) {
		deps := command(t, root, nil, "go", "version", "-m", bin)
		for _, setting := range []string{"CGO_ENABLED=0", "-trimpath=true"} {
			if !strings.Contains(deps, "\tbuild\t"+setting+"\n") {
				t.Errorf("go version -m: no build setting %s:\n%s", setting, deps)
			}
		}
		if strings.Contains(deps, "\tbuild\tvcs") {
			t.Errorf("go version -m: a VCS stamp, which -buildvcs=false leaves out:\n%s", deps)
		}
	})

	t.Run("THIRD_PARTY_LICENSES covers every module in the binary", func(t *testing.T) {
		licences, err := os.ReadFile(filepath.Join(dists[0], "THIRD_PARTY_LICENSES"))
		if err != nil {
			t.Fatal(err)
		}
		sc := bufio.NewScanner(strings.NewReader(command(t, root, nil, "go", "version", "-m", bin)))
		n := 0
		for sc.Scan() {
			f := strings.Fields(sc.Text())
			if len(f) < 3 || f[0] != "dep" {
				continue
			}
			n++
			if !strings.Contains(string(licences), "\n"+f[1]+" "+f[2]+" — ") {
				t.Errorf("THIRD_PARTY_LICENSES has no licence of %s %s", f[1], f[2])
			}
		}
		if n == 0 {
			t.Errorf("go version -m %s lists no modules", bin)
		}
	})
}

// TestNoticeCarriesEveryDependencyNotice: NOTICE reproduces the NOTICE file
// of every module linked into a release binary (Apache-2.0 §4(d)), as
// scripts/licenses.sh finds them in the module cache.
func TestNoticeCarriesEveryDependencyNotice(t *testing.T) {
	root := repoRoot(t)
	notice, err := os.ReadFile(filepath.Join(root, "NOTICE"))
	if err != nil {
		t.Fatalf("read NOTICE: %v", err)
	}
	out := command(t, root, nil, "scripts/licenses.sh", "linux/amd64", "linux/arm64", "darwin/amd64", "darwin/arm64")
	rule := strings.Repeat("=", 80)
	sections := strings.Split(out, "\n"+rule+"\n")
	found := 0
	// sections alternate: a heading, then the text under it.
	for i := 1; i+1 < len(sections); i += 2 {
		heading, text := sections[i], strings.TrimSpace(sections[i+1])
		if !strings.HasSuffix(heading, " — NOTICE") {
			continue
		}
		found++
		if !strings.Contains(string(notice), text) {
			t.Errorf("NOTICE does not reproduce %s:\n%s", heading, text)
		}
	}
	if found == 0 {
		t.Fatalf("scripts/licenses.sh found no NOTICE file; its output:\n%.2000s", out)
	}
}

// TestDockerfileBuildsWithMakeBinary: the image's binary is built by the
// command make release uses, stamped from the VERSION, COMMIT and DATE
// build args.
func TestDockerfileBuildsWithMakeBinary(t *testing.T) {
	b, err := os.ReadFile(filepath.Join(repoRoot(t), "Dockerfile"))
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []*regexp.Regexp{
		regexp.MustCompile(`(?m)^ARG VERSION COMMIT DATE$`),
		regexp.MustCompile(`make binary GOOS="\$TARGETOS" GOARCH="\$TARGETARCH" OUT=/out/tailbox \\\n\s+VERSION="\$VERSION" COMMIT="\$COMMIT" DATE="\$DATE"`),
		regexp.MustCompile(`COPY --from=build /out/tailbox /usr/local/bin/tailbox`),
	} {
		if !want.Match(b) {
			t.Errorf("Dockerfile does not match %s", want)
		}
	}
}
