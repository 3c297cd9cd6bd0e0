package e2e

import (
	"bufio"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"

	"github.com/tailbox-cdc/tailbox/internal/testenv"
)

// TestMetricsHealthAndReadiness runs tailbox against a private MariaDB with
// http.listen on a free port: the counters match what was written, lag and
// checkpoint age settle near 0 once caught up, and /readyz follows the
// source going away and coming back.
func TestMetricsHealthAndReadiness(t *testing.T) {
	db := testenv.StartMariaDB(t, "")
	e := &env{t: t, db: db, kafka: testenv.Kafka(t), dir: t.TempDir()}
	e.dbn = db.CreateDatabase(t, "metrics")
	db.Exec(t, fmt.Sprintf(testenv.OutboxDDL, e.dbn))
	e.cfg = filepath.Join(e.dir, "tailbox.yaml")
	e.writeConfig("envelope", "  on_error: dead_letter\n  dead_letter_topic: outbox.dlq\n")
	setConfig(t, e.cfg, "log:\n  level: debug\n", "log:\n  level: debug\n  status_interval: 1s\n")

	p := e.start()
	parent := t
	base := "http://" + httpAddr(t, p)
	table := e.dbn + ".outbox"

	t.Run("healthz is 200", func(t *testing.T) {
		if code, body := httpGet(t, base+"/healthz"); code != http.StatusOK {
			t.Fatalf("/healthz: %d %q", code, body)
		}
	})
	t.Run("readyz is 200 while streaming", func(t *testing.T) {
		waitReady(t, p, base, http.StatusOK, "", 30*time.Second)
	})

	// 15 member and 10 order events in 9 transactions, and one poison event.
	const members, orders = 15, 10
	n := 0
	for tx := 0; n < members+orders; tx++ {
		var stmts []string
		for range 3 {
			if n == members+orders {
				break
			}
			agg := "member"
			if n >= members {
				agg = "order"
			}
			stmts = append(stmts, e.outboxInsert(fmt.Sprintf("00000000-0000-0000-0000-%012d", n), agg, fmt.Sprintf("a-%d", n%4), "Happened", `{"n":1}`))
			n++
		}
		e.tx(stmts...)
	}
	e.tx(e.outboxInsert("00000000-0000-0000-0000-0000000000ff", "bad topic!", "a-1", "Poison", `{}`))
	// A cleanup DELETE reads two row changes and no event.
	e.tx(fmt.Sprintf("DELETE FROM %s.outbox WHERE id IN ('00000000-0000-0000-0000-000000000000', '00000000-0000-0000-0000-000000000001')", e.dbn))
	e.kafka.Consume(t, []string{"outbox.event.member", "outbox.event.order", "outbox.dlq"}, members+orders+1, 60*time.Second)

	t.Run("counters equal what was written, by table and topic", func(t *testing.T) {
		want := []struct {
			metric string
			labels []string
			value  float64
		}{
			{"tailbox_rows_read_total", []string{"table", table, "op", "insert"}, members + orders + 1},
			{"tailbox_rows_read_total", []string{"table", table, "op", "delete"}, 2},
			{"tailbox_events_published_total", []string{"topic", "outbox.event.member"}, members},
			{"tailbox_events_published_total", []string{"topic", "outbox.event.order"}, orders},
			{"tailbox_events_published_total", []string{"topic", "outbox.dlq"}, 1},
			{"tailbox_events_dead_lettered_total", []string{"reason", "invalid_topic"}, 1},
			{"tailbox_events_dead_lettered_total", []string{"reason", "too_large"}, 0},
			{"tailbox_events_failed_total", []string{"reason", "retriable"}, 0},
			{"tailbox_commit_to_ack_seconds", nil, members + orders + 1},
		}
		var fams map[string]*dto.MetricFamily
		poll(t, 30*time.Second, func() string {
			fams = scrape(t, base)
			for _, w := range want {
				if got, ok := find(fams, w.metric, w.labels...); !ok || got != w.value {
					return fmt.Sprintf("%s%v = %g (found %v), want %g", w.metric, w.labels, got, ok, w.value)
				}
			}
			return ""
		})
		if got, _ := find(fams, "tailbox_build_info", "flavor", "mariadb", "name", "e2e-"+e.dbn); got != 1 {
			t.Errorf("tailbox_build_info{flavor=mariadb,name=e2e-%s} = %g, want 1", e.dbn, got)
		}
	})

	t.Run("lag falls to about 0 and the checkpoint covers what was read", func(t *testing.T) {
		e.t = t
		defer func() { e.t = parent }()
		end := e.binlogEnd()
		file, _, _ := strings.Cut(end, ":")
		poll(t, 30*time.Second, func() string {
			fams := scrape(t, base)
			lag, _ := find(fams, "tailbox_source_lag_seconds")
			age, _ := find(fams, "tailbox_checkpoint_age_seconds")
			idx, _ := find(fams, "tailbox_binlog_file_index")
			pos, _ := find(fams, "tailbox_binlog_position_bytes")
			cpIdx, _ := find(fams, "tailbox_checkpoint_binlog_file_index")
			cpPos, _ := find(fams, "tailbox_checkpoint_binlog_position_bytes")
			inFlight, _ := find(fams, "tailbox_producer_in_flight_records")
			switch {
			case lag >= 3:
				return fmt.Sprintf("lag %gs, want under 3s once caught up", lag)
			case age >= 3:
				return fmt.Sprintf("checkpoint age %gs, want under 3s", age)
			case idx != float64(fileIndex(file)) || pos <= 4 || pos > float64(endPos(end)):
				return fmt.Sprintf("binlog position %g:%g, want in %s up to the end %s", idx, pos, file, end)
			case cpIdx != idx || cpPos != pos:
				return fmt.Sprintf("checkpoint %g:%g, want the position read %g:%g", cpIdx, cpPos, idx, pos)
			case inFlight != 0:
				return fmt.Sprintf("%g records in flight, want 0", inFlight)
			}
			return ""
		})
	})

	t.Run("readyz stays 200 while the source is idle, past the stall bound", func(t *testing.T) {
		// Heartbeats (source.heartbeat 1s) keep the stream moving; the
		// stall bound is 4 heartbeats.
		for end := time.Now().Add(6 * time.Second); time.Now().Before(end); time.Sleep(500 * time.Millisecond) {
			if code, body := httpGet(t, base+"/readyz"); code != http.StatusOK {
				t.Fatalf("/readyz while idle: %d %q", code, body)
			}
		}
		if lag, _ := find(scrape(t, base), "tailbox_source_lag_seconds"); lag >= 3 {
			t.Errorf("lag %gs while idle, want under 3s", lag)
		}
	})

	t.Run("readyz flips to 503 when MariaDB stops and back to 200 after it starts", func(t *testing.T) {
		e.t = t
		defer func() { e.t = parent }()
		db.Stop(t)
		waitReady(t, p, base, http.StatusServiceUnavailable, "source connection lost", 60*time.Second)
		db.Start(t)
		waitReady(t, p, base, http.StatusOK, "streaming", 90*time.Second)
		if got, _ := find(scrape(t, base), "tailbox_source_reconnects_total"); got < 1 {
			t.Errorf("tailbox_source_reconnects_total = %g, want at least 1", got)
		}
		// Streaming goes on after the reconnect.
		e.tx(e.outboxInsert("00000000-0000-0000-0000-000000000100", "member", "a-1", "After", `{}`))
		poll(t, 60*time.Second, func() string {
			if got, _ := find(scrape(t, base), "tailbox_events_published_total", "topic", "outbox.event.member"); got != members+1 {
				return fmt.Sprintf("published to outbox.event.member: %g, want %d", got, members+1)
			}
			return ""
		})
	})

	t.Run("a status line is logged while running and a summary on stop", func(t *testing.T) {
		if code := p.stop(t); code != 0 {
			t.Fatalf("exit code %d:\n%s", code, logTail(p.stderr.String()))
		}
		status, summary := logLines(p.stderr.String(), "status"), logLines(p.stderr.String(), "run summary")
		if len(status) == 0 {
			t.Fatal("no status line")
		}
		for _, f := range []string{"events_per_sec", "lag_seconds", "binlog_file", "binlog_pos", "in_flight"} {
			if _, ok := status[len(status)-1][f]; !ok {
				t.Errorf("status line without %s: %v", f, status[len(status)-1])
			}
		}
		if len(summary) != 1 {
			t.Fatalf("%d summary lines, want 1", len(summary))
		}
		s := summary[0]
		if s["events_read"] != float64(members+orders+2) || s["events_published"] != float64(members+orders+2) || s["events_dead_lettered"] != 1.0 {
			t.Errorf("summary %v, want %d read and published, 1 dead-lettered", s, members+orders+2)
		}
		if s["binlog_file"] == nil || s["duration_ms"] == nil {
			t.Errorf("summary %v without the last checkpoint or the duration", s)
		}
	})
}

