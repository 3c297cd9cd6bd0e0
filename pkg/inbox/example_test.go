package inbox_test

import (
	"context"
	"database/sql"
	"errors"
	"log"

	"github.com/IBM/sarama"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/tailbox-cdc/tailbox/pkg/inbox"
)

// hidePosts is the board service's handler: its changes go through tx.
func hidePosts(ctx context.Context, tx *sql.Tx) error {
	_, err := tx.ExecContext(ctx, "UPDATE posts SET hidden = TRUE WHERE author_id = ?", "42")
	return err
}

// A franz-go consumer: offsets are committed only for records whose
// Handle returned nil (auto-commit off), so a record that failed, or was
// being handled when the process died, is consumed again — and skipped if
// its transaction had committed.
func Example_franzGo() {
	ctx := context.Background()
	var db *sql.DB // the board service's database
	handled := &inbox.Table{Name: "board_inbox"}

	cl, err := kgo.NewClient(
		kgo.SeedBrokers("127.0.0.1:9092"),
		kgo.ConsumerGroup("board"),
		kgo.ConsumeTopics("outbox.event.member"),
		kgo.DisableAutoCommit(),
	)
	if err != nil {
		log.Fatal(err)
	}
	defer cl.Close()
	for {
		fetches := cl.PollFetches(ctx)
		if fetches.IsClientClosed() || ctx.Err() != nil {
			return
		}
		for _, r := range fetches.Records() {
			msg := inbox.Message{Key: r.Key, Value: r.Value}
			for _, h := range r.Headers {
				msg.Headers = append(msg.Headers, inbox.Header{Key: h.Key, Value: h.Value})
			}
			for {
				_, err := handled.Handle(ctx, db, msg, hidePosts)
				if err == nil || errors.Is(err, inbox.ErrNoEventID) || errors.Is(err, inbox.ErrInvalidEventID) {
					break // done, or never handleable: dead-letter it in a real service
				}
				log.Printf("event at %s/%d@%d: %v; retrying", r.Topic, r.Partition, r.Offset, err)
				// a real service backs off here, and stops on ctx.Done()
			}
			if err := cl.CommitRecords(ctx, r); err != nil {
				log.Printf("commit offset: %v", err) // the record comes back later: a no-op then
			}
		}
	}
}

// boardHandler is a sarama consumer group handler.
type boardHandler struct {
	db      *sql.DB
	handled *inbox.Table
}

func (boardHandler) Setup(sarama.ConsumerGroupSession) error   { return nil }
func (boardHandler) Cleanup(sarama.ConsumerGroupSession) error { return nil }

// ConsumeClaim marks a message (its offset is then committed by sarama's
// auto-commit) only after Handle returned nil; on an error it ends the
// session, and the group resumes from the last marked offset.
func (h boardHandler) ConsumeClaim(sess sarama.ConsumerGroupSession, claim sarama.ConsumerGroupClaim) error {
	for m := range claim.Messages() {
		msg := inbox.Message{Key: m.Key, Value: m.Value}
		for _, hd := range m.Headers {
			msg.Headers = append(msg.Headers, inbox.Header{Key: string(hd.Key), Value: hd.Value})
		}
		if _, err := h.handled.Handle(sess.Context(), h.db, msg, hidePosts); err != nil {
			return err
		}
		sess.MarkMessage(m, "")
	}
	return nil
}

// A sarama consumer group.
func Example_sarama() {
	ctx := context.Background()
	var db *sql.DB // the board service's database
	cfg := sarama.NewConfig()
	cfg.Consumer.Offsets.Initial = sarama.OffsetOldest
	group, err := sarama.NewConsumerGroup([]string{"127.0.0.1:9092"}, "board", cfg)
	if err != nil {
		log.Fatal(err)
	}
	defer group.Close()
	h := boardHandler{db: db, handled: &inbox.Table{Name: "board_inbox"}}
	for ctx.Err() == nil {
		if err := group.Consume(ctx, []string{"outbox.event.member"}, h); err != nil {
			log.Printf("consume: %v", err) // a handler error: the session restarts from the marked offsets
		}
	}
}
