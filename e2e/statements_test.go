package e2e

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/go-mysql-org/go-mysql/client"
	"github.com/twmb/franz-go/pkg/kgo"
)

// The tests of this file send statements in STATEMENT format (a session's
// binlog_format=STATEMENT, as migration tools, mysqldump restores and some
// ORMs' sessions do) while tailbox streams: a statement that does not write
// the outbox must not stop it, and one that does must stop it before any
// later event, every time it is restarted.

// statementSession opens a connection whose default database is schema and
// that logs its statements in STATEMENT format.
func (e *env) statementSession(schema string) *client.Conn {
	e.t.Helper()
	c := e.db.Conn(e.t)
	for _, s := range []string{"USE `" + schema + "`", "SET SESSION binlog_format = STATEMENT"} {
		if _, err := c.Execute(s); err != nil {
			e.t.Fatalf("%s: %v", s, err)
		}
	}
	return c
}

// binlogEvent is one row of SHOW BINLOG EVENTS.
type binlogEvent struct {
	file     string
	pos, end uint32
	typ      string
	info     string
}

// binlogEventsFrom lists the server's binlog events from FILE:POS from (a
// binlogEnd result) on, through every later binlog file.
func (e *env) binlogEventsFrom(from string) []binlogEvent {
	e.t.Helper()
	file, pos := splitFilePos(e.t, from)
	logs := e.db.Exec(e.t, "SHOW BINARY LOGS")
	var evs []binlogEvent
	for i := 0; i < logs.RowNumber(); i++ {
		name, _ := logs.GetString(i, 0)
		if cmpFilePos(name, 0, file, 0) < 0 {
			continue
		}
		q := fmt.Sprintf("SHOW BINLOG EVENTS IN '%s'", name)
		if name == file {
			q += fmt.Sprintf(" FROM %d", pos)
		}
		r := e.db.Exec(e.t, q)
		for j := 0; j < r.RowNumber(); j++ {
			typ, _ := r.GetStringByName(j, "Event_type")
			info, _ := r.GetStringByName(j, "Info")
			p, _ := r.GetUintByName(j, "Pos")
			end, _ := r.GetUintByName(j, "End_log_pos")
			evs = append(evs, binlogEvent{file: name, pos: uint32(p), end: uint32(end), typ: typ, info: info})
		}
	}
	return evs
}

// requireLogged returns the binlog event after from whose type is typ and
// whose text contains query (a Query event's Info is "use `db`; QUERY"),
// and fails the test when there is none: the statement was really logged as
// a statement, so the test exercises what it claims to.
func (e *env) requireLogged(from, typ, query string) binlogEvent {
	e.t.Helper()
	evs := e.binlogEventsFrom(from)
	for _, ev := range evs {
		if ev.typ == typ && strings.Contains(ev.info, query) {
			return ev
		}
	}
	var got []string
	for _, ev := range evs {
		got = append(got, fmt.Sprintf("%s:%d %s %.120s", ev.file, ev.pos, ev.typ, ev.info))
	}
	e.t.Fatalf("the binlog after %s holds no %s event %q; it holds:\n%s", from, typ, query, strings.Join(got, "\n"))
	return binlogEvent{}
}

func splitFilePos(t *testing.T, s string) (string, uint32) {
	t.Helper()
	i := strings.LastIndexByte(s, ':')
	if i < 0 {
		t.Fatalf("not FILE:POS: %q", s)
	}
	n, err := strconv.ParseUint(s[i+1:], 10, 32)
	if err != nil {
		t.Fatalf("not FILE:POS: %q: %v", s, err)
	}
	return s[:i], uint32(n)
}

// cmpFilePos compares two binlog positions of one server (its binlog file
// names differ only in their fixed-width sequence number).
func cmpFilePos(aFile string, aPos uint32, bFile string, bPos uint32) int {
	if c := strings.Compare(aFile, bFile); c != 0 {
		return c
	}
	switch {
	case aPos < bPos:
		return -1
	case aPos > bPos:
		return 1
	}
	return 0
}