// TestStartupReconnectsCounted starts tailbox while its source is down:
// every failed connect before the stream runs counts in
// tailbox_source_reconnects_total, as the log's retry lines do, and the
// stream starts once the source is back.
func TestStartupReconnectsCounted(t *testing.T) {
	db := testenv.StartMariaDB(t, "")
	e := &env{t: t, db: db, kafka: testenv.Kafka(t), dir: t.TempDir()}
	e.dbn = db.CreateDatabase(t, "startup")
	db.Exec(t, fmt.Sprintf(testenv.OutboxDDL, e.dbn))
	e.cfg = filepath.Join(e.dir, "tailbox.yaml")
	e.writeConfig("envelope", "")
	db.Stop(t)

	p := e.startUnchecked()
	base := "http://" + httpAddr(t, p)
	poll(t, 30*time.Second, func() string {
		retries := len(logLines(p.stderr.String(), "source unreachable, retrying"))
		got, _ := find(scrape(t, base), "tailbox_source_reconnects_total")
		if retries < 2 || got < 2 {
			return fmt.Sprintf("tailbox_source_reconnects_total = %g after %d logged retries, want at least 2", got, retries)
		}
		return ""
	})
	if code, body := httpGet(t, base+"/readyz"); code != http.StatusServiceUnavailable || !strings.Contains(body, "starting") {
		t.Errorf("/readyz while the source is down: %d %q, want 503 starting", code, body)
	}
	db.Start(t)
	waitReady(t, p, base, http.StatusOK, "streaming", 90*time.Second)
	retries := len(logLines(p.stderr.String(), "source unreachable, retrying"))
	if got, _ := find(scrape(t, base), "tailbox_source_reconnects_total"); got < float64(retries) {
		t.Errorf("tailbox_source_reconnects_total = %g, want at least the %d retries logged", got, retries)
	}
}

