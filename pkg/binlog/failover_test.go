package binlog_test

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/tailbox-cdc/tailbox/internal/testenv"
	"github.com/tailbox-cdc/tailbox/pkg/binlog"
)

// TestReplicaBuiltAtThePositionSurvivesAReconnect starts a Reader on a
// MariaDB replica restored at a GTID position (empty binlog, gtid_slave_pos
// at it), loses the stream before any transaction of the domain arrived,
// and checks that the reconnect, still from that position, streams the
// transactions replicated afterwards once each. The server's GTID strict
// mode would refuse the position if it were asked for it (the binlog does
// not hold it).
func TestReplicaBuiltAtThePositionSurvivesAReconnect(t *testing.T) {
	primary := testenv.StartMariaDB(t, "")
	dbn := primary.CreateDatabase(t, "failover")
	primary.Exec(t, fmt.Sprintf(testenv.OutboxDDL, dbn))
	f := &fixture{db: primary, dbn: dbn}
	f.tx(t, f.insert(t, "before", "1", "A", `{}`))
	at, _ := primary.Exec(t, "SELECT @@GLOBAL.gtid_binlog_pos").GetString(0, 0)

	replica := testenv.StartMariaDB(t, "server_id=2\nlog_slave_updates=ON")
	replica.Exec(t, "CREATE DATABASE "+dbn)
	replica.Exec(t, fmt.Sprintf(testenv.OutboxDDL, dbn))
	replica.Exec(t, "RESET MASTER")
	replica.Exec(t, "SET GLOBAL gtid_slave_pos = '"+at+"'")
	host, port, _ := net.SplitHostPort(primary.Addr)
	replica.Exec(t, fmt.Sprintf("CHANGE MASTER TO MASTER_HOST='%s', MASTER_PORT=%s, MASTER_USER='%s', MASTER_PASSWORD='%s', MASTER_USE_GTID=slave_pos",
		host, port, primary.User, primary.Password))
	replica.Exec(t, "START SLAVE")

	r := open(t, replica, dbn, 4130)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	if err := r.Start(ctx, binlog.Position{GTID: at}, 0, ""); err != nil {
		t.Fatalf("start at %s on the replica: %v", at, err)
	}
	rf := &fixture{db: replica}
	deadline := time.Now().Add(10 * time.Second)
	var dumps []int64
	for len(dumps) == 0 {
		if time.Now().After(deadline) {
			t.Fatal("the reader's dump thread did not appear on the replica")
		}
		time.Sleep(20 * time.Millisecond)
		dumps = rf.dumpThreads(t)
	}
	for _, id := range dumps {
		replica.Exec(t, fmt.Sprintf("KILL %d", id))
	}

	f.tx(t, f.insert(t, "after-1", "1", "B", `{}`))
	f.tx(t, f.insert(t, "after-2", "1", "C", `{}`))
	got, markers := collect(t, r, 2)
	var ids []any
	for _, c := range got {
		ids = append(ids, c.Row[0])
	}
	if fmt.Sprint(ids) != "[after-1 after-2]" {
		t.Fatalf("from %s the replica gave %v, want [after-1 after-2]", at, ids)
	}
	if r.Stats().Reconnects == 0 {
		t.Fatal("the stream was not lost: the test did not exercise a reconnect")
	}
	end, _ := primary.Exec(t, "SELECT @@GLOBAL.gtid_binlog_pos").GetString(0, 0)
	if last := markers[len(markers)-1]; last.GTID != end {
		t.Fatalf("the last marker is %s, want gtid %s (the primary's end)", last, end)
	}
}

// switchProxy forwards TCP connections to a server; switchTo sends new
// connections to another one and closes those open: a failover address (a
// virtual IP, a proxy) that now leads to another server.
type switchProxy struct {
	ln     net.Listener
	target atomic.Pointer[string]
	mu     sync.Mutex
	conns  []net.Conn
}

func startSwitchProxy(t *testing.T, target string) *switchProxy {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatalf("proxy listen: %v", err)
	}
	px := &switchProxy{ln: ln}
	px.target.Store(&target)
	go px.serve()
	t.Cleanup(func() {
		ln.Close()
		px.closeConns()
	})
	return px
}

func (px *switchProxy) addr() string { return px.ln.Addr().String() }

func (px *switchProxy) serve() {
	for {
		a, err := px.ln.Accept()
		if err != nil {
			return
		}
		b, err := net.DialTimeout("tcp", *px.target.Load(), 5*time.Second)
		if err != nil {
			a.Close()
			continue
		}
		px.mu.Lock()
		px.conns = append(px.conns, a, b)
		px.mu.Unlock()
		go func() { _, _ = io.Copy(b, a); b.Close() }()
		go func() { _, _ = io.Copy(a, b); a.Close() }()
	}
}

// switchTo makes target the server behind the address.
func (px *switchProxy) switchTo(target string) {
	px.target.Store(&target)
	px.closeConns()
}

func (px *switchProxy) closeConns() {
	px.mu.Lock()
	defer px.mu.Unlock()
	for _, c := range px.conns {
		c.Close()
	}
	px.conns = nil
}

