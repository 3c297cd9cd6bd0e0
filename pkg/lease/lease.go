// Package lease elects one active replica among connectors that share a
// name, with nothing but Kafka: every replica joins a consumer group on a
// one-partition lease topic, and the member the group assigns that partition
// to holds the lease. When the holder dies, or stalls past the session
// timeout, the group coordinator evicts it and assigns the partition to
// another member. Nothing is ever produced to the topic: it exists only to
// be assigned.
//
// The group uses the cooperative sticky protocol: a rebalance leaves every
// member's session and retained partitions running, so a replica that joins
// or leaves the group takes nothing from the holder. The partition moves
// only when its holder gives it up (it leaves, or the assignor revokes it,
// which the sticky assignor does not do while the holder stays a member) or
// the coordinator evicts the holder. A revoked partition is released before
// the member rejoins without it, and the assignor gives it to another member
// only in the rebalance after that, so two members never both hold the
// lease by assignment; only an evicted holder that stalled may still
// believe it holds it.
//
// A lease is not a fence: a holder that stalled does not know it lost the
// lease until it runs again. The connector pairs the lease with the
// transactional producer, whose InitProducerId on the new holder fences
// the old one (DESIGN.md, "Beyond one process").
package lease

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/IBM/sarama"

	"github.com/tailbox-cdc/tailbox/internal/retry"
)

// Options configures a lease.
type Options struct {
	// Brokers are the bootstrap brokers, host:port.
	Brokers []string
	// Config carries the connection settings (Version, ClientID, Net.TLS,
	// Net.SASL); Join copies it and sets the group settings. nil means
	// sarama's defaults with Kafka 2.8.
	Config *sarama.Config
	// Group is the consumer group: one per connector name.
	Group string
	// Topic is the lease topic; Join creates it with one partition when it
	// is missing and refuses one with more partitions.
	Topic string
	// SessionTimeout is how long the coordinator waits for a silent member
	// before it reassigns the lease; 10 s when zero.
	SessionTimeout time.Duration
	// OnError receives errors of the group's background session (e.g. a
	// broker that went away), and once per loss the lease partition's
	// lack of a leader (see watchLeader); nil drops them. The lease keeps
	// retrying.
	OnError func(error)
}

// ErrLost is returned by Check when the group coordinator no longer
// counts this member in the generation that gave it the lease: it was
// evicted (it stalled past its session) and another member may hold the
// lease now.
var ErrLost = errors.New("ha lease lost")

// Lease is one replica's membership. Its methods are safe for concurrent use.
type Lease struct {
	opts   Options
	client sarama.Client
	group  sarama.ConsumerGroup

	cancel context.CancelFunc
	done   chan struct{}

	mu     sync.Mutex
	held   bool
	lost   chan struct{}               // closed when the current holding ends
	gained chan struct{}               // closed (and replaced) when the lease is gained
	err    error                       // the error that ended the lease loop
	sess   sarama.ConsumerGroupSession // the session that holds the lease
}

