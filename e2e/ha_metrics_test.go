package e2e

import (
	"fmt"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/tailbox-cdc/tailbox/internal/testenv"
)

// TestHAStandbyAndIdleSourceMetricsStayQuiet runs two replicas with
// delivery: exactly_once against a private MariaDB that nothing else
// writes to, and scrapes /metrics for several seconds: on the standby, on
// the active replica once its source is idle (exactly_once writes
// checkpoints only inside transactions of events, so none is written), and
// on a replica that was active and stands by again after a stall. Neither
// the checkpoint age nor the lag grows on any of them, so the shipped
// TailboxCheckpointStuck and TailboxLag* alerts stay quiet.
func TestHAStandbyAndIdleSourceMetricsStayQuiet(t *testing.T) {
	e := newEnvOn(t, testenv.StartMariaDB(t, ""), testenv.Kafka(t), "envelope")
	e.useKafkaStore(true)
	ps := e.replicas(2)
	urls := []string{"http://" + httpAddr(t, ps[0]), "http://" + httpAddr(t, ps[1])}
	// settle returns the index of the active replica once the roles have
	// held, the active replica ready, for 3s: a join or a step-down
	// rebalances the lease group, which may move the lease.
	settle := func(t *testing.T) int {
		t.Helper()
		var activeIdx int
		stableSince, last := time.Time{}, -1
		poll(t, 60*time.Second, func() string {
			cur := -1
			for i, u := range urls {
				fams := scrape(t, u)
				a, _ := find(fams, "tailbox_ha_active")
				r, _ := find(fams, "tailbox_ready")
				if a == 1 && r == 1 {
					if cur != -1 {
						return "two active replicas"
					}
					cur = i
				}
			}
			if cur == -1 || cur != last {
				last, stableSince = cur, time.Now()
				return "no stable active replica yet"
			}
			if time.Since(stableSince) < 3*time.Second {
				return "roles not stable for 3s yet"
			}
			activeIdx = cur
			return ""
		})
		return activeIdx
	}
	activeIdx := settle(t)
	active, standby := ps[activeIdx], ps[1-activeIdx]
	activeURL, standbyURL := urls[activeIdx], urls[1-activeIdx]

	e.tx(e.outboxInsert("00000000-0000-0000-0000-000000000001", "member", "a-1", "Happened", `{}`),
		e.outboxInsert("00000000-0000-0000-0000-000000000002", "member", "a-2", "Happened", `{}`))
	poll(t, 30*time.Second, func() string {
		fams := scrape(t, activeURL)
		if got, _ := find(fams, "tailbox_events_published_total", "topic", "outbox.event.member"); got != 2 {
			return fmt.Sprintf("published %g, want 2", got)
		}
		if age, _ := find(fams, "tailbox_checkpoint_age_seconds"); age >= 2 {
			return fmt.Sprintf("checkpoint age %gs once everything is committed, want under 2s", age)
		}
		return ""
	})

	// quiet scrapes url every 500ms for 6s (longer than the 2s allowed)
	// and fails on any checkpoint age or lag of 2s or more, or on a role
	// other than wantActive.
	quiet := func(t *testing.T, url string, wantActive float64) {
		t.Helper()
		var ages, lags []float64
		for end := time.Now().Add(6 * time.Second); time.Now().Before(end); time.Sleep(500 * time.Millisecond) {
			fams := scrape(t, url)
			if got, ok := find(fams, "tailbox_ha_active"); !ok || got != wantActive {
				t.Fatalf("tailbox_ha_active = %g (found %v), want %g", got, ok, wantActive)
			}
			age, ok := find(fams, "tailbox_checkpoint_age_seconds")
			if !ok {
				t.Fatal("no tailbox_checkpoint_age_seconds")
			}
			lag, _ := find(fams, "tailbox_source_lag_seconds")
			ages, lags = append(ages, age), append(lags, lag)
		}
		t.Logf("checkpoint age %v, lag %v", ages, lags)
		for i := range ages {
			if ages[i] >= 2 || lags[i] >= 2 {
				t.Fatalf("scrape %d: checkpoint age %gs, lag %gs; want both under 2s throughout", i, ages[i], lags[i])
			}
		}
	}
	t.Run("standby", func(t *testing.T) { quiet(t, standbyURL, 0) })
	t.Run("idle exactly_once active replica", func(t *testing.T) {
		quiet(t, activeURL, 1)
		if code, body := httpGet(t, activeURL+"/readyz"); code != 200 {
			t.Errorf("/readyz of the idle active replica: %d %q", code, body)
		}
	})
	t.Run("a replica that was active and stands by again", func(t *testing.T) {
		// SIGSTOP past the session timeout: the standby takes over, and
		// the stalled one steps down once resumed.
		if err := active.cmd.Process.Signal(syscall.SIGSTOP); err != nil {
			t.Fatal(err)
		}
		e.activeReplica([]*proc{standby}, 6*time.Second+30*time.Second)
		if err := active.cmd.Process.Signal(syscall.SIGCONT); err != nil {
			t.Fatal(err)
		}
		poll(t, 30*time.Second, func() string {
			out := active.stderr.String()
			i := strings.LastIndex(out, "ha lease acquired")
			if j := max(strings.LastIndex(out, "ha lease lost"), strings.LastIndex(out, "fenced by the replica that took over")); j > i {
				return ""
			}
			return "the stalled replica has not stepped down"
		})
		// Both replicas have been active by now: whichever stands by
		// once the roles settle stood by again after streaming.
		i := settle(t)
		quiet(t, urls[1-i], 0)
		quiet(t, urls[i], 1) // idle
	})
	for _, p := range ps {
		if code := p.stop(t); code != 0 {
			t.Errorf("exit code %d:\n%s", code, logTail(p.stderr.String()))
		}
	}
}
