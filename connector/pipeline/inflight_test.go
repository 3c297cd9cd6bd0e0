package pipeline

import (
	"context"
	"errors"
	"testing"
	"time"
)

func TestInFlightBoundsCountAndBytes(t *testing.T) {
	tests := []struct {
		name     string
		maxCount int
		maxBytes int64
		held     []int // sizes acquired first
		next     int   // size that must wait
	}{
		{name: "the count bound holds a record back", maxCount: 2, maxBytes: 1000, held: []int{1, 1}, next: 1},
		{name: "the byte bound holds a record back", maxCount: 100, maxBytes: 1000, held: []int{600}, next: 500},
		{name: "a record over the byte bound waits until nothing is in flight", maxCount: 100, maxBytes: 1000, held: []int{1}, next: 5000},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f := newInFlight(tt.maxCount, tt.maxBytes)
			ctx := context.Background()
			for _, s := range tt.held {
				if err := f.acquire(ctx, s); err != nil {
					t.Fatalf("acquire %d: %v", s, err)
				}
			}
			got := make(chan error, 1)
			go func() { got <- f.acquire(ctx, tt.next) }()
			select {
			case err := <-got:
				t.Fatalf("acquire %d returned (%v) while %v are in flight", tt.next, err, tt.held)
			case <-time.After(50 * time.Millisecond):
			}
			for _, s := range tt.held {
				f.release(1, int64(s))
			}
			select {
			case err := <-got:
				if err != nil {
					t.Fatalf("acquire %d after release: %v", tt.next, err)
				}
			case <-time.After(10 * time.Second):
				t.Fatalf("acquire %d still blocked after everything was released", tt.next)
			}
			if n, b := f.load(); n != 1 || b != int64(tt.next) {
				t.Fatalf("load = %d records, %d bytes; want 1, %d", n, b, tt.next)
			}
		})
	}
}

func TestInFlightAcquireStopsWithItsContext(t *testing.T) {
	f := newInFlight(1, 100)
	if err := f.acquire(context.Background(), 10); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	got := make(chan error, 1)
	go func() { got <- f.acquire(ctx, 10) }()
	cancel()
	select {
	case err := <-got:
		if !errors.Is(err, context.Canceled) {
			t.Fatalf("acquire after cancel = %v, want context.Canceled", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("acquire did not return after its context was cancelled")
	}
	if n, b := f.load(); n != 1 || b != 10 {
		t.Fatalf("a cancelled acquire took room: load = %d, %d", n, b)
	}
}

// TestInFlightWakesTheSenderWithSlack checks that a full semaphore wakes
// its waiting acquirer only once maxCount/16 records have been released,
// not at every release (a goroutine switch per record in a backlog).
func TestInFlightWakesTheSenderWithSlack(t *testing.T) {
	f := newInFlight(32, 1<<20)
	ctx := context.Background()
	for range 32 {
		if err := f.acquire(ctx, 10); err != nil {
			t.Fatal(err)
		}
	}
	got := make(chan error, 1)
	go func() { got <- f.acquire(ctx, 10) }()
	waitWaiting(t, f)
	f.release(1, 10) // 31 in flight: room for one, but no wake yet
	f.mu.Lock()
	woken := !f.waiting
	f.mu.Unlock()
	if woken {
		t.Fatal("the acquirer was woken after a single release of 32")
	}
	f.release(1, 10) // 30 = 32 - 32/16: wake
	select {
	case err := <-got:
		if err != nil {
			t.Fatal(err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("the acquirer was not woken once 2 of 32 records were released")
	}
	if n, _ := f.load(); n != 31 {
		t.Fatalf("load = %d records, want 31", n)
	}
}

// waitWaiting waits until an acquirer of f waits.
func waitWaiting(t *testing.T, f *inFlight) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		f.mu.Lock()
		w := f.waiting
		f.mu.Unlock()
		if w {
			return
		}
		if time.Now().After(deadline) {
			t.Fatal("the acquirer did not wait")
		}
		time.Sleep(time.Millisecond)
	}
}