// Join creates the lease topic if needed and joins the group in the
// background. Use Acquire to wait for the lease.
func Join(ctx context.Context, o Options) (*Lease, error) {
	if o.Group == "" || o.Topic == "" {
		return nil, errors.New("join lease: group and topic are required")
	}
	if o.SessionTimeout <= 0 {
		o.SessionTimeout = 10 * time.Second
	}
	sc := sarama.NewConfig()
	if o.Config != nil {
		c := *o.Config
		sc = &c
	} else {
		sc.Version = sarama.V2_8_0_0
	}
	sc.Consumer.Group.Session.Timeout = o.SessionTimeout
	sc.Consumer.Group.Heartbeat.Interval = max(o.SessionTimeout/5, 100*time.Millisecond)
	// A rebalance should not wait for a stalled member longer than its
	// session.
	sc.Consumer.Group.Rebalance.Timeout = o.SessionTimeout
	// Cooperative: a membership change that leaves the holder in the group
	// does not end its session, so the lease stays where it is. All members
	// of a group must offer it: a member that offers only an eager strategy
	// cannot join (INCONSISTENT_GROUP_PROTOCOL, reported through OnError,
	// retried) until the group has no cooperative member left.
	sc.Consumer.Group.Rebalance.GroupStrategies = []sarama.BalanceStrategy{sarama.NewBalanceStrategyCooperativeSticky()}
	sc.Consumer.Return.Errors = true
	// A client with no topic of its own yet must fetch all metadata
	// (sarama refuses an empty topic list otherwise).
	sc.Metadata.Full = true
	// The partition is paused once claimed (see ConsumeClaim); a fetch sent
	// before that should not hold the connection long.
	sc.Consumer.MaxWaitTime = 100 * time.Millisecond
	sc.Consumer.Offsets.Initial = sarama.OffsetNewest
	sc.Consumer.Offsets.AutoCommit.Enable = false
	if err := sc.Validate(); err != nil {
		return nil, fmt.Errorf("join lease: sarama rejected the configuration: %w", err)
	}
	if err := ensureTopic(ctx, o.Brokers, sc, o.Topic); err != nil {
		return nil, fmt.Errorf("join lease %s: %w", o.Topic, err)
	}
	// The group's client is the lease's own, for Check.
	client, err := sarama.NewClient(o.Brokers, sc)
	if err != nil {
		return nil, fmt.Errorf("join lease group %s: %w", o.Group, err)
	}
	group, err := sarama.NewConsumerGroupFromClient(o.Group, client)
	if err != nil {
		_ = client.Close()
		return nil, fmt.Errorf("join lease group %s: %w", o.Group, err)
	}
	lctx, cancel := context.WithCancel(context.Background())
	l := &Lease{opts: o, client: client, group: group, cancel: cancel, done: make(chan struct{}), gained: make(chan struct{})}
	go l.errors()
	go l.loop(lctx)
	go l.watchLeader(lctx)
	return l, nil
}

// leaderPoll is how often a member looks up the lease partition's leader.
const leaderPoll = 5 * time.Second

// watchLeader looks up the lease partition's leader every leaderPoll until
// ctx ends, and reports through OnError when the partition has none: no
// member can then claim the lease, and the replicas would wait without a
// word.
func (l *Lease) watchLeader(ctx context.Context) {
	w := leaderWatch{topic: l.opts.Topic, report: l.report}
	t := time.NewTicker(leaderPoll)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		// A refresh that meets a partition without a leader may fail
		// itself; the partition's state is in the client's metadata.
		_ = l.client.RefreshMetadata(l.opts.Topic)
		_, err := l.client.Leader(l.opts.Topic, 0)
		if ctx.Err() != nil {
			return
		}
		w.observe(err)
	}
}

// leaderWatch decides what a leader lookup of the lease partition reports:
// the loss of the leader once, when it is first seen, and again only after
// a leader was seen in between. A lookup that fails for another reason (no
// broker answers, which the group reports itself) changes nothing.
type leaderWatch struct {
	topic   string
	report  func(error)
	missing bool // the last conclusive lookup found no leader
}

// observe takes the error of one lookup (nil: a leader was found).
func (w *leaderWatch) observe(err error) {
	switch {
	case err == nil:
		w.missing = false
	case errors.Is(err, sarama.ErrLeaderNotAvailable):
		if !w.missing {
			w.missing = true
			w.report(fmt.Errorf("lease topic %s partition 0 has no leader: no replica can take the ha lease until the partition has one again: %w", w.topic, err))
		}
	}
}

