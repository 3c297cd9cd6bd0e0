package e2e

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/tailbox-cdc/tailbox/pkg/inbox"
	"github.com/tailbox-cdc/tailbox/pkg/outboxwriter"
)

// boardConsumer is a board service: it consumes the member topic with
// franz-go and hides a withdrawn member's posts through the inbox, in its
// own database.
type boardConsumer struct {
	t       *testing.T
	db      *sql.DB
	inbox   *inbox.Table
	cl      *kgo.Client
	records int             // records consumed
	handled map[string]int  // Handle returned true, per event id
	noops   int             // Handle returned false: a redelivery
	seen    map[string]bool // event ids consumed
}

func newBoardConsumer(t *testing.T, e *env, topic string) *boardConsumer {
	t.Helper()
	name := e.db.CreateDatabase(t, "board")
	b := &boardConsumer{t: t, db: e.db.DB(t, name), inbox: &inbox.Table{}, handled: map[string]int{}, seen: map[string]bool{}}
	ddl, err := b.inbox.CreateTableSQL()
	if err != nil {
		t.Fatal(err)
	}
	for _, s := range []string{ddl, "CREATE TABLE hidden_posts (member_id VARCHAR(36) NOT NULL, event_id VARCHAR(36) NOT NULL)"} {
		if _, err := b.db.Exec(s); err != nil {
			t.Fatalf("%s: %v", s, err)
		}
	}
	b.cl = e.kafka.Client(t, kgo.ConsumeTopics(topic), kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()), kgo.FetchMaxWait(100*time.Millisecond))
	return b
}

// consumeUntil handles records until done says so or the timeout passes.
func (b *boardConsumer) consumeUntil(timeout time.Duration, done func() bool) {
	b.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	for !done() {
		fetches := b.cl.PollFetches(ctx)
		if ctx.Err() != nil {
			b.t.Fatalf("after %v: %d records, %d events handled, %d no-ops", timeout, b.records, len(b.handled), b.noops)
		}
		if errs := fetches.Errors(); len(errs) > 0 && !errors.Is(errs[0].Err, context.DeadlineExceeded) {
			b.t.Logf("fetch: %v", errs[0].Err) // e.g. the topic does not exist yet
		}
		for _, r := range fetches.Records() {
			b.handle(ctx, r)
		}
	}
}

func (b *boardConsumer) handle(ctx context.Context, r *kgo.Record) {
	b.t.Helper()
	msg := inbox.Message{Key: r.Key, Value: r.Value}
	for _, h := range r.Headers {
		msg.Headers = append(msg.Headers, inbox.Header{Key: h.Key, Value: h.Value})
	}
	id, err := b.inbox.EventID(msg)
	if err != nil {
		b.t.Fatalf("record %d@%d: %v", r.Partition, r.Offset, err)
	}
	ran, err := b.inbox.Handle(ctx, b.db, msg, func(ctx context.Context, tx *sql.Tx) error {
		var ev struct {
			Type    string `json:"type"`
			Payload struct {
				MemberID string `json:"memberId"`
			} `json:"payload"`
		}
		if err := json.Unmarshal(r.Value, &ev); err != nil {
			return fmt.Errorf("decode: %w", err)
		}
		if ev.Type != "MemberWithdrawn" {
			return fmt.Errorf("unexpected event type %q", ev.Type)
		}
		_, err := tx.ExecContext(ctx, "INSERT INTO hidden_posts (member_id, event_id) VALUES (?, ?)", ev.Payload.MemberID, id)
		return err
	})
	if err != nil {
		b.t.Fatalf("record %d@%d: %v", r.Partition, r.Offset, err)
	}
	b.records++
	b.seen[id] = true
	if ran {
		b.handled[id]++
	} else {
		b.noops++
	}
}

