package e2e

import (
	"fmt"
	"io"
	"net"
	"os"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/tailbox-cdc/tailbox/internal/testenv"
)

// A start that fails writes nothing (DESIGN.md, "Writing"): whatever step
// fails — the checkpoint's checks, the position's resolution, the stream
// the server refuses, Kafka, a stop signal — the checkpoint file keeps its
// bytes, its modification time and its inode, or stays absent. A stop
// signal before the stream started is a clean stop: exit 0.

// foreignGTID returns a GTID of domain 0 that the server's binlog lacks but
// whose sequence number it has reached: it passes the start checks, which
// compare sequence numbers per domain, and the server refuses to stream
// from it.
func (e *env) foreignGTID() string {
	e.t.Helper()
	g := e.gtidPos()
	for _, f := range strings.Split(g, ",") {
		if parts := strings.Split(f, "-"); len(parts) == 3 && parts[0] == "0" {
			return "0-4242-" + parts[2]
		}
	}
	e.t.Fatalf("@@gtid_binlog_pos %q has nothing in domain 0", g)
	return ""
}

func TestFailedStartLeavesTheCheckpointUntouched(t *testing.T) {
	e := newEnv(t, "envelope")
	e.write(1)
	file, end := binlogEnd(t, e.db)
	e.write(2)
	foreign := e.foreignGTID()
	beyond := fmt.Sprintf("%s:%d", file, end+50_000_000)
	setGTID := func(g string) func() {
		return func() { e.editCheckpoint(func(cp map[string]any) { cp["position"].(map[string]any)["gtid"] = g }) }
	}
	noCheckpoint := func() {
		if err := os.Remove(e.checkpointPath()); err != nil {
			e.t.Fatal(err)
		}
	}
	for _, tc := range []struct {
		name    string
		prepare func() // changes the checkpoint offsets set wrote; nil keeps it
		args    []string
		want    []string
	}{
		{name: "the checkpoint holds a GTID that the server's binlog lacks", prepare: setGTID(foreign),
			want: []string{regexp.QuoteMeta(foreign)}},
		{name: "the checkpoint holds a GTID beyond the server's binlog", prepare: setGTID("0-1-999999999"),
			want: []string{`gtid 0-1-999999999 is beyond what the server has executed or applied`}},
		{name: "the checkpoint is corrupt", prepare: func() {
			if err := os.WriteFile(e.checkpointPath(), []byte(`{"version": 1, "name": tru`), 0o600); err != nil {
				e.t.Fatal(err)
			}
		}, want: []string{`checkpoint file is corrupt`}},
		{name: "--from names a GTID that the server's binlog lacks", args: []string{"--from", "gtid:" + foreign},
			want: []string{regexp.QuoteMeta(foreign)}},
		{name: "--from names a position beyond the end of its file", args: []string{"--from", beyond},
			want: []string{`is beyond the end of ` + regexp.QuoteMeta(file)}},
		{name: "there is no checkpoint and --from names a GTID that the server's binlog lacks", prepare: noCheckpoint,
			args: []string{"--from", "gtid:" + foreign}, want: []string{regexp.QuoteMeta(foreign)}},
		{name: "there is no checkpoint and --from names a position beyond the end of its file", prepare: noCheckpoint,
			args: []string{"--from", beyond}, want: []string{`is beyond the end of ` + regexp.QuoteMeta(file)}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			e.t = t
			defer func() { e.t = t }()
			e.saveCheckpoint()
			if tc.prepare != nil {
				tc.prepare()
			}
			cp := freeze(t, e.checkpointPath())
			e.failsWith(append([]string{"run", "-c", e.cfg}, tc.args...), tc.want...)
			cp.check(t)
		})
	}
}

