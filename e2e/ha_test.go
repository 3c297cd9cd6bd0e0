package e2e

import (
	"fmt"
	"os"
	"strings"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kfake"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/tailbox-cdc/tailbox/internal/testenv"
)

// haSession is the ha.session_timeout of the tests in this file; their
// broker accepts sessions down to 1 s (Kafka's default minimum is 6 s).
const haSession = 2 * time.Second

// newHAEnv is an env on a private MariaDB with ha.enabled, delivery:
// exactly_once and a 2 s session timeout.
func newHAEnv(t *testing.T) *env {
	t.Helper()
	k := testenv.Kafka(t, kfake.BrokerConfigs(map[string]string{"group.min.session.timeout.ms": "1000"}))
	e := newEnvOn(t, testenv.StartMariaDB(t, ""), k, "envelope")
	e.useKafkaStore(true)
	b, err := os.ReadFile(e.cfg)
	if err != nil {
		t.Fatal(err)
	}
	s := strings.Replace(string(b), "session_timeout: 6s", fmt.Sprintf("session_timeout: %s", haSession), 1)
	if err := os.WriteFile(e.cfg, []byte(s), 0o600); err != nil {
		t.Fatal(err)
	}
	return e
}

// acquisitions is how often p took the ha lease.
func acquisitions(p *proc) int { return strings.Count(p.stderr.String(), "ha lease acquired") }

// haEvents inserts n events for aggregate agg, one transaction each, and
// returns their ids.
func (e *env) haEvents(prefix string, n int) []string {
	e.t.Helper()
	var out []string
	for i := range n {
		id := fmt.Sprintf("%s-0000-0000-0000-%012d", prefix, i)
		e.tx(e.outboxInsert(id, "member", "m-"+prefix, "Changed", `{}`))
		out = append(out, id)
	}
	return out
}

// checkOnce consumes the member topic read_committed and checks that it
// holds exactly the events want, each once.
func (e *env) checkOnce(want []string) {
	e.t.Helper()
	e.kafka.Consume(e.t, []string{"outbox.event.member"}, len(want), 60*time.Second)
	recs := e.kafka.ConsumeAll(e.t, []string{"outbox.event.member"}, 2*time.Second)
	seen := map[string]int{}
	for _, id := range ids(recs) {
		seen[id]++
	}
	for _, id := range want {
		if seen[id] != 1 {
			e.t.Errorf("event %s delivered %d times, want once", id, seen[id])
		}
		delete(seen, id)
	}
	for id, n := range seen {
		e.t.Errorf("unexpected event %s delivered %d times", id, n)
	}
}

// settle gives the group time to take in a membership change (a join is a
// rebalance of the group) before the next one.
func settle() { time.Sleep(haSession) }

// restart stops p with SIGTERM (it must exit 0) and starts a replacement.
func (e *env) restart(p *proc) *proc {
	e.t.Helper()
	if code := p.stop(e.t); code != 0 {
		e.t.Fatalf("replica exit code %d after SIGTERM, want 0:\n%s", code, logTail(p.stderr.String()))
	}
	return e.start()
}

// TestHAStandbyRestartsLeaveTheActive: with two and with three replicas,
// restarting every standby twice moves nothing: the active replica took
// the lease once and keeps it, no standby ever took it, and every event
// arrives once.
func TestHAStandbyRestartsLeaveTheActive(t *testing.T) {
	for _, n := range []int{2, 3} {
		t.Run(fmt.Sprintf("%d replicas", n), func(t *testing.T) {
			e := newHAEnv(t)
			ps := e.replicas(n)
			active := e.activeReplica(ps, 10*time.Second)
			want := e.haEvents("aaaaaaaa", 3)
			all := append([]*proc(nil), ps...)
			for round := range 2 {
				for i, p := range ps {
					if p == active {
						continue
					}
					settle()
					ps[i] = e.restart(p)
					all = append(all, ps[i])
					want = append(want, e.haEvents(fmt.Sprintf("%08d", round*10+i), 2)...)
				}
			}
			settle()
			if got := e.activeReplica(ps, 10*time.Second); got != active {
				t.Errorf("the lease moved away from the active replica, which stayed up")
			}
			if got := acquisitions(active); got != 1 {
				t.Errorf("the active replica took the lease %d times, want 1 (it stayed up)", got)
			}
			for _, p := range all {
				if p != active && acquisitions(p) != 0 {
					t.Errorf("a standby took the lease %d times, want 0", acquisitions(p))
				}
			}
			e.checkOnce(want)
		})
	}
}

// TestHARollingRestart restarts each of three replicas in turn, twice
// over: only a restart of the active replica moves the lease, once.
func TestHARollingRestart(t *testing.T) {
	e := newHAEnv(t)
	ps := e.replicas(3)
	all := append([]*proc(nil), ps...)
	want := e.haEvents("bbbbbbbb", 3)
	activeRestarts := 0
	for round := range 2 {
		for i, p := range ps {
			settle()
			if e.activeReplica(ps, 30*time.Second) == p {
				activeRestarts++
			}
			ps[i] = e.restart(p)
			all = append(all, ps[i])
			e.activeReplica(ps, 30*time.Second)
			want = append(want, e.haEvents(fmt.Sprintf("%08d", round*10+i), 2)...)
		}
	}
	settle()
	e.activeReplica(ps, 10*time.Second)
	total := 0
	for _, p := range all {
		total += acquisitions(p)
	}
	if total != 1+activeRestarts {
		t.Errorf("the lease was taken %d times over 6 restarts, %d of them of the active replica: want %d (the first start and one handover per restart of the active)",
			total, activeRestarts, 1+activeRestarts)
	}
	e.checkOnce(want)
}

