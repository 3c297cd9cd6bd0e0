package main

import (
	"bytes"
	"encoding/json"
	"fmt"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"testing"

	"github.com/tailbox-cdc/tailbox/internal/buildinfo"
)

// runCLI runs the command line args in process and returns its exit
// status, stdout and stderr.
func runCLI(args ...string) (int, string, string) {
	var out, errb bytes.Buffer
	code := run(args, &out, &errb)
	return code, out.String(), errb.String()
}

// writeConfig writes a configuration file whose checkpoint file is
// checkpointFile and whose source password is the unset variable
// TAILBOX_TEST_UNSET_PASSWORD; extra is appended.
func writeConfig(t *testing.T, checkpointFile, extra string) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), "tailbox.yaml")
	yaml := fmt.Sprintf(`name: cli-test
source:
  addr: 127.0.0.1:1
  user: cdc
  password: ${TAILBOX_TEST_UNSET_PASSWORD}
outbox:
  tables: [shop.outbox]
kafka:
  brokers: "127.0.0.1:1,127.0.0.1:2"
checkpoint:
  file: %s
%s`, checkpointFile, extra)
	if err := os.WriteFile(path, []byte(yaml), 0o600); err != nil {
		t.Fatal(err)
	}
	return path
}

func TestHelpPrintsTheCommandsUsageOnStdoutAndExitsZero(t *testing.T) {
	tests := []struct {
		args []string
		want string // in the usage
	}{
		{[]string{"--help"}, "tailbox run     -c FILE"},
		{[]string{"-h"}, "tailbox run     -c FILE"},
		{[]string{"help"}, "tailbox run     -c FILE"},
		{[]string{"run", "--help"}, "tailbox run -c FILE [--from SPEC] [--dry-run]"},
		{[]string{"run", "-h"}, "-dry-run"},
		{[]string{"help", "run"}, "tailbox run -c FILE [--from SPEC] [--dry-run]"},
		{[]string{"check", "--help"}, "tailbox check -c FILE [-o text|json]"},
		{[]string{"offsets", "--help"}, "tailbox offsets show -c FILE"},
		{[]string{"offsets", "-h"}, "tailbox offsets set  -c FILE --from SPEC"},
		{[]string{"offsets", "show", "--help"}, "tailbox offsets show -c FILE [-o text|json]"},
		{[]string{"offsets", "set", "-h"}, "-from SPEC"},
		{[]string{"help", "offsets", "set"}, "tailbox offsets set -c FILE --from SPEC"},
		{[]string{"health", "--help"}, "tailbox health [-c FILE | -url URL] [-timeout D]"},
		{[]string{"version", "--help"}, "tailbox version"},
	}
	for _, tc := range tests {
		t.Run(strings.Join(tc.args, " "), func(t *testing.T) {
			code, out, errOut := runCLI(tc.args...)
			if code != 0 || !strings.Contains(out, tc.want) || !strings.HasPrefix(out, "Usage:") && !strings.HasPrefix(out, "tailbox —") || errOut != "" {
				t.Fatalf("exit %d, want 0 with the usage (%q) on stdout and nothing on stderr\nstdout:\n%s\nstderr:\n%s", code, tc.want, out, errOut)
			}
		})
	}
}

