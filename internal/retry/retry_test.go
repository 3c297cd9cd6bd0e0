package retry

import (
	"context"
	"testing"
	"time"
)

func TestBackoffDoublesUpToMax(t *testing.T) {
	b := Backoff{Initial: time.Second, Max: 5 * time.Second}
	want := []time.Duration{time.Second, 2 * time.Second, 4 * time.Second, 5 * time.Second, 5 * time.Second}
	for i, w := range want {
		if got := b.Next(); got != w {
			t.Fatalf("wait %d = %s, want %s", i+1, got, w)
		}
		if b.Attempt() != i+1 {
			t.Fatalf("attempt after wait %d = %d", i+1, b.Attempt())
		}
	}
	b.Reset()
	if got := b.Next(); got != time.Second || b.Attempt() != 1 {
		t.Errorf("after Reset: wait %s attempt %d, want 1s and 1", got, b.Attempt())
	}
}

func TestBackoffZeroValueDefaults(t *testing.T) {
	var b Backoff
	if got := b.Next(); got != 500*time.Millisecond {
		t.Errorf("first wait = %s, want 500ms", got)
	}
	for range 10 {
		b.Next()
	}
	if got := b.Next(); got != 30*time.Second {
		t.Errorf("wait after many = %s, want 30s", got)
	}
}

func TestBackoffStartsOverAfterAHealthyAttempt(t *testing.T) {
	b := Backoff{Initial: time.Second, Max: time.Minute, ResetAfter: time.Hour}
	b.Next()
	b.Next() // the next would be 4s
	b.Started()
	if got := b.Next(); got != 4*time.Second {
		t.Errorf("after a short attempt: %s, want 4s (the series goes on)", got)
	}
	b.Started()
	b.began = b.began.Add(-2 * time.Hour) // the attempt ran two hours
	if got := b.Next(); got != time.Second {
		t.Errorf("after a healthy attempt: %s, want 1s (a new series)", got)
	}
	b.Next()
	b.Started()
	b.began = b.began.Add(-2 * time.Hour)
	b.Ended() // a healthy attempt that ended without a failure
	if got := b.Next(); got != time.Second {
		t.Errorf("after a healthy attempt ended by Ended: %s, want 1s", got)
	}
}

func TestSleepEndsWithContext(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if Sleep(ctx, time.Hour) {
		t.Error("Sleep with a done context reported a full wait")
	}
	if !Sleep(context.Background(), time.Millisecond) {
		t.Error("Sleep without cancellation reported an interrupted wait")
	}
}
