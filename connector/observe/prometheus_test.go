package observe

import (
	"fmt"
	"net/http"
	"os"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/IBM/sarama"
	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"
	"github.com/rs/zerolog"
	"gopkg.in/yaml.v3"

	"github.com/tailbox-cdc/tailbox/connector/pipeline"
	"github.com/tailbox-cdc/tailbox/pkg/binlog"
	"github.com/tailbox-cdc/tailbox/pkg/kafka"
	"github.com/tailbox-cdc/tailbox/pkg/outbox"
)

// scrape fetches and parses url.
func scrape(t *testing.T, url string) map[string]*dto.MetricFamily {
	t.Helper()
	resp, err := http.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("GET %s: %s", url, resp.Status)
	}
	p := expfmt.NewTextParser(model.UTF8Validation)
	fams, err := p.TextToMetricFamilies(resp.Body)
	if err != nil {
		t.Fatalf("parse %s: %v", url, err)
	}
	return fams
}

// value returns the value of the series of family name whose labels include
// labels (name=value pairs), or fails.
func value(t *testing.T, fams map[string]*dto.MetricFamily, name string, labels ...string) float64 {
	t.Helper()
	f := fams[name]
	if f == nil {
		t.Fatalf("no metric %s", name)
	}
next:
	for _, m := range f.Metric {
		for i := 0; i+1 < len(labels); i += 2 {
			found := false
			for _, l := range m.Label {
				if l.GetName() == labels[i] && l.GetValue() == labels[i+1] {
					found = true
				}
			}
			if !found {
				continue next
			}
		}
		switch {
		case m.Counter != nil:
			return m.Counter.GetValue()
		case m.Gauge != nil:
			return m.Gauge.GetValue()
		case m.Histogram != nil:
			return float64(m.Histogram.GetSampleCount())
		}
	}
	t.Fatalf("no series %s%v", name, labels)
	return 0
}

