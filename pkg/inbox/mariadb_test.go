package inbox_test

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/tailbox-cdc/tailbox/internal/testenv"
	"github.com/tailbox-cdc/tailbox/pkg/inbox"
)

// board is a consumer's database: the inbox table from CreateTableSQL and
// an effects table the handlers write to.
type board struct {
	t     *testing.T
	db    *sql.DB
	name  string
	inbox *inbox.Table
}

func newBoard(t *testing.T) *board {
	t.Helper()
	srv := testenv.MySQL(t)
	b := &board{t: t, name: srv.CreateDatabase(t, "inbox"), inbox: &inbox.Table{Name: "board_inbox"}}
	b.db = srv.DB(t, b.name)
	ddl, err := b.inbox.CreateTableSQL()
	if err != nil {
		t.Fatal(err)
	}
	for _, s := range []string{ddl, "CREATE TABLE effects (id INT AUTO_INCREMENT PRIMARY KEY, event_id VARCHAR(255) NOT NULL, note VARCHAR(50))"} {
		if _, err := b.db.Exec(s); err != nil {
			t.Fatalf("%s: %v", s, err)
		}
	}
	return b
}

func msg(id string) inbox.Message {
	return inbox.Message{Key: []byte("42"), Value: []byte(`{}`), Headers: []inbox.Header{{Key: "id", Value: []byte(id)}}}
}

// effect is a handler that records note for id in the handler's transaction.
func effect(id, note string) func(context.Context, *sql.Tx) error {
	return func(ctx context.Context, tx *sql.Tx) error {
		_, err := tx.ExecContext(ctx, "INSERT INTO effects (event_id, note) VALUES (?, ?)", id, note)
		return err
	}
}

func (b *board) count(query string, args ...any) int {
	b.t.Helper()
	var n int
	if err := b.db.QueryRow(query, args...).Scan(&n); err != nil {
		b.t.Fatalf("%s: %v", query, err)
	}
	return n
}

func (b *board) effects(id string) int {
	return b.count("SELECT COUNT(*) FROM effects WHERE event_id = ?", id)
}

func (b *board) recorded(id string) bool {
	return b.count("SELECT COUNT(*) FROM board_inbox WHERE event_id = ?", id) == 1
}

func TestHandleRunsAnEventOnceAcrossTransactions(t *testing.T) {
	b := newBoard(t)
	ctx := context.Background()
	for i, want := range []bool{true, false, false} {
		ran, err := b.inbox.Handle(ctx, b.db, msg("ev-1"), effect("ev-1", fmt.Sprint("delivery ", i+1)))
		if err != nil || ran != want {
			t.Fatalf("delivery %d: Handle = %v, %v; want %v, nil", i+1, ran, err, want)
		}
	}
	if ran, err := b.inbox.Handle(ctx, b.db, msg("ev-2"), effect("ev-2", "")); err != nil || !ran {
		t.Fatalf("another event: Handle = %v, %v; want true", ran, err)
	}
	if n1, n2 := b.effects("ev-1"), b.effects("ev-2"); n1 != 1 || n2 != 1 {
		t.Errorf("effects: ev-1 %d, ev-2 %d; want 1 each", n1, n2)
	}
}

func TestHandleRollsBackAFailedHandlerAndForgetsTheID(t *testing.T) {
	b := newBoard(t)
	ctx := context.Background()
	boom := errors.New("board is read-only")
	ran, err := b.inbox.Handle(ctx, b.db, msg("ev-1"), func(ctx context.Context, tx *sql.Tx) error {
		if err := effect("ev-1", "half done")(ctx, tx); err != nil {
			return err
		}
		return boom
	})
	if ran || !errors.Is(err, boom) || err.Error() != "handle event ev-1: board is read-only" {
		t.Fatalf("Handle = %v, %v; want false and the handler's error, wrapped", ran, err)
	}
	if b.recorded("ev-1") || b.effects("ev-1") != 0 {
		t.Fatalf("after a failed handler: id recorded %v, %d effects; want neither", b.recorded("ev-1"), b.effects("ev-1"))
	}
	if ran, err := b.inbox.Handle(ctx, b.db, msg("ev-1"), effect("ev-1", "retry")); err != nil || !ran {
		t.Fatalf("the retry: Handle = %v, %v; want true", ran, err)
	}
	if !b.recorded("ev-1") || b.effects("ev-1") != 1 {
		t.Errorf("after the retry: id recorded %v, %d effects; want recorded, 1", b.recorded("ev-1"), b.effects("ev-1"))
	}
}

func TestHandleRefusesAMessageWithoutID(t *testing.T) {
	b := newBoard(t)
	ran, err := b.inbox.Handle(context.Background(), b.db, inbox.Message{Value: []byte(`{"id":"x"}`)}, func(context.Context, *sql.Tx) error {
		t.Error("the handler ran")
		return nil
	})
	if ran || !errors.Is(err, inbox.ErrNoEventID) {
		t.Errorf("Handle = %v, %v; want false, ErrNoEventID", ran, err)
	}
}

// waitForClaimWaiting waits until a connection of database name runs the
// inbox's INSERT (i.e. waits for the row lock of a concurrent claim).
func (b *board) waitForClaimWaiting(ctx context.Context) error {
	for {
		var n int
		err := b.db.QueryRowContext(ctx, "SELECT COUNT(*) FROM information_schema.PROCESSLIST WHERE DB = ? AND INFO LIKE 'INSERT IGNORE INTO%'", b.name).Scan(&n)
		if err != nil {
			return err
		}
		if n > 0 {
			return nil
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("no claim waits on the first one: %w", ctx.Err())
		case <-time.After(5 * time.Millisecond):
		}
	}
}

