// Command board is the board service of tailbox's demo (make demo): the
// consuming side of the transactional outbox. It reads the member events
// tailbox publishes, with a franz-go consumer group, and when a member
// withdraws it hides that member's posts in its own database. Every event
// goes through pkg/inbox: the event id is recorded in the inbox table in the
// same transaction as the posts it hides, so an event delivered again — after
// tailbox was killed, or after this service stopped before committing its
// offsets — changes nothing.
//
// Usage:
//
//	board [-dsn DSN] setup [-members N] [-posts K]
//	board [-dsn DSN] run [-brokers B] [-topic T] [-group G] [-stats FILE]
//
// setup creates the tables posts and inbox if they do not exist, and K
// visible posts for each of the members 1 to N that has none yet.
//
// run consumes topic T (default outbox.event.member) as consumer group G
// (default board; a new group starts at the topic's beginning) from the
// brokers B (comma-separated). The offsets of a fetched batch are committed
// after each of its records was handled, so a crash redelivers at most that
// batch, whose handled records are then no-ops. A database error is retried
// with back-off; a record without an event id or with a value that is not an
// event is logged and passed over. With -stats, the counters are written to
// FILE (replaced atomically) after every batch, on one line:
//
//	consumed=N applied=N noops=N skipped=N hidden=N
//
// consumed counts records, applied the events handled for the first time,
// noops those found in the inbox (redeliveries), skipped the records passed
// over, hidden the posts hidden. SIGINT or SIGTERM stops run after the batch
// in progress; it commits its offsets, prints the counters and exits 0.
//
// DSN is go-sql-driver/mysql's ("user:password@tcp(host:port)/board");
// its default, $BOARD_DSN, keeps the password off the process list. Exit
// status 2 is a usage error, 1 a failure.
package main

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"log"
	"os"
	"os/signal"
	"path/filepath"
	"strings"
	"syscall"
	"time"

	"github.com/go-sql-driver/mysql"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/tailbox-cdc/tailbox/pkg/inbox"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	os.Exit(run(ctx, os.Args[1:], os.Stdout, os.Stderr))
}

// errUsage marks a command line that cannot be run; the message says why.
var errUsage = errors.New("usage")

const usage = `usage:
  board [-dsn DSN] setup [-members N] [-posts K]
  board [-dsn DSN] run [-brokers B] [-topic T] [-group G] [-stats FILE]`

// run is main without the process: it returns the exit status.
func run(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	err := runCommand(ctx, args, stdout, stderr)
	switch {
	case err == nil, errors.Is(err, flag.ErrHelp):
		return 0
	case errors.Is(err, errUsage):
		fmt.Fprintf(stderr, "board: %v\n%s\n", err, usage)
		return 2
	default:
		fmt.Fprintf(stderr, "board: %v\n", err)
		return 1
	}
}

