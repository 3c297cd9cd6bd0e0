package e2e

// Reusable parts of the fault-injection tests: a load generator that commits
// outbox transactions and remembers what it committed, consumers that wait
// for every committed event, and the checks that nothing was lost, order was
// kept and duplicates only came from where the delivery contract allows them.

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/go-mysql-org/go-mysql/client"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/tailbox-cdc/tailbox/internal/testenv"
	"github.com/tailbox-cdc/tailbox/pkg/checkpoint"
)

var soakKills = flag.Int("soak.kills", 0, "kill -9 count of the crash test (default 10, or 200 with TAILBOX_SOAK=1)")

// soak reports whether the long fault runs were asked for (TAILBOX_SOAK=1,
// as `make soak` sets, or -soak.kills).
func soak() bool { return os.Getenv("TAILBOX_SOAK") == "1" || *soakKills > 0 }

// killCount is how many times the crash test kills the connector:
// -soak.kills, else TAILBOX_SOAK_KILLS, else def (short) or soakDef (soak).
func killCount(def, soakDef int) int {
	if *soakKills > 0 {
		return *soakKills
	}
	if n, err := strconv.Atoi(os.Getenv("TAILBOX_SOAK_KILLS")); err == nil && n > 0 {
		return n
	}
	if soak() {
		return soakDef
	}
	return def
}

// newEnvOn is newEnv on a given MariaDB and Kafka: for private servers that
// a test kills and restarts.
func newEnvOn(t *testing.T, db *testenv.MySQLServer, k *testenv.KafkaCluster, format string) *env {
	t.Helper()
	e := &env{t: t, db: db, kafka: k, dir: t.TempDir()}
	e.dbn = db.CreateDatabase(t, "e2e")
	db.Exec(t, fmt.Sprintf(testenv.OutboxDDL, e.dbn))
	e.cfg = filepath.Join(e.dir, "tailbox.yaml")
	e.writeConfig(format, "")
	return e
}

// kill9 kills the connector with SIGKILL and waits until it is gone.
func (p *proc) kill9(t *testing.T) {
	t.Helper()
	if err := p.cmd.Process.Signal(syscall.SIGKILL); err != nil {
		t.Fatalf("kill -9 tailbox: %v", err)
	}
	select {
	case <-p.done:
	case <-time.After(30 * time.Second):
		t.Fatalf("tailbox still running 30s after SIGKILL")
	}
}

// mustRun fails t when the connector has exited.
func (p *proc) mustRun(t *testing.T) {
	t.Helper()
	select {
	case <-p.done:
		t.Fatalf("tailbox exited (%v) although it should recover by itself:\n%s", p.err, logTail(p.stderr.String()))
	default:
	}
}

// peakRSS returns the peak resident set size (VmHWM) of process pid in KiB.
func peakRSS(t *testing.T, pid int) int64 {
	t.Helper()
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		t.Fatalf("read /proc/%d/status: %v", pid, err)
	}
	for _, line := range strings.Split(string(b), "\n") {
		if v, ok := strings.CutPrefix(line, "VmHWM:"); ok {
			n, err := strconv.ParseInt(strings.TrimSuffix(strings.TrimSpace(v), " kB"), 10, 64)
			if err != nil {
				t.Fatalf("parse VmHWM %q: %v", line, err)
			}
			return n
		}
	}
	t.Fatalf("no VmHWM in /proc/%d/status", pid)
	return 0
}

// readCheckpoint reads the connector's checkpoint file (nil when there is
// none yet).
func readCheckpoint(t *testing.T, path string) *checkpoint.Checkpoint {
	t.Helper()
	cp, err := checkpoint.Read(path)
	if err != nil {
		if errors.Is(err, checkpoint.ErrNotFound) {
			return nil
		}
		t.Fatalf("read checkpoint %s: %v", path, err)
	}
	return cp
}

// loadTopic is the topic of the generator's events (aggregatetype "load").
const loadTopic = "outbox.event.load"

