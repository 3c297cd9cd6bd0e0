// Package e2e drives the built tailbox binary as a subprocess against the
// real MariaDB of scripts/mariadb.sh and an in-process kfake broker.
package e2e

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"sort"
	"strings"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/tailbox-cdc/tailbox/internal/testenv"
)

func TestMain(m *testing.M) { testenv.Main(m) }

// env is one test's MariaDB database, Kafka cluster and config.
type env struct {
	t     *testing.T
	db    *testenv.MySQLServer
	dbn   string
	kafka *testenv.KafkaCluster
	dir   string
	cfg   string
	// noFile: the checkpoint is not in checkpointPath (checkpoint.store
	// kafka), so start waits for the "starting" line instead.
	noFile bool
	// workDir is the working directory tailbox runs in ("": the test's).
	workDir string
}

var serverIDs atomic.Uint32

func init() { serverIDs.Store(6000) }

// newEnv creates the database (outbox and members tables), a broker and a
// config file; extra is YAML appended under outbox: (indented by the caller).
func newEnv(t *testing.T, format string) *env {
	t.Helper()
	e := &env{t: t, db: testenv.MySQL(t), kafka: testenv.Kafka(t), dir: t.TempDir()}
	e.dbn = e.db.CreateDatabase(t, "e2e")
	e.db.Exec(t, fmt.Sprintf(testenv.OutboxDDL, e.dbn))
	e.db.Exec(t, fmt.Sprintf("CREATE TABLE %s.members (id VARCHAR(36) PRIMARY KEY, name VARCHAR(100), status VARCHAR(20))", e.dbn))
	e.cfg = filepath.Join(e.dir, "tailbox.yaml")
	e.writeConfig(format, "")
	return e
}

func (e *env) writeConfig(format, extra string) {
	e.t.Helper()
	yaml := fmt.Sprintf(`name: e2e-%s
source:
  addr: %s
  user: %s
  password: ${E2E_MYSQL_PASSWORD}
  server_id: %d
  heartbeat: 1s
outbox:
  tables: [%s.outbox]
  format: %s
%skafka:
  brokers: [%s]
  linger: 1ms
checkpoint:
  file: %s
  interval: 100ms
http:
  listen: 127.0.0.1:0
log:
  level: debug
`, e.dbn, e.db.Addr, e.db.User, serverIDs.Add(1), e.dbn, format, extra, strings.Join(e.kafka.Addrs, ","), filepath.Join(e.dir, "data", "checkpoint.json"))
	if err := os.WriteFile(e.cfg, []byte(yaml), 0o600); err != nil {
		e.t.Fatal(err)
	}
}

func (e *env) checkpointPath() string { return filepath.Join(e.dir, "data", "checkpoint.json") }

// proc is a running tailbox.
type proc struct {
	cmd    *exec.Cmd
	stdout *testenv.SyncBuffer
	stderr *testenv.SyncBuffer
	done   chan struct{}
	err    error
}

func (e *env) command(args ...string) *exec.Cmd {
	cmd := exec.Command(testenv.Binary(e.t, "tailbox"), args...)
	cmd.Dir = e.workDir
	cmd.Env = os.Environ()
	if e.db != nil {
		cmd.Env = append(cmd.Env, "E2E_MYSQL_PASSWORD="+e.db.Password)
	}
	return cmd
}

