package e2e

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/tailbox-cdc/tailbox/internal/testenv"
)

// example is a running example service (examples/member, examples/board).
type example struct {
	name   string
	cmd    *exec.Cmd
	stdout *testenv.SyncBuffer
	stderr *testenv.SyncBuffer
	done   chan struct{}
	err    error
}

// startExample runs the example service name with args and env; at
// cleanup it is killed if still running, and its output is shown when the
// test failed.
func startExample(t *testing.T, name string, env []string, args ...string) *example {
	t.Helper()
	x := &example{name: name, cmd: exec.Command(testenv.ExampleBinary(t, name), args...),
		stdout: &testenv.SyncBuffer{}, stderr: &testenv.SyncBuffer{}, done: make(chan struct{})}
	x.cmd.Env = append(os.Environ(), env...)
	x.cmd.Stdout, x.cmd.Stderr = x.stdout, x.stderr
	if err := x.cmd.Start(); err != nil {
		t.Fatalf("start examples/%s: %v", name, err)
	}
	go func() { x.err = x.cmd.Wait(); close(x.done) }()
	t.Cleanup(func() {
		select {
		case <-x.done:
		default:
			_ = x.cmd.Process.Kill()
			<-x.done
		}
		if t.Failed() {
			t.Logf("examples/%s %v:\nstdout:\n%s\nstderr:\n%s", name, args, x.stdout, logTail(x.stderr.String()))
		}
	})
	return x
}

// wait waits for the service to exit by itself and fails t unless it
// exits 0 within timeout.
func (x *example) wait(t *testing.T, timeout time.Duration) {
	t.Helper()
	select {
	case <-x.done:
	case <-time.After(timeout):
		t.Fatalf("examples/%s still running after %v", x.name, timeout)
	}
	if x.err != nil {
		t.Fatalf("examples/%s: %v\n%s%s", x.name, x.err, x.stdout, x.stderr)
	}
}

// runExample runs the example service to its end and returns its stdout.
func runExample(t *testing.T, name string, env []string, args ...string) string {
	t.Helper()
	x := startExample(t, name, env, args...)
	x.wait(t, time.Minute)
	return x.stdout.String()
}

// boardStats reads the counters examples/board writes with -stats.
func boardStats(t *testing.T, path string) map[string]int {
	t.Helper()
	b, err := os.ReadFile(path)
	if os.IsNotExist(err) {
		return map[string]int{}
	}
	if err != nil {
		t.Fatal(err)
	}
	stats := map[string]int{}
	for _, f := range strings.Fields(string(b)) {
		var n int
		k, v, _ := strings.Cut(f, "=")
		if _, err := fmt.Sscan(v, &n); err != nil {
			t.Fatalf("board stats %q: %v", b, err)
		}
		stats[k] = n
	}
	return stats
}