func TestMetricsExposition(t *testing.T) {
	m := New(testConfig(t))
	m.RunStarted(false, "v1.2.3")
	tb := &binlog.Table{Schema: "s", Name: "outbox"}
	commit := time.Now().Add(-3 * time.Millisecond).UnixNano()
	for range 5 {
		m.Read(tb, binlog.OpInsert)
		m.Acked("outbox.event.order", commit, nil, time.Now().UnixNano())
	}
	m.Read(tb, binlog.OpDelete)
	m.DeadLettered("bad topic!", outbox.ErrInvalidTopic)
	m.Rejected("outbox.event.big", kafka.ErrTooLarge)
	m.Marker(binlog.Position{File: "mariadb-bin.000007", Pos: 4242})
	m.Checkpointed(binlog.Point{Pos: binlog.Position{File: "mariadb-bin.000007", Pos: 4000}})
	m.ProducerRetry()
	m.Restarted()
	m.role.Store(roleActive) // as with ha.enabled: tailbox_ha_active is exported

	s, err := serveHTTP("127.0.0.1:0", m, zerolog.Nop())
	if err != nil {
		t.Fatal(err)
	}
	defer s.close()
	fams := scrape(t, "http://"+s.addr+"/metrics")

	tests := []struct {
		name   string
		metric string
		labels []string
		want   float64
	}{
		{"inserts read by table", "tailbox_rows_read_total", []string{"table", "s.outbox", "op", "insert"}, 5},
		{"deletes read by table", "tailbox_rows_read_total", []string{"table", "s.outbox", "op", "delete"}, 1},
		{"events published by topic", "tailbox_events_published_total", []string{"topic", "outbox.event.order"}, 5},
		{"dead-lettered events by reason", "tailbox_events_dead_lettered_total", []string{"reason", "invalid_topic"}, 1},
		{"dead-lettered events of another reason, exported at 0", "tailbox_events_dead_lettered_total", []string{"reason", "too_large"}, 0},
		{"failed events by reason", "tailbox_events_failed_total", []string{"reason", "too_large"}, 1},
		{"failed events of another reason, exported at 0", "tailbox_events_failed_total", []string{"reason", "retriable"}, 0},
		{"binlog file index", "tailbox_binlog_file_index", nil, 7},
		{"binlog position", "tailbox_binlog_position_bytes", nil, 4242},
		{"checkpoint file index", "tailbox_checkpoint_binlog_file_index", nil, 7},
		{"checkpoint position", "tailbox_checkpoint_binlog_position_bytes", nil, 4000},
		{"commit-to-ack observations", "tailbox_commit_to_ack_seconds", nil, 5},
		{"producer retries", "tailbox_producer_retries_total", nil, 1},
		{"pipeline restarts", "tailbox_pipeline_restarts_total", nil, 1},
		{"source reconnects without a reader", "tailbox_source_reconnects_total", nil, 0},
		{"in flight without a producer", "tailbox_producer_in_flight_records", nil, 0},
		{"lag before the first transaction", "tailbox_source_lag_seconds", nil, 0},
		{"not ready while starting", "tailbox_ready", nil, 0},
		{"build info", "tailbox_build_info", []string{"version", "v1.2.3", "flavor", "auto", "name", "metrics-test"}, 1},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := value(t, fams, tt.metric, tt.labels...); got != tt.want {
				t.Errorf("%s%v = %g, want %g", tt.metric, tt.labels, got, tt.want)
			}
		})
	}

	t.Run("every tailbox metric has help text", func(t *testing.T) {
		n := 0
		for name, f := range fams {
			if strings.HasPrefix(name, "tailbox_") {
				n++
				if len(f.GetHelp()) < 20 {
					t.Errorf("%s: help %q", name, f.GetHelp())
				}
			}
		}
		if n < 17 {
			t.Errorf("%d tailbox_ families, want 17", n)
		}
	})
	t.Run("the histogram has the buckets from 1ms to 60s", func(t *testing.T) {
		h := fams["tailbox_commit_to_ack_seconds"].Metric[0].Histogram
		for _, b := range h.Bucket {
			// The commit was at least 3ms before the acknowledgement.
			if b.GetUpperBound() == 0.0025 && b.GetCumulativeCount() != 0 {
				t.Errorf("le=0.0025: %d, want 0", b.GetCumulativeCount())
			}
			if b.GetUpperBound() == 60 && b.GetCumulativeCount() != 5 {
				t.Errorf("le=60: %d, want 5", b.GetCumulativeCount())
			}
		}
		if len(h.Bucket) != len(latencyBuckets)+1 { // and +Inf
			t.Errorf("%d buckets, want %d and +Inf", len(h.Bucket), len(latencyBuckets))
		}
	})
	t.Run("Go and process collectors are registered", func(t *testing.T) {
		for _, name := range []string{"go_goroutines", "process_resident_memory_bytes", "process_start_time_seconds"} {
			if fams[name] == nil {
				t.Errorf("no %s", name)
			}
		}
	})
	t.Run("the example alert rules use only metrics tailbox exports", func(t *testing.T) {
		rules := shippedAlerts(t)
		for _, r := range rules {
			for _, name := range regexp.MustCompile(`tailbox_[a-z_]+`).FindAllString(r.Expr, -1) {
				if fams[name] == nil {
					t.Errorf("alert %s uses %s, which tailbox does not export", r.Alert, name)
				}
			}
		}
		if n := len(rules); n < 3 {
			t.Errorf("%d alert rules, want the lag, checkpoint and readiness ones at least", n)
		}
	})
	t.Run("the global registry is left alone", func(t *testing.T) {
		global, err := prometheus.DefaultGatherer.Gather()
		if err != nil {
			t.Fatal(err)
		}
		for _, f := range global {
			if strings.HasPrefix(f.GetName(), "tailbox_") {
				t.Errorf("%s is in the global registry", f.GetName())
			}
		}
	})
}

// alertRule is one rule of config/prometheus-alerts.yaml.
type alertRule struct {
	Alert string `yaml:"alert"`
	Expr  string `yaml:"expr"`
}

// shippedAlerts reads the rules of config/prometheus-alerts.yaml.
func shippedAlerts(t *testing.T) []alertRule {
	t.Helper()
	b, err := os.ReadFile("../../config/prometheus-alerts.yaml")
	if err != nil {
		t.Fatal(err)
	}
	var rules struct {
		Groups []struct {
			Rules []alertRule `yaml:"rules"`
		} `yaml:"groups"`
	}
	if err := yaml.Unmarshal(b, &rules); err != nil {
		t.Fatal(err)
	}
	var all []alertRule
	for _, g := range rules.Groups {
		all = append(all, g.Rules...)
	}
	return all
}