// loadOptions shape the load.
type loadOptions struct {
	// Workers commit concurrently; each owns the aggregates a with
	// a%Workers == its number, so that the commit order of one aggregate's
	// events is the order in which its worker committed them.
	Workers int
	// Aggregates is the number of aggregate ids.
	Aggregates int
	// MaxRows bounds the outbox rows of one transaction (1..MaxRows).
	MaxRows int
	// Pause bounds a worker's random pause between transactions.
	Pause time.Duration
	// IDsFrom, when set, is the table (in the load's database) that
	// committed reads the ids from instead of the outbox table: a copy
	// the outbox's own cleanup does not touch.
	IDsFrom string
}

// txnOutcome is what the generator knows about one transaction.
type txnOutcome int

const (
	outcomeCommitted txnOutcome = iota + 1 // COMMIT returned OK
	outcomeUncertain                       // COMMIT failed: it may have committed
	outcomeFailed                          // failed before COMMIT: rolled back
)

// loadEvent is one outbox row the generator tried to commit.
type loadEvent struct {
	agg     string
	idx     int // row index in its transaction (= captured row index)
	outcome txnOutcome
}

// load is a running load generator.
type load struct {
	db   *testenv.MySQLServer
	dbn  string
	opts loadOptions
	gen  uint32

	stopCh chan struct{}
	wg     sync.WaitGroup

	mu       sync.Mutex
	events   map[string]*loadEvent
	byAgg    map[string][]string // ids in the order their worker tried them
	txns     [4]int              // by outcome
	problems []string            // unexpected errors, first few
}

var loadGens struct {
	mu sync.Mutex
	n  uint32
}

// startLoad starts o.Workers goroutines committing transactions of
// 1..o.MaxRows outbox rows (aggregatetype "load") into db's dbn.outbox until
// stop is called. Connection failures (a killed server) are retried; an
// event is known committed only after its COMMIT returned OK.
func startLoad(t *testing.T, db *testenv.MySQLServer, dbn string, o loadOptions) *load {
	t.Helper()
	loadGens.mu.Lock()
	loadGens.n++
	gen := loadGens.n
	loadGens.mu.Unlock()
	l := &load{db: db, dbn: dbn, opts: o, gen: gen, stopCh: make(chan struct{}),
		events: map[string]*loadEvent{}, byAgg: map[string][]string{}}
	for w := range o.Workers {
		l.wg.Add(1)
		go l.worker(w)
	}
	t.Cleanup(l.stop)
	return l
}

// stop ends the load and waits for the workers; it is idempotent.
func (l *load) stop() {
	select {
	case <-l.stopCh:
	default:
		close(l.stopCh)
	}
	l.wg.Wait()
}

func (l *load) problem(format string, args ...any) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if len(l.problems) < 20 {
		l.problems = append(l.problems, fmt.Sprintf(format, args...))
	}
}