// start runs `tailbox run -c CFG args...` and waits until it has written
// its first checkpoint (its start position is then fixed).
func (e *env) start(args ...string) *proc {
	e.t.Helper()
	before := modTime(e.checkpointPath())
	p := e.startUnchecked(args...)
	deadline := time.Now().Add(30 * time.Second)
	for {
		if m := modTime(e.checkpointPath()); !m.IsZero() && m != before {
			return p
		}
		out := p.stderr.String()
		if strings.Contains(out, `"message":"starting"`) && (!before.IsZero() || e.noFile || slices.Contains(args, "--dry-run")) {
			return p // resumed from an existing checkpoint, or writes none
		}
		if e.noFile && strings.Contains(out, "standing by until this replica holds the ha lease") {
			return p // an ha replica, waiting
		}
		select {
		case <-p.done:
			e.t.Fatalf("tailbox exited early (%v):\n%s", p.err, logTail(p.stderr.String()))
		case <-time.After(20 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			e.t.Fatalf("tailbox did not start within 30s:\n%s", logTail(p.stderr.String()))
		}
	}
}

// startUnchecked runs `tailbox run -c CFG args...` without waiting for
// anything; at cleanup the process is killed if still running, and its log
// is shown (and saved) when the test failed.
func (e *env) startUnchecked(args ...string) *proc {
	e.t.Helper()
	p := &proc{cmd: e.command(append([]string{"run", "-c", e.cfg}, args...)...), stdout: &testenv.SyncBuffer{}, stderr: &testenv.SyncBuffer{}, done: make(chan struct{})}
	p.cmd.Stdout, p.cmd.Stderr = p.stdout, p.stderr
	if err := p.cmd.Start(); err != nil {
		e.t.Fatal(err)
	}
	go func() { p.err = p.cmd.Wait(); close(p.done) }()
	e.t.Cleanup(func() {
		select {
		case <-p.done:
		default:
			_ = p.cmd.Process.Kill()
			<-p.done
		}
		if e.t.Failed() {
			e.t.Logf("tailbox stderr%s:\n%s", saveLog(e.t, p.stderr.String()), logTail(p.stderr.String()))
		}
	})
	return p
}

// logTail is what a failure message shows of a tailbox log: its last 60
// lines without sarama's debug chatter, so that the test's own message stays
// within sight at the end of a long CI log. saveLog keeps the whole log.
func logTail(log string) string {
	const keep = 60
	var lines []string
	for _, l := range strings.Split(strings.TrimRight(log, "\n"), "\n") {
		if strings.Contains(l, `"level":"debug","component":"sarama"`) {
			continue
		}
		lines = append(lines, l)
	}
	if len(lines) > keep {
		return fmt.Sprintf("[%d earlier lines and sarama's debug lines left out]\n%s", len(lines)-keep, strings.Join(lines[len(lines)-keep:], "\n"))
	}
	return strings.Join(lines, "\n")
}

// saveLog writes a failed test's whole tailbox log under
// $TAILBOX_TEST_ARTIFACTS (scripts/test.sh sets it) and returns " (whole log:
// PATH)", or "" when the variable is unset or the file cannot be written.
func saveLog(t *testing.T, log string) string {
	dir := os.Getenv("TAILBOX_TEST_ARTIFACTS")
	if dir == "" {
		return ""
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return ""
	}
	f, err := os.CreateTemp(dir, strings.NewReplacer("/", "_", " ", "_").Replace(t.Name())+"-*.log")
	if err != nil {
		return ""
	}
	defer f.Close()
	if _, err := f.WriteString(log); err != nil {
		return ""
	}
	return " (whole log: " + f.Name() + ")"
}

func modTime(path string) time.Time {
	st, err := os.Stat(path)
	if err != nil {
		return time.Time{}
	}
	return st.ModTime()
}

// stop sends SIGTERM and returns the exit code.
func (p *proc) stop(t *testing.T) int {
	t.Helper()
	_ = p.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-p.done:
	case <-time.After(60 * time.Second):
		t.Fatalf("tailbox did not stop within 60s after SIGTERM:\n%s", logTail(p.stderr.String()))
	}
	return exitCode(p.err)
}

func exitCode(err error) int {
	var ee *exec.ExitError
	if errors.As(err, &ee) {
		return ee.ExitCode()
	}
	if err != nil {
		return -1
	}
	return 0
}

// runCmd runs tailbox to completion and returns stdout, stderr and the exit code.
func (e *env) runCmd(args ...string) (string, string, int) {
	e.t.Helper()
	cmd := e.command(args...)
	var out, errb bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	done := make(chan error, 1)
	if err := cmd.Start(); err != nil {
		e.t.Fatal(err)
	}
	go func() { done <- cmd.Wait() }()
	select {
	case err := <-done:
		return out.String(), errb.String(), exitCode(err)
	case <-ctx.Done():
		_ = cmd.Process.Kill()
		e.t.Fatalf("tailbox %v did not finish within a minute:\n%s", args, errb.String())
	}
	return "", "", -1
}

// tx runs statements in one transaction.
func (e *env) tx(stmts ...string) {
	e.t.Helper()
	c := e.db.Conn(e.t)
	for _, s := range append(append([]string{"BEGIN"}, stmts...), "COMMIT") {
		if _, err := c.Execute(s); err != nil {
			e.t.Fatalf("%s: %v", s, err)
		}
	}
}

func (e *env) outboxInsert(id, aggType, aggID, typ, payload string) string {
	return fmt.Sprintf("INSERT INTO %s.outbox (id, aggregatetype, aggregateid, type, payload) VALUES ('%s','%s','%s','%s','%s')",
		e.dbn, id, aggType, aggID, typ, payload)
}

// topics lists the broker's topics.
func (e *env) topics() []string {
	e.t.Helper()
	cl := e.kafka.Client(e.t)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	resp, err := kmsg.NewPtrMetadataRequest().RequestWith(ctx, cl)
	if err != nil {
		e.t.Fatalf("metadata: %v", err)
	}
	var names []string
	for _, tp := range resp.Topics {
		if tp.Topic != nil {
			names = append(names, *tp.Topic)
		}
	}
	sort.Strings(names)
	return names
}

func header(r *kgo.Record, key string) (string, bool) {
	for _, h := range r.Headers {
		if h.Key == key {
			return string(h.Value), true
		}
	}
	return "", false
}

func ids(recs []*kgo.Record) []string {
	out := make([]string, len(recs))
	for i, r := range recs {
		out[i], _ = header(r, "id")
	}
	return out
}

// binlogEnd returns the server's current binlog file and position.
func (e *env) binlogEnd() string {
	e.t.Helper()
	r := e.db.Exec(e.t, "SHOW MASTER STATUS")
	file, _ := r.GetString(0, 0)
	pos, _ := r.GetUint(0, 1)
	return fmt.Sprintf("%s:%d", file, pos)
}
