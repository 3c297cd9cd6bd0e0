package observe

import (
	"bytes"
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/rs/zerolog"

	"github.com/tailbox-cdc/tailbox/pkg/binlog"
)

func logFiles(sizes ...uint64) []binlog.LogFile {
	out := make([]binlog.LogFile, len(sizes))
	for i, n := range sizes {
		out[i] = binlog.LogFile{Name: "b.00000" + string(rune('1'+i)), Size: n}
	}
	return out
}

func TestBehindOf(t *testing.T) {
	tests := []struct {
		name      string
		logs      []binlog.LogFile
		at        binlog.Position
		want      Behind
		wantError string
	}{
		{"within the newest file: the rest of it",
			logFiles(1000, 5000), binlog.Position{File: "b.000002", Pos: 1200},
			Behind{Bytes: 3800, Newest: binlog.Position{File: "b.000002", Pos: 5000}}, ""},
		{"at the end of the newest file: nothing",
			logFiles(1000, 5000), binlog.Position{File: "b.000002", Pos: 5000},
			Behind{Newest: binlog.Position{File: "b.000002", Pos: 5000}}, ""},
		{"across a rotation: the rest of its file and every newer one",
			logFiles(1000, 5000, 7000, 300), binlog.Position{File: "b.000002", Pos: 4000},
			Behind{Bytes: 1000 + 7000 + 300, Files: 2, Newest: binlog.Position{File: "b.000004", Pos: 300}}, ""},
		{"past its file's listed size (written after the listing): nothing in that file",
			logFiles(1000, 5000), binlog.Position{File: "b.000001", Pos: 1500},
			Behind{Bytes: 5000, Files: 1, Newest: binlog.Position{File: "b.000002", Pos: 5000}}, ""},
		{"a purged file is an error naming the files listed",
			logFiles(1000, 5000), binlog.Position{File: "b.000000", Pos: 4},
			Behind{}, "binlog file b.000000 is not among the source's binary logs (b.000001 to b.000002)"},
		{"a GTID-only position is an error",
			logFiles(1000), binlog.Position{GTID: "0-1-5"},
			Behind{}, "position gtid:0-1-5 names no binlog file"},
		{"an empty listing is an error",
			nil, binlog.Position{File: "b.000001", Pos: 4},
			Behind{}, "the source lists no binary logs"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := BehindOf(tt.logs, tt.at)
			if tt.wantError != "" {
				if err == nil || err.Error() != tt.wantError {
					t.Fatalf("error %v, want %q", err, tt.wantError)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if got != tt.want {
				t.Errorf("BehindOf = %+v, want %+v", got, tt.want)
			}
		})
	}
}

func TestBacklogRateAndETA(t *testing.T) {
	type sample struct {
		at       float64 // seconds after t0
		logs     []binlog.LogFile
		read     binlog.Position
		caughtUp bool
		// wanted after the sample
		behind    uint64
		readRate  float64 // -1: no rate yet
		closeRate float64
		eta       float64 // seconds; -1: none
	}
	pos := func(file string, p uint32) binlog.Position { return binlog.Position{File: file, Pos: p} }
	a := 1 - 0.9048374180359595 // 1 - exp(-2s/20s): the weight of a new 2s sample
	tests := []struct {
		name    string
		samples []sample
	}{
		{"one sample: bytes behind, no rate and no eta", []sample{
			{0, logFiles(10000), pos("b.000001", 4000), false, 6000, -1, 0, -1},
		}},
		{"a steady catch-up: rate and eta at that pace", []sample{
			{0, logFiles(10000), pos("b.000001", 4000), false, 6000, -1, 0, -1},
			{2, logFiles(10000), pos("b.000001", 6000), false, 4000, 1000, 1000, 4},
			{4, logFiles(10000), pos("b.000001", 8000), false, 2000, 1000, 1000, 2},
		}},
		{"reading across a rotation counts the bytes of both files", []sample{
			{0, logFiles(10000, 3000), pos("b.000001", 9000), false, 4000, -1, 0, -1},
			{2, logFiles(10000, 3000), pos("b.000002", 1000), false, 2000, 1000, 1000, 2},
		}},
		{"a change of pace is smoothed", []sample{
			{0, logFiles(100000), pos("b.000001", 0), false, 100000, -1, 0, -1},
			{2, logFiles(100000), pos("b.000001", 2000), false, 98000, 1000, 1000, 98},
			{4, logFiles(100000), pos("b.000001", 12000), false, 88000, 1000 + a*(5000-1000), 1000 + a*(5000-1000), 88000 / (1000 + a*(5000-1000))},
		}},
		{"the pace after a stall is not averaged with the stall", []sample{
			{0, logFiles(100000), pos("b.000001", 0), false, 100000, -1, 0, -1},
			{2, logFiles(100000), pos("b.000001", 0), false, 100000, 0, 0, -1},
			{4, logFiles(100000), pos("b.000001", 10000), false, 90000, 5000, 5000, 18},
			{6, logFiles(100000), pos("b.000001", 14000), false, 86000, 5000 + a*(2000-5000), 5000 + a*(2000-5000), 86000 / (5000 + a*(2000-5000))},
		}},
		{"no eta while the source writes as fast as it is read", []sample{
			{0, logFiles(10000), pos("b.000001", 4000), false, 6000, -1, 0, -1},
			{2, logFiles(12000), pos("b.000001", 6000), false, 6000, 1000, 0, -1},
		}},
		{"no eta while the backlog grows", []sample{
			{0, logFiles(10000), pos("b.000001", 4000), false, 6000, -1, 0, -1},
			{2, logFiles(16000), pos("b.000001", 6000), false, 10000, 1000, -2000, -1},
		}},
		{"no eta and no rate while reading stands still", []sample{
			{0, logFiles(10000), pos("b.000001", 4000), false, 6000, -1, 0, -1},
			{2, logFiles(10000), pos("b.000001", 4000), false, 6000, 0, 0, -1},
		}},
		{"caught up: nothing behind, whatever follows the last transaction end", []sample{
			{0, logFiles(10000, 400), pos("b.000002", 4), true, 0, -1, 0, -1},
		}},
		{"a purged previous position leaves the rates as they were", []sample{
			{0, logFiles(10000, 5000), pos("b.000001", 9000), false, 6000, -1, 0, -1},
			{2, logFiles(10000, 5000)[1:], pos("b.000002", 1000), false, 4000, -1, 0, -1},
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var b backlog
			for i, s := range tt.samples {
				if err := b.observe(at(s.at), s.logs, s.read, s.caughtUp); err != nil {
					t.Fatalf("sample %d: %v", i, err)
				}
				if b.behind.Bytes != s.behind {
					t.Errorf("sample %d: behind %d, want %d", i, b.behind.Bytes, s.behind)
				}
				if s.readRate < 0 {
					if b.rated {
						t.Errorf("sample %d: rates %g, %g, want none yet", i, b.readRate, b.closeRate)
					}
				} else if !near(b.readRate, s.readRate) || !near(b.closeRate, s.closeRate) {
					t.Errorf("sample %d: read rate %g, closing rate %g, want %g, %g", i, b.readRate, b.closeRate, s.readRate, s.closeRate)
				}
				eta, ok := b.eta()
				switch {
				case s.eta < 0 && ok:
					t.Errorf("sample %d: eta %s, want none", i, eta)
				case s.eta >= 0 && (!ok || !near(eta.Seconds(), s.eta)):
					t.Errorf("sample %d: eta %s (%v), want %gs", i, eta, ok, s.eta)
				}
			}
		})
	}
}

func near(a, b float64) bool { return a-b < 1e-6 && b-a < 1e-6 }

func TestSampleBacklogOnlyWhileASessionReads(t *testing.T) {
	m := New(testConfig(t))
	calls := 0
	list := func(context.Context) ([]binlog.LogFile, error) {
		calls++
		return logFiles(10000), nil
	}
	ctx := context.Background()
	m.RunStarted(false, "")
	if err := m.sampleBacklog(ctx, list, time.Now()); err != nil || calls != 0 {
		t.Fatalf("while starting: %d listings, error %v; want none", calls, err)
	}
	m.SessionStarted(binlog.Point{Pos: binlog.Position{File: "b.000001", Pos: 2500}})
	if err := m.sampleBacklog(ctx, list, time.Now()); err != nil || calls != 1 {
		t.Fatalf("in a session: %d listings, error %v; want 1", calls, err)
	}
	if got := value(t, gather(t, m), "tailbox_source_lag_bytes"); got != 7500 {
		t.Errorf("tailbox_source_lag_bytes = %g, want 7500", got)
	}
	m.SessionEnded()
	m.Standby()
	if err := m.sampleBacklog(ctx, list, time.Now()); err != nil || calls != 1 {
		t.Errorf("on standby: %d listings, error %v; want still 1", calls, err)
	}
	if fams := gather(t, m); fams["tailbox_source_lag_bytes"] != nil {
		t.Errorf("tailbox_source_lag_bytes exported on standby: %v", fams["tailbox_source_lag_bytes"])
	}

	m.Active()
	m.SessionStarted(binlog.Point{Pos: binlog.Position{File: "b.000001", Pos: 2500}})
	failing := func(context.Context) ([]binlog.LogFile, error) { return nil, errors.New("connection refused") }
	err := m.sampleBacklog(ctx, failing, time.Now())
	if err == nil || err.Error() != "list the source's binary logs: connection refused" {
		t.Errorf("error %v, want the listing's, wrapped", err)
	}
}

func TestStatusLineWhileBehind(t *testing.T) {
	var buf bytes.Buffer
	m := New(testConfig(t))
	m.RunStarted(false, "")
	m.SessionStarted(binlog.Point{Pos: binlog.Position{File: "b.000001", Pos: 0}})
	m.bl.observe(at(0), logFiles(100000, 20000), binlog.Position{File: "b.000001", Pos: 0}, false)
	m.Marker(binlog.Position{File: "b.000001", Pos: 20000})
	m.bl.observe(at(2), logFiles(100000, 20000), binlog.Position{File: "b.000001", Pos: 20000}, false)
	o := &Observer{m: m, log: zerolog.New(&buf)}
	o.logStatus(time.Now(), totals{}, 10*time.Second)
	line := logged(t, &buf, "status")[0]
	for k, v := range map[string]any{"behind_bytes": 100000.0, "behind_files": 1.0, "read_bytes_per_sec": 10000.0, "eta": "10s"} {
		if line[k] != v {
			t.Errorf("%s = %v, want %v", k, line[k], v)
		}
	}

	buf.Reset()
	m.bl.observe(at(4), logFiles(100000, 20000), binlog.Position{File: "b.000002", Pos: 20000}, true)
	o.logStatus(time.Now(), totals{}, 10*time.Second)
	if s := buf.String(); strings.Contains(s, "behind_bytes") || strings.Contains(s, "eta") {
		t.Errorf("status line of a caught-up reader with backlog fields: %s", s)
	}
}