// TestFailedStartOnAnotherServerLeavesTheCheckpointUntouched points the
// connector at a second server, private to the test: a file position of
// the first; then, on the second, a checkpoint that the first transaction
// streamed contradicts, and a position the server has purged.
func TestFailedStartOnAnotherServerLeavesTheCheckpointUntouched(t *testing.T) {
	e := newEnv(t, "envelope")
	e.write(1)
	e.saveCheckpoint()
	e.editCheckpoint(func(cp map[string]any) { delete(cp["position"].(map[string]any), "gtid") })

	// The same connector (name, tables, checkpoint file) on a second server.
	other := testenv.StartMariaDB(t, "server_id=77")
	o := &env{t: t, db: other, dbn: e.dbn, kafka: e.kafka, dir: e.dir, cfg: e.cfg}
	other.Exec(t, "CREATE DATABASE "+e.dbn)
	other.Exec(t, fmt.Sprintf(testenv.OutboxDDL, e.dbn))
	o.writeConfig("envelope", "")

	t.Run("a file position of another server", func(t *testing.T) {
		o.t = t
		cp := freeze(t, e.checkpointPath())
		o.failsWith([]string{"run", "-c", o.cfg}, `holds a file position of another server \(server_id \d+, binlog \S+; connected to server_id 77`)
		cp.check(t)
	})
	t.Run("a checkpoint whose next transaction the binlog does not hold", func(t *testing.T) {
		o.t = t
		o.saveCheckpoint()
		o.write(10) // the transaction after the checkpoint: not the one it names
		o.editCheckpoint(func(cp map[string]any) { cp["skip"], cp["next_txn"] = 1, "0-77-999999" })
		cp := freeze(t, o.checkpointPath())
		o.failsWith([]string{"run", "-c", o.cfg}, `expected transaction 0-77-999999 at .+, found 0-77-\d+: the binlog does not match the checkpoint`)
		cp.check(t)
	})
	t.Run("a purged position", func(t *testing.T) {
		o.t = t
		o.write(1)
		oldFile, oldPos := binlogEnd(t, other)
		o.flushLogs()
		o.write(2)
		kept := o.flushLogs()
		if out, stderr, code := o.runCmd("offsets", "set", "-c", o.cfg, "--from", fmt.Sprintf("%s:%d", oldFile, oldPos)); code != 0 {
			t.Fatalf("offsets set: exit code %d\n%s\n%s", code, out, stderr)
		}
		o.purgeTo(kept)
		cp := freeze(t, o.checkpointPath())
		o.failsWith([]string{"run", "-c", o.cfg}, `the transactions after \S+ were purged`, `oldest available position `+regexp.QuoteMeta(kept)+`:4`)
		cp.check(t)
	})
}

// TestKafkaUnreachableAtStartThenStopWritesNothing stops the connector
// while it retries an unreachable Kafka at start: exit 0, and the
// checkpoint as it was (or still none).
func TestKafkaUnreachableAtStartThenStop(t *testing.T) {
	e := newEnv(t, "envelope")
	e.write(1)
	brokers, closed := "brokers: ["+strings.Join(e.kafka.Addrs, ",")+"]", "brokers: ["+closedAddr(t)+"]"
	e.editConfig(brokers, closed)
	stopWhileRetrying := func(t *testing.T, args ...string) {
		t.Helper()
		p := e.startUnchecked(args...)
		waitForProc(t, "two failed attempts to reach Kafka", func() bool {
			return strings.Count(p.stderr.String(), "kafka unreachable, retrying") >= 2
		}, p)
		if code := p.stop(t); code != 0 {
			t.Fatalf("exit status %d after SIGTERM, want 0:\n%s", code, logTail(p.stderr.String()))
		}
	}
	t.Run("a stored checkpoint is left as it was, also with --from", func(t *testing.T) {
		e.t = t
		defer func() { e.t = t }()
		e.saveCheckpoint()
		e.write(2) // after the checkpoint: to be read, not yet sent
		cp := freeze(t, e.checkpointPath())
		stopWhileRetrying(t, "--from", "earliest")
		stopWhileRetrying(t)
		cp.check(t)
	})
	t.Run("without a checkpoint the start point is written, and nothing committed meanwhile is passed over", func(t *testing.T) {
		e.t = t
		defer func() { e.t = t }()
		if err := os.Remove(e.checkpointPath()); err != nil {
			t.Fatal(err)
		}
		stopWhileRetrying(t) // start.from: latest, after event 2
		if readCheckpoint(t, e.checkpointPath()) == nil {
			t.Fatal("no checkpoint after a clean stop: the next run would start at latest again")
		}
		e.write(3) // while tailbox is down
		e.editConfig(closed, brokers)
		e.expectEvents([]int{3})
	})
}

