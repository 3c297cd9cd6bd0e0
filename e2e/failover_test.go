package e2e

import (
	"fmt"
	"net"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/tailbox-cdc/tailbox/internal/testenv"
)

// Failover by GTID to a MariaDB replica restored from a backup (DESIGN.md,
// "GTIDs"): the replica's binlog begins right after the checkpoint, its
// gtid_slave_pos says where the backup was taken. tailbox resumes there and
// delivers the rest once; a replica that lacks transactions the checkpoint
// still needs is refused with the positions named and the checkpoint file
// left as it was.

// replicaOpts are the [mysqld] options of a replica with server_id id that
// writes what it replicates to its own binlog.
func replicaOpts(id int) string {
	return fmt.Sprintf("server_id=%d\nlog_slave_updates=ON", id)
}

// restoreReplica turns srv into a replica of primary restored from a backup
// of e's database taken at gtid: the outbox table exists, the binlog holds
// nothing (RESET MASTER: the restore itself is not replicated history),
// gtid_slave_pos is gtid, and, when replicate is set, it replicates from
// primary by GTID (MASTER_USE_GTID=slave_pos).
func (e *env) restoreReplica(srv, primary *testenv.MySQLServer, gtid string, replicate bool) {
	e.t.Helper()
	srv.Exec(e.t, "CREATE DATABASE "+e.dbn)
	srv.Exec(e.t, fmt.Sprintf(testenv.OutboxDDL, e.dbn))
	srv.Exec(e.t, "RESET MASTER")
	srv.Exec(e.t, "SET GLOBAL gtid_slave_pos = '"+gtid+"'")
	if !replicate {
		return
	}
	host, port, _ := net.SplitHostPort(primary.Addr)
	srv.Exec(e.t, fmt.Sprintf("CHANGE MASTER TO MASTER_HOST='%s', MASTER_PORT=%s, MASTER_USER='%s', MASTER_PASSWORD='%s', MASTER_USE_GTID=slave_pos",
		host, port, primary.User, primary.Password))
	srv.Exec(e.t, "START SLAVE")
}

// waitReplicated waits until replica has applied everything primary has
// written to its binlog.
func waitReplicated(t *testing.T, primary, replica *testenv.MySQLServer) {
	t.Helper()
	pos, _ := primary.Exec(t, "SELECT @@GLOBAL.gtid_binlog_pos").GetString(0, 0)
	r := replica.Exec(t, "SELECT MASTER_GTID_WAIT(?, 30)", pos)
	if v, _ := r.GetInt(0, 0); v != 0 {
		st := replica.Exec(t, "SHOW SLAVE STATUS")
		errMsg, _ := st.GetStringByName(0, "Last_Error")
		ioErr, _ := st.GetStringByName(0, "Last_IO_Error")
		t.Fatalf("replica %s did not apply %s within 30s (last error %q, last io error %q)", replica.Addr, pos, errMsg, ioErr)
	}
}

// firstBinlogGTID returns the GTID of the first transaction in srv's oldest
// binlog file, "" when it holds none.
func firstBinlogGTID(t *testing.T, srv *testenv.MySQLServer) string {
	t.Helper()
	r := srv.Exec(t, "SHOW BINLOG EVENTS")
	for i := 0; i < r.RowNumber(); i++ {
		typ, _ := r.GetStringByName(i, "Event_type")
		info, _ := r.GetStringByName(i, "Info")
		if typ == "Gtid" {
			f := strings.Fields(info)
			return f[len(f)-1] // "BEGIN GTID 0-1-5" or "GTID 0-1-5"
		}
	}
	return ""
}

// useSource points e's config at srv (with a new source.server_id); e's
// own statements still go to e.db, the primary.
func (e *env) useSource(srv *testenv.MySQLServer) {
	e.t.Helper()
	db := e.db
	e.db = srv
	e.writeConfig("envelope", "")
	e.db = db
}

// checkpointGTID returns the GTID of e's checkpoint, which must be where
// primary's binlog ends: the replicas below are built "at the checkpoint".
func (e *env) checkpointGTID(primary *testenv.MySQLServer) string {
	e.t.Helper()
	cp := readCheckpoint(e.t, e.checkpointPath())
	if cp == nil || cp.Position.GTID == "" || cp.Skip != 0 {
		e.t.Fatalf("checkpoint %+v: want a GTID position after a whole transaction", cp)
	}
	end, _ := primary.Exec(e.t, "SELECT @@GLOBAL.gtid_binlog_pos").GetString(0, 0)
	if cp.Position.GTID != end {
		e.t.Fatalf("checkpoint gtid %s, but the primary's binlog ends at %s", cp.Position.GTID, end)
	}
	return cp.Position.GTID
}