func runCommand(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("board", flag.ContinueOnError)
	fs.SetOutput(stderr)
	dsn := fs.String("dsn", os.Getenv("BOARD_DSN"), "the board database, go-sql-driver/mysql DSN (default $BOARD_DSN)")
	if err := fs.Parse(args); err != nil {
		return usageError(err)
	}
	if *dsn == "" {
		return fmt.Errorf("%w: -dsn (or $BOARD_DSN) is required", errUsage)
	}
	if fs.NArg() == 0 {
		return fmt.Errorf("%w: no command (setup or run)", errUsage)
	}
	cmd, cmdArgs := fs.Arg(0), fs.Args()[1:]
	b := &board{inbox: &inbox.Table{Name: "inbox"}, log: log.New(stderr, "board: ", log.LstdFlags|log.Lmicroseconds)}
	switch cmd {
	case "setup":
		sub := flag.NewFlagSet("board setup", flag.ContinueOnError)
		sub.SetOutput(stderr)
		members := sub.Int("members", 100, "create posts for members 1 to N")
		posts := sub.Int("posts", 3, "posts per member")
		if err := sub.Parse(cmdArgs); err != nil {
			return usageError(err)
		}
		if *members < 0 || *posts < 0 || sub.NArg() > 0 {
			return fmt.Errorf("%w: setup takes -members N >= 0, -posts K >= 0 and no arguments (got %d, %d, %q)", errUsage, *members, *posts, sub.Args())
		}
		if err := b.open(ctx, *dsn); err != nil {
			return err
		}
		defer b.db.Close()
		if err := b.setup(ctx, *members, *posts); err != nil {
			return err
		}
		fmt.Fprintf(stdout, "board: tables posts and inbox ready, %d posts for each of %d members\n", *posts, *members)
		return nil
	case "run":
		sub := flag.NewFlagSet("board run", flag.ContinueOnError)
		sub.SetOutput(stderr)
		brokers := sub.String("brokers", "127.0.0.1:9092", "Kafka bootstrap brokers, comma-separated")
		topic := sub.String("topic", "outbox.event.member", "the topic of the member events")
		group := sub.String("group", "board", "the consumer group")
		stats := sub.String("stats", "", "write the counters to this file after every batch")
		if err := sub.Parse(cmdArgs); err != nil {
			return usageError(err)
		}
		if sub.NArg() > 0 || *brokers == "" || *topic == "" || *group == "" {
			return fmt.Errorf("%w: run takes non-empty -brokers, -topic and -group and no arguments (got %q, %q, %q, %q)",
				errUsage, *brokers, *topic, *group, sub.Args())
		}
		b.statsFile = *stats
		if err := b.open(ctx, *dsn); err != nil {
			return err
		}
		defer b.db.Close()
		err := b.consume(ctx, strings.Split(*brokers, ","), *topic, *group)
		fmt.Fprintf(stdout, "board: stopped: %s\n", b.counts)
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

// counts are the board's counters (see the package doc).
type counts struct {
	consumed, applied, noops, skipped, hidden int64
}

func (c counts) String() string {
	return fmt.Sprintf("consumed=%d applied=%d noops=%d skipped=%d hidden=%d", c.consumed, c.applied, c.noops, c.skipped, c.hidden)
}

// board is the board service: its database, its inbox and its counters.
type board struct {
	db        *sql.DB
	inbox     *inbox.Table
	log       *log.Logger
	statsFile string
	counts    counts
}

func (b *board) open(ctx context.Context, dsn string) error {
	cfg, err := mysql.ParseDSN(dsn)
	if err != nil {
		return fmt.Errorf("%w: -dsn: %w", errUsage, err)
	}
	conn, err := mysql.NewConnector(cfg)
	if err != nil {
		return fmt.Errorf("board database: %w", err)
	}
	b.db = sql.OpenDB(conn)
	if err := b.db.PingContext(ctx); err != nil {
		b.db.Close()
		return fmt.Errorf("connect to the board database %s: %w", cfg.Addr, err)
	}
	return nil
}

// setup creates the tables if missing and posts posts for each member of
// 1 to members that has none.
func (b *board) setup(ctx context.Context, members, posts int) error {
	inboxDDL, err := b.inbox.CreateTableSQL()
	if err != nil {
		return err
	}
	for _, stmt := range []string{
		`CREATE TABLE IF NOT EXISTS posts (
  id            BIGINT UNSIGNED NOT NULL AUTO_INCREMENT PRIMARY KEY,
  author_id     BIGINT UNSIGNED NOT NULL,
  title         VARCHAR(200)    NOT NULL,
  hidden        BOOLEAN         NOT NULL DEFAULT FALSE,
  hidden_reason VARCHAR(100)    NULL,
  KEY author (author_id)
) ENGINE=InnoDB`,
		inboxDDL,
	} {
		if _, err := b.db.ExecContext(ctx, stmt); err != nil {
			return fmt.Errorf("create table: %w", err)
		}
	}
	for m := 1; m <= members; m++ {
		var have int
		if err := b.db.QueryRowContext(ctx, "SELECT COUNT(*) FROM posts WHERE author_id = ?", m).Scan(&have); err != nil {
			return fmt.Errorf("count the posts of member %d: %w", m, err)
		}
		if have > 0 || posts == 0 {
			continue
		}
		var q strings.Builder
		args := make([]any, 0, 2*posts)
		q.WriteString("INSERT INTO posts (author_id, title) VALUES ")
		for p := 1; p <= posts; p++ {
			if p > 1 {
				q.WriteString(", ")
			}
			q.WriteString("(?, ?)")
			args = append(args, m, fmt.Sprintf("post %d of member %d", p, m))
		}
		if _, err := b.db.ExecContext(ctx, q.String(), args...); err != nil {
			return fmt.Errorf("create the posts of member %d: %w", m, err)
		}
	}
	return nil
}

// consume runs the consumer until ctx ends.
func (b *board) consume(ctx context.Context, brokers []string, topic, group string) error {
	cl, err := kgo.NewClient(
		kgo.SeedBrokers(brokers...),
		kgo.ConsumerGroup(group),
		kgo.ConsumeTopics(topic),
		kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()),
		kgo.DisableAutoCommit(),
		// No rebalance between a poll and the commit of its records.
		kgo.BlockRebalanceOnPoll(),
		// Find the topic within a second when tailbox creates it after
		// this service started.
		kgo.MetadataMinAge(time.Second),
	)
	if err != nil {
		return fmt.Errorf("kafka client for %v: %w", brokers, err)
	}
	defer cl.Close() // leaves the group
	b.log.Printf("consuming %s as group %s from %s", topic, group, strings.Join(brokers, ","))
	if err := b.writeStats(); err != nil {
		b.log.Print(err)
	}
	for {
		fetches := cl.PollFetches(ctx)
		if ctx.Err() != nil {
			cl.AllowRebalance()
			return nil
		}
		fetches.EachError(func(t string, p int32, err error) {
			b.log.Printf("fetch %s/%d: %v", t, p, err)
		})
		var done []*kgo.Record
		for _, r := range fetches.Records() {
			if !b.handleRetrying(ctx, r) {
				break // stopping: this record and the rest of the batch come again
			}
			done = append(done, r)
		}
		if len(done) > 0 {
			// Committed even while stopping: these records were handled.
			commitCtx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 10*time.Second)
			if err := cl.CommitRecords(commitCtx, done...); err != nil {
				b.log.Printf("commit offsets: %v (the records come again: no-ops then)", err)
			}
			cancel()
		}
		cl.AllowRebalance()
		if err := b.writeStats(); err != nil {
			b.log.Print(err)
		}
	}
}