// TestStopWhileResolvingTheStartPositionExitsZero sends SIGTERM while the
// connector reads the binlog to resolve --from time:T or FILE:POS: the
// proxy in front of the server holds every binlog dump, so the resolution
// waits there for sure when the signal comes.
func TestStopWhileResolvingTheStartPositionExitsZero(t *testing.T) {
	db := testenv.MySQL(t)
	gate := startDumpGate(t, db.Addr)
	e := newEnvOn(t, db, testenv.Kafka(t), "envelope")
	e.db = &testenv.MySQLServer{Addr: gate.addr(), User: db.User, Password: db.Password}
	e.writeConfig("envelope", "")
	// The gate reads the client's packets: no TLS.
	e.editConfig("  heartbeat: 1s\n", "  heartbeat: 1s\n  tls: {mode: disabled}\n")
	e.db = db
	e.write(1)
	file, pos := binlogEnd(t, db)
	nextSecond()
	at := time.Now()
	e.write(2)
	e.saveCheckpoint() // reads its file's start time through the gate, still open
	gate.arm()
	cp := freeze(t, e.checkpointPath())
	for _, spec := range []string{"time:" + at.UTC().Format(time.RFC3339Nano), fmt.Sprintf("%s:%d", file, pos)} {
		t.Run("--from "+spec, func(t *testing.T) {
			e.t = t
			defer func() { e.t = t }()
			held := gate.heldCount()
			p := e.startUnchecked("--from", spec)
			waitForProc(t, "a binlog dump of the start position's resolution", func() bool {
				return gate.heldCount() > held && strings.Contains(p.stderr.String(), `"message":"resolving the start position"`)
			}, p)
			if strings.Contains(p.stderr.String(), `"message":"starting"`) {
				t.Fatalf("the start position was resolved before the signal:\n%s", logTail(p.stderr.String()))
			}
			if code := p.stop(t); code != 0 {
				t.Fatalf("exit status %d after SIGTERM during the resolution, want 0:\n%s", code, logTail(p.stderr.String()))
			}
			if !strings.Contains(p.stderr.String(), "stopped before the stream started") {
				t.Errorf("tailbox did not say that it stopped before the stream started:\n%s", logTail(p.stderr.String()))
			}
			cp.check(t)
		})
	}
}

// dumpGate forwards TCP connections to a MySQL server; once armed, it holds
// every connection that asks for a binlog dump (COM_BINLOG_DUMP or
// COM_BINLOG_DUMP_GTID): the request is not forwarded and both sockets stay
// open, so the client waits for the dump's first event. It reads the
// client's packets, so they must not be encrypted.
type dumpGate struct {
	ln     net.Listener
	target string

	mu    sync.Mutex
	armed bool
	held  int
	conns []net.Conn
}

// MySQL commands that start a binlog dump.
const (
	comBinlogDump     = 0x12
	comBinlogDumpGTID = 0x1e
)

func startDumpGate(t *testing.T, target string) *dumpGate {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatalf("dump gate listen: %v", err)
	}
	g := &dumpGate{ln: ln, target: target}
	go g.serve()
	t.Cleanup(g.close)
	return g
}

func (g *dumpGate) addr() string { return g.ln.Addr().String() }

// arm makes the gate hold the binlog dumps asked for from now on.
func (g *dumpGate) arm() {
	g.mu.Lock()
	defer g.mu.Unlock()
	g.armed = true
}

// heldCount returns the number of dumps held so far.
func (g *dumpGate) heldCount() int {
	g.mu.Lock()
	defer g.mu.Unlock()
	return g.held
}

func (g *dumpGate) serve() {
	for {
		client, err := g.ln.Accept()
		if err != nil {
			return
		}
		server, err := net.DialTimeout("tcp", g.target, 5*time.Second)
		if err != nil {
			client.Close()
			continue
		}
		g.mu.Lock()
		g.conns = append(g.conns, client, server)
		g.mu.Unlock()
		go func() { _, _ = io.Copy(client, server) }()
		go g.forward(server, client)
	}
}

