package connector

import (
	"net/http"
	"os"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"
	"gopkg.in/yaml.v3"

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
	c := newTestConnector(t)
	m := c.m
	m.runStarted(false, "v1.2.3")
	tb := &binlog.Table{Schema: "s", Name: "outbox"}
	txn := &binlog.Txn{CommitTime: time.Now().Add(-3 * time.Millisecond)}
	for i := range 5 {
		m.read(tb)
		m.acked(&kafka.Ack{Record: &kafka.Record{Topic: "outbox.event.order", Meta: &sendMeta{seq: uint64(i), commit: commitNanos(txn)}}}, time.Now().UnixNano())
	}
	m.deadLetteredEvent("bad topic!", outbox.ErrInvalidTopic)
	m.rejected("outbox.event.big", kafka.ErrTooLarge)
	m.marker(binlog.Position{File: "mariadb-bin.000007", Pos: 4242})
	m.checkpointed(point{Pos: binlog.Position{File: "mariadb-bin.000007", Pos: 4000}})
	m.producerRetry()
	m.restarted()
	m.role.Store(roleActive) // as with ha.enabled: tailbox_ha_active is exported

	s, err := c.serveHTTP("127.0.0.1:0")
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
		{"events read by table", "tailbox_events_read_total", []string{"table", "s.outbox"}, 5},
		{"events published by topic", "tailbox_events_published_total", []string{"topic", "outbox.event.order"}, 5},
		{"dead-lettered events by topic and reason", "tailbox_events_dead_lettered_total", []string{"topic", "bad topic!", "reason", "invalid_topic"}, 1},
		{"failed events by topic and reason", "tailbox_events_failed_total", []string{"topic", "outbox.event.big", "reason", "too_large"}, 1},
		{"binlog file index", "tailbox_binlog_file_index", nil, 7},
		{"binlog position", "tailbox_binlog_position", nil, 4242},
		{"checkpoint file index", "tailbox_checkpoint_binlog_file_index", nil, 7},
		{"checkpoint position", "tailbox_checkpoint_binlog_position", nil, 4000},
		{"commit-to-ack observations", "tailbox_commit_to_ack_seconds", nil, 5},
		{"producer retries", "tailbox_producer_retries_total", nil, 1},
		{"pipeline restarts", "tailbox_pipeline_restarts_total", nil, 1},
		{"source reconnects without a reader", "tailbox_source_reconnects_total", nil, 0},
		{"in flight without a producer", "tailbox_producer_in_flight_records", nil, 0},
		{"lag before the first transaction", "tailbox_seconds_behind_source", nil, 0},
		{"not ready while starting", "tailbox_ready", nil, 0},
		{"info", "tailbox_info", []string{"version", "v1.2.3", "flavor", "auto", "name", "metrics-test"}, 1},
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
		b, err := os.ReadFile("../config/prometheus-alerts.yaml")
		if err != nil {
			t.Fatal(err)
		}
		var rules struct {
			Groups []struct {
				Rules []struct {
					Alert string `yaml:"alert"`
					Expr  string `yaml:"expr"`
				} `yaml:"rules"`
			} `yaml:"groups"`
		}
		if err := yaml.Unmarshal(b, &rules); err != nil {
			t.Fatal(err)
		}
		n := 0
		for _, g := range rules.Groups {
			for _, r := range g.Rules {
				n++
				for _, name := range regexp.MustCompile(`tailbox_[a-z_]+`).FindAllString(r.Expr, -1) {
					if fams[name] == nil {
						t.Errorf("alert %s uses %s, which tailbox does not export", r.Alert, name)
					}
				}
			}
		}
		if n < 3 {
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
