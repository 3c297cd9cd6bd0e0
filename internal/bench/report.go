package main

import (
	"fmt"
	"io"
	"strconv"
	"strings"
)

// report collects the table rows, the target checks and the keys of the
// BENCH line, in the order the scenarios add them.
type report struct {
	rows   []row
	checks []check
	keys   []string // "key=value"
}

// row is one line of the table; zero numbers print as "-".
type row struct {
	name    string
	events  int
	seconds float64
	rate    float64 // events/s
	cpu100k float64 // CPU seconds per 100k events
	rssMiB  float64 // peak RSS
	note    string
}

// check is one target of the performance issue.
type check struct {
	name   string // what is compared, e.g. "backlog events/s vs composed"
	got    string
	target string
	ok     bool
}

func (r *report) add(rw row) { r.rows = append(r.rows, rw) }

// key adds key=value to the BENCH line; floats get 3 significant decimals
// at most.
func (r *report) key(k string, v any) {
	var s string
	switch v := v.(type) {
	case float64:
		s = strconv.FormatFloat(v, 'f', decimals(v), 64)
	case bool:
		s = strconv.FormatBool(v)
	default:
		s = fmt.Sprint(v)
	}
	r.keys = append(r.keys, k+"="+s)
}

func decimals(v float64) int {
	switch a := max(v, -v); {
	case a >= 1000:
		return 0
	case a >= 100:
		return 1
	case a >= 1:
		return 2
	default:
		return 3
	}
}

// atMost records the check got ≤ limit, with its BENCH key.
func (r *report) atMost(key, name string, got, limit float64, unit string) {
	r.checks = append(r.checks, check{name: name, got: fmtNum(got) + unit, target: "≤ " + fmtNum(limit) + unit, ok: got <= limit})
	r.key(key+"_ok", got <= limit)
}

// atLeast records the check got ≥ limit, with its BENCH key.
func (r *report) atLeast(key, name string, got, limit float64, unit string) {
	r.checks = append(r.checks, check{name: name, got: fmtNum(got) + unit, target: "≥ " + fmtNum(limit) + unit, ok: got >= limit})
	r.key(key+"_ok", got >= limit)
}

func fmtNum(v float64) string { return strconv.FormatFloat(v, 'f', decimals(v), 64) }

// print writes the table, the checks and the BENCH line.
func (r *report) print(w io.Writer) {
	cell := func(v float64, prec int) string {
		if v == 0 {
			return "-"
		}
		return strconv.FormatFloat(v, 'f', prec, 64)
	}
	fmt.Fprintf(w, "%-22s %9s %9s %10s %11s %8s  %s\n", "scenario", "events", "seconds", "events/s", "cpu_s/100k", "rss_MiB", "notes")
	for _, rw := range r.rows {
		events := "-"
		if rw.events > 0 {
			events = strconv.Itoa(rw.events)
		}
		fmt.Fprintf(w, "%-22s %9s %9s %10s %11s %8s  %s\n", rw.name, events, cell(rw.seconds, 3), cell(rw.rate, 0),
			cell(rw.cpu100k, 2), cell(rw.rssMiB, 1), rw.note)
	}
	if len(r.checks) > 0 {
		fmt.Fprintf(w, "\ntargets (reported, not enforced):\n")
		pass := 0
		for _, c := range r.checks {
			verdict := "FAIL"
			if c.ok {
				verdict, pass = "PASS", pass+1
			}
			fmt.Fprintf(w, "  %-4s  %-44s %12s  target %s\n", verdict, c.name, c.got, c.target)
		}
		r.key("targets_passed", pass)
		r.key("targets", len(r.checks))
	}
	fmt.Fprintf(w, "BENCH %s\n", strings.Join(r.keys, " "))
}
