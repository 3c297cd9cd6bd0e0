// Command member is the member service of tailbox's demo (make demo): the
// producing side of the transactional outbox. When a member withdraws, it
// updates the member's row and writes a MemberWithdrawn event with
// pkg/outboxwriter in the same transaction, so the event exists exactly when
// the withdrawal committed; tailbox relays the committed events to Kafka.
//
// Usage:
//
//	member [-dsn DSN] [-outbox TABLE] setup [-members N]
//	member [-dsn DSN] [-outbox TABLE] withdraw [-every D] [-fail-every N] FIRST-LAST
//
// setup creates the tables members and TABLE (outboxwriter's DDL) if they
// do not exist, and members 1 to N (status ACTIVE) that do not exist yet.
//
// withdraw withdraws the members FIRST to LAST, one transaction each, D
// apart: the row's status becomes WITHDRAWN and the event is written, or
// neither happens. A member who is not ACTIVE is passed over (no event).
// With -fail-every N, every Nth withdrawal fails after its event was written
// and is rolled back, as when a later step of a real withdrawal fails: that
// member stays ACTIVE and no event is ever published for it. SIGINT or
// SIGTERM stops withdraw after the transaction in progress; it then reports
// what it did and exits 0.
//
// DSN is go-sql-driver/mysql's ("user:password@tcp(host:port)/member");
// its default, $MEMBER_DSN, keeps the password off the process list. Exit
// status 2 is a usage error, 1 a failure.
package main

import (
	"context"
	"database/sql"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/go-sql-driver/mysql"

	"github.com/tailbox-cdc/tailbox/pkg/outboxwriter"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	os.Exit(run(ctx, os.Args[1:], os.Stdout, os.Stderr))
}

// errUsage marks a command line that cannot be run; the message says why.
var errUsage = errors.New("usage")

const usage = `usage:
  member [-dsn DSN] [-outbox TABLE] setup [-members N]
  member [-dsn DSN] [-outbox TABLE] withdraw [-every D] [-fail-every N] FIRST-LAST`

// run is main without the process: it returns the exit status.
func run(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	err := runCommand(ctx, args, stdout, stderr)
	switch {
	case err == nil:
		return 0
	case errors.Is(err, flag.ErrHelp):
		return 0
	case errors.Is(err, errUsage):
		fmt.Fprintf(stderr, "member: %v\n%s\n", err, usage)
		return 2
	default:
		fmt.Fprintf(stderr, "member: %v\n", err)
		return 1
	}
}

