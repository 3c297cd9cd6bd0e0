// Package inbox lets a Kafka consumer handle each event at most once, in
// its own database transaction: an inbox table keyed by event id records
// every event handled, in the same transaction as the handler's changes, so
// an event delivered again — tailbox and Kafka deliver at least once — finds
// its id there and is skipped. Together with at-least-once delivery this is
// "effectively once": every event's changes are applied exactly once.
//
// It needs nothing but database/sql (MySQL or MariaDB, any driver) and
// knows no Kafka client: a Message is the record's key, value and headers,
// which every client has. The event id comes from the "id" header that
// tailbox sets in every format (or, with IDFromValue, from the envelope's
// "id" field).
//
// A board service hiding a withdrawn member's posts:
//
//	var handled = &inbox.Table{Name: "inbox"}
//	// once, at start-up (or in the service's migrations):
//	//   ddl, _ := handled.CreateTableSQL(); db.ExecContext(ctx, ddl)
//
//	func (s *Board) OnMemberEvent(ctx context.Context, msg inbox.Message) error {
//		_, err := handled.Handle(ctx, s.db, msg, func(ctx context.Context, tx *sql.Tx) error {
//			var ev struct {
//				Type    string `json:"type"`
//				Payload struct {
//					MemberID string `json:"memberId"`
//				} `json:"payload"`
//			}
//			if err := json.Unmarshal(msg.Value, &ev); err != nil {
//				return fmt.Errorf("decode event: %w", err)
//			}
//			if ev.Type != "MemberWithdrawn" {
//				return nil // recorded as handled all the same
//			}
//			_, err := tx.ExecContext(ctx, "UPDATE posts SET hidden = TRUE WHERE author_id = ?", ev.Payload.MemberID)
//			return err
//		})
//		return err // nil: commit the record's offset; else retry it later
//	}
//
// The examples show the loop around it for franz-go and sarama: build the
// Message from the record, call Handle, and commit the record's offset only
// after Handle returned nil.
//
// Handle's guarantees hold for the database work done through its
// transaction. Side effects outside it (an e-mail, an HTTP call) can still
// happen twice — when the commit fails after they were made — unless they
// are idempotent themselves.
//
// Retention: ids are kept until Cleanup deletes them; keep them longer
// than the longest redelivery window you want to absorb (Cleanup's doc
// says how long that is).
package inbox