// Shapes of the shipped alert expressions that alertFires evaluates.
var (
	exprCompare = regexp.MustCompile(`^(\w+)(?:\{[^}]*\})? (>|==) ([0-9.]+)$`)
	exprUnless  = regexp.MustCompile(`^(\w+) (>|==) ([0-9.]+) unless on\(instance\) (\w+) (>|==) ([0-9.]+)$`)
	exprIncr    = regexp.MustCompile(`^increase\((\w+)\[\w+\]\) > ([0-9.]+)$`)
)

// alertFires evaluates expr, one of the shapes above, for one scraped
// instance: before and after are two scrapes of it (for increase()), up is
// the scrape's success. As Prometheus does, increase() has a value only for
// a series present in both scrapes: a series that first appears with the
// event counts nothing. It fails the test on any other shape, so that a
// new rule gets evaluated here too.
func alertFires(t *testing.T, expr string, before, after map[string]*dto.MetricFamily) bool {
	t.Helper()
	// series returns the values of name in fams by label set (no series:
	// none).
	series := func(fams map[string]*dto.MetricFamily, name string) map[string]float64 {
		if name == "up" {
			return map[string]float64{"": 1}
		}
		vs := map[string]float64{}
		for _, m := range fams[name].GetMetric() {
			var key strings.Builder
			for _, l := range m.GetLabel() {
				key.WriteString(l.GetName() + "=" + l.GetValue() + ",")
			}
			switch {
			case m.Gauge != nil:
				vs[key.String()] = m.Gauge.GetValue()
			case m.Counter != nil:
				vs[key.String()] = m.Counter.GetValue()
			}
		}
		return vs
	}
	holds := func(v float64, op, n string) bool {
		x, err := strconv.ParseFloat(n, 64)
		if err != nil {
			t.Fatalf("%s: %v", expr, err)
		}
		if op == ">" {
			return v > x
		}
		return v == x
	}
	any := func(fams map[string]*dto.MetricFamily, name, op, n string) bool {
		for _, v := range series(fams, name) {
			if holds(v, op, n) {
				return true
			}
		}
		return false
	}
	switch {
	case exprUnless.MatchString(expr):
		g := exprUnless.FindStringSubmatch(expr)
		return any(after, g[1], g[2], g[3]) && !any(after, g[4], g[5], g[6])
	case exprCompare.MatchString(expr):
		g := exprCompare.FindStringSubmatch(expr)
		return any(after, g[1], g[2], g[3])
	case exprIncr.MatchString(expr):
		g := exprIncr.FindStringSubmatch(expr)
		b := series(before, g[1])
		for k, a := range series(after, g[1]) {
			if v, ok := b[k]; ok && holds(a-v, ">", g[2]) {
				return true
			}
		}
		return false
	}
	t.Fatalf("alert expression %q has a shape this test does not evaluate: teach alertFires it", expr)
	return false
}

// gather collects m's metrics as a scrape would.
func gather(t *testing.T, m *Metrics) map[string]*dto.MetricFamily {
	t.Helper()
	reg := prometheus.NewRegistry()
	reg.MustRegister(exporter{m})
	fs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	fams := map[string]*dto.MetricFamily{}
	for _, f := range fs {
		fams[f.GetName()] = f
	}
	return fams
}

