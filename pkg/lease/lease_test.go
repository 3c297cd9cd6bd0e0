package lease

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/IBM/sarama"
	"github.com/twmb/franz-go/pkg/kfake"
)

func broker(t *testing.T) (*kfake.Cluster, string) {
	t.Helper()
	c, err := kfake.NewCluster(kfake.NumBrokers(1))
	if err != nil {
		t.Fatalf("start kfake: %v", err)
	}
	t.Cleanup(c.Close)
	return c, c.ListenAddrs()[0]
}

func join(t *testing.T, addr string) *Lease { return joinFor(t, addr, 6*time.Second) }

func joinFor(t *testing.T, addr string, session time.Duration) *Lease {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	l, err := Join(ctx, Options{Brokers: []string{addr}, Group: "tailbox.shop", Topic: "tailbox.lease.shop", SessionTimeout: session, OnError: func(err error) { t.Logf("lease error: %v", err) }})
	if err != nil {
		t.Fatalf("Join: %v", err)
	}
	t.Cleanup(func() { _ = l.Close() })
	return l
}

// held returns the members that hold the lease, once exactly one does and
// that stays so for a moment.
func holder(t *testing.T, ls ...*Lease) *Lease {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	var stable int
	for time.Now().Before(deadline) {
		var hs []*Lease
		for _, l := range ls {
			if l.Held() {
				hs = append(hs, l)
			}
		}
		if len(hs) > 1 {
			t.Fatalf("%d members hold the lease at once", len(hs))
		}
		if len(hs) == 1 {
			if stable++; stable == 10 {
				return hs[0]
			}
		} else {
			stable = 0
		}
		time.Sleep(100 * time.Millisecond)
	}
	t.Fatal("no member held the lease within 30 s")
	return nil
}

func TestOneHolderAndHandOver(t *testing.T) {
	_, addr := broker(t)
	a := join(t, addr)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	lostA, err := a.Acquire(ctx)
	if err != nil {
		t.Fatalf("first member: Acquire: %v", err)
	}
	b := join(t, addr)
	c := join(t, addr)
	h := holder(t, a, b, c)

	var rest []*Lease
	for _, l := range []*Lease{a, b, c} {
		if l != h {
			rest = append(rest, l)
		}
	}
	if h == a {
		select {
		case <-lostA:
			t.Fatal("a holds the lease but its lost channel is closed")
		default:
		}
	}
	lostH, err := h.Acquire(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if err := h.Close(); err != nil {
		t.Fatalf("Close: %v", err)
	}
	select {
	case <-lostH:
	case <-time.After(5 * time.Second):
		t.Fatal("Close did not close the holder's lost channel")
	}
	next := holder(t, rest...)
	if _, err := next.Acquire(ctx); err != nil {
		t.Fatalf("new holder: Acquire: %v", err)
	}
	if _, err := h.Acquire(ctx); err == nil {
		t.Fatal("Acquire on a closed lease succeeded")
	}
}

func TestRefusesMultiPartitionTopic(t *testing.T) {
	c, addr := broker(t)
	if err := c.CreateTopic("tailbox.lease.x", 3, nil); err != nil {
		t.Fatal(err)
	}
	_, err := Join(context.Background(), Options{Brokers: []string{addr}, Group: "g", Topic: "tailbox.lease.x"})
	if err == nil || !strings.Contains(err.Error(), "exactly one partition, it has 3") {
		t.Fatalf("Join on a 3-partition topic: got %v", err)
	}
}

func TestSessionTimeoutOutOfRange(t *testing.T) {
	_, addr := broker(t)
	l, err := Join(context.Background(), Options{Brokers: []string{addr}, Group: "g", Topic: "tailbox.lease.y", SessionTimeout: time.Second})
	if err != nil {
		t.Fatalf("Join: %v", err)
	}
	defer l.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	_, err = l.Acquire(ctx)
	if err == nil || !strings.Contains(err.Error(), "refuses a session timeout of 1s") {
		t.Fatalf("Acquire with a 1 s session timeout: got %v, want the broker's refusal explained", err)
	}
}

// TestMembershipChangesLeaveTheHolder: members that join and leave while
// the holder stays never end its holding (its lost channel stays open and
// no other member ever holds the lease). The session is short (2 s, as
// the rebalance timeout) so that a holder slow to rejoin a rebalance would
// be dropped from the group.
func TestMembershipChangesLeaveTheHolder(t *testing.T) {
	c, err := kfake.NewCluster(kfake.NumBrokers(1), kfake.BrokerConfigs(map[string]string{"group.min.session.timeout.ms": "1000"}))
	if err != nil {
		t.Fatalf("start kfake: %v", err)
	}
	t.Cleanup(c.Close)
	addr := c.ListenAddrs()[0]
	join := func(t *testing.T, addr string) *Lease { return joinFor(t, addr, 2*time.Second) }
	a := join(t, addr)
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	lost, err := a.Acquire(ctx)
	if err != nil {
		t.Fatalf("first member: Acquire: %v", err)
	}
	for i := range 3 {
		b := join(t, addr)
		c := join(t, addr)
		// Let the group settle with the new members in it.
		if h := holder(t, a, b, c); h != a {
			t.Fatalf("round %d: the lease moved to a joining member", i)
		}
		for _, l := range []*Lease{b, c} {
			if err := l.Close(); err != nil {
				t.Fatalf("round %d: Close: %v", i, err)
			}
		}
		if h := holder(t, a); h != a {
			t.Fatalf("round %d: the holder lost the lease", i)
		}
		select {
		case <-lost:
			t.Fatalf("round %d: the holder's lost channel closed while it stayed in the group", i)
		default:
		}
	}
}

// TestLeaderWatchReportsOncePerChange: the lease partition's leader is
// looked up periodically; a lookup that finds no leader is reported once
// when the partition loses it, not at every lookup, and again only after a
// leader was seen in between. Lookups that fail for another reason (no
// broker reachable: the group reports those) change nothing.
func TestLeaderWatchReportsOncePerChange(t *testing.T) {
	const topic = "tailbox.lease.shop"
	noLeader := fmt.Errorf("leader of %s/0: %w", topic, sarama.ErrLeaderNotAvailable)
	unreachable := fmt.Errorf("leader of %s/0: %w", topic, sarama.ErrOutOfBrokers)
	lookups := []struct {
		name string
		err  error
		want bool // reported
	}{
		{"a leader", nil, false},
		{"no leader", noLeader, true},
		{"still no leader", noLeader, false},
		{"no broker reachable", unreachable, false},
		{"still no leader after that", noLeader, false},
		{"a leader again", nil, false},
		{"no leader again", noLeader, true},
		{"still no leader again", noLeader, false},
	}
	var reported []error
	w := leaderWatch{topic: topic, report: func(err error) { reported = append(reported, err) }}
	for _, l := range lookups {
		before := len(reported)
		w.observe(l.err)
		if got := len(reported) > before; got != l.want {
			t.Errorf("%s: reported %v, want %v", l.name, got, l.want)
		}
	}
	for _, err := range reported {
		if !errors.Is(err, sarama.ErrLeaderNotAvailable) || !strings.Contains(err.Error(), "lease topic tailbox.lease.shop partition 0 has no leader") {
			t.Errorf("report %q does not name the topic and partition or wrap the lookup's error", err)
		}
	}
}
