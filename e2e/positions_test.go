package e2e

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/tailbox-cdc/tailbox/internal/testenv"
	"github.com/tailbox-cdc/tailbox/pkg/checkpoint"
)

// The start positions of DESIGN.md ("Positions, checkpoints and replay"),
// each from where it can be given (start.from, run --from, offsets set),
// and every bad position or checkpoint: exit 1 with a message saying what is
// wrong, and the checkpoint file left byte for byte as it was.

var memberTopic = []string{"outbox.event.member"}

// eventID is the id of the n-th test event.
func eventID(n int) string { return fmt.Sprintf("00000000-0000-0000-0000-%012d", n) }

// write commits one transaction with the outbox events ns.
func (e *env) write(ns ...int) {
	e.t.Helper()
	var stmts []string
	for _, n := range ns {
		stmts = append(stmts, e.outboxInsert(eventID(n), "member", fmt.Sprintf("m-%d", n), "Tick", fmt.Sprintf(`{"n":%d}`, n)))
	}
	e.tx(stmts...)
}

// ownServerEnv is newEnv on a private MariaDB instance, for tests that purge,
// flush or reset the binary logs.
func ownServerEnv(t *testing.T) *env {
	t.Helper()
	srv := testenv.StartMariaDB(t, "")
	e := &env{t: t, db: srv, kafka: testenv.Kafka(t), dir: t.TempDir()}
	e.dbn = srv.CreateDatabase(t, "positions")
	e.db.Exec(t, fmt.Sprintf(testenv.OutboxDDL, e.dbn))
	e.cfg = filepath.Join(e.dir, "tailbox.yaml")
	e.writeConfig("envelope", "")
	return e
}

// setStartFrom adds start.from to the config file.
func (e *env) setStartFrom(spec string) {
	e.t.Helper()
	b, err := os.ReadFile(e.cfg)
	if err != nil {
		e.t.Fatal(err)
	}
	b = append(b, fmt.Sprintf("start:\n  from: %q\n", spec)...)
	if err := os.WriteFile(e.cfg, b, 0o600); err != nil {
		e.t.Fatal(err)
	}
}

// expectEvents runs tailbox with args until the topic holds exactly the
// events want (counting those of earlier runs; nothing else arrives for a
// second), stops it and checks the exit code.
func (e *env) expectEvents(want []int, args ...string) {
	e.t.Helper()
	p := e.start(args...)
	if len(want) > 0 {
		e.kafka.Consume(e.t, memberTopic, len(want), 30*time.Second)
	}
	recs := e.kafka.ConsumeAll(e.t, memberTopic, time.Second)
	if code := p.stop(e.t); code != 0 {
		e.t.Fatalf("exit code %d after SIGTERM:\n%s", code, logTail(p.stderr.String()))
	}
	// Partitions interleave: compare as multisets.
	got := ids(recs)
	var w []string
	for _, n := range want {
		w = append(w, eventID(n))
	}
	slices.Sort(got)
	slices.Sort(w)
	if !slices.Equal(got, w) {
		e.t.Fatalf("tailbox %v: the topic holds\n  %v\nwant exactly\n  %v", args, got, w)
	}
}

// nextSecond waits until the wall clock is in a later second than now, so
// that what follows has a later binlog header time (whole seconds) than
// what came before.
func nextSecond() {
	now := time.Now()
	time.Sleep(now.Truncate(time.Second).Add(time.Second + 50*time.Millisecond).Sub(now))
}

// binlogEnd returns the server's current binlog file and position.
func binlogEnd(t *testing.T, db *testenv.MySQLServer) (string, uint64) {
	t.Helper()
	r := db.Exec(t, "SHOW MASTER STATUS")
	file, _ := r.GetString(0, 0)
	pos, _ := r.GetUint(0, 1)
	return file, pos
}

func (e *env) gtidPos() string {
	e.t.Helper()
	g, _ := e.db.Exec(e.t, "SELECT @@GLOBAL.gtid_binlog_pos").GetString(0, 0)
	return g
}

// flushLogs starts a new binlog file (in a new second, so that file start
// times differ) and returns its name.
func (e *env) flushLogs() string {
	e.t.Helper()
	nextSecond()
	e.db.Exec(e.t, "FLUSH BINARY LOGS")
	file, _ := binlogEnd(e.t, e.db)
	return file
}