// forward copies the client's packets to the server until a binlog dump
// request arrives while the gate is armed.
func (g *dumpGate) forward(server, client net.Conn) {
	hdr := make([]byte, 4)
	for {
		if _, err := io.ReadFull(client, hdr); err != nil {
			return
		}
		n := int(hdr[0]) | int(hdr[1])<<8 | int(hdr[2])<<16
		payload := make([]byte, n)
		if _, err := io.ReadFull(client, payload); err != nil {
			return
		}
		// A command starts a new sequence: seq 0, then the command byte.
		if hdr[3] == 0 && n > 0 && (payload[0] == comBinlogDump || payload[0] == comBinlogDumpGTID) {
			g.mu.Lock()
			hold := g.armed
			if hold {
				g.held++
			}
			g.mu.Unlock()
			if hold {
				return // the sockets stay open until the client closes its own
			}
		}
		if _, err := server.Write(append(hdr, payload...)); err != nil {
			return
		}
	}
}

func (g *dumpGate) close() {
	g.ln.Close()
	g.mu.Lock()
	defer g.mu.Unlock()
	for _, c := range g.conns {
		c.Close()
	}
}

// TestFailedStartWritesNoKafkaCheckpoint is the failed start of delivery:
// exactly_once, whose checkpoints are records of the Kafka store's topic,
// committed in the transactions of the events they cover: a start the
// server refuses adds none, committed or aborted.
func TestFailedStartWritesNoKafkaCheckpoint(t *testing.T) {
	const topic = "tailbox.checkpoints" // checkpoint.topic's default
	e := newEnv(t, "envelope")
	e.useKafkaStore(false)
	e.write(1)
	foreign := e.foreignGTID()
	e.saveCheckpoint() // creates the compacted topic
	name := "e2e-" + e.dbn
	for _, tc := range []struct {
		name    string
		prepare func()
	}{
		{"with a checkpoint", func() {}},
		{"without a checkpoint", func() { e.editConfig("name: "+name+"\n", "name: "+name+"-new\n") }},
	} {
		t.Run(tc.name, func(t *testing.T) {
			e.t = t
			defer func() { e.t = t }()
			tc.prepare()
			before := readUncommitted(t, e.kafka, topic)
			e.failsWith([]string{"run", "-c", e.cfg, "--from", "gtid:" + foreign}, regexp.QuoteMeta(foreign))
			if after := readUncommitted(t, e.kafka, topic); len(after) != len(before) {
				t.Fatalf("the failed start wrote to %s: %d records before, %d after:\n%s", topic, len(before), len(after), testenv.FormatRecords(after[len(before):]))
			}
		})
	}
}

// `run` refuses what `check` fails (issue 16): a misspelled outbox table
// makes run exit 1 before it writes anything, naming the table and the one
// the server has; the corrected config then starts and publishes.
func TestRunRefusesAMisspelledOutboxTable(t *testing.T) {
	e := newEnv(t, "envelope")
	typo, table := e.dbn+".outbx", e.dbn+".outbox"
	e.editConfig("tables: ["+table+"]", "tables: ["+typo+"]")
	fix := "correct outbox.tables (" + table + "), or create the table, e.g. CREATE TABLE `" + e.dbn + "`.`outbx` (`id` CHAR(36) NOT NULL PRIMARY KEY, `aggregatetype` VARCHAR(255) NOT NULL, `aggregateid` VARCHAR(255) NOT NULL, `type` VARCHAR(255) NOT NULL, `payload` JSON);"
	cp := freeze(t, e.checkpointPath())
	stderr := e.failsWith([]string{"run", "-c", e.cfg},
		regexp.QuoteMeta("FAIL  table "+typo+": does not exist; did you mean "+table+"?\n      fix: "+fix),
		`nothing was written`)
	if strings.Contains(stderr, `"message":"starting"`) {
		t.Fatalf("run started streaming:\n%s", stderr)
	}
	cp.check(t) // no checkpoint bound to the misspelled table set

	// check fails the same item with the same text.
	lines, out, code := e.check()
	if code != 1 {
		t.Fatalf("check: exit code %d, want 1:\n%s", code, out)
	}
	wantCheck(t, lines, out, "table "+typo, "FAIL", fix)

	e.editConfig("tables: ["+typo+"]", "tables: ["+table+"]")
	p := e.start()
	defer p.stop(t)
	e.deliverOne("corrected", nil)
}