func (l *load) worker(w int) {
	defer l.wg.Done()
	rng := rand.New(rand.NewPCG(uint64(l.gen), uint64(w)))
	var owned []string
	for a := w; a < l.opts.Aggregates; a += l.opts.Workers {
		owned = append(owned, fmt.Sprintf("agg-%03d", a))
	}
	var conn *client.Conn
	defer func() {
		if conn != nil {
			conn.Close()
		}
	}()
	for seq := 0; ; seq++ {
		select {
		case <-l.stopCh:
			return
		default:
		}
		if conn == nil {
			c, err := client.ConnectWithTimeout(l.db.Addr, l.db.User, l.db.Password, "", 5*time.Second, func(c *client.Conn) error {
				c.ReadTimeout, c.WriteTimeout = 10*time.Second, 10*time.Second
				return nil
			})
			if err != nil {
				// The server is down (a fault test): wait and retry.
				select {
				case <-l.stopCh:
					return
				case <-time.After(100 * time.Millisecond):
				}
				continue
			}
			conn = c
		}
		n := 1 + rng.IntN(l.opts.MaxRows)
		ids := make([]string, n)
		var b strings.Builder
		fmt.Fprintf(&b, "INSERT INTO %s.outbox (id, aggregatetype, aggregateid, type, payload) VALUES ", l.dbn)
		for i := range ids {
			ids[i] = fmt.Sprintf("%08x-%04x-4000-8000-%012x", l.gen, w, seq*64+i)
			agg := owned[rng.IntN(len(owned))]
			l.mu.Lock()
			l.events[ids[i]] = &loadEvent{agg: agg, idx: i}
			l.byAgg[agg] = append(l.byAgg[agg], ids[i])
			l.mu.Unlock()
			if i > 0 {
				b.WriteByte(',')
			}
			fmt.Fprintf(&b, `('%s','load','%s','Tick','{"w":%d,"seq":%d,"i":%d}')`, ids[i], agg, w, seq, i)
		}
		outcome := outcomeFailed
		_, err := conn.Execute("BEGIN")
		if err == nil {
			_, err = conn.Execute(b.String())
		}
		if err == nil {
			outcome = outcomeUncertain
			_, err = conn.Execute("COMMIT")
			if err == nil {
				outcome = outcomeCommitted
			}
		}
		if err != nil {
			// A broken connection rolls back what was not committed; any
			// other error is unexpected under these loads.
			if !isConnectionError(err) {
				l.problem("worker %d txn %d: %v", w, seq, err)
			}
			conn.Close()
			conn = nil
		}
		l.mu.Lock()
		for _, id := range ids {
			l.events[id].outcome = outcome
		}
		l.txns[outcome]++
		l.mu.Unlock()
		if l.opts.Pause > 0 {
			select {
			case <-l.stopCh:
				return
			case <-time.After(time.Duration(rng.Int64N(int64(l.opts.Pause)))):
			}
		}
	}
}

// isConnectionError reports whether err means the connection or the server
// went away.
func isConnectionError(err error) bool {
	s := err.Error()
	for _, m := range []string{"connection", "EOF", "broken pipe", "reset by peer", "shutdown", "i/o timeout", "bad connection", "Server shutdown"} {
		if strings.Contains(s, m) {
			return true
		}
	}
	return false
}

// committed stops nothing; it returns the ids that are in the outbox table
// (the ground truth, also for transactions whose COMMIT failed) after
// checking them against what the generator knows. Call it after stop.
func (l *load) committed(t *testing.T) map[string]bool {
	t.Helper()
	l.mu.Lock()
	defer l.mu.Unlock()
	for _, p := range l.problems {
		t.Errorf("load generator: %s", p)
	}
	from := "outbox"
	if l.opts.IDsFrom != "" {
		from = l.opts.IDsFrom
	}
	res := l.db.Exec(t, fmt.Sprintf("SELECT id FROM %s.%s WHERE aggregatetype = 'load'", l.dbn, from))
	in := map[string]bool{}
	for i := range res.RowNumber() {
		id, _ := res.GetString(i, 0)
		in[id] = true
	}
	for id, ev := range l.events {
		switch {
		case ev.outcome == outcomeCommitted && !in[id]:
			t.Errorf("MariaDB lost row %s although its COMMIT returned OK", id)
		case ev.outcome == outcomeFailed && in[id]:
			t.Errorf("row %s is in the table although its transaction failed before COMMIT", id)
		}
	}
	for id := range in {
		if l.events[id] == nil {
			t.Errorf("row %s in the table was not written by the generator", id)
		}
	}
	t.Logf("load: %d transactions committed, %d with a failed COMMIT (%d of their rows committed), %d failed before COMMIT; %d events",
		l.txns[outcomeCommitted], l.txns[outcomeUncertain], l.uncertainIn(in), l.txns[outcomeFailed], len(in))
	if l.txns[outcomeCommitted] == 0 {
		t.Fatalf("the load generator committed nothing")
	}
	return in
}

func (l *load) uncertainIn(in map[string]bool) int {
	n := 0
	for id, ev := range l.events {
		if ev.outcome == outcomeUncertain && in[id] {
			n++
		}
	}
	return n
}

