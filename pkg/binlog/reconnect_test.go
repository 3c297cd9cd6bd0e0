package binlog_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/go-mysql-org/go-mysql/client"
	"github.com/rs/zerolog"

	"github.com/tailbox-cdc/tailbox/internal/testenv"
	"github.com/tailbox-cdc/tailbox/pkg/binlog"
)

// cutProxy forwards TCP connections to a server and closes the first one
// whose server-to-client bytes pass limit: a connection lost at a chosen
// point of the stream.
type cutProxy struct {
	ln     net.Listener
	target string
	limit  int64
	// onCrossing: cut only the connection that is the onCrossing-th (from
	// 1) to pass limit; 0 means the first.
	onCrossing int32
	crossings  atomic.Int32
	cut        atomic.Bool
	accepted   atomic.Int32
	mu         sync.Mutex
	conns      []net.Conn
}

func startCutProxy(t *testing.T, target string, limit int64) *cutProxy {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatalf("proxy listen: %v", err)
	}
	px := &cutProxy{ln: ln, target: target, limit: limit}
	go px.serve()
	t.Cleanup(func() {
		ln.Close()
		px.mu.Lock()
		defer px.mu.Unlock()
		for _, c := range px.conns {
			c.Close()
		}
	})
	return px
}

func (px *cutProxy) serve() {
	for {
		a, err := px.ln.Accept()
		if err != nil {
			return
		}
		b, err := net.DialTimeout("tcp", px.target, 5*time.Second)
		if err != nil {
			a.Close()
			continue
		}
		px.accepted.Add(1)
		px.mu.Lock()
		px.conns = append(px.conns, a, b)
		px.mu.Unlock()
		go func() { _, _ = io.Copy(b, a); b.Close() }()
		go func() {
			defer a.Close()
			defer b.Close()
			buf := make([]byte, 16<<10)
			var n int64
			crossed := false
			for {
				m, err := b.Read(buf)
				if m > 0 {
					n += int64(m)
					if n > px.limit && !crossed {
						crossed = true
						if c := px.crossings.Add(1); (px.onCrossing == 0 || c == px.onCrossing) && px.cut.CompareAndSwap(false, true) {
							return // drop the rest: the connection is lost here
						}
					}
					if _, werr := a.Write(buf[:m]); werr != nil {
						return
					}
				}
				if err != nil {
					return
				}
			}
		}()
	}
}

