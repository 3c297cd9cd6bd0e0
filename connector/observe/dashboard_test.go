package observe

import (
	"encoding/json"
	"os"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	dto "github.com/prometheus/client_model/go"

	"github.com/tailbox-cdc/tailbox/pkg/binlog"
)

// dashboardFile is the shipped Grafana dashboard.
const dashboardFile = "../../deploy/grafana/tailbox.json"

// dashboardPanel is the part of a Grafana panel the test reads.
type dashboardPanel struct {
	ID         int    `json:"id"`
	Type       string `json:"type"`
	Title      string `json:"title"`
	Datasource *struct {
		UID string `json:"uid"`
	} `json:"datasource"`
	Targets []struct {
		Expr string `json:"expr"`
	} `json:"targets"`
	Panels []dashboardPanel `json:"panels"` // of a collapsed row
}

// allFamilies returns every metric family tailbox exports, with the ones
// that appear only in some states (series of rows read and events
// published, the bytes behind once measured, ha_active with ha) made
// present.
func allFamilies(t *testing.T) map[string]*dto.MetricFamily {
	t.Helper()
	m := New(testConfig(t))
	m.Read(&binlog.Table{Schema: "s", Name: "outbox"}, binlog.OpInsert)
	m.Acked("outbox.event.order", time.Now().UnixNano(), nil, time.Now().UnixNano())
	m.role.Store(roleActive)
	m.blMu.Lock()
	m.bl.known = true
	m.blMu.Unlock()
	return gather(t, m)
}

// Parts of a PromQL expression the test reads.
var (
	promMetric  = regexp.MustCompile(`\btailbox_[a-z_]+`)
	promGrouped = regexp.MustCompile(`\b(?:by|without) \(([^)]*)\)`)
)

// familyOf maps a series name to its family: a histogram's _bucket, _sum
// and _count series belong to the histogram.
func familyOf(fams map[string]*dto.MetricFamily, series string) *dto.MetricFamily {
	if f := fams[series]; f != nil {
		return f
	}
	for _, suffix := range []string{"_bucket", "_sum", "_count"} {
		if base, ok := strings.CutSuffix(series, suffix); ok {
			if f := fams[base]; f != nil && f.GetType() == dto.MetricType_HISTOGRAM {
				return f
			}
		}
	}
	return nil
}

// TestDashboardUsesExportedMetrics checks deploy/grafana/tailbox.json
// against the metric families tailbox exports: every tailbox_ series a
// panel queries exists, every label it groups by is one of the family's
// (or a target label Prometheus adds), and the dashboard covers
// throughput, lag, latency, checkpoints, in-flight, reconnects, dead
// letters and ha state.
func TestDashboardUsesExportedMetrics(t *testing.T) {
	data, err := os.ReadFile(dashboardFile)
	if err != nil {
		t.Fatal(err)
	}
	var dash struct {
		UID        string           `json:"uid"`
		Panels     []dashboardPanel `json:"panels"`
		Templating struct {
			List []struct {
				Name string `json:"name"`
				Type string `json:"type"`
			} `json:"list"`
		} `json:"templating"`
	}
	if err := json.Unmarshal(data, &dash); err != nil {
		t.Fatalf("parse %s: %v", dashboardFile, err)
	}
	fams := allFamilies(t)

	var panels []dashboardPanel
	var flatten func(ps []dashboardPanel)
	flatten = func(ps []dashboardPanel) {
		for _, p := range ps {
			panels = append(panels, p)
			flatten(p.Panels)
		}
	}
	flatten(dash.Panels)

	used := map[string]bool{}
	ids := map[int]string{}
	for _, p := range panels {
		if prev, dup := ids[p.ID]; dup {
			t.Errorf("panels %q and %q share id %d", prev, p.Title, p.ID)
		}
		ids[p.ID] = p.Title
		if p.Type == "row" {
			continue
		}
		if len(p.Targets) == 0 {
			t.Errorf("panel %q has no query", p.Title)
		}
		if p.Datasource == nil || p.Datasource.UID != "${datasource}" {
			t.Errorf("panel %q: datasource %+v, want the ${datasource} variable", p.Title, p.Datasource)
		}
		for _, tg := range p.Targets {
			names := promMetric.FindAllString(tg.Expr, -1)
			if len(names) == 0 {
				t.Errorf("panel %q: query %q names no tailbox metric", p.Title, tg.Expr)
			}
			var queried []*dto.MetricFamily
			for _, name := range names {
				f := familyOf(fams, name)
				if f == nil {
					t.Errorf("panel %q queries %s, which tailbox does not export", p.Title, name)
					continue
				}
				used[f.GetName()] = true
				queried = append(queried, f)
			}
			// Labels grouped by must exist on the queried series.
			for _, g := range promGrouped.FindAllStringSubmatch(tg.Expr, -1) {
				for _, label := range strings.Split(g[1], ",") {
					label = strings.TrimSpace(label)
					if label == "" || label == "instance" || label == "job" || label == "le" {
						continue
					}
					for _, f := range queried {
						if !slices.ContainsFunc(f.GetMetric(), func(m *dto.Metric) bool {
							return slices.ContainsFunc(m.GetLabel(), func(l *dto.LabelPair) bool { return l.GetName() == label })
						}) {
							t.Errorf("panel %q groups %s by %q, a label it does not have", p.Title, f.GetName(), label)
						}
					}
				}
			}
		}
	}

	for _, name := range []string{
		"tailbox_rows_read_total", "tailbox_events_published_total", // throughput
		"tailbox_source_lag_seconds", "tailbox_source_lag_bytes", // lag
		"tailbox_commit_to_ack_seconds", "tailbox_checkpoint_age_seconds",
		"tailbox_producer_in_flight_records", "tailbox_source_reconnects_total",
		"tailbox_events_dead_lettered_total", "tailbox_events_failed_total",
		"tailbox_ha_active", "tailbox_ready",
	} {
		if !used[name] {
			t.Errorf("no panel shows %s", name)
		}
	}
	var vars []string
	for _, v := range dash.Templating.List {
		vars = append(vars, v.Name)
	}
	if !slices.Contains(vars, "datasource") {
		t.Errorf("template variables %v: want a datasource variable, so that the dashboard imports into any Grafana", vars)
	}
	if dash.UID == "" {
		t.Error("the dashboard has no uid: links to it would change at every import")
	}
}