// replicaOf starts a MariaDB replica of primary (server_id 2,
// log_slave_updates) that replicates by GTID from primary's current
// position, with the database dbn created on both.
func replicaOf(t *testing.T, primary *testenv.MySQLServer, dbn string) *testenv.MySQLServer {
	t.Helper()
	at, _ := primary.Exec(t, "SELECT @@GLOBAL.gtid_binlog_pos").GetString(0, 0)
	replica := testenv.StartMariaDB(t, "server_id=2\nlog_slave_updates=ON")
	replica.Exec(t, "CREATE DATABASE "+dbn)
	replica.Exec(t, fmt.Sprintf(testenv.OutboxDDL, dbn))
	replica.Exec(t, "RESET MASTER")
	replica.Exec(t, "SET GLOBAL gtid_slave_pos = '"+at+"'")
	host, port, _ := net.SplitHostPort(primary.Addr)
	replica.Exec(t, fmt.Sprintf("CHANGE MASTER TO MASTER_HOST='%s', MASTER_PORT=%s, MASTER_USER='%s', MASTER_PASSWORD='%s', MASTER_USE_GTID=slave_pos",
		host, port, primary.User, primary.Password))
	replica.Exec(t, "START SLAVE")
	return replica
}

// waitApplied waits until replica has applied gtid (MASTER_GTID_WAIT).
func waitApplied(t *testing.T, replica *testenv.MySQLServer, gtid string) {
	t.Helper()
	if r, _ := replica.Exec(t, fmt.Sprintf("SELECT MASTER_GTID_WAIT('%s', 20)", gtid)).GetInt(0, 0); r != 0 {
		t.Fatalf("the replica did not apply %s within 20s", gtid)
	}
}

// A failover address that leads to another server from one reconnect to
// the next: the reader reads the identity of the server at every connect.
// A GTID position continues on the new server, whose identity Server then
// reports (checkpoints are stamped with it); a file position, which names
// a place in the old server's binlog, is refused with ErrServerChanged
// naming both servers, instead of being read in the new server's binlog.
func TestServerBehindTheAddressChanges(t *testing.T) {
	primary := testenv.StartMariaDB(t, "")
	dbn := primary.CreateDatabase(t, "switch")
	primary.Exec(t, fmt.Sprintf(testenv.OutboxDDL, dbn))
	f := &fixture{db: primary, dbn: dbn}
	f.tx(t, f.insert(t, "before", "1", "A", `{}`))
	replica := replicaOf(t, primary, dbn)
	primaryID := open(t, primary, dbn, 4160).Server().ServerID
	replicaID := open(t, replica, dbn, 4161).Server().ServerID
	if primaryID == replicaID {
		t.Fatalf("both servers have server_id %d: the test cannot tell them apart", primaryID)
	}

	t.Run("a GTID position continues on the new server with its identity", func(t *testing.T) {
		px := startSwitchProxy(t, primary.Addr)
		r := open(t, &testenv.MySQLServer{Addr: px.addr(), User: primary.User, Password: primary.Password}, dbn, 4162)
		at, _ := primary.Exec(t, "SELECT @@GLOBAL.gtid_binlog_pos").GetString(0, 0)
		ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		defer cancel()
		if err := r.Start(ctx, binlog.Position{GTID: at}, 0, ""); err != nil {
			t.Fatalf("start at %s: %v", at, err)
		}
		f.tx(t, f.insert(t, "gtid-1", "1", "B", `{}`))
		if got, _ := collect(t, r, 1); len(got) != 1 || got[0].Row[0] != "gtid-1" {
			t.Fatalf("before the switch: got %v, want gtid-1", got)
		}
		if id := r.Server().ServerID; id != primaryID {
			t.Fatalf("before the switch Server().ServerID = %d, want the primary's %d", id, primaryID)
		}
		end, _ := primary.Exec(t, "SELECT @@GLOBAL.gtid_binlog_pos").GetString(0, 0)
		waitApplied(t, replica, end)
		px.switchTo(replica.Addr)
		f.tx(t, f.insert(t, "gtid-2", "1", "C", `{}`))
		got, markers := collect(t, r, 1)
		if len(got) != 1 || got[0].Row[0] != "gtid-2" {
			t.Fatalf("after the switch: got %v, want gtid-2", got)
		}
		if r.Stats().Reconnects == 0 {
			t.Fatal("the stream was not lost: the test did not exercise a reconnect")
		}
		if id := r.Server().ServerID; id != replicaID {
			t.Fatalf("after the switch Server().ServerID = %d, want the replica's %d: positions read from the replica would be stamped with the primary's identity", id, replicaID)
		}
		end, _ = primary.Exec(t, "SELECT @@GLOBAL.gtid_binlog_pos").GetString(0, 0)
		if last := markers[len(markers)-1]; last.GTID != end {
			t.Fatalf("the last marker is %s, want gtid %s", last, end)
		}
	})

	t.Run("a file position is refused on the new server", func(t *testing.T) {
		px := startSwitchProxy(t, primary.Addr)
		r := open(t, &testenv.MySQLServer{Addr: px.addr(), User: primary.User, Password: primary.Password}, dbn, 4163)
		file, pos := binlogEnd(t, primary)
		px.switchTo(replica.Addr)
		ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		defer cancel()
		err := r.Start(ctx, binlog.Position{File: file, Pos: pos}, 0, "")
		if !errors.Is(err, binlog.ErrServerChanged) {
			t.Fatalf("start at %s:%d of the primary, with the replica behind the address: got %v, want ErrServerChanged", file, pos, err)
		}
		for _, want := range []string{fmt.Sprintf("server_id %d", primaryID), fmt.Sprintf("server_id %d", replicaID), "offsets set"} {
			if !strings.Contains(err.Error(), want) {
				t.Errorf("the error does not name %q: %v", want, err)
			}
		}
	})
}

// binlogEnd returns the end of db's binlog (SHOW MASTER STATUS).
func binlogEnd(t *testing.T, db *testenv.MySQLServer) (string, uint32) {
	t.Helper()
	r := db.Exec(t, "SHOW MASTER STATUS")
	file, _ := r.GetString(0, 0)
	pos, _ := r.GetUint(0, 1)
	return file, uint32(pos)
}