// TestWriterTailboxInbox is the whole pattern: a member service writes
// member changes and their events with outboxwriter in one transaction
// each, into the table outboxwriter's DDL creates; the real tailbox relays
// them while it is killed with -9 twice mid-stream; a board service
// consumes with franz-go and applies each event through the inbox. Every
// committed event is applied exactly once, the rolled-back ones never, and
// a full replay (run --from the start) is a no-op in the board's database.
func TestWriterTailboxInbox(t *testing.T) {
	e := newEnv(t, "envelope")
	w := &outboxwriter.Writer{}
	ddl, err := w.CreateTableSQL()
	if err != nil {
		t.Fatal(err)
	}
	members := e.db.DB(t, e.dbn)
	for _, s := range []string{"DROP TABLE outbox", ddl} {
		if _, err := members.Exec(s); err != nil {
			t.Fatalf("%s: %v", s, err)
		}
	}
	from := e.binlogEnd()
	board := newBoardConsumer(t, e, "outbox.event.member")

	// withdraw is the member service: the member row and its event commit
	// together, or neither does.
	withdraw := func(ctx context.Context, memberID string, commit bool) string {
		t.Helper()
		tx, err := members.BeginTx(ctx, nil)
		if err != nil {
			t.Fatal(err)
		}
		defer tx.Rollback()
		if _, err := tx.ExecContext(ctx, "INSERT INTO members (id, name, status) VALUES (?, ?, 'withdrawn')", memberID, "member "+memberID); err != nil {
			t.Fatal(err)
		}
		id, err := w.Write(ctx, tx, outboxwriter.Event{
			AggregateType: "member", AggregateID: memberID, Type: "MemberWithdrawn",
			Payload: map[string]string{"memberId": memberID},
		})
		if err != nil {
			t.Fatal(err)
		}
		if commit {
			if err := tx.Commit(); err != nil {
				t.Fatal(err)
			}
		}
		return id
	}

	ctx := context.Background()
	committed := map[string]string{} // event id -> member id: the outside record of what must arrive
	p := e.start()
	const batches, perBatch = 3, 100
	for batch := range batches {
		for i := range perBatch {
			m := fmt.Sprintf("m-%d-%d", batch, i)
			if i%10 == 9 {
				withdraw(ctx, m+"-rolled-back", false)
				continue
			}
			committed[withdraw(ctx, m, true)] = m
		}
		if batch < batches-1 {
			// kill -9 right after the batch's commits, usually before tailbox
			// has published and checkpointed all of it: a restart sends the
			// uncheckpointed events again.
			p.kill9(t)
			p = e.start()
		}
	}
	board.consumeUntil(60*time.Second, func() bool { return len(board.seen) >= len(committed) })
	firstRecords := board.records

	// A full replay: every event is delivered again and must change nothing.
	if code := p.stop(t); code != 0 {
		t.Fatalf("tailbox exited %d", code)
	}
	p = e.start("--from", from)
	board.consumeUntil(60*time.Second, func() bool { return board.records >= firstRecords+len(committed) })
	if code := p.stop(t); code != 0 {
		t.Fatalf("tailbox exited %d", code)
	}

	for id, m := range committed {
		if board.handled[id] != 1 {
			t.Errorf("event %s (member %s) applied %d times, want once", id, m, board.handled[id])
		}
	}
	if len(board.seen) != len(committed) {
		t.Errorf("%d distinct events consumed, %d committed", len(board.seen), len(committed))
	}
	var rows, distinct int
	if err := board.db.QueryRow("SELECT COUNT(*), COUNT(DISTINCT event_id) FROM hidden_posts").Scan(&rows, &distinct); err != nil {
		t.Fatal(err)
	}
	if rows != len(committed) || distinct != len(committed) {
		t.Errorf("the board hid posts %d times for %d events, want once for each of %d", rows, distinct, len(committed))
	}
	var rolledBack int
	if err := board.db.QueryRow("SELECT COUNT(*) FROM hidden_posts WHERE member_id LIKE '%rolled-back'").Scan(&rolledBack); err != nil || rolledBack != 0 {
		t.Errorf("posts of %d members whose withdrawal rolled back were hidden (%v)", rolledBack, err)
	}
	if board.noops != board.records-len(committed) || board.noops < len(committed) {
		t.Errorf("%d records, %d no-ops; want every record after each event's first to be a no-op, and at least the replay's %d", board.records, board.noops, len(committed))
	}
	t.Logf("%d events committed; %d records consumed before the replay (%d redelivered by the kills), %d in all, %d no-ops",
		len(committed), firstRecords, firstRecords-len(committed), board.records, board.noops)
}
