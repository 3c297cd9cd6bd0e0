package e2e

import (
	"context"
	"math/rand/v2"
	"net/http"
	"os"
	"os/exec"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/tailbox-cdc/tailbox/internal/testenv"
)

// useKafkaStore rewrites e's config for checkpoint.store: kafka and
// delivery: exactly_once (and, with ha, ha.enabled), and makes start wait
// for the "starting" line instead of a checkpoint file.
func (e *env) useKafkaStore(ha bool) {
	e.t.Helper()
	b, err := os.ReadFile(e.cfg)
	if err != nil {
		e.t.Fatal(err)
	}
	s := strings.Replace(string(b), "checkpoint:\n", "checkpoint:\n  store: kafka\n", 1)
	s += "delivery: exactly_once\n"
	s = strings.Replace(s, "  linger: 1ms\n", "  linger: 1ms\n  transaction_interval: 50ms\n", 1)
	if ha {
		// kfake's group.min.session.timeout.ms is 6s, as Kafka's.
		s += "ha: {enabled: true, session_timeout: 6s}\n"
	}
	if err := os.WriteFile(e.cfg, []byte(s), 0o600); err != nil {
		e.t.Fatal(err)
	}
	e.noFile = true
}

var readCommitted = kgo.FetchIsolationLevel(kgo.ReadCommitted())

// TestExactlyOnceKill9UnderLoad is the kill -9 test of the fault issue with
// delivery: exactly_once: consumed with read_committed, every committed
// event is there exactly once, in commit order per aggregate.
func TestExactlyOnceKill9UnderLoad(t *testing.T) {
	kills := killCount(10, 100)
	e := newEnvOn(t, testenv.StartMariaDB(t, ""), testenv.Kafka(t), "envelope")
	e.useKafkaStore(false)
	p := e.start()
	l := startLoad(t, e.db, e.dbn, loadOptions{Workers: 4, Aggregates: 200, MaxRows: 5, Pause: 20 * time.Millisecond})

	rng := rand.New(rand.NewPCG(uint64(time.Now().UnixNano()), 2))
	for range kills {
		time.Sleep(time.Duration(100+rng.IntN(1400)) * time.Millisecond)
		p.mustRun(t)
		p.kill9(t)
		p = e.start()
	}
	time.Sleep(500 * time.Millisecond)
	want, recs, d := l.drain(t, e.kafka, []string{loadTopic}, 2*time.Minute, p, readCommitted)
	if d.dups != 0 {
		t.Errorf("read_committed consumer saw %d duplicates, want 0 with delivery: exactly_once", d.dups)
	}
	all := readUncommitted(t, e.kafka, loadTopic)
	t.Logf("%d kills, %d events committed, %d records read_committed, %d duplicates; %d records in the log including aborted ones",
		kills, len(want), len(recs), d.dups, len(all))
}

// readUncommitted returns every record of topic, aborted ones included.
func readUncommitted(t *testing.T, k *testenv.KafkaCluster, topic string) []*kgo.Record {
	t.Helper()
	cl := k.Client(t, kgo.ConsumeTopics(topic), kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()),
		kgo.FetchIsolationLevel(kgo.ReadUncommitted()))
	var out []*kgo.Record
	for {
		recs, done := pollFor(cl, 2*time.Second)
		out = append(out, recs...)
		if done {
			return out
		}
	}
}

// replicas starts n tailbox processes with the same config (ha.enabled) and
// returns them once one of them is active.
func (e *env) replicas(n int) []*proc {
	e.t.Helper()
	var ps []*proc
	for range n {
		ps = append(ps, e.start())
	}
	e.activeReplica(ps, 60*time.Second)
	return ps
}

// activeReplica returns the one replica of ps that logged taking the lease
// most recently and has not lost it since, waiting up to timeout.
func (e *env) activeReplica(ps []*proc, timeout time.Duration) *proc {
	e.t.Helper()
	deadline := time.Now().Add(timeout)
	for time.Now().Before(deadline) {
		var active []*proc
		for _, p := range ps {
			select {
			case <-p.done:
				continue
			default:
			}
			out := p.stderr.String()
			gained := strings.LastIndex(out, "ha lease acquired")
			lost := max(strings.LastIndex(out, "ha lease lost"), strings.LastIndex(out, "fenced by the replica that took over"))
			if gained > lost {
				active = append(active, p)
			}
		}
		if len(active) == 1 {
			return active[0]
		}
		time.Sleep(50 * time.Millisecond)
	}
	for i, p := range ps {
		e.t.Logf("replica %d stderr:\n%s", i, logTail(p.stderr.String()))
	}
	e.t.Fatalf("no single active replica within %v", timeout)
	return nil
}