// purgeTo purges the binary logs before file. MariaDB keeps a file until its
// transactions are durable in the storage engine (binlog checkpoint), so
// it retries until the file is the oldest.
func (e *env) purgeTo(file string) {
	e.t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for {
		e.db.Exec(e.t, "PURGE BINARY LOGS TO '"+file+"'")
		if oldest, _ := e.db.Exec(e.t, "SHOW BINARY LOGS").GetString(0, 0); oldest == file {
			return
		}
		if time.Now().After(deadline) {
			e.t.Fatalf("PURGE BINARY LOGS TO '%s' left older files for 30s", file)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// frozen records a file's bytes, modification time and inode — or that it
// does not exist; check fails t when any of them changed. An atomic
// rewrite (temporary file renamed over it) with the same bytes still
// changes the inode.
type frozen struct {
	path   string
	absent bool
	data   []byte
	mod    time.Time
	ino    uint64
}

func freeze(t *testing.T, path string) frozen {
	t.Helper()
	st, err := os.Stat(path)
	if errors.Is(err, fs.ErrNotExist) {
		return frozen{path: path, absent: true}
	}
	if err != nil {
		t.Fatalf("stat %s: %v", path, err)
	}
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("read %s: %v", path, err)
	}
	return frozen{path: path, data: data, mod: st.ModTime(), ino: st.Sys().(*syscall.Stat_t).Ino}
}

func (f frozen) check(t *testing.T) {
	t.Helper()
	st, err := os.Stat(f.path)
	if f.absent {
		if !errors.Is(err, fs.ErrNotExist) {
			data, _ := os.ReadFile(f.path)
			t.Fatalf("%s was written, where there was none (stat: %v):\n%s", f.path, err, data)
		}
		return
	}
	if err != nil {
		t.Fatalf("stat %s: %v", f.path, err)
	}
	data, err := os.ReadFile(f.path)
	if err != nil {
		t.Fatalf("read %s: %v", f.path, err)
	}
	if !bytes.Equal(data, f.data) {
		t.Fatalf("%s changed:\nbefore: %s\nafter:  %s", f.path, f.data, data)
	}
	if !st.ModTime().Equal(f.mod) {
		t.Fatalf("%s was rewritten (modification time %v, was %v)", f.path, st.ModTime(), f.mod)
	}
	if ino := st.Sys().(*syscall.Stat_t).Ino; ino != f.ino {
		t.Fatalf("%s was replaced (inode %d, was %d)", f.path, ino, f.ino)
	}
}

// failsWith runs tailbox args, which must exit 1 with every one of want in
// its stderr (regular expressions), and returns stderr.
func (e *env) failsWith(args []string, want ...string) string {
	e.t.Helper()
	_, stderr, code := e.runCmd(args...)
	if code != 1 {
		e.t.Fatalf("tailbox %v: exit code %d, want 1:\n%s", args, code, stderr)
	}
	for _, w := range want {
		if re := regexp.MustCompile(w); !re.MatchString(stderr) && !re.MatchString(runError(stderr)) {
			e.t.Errorf("tailbox %v: stderr does not match %q:\n%s", args, w, stderr)
		}
	}
	return stderr
}

// saveCheckpoint makes tailbox write a checkpoint at the end of the binlog.
func (e *env) saveCheckpoint() {
	e.t.Helper()
	if out, stderr, code := e.runCmd("offsets", "set", "-c", e.cfg, "--from", "latest"); code != 0 {
		e.t.Fatalf("offsets set --from latest: exit code %d\n%s\n%s", code, out, stderr)
	}
}

// editCheckpoint rewrites the checkpoint file through f.
func (e *env) editCheckpoint(f func(cp map[string]any)) {
	e.t.Helper()
	data, err := os.ReadFile(e.checkpointPath())
	if err != nil {
		e.t.Fatal(err)
	}
	var cp map[string]any
	if err := json.Unmarshal(data, &cp); err != nil {
		e.t.Fatal(err)
	}
	f(cp)
	if data, err = json.MarshalIndent(cp, "", "  "); err != nil {
		e.t.Fatal(err)
	}
	if err := os.WriteFile(e.checkpointPath(), data, 0o600); err != nil {
		e.t.Fatal(err)
	}
}

func TestStartLatestSkipsWhatCameBefore(t *testing.T) {
	e := newEnv(t, "envelope")
	e.write(1)
	e.setStartFrom("latest")
	p := e.start()
	e.write(2)
	e.kafka.Consume(t, memberTopic, 1, 30*time.Second)
	recs := e.kafka.ConsumeAll(t, memberTopic, time.Second)
	if code := p.stop(t); code != 0 {
		t.Fatalf("exit code %d:\n%s", code, logTail(p.stderr.String()))
	}
	if got := ids(recs); !slices.Equal(got, []string{eventID(2)}) {
		t.Fatalf("start.from latest published %v, want only the event written after the start", got)
	}
}

func TestStartEarliestReadsTheOldestBinlogStillThere(t *testing.T) {
	e := ownServerEnv(t)
	e.write(1)
	e.write(2)
	kept := e.flushLogs()
	e.write(3)
	e.purgeTo(kept)
	e.write(4)
	e.setStartFrom("earliest")
	e.expectEvents([]int{3, 4})
	// The checkpoint now wins over start.from: nothing new.
	e.expectEvents([]int{3, 4})
}

func TestStartAtFilePos(t *testing.T) {
	e := newEnv(t, "envelope")
	e.write(1)
	file, pos := binlogEnd(t, e.db)
	e.write(2)
	e.write(3)
	e.expectEvents([]int{2, 3}, "--from", fmt.Sprintf("%s:%d", file, pos))
}

func TestStartAtGTIDSetAlreadyProcessed(t *testing.T) {
	e := newEnv(t, "envelope")
	e.write(1)
	processed := e.gtidPos()
	e.write(2)
	e.write(3)
	e.setStartFrom("gtid:" + processed)
	e.expectEvents([]int{2, 3})
}

func TestStartAtTime(t *testing.T) {
	e := newEnv(t, "envelope")
	e.write(1)
	e.write(2)
	nextSecond()
	at := time.Now()
	e.write(3)
	e.write(4)
	spec := "time:" + at.Format(time.RFC3339Nano)
	e.expectEvents([]int{3, 4}, "--from", spec)

	// offsets set --from time:T stores the same position.
	out, stderr, code := e.runCmd("offsets", "set", "-c", e.cfg, "--from", spec, "-o", "json")
	if code != 0 {
		t.Fatalf("offsets set --from %s: exit code %d\n%s\n%s", spec, code, out, stderr)
	}
	if !strings.Contains(out, `"file_start_time"`) {
		t.Errorf("offsets set did not record the binlog file's start time:\n%s", out)
	}
	e.expectEvents([]int{3, 4, 3, 4})

	// A time zone offset names the same instant.
	e.expectEvents([]int{3, 4, 3, 4, 3, 4}, "--from", "time:"+at.In(time.FixedZone("", -7*3600)).Format(time.RFC3339Nano))
}

func TestStartAtTimeFindsTheFileAcrossRotations(t *testing.T) {
	e := ownServerEnv(t)
	e.write(1)
	e.flushLogs()
	e.write(2)
	e.flushLogs()
	e.write(3)
	nextSecond()
	at := time.Now()
	e.write(4)
	e.flushLogs()
	e.write(5)
	e.flushLogs()
	e.write(6)
	e.setStartFrom("time:" + at.UTC().Format(time.RFC3339Nano))
	e.expectEvents([]int{4, 5, 6})

	// A time after the last transaction is the end of the binlog.
	nextSecond()
	after := time.Now()
	e.expectEvents([]int{4, 5, 6}, "--from", "time:"+after.Format(time.RFC3339Nano))
}

func TestBadStartPositionsFailNamingWhatIsAvailable(t *testing.T) {
	e := newEnv(t, "envelope")
	e.write(1)
	file, end := binlogEnd(t, e.db)
	e.write(2)
	e.saveCheckpoint()
	cp := freeze(t, e.checkpointPath())
	base := regexp.QuoteMeta(strings.TrimSuffix(file, filepath.Ext(file)))
	available := `oldest available position ` + base + `\.\d+:4, newest ` + base + `\.\d+:\d+`

	// The event after our first transaction: a GTID event (ours or another
	// test's), then what follows it inside that transaction.
	r := e.db.Exec(t, fmt.Sprintf("SHOW BINLOG EVENTS IN '%s' FROM %d LIMIT 1", file, end))
	gtidEnd, _ := r.GetUint(0, 4)

	tests := []struct {
		name string
		spec string
		want []string
	}{
		{"a file the server never wrote", base + ".999999:4", []string{`binlog file \S+\.999999 is not on the server \(newer than the newest file`, available}},
		{"a position beyond the file's end", fmt.Sprintf("%s:%d", file, end+50_000_000), []string{`is beyond the end of ` + regexp.QuoteMeta(file), available}},
		{"a position inside an event", fmt.Sprintf("%s:%d", file, end+1), []string{fmt.Sprintf(`%s:%d is not at an event boundary \(the \w+ at %d ends at \d+\)`, regexp.QuoteMeta(file), end+1, end), available}},
		{"a position inside a transaction", fmt.Sprintf("%s:%d", file, gtidEnd), []string{fmt.Sprintf(`%s:%d is inside a transaction: start at %s:%d \(before it\) or %s:\d+ \(after it\)`, regexp.QuoteMeta(file), gtidEnd, regexp.QuoteMeta(file), end, regexp.QuoteMeta(file)), available}},
		{"a GTID the server never wrote", "gtid:0-1-999999999", []string{`gtid 0-1-999999999 is beyond what the server has executed or applied \(@@gtid_binlog_pos has 0-1-\d+, @@gtid_current_pos has 0-1-\d+\)`, available}},
		{"a GTID domain the server never wrote", "gtid:4242-1-1", []string{`@@gtid_binlog_pos has nothing in domain 4242`}},
		{"a time before the oldest binlog file", "time:2001-01-01T00:00:00Z", []string{`time 2001-01-01T00:00:00Z is before the oldest binlog file ` + base + `\.\d+, started 20\d\d-`, available}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			e.t = t
			e.failsWith([]string{"run", "-c", e.cfg, "--from", tc.spec}, tc.want...)
			cp.check(t)
			e.failsWith([]string{"offsets", "set", "-c", e.cfg, "--from", tc.spec}, tc.want...)
			cp.check(t)
		})
	}
	e.t = t
	// The same positions as start.from, without a checkpoint.
	if err := os.Remove(e.checkpointPath()); err != nil {
		t.Fatal(err)
	}
	e.setStartFrom(base + ".999999:4")
	e.failsWith([]string{"run", "-c", e.cfg}, `start position \S+\.999999:4: binlog file`)
	if _, err := os.Stat(e.checkpointPath()); !os.IsNotExist(err) {
		t.Fatalf("a failed start wrote a checkpoint (stat: %v)", err)
	}
}

func TestPurgedPositionsFailNamingTheOldest(t *testing.T) {
	e := ownServerEnv(t)
	e.write(1)
	oldFile, oldPos := binlogEnd(t, e.db)
	oldGTID := e.gtidPos()
	e.flushLogs()
	e.write(2)
	kept := e.flushLogs()
	e.write(3)
	// A checkpoint in the file about to be purged.
	if out, stderr, code := e.runCmd("offsets", "set", "-c", e.cfg, "--from", fmt.Sprintf("%s:%d", oldFile, oldPos)); code != 0 {
		t.Fatalf("offsets set: exit code %d\n%s\n%s", code, out, stderr)
	}
	e.purgeTo(kept)
	cp := freeze(t, e.checkpointPath())
	available := `oldest available position ` + regexp.QuoteMeta(kept) + `:4, newest ` + regexp.QuoteMeta(kept) + `:\d+`

	for _, tc := range []struct {
		name string
		spec string
		want []string
	}{
		{"a purged file", fmt.Sprintf("%s:%d", oldFile, oldPos), []string{regexp.QuoteMeta(oldFile) + ` is not on the server \(purged`, available}},
		{"a purged GTID", "gtid:" + oldGTID, []string{`the transactions after ` + oldGTID + ` were purged: the oldest binlog ` + regexp.QuoteMeta(kept) + ` starts after 0-1-\d+`, available}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			e.t = t
			e.failsWith([]string{"run", "-c", e.cfg, "--from", tc.spec}, tc.want...)
			cp.check(t)
			e.failsWith([]string{"offsets", "set", "-c", e.cfg, "--from", tc.spec}, tc.want...)
			cp.check(t)
		})
	}
	e.t = t
	// The stored checkpoint itself is in the purged file.
	e.failsWith([]string{"run", "-c", e.cfg}, `unusable checkpoint: \S+ holds gtid \S+, which this server cannot resume from: the transactions after \S+ were purged`, available, "tailbox offsets set")
	cp.check(t)
	// A file-only checkpoint (a server without GTIDs) in the purged file.
	e.editCheckpoint(func(cp map[string]any) { delete(cp["position"].(map[string]any), "gtid") })
	cp = freeze(t, e.checkpointPath())
	e.failsWith([]string{"run", "-c", e.cfg}, `unusable checkpoint: \S+ holds `+regexp.QuoteMeta(fmt.Sprintf("%s:%d", oldFile, oldPos))+`: binlog file \S+ is not on the server \(purged`, available, "tailbox offsets set")
	cp.check(t)
}

