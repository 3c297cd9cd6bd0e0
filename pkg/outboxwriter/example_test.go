package outboxwriter_test

import (
	"context"
	"database/sql"
	"fmt"

	"github.com/tailbox-cdc/tailbox/pkg/outboxwriter"
)

// A service writes its business change and the event in one transaction.
func ExampleWriter_Write() {
	var db *sql.DB // sql.Open("mysql", dsn) with the driver of your choice
	events := &outboxwriter.Writer{Table: "outbox"}

	withdraw := func(ctx context.Context, memberID string) error {
		tx, err := db.BeginTx(ctx, nil)
		if err != nil {
			return fmt.Errorf("begin: %w", err)
		}
		defer tx.Rollback() // no-op after Commit
		if _, err := tx.ExecContext(ctx, "UPDATE members SET status = 'withdrawn' WHERE id = ?", memberID); err != nil {
			return fmt.Errorf("withdraw member %s: %w", memberID, err)
		}
		if _, err := events.Write(ctx, tx, outboxwriter.Event{
			AggregateType: "member",
			AggregateID:   memberID,
			Type:          "MemberWithdrawn",
			Payload:       map[string]string{"memberId": memberID},
		}); err != nil {
			return err
		}
		return tx.Commit()
	}
	_ = withdraw
}

// The table for a service's migrations.
func ExampleWriter_CreateTableSQL() {
	w := &outboxwriter.Writer{Table: "member_outbox"}
	ddl, err := w.CreateTableSQL()
	if err != nil {
		panic(err)
	}
	fmt.Println(ddl)
	// Output:
	// CREATE TABLE IF NOT EXISTS `member_outbox` (
	//   `id`            CHAR(36)     NOT NULL PRIMARY KEY,
	//   `aggregatetype` VARCHAR(255) NOT NULL,
	//   `aggregateid`   VARCHAR(255) NOT NULL,
	//   `type`          VARCHAR(255) NOT NULL,
	//   `payload`       JSON,
	//   `created_at`    TIMESTAMP(6) NOT NULL DEFAULT CURRENT_TIMESTAMP(6),
	//   `traceparent`   VARCHAR(55)  NULL,
	//   `tracestate`    VARCHAR(512) NULL
	// ) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4
}