// TestHAFailoverKill9AndStall runs three replicas under load. kill -9 of the
// active one: another takes over within the session timeout plus a few
// seconds. SIGSTOP of the next active one past its session timeout: another
// takes over; SIGCONT: the stalled one commits nothing more (it is fenced)
// and stands by. Consumed with read_committed, every event arrives exactly
// once, in commit order per aggregate.
func TestHAFailoverKill9AndStall(t *testing.T) {
	e := newEnvOn(t, testenv.StartMariaDB(t, ""), testenv.Kafka(t), "envelope")
	e.useKafkaStore(true)
	ps := e.replicas(3)
	checkRoles(t, e.activeReplica(ps, 10*time.Second), ps)
	l := startLoad(t, e.db, e.dbn, loadOptions{Workers: 4, Aggregates: 200, MaxRows: 5, Pause: 20 * time.Millisecond})
	time.Sleep(2 * time.Second)

	// 1. kill -9 of the active replica.
	first := e.activeReplica(ps, 10*time.Second)
	first.kill9(t)
	killed := time.Now()
	var rest []*proc
	for _, p := range ps {
		if p != first {
			rest = append(rest, p)
		}
	}
	second := e.activeReplica(rest, 6*time.Second+30*time.Second)
	t.Logf("takeover after kill -9 in %v (session timeout 6s)", time.Since(killed).Round(100*time.Millisecond))
	time.Sleep(2 * time.Second)

	// 2. SIGSTOP the new active replica past its session timeout.
	if err := second.cmd.Process.Signal(syscall.SIGSTOP); err != nil {
		t.Fatal(err)
	}
	stopped := time.Now()
	var third *proc
	for _, p := range rest {
		if p != second {
			third = p
		}
	}
	e.activeReplica([]*proc{third}, 6*time.Second+30*time.Second)
	t.Logf("takeover after SIGSTOP in %v", time.Since(stopped).Round(100*time.Millisecond))
	time.Sleep(2 * time.Second)
	if err := second.cmd.Process.Signal(syscall.SIGCONT); err != nil {
		t.Fatal(err)
	}
	// The resumed replica notices it lost the lease or is fenced, and
	// stands by.
	deadline := time.Now().Add(30 * time.Second)
	for {
		out := second.stderr.String()
		i := strings.LastIndex(out, "ha lease acquired")
		if j := max(strings.LastIndex(out, "ha lease lost"), strings.LastIndex(out, "fenced by the replica that took over")); j > i {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("the stalled replica did not step down within 30s of SIGCONT:\n%s", logTail(out))
		}
		time.Sleep(100 * time.Millisecond)
	}
	how := "noticed the lost lease"
	if strings.Contains(second.stderr.String(), "fenced by the replica that took over") {
		how = "was fenced when it tried to commit"
	}
	t.Logf("the stalled replica %s and stands by", how)
	time.Sleep(2 * time.Second)

	l.stop()
	want := l.committed(t)
	active := e.activeReplica(rest, 30*time.Second)
	waitDelivered(t, e.kafka, []string{loadTopic}, want, 2*time.Minute, active, readCommitted)
	for _, p := range rest {
		if code := p.stop(t); code != 0 {
			t.Errorf("replica exit code %d after SIGTERM, want 0:\n%s", code, logTail(p.stderr.String()))
		}
	}
	recs := e.kafka.ConsumeAll(t, []string{loadTopic}, 2*time.Second)
	d := l.verify(t, recs, want)
	if d.dups != 0 {
		t.Errorf("read_committed consumer saw %d duplicates across two failovers, want 0", d.dups)
	}
	t.Logf("%d events committed, %d records read_committed, %d duplicates", len(want), len(recs), d.dups)
}

// pollFor polls cl once for up to d and reports whether it came back empty.
func pollFor(cl *kgo.Client, d time.Duration) ([]*kgo.Record, bool) {
	ctx, cancel := context.WithTimeout(context.Background(), d)
	defer cancel()
	fs := cl.PollFetches(ctx)
	recs := fs.Records()
	return recs, len(recs) == 0
}

// checkRoles checks that /readyz and tailbox_ha_active tell the active
// replica from the standbys, and that `tailbox health` probes /healthz.
func checkRoles(t *testing.T, active *proc, ps []*proc) {
	t.Helper()
	for i, p := range ps {
		base := "http://" + httpAddr(t, p)
		want, code, reason := 0.0, http.StatusServiceUnavailable, "standby: another replica holds the ha lease"
		if p == active {
			want, code, reason = 1, http.StatusOK, "streaming"
		}
		waitReady(t, p, base, code, reason, 30*time.Second)
		if got, ok := find(scrape(t, base), "tailbox_ha_active"); !ok || got != want {
			t.Errorf("replica %d: tailbox_ha_active = %v (present %v), want %v", i, got, ok, want)
		}
		out, errOut, exit := runTailbox(t, "health", "-url", base+"/healthz")
		if exit != 0 || !strings.Contains(out, "200 OK") {
			t.Errorf("replica %d: tailbox health: exit %d, stdout %q, stderr %q; want 0 and 200 OK", i, exit, out, errOut)
		}
	}
	_, errOut, exit := runTailbox(t, "health", "-url", "http://127.0.0.1:1/healthz", "-timeout", "2s")
	if exit != 1 || !strings.Contains(errOut, "health:") {
		t.Errorf("tailbox health against a closed port: exit %d, stderr %q; want 1 with the error", exit, errOut)
	}
}

