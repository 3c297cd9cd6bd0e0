package e2e

import (
	"encoding/json"
	"fmt"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/tailbox-cdc/tailbox/internal/testenv"
)

// scenario writes the transactions of the core acceptance test and returns
// nothing: wantEvents lists what must arrive.
func (e *env) scenario() {
	t := e.t
	// One transaction: a business row and three outbox rows for two aggregates.
	e.tx(
		fmt.Sprintf("INSERT INTO %s.members VALUES ('m-1','Ann','WITHDRAWN')", e.dbn),
		e.outboxInsert("00000000-0000-0000-0000-000000000001", "member", "m-1", "MemberWithdrawn", `{"memberId":"m-1","reason":"moved away"}`),
		e.outboxInsert("00000000-0000-0000-0000-000000000002", "board", "b-7", "BoardPostsHidden", `{"boardId":"b-7","author":"m-1"}`),
		e.outboxInsert("00000000-0000-0000-0000-000000000003", "member", "m-1", "MemberDataErased", `{"memberId":"m-1"}`),
	)
	// A rolled-back transaction.
	c := e.db.Conn(t)
	for _, s := range []string{"BEGIN", e.outboxInsert("00000000-0000-0000-0000-0000000000r1", "member", "m-2", "Never", `{}`),
		fmt.Sprintf("INSERT INTO %s.members VALUES ('m-2','Bob','ACTIVE')", e.dbn), "ROLLBACK"} {
		if _, err := c.Execute(s); err != nil {
			t.Fatal(err)
		}
	}
	// Insert then delete in one transaction (the usual outbox clean-up).
	e.tx(
		e.outboxInsert("00000000-0000-0000-0000-000000000004", "member", "m-3", "MemberJoined", `{"memberId":"m-3"}`),
		fmt.Sprintf("DELETE FROM %s.outbox WHERE id='00000000-0000-0000-0000-000000000004'", e.dbn),
		fmt.Sprintf("INSERT INTO %s.members VALUES ('m-3','Cy','ACTIVE')", e.dbn),
	)
	// An update of an outbox row, and a business-only transaction.
	e.tx(fmt.Sprintf("UPDATE %s.outbox SET type='Changed' WHERE id='00000000-0000-0000-0000-000000000001'", e.dbn))
	e.tx(fmt.Sprintf("UPDATE %s.members SET status='ACTIVE' WHERE id='m-1'", e.dbn))
}

var wantEvents = []struct{ id, topic, key, typ, payload string }{
	{"00000000-0000-0000-0000-000000000001", "outbox.event.member", "m-1", "MemberWithdrawn", `{"memberId":"m-1","reason":"moved away"}`},
	{"00000000-0000-0000-0000-000000000002", "outbox.event.board", "b-7", "BoardPostsHidden", `{"boardId":"b-7","author":"m-1"}`},
	{"00000000-0000-0000-0000-000000000003", "outbox.event.member", "m-1", "MemberDataErased", `{"memberId":"m-1"}`},
	// Inserted and deleted in one transaction: the insert is the event,
	// the delete (table clean-up) is ignored.
	{"00000000-0000-0000-0000-000000000004", "outbox.event.member", "m-3", "MemberJoined", `{"memberId":"m-3"}`},
}

func compactJSON(t *testing.T, s string) string {
	t.Helper()
	var v any
	if err := json.Unmarshal([]byte(s), &v); err != nil {
		t.Fatalf("not JSON: %q: %v", s, err)
	}
	b, _ := json.Marshal(v)
	return string(b)
}