// TestHARunFromAppliesOnce: a replica started with --from takes the lease,
// stalls (SIGSTOP past its session), loses it to the other replica,
// resumes and takes it back when the other stops. It resolves --from only
// at its first takeover: the second one resumes from the checkpoint, so
// no event is published twice or skipped.
func TestHARunFromAppliesOnce(t *testing.T) {
	e := newHAEnv(t)
	e.haEvents("cccccccc", 1) // before the --from position: never published
	mark := e.binlogEnd()
	want := e.haEvents("dddddddd", 2)
	a := e.start("--from", mark)
	e.activeReplica([]*proc{a}, 30*time.Second)
	b := e.start()
	settle()
	want = append(want, e.haEvents("eeeeeeee", 2)...)
	e.kafka.Consume(t, []string{"outbox.event.member"}, len(want), 30*time.Second)

	// a stalls past its session: b takes over; a resumes and stands by.
	if err := a.cmd.Process.Signal(syscall.SIGSTOP); err != nil {
		t.Fatal(err)
	}
	e.activeReplica([]*proc{b}, haSession+30*time.Second)
	want = append(want, e.haEvents("ffffffff", 2)...)
	if err := a.cmd.Process.Signal(syscall.SIGCONT); err != nil {
		t.Fatal(err)
	}
	e.activeReplica([]*proc{a, b}, 30*time.Second)
	e.kafka.Consume(t, []string{"outbox.event.member"}, len(want), 30*time.Second)

	// b stops: a takes the lease again.
	if code := b.stop(t); code != 0 {
		t.Fatalf("replica exit code %d after SIGTERM, want 0:\n%s", code, logTail(b.stderr.String()))
	}
	e.activeReplica([]*proc{a}, 30*time.Second)
	if got := acquisitions(a); got != 2 {
		t.Fatalf("the --from replica took the lease %d times, want 2", got)
	}
	want = append(want, e.haEvents("99999999", 2)...)
	e.checkOnce(want)
	if got := strings.Count(a.stderr.String(), `"from":"`+mark+`","checkpoint"`); got != 1 {
		t.Errorf("the --from replica resolved --from %s %d times over two takeovers, want once", mark, got)
	}
}

// TestHATakeoverFailureStandsBy: the replica taking over from a stopped
// active one cannot read the checkpoint (the broker answers the offsets
// lookups of the checkpoint topic with UNKNOWN_SERVER_ERROR, so that
// one load fails): it
// stands by again, takes the lease again after its back-off and streams;
// the process does not end.
func TestHATakeoverFailureStandsBy(t *testing.T) {
	e := newHAEnv(t)
	a := e.start()
	e.activeReplica([]*proc{a}, 30*time.Second)
	b := e.start()
	settle()
	want := e.haEvents("aaaaaaaa", 2)
	e.kafka.Consume(t, []string{"outbox.event.member"}, len(want), 30*time.Second)

	var failures atomic.Int32
	e.kafka.Cluster.ControlKey(int16(kmsg.ListOffsets), func(r kmsg.Request) (kmsg.Response, error, bool) {
		req := r.(*kmsg.ListOffsetsRequest)
		resp := req.ResponseKind().(*kmsg.ListOffsetsResponse)
		hit := false
		for _, rt := range req.Topics {
			st := kmsg.NewListOffsetsResponseTopic()
			st.Topic = rt.Topic
			for _, rp := range rt.Partitions {
				sp := kmsg.NewListOffsetsResponseTopicPartition()
				sp.Partition = rp.Partition
				sp.ErrorCode = kerr.UnknownServerError.Code
				st.Partitions = append(st.Partitions, sp)
			}
			resp.Topics = append(resp.Topics, st)
			hit = hit || rt.Topic == "tailbox.checkpoints"
		}
		// sarama's GetOffset tries twice: fail both, so that one load
		// fails.
		if !hit || failures.Load() >= 2 {
			return nil, nil, false
		}
		failures.Add(1)
		e.kafka.Cluster.KeepControl()
		return resp, nil, true
	})
	if code := a.stop(t); code != 0 {
		t.Fatalf("replica exit code %d after SIGTERM, want 0:\n%s", code, logTail(a.stderr.String()))
	}
	deadline := time.Now().Add(60 * time.Second)
	for acquisitions(b) < 2 || failures.Load() < 2 {
		select {
		case <-b.done:
			t.Fatalf("the replica whose takeover failed exited (%v), want it to stand by:\n%s", b.err, logTail(b.stderr.String()))
		default:
		}
		if time.Now().After(deadline) {
			t.Fatalf("no second takeover within 60s (failed offsets lookups: %d):\n%s", failures.Load(), logTail(b.stderr.String()))
		}
		time.Sleep(100 * time.Millisecond)
	}
	if !strings.Contains(b.stderr.String(), "takeover failed: handing the ha lease over and standing by") {
		t.Errorf("the replica did not log the failed takeover:\n%s", logTail(b.stderr.String()))
	}
	e.activeReplica([]*proc{b}, 30*time.Second)
	want = append(want, e.haEvents("bbbbbbbb", 2)...)
	e.checkOnce(want)
	if code := b.stop(t); code != 0 {
		t.Errorf("replica exit code %d after SIGTERM, want 0", code)
	}
}