// runTailbox runs the binary with args and returns stdout, stderr and the
// exit code.
func runTailbox(t *testing.T, args ...string) (string, string, int) {
	t.Helper()
	cmd := exec.Command(testenv.Binary(t, "tailbox"), args...)
	var out, errOut strings.Builder
	cmd.Stdout, cmd.Stderr = &out, &errOut
	err := cmd.Run()
	return out.String(), errOut.String(), exitCode(err)
}

// TestKafkaStoreOffsetsShowAndSet runs at_least_once with the checkpoint in
// Kafka: the checkpoint survives a restart, `offsets show` reads it from
// the topic and `offsets set` replaces it there.
func TestKafkaStoreOffsetsShowAndSet(t *testing.T) {
	e := newEnv(t, "envelope")
	e.useKafkaStore(false)
	b, err := os.ReadFile(e.cfg)
	if err != nil {
		t.Fatal(err)
	}
	// The Kafka store without transactions.
	if err := os.WriteFile(e.cfg, []byte(strings.Replace(string(b), "delivery: exactly_once\n", "", 1)), 0o600); err != nil {
		t.Fatal(err)
	}

	e.write(1, 2)
	from := "gtid:" + e.gtidPos()
	e.expectEvents(nil, "--from", from)
	e.write(3)
	e.expectEvents([]int{3}) // resumes from the checkpoint in Kafka

	out, errOut, code := e.runCmd("offsets", "show", "-c", e.cfg, "-o", "json")
	if code != 0 || !strings.Contains(out, `"name": "e2e-`) || !strings.Contains(out, `"gtid": "`+e.gtidPos()+`"`) {
		t.Fatalf("offsets show: exit %d, stdout %s, stderr %s; want the checkpoint at %s", code, out, errOut, e.gtidPos())
	}
	if _, err := os.Stat(e.checkpointPath()); !os.IsNotExist(err) {
		t.Errorf("checkpoint.store kafka wrote the file %s (stat: %v)", e.checkpointPath(), err)
	}
	if out, errOut, code := e.runCmd("offsets", "set", "-c", e.cfg, "--from", from); code != 0 {
		t.Fatalf("offsets set: exit %d, stdout %s, stderr %s", code, out, errOut)
	}
	e.expectEvents([]int{3, 3}) // event 3 again, from the position set
}

// TestExactlyOnceSecondInstanceFencesTheFirst starts a second connector with
// the same name and delivery: exactly_once while the first streams under
// load (a mistake ha.enabled prevents): the second fences the first, which
// exits 1 saying so and commits nothing more; read_committed consumers see
// every event once.
func TestExactlyOnceSecondInstanceFencesTheFirst(t *testing.T) {
	e := newEnvOn(t, testenv.StartMariaDB(t, ""), testenv.Kafka(t), "envelope")
	e.useKafkaStore(false)
	first := e.start()
	l := startLoad(t, e.db, e.dbn, loadOptions{Workers: 4, Aggregates: 200, MaxRows: 5, Pause: 20 * time.Millisecond})
	time.Sleep(2 * time.Second)

	second := e.start()
	select {
	case <-first.done:
	case <-time.After(60 * time.Second):
		t.Fatalf("the fenced connector still runs 60s after the second one started:\n%s", logTail(first.stderr.String()))
	}
	if code := exitCode(first.err); code != 1 || !strings.Contains(first.stderr.String(), "fenced") {
		t.Fatalf("fenced connector: exit %d, want 1 with a message saying it was fenced:\n%s", code, logTail(first.stderr.String()))
	}
	t.Logf("the first connector exited 1: %s", runError(first.stderr.String()))
	time.Sleep(time.Second)
	want, recs, d := l.drain(t, e.kafka, []string{loadTopic}, 2*time.Minute, second, readCommitted)
	if d.dups != 0 {
		t.Errorf("read_committed consumer saw %d duplicates, want 0", d.dups)
	}
	t.Logf("%d events committed, %d records read_committed, %d duplicates", len(want), len(recs), d.dups)
}