// nextGTID returns MariaDB GTID g (domain-server-seq) with its sequence
// number advanced by n.
func nextGTID(t *testing.T, g string, n int) string {
	t.Helper()
	d, s, seq := parseMariaGTID(t, g)
	return fmt.Sprintf("%d-%d-%d", d, s, int64(seq)+int64(n))
}

func TestFailoverToReplicaBuiltAtTheCheckpoint(t *testing.T) {
	primary := testenv.StartMariaDB(t, "")
	e := newEnvOn(t, primary, testenv.Kafka(t), "envelope")
	written := 0
	write := func() int { written++; e.write(written); return written }
	all := func() []int {
		ns := make([]int, written)
		for i := range ns {
			ns[i] = i + 1
		}
		return ns
	}
	// Each case begins with tailbox caught up on the primary: the
	// checkpoint is then at the end of the primary's binlog.
	catchUp := func(t *testing.T) string {
		e.t = t
		e.useSource(primary)
		e.expectEvents(all())
		return e.checkpointGTID(primary)
	}
	write()
	write()
	write()
	e.setStartFrom("earliest")
	e.expectEvents(all())

	t.Run("a replica that has replicated nothing since the backup resumes", func(t *testing.T) {
		// Its binlog is empty; its gtid_slave_pos is the checkpoint.
		cp := catchUp(t)
		replica := testenv.StartMariaDB(t, replicaOpts(2))
		e.restoreReplica(replica, primary, cp, true)
		e.useSource(replica)
		p := e.start()
		write()
		write()
		e.kafka.Consume(t, memberTopic, written, 30*time.Second)
		recs := e.kafka.ConsumeAll(t, memberTopic, time.Second)
		if code := p.stop(t); code != 0 {
			t.Fatalf("exit code %d after SIGTERM:\n%s", code, logTail(p.stderr.String()))
		}
		sameEvents(t, recs, all()...)
	})

	t.Run("a replica whose binlog holds what it replicated since the backup resumes", func(t *testing.T) {
		cp := catchUp(t)
		replica := testenv.StartMariaDB(t, replicaOpts(3))
		e.restoreReplica(replica, primary, cp, true)
		write()
		write()
		waitReplicated(t, primary, replica)
		if got, want := firstBinlogGTID(t, replica), nextGTID(t, cp, 1); got != want {
			t.Fatalf("the replica's binlog starts with %q, want %s: the transaction right after the checkpoint", got, want)
		}
		e.useSource(replica)
		e.expectEvents(all())
	})

	t.Run("a replica restored from a backup taken after the checkpoint is refused", func(t *testing.T) {
		cp := catchUp(t)
		write() // after the checkpoint, before the backup: the replica never has it
		backup := nextGTID(t, cp, 1)
		replica := testenv.StartMariaDB(t, replicaOpts(4))
		e.restoreReplica(replica, primary, backup, true)
		write()
		waitReplicated(t, primary, replica)
		first := nextGTID(t, cp, 2)
		if got := firstBinlogGTID(t, replica); got != first {
			t.Fatalf("the replica's binlog starts with %q, want %s", got, first)
		}
		e.useSource(replica)
		f := freeze(t, e.checkpointPath())
		e.failsWith([]string{"run", "-c", e.cfg},
			regexp.QuoteMeta("holds gtid "+cp+", which this server cannot resume from"),
			regexp.QuoteMeta("the binlog has domain 0 only from "+first+" (in mysql-bin.000001 at "),
			regexp.QuoteMeta("the transactions after "+cp+" and before it are not on this server"))
		f.check(t)
	})

	t.Run("a replica that has not applied the checkpoint is refused", func(t *testing.T) {
		cp := catchUp(t)
		behind := nextGTID(t, cp, -1)
		replica := testenv.StartMariaDB(t, replicaOpts(5))
		e.restoreReplica(replica, primary, behind, false)
		e.useSource(replica)
		f := freeze(t, e.checkpointPath())
		e.failsWith([]string{"run", "-c", e.cfg},
			regexp.QuoteMeta("holds gtid "+cp+", which this server cannot resume from"),
			regexp.QuoteMeta("gtid "+cp+" is beyond what the server has executed or applied (@@gtid_binlog_pos has nothing in domain 0, @@gtid_current_pos has "+behind+")"))
		f.check(t)
	})
}

// sameEvents fails t unless recs are the test events ns, each once.
func sameEvents(t *testing.T, recs []*kgo.Record, ns ...int) {
	t.Helper()
	got := ids(recs)
	var want []string
	for _, n := range ns {
		want = append(want, eventID(n))
	}
	slices.Sort(got)
	slices.Sort(want)
	if !slices.Equal(got, want) {
		t.Fatalf("the topic holds\n  %v\nwant each once\n  %v", got, want)
	}
}