func TestEndToEndFormats(t *testing.T) {
	for _, format := range []string{"envelope", "debezium", "cloudevents"} {
		t.Run(format, func(t *testing.T) {
			e := newEnv(t, format)
			p := e.start()
			e.scenario()
			topics := []string{"outbox.event.member", "outbox.event.board"}
			e.kafka.Consume(t, topics, len(wantEvents), 30*time.Second)
			// Then read until quiet, so that anything extra would show.
			recs := e.kafka.ConsumeAll(t, topics, 1500*time.Millisecond)
			if code := p.stop(t); code != 0 {
				t.Fatalf("exit code %d after SIGTERM, want 0:\n%s", code, logTail(p.stderr.String()))
			}
			if got := e.topics(); strings.Join(got, ",") != "outbox.event.board,outbox.event.member" {
				t.Fatalf("broker topics = %v: only the two outbox topics may exist (no rollback, members or delete topics)", got)
			}
			byID := map[string]*kgo.Record{}
			for _, r := range recs {
				id, _ := header(r, "id")
				if byID[id] != nil {
					t.Fatalf("event %s arrived twice", id)
				}
				byID[id] = r
			}
			if len(recs) != len(wantEvents) {
				t.Fatalf("got %d records, want %d: %v", len(recs), len(wantEvents), ids(recs))
			}
			// Per-aggregate order: m-1's two events in commit order.
			var m1 []string
			for _, r := range recs {
				if string(r.Key) == "m-1" {
					m1 = append(m1, ids([]*kgo.Record{r})[0])
				}
			}
			if strings.Join(m1, ",") != wantEvents[0].id+","+wantEvents[2].id {
				t.Errorf("m-1 events out of order: %v", m1)
			}
			for _, w := range wantEvents {
				r := byID[w.id]
				if r == nil {
					t.Fatalf("event %s missing; got %v", w.id, ids(recs))
				}
				if r.Topic != w.topic || string(r.Key) != w.key {
					t.Errorf("%s: topic %s key %q, want %s %q", w.id, r.Topic, r.Key, w.topic, w.key)
				}
				typ, hasType := header(r, "type")
				switch format {
				case "debezium":
					if hasType {
						t.Errorf("%s: debezium format carries only the id header, got type=%q", w.id, typ)
					}
					if got := compactJSON(t, string(r.Value)); got != compactJSON(t, w.payload) {
						t.Errorf("%s: value %s, want the payload as stored %s", w.id, got, w.payload)
					}
				case "envelope":
					if typ != w.typ {
						t.Errorf("%s: type header %q, want %q", w.id, typ, w.typ)
					}
					var env struct {
						ID, Type, AggregateType, AggregateID, OccurredAt string
						Payload                                          json.RawMessage
						Source                                           struct {
							Connector, DB, Table, File, GTID string
							Pos                              uint32
							ServerID                         uint32 `json:"serverId"`
						}
					}
					if err := json.Unmarshal(r.Value, &env); err != nil {
						t.Fatalf("%s: envelope is not JSON: %v: %s", w.id, err, r.Value)
					}
					if env.ID != w.id || env.Type != w.typ || env.AggregateID != w.key || env.AggregateType != strings.TrimPrefix(w.topic, "outbox.event.") {
						t.Errorf("%s: envelope %s", w.id, r.Value)
					}
					if compactJSON(t, string(env.Payload)) != compactJSON(t, w.payload) {
						t.Errorf("%s: payload %s, want it embedded as JSON %s", w.id, env.Payload, w.payload)
					}
					if env.Source.DB != e.dbn || env.Source.Table != "outbox" || env.Source.File == "" || env.Source.Pos == 0 || env.Source.GTID == "" || env.Source.Connector != "e2e-"+e.dbn {
						t.Errorf("%s: source %+v", w.id, env.Source)
					}
					if ts, err := time.Parse(time.RFC3339Nano, env.OccurredAt); err != nil || time.Since(ts) > 5*time.Minute {
						t.Errorf("%s: occurredAt %q: %v", w.id, env.OccurredAt, err)
					}
				case "cloudevents":
					if typ != w.typ {
						t.Errorf("%s: type header %q, want %q", w.id, typ, w.typ)
					}
					var ce map[string]json.RawMessage
					if err := json.Unmarshal(r.Value, &ce); err != nil {
						t.Fatalf("%s: not JSON: %v", w.id, err)
					}
					for k, want := range map[string]string{"specversion": `"1.0"`, "id": `"` + w.id + `"`, "type": `"` + w.typ + `"`, "subject": `"` + w.key + `"`, "datacontenttype": `"application/json"`} {
						if string(ce[k]) != want {
							t.Errorf("%s: %s = %s, want %s", w.id, k, ce[k], want)
						}
					}
					if compactJSON(t, string(ce["data"])) != compactJSON(t, w.payload) {
						t.Errorf("%s: data %s", w.id, ce["data"])
					}
				}
			}
			if !strings.Contains(p.stderr.String(), "update") {
				t.Errorf("the dropped update of an outbox row should be logged as a warning:\n%s", logTail(p.stderr.String()))
			}
		})
	}
}