// TestShippedAlertsQuietOnStandbyAndIdleSource evaluates every shipped
// alert against the series of healthy connectors that have stood still for
// ten minutes (past every rule's threshold and "for"): HA standbys, one of
// them active before, and idle sources under both deliveries. None may
// fire. A stuck one, for contrast, fires TailboxCheckpointStuck.
func TestShippedAlertsQuietOnStandbyAndIdleSource(t *testing.T) {
	const idle = 10 * time.Minute
	start := binlog.Point{Pos: binlog.Position{File: "b.000003", Pos: 400}}
	session := func(m *Metrics) *pipeline.Tracker {
		m.SessionStarted(start)
		tr := pipeline.NewTracker(start)
		m.Tracking(tr, start)
		return tr
	}
	// stillFor makes m's readings those of idle without anything read
	// since: the caught-up source's heartbeats keep the lag at 0.
	stillFor := func(m *Metrics) {
		backdate(m, idle)
		m.started.Store(time.Now().Add(-idle).UnixNano())
	}
	// A unit test has no binlog reader, which readiness needs: the active
	// cases read as ready, as a caught-up stream does (the e2e test
	// TestHAStandbyAndIdleSourceMetricsStayQuiet scrapes it for real).
	ready := func(fams map[string]*dto.MetricFamily) {
		one := 1.0
		fams["tailbox_ready"].Metric[0].Gauge.Value = &one
	}
	cases := []struct {
		name   string
		setup  func(t *testing.T) *Metrics
		active bool
		fires  []string
	}{
		{"standby", func(t *testing.T) *Metrics {
			m := New(testConfig(t))
			m.RunStarted(false, "")
			m.Standby()
			return m
		}, false, nil},
		{"standby that was active", func(t *testing.T) *Metrics {
			m := New(testConfig(t))
			m.RunStarted(false, "")
			m.Active()
			tr := session(m)
			tr.PushMarker(binlog.Position{File: "b.000003", Pos: 900})
			m.mu.Lock()
			m.prog.observe(time.Now().Add(-idle), binlog.Stats{Events: 3, LastCommit: time.Now().Add(-idle)})
			m.mu.Unlock()
			m.SessionEnded()
			m.Standby()
			return m
		}, false, nil},
		{"idle source, exactly_once", func(t *testing.T) *Metrics {
			cfg := testConfig(t)
			cfg.Delivery = "exactly_once"
			m := New(cfg)
			m.RunStarted(false, "")
			session(m)
			return m
		}, true, nil},
		{"idle ha active, at_least_once, after events", func(t *testing.T) *Metrics {
			m := New(testConfig(t))
			m.RunStarted(false, "")
			m.Active()
			tr := session(m)
			tr.PushSlot(0, "0-1-7", false)
			tr.PushMarker(binlog.Position{File: "b.000003", Pos: 900})
			// Kafka acknowledged the event: the committed point is the
			// read point.
			m.Checkpointed(tr.ReadPoint())
			return m
		}, true, nil},
		{"stuck: read progress never checkpointed", func(t *testing.T) *Metrics {
			m := New(testConfig(t))
			m.RunStarted(false, "")
			tr := session(m)
			tr.PushSlot(0, "0-1-7", false)
			return m
		}, true, []string{"TailboxCheckpointStuck"}},
	}
	rules := shippedAlerts(t)
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			m := tc.setup(t)
			stillFor(m)
			before := gather(t, m)
			after := gather(t, m)
			if tc.active {
				ready(before)
				ready(after)
			}
			for _, name := range []string{"tailbox_checkpoint_age_seconds", "tailbox_source_lag_seconds"} {
				t.Logf("%s %v", name, value(t, after, name))
			}
			var fired []string
			for _, r := range rules {
				if alertFires(t, r.Expr, before, after) {
					fired = append(fired, r.Alert)
				}
			}
			if strings.Join(fired, ",") != strings.Join(tc.fires, ",") {
				t.Errorf("alerts firing %v, want %v", fired, tc.fires)
			}
		})
	}
}

// TestShippedAlertsFireOnTheFirstFailure evaluates the shipped alerts
// between a scrape of a connector that has run without trouble and one
// taken after its first dead-lettered event or its restarts: the alert
// fires on the first one, because the series existed (at 0) before it.
func TestShippedAlertsFireOnTheFirstFailure(t *testing.T) {
	cases := []struct {
		name  string
		event func(m *Metrics)
		fires string
	}{
		{"the first dead-lettered event", func(m *Metrics) {
			m.DeadLettered("outbox.event.x", fmt.Errorf("render topic: %w", outbox.ErrInvalidTopic))
		}, "TailboxEventsDeadLettered"},
		{"the first too-large event dead-lettered", func(m *Metrics) {
			m.DeadLettered("outbox.event.x", fmt.Errorf("record of 2 MB: %w", kafka.ErrTooLarge))
		}, "TailboxEventsDeadLettered"},
		{"a pipeline restarting over and over", func(m *Metrics) {
			for range 4 {
				m.Acked("outbox.event.x", 0, fmt.Errorf("deliver: %w", sarama.ErrNotEnoughReplicas), time.Now().UnixNano())
				m.Restarted()
			}
		}, "TailboxPipelineRestarting"},
	}
	rules := shippedAlerts(t)
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			m := New(testConfig(t))
			m.RunStarted(false, "")
			before := gather(t, m)
			tc.event(m)
			after := gather(t, m)
			var fired []string
			for _, r := range rules {
				if alertFires(t, r.Expr, before, after) {
					fired = append(fired, r.Alert)
				}
			}
			// Not ready while starting: TailboxNotReady's "for" is left
			// to Prometheus; only the alert on the event counts here.
			if !slices.Contains(fired, tc.fires) {
				t.Errorf("alerts firing %v, want %s among them", fired, tc.fires)
			}
		})
	}
}
