package e2e

import (
	"fmt"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/tailbox-cdc/tailbox/internal/testenv"
)

// TestBacklogProgress starts tailbox on a backlog of several binlog files
// while Kafka holds every produce request, then lets it catch up at a
// slowed pace: tailbox_source_lag_bytes is above 0 while it is behind and
// falls to 0 once caught up, and the status lines carry the bytes behind,
// the read rate and an ETA while the backlog shrinks. `offsets show` then
// prints how far the stored checkpoint is behind the source, and still
// prints the checkpoint when the source is down.
func TestBacklogProgress(t *testing.T) {
	db := testenv.StartMariaDB(t, "max_binlog_size=4M")
	e := newEnvOn(t, db, testenv.Kafka(t), "envelope")
	setConfig(t, e.cfg, "log:\n  level: debug\n", "log:\n  level: debug\n  status_interval: 1s\n")

	// Produce requests wait for release, then each takes pace.
	const pace = time.Second
	release := make(chan struct{})
	var once sync.Once
	open := func() { once.Do(func() { close(release) }) }
	t.Cleanup(open)
	e.kafka.Cluster.ControlKey(int16(kmsg.Produce), func(kmsg.Request) (kmsg.Response, error, bool) {
		e.kafka.Cluster.KeepControl()
		e.kafka.Cluster.SleepControl(func() {
			<-release
			time.Sleep(pace)
		})
		return nil, nil, false
	})

	// 16000 events of about 1 KB: over 16 MB of binlog in 4 MB files.
	const rows, perStmt = 16000, 400
	from := e.binlogEnd()
	pad := strings.Repeat("x", 1000)
	for n := 0; n < rows; n += perStmt {
		var vals []string
		for i := n; i < n+perStmt; i++ {
			vals = append(vals, fmt.Sprintf("('00000000-0000-0000-0000-%012d','member','m-%d','Happened','{\"pad\":\"%s\"}')", i, i%7, pad))
		}
		e.tx(fmt.Sprintf("INSERT INTO %s.outbox (id, aggregatetype, aggregateid, type, payload) VALUES %s", e.dbn, strings.Join(vals, ",")))
	}
	if end := e.binlogEnd(); fileIndex(end[:strings.IndexByte(end, ':')]) < fileIndex(from[:strings.IndexByte(from, ':')])+3 {
		t.Fatalf("the backlog spans %s to %s, want at least 4 files", from, end)
	}

	p := e.startUnchecked("--from", from)
	base := "http://" + httpAddr(t, p)

	t.Run("bytes behind while Kafka holds the events", func(t *testing.T) {
		poll(t, 30*time.Second, func() string {
			if got, ok := find(scrape(t, base), "tailbox_source_lag_bytes"); !ok || got < 8<<20 {
				return fmt.Sprintf("tailbox_source_lag_bytes = %g (present %v), want over 8 MiB", got, ok)
			}
			return ""
		})
		poll(t, 10*time.Second, func() string {
			for _, l := range logLines(p.stderr.String(), "status") {
				if b, _ := l["behind_bytes"].(float64); b > 8<<20 && l["behind_files"].(float64) >= 2 {
					return ""
				}
			}
			return "no status line with over 8 MiB and 2 files behind"
		})
	})

	open()
	t.Run("a status line with an eta while catching up", func(t *testing.T) {
		poll(t, 60*time.Second, func() string {
			for _, l := range logLines(p.stderr.String(), "status") {
				eta, _ := l["eta"].(string)
				rate, _ := l["read_bytes_per_sec"].(float64)
				if d, err := time.ParseDuration(eta); err == nil && d > 0 && rate > 0 {
					t.Logf("status: %v behind, %v bytes/s, eta %s", l["behind_bytes"], rate, eta)
					return ""
				}
			}
			return "no status line with an eta and a read rate"
		})
	})

	t.Run("bytes behind falls to 0 once caught up", func(t *testing.T) {
		e.kafka.Consume(t, []string{"outbox.event.member"}, rows, 120*time.Second)
		poll(t, 30*time.Second, func() string {
			if got, ok := find(scrape(t, base), "tailbox_source_lag_bytes"); !ok || got != 0 {
				return fmt.Sprintf("tailbox_source_lag_bytes = %g (present %v), want 0", got, ok)
			}
			return ""
		})
	})
	if code := p.stop(t); code != 0 {
		t.Fatalf("exit code %d", code)
	}

	behind := regexp.MustCompile(`behind the source: (\d+) bytes \((\d+) newer binlog files; newest position (\S+)\)`)
	t.Run("offsets show prints how far the checkpoint is behind", func(t *testing.T) {
		var vals []string
		for i := range 10 {
			vals = append(vals, fmt.Sprintf("('10000000-0000-0000-0000-%012d','member','m-1','Later','{\"pad\":\"%s\"}')", i, pad))
		}
		e.tx(fmt.Sprintf("INSERT INTO %s.outbox (id, aggregatetype, aggregateid, type, payload) VALUES %s", e.dbn, strings.Join(vals, ",")))
		out, errOut, code := e.runCmd("offsets", "show", "-c", e.cfg, "-o", "json")
		if code != 0 || !strings.Contains(out, `"position"`) {
			t.Fatalf("offsets show: exit %d\n%s\n%s", code, out, errOut)
		}
		m := behind.FindStringSubmatch(errOut)
		if m == nil {
			t.Fatalf("offsets show: no line saying how far behind:\n%s", errOut)
		}
		end := e.binlogEnd()
		if n, _ := strconv.Atoi(m[1]); n < 10*1000 || !strings.HasPrefix(m[3], end[:strings.IndexByte(end, ':')+1]) {
			t.Errorf("behind %s bytes, newest %s; want at least the 10 KB written since, in the newest file (the end is %s)", m[1], m[3], end)
		}
	})
	t.Run("offsets show prints the checkpoint when the source is down", func(t *testing.T) {
		db.Stop(t)
		out, errOut, code := e.runCmd("offsets", "show", "-c", e.cfg, "-o", "json")
		if code != 0 || !strings.Contains(out, `"position"`) {
			t.Fatalf("offsets show: exit %d\n%s\n%s", code, out, errOut)
		}
		if !strings.Contains(errOut, "behind the source: unknown (list the source's binary logs: ") {
			t.Errorf("offsets show with the source down, stderr:\n%s", errOut)
		}
		db.Start(t) // for the cleanup, which drops the database
	})
}