func TestRestartSendsNothingTwiceAndMissesNothing(t *testing.T) {
	e := newEnv(t, "envelope")
	topic := []string{"outbox.event.member"}
	var want []string
	write := func(from, to int) {
		for i := from; i < to; i++ {
			id := fmt.Sprintf("00000000-0000-0000-0000-%012d", i)
			want = append(want, id)
			e.tx(e.outboxInsert(id, "member", fmt.Sprintf("m-%d", i%3), "Tick", fmt.Sprintf(`{"n":%d}`, i)),
				fmt.Sprintf("INSERT INTO %s.members VALUES ('x-%d','x','ACTIVE')", e.dbn, i))
		}
	}
	p := e.start()
	write(0, 10)
	e.kafka.Consume(t, topic, 10, 30*time.Second)
	if code := p.stop(t); code != 0 {
		t.Fatalf("first run exit code %d:\n%s", code, logTail(p.stderr.String()))
	}
	// Written while the connector is down.
	write(10, 20)
	p = e.start()
	write(20, 25)
	e.kafka.Consume(t, topic, 25, 30*time.Second)
	recs := e.kafka.ConsumeAll(t, topic, time.Second)
	if code := p.stop(t); code != 0 {
		t.Fatalf("second run exit code %d:\n%s", code, logTail(p.stderr.String()))
	}
	got := ids(recs)
	seen := map[string]bool{}
	for _, id := range got {
		if seen[id] {
			t.Fatalf("event %s sent twice across a clean restart: %v", id, got)
		}
		seen[id] = true
	}
	for _, id := range want {
		if !seen[id] {
			t.Fatalf("event %s missing after restart: got %v", id, got)
		}
	}
	// Per-key order equals commit order.
	last := map[string]string{}
	for _, r := range recs {
		id, _ := header(r, "id")
		if prev := last[string(r.Key)]; prev != "" && prev > id {
			t.Errorf("key %s: %s after %s", r.Key, id, prev)
		}
		last[string(r.Key)] = id
	}
}