// checkpointAt returns the FILE:POS of the checkpoint file, "" when there
// is none.
func (e *env) checkpointAt() (string, uint32) {
	e.t.Helper()
	cp := readCheckpoint(e.t, e.checkpointPath())
	if cp == nil {
		return "", 0
	}
	if cp.Position.File == "" {
		e.t.Fatalf("checkpoint %+v has no binlog file position", cp.Position)
	}
	return cp.Position.File, cp.Position.Pos
}

// waitCheckpointPast waits until the checkpoint is at or after FILE:POS to
// while p runs.
func (e *env) waitCheckpointPast(p *proc, to string) {
	e.t.Helper()
	file, pos := splitFilePos(e.t, to)
	deadline := time.Now().Add(30 * time.Second)
	for {
		f, n := e.checkpointAt()
		if f != "" && cmpFilePos(f, n, file, pos) >= 0 {
			return
		}
		select {
		case <-p.done:
			e.t.Fatalf("tailbox exited (%v) with its checkpoint at %s:%d, before %s:\n%s", p.err, f, n, to, logTail(p.stderr.String()))
		case <-time.After(20 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			e.t.Fatalf("checkpoint at %s:%d 30s later, want it at or after %s:\n%s", f, n, to, logTail(p.stderr.String()))
		}
	}
}

// follow reads topics from the beginning (read_committed) while p runs,
// until enough holds for the records read so far or p exits; it returns
// the records and whether p exited. It fails the test when neither happens
// within timeout.
func (e *env) follow(p *proc, topics []string, timeout time.Duration, enough func([]*kgo.Record) bool) ([]*kgo.Record, bool) {
	e.t.Helper()
	cl := e.kafka.Client(e.t,
		kgo.ConsumeTopics(topics...),
		kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()),
		kgo.FetchIsolationLevel(kgo.ReadCommitted()),
		kgo.FetchMaxWait(100*time.Millisecond),
	)
	defer cl.Close()
	deadline := time.Now().Add(timeout)
	var recs []*kgo.Record
	for !enough(recs) {
		select {
		case <-p.done:
			return recs, true
		default:
		}
		if time.Now().After(deadline) {
			e.t.Fatalf("tailbox still running %v later and the records are not there yet: %v\n%s", timeout, ids(recs), logTail(p.stderr.String()))
		}
		ctx, cancel := context.WithTimeout(context.Background(), 200*time.Millisecond)
		fetches := cl.PollFetches(ctx)
		cancel()
		for _, fe := range fetches.Errors() {
			if !errors.Is(fe.Err, context.DeadlineExceeded) && !errors.Is(fe.Err, context.Canceled) {
				e.t.Fatalf("consume %s[%d]: %v", fe.Topic, fe.Partition, fe.Err)
			}
		}
		recs = append(recs, fetches.Records()...)
	}
	return recs, false
}

func hasID(id string) func([]*kgo.Record) bool {
	return func(recs []*kgo.Record) bool {
		for _, r := range recs {
			if got, _ := header(r, "id"); got == id {
				return true
			}
		}
		return false
	}
}

func atLeast(n int) func([]*kgo.Record) bool {
	return func(recs []*kgo.Record) bool { return len(recs) >= n }
}