// envelope is what the checks read from an envelope-format record.
type envelope struct {
	ID          string `json:"id"`
	AggregateID string `json:"aggregateId"`
	Source      struct {
		GTID string `json:"gtid"`
	} `json:"source"`
}

// occurrence locates one copy of an event in Kafka.
type occurrence struct {
	partition int32
	offset    int64
}

// delivered is what arrived in Kafka, per event id.
type delivered struct {
	first map[string]occurrence // the first copy (lowest offset)
	count map[string]int        // copies
	gtid  map[string]string     // the event's transaction GTID
	dups  int                   // copies beyond the first
}

// verify checks recs (every record of loadTopic, in partition order) against
// the committed ids in: every committed event is there, nothing else is,
// and per aggregate the first copies come in commit order.
func (l *load) verify(t *testing.T, recs []*kgo.Record, in map[string]bool) delivered {
	t.Helper()
	d := delivered{first: map[string]occurrence{}, count: map[string]int{}, gtid: map[string]string{}}
	// Records of one key are in one partition: order by offset there.
	sorted := append([]*kgo.Record(nil), recs...)
	sort.SliceStable(sorted, func(i, j int) bool {
		if sorted[i].Partition != sorted[j].Partition {
			return sorted[i].Partition < sorted[j].Partition
		}
		return sorted[i].Offset < sorted[j].Offset
	})
	firsts := map[string][]string{} // aggregate -> ids by first copy
	unknown := 0
	for _, r := range sorted {
		var ev envelope
		if err := json.Unmarshal(r.Value, &ev); err != nil {
			t.Fatalf("record %s[%d]@%d is not an envelope: %v", r.Topic, r.Partition, r.Offset, err)
		}
		if id, _ := header(r, "id"); id != ev.ID {
			t.Errorf("record %s[%d]@%d: header id %q, envelope id %q", r.Topic, r.Partition, r.Offset, id, ev.ID)
		}
		if string(r.Key) != ev.AggregateID {
			t.Errorf("record %s[%d]@%d: key %q, aggregateId %q", r.Topic, r.Partition, r.Offset, r.Key, ev.AggregateID)
		}
		if !in[ev.ID] {
			if unknown++; unknown <= 10 {
				t.Errorf("event %s in Kafka (%s[%d]@%d) was never committed", ev.ID, r.Topic, r.Partition, r.Offset)
			}
			continue
		}
		d.count[ev.ID]++
		if d.count[ev.ID] > 1 {
			d.dups++
			if d.gtid[ev.ID] != ev.Source.GTID {
				t.Errorf("event %s: copies name transactions %s and %s", ev.ID, d.gtid[ev.ID], ev.Source.GTID)
			}
			continue
		}
		d.first[ev.ID] = occurrence{r.Partition, r.Offset}
		d.gtid[ev.ID] = ev.Source.GTID
		firsts[ev.AggregateID] = append(firsts[ev.AggregateID], ev.ID)
	}
	missing := 0
	for id := range in {
		if d.count[id] == 0 {
			if missing++; missing <= 10 {
				l.mu.Lock()
				ev := l.events[id]
				l.mu.Unlock()
				t.Errorf("committed event %s (aggregate %s, row %d of its transaction) never reached Kafka", id, ev.agg, ev.idx)
			}
		}
	}
	if missing > 0 {
		t.Errorf("%d of %d committed events never reached Kafka", missing, len(in))
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	badOrder := 0
	for agg, tried := range l.byAgg {
		var want []string
		for _, id := range tried {
			if in[id] {
				want = append(want, id)
			}
		}
		got := firsts[agg]
		if missing == 0 && !slicesEqual(got, want) {
			if badOrder++; badOrder <= 5 {
				t.Errorf("aggregate %s: first copies in Kafka in order\n  %v\nwant commit order\n  %v", agg, got, want)
			}
		}
	}
	if badOrder > 0 {
		t.Errorf("%d aggregates out of commit order", badOrder)
	}
	return d
}

func slicesEqual(a, b []string) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}