func runCommand(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("member", flag.ContinueOnError)
	fs.SetOutput(stderr)
	dsn := fs.String("dsn", os.Getenv("MEMBER_DSN"), "the member database, go-sql-driver/mysql DSN (default $MEMBER_DSN)")
	table := fs.String("outbox", outboxwriter.DefaultTable, "the outbox table tailbox captures")
	if err := fs.Parse(args); err != nil {
		return usageError(err)
	}
	if *dsn == "" {
		return fmt.Errorf("%w: -dsn (or $MEMBER_DSN) is required", errUsage)
	}
	if fs.NArg() == 0 {
		return fmt.Errorf("%w: no command (setup or withdraw)", errUsage)
	}
	s := &service{events: &outboxwriter.Writer{Table: *table}}
	if err := s.events.Validate(); err != nil {
		return fmt.Errorf("%w: -outbox: %w", errUsage, err)
	}
	cmd, cmdArgs := fs.Arg(0), fs.Args()[1:]
	switch cmd {
	case "setup":
		sub := flag.NewFlagSet("member setup", flag.ContinueOnError)
		sub.SetOutput(stderr)
		members := sub.Int("members", 100, "create members 1 to N")
		if err := sub.Parse(cmdArgs); err != nil {
			return usageError(err)
		}
		if *members < 0 || sub.NArg() > 0 {
			return fmt.Errorf("%w: setup takes -members N >= 0 and no arguments (got %d, %q)", errUsage, *members, sub.Args())
		}
		if err := s.open(ctx, *dsn); err != nil {
			return err
		}
		defer s.db.Close()
		if err := s.setup(ctx, *members); err != nil {
			return err
		}
		fmt.Fprintf(stdout, "member: tables members and %s ready, %d members\n", *table, *members)
		return nil
	case "withdraw":
		sub := flag.NewFlagSet("member withdraw", flag.ContinueOnError)
		sub.SetOutput(stderr)
		every := sub.Duration("every", 10*time.Millisecond, "pause between two withdrawals")
		failEvery := sub.Int("fail-every", 0, "roll back every Nth withdrawal after writing its event (0: none)")
		if err := sub.Parse(cmdArgs); err != nil {
			return usageError(err)
		}
		if sub.NArg() != 1 {
			return fmt.Errorf("%w: withdraw takes one range FIRST-LAST (got %q)", errUsage, sub.Args())
		}
		first, last, err := parseRange(sub.Arg(0))
		if err != nil {
			return fmt.Errorf("%w: %w", errUsage, err)
		}
		if *every < 0 || *failEvery < 0 {
			return fmt.Errorf("%w: -every and -fail-every must not be negative (got %s, %d)", errUsage, *every, *failEvery)
		}
		if err := s.open(ctx, *dsn); err != nil {
			return err
		}
		defer s.db.Close()
		r, err := s.withdrawRange(ctx, first, last, *every, *failEvery)
		fmt.Fprintf(stdout, "member: %d members withdrawn (each with its MemberWithdrawn event), %d withdrawals rolled back, %d not active\n",
			r.withdrawn, r.rolledBack, r.notActive)
		return err
	default:
		return fmt.Errorf("%w: unknown command %q", errUsage, cmd)
	}
}

func usageError(err error) error {
	if errors.Is(err, flag.ErrHelp) {
		return err
	}
	return fmt.Errorf("%w: %w", errUsage, err)
}

// parseRange parses "FIRST-LAST" (or a single id) of positive member ids.
func parseRange(s string) (int64, int64, error) {
	a, b, ok := strings.Cut(s, "-")
	if !ok {
		b = a
	}
	first, err1 := strconv.ParseInt(a, 10, 64)
	last, err2 := strconv.ParseInt(b, 10, 64)
	if err1 != nil || err2 != nil || first < 1 || last < first {
		return 0, 0, fmt.Errorf("member range must be FIRST-LAST with 1 <= FIRST <= LAST (got %q)", s)
	}
	return first, last, nil
}

// service is the member service: its database and its outbox.
type service struct {
	db     *sql.DB
	events *outboxwriter.Writer
}

func (s *service) open(ctx context.Context, dsn string) error {
	cfg, err := mysql.ParseDSN(dsn)
	if err != nil {
		return fmt.Errorf("%w: -dsn: %w", errUsage, err)
	}
	conn, err := mysql.NewConnector(cfg)
	if err != nil {
		return fmt.Errorf("member database: %w", err)
	}
	s.db = sql.OpenDB(conn)
	if err := s.db.PingContext(ctx); err != nil {
		s.db.Close()
		return fmt.Errorf("connect to the member database %s: %w", cfg.Addr, err)
	}
	return nil
}