// TestReaderReconnectInsideSkippedPrefixPassesItOver starts a reader inside
// a large transaction with skip (a checkpoint that had acknowledged a
// prefix of it) and loses the connection while the reader is still passing
// over that prefix. After reconnecting, the first row handed out must still
// be the first one after the skip: rows of the prefix are never resent.
func TestReaderReconnectInsideSkippedPrefixPassesItOver(t *testing.T) {
	const rows, skip = 20000, 15000
	f := setup(t, 4150)
	ctx := context.Background()
	start, err := f.r.Inspector().Latest(ctx)
	if err != nil {
		t.Fatal(err)
	}
	c := f.db.Conn(t)
	if _, err := c.Execute("BEGIN"); err != nil {
		t.Fatal(err)
	}
	pad := strings.Repeat("p", 80)
	for i := 0; i < rows; i += 1000 {
		var b strings.Builder
		fmt.Fprintf(&b, "INSERT INTO %s.outbox (id, aggregatetype, aggregateid, type, payload) VALUES ", f.dbn)
		for j := i; j < i+1000; j++ {
			if j > i {
				b.WriteByte(',')
			}
			fmt.Fprintf(&b, `('r%06d','member','%d','T','{"p":"%s"}')`, j, j%7, pad)
		}
		if _, err := c.Execute(b.String()); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := c.Execute("COMMIT"); err != nil {
		t.Fatal(err)
	}
	// Other tests share the server: start where a checkpoint inside this
	// transaction would, at its own start.
	begin, gtid, end := ownGroup(t, f.db, c, start)

	// Lose the replication connection about a third into the transaction,
	// well before row skip.
	px := startCutProxy(t, f.db.Addr, int64(end-begin.Pos)/3)
	r, err := binlog.Open(ctx, binlog.Config{
		Addr: px.ln.Addr().String(), User: f.db.User, Password: f.db.Password, ServerID: 4151,
		Tables: []string{f.dbn + ".outbox"}, Heartbeat: time.Second, ReconnectBackoff: 50 * time.Millisecond,
	}, zerolog.New(zerolog.NewTestWriter(t)), nil)
	if err != nil {
		t.Fatalf("open reader: %v", err)
	}
	t.Cleanup(func() { r.Close() })
	if err := r.Start(ctx, begin, skip, gtid); err != nil {
		t.Fatal(err)
	}
	changes, _ := collect(t, r, rows-skip)
	if !px.cut.Load() {
		t.Fatal("the proxy never cut the connection: the test did not exercise a reconnect")
	}
	if len(changes) != rows-skip {
		t.Fatalf("got %d rows after the reconnect, want %d (rows %d..%d)", len(changes), rows-skip, skip, rows-1)
	}
	for i, ch := range changes {
		want := fmt.Sprintf("r%06d", skip+i)
		if ch.Index != skip+i || ch.Row[0] != want {
			t.Fatalf("row %d after the reconnect is %v (index %d), want %s (index %d): the skipped prefix was resent",
				i, ch.Row[0], ch.Index, want, skip+i)
		}
	}
}

// ownGroup finds, in the binlog file of from, the group the connection c
// committed last (@@last_gtid): the position of its GTID event (without a
// GTID set: Start derives it), its GTID and the end of its last event.
// Other tests commit on the same server, before and after it.
func ownGroup(t *testing.T, db *testenv.MySQLServer, c *client.Conn, from binlog.Position) (begin binlog.Position, gtid string, end uint32) {
	t.Helper()
	res, err := c.Execute("SELECT @@last_gtid")
	if err != nil {
		t.Fatal(err)
	}
	gtid, _ = res.GetString(0, 0)
	res = db.Exec(t, fmt.Sprintf("SHOW BINLOG EVENTS IN '%s' FROM %d", from.File, from.Pos))
	for i := 0; i < res.RowNumber(); i++ {
		typ, _ := res.GetStringByName(i, "Event_type")
		info, _ := res.GetStringByName(i, "Info")
		pos, _ := res.GetUintByName(i, "Pos")
		endPos, _ := res.GetUintByName(i, "End_log_pos")
		switch {
		case begin.File == "" && typ == "Gtid" && strings.HasSuffix(info, "GTID "+gtid):
			begin = binlog.Position{File: from.File, Pos: uint32(pos)}
		case begin.File != "" && typ == "Gtid":
			return begin, gtid, end
		case begin.File != "":
			end = uint32(endPos)
		}
	}
	if begin.File == "" {
		t.Fatalf("no GTID event %s in %s after %d (the binlog rotated?)", gtid, from.File, from.Pos)
	}
	return begin, gtid, end
}

// TestReaderGivesUpAfterMaxReconnects loses the stream's server (the proxy
// in front of it stops listening) and checks the reconnect policy: each
// attempt is logged with its number and a wait that starts at
// ReconnectBackoff and doubles, and after MaxReconnects failed attempts in
// a row Next fails with ErrConnection, naming how many it made.
func TestReaderGivesUpAfterMaxReconnects(t *testing.T) {
	const maxReconnects = 3
	db := testenv.MySQL(t)
	dbn := db.CreateDatabase(t, "giveup")
	db.Exec(t, fmt.Sprintf(testenv.OutboxDDL, dbn))
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	px := startCutProxy(t, db.Addr, 1<<62)
	var logs testenv.SyncBuffer
	r := openAtLatest(ctx, t, binlog.Config{
		Addr: px.ln.Addr().String(), User: db.User, Password: db.Password, ServerID: 4191,
		Tables: []string{dbn + ".outbox"}, Heartbeat: time.Second,
		ReconnectBackoff: 10 * time.Millisecond, MaxReconnects: maxReconnects,
	}, zerolog.New(&logs))
	// The server goes away: no new connection, the open ones dropped.
	px.ln.Close()
	px.mu.Lock()
	for _, c := range px.conns {
		c.Close()
	}
	px.mu.Unlock()

	var err error
	for err == nil {
		_, err = r.Next(ctx)
	}
	want := fmt.Sprintf("giving up after %d attempts", maxReconnects)
	if !errors.Is(err, binlog.ErrConnection) || !strings.Contains(err.Error(), want) {
		t.Fatalf("Next = %v, want ErrConnection %q", err, want)
	}
	var got []string
	for _, line := range strings.Split(strings.TrimSpace(logs.String()), "\n") {
		var e struct {
			Msg     string  `json:"message"`
			Attempt int     `json:"attempt"`
			Backoff float64 `json:"backoff_ms"`
		}
		if json.Unmarshal([]byte(line), &e) == nil && e.Msg == "binlog connection lost, reconnecting from last transaction end" {
			got = append(got, fmt.Sprintf("attempt %d after %gms", e.Attempt, e.Backoff))
		}
	}
	wantLog := []string{"attempt 1 after 10ms", "attempt 2 after 20ms", "attempt 3 after 40ms"}
	if !slices.Equal(got, wantLog) {
		t.Fatalf("reconnect attempts logged %q, want %q\nlog:\n%s", got, wantLog, logs.String())
	}
}