// TestStatementsThatDoNotWriteTheOutboxStreamOn: a comment-prefixed DDL,
// mysqldump's executable comments, a STATEMENT-format insert whose literal
// mentions the outbox and one into a non-captured table named
// `outbox-archive`, each between committed outbox rows: tailbox keeps
// running, every event arrives once and in order, and the checkpoint passes
// them all.
func TestStatementsThatDoNotWriteTheOutboxStreamOn(t *testing.T) {
	e := newEnv(t, "envelope")
	e.db.Exec(t, fmt.Sprintf("CREATE TABLE %s.other_table (id INT AUTO_INCREMENT PRIMARY KEY, note VARCHAR(100))", e.dbn))
	e.db.Exec(t, fmt.Sprintf("CREATE TABLE %s.`outbox-archive` (id CHAR(36) PRIMARY KEY)", e.dbn))
	statements := []struct{ typ, query string }{
		// As ORMs, migration tools and query taggers send a DDL.
		{"Query", "/* migration 42 */ ALTER TABLE outbox ADD COLUMN note VARCHAR(20) NULL"},
		// mysqldump's output around a table's rows.
		{"Query", "/*!40000 ALTER TABLE outbox DISABLE KEYS */"},
		{"Query", "/*!40000 ALTER TABLE outbox ENABLE KEYS */"},
		{"Query", "INSERT INTO other_table (note) VALUES ('copied to the outbox later')"},
		{"Query", "INSERT INTO `outbox-archive` (id) VALUES ('00000000-0000-0000-0000-00000000a0a0')"},
	}
	topic := []string{"outbox.event.member"}
	p := e.start()
	stmt := e.statementSession(e.dbn)
	var want []string
	commit := func() {
		id := fmt.Sprintf("00000000-0000-0000-0000-%012d", len(want)+1)
		want = append(want, id)
		e.tx(e.outboxInsert(id, "member", "m-1", "Tick", fmt.Sprintf(`{"n":%d}`, len(want))))
	}
	commit()
	for _, s := range statements {
		from := e.binlogEnd()
		if _, err := stmt.Execute(s.query); err != nil {
			t.Fatalf("%s: %v", s.query, err)
		}
		e.requireLogged(from, s.typ, s.query)
		commit()
	}
	end := e.binlogEnd()

	if _, exited := e.follow(p, topic, 30*time.Second, atLeast(len(want))); exited {
		t.Fatalf("tailbox exited (%v) on a statement that does not write the outbox:\n%s", p.err, logTail(p.stderr.String()))
	}
	// Read until quiet: a duplicate would show.
	recs := e.kafka.ConsumeAll(t, topic, 1500*time.Millisecond)
	if got, w := strings.Join(ids(recs), ","), strings.Join(want, ","); got != w {
		t.Fatalf("events\n%s\nwant each once, in commit order:\n%s", got, w)
	}
	e.waitCheckpointPast(p, end)
	if code := p.stop(t); code != 0 {
		t.Fatalf("exit code %d after SIGTERM, want 0:\n%s", code, logTail(p.stderr.String()))
	}
}

// stopReason matches the error tailbox stops with at a statement-format
// write to a captured table: the table and the statement's position.
var stopReason = regexp.MustCompile(`statement-format DML on captured table (\S+) at (\S+:\d+)`)

