package e2e

import (
	"context"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"
)

// TestHAStaleHolderResumingInItsBackoffFencesNobody: the active replica's
// producer fails (the broker answers one produce request with
// UNKNOWN_SERVER_ERROR) and it waits out its restart back-off; it stalls
// there (SIGSTOP) past its session, and the other replica takes the lease.
// When the stalled one resumes, its back-off is over before it has heard
// from the group coordinator (its heartbeats are held for 2 s): it must
// not open a transactional producer, which would fence the new holder. The
// new holder keeps streaming unfenced, it took the lease once, and every
// event arrives once.
func TestHAStaleHolderResumingInItsBackoffFencesNobody(t *testing.T) {
	e := newHAEnv(t)
	a := e.start()
	e.activeReplica([]*proc{a}, 30*time.Second)
	b := e.start()
	settle()
	want := e.haEvents("aaaaaaaa", 2)
	e.kafka.Consume(t, []string{"outbox.event.member"}, len(want), 30*time.Second)

	// One failed produce request: a restarts its session after a back-off.
	var failOnce sync.Once
	e.kafka.Cluster.ControlKey(int16(kmsg.Produce), func(r kmsg.Request) (kmsg.Response, error, bool) {
		req := r.(*kmsg.ProduceRequest)
		hit := false
		for _, rt := range req.Topics {
			hit = hit || rt.Topic == "outbox.event.member"
		}
		handled := false
		if hit {
			failOnce.Do(func() { handled = true })
		}
		if !handled {
			e.kafka.Cluster.KeepControl()
			return nil, nil, false
		}
		resp := req.ResponseKind().(*kmsg.ProduceResponse)
		for _, rt := range req.Topics {
			st := kmsg.NewProduceResponseTopic()
			st.Topic = rt.Topic
			for _, rp := range rt.Partitions {
				sp := kmsg.NewProduceResponseTopicPartition()
				sp.Partition = rp.Partition
				sp.ErrorCode = kerr.UnknownServerError.Code
				st.Partitions = append(st.Partitions, sp)
			}
			resp.Topics = append(resp.Topics, st)
		}
		return resp, nil, true
	})
	want = append(want, e.haEvents("bbbbbbbb", 1)...)
	deadline := time.Now().Add(30 * time.Second)
	for !strings.Contains(a.stderr.String(), "producer failed, restarting from the acknowledged checkpoint") {
		if time.Now().After(deadline) {
			t.Fatalf("the active replica did not restart its producer within 30s:\n%s", logTail(a.stderr.String()))
		}
		time.Sleep(5 * time.Millisecond)
	}
	if err := a.cmd.Process.Signal(syscall.SIGSTOP); err != nil {
		t.Fatal(err)
	}
	e.activeReplica([]*proc{b}, haSession+30*time.Second)
	want = append(want, e.haEvents("cccccccc", 2)...)
	e.kafka.Consume(t, []string{"outbox.event.member"}, len(want), 30*time.Second)

	// The coordinator evicted a; hold its heartbeats (those of members
	// other than b) for 2 s, so that a's back-off ends before it learns.
	group := "tailbox-e2e-" + e.dbn
	members := groupMembers(t, e, group)
	if len(members) != 1 {
		t.Fatalf("group %s has members %v after the takeover, want only the new holder", group, members)
	}
	e.kafka.Cluster.ControlKey(int16(kmsg.Heartbeat), func(r kmsg.Request) (kmsg.Response, error, bool) {
		e.kafka.Cluster.KeepControl()
		req := r.(*kmsg.HeartbeatRequest)
		if req.Group == group && req.MemberID != members[0] {
			e.kafka.Cluster.SleepControl(func() { time.Sleep(2 * time.Second) })
		}
		return nil, nil, false
	})
	if err := a.cmd.Process.Signal(syscall.SIGCONT); err != nil {
		t.Fatal(err)
	}
	// Events that b commits after a resumed: a fenced b makes them fail.
	for i := range 3 {
		time.Sleep(time.Second)
		want = append(want, e.haEvents(strings.Repeat(string(rune('d'+i)), 8), 1)...)
	}
	e.kafka.Consume(t, []string{"outbox.event.member"}, len(want), 30*time.Second)
	if strings.Contains(b.stderr.String(), "fenced by the replica that took over") {
		t.Errorf("the stale replica fenced the lease holder when it resumed:\n%s", logTail(b.stderr.String()))
	}
	if got := e.activeReplica([]*proc{a, b}, 30*time.Second); got != b {
		t.Errorf("the lease moved back to the stale replica")
	}
	if got := acquisitions(b); got != 1 {
		t.Errorf("the new holder took the lease %d times, want 1", got)
	}
	for _, l := range strings.Split(a.stderr.String(), "\n") {
		if strings.Contains(l, "ha lease lost") || strings.Contains(l, "takeover failed") {
			t.Logf("the stale replica: %s", l)
		}
	}
	e.checkOnce(want)
	for _, p := range []*proc{a, b} {
		if code := p.stop(t); code != 0 {
			t.Errorf("replica exit code %d after SIGTERM, want 0:\n%s", code, logTail(p.stderr.String()))
		}
	}
}