func TestResetMasterIsDetectedAndTheCheckpointKept(t *testing.T) {
	e := ownServerEnv(t)
	e.write(1)
	e.write(2)
	e.expectEvents([]int{1, 2}, "--from", "earliest")
	cp := freeze(t, e.checkpointPath())
	var stored struct {
		Position struct{ GTID string }
	}
	if err := json.Unmarshal(cp.data, &stored); err != nil || stored.Position.GTID == "" {
		t.Fatalf("the checkpoint has no GTID set:\n%s", cp.data)
	}

	nextSecond()
	e.db.Exec(t, "RESET MASTER")
	// Right after the reset the stored GTID is beyond the new binlog.
	g := stored.Position.GTID
	e.failsWith([]string{"run", "-c", e.cfg}, `unusable checkpoint: \S+ holds gtid `+g+`, which this server cannot resume from: gtid `+g+` is beyond what the server has executed or applied \(@@gtid_binlog_pos has nothing in domain 0, @@gtid_current_pos has nothing in domain 0\)`, "tailbox offsets set")
	cp.check(t)

	// Once as many transactions were written again, the GTID set looks
	// valid, but the binlog file of the checkpoint is another one.
	var seq int
	if _, err := fmt.Sscanf(g, "0-1-%d", &seq); err != nil {
		t.Fatalf("checkpoint GTID %q: %v", g, err)
	}
	for i := 0; i <= seq; i++ {
		e.write(100 + i)
	}
	e.failsWith([]string{"run", "-c", e.cfg}, `unusable checkpoint: .* of a binlog file \S+ started at \S+, but the server's \S+ started at \S+: the binary logs were reset \(RESET MASTER\)`, "tailbox offsets set")
	cp.check(t)

	// offsets set is the way out.
	e.saveCheckpoint()
	e.write(1000)
	e.expectEvents([]int{1, 2, 1000})
}