func TestUsageErrorsPrintOneUsageBlockAndExitTwo(t *testing.T) {
	cfg := writeConfig(t, filepath.Join(t.TempDir(), "cp.json"), "")
	tests := []struct {
		name  string
		args  []string
		want  string // the first line of stderr
		usage string // the usage that follows it
	}{
		{"an unknown flag", []string{"run", "-c", cfg, "--bogus"},
			"tailbox: run: flag provided but not defined: -bogus", "tailbox run -c FILE"},
		{"a misspelled flag", []string{"run", "-c", cfg, "--form", "latest"},
			"tailbox: run: flag provided but not defined: -form; did you mean --from?", "tailbox run -c FILE"},
		{"a misspelled command", []string{"chek", "-c", cfg},
			`tailbox: unknown command "chek"; did you mean "check"?`, "tailbox check   -c FILE"},
		{"a command nothing like one", []string{"frobnicate"},
			`tailbox: unknown command "frobnicate"`, "tailbox run     -c FILE"},
		{"a misspelled offsets command", []string{"offsets", "shwo", "-c", cfg},
			`tailbox: offsets: unknown command "shwo"; did you mean "show"?`, "tailbox offsets show -c FILE"},
		{"offsets without a command", []string{"offsets"},
			"tailbox: offsets: want `offsets show` or `offsets set`", "tailbox offsets set  -c FILE"},
		{"a missing -c", []string{"check"},
			"tailbox: check: -c FILE is required", "tailbox check -c FILE"},
		{"an unknown output format", []string{"check", "-c", cfg, "-o", "yaml"},
			`tailbox: check: -o: want text or json (got "yaml")`, "tailbox check -c FILE"},
		{"health with -c and -url", []string{"health", "-c", cfg, "-url", "http://x/healthz"},
			"tailbox: health: give -c FILE or -url URL, not both", "tailbox health"},
		{"no command", nil, "tailbox: no command given", "tailbox run     -c FILE"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			code, out, errOut := runCLI(tc.args...)
			first, rest, _ := strings.Cut(errOut, "\n")
			if code != 2 || first != tc.want || out != "" {
				t.Fatalf("exit %d, stderr's first line %q; want exit 2 and %q, nothing on stdout\nstdout:\n%s\nstderr:\n%s", code, first, tc.want, out, errOut)
			}
			if n := strings.Count(errOut, "Usage:"); n != 1 || !strings.Contains(rest, tc.usage) {
				t.Errorf("stderr has %d usage blocks, want one with %q:\n%s", n, tc.usage, errOut)
			}
		})
	}
}

func TestConfigurationErrorsAreReportedWithTheirLine(t *testing.T) {
	dir := t.TempDir()
	tests := []struct{ name, yaml, want string }{
		{"a YAML syntax error", "name: x\nsource:\n  addr: h:3306\n  user: cdc\noutbox:\n  tables: [shop.outbox\nkafka:\n  brokers: [k:9092]\n",
			"invalid YAML: line 6: did not find expected ',' or ']'"},
		{"a misspelled key", "name: x\nsource:\n  addr: h:3306\n  user: cdc\noutbox:\n  tables: [shop.outbox]\nkafka:\n  brokers: [k:9092]\nlog:\n  levle: debug\n",
			"log.levle: unknown key (line 10); did you mean log.level?"},
	}
	for i, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			path := filepath.Join(dir, fmt.Sprintf("%d.yaml", i))
			if err := os.WriteFile(path, []byte(tc.yaml), 0o600); err != nil {
				t.Fatal(err)
			}
			code, _, errOut := runCLI("check", "-c", path)
			if code != 2 || errOut != "tailbox: configuration error:\n  "+tc.want+"\n" {
				t.Fatalf("exit %d, stderr:\n%s\nwant exit 2 with %q", code, errOut, tc.want)
			}
		})
	}
}