// TestStatementWritesToTheOutboxStop: a STATEMENT-format write to the
// outbox (an ORM's backquoted, schema-qualified INSERT from another default
// database; a LOAD DATA INFILE) stops tailbox with exit 1 naming the table,
// after publishing the events before it and none after it, with the
// checkpoint before it; a restart stops at the same statement again.
func TestStatementWritesToTheOutboxStop(t *testing.T) {
	tests := []struct {
		name string
		// write sends the statement and returns the type of the binlog
		// event that logs it and a text that both that event and
		// tailbox's error show.
		write func(e *env) (typ, text string)
	}{
		{
			name: "an ORM's backquoted schema-qualified insert from another default database",
			write: func(e *env) (string, string) {
				stmt := e.statementSession(e.db.CreateDatabase(e.t, "orm"))
				q := fmt.Sprintf("INSERT INTO `%s`.`outbox` (`id`, `aggregatetype`, `aggregateid`, `type`, `payload`) VALUES ('00000000-0000-0000-0000-0000000000s1', 'member', 'm-1', 'ByStatement', '{}')", e.dbn)
				if _, err := stmt.Execute(q); err != nil {
					e.t.Fatalf("%s: %v", q, err)
				}
				return "Query", q
			},
		},
		{
			name: "a load data infile",
			write: func(e *env) (string, string) {
				dir := e.t.TempDir()
				if err := os.Chmod(dir, 0o755); err != nil {
					e.t.Fatal(err)
				}
				file := filepath.Join(dir, "rows.tsv")
				if err := os.WriteFile(file, []byte("00000000-0000-0000-0000-0000000000s1\tmember\tm-1\tByStatement\t{}\n"), 0o644); err != nil {
					e.t.Fatal(err)
				}
				stmt := e.statementSession(e.dbn)
				q := fmt.Sprintf("LOAD DATA INFILE '%s' INTO TABLE outbox (id, aggregatetype, aggregateid, type, payload)", file)
				if _, err := stmt.Execute(q); err != nil {
					e.t.Fatalf("%s: %v", q, err)
				}
				// The server logs the statement rewritten, with every
				// clause spelled out.
				return "Execute_load_query", fmt.Sprintf("LOAD DATA INFILE '%s' INTO TABLE `outbox` FIELDS", file)
			},
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			e := newEnv(t, "envelope")
			topic := []string{"outbox.event.member"}
			const (
				before1  = "00000000-0000-0000-0000-0000000000b1"
				before2  = "00000000-0000-0000-0000-0000000000b2"
				byStmt   = "00000000-0000-0000-0000-0000000000s1"
				sentinel = "00000000-0000-0000-0000-0000000000a1"
			)
			p := e.start()
			e.tx(e.outboxInsert(before1, "member", "m-1", "Before", `{}`))
			e.tx(e.outboxInsert(before2, "member", "m-1", "Before", `{}`))
			settled := e.binlogEnd()
			if _, exited := e.follow(p, topic, 30*time.Second, atLeast(2)); exited {
				t.Fatalf("tailbox exited (%v) before the statement:\n%s", p.err, logTail(p.stderr.String()))
			}
			e.waitCheckpointPast(p, settled)

			typ, text := tc.write(e)
			logged := e.requireLogged(settled, typ, text)
			// A row-format event after the statement: publishing it
			// would mean the statement was passed over.
			e.tx(e.outboxInsert(sentinel, "member", "m-1", "After", `{}`))

			if _, exited := e.follow(p, topic, 60*time.Second, hasID(sentinel)); !exited {
				t.Fatalf("the statement was skipped silently: tailbox runs on and published the row after it:\n%s", logTail(p.stderr.String()))
			}
			if code := exitCode(p.err); code != 1 {
				t.Fatalf("exit code %d, want 1:\n%s", code, logTail(p.stderr.String()))
			}
			m := stopReason.FindStringSubmatch(p.stderr.String())
			if m == nil || m[1] != e.dbn+".outbox" {
				t.Fatalf("the log does not say statement-format DML on captured table %s.outbox:\n%s", e.dbn, logTail(p.stderr.String()))
			}
			// Like every position tailbox reports, the event's end.
			if at := fmt.Sprintf("%s:%d", logged.file, logged.end); m[2] != at {
				t.Errorf("the log names position %s, want the statement's %s", m[2], at)
			}
			if !strings.Contains(p.stderr.String(), text) {
				t.Errorf("the log does not show the statement %q:\n%s", text, logTail(p.stderr.String()))
			}
			check := func(run string) string {
				t.Helper()
				recs := e.kafka.ConsumeAll(t, topic, time.Second)
				if got := strings.Join(ids(recs), ","); got != before1+","+before2 {
					t.Fatalf("%s: events %s, want only the two before the statement (%s is the statement's row, %s the row after it)", run, got, byStmt, sentinel)
				}
				f, n := e.checkpointAt()
				if f == "" {
					t.Fatalf("%s: no checkpoint", run)
				}
				if cmpFilePos(f, n, logged.file, logged.pos) > 0 {
					t.Fatalf("%s: checkpoint at %s:%d, past the statement at %s:%d", run, f, n, logged.file, logged.pos)
				}
				if s, sp := splitFilePos(t, settled); cmpFilePos(f, n, s, sp) < 0 {
					t.Fatalf("%s: checkpoint at %s:%d went back before %s", run, f, n, settled)
				}
				return fmt.Sprintf("%s:%d", f, n)
			}
			stoppedAt := check("first run")

			// Every restart stops at the same statement: it is never
			// skipped.
			_, stderr, code := e.runCmd("run", "-c", e.cfg)
			if code != 1 {
				t.Fatalf("restart: exit code %d, want 1:\n%s", code, logTail(stderr))
			}
			if m2 := stopReason.FindStringSubmatch(stderr); m2 == nil || m2[1] != m[1] || m2[2] != m[2] {
				t.Fatalf("restart stopped for another reason than %q:\n%s", m[0], logTail(stderr))
			}
			if at := check("restart"); at != stoppedAt {
				t.Fatalf("restart moved the checkpoint from %s to %s", stoppedAt, at)
			}
		})
	}
}