// handleRetrying handles r, retrying database errors with back-off; it
// returns false when ctx ended before r was handled.
func (b *board) handleRetrying(ctx context.Context, r *kgo.Record) bool {
	backoff := 100 * time.Millisecond
	for {
		err := b.handle(context.WithoutCancel(ctx), r)
		switch {
		case err == nil:
			b.counts.consumed++
			return true
		case errors.Is(err, inbox.ErrNoEventID), errors.Is(err, inbox.ErrInvalidEventID), errors.Is(err, errNotAnEvent):
			// Retrying cannot help; a real service dead-letters the record.
			b.counts.consumed++
			b.counts.skipped++
			b.log.Printf("record %s/%d@%d passed over: %v", r.Topic, r.Partition, r.Offset, err)
			return true
		}
		b.log.Printf("record %s/%d@%d: %v; retrying in %s", r.Topic, r.Partition, r.Offset, err, backoff)
		select {
		case <-ctx.Done():
			return false
		case <-time.After(backoff):
		}
		backoff = min(2*backoff, 5*time.Second)
	}
}

// errNotAnEvent is returned by handle for a value that is not a tailbox
// envelope with a member id.
var errNotAnEvent = errors.New("not a member event")

// event is the part of tailbox's envelope the board reads.
type event struct {
	Type    string `json:"type"`
	Payload struct {
		MemberID json.Number `json:"memberId"`
	} `json:"payload"`
}

// handle applies one record through the inbox: the posts it hides and the
// record of its id commit together; a record whose id is in the inbox is a
// no-op.
func (b *board) handle(ctx context.Context, r *kgo.Record) error {
	msg := inbox.Message{Key: r.Key, Value: r.Value}
	for _, h := range r.Headers {
		msg.Headers = append(msg.Headers, inbox.Header{Key: h.Key, Value: h.Value})
	}
	var hidden int64
	applied, err := b.inbox.Handle(ctx, b.db, msg, func(ctx context.Context, tx *sql.Tx) error {
		hidden = 0
		var ev event
		if err := json.Unmarshal(r.Value, &ev); err != nil {
			return fmt.Errorf("%w: %w", errNotAnEvent, err)
		}
		if ev.Type != "MemberWithdrawn" {
			return nil // recorded as handled: the board has nothing to do
		}
		memberID, err := ev.Payload.MemberID.Int64()
		if err != nil || memberID < 1 {
			return fmt.Errorf("%w: MemberWithdrawn without a member id (memberId %q)", errNotAnEvent, ev.Payload.MemberID)
		}
		res, err := tx.ExecContext(ctx,
			"UPDATE posts SET hidden = TRUE, hidden_reason = 'author withdrew' WHERE author_id = ? AND NOT hidden", memberID)
		if err != nil {
			return fmt.Errorf("hide the posts of member %d: %w", memberID, err)
		}
		hidden, err = res.RowsAffected()
		return err
	})
	if err != nil {
		return err
	}
	if applied {
		b.counts.applied++
		b.counts.hidden += hidden
	} else {
		b.counts.noops++
	}
	return nil
}

// writeStats replaces the -stats file with the counters, atomically.
func (b *board) writeStats() error {
	if b.statsFile == "" {
		return nil
	}
	tmp, err := os.CreateTemp(filepath.Dir(b.statsFile), ".board-stats-*")
	if err != nil {
		return fmt.Errorf("write stats: %w", err)
	}
	_, err = fmt.Fprintln(tmp, b.counts)
	if cerr := tmp.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = os.Rename(tmp.Name(), b.statsFile)
	}
	if err != nil {
		os.Remove(tmp.Name())
		return fmt.Errorf("write stats to %s: %w", b.statsFile, err)
	}
	return nil
}
