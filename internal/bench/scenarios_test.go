package main

import (
	"math"
	"testing"
	"time"
)

func TestMedian(t *testing.T) {
	for _, c := range []struct {
		in   []float64
		want float64
	}{
		{[]float64{0.7}, 0.7},
		{[]float64{0.9, 0.5, 0.7}, 0.7},
		{[]float64{0.9, 0.5, 0.7, 0.6}, 0.65},
	} {
		if got := median(c.in); math.Abs(got-c.want) > 1e-9 {
			t.Errorf("median(%v) = %v, want %v", c.in, got, c.want)
		}
	}
}

// A round's ratio uses that round's ceilings only: a machine twice as slow
// in round 2 gives the same ratio as round 1.
func TestRoundRatioValuesPairsEachRound(t *testing.T) {
	n := 100000
	reads := []timed{{d: 200 * time.Millisecond}, {d: 400 * time.Millisecond}}
	prods := []timed{{d: 800 * time.Millisecond}, {d: 1600 * time.Millisecond}}
	tbs := []rangeRun{{total: 1250 * time.Millisecond}, {total: 2500 * time.Millisecond}}
	got := roundRatioValues(reads, prods, tbs, n)
	for i, r := range got {
		if math.Abs(r-0.8) > 1e-9 {
			t.Errorf("round %d: ratio %v, want 0.8", i+1, r)
		}
	}
	if s := formatRatios(got); s != "0.80 0.80" {
		t.Errorf("formatRatios = %q", s)
	}
}