// ensureTopic creates the one-partition lease topic when it is missing and
// refuses a topic with more partitions, which would make several members
// active at once.
func ensureTopic(ctx context.Context, brokers []string, sc *sarama.Config, topic string) error {
	type result struct{ err error }
	done := make(chan result, 1)
	go func() {
		admin, err := sarama.NewClusterAdmin(brokers, sc)
		if err != nil {
			done <- result{fmt.Errorf("connect to kafka %v: %w", brokers, err)}
			return
		}
		defer admin.Close()
		err = admin.CreateTopic(topic, &sarama.TopicDetail{NumPartitions: 1, ReplicationFactor: -1}, false)
		var terr *sarama.TopicError
		if err != nil && !errors.Is(err, sarama.ErrTopicAlreadyExists) && !(errors.As(err, &terr) && terr.Err == sarama.ErrTopicAlreadyExists) {
			done <- result{fmt.Errorf("create topic: %w", err)}
			return
		}
		md, err := admin.DescribeTopics([]string{topic})
		if err != nil {
			done <- result{fmt.Errorf("describe topic: %w", err)}
			return
		}
		for _, m := range md {
			if m.Name == topic && len(m.Partitions) != 1 {
				done <- result{fmt.Errorf("the lease topic must have exactly one partition, it has %d (delete it, or set another ha.lease_topic)", len(m.Partitions))}
				return
			}
		}
		done <- result{}
	}()
	select {
	case r := <-done:
		return r.err
	case <-ctx.Done():
		return ctx.Err()
	}
}

// loop keeps the member in the group until Close.
func (l *Lease) loop(ctx context.Context) {
	defer close(l.done)
	h := &handler{l: l}
	b := retry.Backoff{Initial: 100 * time.Millisecond, Max: 5 * time.Second}
	for ctx.Err() == nil {
		err := l.group.Consume(ctx, []string{l.opts.Topic}, h)
		l.release()
		if ctx.Err() != nil {
			return
		}
		if errors.Is(err, sarama.ErrInvalidSessionTimeout) {
			err = fmt.Errorf("lease group %s: the broker refuses a session timeout of %s: it must lie within its group.min.session.timeout.ms and group.max.session.timeout.ms (6 s to 30 min by default): %w", l.opts.Group, l.opts.SessionTimeout, err)
		}
		if errors.Is(err, sarama.ErrClosedConsumerGroup) || errors.Is(err, sarama.ErrInvalidSessionTimeout) {
			l.mu.Lock()
			l.err = err
			l.mu.Unlock()
			return
		}
		if err != nil {
			l.report(fmt.Errorf("lease group %s: %w", l.opts.Group, err))
			if !b.Wait(ctx) {
				return
			}
			continue
		}
		b.Reset()
	}
}

func (l *Lease) errors() {
	for err := range l.group.Errors() {
		l.report(err)
	}
}

func (l *Lease) report(err error) {
	if l.opts.OnError != nil {
		l.opts.OnError(err)
	}
}

// gain marks the lease held by session s.
func (l *Lease) gain(s sarama.ConsumerGroupSession) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.held {
		return
	}
	l.held, l.sess = true, s
	l.lost = make(chan struct{})
	close(l.gained)
	l.gained = make(chan struct{})
}

// release marks the lease not held.
func (l *Lease) release() {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.held {
		l.held, l.sess = false, nil
		close(l.lost)
	}
}