// TestHandleConcurrentDuplicates delivers one event to two goroutines at
// once: the second's claim waits on the first's row lock while the first
// handler runs; exactly one handler's work commits.
func TestHandleConcurrentDuplicates(t *testing.T) {
	tests := []struct {
		name        string
		firstFails  bool
		wantSecond  bool   // the second delivery's handler runs and commits
		wantEffects string // note of the one committed effect
	}{
		{"the first commits: the second is skipped", false, false, "first"},
		{"the first fails: the second handles it", true, true, "second"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			b := newBoard(t)
			ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
			defer cancel()
			inFirst := make(chan struct{})
			type result struct {
				ran bool
				err error
			}
			first, second := make(chan result, 1), make(chan result, 1)
			go func() {
				ran, err := b.inbox.Handle(ctx, b.db, msg("ev-1"), func(ctx context.Context, tx *sql.Tx) error {
					close(inFirst)
					if err := b.waitForClaimWaiting(ctx); err != nil {
						return err
					}
					if err := effect("ev-1", "first")(ctx, tx); err != nil {
						return err
					}
					if tt.firstFails {
						return errors.New("first handler fails")
					}
					return nil
				})
				first <- result{ran, err}
			}()
			select {
			case <-inFirst:
			case <-ctx.Done():
				t.Fatal("the first handler did not start")
			}
			go func() {
				ran, err := b.inbox.Handle(ctx, b.db, msg("ev-1"), effect("ev-1", "second"))
				second <- result{ran, err}
			}()
			r1, r2 := <-first, <-second
			if tt.firstFails {
				if r1.ran || r1.err == nil || r1.err.Error() != "handle event ev-1: first handler fails" {
					t.Errorf("first: Handle = %v, %v; want false and its handler's error", r1.ran, r1.err)
				}
			} else if !r1.ran || r1.err != nil {
				t.Errorf("first: Handle = %v, %v; want true, nil", r1.ran, r1.err)
			}
			if r2.ran != tt.wantSecond || r2.err != nil {
				t.Errorf("second: Handle = %v, %v; want %v, nil", r2.ran, r2.err, tt.wantSecond)
			}
			var notes []string
			rows, err := b.db.Query("SELECT note FROM effects WHERE event_id = 'ev-1'")
			if err != nil {
				t.Fatal(err)
			}
			defer rows.Close()
			for rows.Next() {
				var n string
				if err := rows.Scan(&n); err != nil {
					t.Fatal(err)
				}
				notes = append(notes, n)
			}
			if len(notes) != 1 || notes[0] != tt.wantEffects {
				t.Errorf("committed effects %q, want exactly [%s]", notes, tt.wantEffects)
			}
		})
	}
}

// TestHandleManyConcurrentDeliveries races eight deliveries of each of
// twenty events: each event's handler commits exactly once.
func TestHandleManyConcurrentDeliveries(t *testing.T) {
	b := newBoard(t)
	b.db.SetMaxOpenConns(16)
	const events, copies = 20, 8
	var ran, runs atomic.Int64
	var wg sync.WaitGroup
	errs := make(chan error, events*copies)
	for c := range copies {
		wg.Go(func() {
			for e := range events {
				id := fmt.Sprintf("ev-%d", (e+c)%events) // each goroutine in another order
				ok, err := b.inbox.Handle(context.Background(), b.db, msg(id), func(ctx context.Context, tx *sql.Tx) error {
					runs.Add(1)
					return effect(id, "")(ctx, tx)
				})
				if err != nil {
					errs <- err
					continue
				}
				if ok {
					ran.Add(1)
				}
			}
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Errorf("Handle: %v", err)
	}
	if ran.Load() != events || runs.Load() != events {
		t.Errorf("%d deliveries reported handled and %d handler runs, want %d each", ran.Load(), runs.Load(), events)
	}
	if n := b.count("SELECT COUNT(*) FROM effects"); n != events {
		t.Errorf("%d committed effects, want %d", n, events)
	}
	if n := b.count("SELECT COUNT(DISTINCT event_id) FROM effects"); n != events {
		t.Errorf("effects of %d events, want %d", n, events)
	}
}

func TestCleanupDeletesOldIDsInBatches(t *testing.T) {
	b := newBoard(t)
	b.inbox.CleanupBatch = 3
	ctx := context.Background()
	for i := range 10 {
		if _, err := b.db.Exec("INSERT INTO board_inbox (event_id, handled_at) VALUES (?, NOW(6) - INTERVAL 2 HOUR)", fmt.Sprint("old-", i)); err != nil {
			t.Fatal(err)
		}
	}
	for i := range 4 {
		if _, err := b.inbox.Handle(ctx, b.db, msg(fmt.Sprint("new-", i)), effect("new", "")); err != nil {
			t.Fatal(err)
		}
	}
	n, err := b.inbox.Cleanup(ctx, b.db, time.Hour)
	if err != nil || n != 10 {
		t.Fatalf("Cleanup(1h) = %d, %v; want 10 deleted", n, err)
	}
	if left := b.count("SELECT COUNT(*) FROM board_inbox WHERE event_id LIKE 'new-%'"); left != 4 || b.count("SELECT COUNT(*) FROM board_inbox") != 4 {
		t.Errorf("after Cleanup: %d recent ids of 4 left, %d rows in all", left, b.count("SELECT COUNT(*) FROM board_inbox"))
	}
	if n, err := b.inbox.Cleanup(ctx, b.db, time.Hour); err != nil || n != 0 {
		t.Errorf("second Cleanup(1h) = %d, %v; want 0", n, err)
	}
	if _, err := b.inbox.Cleanup(ctx, b.db, 0); err == nil || err.Error() != "clean up inbox board_inbox: olderThan must be positive (got 0s)" {
		t.Errorf("Cleanup(0) error = %v", err)
	}
}
