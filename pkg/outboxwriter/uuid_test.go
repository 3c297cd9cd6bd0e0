package outboxwriter

import (
	"regexp"
	"strconv"
	"sync"
	"testing"
	"time"
)

var uuidV7Text = regexp.MustCompile(`^[0-9a-f]{8}-[0-9a-f]{4}-7[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$`)

// idMillis returns the Unix milliseconds in an id's first 48 bits.
func idMillis(t *testing.T, id string) int64 {
	t.Helper()
	ms, err := strconv.ParseInt(id[0:8]+id[9:13], 16, 64)
	if err != nil {
		t.Fatalf("timestamp of %s: %v", id, err)
	}
	return ms
}

func TestNewIDIsAUUIDv7OfTheCurrentMillisecond(t *testing.T) {
	before := time.Now().UnixMilli()
	id := NewID()
	after := time.Now().UnixMilli()
	if !uuidV7Text.MatchString(id) {
		t.Fatalf("NewID() = %q, not a lowercase UUIDv7 with the RFC 9562 variant", id)
	}
	if ms := idMillis(t, id); ms < before || ms > after {
		t.Errorf("NewID() = %s holds %d ms, want between %d and %d", id, ms, before, after)
	}
}

func TestIDsIncreaseStrictly(t *testing.T) {
	base := time.Date(2025, 3, 1, 12, 0, 0, 0, time.UTC)
	tests := []struct {
		name  string
		clock func(i int) time.Time
	}{
		{"within one millisecond, past the 12-bit counter", func(int) time.Time { return base }},
		{"across milliseconds", func(i int) time.Time { return base.Add(time.Duration(i/3) * time.Millisecond) }},
		{"while the clock steps back", func(i int) time.Time { return base.Add(-time.Duration(i) * time.Millisecond) }},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			i := 0
			g := &idGenerator{now: func() time.Time { return tt.clock(i) }}
			prev := ""
			for ; i < 10000; i++ {
				id := g.next()
				if !uuidV7Text.MatchString(id) {
					t.Fatalf("id %d = %q, not a UUIDv7", i, id)
				}
				if id <= prev {
					t.Fatalf("id %d = %s does not sort after %s", i, id, prev)
				}
				prev = id
			}
			first := (&idGenerator{now: func() time.Time { return tt.clock(0) }}).next()
			if got, want := idMillis(t, first), tt.clock(0).UnixMilli(); got != want {
				t.Errorf("first id holds %d ms, want the clock's %d", got, want)
			}
		})
	}
}

func TestIDsOfOneMillisecondBorrowTheNextOnlyWhenTheCounterRunsOut(t *testing.T) {
	base := time.Date(2025, 3, 1, 12, 0, 0, 0, time.UTC)
	g := &idGenerator{now: func() time.Time { return base }}
	// A millisecond's counter starts below 2048, so 2049 ids always fit.
	for i := range 2049 {
		if ms := idMillis(t, g.next()); ms != base.UnixMilli() {
			t.Fatalf("id %d holds %d ms, want %d", i, ms, base.UnixMilli())
		}
	}
	for range 4096 {
		g.next()
	}
	if ms := idMillis(t, g.next()); ms <= base.UnixMilli() {
		t.Errorf("after 6146 ids in one millisecond the timestamp is still %d", ms)
	}
}

func TestNewIDIsUniqueAcrossGoroutines(t *testing.T) {
	const goroutines, each = 4, 2000
	ids := make([][]string, goroutines)
	var wg sync.WaitGroup
	for g := range goroutines {
		wg.Go(func() {
			for range each {
				ids[g] = append(ids[g], NewID())
			}
		})
	}
	wg.Wait()
	seen := map[string]bool{}
	for g, list := range ids {
		for i, id := range list {
			if seen[id] {
				t.Fatalf("goroutine %d id %d: %s made twice", g, i, id)
			}
			seen[id] = true
			if i > 0 && id <= list[i-1] {
				t.Fatalf("goroutine %d: id %s does not sort after its previous %s", g, id, list[i-1])
			}
		}
	}
}
