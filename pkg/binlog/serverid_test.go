package binlog_test

import (
	"context"
	"encoding/json"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/rs/zerolog"

	"github.com/tailbox-cdc/tailbox/internal/testenv"
	"github.com/tailbox-cdc/tailbox/pkg/binlog"
)

// Two readers with one server_id: the server drops the older stream when
// the newer registers. The dropped reader logs the takeover once as
// ErrServerIDInUse's message, naming the id and the replica that holds it
// (the report host of the other reader), and its takeovers in a row count
// up across reconnects — the stream's events do not reset them as they
// reset the reconnect back-off. Both keep streaming: the commits made
// while they take turns all arrive at each.
func TestServerIDClashIsClassifiedAndBacksOff(t *testing.T) {
	db := testenv.MySQL(t)
	dbn := db.CreateDatabase(t, "clash")
	db.Exec(t, fmt.Sprintf(testenv.OutboxDDL, dbn))
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	const id = 4184
	logs := [2]*testenv.SyncBuffer{{}, {}}
	var readers [2]*binlog.Reader
	for i := range readers {
		readers[i] = openAtLatest(ctx, t, binlog.Config{
			Addr: db.Addr, User: db.User, Password: db.Password, ServerID: id, ReportHost: fmt.Sprintf("reader-%d", i),
			Tables: []string{dbn + ".outbox"}, Heartbeat: time.Second, ReconnectBackoff: 100 * time.Millisecond,
		}, zerolog.New(logs[i]))
	}

	// Each reader reads until it has seen every event or ctx ends.
	const n = 6
	var wg sync.WaitGroup
	got := [2][]string{}
	errs := [2]error{}
	for i, r := range readers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for len(got[i]) < n {
				it, err := r.Next(ctx)
				if err != nil {
					errs[i] = err
					return
				}
				if it.Kind == binlog.ItemChange {
					got[i] = append(got[i], fmt.Sprint(it.Change.Row[2]))
				}
			}
		}()
	}
	// Commits spread over the time the readers take turns.
	for k := range n {
		db.Exec(t, fmt.Sprintf("INSERT INTO %s.outbox (id, aggregatetype, aggregateid, type, payload) VALUES (UUID(), 'a', '%d', 't', '{}')", dbn, k))
		time.Sleep(300 * time.Millisecond)
	}
	wg.Wait()
	for i := range readers {
		if errs[i] != nil {
			t.Fatalf("reader %d: %v after %v\n%s", i, errs[i], got[i], logs[i].String())
		}
		if len(got[i]) != n {
			t.Fatalf("reader %d read %v, want %d events", i, got[i], n)
		}
	}

	// The older reader (0) was taken over first; count each one's takeovers.
	maxTakeovers := 0
	for i, log := range logs {
		for _, line := range strings.Split(strings.TrimSpace(log.String()), "\n") {
			var rec struct {
				Message   string `json:"message"`
				Error     string `json:"error"`
				ServerID  uint32 `json:"server_id"`
				Takeovers int    `json:"takeovers"`
			}
			if line == "" || json.Unmarshal([]byte(line), &rec) != nil {
				continue
			}
			if strings.Contains(rec.Message, "binlog connection lost") {
				t.Errorf("reader %d logged a takeover as a lost connection: %s", i, line)
			}
			if rec.Message != "another replica took over source.server_id, reconnecting from last transaction end" {
				continue
			}
			other := fmt.Sprintf("host reader-%d", 1-i)
			for _, want := range []string{fmt.Sprintf("source.server_id %d is in use: another replica (%s", id, other), "registered at " + db.Addr, "server error 4052", "give every tailbox connector and replica of the server its own source.server_id"} {
				if !strings.Contains(rec.Error, want) {
					t.Errorf("reader %d: error %q does not contain %q", i, rec.Error, want)
				}
			}
			if rec.ServerID != id {
				t.Errorf("reader %d: server_id field %d, want %d", i, rec.ServerID, id)
			}
			maxTakeovers = max(maxTakeovers, rec.Takeovers)
		}
	}
	if maxTakeovers < 2 {
		t.Fatalf("no reader counted two takeovers in a row (max %d): the back-off restarts at every reconnect\nreader 0:\n%s\nreader 1:\n%s", maxTakeovers, logs[0], logs[1])
	}
}