// rowIndex returns the captured-row index of event id in its transaction.
func (l *load) rowIndex(id string) int {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.events[id].idx
}

// covered reports whether checkpoint cp counts the event at row idx of the
// transaction with MariaDB GTID gtid as settled: the transaction is in the
// checkpoint's GTID set, or it is the next transaction and idx < skip.
func covered(t *testing.T, cp *checkpoint.Checkpoint, gtid string, idx int) bool {
	t.Helper()
	if cp == nil {
		return false
	}
	dom, _, seq := parseMariaGTID(t, gtid)
	for _, g := range strings.Split(cp.Position.GTID, ",") {
		if g = strings.TrimSpace(g); g == "" {
			continue
		}
		d, _, s := parseMariaGTID(t, g)
		if d == dom && seq <= s {
			return true
		}
	}
	return cp.NextTxn == gtid && idx < cp.Skip
}

// parseMariaGTID splits a MariaDB GTID domain-server-sequence.
func parseMariaGTID(t *testing.T, g string) (domain, server, seq uint64) {
	t.Helper()
	parts := strings.Split(g, "-")
	if len(parts) != 3 {
		t.Fatalf("not a MariaDB GTID: %q", g)
	}
	var n [3]uint64
	for i, p := range parts {
		v, err := strconv.ParseUint(p, 10, 64)
		if err != nil {
			t.Fatalf("not a MariaDB GTID: %q", g)
		}
		n[i] = v
	}
	return n[0], n[1], n[2]
}

// drain stops the load, waits until topics hold every event it committed
// (p streaming them), stops p, which must still run and exit 0 on SIGTERM,
// and checks what Kafka holds (read_committed) against what was committed.
// opts are waitDelivered's consumer options.
func (l *load) drain(t *testing.T, k *testenv.KafkaCluster, topics []string, limit time.Duration, p *proc, opts ...kgo.Opt) (want map[string]bool, recs []*kgo.Record, d delivered) {
	t.Helper()
	l.stop()
	want = l.committed(t)
	waitDelivered(t, k, topics, want, limit, p, opts...)
	p.mustRun(t)
	if code := p.stop(t); code != 0 {
		t.Fatalf("tailbox exit code %d after SIGTERM, want 0:\n%s", code, logTail(p.stderr.String()))
	}
	recs = k.ConsumeAll(t, topics, 2*time.Second)
	return want, recs, l.verify(t, recs, want)
}

// endOffsets returns the log end offset of every partition of topic (none
// when the topic does not exist yet).
func endOffsets(t *testing.T, k *testenv.KafkaCluster, topic string) map[int32]int64 {
	t.Helper()
	cl, err := kgo.NewClient(kgo.SeedBrokers(k.Addrs...))
	if err != nil {
		t.Fatalf("kafka client: %v", err)
	}
	defer cl.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	mreq := kmsg.NewPtrMetadataRequest()
	mt := kmsg.NewMetadataRequestTopic()
	mt.Topic = kmsg.StringPtr(topic)
	mreq.Topics = append(mreq.Topics, mt)
	mresp, err := mreq.RequestWith(ctx, cl)
	if err != nil {
		t.Fatalf("metadata of %s: %v", topic, err)
	}
	out := map[int32]int64{}
	if len(mresp.Topics) == 0 || mresp.Topics[0].ErrorCode != 0 {
		return out
	}
	lreq := kmsg.NewPtrListOffsetsRequest()
	lt := kmsg.NewListOffsetsRequestTopic()
	lt.Topic = topic
	for _, p := range mresp.Topics[0].Partitions {
		lp := kmsg.NewListOffsetsRequestTopicPartition()
		lp.Partition = p.Partition
		lp.Timestamp = -1 // latest
		lt.Partitions = append(lt.Partitions, lp)
	}
	lreq.Topics = append(lreq.Topics, lt)
	lresp, err := lreq.RequestWith(ctx, cl)
	if err != nil {
		t.Fatalf("list offsets of %s: %v", topic, err)
	}
	for _, rt := range lresp.Topics {
		for _, p := range rt.Partitions {
			if p.ErrorCode != 0 {
				t.Fatalf("list offsets of %s[%d]: error code %d", topic, p.Partition, p.ErrorCode)
			}
			out[p.Partition] = p.Offset
		}
	}
	return out
}