// TestCheckpointFollowsOnceCaughtUp: with a long checkpoint interval, the
// checkpoint still reaches a transaction's end as soon as its events are
// acknowledged, and such early checkpoints are at most one per tenth of the
// interval; the one on SIGTERM covers the rest.
func TestCheckpointFollowsOnceCaughtUp(t *testing.T) {
	// A private server: another test's transaction read between this
	// test's own would be written in their place.
	e := newEnvOn(t, testenv.StartMariaDB(t, ""), testenv.Kafka(t), "envelope")
	setConfig(t, e.cfg, "  interval: 100ms\n", "  interval: 10m\n") // caught-up checkpoints at most every minute
	topic := []string{"outbox.event.member"}
	at := func() string {
		cp := readCheckpoint(t, e.checkpointPath())
		if cp == nil {
			return "none"
		}
		return fmt.Sprintf("%s:%d", cp.Position.File, cp.Position.Pos)
	}
	p := e.start()

	e.tx(e.outboxInsert("00000000-0000-0000-0000-000000000001", "member", "m-1", "Tick", `{"n":1}`))
	first := e.binlogEnd()
	e.kafka.Consume(t, topic, 1, 30*time.Second)
	deadline := time.Now().Add(30 * time.Second)
	for at() != first {
		if time.Now().After(deadline) {
			t.Fatalf("checkpoint at %s 30s after the event was acknowledged, want %s (the interval is 10m: it must follow once caught up)\n%s",
				at(), first, logTail(p.stderr.String()))
		}
		time.Sleep(20 * time.Millisecond)
	}

	e.tx(e.outboxInsert("00000000-0000-0000-0000-000000000002", "member", "m-1", "Tick", `{"n":2}`))
	second := e.binlogEnd()
	e.kafka.Consume(t, topic, 2, 30*time.Second)
	time.Sleep(1500 * time.Millisecond)
	if got := at(); got != first {
		t.Errorf("checkpoint at %s within 2s of the last caught-up one, want it to stay at %s until a tenth of the interval has passed", got, first)
	}

	if code := p.stop(t); code != 0 {
		t.Fatalf("exit code %d:\n%s", code, logTail(p.stderr.String()))
	}
	if got := at(); got != second {
		t.Errorf("checkpoint after SIGTERM at %s, want %s", got, second)
	}
}

func TestReplayFromStoredPosition(t *testing.T) {
	e := newEnv(t, "envelope")
	topic := []string{"outbox.event.member"}
	p := e.start()
	e.tx(e.outboxInsert("00000000-0000-0000-0000-0000000000a1", "member", "m-1", "First", `{}`))
	mark := e.binlogEnd()
	e.tx(e.outboxInsert("00000000-0000-0000-0000-0000000000a2", "member", "m-1", "Second", `{}`))
	e.tx(e.outboxInsert("00000000-0000-0000-0000-0000000000a3", "member", "m-2", "Third", `{}`))
	e.kafka.Consume(t, topic, 3, 30*time.Second)
	if code := p.stop(t); code != 0 {
		t.Fatalf("exit code %d", code)
	}

	// offsets show prints the stored position.
	out, errOut, code := e.runCmd("offsets", "show", "-c", e.cfg, "-o", "json")
	if code != 0 || !strings.Contains(out, `"position"`) {
		t.Fatalf("offsets show: code %d\n%s\n%s", code, out, errOut)
	}

	// offsets set --from FILE:POS, then run: the two later events again.
	out, errOut, code = e.runCmd("offsets", "set", "-c", e.cfg, "--from", mark)
	if code != 0 {
		t.Fatalf("offsets set: code %d\n%s\n%s", code, out, errOut)
	}
	if file, _, _ := strings.Cut(mark, ":"); !strings.Contains(out, file) {
		t.Fatalf("offsets set printed %s, want the new position %s", out, mark)
	}
	p = e.start()
	recs := e.kafka.Consume(t, topic, 5, 30*time.Second)
	p.stop(t)
	got := strings.Join(ids(recs), ",")
	want := "00000000-0000-0000-0000-0000000000a1,00000000-0000-0000-0000-0000000000a2,00000000-0000-0000-0000-0000000000a3,00000000-0000-0000-0000-0000000000a2,00000000-0000-0000-0000-0000000000a3"
	if len(recs) != 5 || !sameMultiset(got, want) {
		t.Fatalf("after offsets set: %s, want %s", got, want)
	}

	// run --from FILE:POS wins over the stored checkpoint.
	p = e.start("--from", mark)
	recs = e.kafka.Consume(t, topic, 7, 30*time.Second)
	p.stop(t)
	if len(recs) != 7 {
		t.Fatalf("after run --from: %d records", len(recs))
	}

	// --from gtid:SET means "already processed": the same two again.
	file, posS, _ := strings.Cut(mark, ":")
	r := e.db.Exec(t, "SELECT BINLOG_GTID_POS(?, ?)", file, posS)
	gtid, _ := r.GetString(0, 0)
	if gtid == "" {
		t.Fatalf("no GTID state at %s", mark)
	}
	p = e.start("--from", "gtid:"+gtid)
	recs = e.kafka.Consume(t, topic, 9, 30*time.Second)
	p.stop(t)
	a2, a3 := ",00000000-0000-0000-0000-0000000000a2", ",00000000-0000-0000-0000-0000000000a3"
	want = "00000000-0000-0000-0000-0000000000a1" + strings.Repeat(a2+a3, 4)
	if got := strings.Join(ids(recs), ","); len(recs) != 9 || !sameMultiset(got, want) {
		t.Fatalf("after run --from gtid:%s: %s, want a1 once and a2, a3 four times each", gtid, got)
	}
}