// Check asks the group coordinator whether this member still holds the
// lease, for a holder about to do what only the holder may (open the
// transactional producer, whose InitProducerId fences any other): a
// member that stalled past its session believes it holds the lease until
// its next heartbeat is answered, while another member may hold it
// already. It returns nil when the coordinator counts the member in the
// generation that gave it the lease; ErrLost when the lease is not held,
// or the coordinator no longer knows the member or that generation (the
// lease is then released: the channel of Acquire closes); another error
// when the coordinator cannot be asked; ctx's error when ctx ends first.
func (l *Lease) Check(ctx context.Context) error {
	l.mu.Lock()
	s := l.sess
	l.mu.Unlock()
	if s == nil {
		return fmt.Errorf("check lease of group %s: %w", l.opts.Group, ErrLost)
	}
	type result struct {
		resp *sarama.HeartbeatResponse
		err  error
	}
	done := make(chan result, 1)
	go func() {
		coord, err := l.client.Coordinator(l.opts.Group)
		if err != nil {
			done <- result{err: fmt.Errorf("find the group coordinator: %w", err)}
			return
		}
		resp, err := coord.Heartbeat(&sarama.HeartbeatRequest{GroupId: l.opts.Group, MemberId: s.MemberID(), GenerationId: s.GenerationID()})
		done <- result{resp, err}
	}()
	var r result
	select {
	case <-ctx.Done():
		return fmt.Errorf("check lease of group %s: %w", l.opts.Group, ctx.Err())
	case r = <-done:
	}
	if r.err != nil {
		return fmt.Errorf("check lease of group %s: %w", l.opts.Group, r.err)
	}
	switch {
	case errors.Is(r.resp.Err, sarama.ErrNoError), errors.Is(r.resp.Err, sarama.ErrRebalanceInProgress):
		// A member of the group, and a rebalance does not take the
		// lease from its holder (see the package documentation).
		return nil
	case errors.Is(r.resp.Err, sarama.ErrUnknownMemberId), errors.Is(r.resp.Err, sarama.ErrIllegalGeneration), errors.Is(r.resp.Err, sarama.ErrFencedInstancedId):
		l.mu.Lock()
		if l.held && l.sess == s {
			l.held, l.sess = false, nil
			close(l.lost)
		}
		l.mu.Unlock()
		return fmt.Errorf("check lease of group %s: the coordinator answered %w: %w", l.opts.Group, r.resp.Err, ErrLost)
	default:
		return fmt.Errorf("check lease of group %s: %w", l.opts.Group, r.resp.Err)
	}
}

// Acquire blocks until this member holds the lease and returns a channel
// that is closed when it loses it (rebalance, eviction after a stall,
// Close). It returns ctx's error when ctx ends first.
func (l *Lease) Acquire(ctx context.Context) (lost <-chan struct{}, err error) {
	for {
		l.mu.Lock()
		if l.held {
			lost := l.lost
			l.mu.Unlock()
			return lost, nil
		}
		if l.err != nil {
			err := l.err
			l.mu.Unlock()
			return nil, err
		}
		gained := l.gained
		l.mu.Unlock()
		select {
		case <-ctx.Done():
			return nil, ctx.Err()
		case <-gained:
		case <-l.done:
			l.mu.Lock()
			if l.err == nil {
				l.err = errors.New("lease closed")
			}
			l.mu.Unlock()
		}
	}
}

// Held reports whether this member holds the lease now.
func (l *Lease) Held() bool {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.held
}

// Close leaves the group, which hands the lease to another member at once,
// without waiting for the session timeout.
func (l *Lease) Close() error {
	l.cancel()
	<-l.done
	l.release()
	err := l.group.Close()
	if cerr := l.client.Close(); err == nil && !errors.Is(cerr, sarama.ErrClosedClient) {
		err = cerr
	}
	return err
}

// handler holds the lease while the group assigns it the partition: from
// the start of the partition's ConsumeClaim to its end. Under the
// cooperative protocol a session outlives rebalances, and a claim starts
// when the partition is added to the member and ends when it is revoked or
// the session ends.
type handler struct{ l *Lease }

func (h *handler) Setup(sarama.ConsumerGroupSession) error { return nil }

func (h *handler) Cleanup(sarama.ConsumerGroupSession) error {
	h.l.release()
	return nil
}

// ConsumeClaim holds the lease until the partition is revoked (its Messages
// channel closes) or the session ends: nothing is produced to the lease
// topic.
func (h *handler) ConsumeClaim(s sarama.ConsumerGroupSession, c sarama.ConsumerGroupClaim) error {
	// Nothing is read: pausing the partition stops its fetches, which would
	// otherwise long-poll the broker on the connection that carries the
	// heartbeats and the rejoin of a rebalance, and delay them past the
	// rebalance timeout (the coordinator then drops the member and moves
	// the lease).
	h.l.group.Pause(map[string][]int32{c.Topic(): {c.Partition()}})
	h.l.gain(s)
	defer h.l.release()
	for {
		select {
		case <-s.Context().Done():
			return nil
		case _, ok := <-c.Messages():
			if !ok {
				return nil
			}
		}
	}
}