func TestCorruptOrForeignCheckpointStopsAndStaysUntouched(t *testing.T) {
	e := newEnv(t, "envelope")
	for _, tc := range []struct {
		name string
		edit func(cp map[string]any)
		raw  string
		want []string
	}{
		{name: "not JSON", raw: "{\"version\": 1, \"name\": tru", want: []string{`unusable checkpoint: load checkpoint \S+: checkpoint file is corrupt: invalid character`, `the checkpoint is left as it is`}},
		{name: "an unknown version", raw: `{"version": 9, "name": "x"}`, want: []string{`version: unsupported \(got 9`}},
		{name: "another connector's", edit: func(cp map[string]any) { cp["name"] = "someone-else" }, want: []string{`was written by connector "someone-else", this is "e2e-`}},
		{name: "other tables'", edit: func(cp map[string]any) { cp["tables_hash"] = "0000" }, want: []string{`outbox.tables changed since \S+ was written`}},
		{name: "another server's file position", edit: func(cp map[string]any) {
			delete(cp["position"].(map[string]any), "gtid")
			cp["server"].(map[string]any)["server_id"] = 4242
		}, want: []string{`holds a file position of another server \(server_id 4242`}},
		{name: "a file position in a binlog file started at another time", edit: func(cp map[string]any) {
			delete(cp["position"].(map[string]any), "gtid")
			cp["server"].(map[string]any)["file_start_time"] = "2001-01-01T00:00:00Z"
		}, want: []string{`of a binlog file \S+ started at 2001-01-01T00:00:00Z, but the server's \S+ started at \S+: the binary logs were reset \(RESET MASTER\)`}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			e.t = t
			e.saveCheckpoint()
			if tc.raw != "" {
				if err := os.WriteFile(e.checkpointPath(), []byte(tc.raw), 0o600); err != nil {
					t.Fatal(err)
				}
			} else {
				e.editCheckpoint(tc.edit)
			}
			cp := freeze(t, e.checkpointPath())
			e.failsWith([]string{"run", "-c", e.cfg}, append(tc.want, "tailbox offsets set")...)
			cp.check(t)
		})
	}
	e.t = t
	// offsets set replaces a corrupt checkpoint.
	if err := os.WriteFile(e.checkpointPath(), []byte("garbage"), 0o600); err != nil {
		t.Fatal(err)
	}
	e.saveCheckpoint()
	e.write(1)
	e.expectEvents([]int{1})

	// run --from wins over a corrupt checkpoint, and replaces it.
	if err := os.WriteFile(e.checkpointPath(), []byte("garbage"), 0o600); err != nil {
		t.Fatal(err)
	}
	from := "gtid:" + e.gtidPos()
	e.write(2)
	e.expectEvents([]int{1, 2}, "--from", from)
	if _, err := checkpoint.Read(e.checkpointPath()); err != nil {
		t.Fatalf("run --from did not replace the corrupt checkpoint: %v", err)
	}
}