func sameMultiset(a, b string) bool {
	count := map[string]int{}
	for _, s := range strings.Split(a, ",") {
		count[s]++
	}
	for _, s := range strings.Split(b, ",") {
		count[s]--
	}
	for _, n := range count {
		if n != 0 {
			return false
		}
	}
	return true
}

func TestConfigErrorsExitTwoNamingEveryPath(t *testing.T) {
	dir := t.TempDir()
	base := `name: bad
source:
  addr: 127.0.0.1:3306
  user: cdc
  password: x
outbox:
  tables: [shop.outbox]
kafka:
  brokers: [127.0.0.1:9092]
`
	cases := []struct {
		name  string
		yaml  string
		wants []string
	}{
		{"unknown key", base + "checkpoint: {fiel: x}\n", []string{"checkpoint.fiel"}},
		{"wrong type", strings.Replace(base, "user: cdc", "user: cdc\n  server_id: abc", 1), []string{"source.server_id"}},
		{"bad duration", base + "checkpoint: {interval: 10 seconds}\n", []string{"checkpoint.interval"}},
		{"missing required field", strings.Replace(base, "  addr: 127.0.0.1:3306\n", "", 1), []string{"source.addr"}},
		{"bad topic template", strings.Replace(base, "tables: [shop.outbox]", "tables: [shop.outbox]\n  route:\n    topic: 'events/${routedByValue}'", 1), []string{"outbox.route.topic"}},
		{"unset env var", strings.Replace(base, "password: x", "password: ${TAILBOX_E2E_UNSET_VAR}", 1), []string{"source.password", "TAILBOX_E2E_UNSET_VAR"}},
		{"several problems", strings.Replace(strings.Replace(base, "user: cdc", "user: ''", 1), "[127.0.0.1:9092]", "[]", 1) + "log: {level: loud}\n", []string{"source.user", "kafka.brokers", "log.level"}},
	}
	bin := &env{t: t}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			bin.t = t
			path := dir + "/" + strings.ReplaceAll(tc.name, " ", "_") + ".yaml"
			if err := os.WriteFile(path, []byte(tc.yaml), 0o600); err != nil {
				t.Fatal(err)
			}
			// offsets set: offsets show needs no password with the file
			// store, so it does not report an unset one.
			for _, args := range [][]string{{"run", "-c", path}, {"offsets", "set", "-c", path, "--from", "latest"}} {
				_, stderr, code := bin.runCmd(args...)
				if code != 2 {
					t.Fatalf("%v: exit code %d, want 2\n%s", args, code, stderr)
				}
				for _, w := range tc.wants {
					if !strings.Contains(stderr, w) {
						t.Errorf("%v: stderr does not name %q:\n%s", args, w, stderr)
					}
				}
			}
		})
	}
	// Usage errors are exit 2 too.
	_, stderr, code := bin.runCmd("run")
	if code != 2 || !strings.Contains(stderr, "-c FILE is required") {
		t.Errorf("run without -c: code %d\n%s", code, stderr)
	}
	_, stderr, code = bin.runCmd("run", "-c", dir+"/x.yaml", "--from", "nonsense")
	if code != 2 || !strings.Contains(stderr, "--from") {
		t.Errorf("bad --from: code %d\n%s", code, stderr)
	}
}