// TestExampleServices runs the demo's scenario (scripts/demo.sh) on the
// built example services: examples/member withdraws members, each with its
// MemberWithdrawn event in the same transaction (every 7th rolled back);
// the real tailbox relays them and is killed with -9 mid-stream, once the
// board has applied events published after its first checkpoints (the
// periodic one is an hour away), so that its restart publishes them again;
// examples/board hides the withdrawn
// members' posts through the inbox. Exactly the committed withdrawals hide
// their member's posts, once; every redelivered event is a no-op.
func TestExampleServices(t *testing.T) {
	e := newEnv(t, "envelope")
	// Before the kill, checkpoints are written only in the first moments
	// (the start point, and one when the stream first pauses; the next one
	// after a pause waits a tenth of the interval): the events published
	// after them are sent again after the kill.
	cfg, err := os.ReadFile(e.cfg)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(e.cfg, []byte(strings.Replace(string(cfg), "interval: 100ms", "interval: 1h", 1)), 0o600); err != nil {
		t.Fatal(err)
	}
	e.db.Exec(t, fmt.Sprintf("DROP TABLE %s.outbox, %s.members", e.dbn, e.dbn)) // the member service creates its own
	boardDB := e.db.CreateDatabase(t, "board")
	dsn := func(db string) string {
		return fmt.Sprintf("%s:%s@tcp(%s)/%s", e.db.User, e.db.Password, e.db.Addr, db)
	}
	memberEnv, boardEnv := []string{"MEMBER_DSN=" + dsn(e.dbn)}, []string{"BOARD_DSN=" + dsn(boardDB)}

	const members, posts = 120, 2
	runExample(t, "member", memberEnv, "setup", "-members", fmt.Sprint(members))
	runExample(t, "board", boardEnv, "setup", "-members", fmt.Sprint(members), "-posts", fmt.Sprint(posts))

	stats := filepath.Join(t.TempDir(), "board.stats")
	board := startExample(t, "board", boardEnv, "run", "-brokers", strings.Join(e.kafka.Addrs, ","), "-stats", stats)
	p := e.start()
	member := startExample(t, "member", memberEnv, "withdraw", "-every", "5ms", "-fail-every", "7", fmt.Sprintf("1-%d", members))

	// kill -9 mid-stream, once the board has applied a part of the events.
	waitFor(t, time.Minute, "the board applied 20 events", func() bool { return boardStats(t, stats)["applied"] >= 20 })
	p.kill9(t)
	atKill := boardStats(t, stats)["applied"]
	p = e.start()
	member.wait(t, time.Minute)

	memberDB, boardSQL := e.db.DB(t, e.dbn), e.db.DB(t, boardDB)
	var committed int
	if err := memberDB.QueryRow("SELECT COUNT(*) FROM outbox").Scan(&committed); err != nil {
		t.Fatal(err)
	}
	waitFor(t, time.Minute, fmt.Sprintf("the board applied all %d events", committed), func() bool { return boardStats(t, stats)["applied"] >= committed })
	if code := p.stop(t); code != 0 {
		t.Fatalf("tailbox exited %d after SIGTERM", code)
	}
	records := len(e.kafka.ConsumeAll(t, []string{"outbox.event.member"}, time.Second))
	waitFor(t, time.Minute, fmt.Sprintf("the board consumed all %d records", records), func() bool { return boardStats(t, stats)["consumed"] >= records })
	if err := board.cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	board.wait(t, 30*time.Second)
	final := boardStats(t, stats)
	if !strings.Contains(board.stdout.String(), fmt.Sprintf("consumed=%d applied=%d noops=%d", final["consumed"], final["applied"], final["noops"])) {
		t.Errorf("the board's last words %q do not match its stats %v", board.stdout, final)
	}

	// The member service's view: who withdrew, who stayed (every 7th rolled back).
	var withdrawn []int
	rows, err := memberDB.Query("SELECT id FROM members WHERE status = 'WITHDRAWN' ORDER BY id")
	if err != nil {
		t.Fatal(err)
	}
	for rows.Next() {
		var id int
		if err := rows.Scan(&id); err != nil {
			t.Fatal(err)
		}
		withdrawn = append(withdrawn, id)
	}
	if err := rows.Err(); err != nil {
		t.Fatal(err)
	}
	if want := members - members/7; len(withdrawn) != want || committed != want {
		t.Fatalf("%d members withdrawn, %d events committed; want %d of each (every 7th of %d rolled back)", len(withdrawn), committed, want, members)
	}

	// The board's view: exactly the withdrawn members' posts are hidden.
	var hiddenAuthors []int
	rows, err = boardSQL.Query("SELECT author_id FROM posts WHERE hidden GROUP BY author_id HAVING COUNT(*) = ? ORDER BY author_id", posts)
	if err != nil {
		t.Fatal(err)
	}
	for rows.Next() {
		var id int
		if err := rows.Scan(&id); err != nil {
			t.Fatal(err)
		}
		hiddenAuthors = append(hiddenAuthors, id)
	}
	if err := rows.Err(); err != nil {
		t.Fatal(err)
	}
	var hidden, inboxRows int
	if err := boardSQL.QueryRow("SELECT (SELECT COUNT(*) FROM posts WHERE hidden), (SELECT COUNT(*) FROM inbox)").Scan(&hidden, &inboxRows); err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(hiddenAuthors, withdrawn) || hidden != posts*len(withdrawn) {
		t.Errorf("posts hidden: %d, all of members %v; want the %d posts of the withdrawn members %v", hidden, hiddenAuthors, posts*len(withdrawn), withdrawn)
	}
	if inboxRows != committed || final["applied"] != committed || final["hidden"] != hidden {
		t.Errorf("inbox rows %d, stats %v; want %d events applied once each, hiding %d posts", inboxRows, final, committed, hidden)
	}
	if final["consumed"] != records || final["noops"] != records-committed || final["skipped"] != 0 {
		t.Errorf("stats %v for %d records of %d events: want every record consumed, each after an event's first a no-op", final, records, committed)
	}
	if final["noops"] == 0 {
		t.Errorf("no record was a no-op; want the events published before the kill -9 (%d were applied then), past the checkpoints of tailbox's first moments, sent again", atKill)
	}
	t.Logf("%d events committed, %d records (%d applied before the kill -9), board: %v", committed, records, atKill, final)
}

// waitFor polls cond every 50ms and fails t when it is not true within
// timeout.
func waitFor(t *testing.T, timeout time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %v waiting until %s", timeout, what)
		}
		time.Sleep(50 * time.Millisecond)
	}
}
