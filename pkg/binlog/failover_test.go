package binlog_test

import (
	"context"
	"fmt"
	"net"
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