func TestOffsetsShowReadsTheFileWithoutThePassword(t *testing.T) {
	cpFile := filepath.Join(t.TempDir(), "cp.json")
	cfg := writeConfig(t, cpFile, "")
	// offsets set would need the server: the checkpoint is written as
	// tailbox writes it, for the configuration's name and tables.
	cp := `{"version":1,"name":"cli-test","position":{"file":"mysql-bin.000003","pos":1234,"gtid":"0-1-55"},"skip":0,` +
		`"server":{"flavor":"mariadb","server_id":7,"binlog_basename":"mysql-bin"},"updated_at":"2026-01-02T03:04:05Z"}`
	if err := os.WriteFile(cpFile, []byte(cp), 0o600); err != nil {
		t.Fatal(err)
	}
	if _, set := os.LookupEnv("TAILBOX_TEST_UNSET_PASSWORD"); set {
		t.Fatal("TAILBOX_TEST_UNSET_PASSWORD is set")
	}

	code, out, errOut := runCLI("offsets", "show", "-c", cfg)
	want := "name:       cli-test\nposition:   mysql-bin.000003:1234\ngtid:       0-1-55\nskip:       0\n" +
		"server:     mariadb server_id 7 binlog mysql-bin\nupdated_at: 2026-01-02T03:04:05Z\n"
	if code != 0 || out != want {
		t.Fatalf("offsets show: exit %d\nstdout:\n%s\nwant:\n%s\nstderr:\n%s", code, out, want, errOut)
	}

	code, out, errOut = runCLI("offsets", "show", "-c", cfg, "-o", "json")
	var got struct {
		Version  int    `json:"version"`
		Name     string `json:"name"`
		Position struct {
			File string `json:"file"`
			Pos  uint32 `json:"pos"`
			GTID string `json:"gtid"`
		} `json:"position"`
		Skip   int `json:"skip"`
		Server struct {
			ServerID uint32 `json:"server_id"`
		} `json:"server"`
	}
	if code != 0 || json.Unmarshal([]byte(out), &got) != nil {
		t.Fatalf("offsets show -o json: exit %d\nstdout:\n%s\nstderr:\n%s", code, out, errOut)
	}
	if got.Version != 1 || got.Name != "cli-test" || got.Position.File != "mysql-bin.000003" || got.Position.Pos != 1234 || got.Position.GTID != "0-1-55" || got.Server.ServerID != 7 {
		t.Errorf("offsets show -o json: %+v", got)
	}

	// Commands that connect to the server still need the password.
	code, _, errOut = runCLI("offsets", "set", "-c", cfg, "--from", "latest")
	if code != 2 || !strings.Contains(errOut, "source.password: environment variable TAILBOX_TEST_UNSET_PASSWORD is not set") {
		t.Errorf("offsets set without the password: exit %d, stderr:\n%s", code, errOut)
	}
}

func TestHealthFindsThePortInTheConfiguration(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path != "/healthz" {
			http.NotFound(w, r)
			return
		}
		fmt.Fprintln(w, "ok")
	}))
	defer srv.Close()
	_, port, err := net.SplitHostPort(srv.Listener.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	cp := filepath.Join(t.TempDir(), "cp.json")
	tests := []struct {
		name, listen string
		code         int
		want         string // stdout for 0, stderr otherwise
	}{
		{"a loopback address", "127.0.0.1:" + port, 0, "http://127.0.0.1:" + port + "/healthz: 200 OK\n"},
		{"an unspecified host is probed on the loopback", "0.0.0.0:" + port, 0, "http://127.0.0.1:" + port + "/healthz: 200 OK\n"},
		{"no host is probed on the loopback", ":" + port, 0, "http://127.0.0.1:" + port + "/healthz: 200 OK\n"},
		{"the endpoint turned off", `""`, 2, `http.listen is "" in`},
		{"a port picked at each start", "127.0.0.1:0", 2, "has port 0"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			cfg := writeConfig(t, cp, "http:\n  listen: "+tc.listen+"\n")
			code, out, errOut := runCLI("health", "-c", cfg)
			got := out
			if tc.code != 0 {
				got = errOut
			}
			if code != tc.code || !strings.Contains(got, tc.want) {
				t.Fatalf("exit %d, want %d with %q\nstdout:\n%s\nstderr:\n%s", code, tc.code, tc.want, out, errOut)
			}
		})
	}
}

func TestVersionPrintsTheBuildInText(t *testing.T) {
	for _, args := range [][]string{{"version"}, {"--version"}, {"version", "-o", "text"}} {
		code, out, errOut := runCLI(args...)
		if want := buildinfo.Get().String() + "\n"; code != 0 || out != want || errOut != "" {
			t.Errorf("%v: exit %d, stdout %q, stderr %q; want 0, %q", args, code, out, errOut, want)
		}
	}
}

func TestVersionPrintsTheBuildInJSON(t *testing.T) {
	code, out, errOut := runCLI("version", "-o", "json")
	if code != 0 || errOut != "" {
		t.Fatalf("exit %d, stderr %q; want 0 and nothing", code, errOut)
	}
	var got map[string]string
	if err := json.Unmarshal([]byte(out), &got); err != nil {
		t.Fatalf("version -o json: %v\n%s", err, out)
	}
	want := map[string]string{"version": "dev", "commit": "", "go": runtime.Version(), "date": "", "platform": runtime.GOOS + "/" + runtime.GOARCH}
	if fmt.Sprint(got) != fmt.Sprint(want) {
		t.Errorf("version -o json = %v, want %v (a test binary is not stamped)", got, want)
	}
}