// TestExactlyOnceRestartsPastItsOwnOpenTransaction: an exactly_once
// connector killed between appending its checkpoint record and committing
// leaves its transaction open on the checkpoint topic, which a Load waits
// out (up to Kafka's transaction timeout) rather than return an older
// record. A restart fences that producer before it loads, which aborts the
// transaction at once: it streams again within seconds.
func TestExactlyOnceRestartsPastItsOwnOpenTransaction(t *testing.T) {
	e := newEnv(t, "envelope")
	e.useKafkaStore(false)
	p := e.start()
	e.write(1)
	e.kafka.Consume(t, memberTopic, 1, 30*time.Second)
	if code := p.stop(t); code != 0 {
		t.Fatalf("exit code %d after SIGTERM:\n%s", code, logTail(p.stderr.String()))
	}
	b, err := os.ReadFile(e.cfg)
	if err != nil {
		t.Fatal(err)
	}
	var name string
	for _, l := range strings.Split(string(b), "\n") {
		if v, ok := strings.CutPrefix(l, "name: "); ok {
			name = strings.TrimSpace(v)
		}
	}
	if name == "" {
		t.Fatalf("no name in the config:\n%s", b)
	}
	// What the killed connector left: its transactional id, a checkpoint
	// record appended, no commit.
	stale := e.kafka.Client(t, kgo.TransactionalID("tailbox-"+name), kgo.TransactionTimeout(time.Minute))
	ctx := context.Background()
	if err := stale.BeginTransaction(); err != nil {
		t.Fatal(err)
	}
	if err := stale.ProduceSync(ctx, &kgo.Record{Topic: "tailbox.checkpoints", Key: []byte(name), Value: []byte(`{"stale":true}`)}).FirstErr(); err != nil {
		t.Fatalf("append the stale checkpoint record: %v", err)
	}
	e.write(2)
	began := time.Now()
	e.expectEvents([]int{1, 2})
	t.Logf("restarted past the open transaction in %s", time.Since(began).Round(time.Millisecond))
	if err := stale.EndTransaction(ctx, kgo.TryCommit); err == nil {
		t.Fatal("the stale transaction committed after the restart: its producer was not fenced")
	}
}

// TestStopWhileLoadWaitsForAnOpenTransaction: another connector holds a
// transaction open on the shared checkpoint topic, so the starting
// connector's Load waits for it (up to 75 s). SIGTERM during that wait ends
// the process at once with exit 0, and it writes no checkpoint.
func TestStopWhileLoadWaitsForAnOpenTransaction(t *testing.T) {
	e := newEnv(t, "envelope")
	e.useKafkaStore(false)
	p := e.start()
	e.write(1)
	e.kafka.Consume(t, memberTopic, 1, 30*time.Second)
	if code := p.stop(t); code != 0 {
		t.Fatalf("exit code %d after SIGTERM:\n%s", code, logTail(p.stderr.String()))
	}
	name := "e2e-" + e.dbn
	own := func() int {
		n := 0
		for _, r := range readUncommitted(t, e.kafka, "tailbox.checkpoints") {
			if string(r.Key) == name {
				n++
			}
		}
		return n
	}
	before := own()
	if before == 0 {
		t.Fatalf("no checkpoint record of %s in tailbox.checkpoints", name)
	}
	other := e.kafka.Client(t, kgo.TransactionalID("tailbox-other-"+e.dbn), kgo.TransactionTimeout(time.Minute))
	if err := other.BeginTransaction(); err != nil {
		t.Fatal(err)
	}
	if err := other.ProduceSync(context.Background(), &kgo.Record{Topic: "tailbox.checkpoints", Key: []byte("other"), Value: []byte(`{}`)}).FirstErr(); err != nil {
		t.Fatalf("append the other connector's record: %v", err)
	}
	defer func() { _ = other.EndTransaction(context.Background(), kgo.TryAbort) }()

	p = e.startUnchecked()
	// The load waits for the open transaction (75 s); the start up to it
	// takes well under these 3 s.
	time.Sleep(3 * time.Second)
	if strings.Contains(p.stderr.String(), `"message":"starting"`) {
		t.Fatalf("the connector started past an open transaction on the checkpoint topic:\n%s", logTail(p.stderr.String()))
	}
	p.mustRun(t)
	_ = p.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-p.done:
	case <-time.After(15 * time.Second):
		t.Fatalf("tailbox did not stop within 15s of SIGTERM while loading the checkpoint:\n%s", logTail(p.stderr.String()))
	}
	if code := exitCode(p.err); code != 0 {
		t.Fatalf("exit code %d after SIGTERM during the load, want 0:\n%s", code, logTail(p.stderr.String()))
	}
	if after := own(); after != before {
		t.Errorf("the stopped start wrote %d checkpoint records, want none", after-before)
	}
}