// TestHAFencedHolderKeepsTheLease: a producer with the connector's
// transactional id fences the lease holder (as a stale former holder that
// resumed would) while the coordinator still counts the holder as the
// member with the lease. The holder does not hand the lease over: it backs
// off and takes over again, which fences that producer in turn; the
// standby never takes the lease, and every event arrives once.
func TestHAFencedHolderKeepsTheLease(t *testing.T) {
	e := newHAEnv(t)
	a := e.start()
	e.activeReplica([]*proc{a}, 30*time.Second)
	b := e.start()
	settle()
	want := e.haEvents("aaaaaaaa", 2)
	e.kafka.Consume(t, []string{"outbox.event.member"}, len(want), 30*time.Second)

	stale := e.kafka.Client(t, kgo.TransactionalID("tailbox-e2e-"+e.dbn), kgo.TransactionTimeout(time.Minute))
	ctx := context.Background()
	if err := stale.BeginTransaction(); err != nil {
		t.Fatal(err)
	}
	if err := stale.ProduceSync(ctx, &kgo.Record{Topic: "stale-" + e.dbn, Value: []byte("x")}).FirstErr(); err != nil {
		t.Fatalf("produce as the stale producer: %v", err)
	}
	want = append(want, e.haEvents("bbbbbbbb", 2)...)
	deadline := time.Now().Add(30 * time.Second)
	for !strings.Contains(a.stderr.String(), "fenced") {
		if time.Now().After(deadline) {
			t.Fatalf("the holder was not fenced within 30s:\n%s", logTail(a.stderr.String()))
		}
		time.Sleep(50 * time.Millisecond)
	}
	want = append(want, e.haEvents("cccccccc", 2)...)
	e.kafka.Consume(t, []string{"outbox.event.member"}, len(want), 30*time.Second)
	if err := stale.EndTransaction(ctx, kgo.TryCommit); err == nil {
		t.Error("the stale producer committed: the holder did not fence it when it took over again")
	}
	if got := e.activeReplica([]*proc{a, b}, 30*time.Second); got != a {
		t.Error("the lease moved to the standby")
	}
	if got := acquisitions(b); got != 0 {
		t.Errorf("the standby took the lease %d times, want 0", got)
	}
	if strings.Contains(a.stderr.String(), "fenced by the replica that took over") {
		t.Errorf("the holder stood by after it was fenced, while it held the lease:\n%s", logTail(a.stderr.String()))
	}
	e.checkOnce(want)
	for _, p := range []*proc{a, b} {
		if code := p.stop(t); code != 0 {
			t.Errorf("replica exit code %d after SIGTERM, want 0:\n%s", code, logTail(p.stderr.String()))
		}
	}
}

// groupMembers returns the member ids of a consumer group.
func groupMembers(t *testing.T, e *env, group string) []string {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	req := kmsg.NewPtrDescribeGroupsRequest()
	req.Groups = []string{group}
	resp, err := req.RequestWith(ctx, e.kafka.Client(t))
	if err != nil {
		t.Fatalf("describe group %s: %v", group, err)
	}
	var ids []string
	for _, g := range resp.Groups {
		if err := kerr.ErrorForCode(g.ErrorCode); err != nil {
			t.Fatalf("describe group %s: %v", group, err)
		}
		for _, m := range g.Members {
			ids = append(ids, m.MemberID)
		}
	}
	return ids
}
