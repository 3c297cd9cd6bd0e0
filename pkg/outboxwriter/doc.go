// Package outboxwriter writes domain events to a transactional outbox
// table, in the same database transaction as the business change they
// describe; tailbox then publishes every committed row to Kafka, and only
// those. It is for the services that produce events: it needs nothing but
// database/sql and the standard library (no tailbox runtime, no Kafka or
// MySQL client of its own), and works with any MySQL or MariaDB driver.
//
// A Writer knows the table and its column names (Columns, with the defaults
// of tailbox's outbox.fields and of config/outbox.sql); Write inserts one
// Event through the caller's *sql.Tx:
//
//	var events = &outboxwriter.Writer{Table: "outbox"}
//
//	func (s *MemberService) Withdraw(ctx context.Context, memberID, reason string) error {
//		tx, err := s.db.BeginTx(ctx, nil)
//		if err != nil {
//			return err
//		}
//		defer tx.Rollback() // no-op after Commit
//		if _, err := tx.ExecContext(ctx, "UPDATE members SET status = 'withdrawn' WHERE id = ?", memberID); err != nil {
//			return fmt.Errorf("withdraw member %s: %w", memberID, err)
//		}
//		if _, err := events.Write(ctx, tx, outboxwriter.Event{
//			AggregateType: "member", // topic outbox.event.member
//			AggregateID:   memberID, // Kafka key: one member's events stay in order
//			Type:          "MemberWithdrawn",
//			Payload:       map[string]string{"memberId": memberID, "reason": reason},
//		}); err != nil {
//			return err
//		}
//		return tx.Commit() // the member change and its event, or neither
//	}
//
// The event id is a UUIDv7 (NewID) unless the Event sets one: ids sort by
// creation time, which keeps the table's primary key index append-mostly.
// tailbox sends it as the record header "id" and the envelope's "id"; a
// consumer de-duplicates by it (see package inbox).
//
// The table: CreateTableSQL returns its CREATE TABLE statement for MySQL
// 8.0+ and MariaDB 10.5+ (the columns of config/outbox.sql plus nullable
// traceparent and tracestate columns), e.g. for a service's migrations.
//
// Trace context: set Writer.TraceContext to a function returning the W3C
// traceparent and tracestate of a context.Context; Write stores them, and
// tailbox, configured with outbox.tracing {traceparent: traceparent,
// tracestate: tracestate}, sends them as record headers, so a consumer's
// span continues the producer's trace. With OpenTelemetry
// (go.opentelemetry.io/otel/propagation):
//
//	events.TraceContext = func(ctx context.Context) (string, string) {
//		c := propagation.MapCarrier{}
//		propagation.TraceContext{}.Inject(ctx, c)
//		return c["traceparent"], c["tracestate"]
//	}
package outboxwriter