// TestHTTPListenFailureExitsOne checks that a port in use stops run with
// exit status 1 and names http.listen.
func TestHTTPListenFailureExitsOne(t *testing.T) {
	e := newEnv(t, "envelope")
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	setConfig(t, e.cfg, "listen: 127.0.0.1:0\n", "listen: "+ln.Addr().String()+"\n")
	_, stderr, code := e.runCmd("run", "-c", e.cfg)
	if code != 1 {
		t.Fatalf("exit code %d, want 1:\n%s", code, stderr)
	}
	for _, want := range []string{"http.listen " + ln.Addr().String(), "address already in use"} {
		if !strings.Contains(stderr, want) {
			t.Errorf("stderr does not contain %q:\n%s", want, stderr)
		}
	}
}

// setConfig replaces old by new in the config file at path.
func setConfig(t *testing.T, path, old, new string) {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(string(b), old) {
		t.Fatalf("%s does not contain %q", path, old)
	}
	if err := os.WriteFile(path, []byte(strings.Replace(string(b), old, new, 1)), 0o600); err != nil {
		t.Fatal(err)
	}
}

// runError returns the error of the "stopped on error" line of a tailbox
// log, JSON-decoded: the one report of the error that ended `run`; "" when
// there is none.
func runError(stderr string) string {
	var errs []string
	for _, m := range logLines(stderr, "stopped on error") {
		if s, ok := m["error"].(string); ok {
			errs = append(errs, s)
		}
	}
	return strings.Join(errs, "\n")
}