// waitDelivered consumes topics from the start until every id of want has
// arrived, failing t after timeout with the number still missing.
// opts are appended to the consumer's (kgo.FetchIsolationLevel for
// exactly_once).
func waitDelivered(t *testing.T, k *testenv.KafkaCluster, topics []string, want map[string]bool, timeout time.Duration, p *proc, opts ...kgo.Opt) {
	t.Helper()
	cl, err := kgo.NewClient(append([]kgo.Opt{kgo.SeedBrokers(k.Addrs...), kgo.ConsumeTopics(topics...),
		kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()), kgo.FetchMaxWait(200 * time.Millisecond),
		kgo.MetadataMinAge(50 * time.Millisecond), kgo.MetadataMaxAge(time.Second)}, opts...)...)
	if err != nil {
		t.Fatalf("kafka client: %v", err)
	}
	defer cl.Close()
	seen := map[string]bool{}
	left := len(want)
	deadline := time.Now().Add(timeout)
	for left > 0 {
		ctx, cancel := context.WithTimeout(context.Background(), time.Second)
		fs := cl.PollFetches(ctx)
		cancel()
		for _, r := range fs.Records() {
			id, _ := header(r, "id")
			if want[id] && !seen[id] {
				seen[id] = true
				left--
			}
		}
		if time.Now().After(deadline) {
			var stderr string
			if p != nil {
				stderr = p.stderr.String()
				if len(stderr) > 20000 {
					stderr = "..." + stderr[len(stderr)-20000:]
				}
			}
			t.Fatalf("%d of %d committed events still missing from Kafka after %v; tailbox stderr (tail):\n%s", left, len(want), timeout, stderr)
		}
	}
}

// createTopic creates topic with testenv.KafkaPartitions partitions through
// the CreateTopics API (devkafka persists topics created so at once, while
// it forgets auto-created ones when it is killed).
func createTopic(t *testing.T, k *testenv.KafkaCluster, topic string) {
	t.Helper()
	cl, err := kgo.NewClient(kgo.SeedBrokers(k.Addrs...))
	if err != nil {
		t.Fatalf("kafka client: %v", err)
	}
	defer cl.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	req := kmsg.NewPtrCreateTopicsRequest()
	rt := kmsg.NewCreateTopicsRequestTopic()
	rt.Topic = topic
	rt.NumPartitions = testenv.KafkaPartitions
	rt.ReplicationFactor = 1
	req.Topics = append(req.Topics, rt)
	req.TimeoutMillis = 10_000
	resp, err := req.RequestWith(ctx, cl)
	if err != nil {
		t.Fatalf("create topic %s: %v", topic, err)
	}
	for _, r := range resp.Topics {
		if r.ErrorCode != 0 {
			t.Fatalf("create topic %s: error code %d", topic, r.ErrorCode)
		}
	}
}

// logWarnings logs, with t.Logf, how often the connector logged each
// warning or error message, with the first error of each: what it went
// through during a fault test.
func logWarnings(t *testing.T, p *proc) {
	t.Helper()
	counts := map[string]int{}
	firstErr := map[string]string{}
	var order []string
	for _, line := range strings.Split(p.stderr.String(), "\n") {
		var l struct {
			Level   string `json:"level"`
			Message string `json:"message"`
			Error   string `json:"error"`
		}
		if json.Unmarshal([]byte(line), &l) != nil || l.Level != "warn" && l.Level != "error" {
			continue
		}
		key := l.Level + ": " + l.Message
		if counts[key] == 0 {
			order = append(order, key)
			firstErr[key] = l.Error
		}
		counts[key]++
	}
	for _, k := range order {
		t.Logf("tailbox logged %dx %q (first error: %.250s)", counts[k], k, firstErr[k])
	}
}