// setup creates the tables if missing and members 1 to n that do not exist.
func (s *service) setup(ctx context.Context, n int) error {
	outboxDDL, err := s.events.CreateTableSQL()
	if err != nil {
		return err
	}
	for _, stmt := range []string{
		`CREATE TABLE IF NOT EXISTS members (
  id           BIGINT UNSIGNED NOT NULL PRIMARY KEY,
  name         VARCHAR(100)    NOT NULL,
  status       VARCHAR(20)     NOT NULL DEFAULT 'ACTIVE',
  withdrawn_at TIMESTAMP(6)    NULL
) ENGINE=InnoDB`,
		outboxDDL,
	} {
		if _, err := s.db.ExecContext(ctx, stmt); err != nil {
			return fmt.Errorf("create table: %w", err)
		}
	}
	const batch = 500
	for from := 1; from <= n; from += batch {
		to := min(from+batch-1, n)
		var q strings.Builder
		args := make([]any, 0, 2*(to-from+1))
		q.WriteString("INSERT IGNORE INTO members (id, name) VALUES ")
		for id := from; id <= to; id++ {
			if id > from {
				q.WriteString(", ")
			}
			q.WriteString("(?, ?)")
			args = append(args, id, fmt.Sprintf("member %d", id))
		}
		if _, err := s.db.ExecContext(ctx, q.String(), args...); err != nil {
			return fmt.Errorf("create members %d to %d: %w", from, to, err)
		}
	}
	return nil
}

// withdrawal is the MemberWithdrawn event's payload.
type withdrawal struct {
	MemberID    int64     `json:"memberId"`
	Reason      string    `json:"reason"`
	WithdrawnAt time.Time `json:"withdrawnAt"`
}

// errFailed is the failure -fail-every simulates after the event was written.
var errFailed = errors.New("simulated failure after the event was written")

// result counts what withdrawRange did.
type result struct{ withdrawn, rolledBack, notActive int }

// withdrawRange withdraws members first to last, one transaction each,
// until done or ctx ends (which is not an error: the stop is graceful).
func (s *service) withdrawRange(ctx context.Context, first, last int64, every time.Duration, failEvery int) (result, error) {
	var r result
	for id, n := first, 1; id <= last; id, n = id+1, n+1 {
		if n > 1 && every > 0 {
			select {
			case <-ctx.Done():
			case <-time.After(every):
			}
		}
		if ctx.Err() != nil {
			return r, nil
		}
		fail := failEvery > 0 && n%failEvery == 0
		// The transaction in progress finishes even when a signal arrives.
		done, err := s.withdraw(context.WithoutCancel(ctx), id, fail)
		switch {
		case errors.Is(err, errFailed):
			r.rolledBack++
		case err != nil:
			return r, err
		case done:
			r.withdrawn++
		default:
			r.notActive++
		}
	}
	return r, nil
}

// withdraw withdraws one member: its status and its event commit together,
// or neither does. It reports false when the member is not ACTIVE.
func (s *service) withdraw(ctx context.Context, memberID int64, fail bool) (bool, error) {
	tx, err := s.db.BeginTx(ctx, nil)
	if err != nil {
		return false, fmt.Errorf("withdraw member %d: begin: %w", memberID, err)
	}
	defer tx.Rollback() // no-op after Commit
	res, err := tx.ExecContext(ctx,
		"UPDATE members SET status = 'WITHDRAWN', withdrawn_at = UTC_TIMESTAMP(6) WHERE id = ? AND status = 'ACTIVE'", memberID)
	if err != nil {
		return false, fmt.Errorf("withdraw member %d: %w", memberID, err)
	}
	n, err := res.RowsAffected()
	if err != nil {
		return false, fmt.Errorf("withdraw member %d: rows affected: %w", memberID, err)
	}
	if n == 0 {
		return false, nil
	}
	if _, err := s.events.Write(ctx, tx, outboxwriter.Event{
		AggregateType: "member", // topic outbox.event.member
		AggregateID:   strconv.FormatInt(memberID, 10),
		Type:          "MemberWithdrawn",
		Payload:       withdrawal{MemberID: memberID, Reason: "requested by the member", WithdrawnAt: time.Now().UTC()},
	}); err != nil {
		return false, fmt.Errorf("withdraw member %d: %w", memberID, err)
	}
	if fail {
		return false, fmt.Errorf("withdraw member %d: %w", memberID, errFailed) // the deferred Rollback undoes both
	}
	if err := tx.Commit(); err != nil {
		return false, fmt.Errorf("withdraw member %d: commit: %w", memberID, err)
	}
	return true, nil
}