// logLines returns the JSON log lines of stderr whose message is msg.
func logLines(stderr, msg string) []map[string]any {
	var out []map[string]any
	sc := bufio.NewScanner(strings.NewReader(stderr))
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	for sc.Scan() {
		var m map[string]any
		if json.Unmarshal(sc.Bytes(), &m) == nil && m["message"] == msg {
			out = append(out, m)
		}
	}
	return out
}

// httpAddr returns the address of p's HTTP endpoint from its log.
func httpAddr(t *testing.T, p *proc) string {
	t.Helper()
	var addr string
	poll(t, 10*time.Second, func() string {
		for _, m := range logLines(p.stderr.String(), "http listening") {
			addr, _ = m["addr"].(string)
		}
		if addr == "" {
			return "no \"http listening\" log line"
		}
		return ""
	})
	return addr
}

func httpGet(t *testing.T, url string) (int, string) {
	t.Helper()
	code, body, err := tryGet(url)
	if err != nil {
		t.Fatal(err)
	}
	return code, body
}

func tryGet(url string) (int, string, error) {
	c := http.Client{Timeout: 10 * time.Second}
	resp, err := c.Get(url)
	if err != nil {
		return 0, "", fmt.Errorf("GET %s: %w", url, err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		return 0, "", fmt.Errorf("GET %s: %w", url, err)
	}
	return resp.StatusCode, string(b), nil
}

// waitReady polls p's /readyz until it answers code with a body containing
// reason; it fails at once when p exits.
func waitReady(t *testing.T, p *proc, base string, code int, reason string, timeout time.Duration) {
	t.Helper()
	poll(t, timeout, func() string {
		select {
		case <-p.done:
			t.Fatalf("tailbox exited (%v):\n%s", p.err, logTail(p.stderr.String()))
		default:
		}
		got, body, err := tryGet(base + "/readyz")
		if err != nil {
			return err.Error()
		}
		if got != code || !strings.Contains(body, reason) {
			return fmt.Sprintf("/readyz: %d %q, want %d containing %q", got, body, code, reason)
		}
		return ""
	})
}

// poll calls check every 200ms until it returns "" or timeout passes, then
// fails with its last answer.
func poll(t *testing.T, timeout time.Duration, check func() string) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for {
		msg := check()
		if msg == "" {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("after %s: %s", timeout, msg)
		}
		time.Sleep(200 * time.Millisecond)
	}
}

// scrape fetches and parses /metrics.
func scrape(t *testing.T, base string) map[string]*dto.MetricFamily {
	t.Helper()
	c := http.Client{Timeout: 10 * time.Second}
	resp, err := c.Get(base + "/metrics")
	if err != nil {
		t.Fatalf("GET /metrics: %v", err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("GET /metrics: %s", resp.Status)
	}
	p := expfmt.NewTextParser(model.UTF8Validation)
	fams, err := p.TextToMetricFamilies(resp.Body)
	if err != nil {
		t.Fatalf("parse /metrics: %v", err)
	}
	return fams
}

// find returns the value of the series of family name that has labels
// (name, value pairs): a counter's or gauge's value, a histogram's count.
func find(fams map[string]*dto.MetricFamily, name string, labels ...string) (float64, bool) {
	f := fams[name]
	if f == nil {
		return 0, false
	}
next:
	for _, m := range f.Metric {
		for i := 0; i+1 < len(labels); i += 2 {
			found := false
			for _, l := range m.Label {
				found = found || l.GetName() == labels[i] && l.GetValue() == labels[i+1]
			}
			if !found {
				continue next
			}
		}
		switch {
		case m.Counter != nil:
			return m.Counter.GetValue(), true
		case m.Gauge != nil:
			return m.Gauge.GetValue(), true
		case m.Histogram != nil:
			return float64(m.Histogram.GetSampleCount()), true
		}
	}
	return 0, false
}

// fileIndex is the numeric suffix of a binlog file name.
func fileIndex(file string) int64 {
	n, _ := strconv.ParseInt(file[strings.LastIndexByte(file, '.')+1:], 10, 64)
	return n
}

// endPos is the position of a "file:pos" from binlogEnd.
func endPos(end string) int64 {
	_, pos, _ := strings.Cut(end, ":")
	n, _ := strconv.ParseInt(pos, 10, 64)
	return n
}
