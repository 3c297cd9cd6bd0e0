package inbox

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"time"
	"unicode/utf8"
)

// Errors of this package; test with errors.Is.
var (
	// ErrNoEventID is returned by EventID and Handle for a message without
	// an event id: no (or an empty) IDHeader header and, when
	// IDFromValue is set, no string "id" field in a JSON object value.
	// Retrying does not help: the message needs another way of handling.
	ErrNoEventID = errors.New("message has no event id")
	// ErrInvalidEventID is returned by EventID, Claim and Handle for an
	// event id that is not 1 to 255 bytes of UTF-8.
	ErrInvalidEventID = errors.New("invalid event id")
	// ErrInvalidConfig is returned by Validate and by every method when the
	// Table's settings cannot be used; the message lists every problem as
	// "field: reason (got X)".
	ErrInvalidConfig = errors.New("invalid inbox configuration")
)

// Defaults of a Table's fields.
const (
	// DefaultName is the table a Table with an empty Name uses.
	DefaultName = "inbox"
	// DefaultIDHeader is the record header tailbox puts the event id in.
	DefaultIDHeader = "id"
	// DefaultCleanupBatch is how many rows one Cleanup statement deletes.
	DefaultCleanupBatch = 1000
	// maxEventIDLen is the event_id column's size, in bytes.
	maxEventIDLen = 255
)

// Header is one Kafka record header.
type Header struct {
	Key   string
	Value []byte
}

// Message is the part of a consumed Kafka record the inbox reads: build it
// from a sarama *ConsumerMessage or a franz-go *kgo.Record (see the
// examples). Only the headers, and the value when Table.IDFromValue is set,
// are used; Key is there for handlers that pass a Message on.
type Message struct {
	Key     []byte
	Value   []byte
	Headers []Header
}

// Execer runs one statement: *sql.DB, *sql.Conn and *sql.Tx implement it.
type Execer interface {
	ExecContext(ctx context.Context, query string, args ...any) (sql.Result, error)
}

// TxBeginner starts a transaction: *sql.DB and *sql.Conn implement it.
type TxBeginner interface {
	BeginTx(ctx context.Context, opts *sql.TxOptions) (*sql.Tx, error)
}

// Table is an inbox: a table of the consumer's own database holding the id
// of every event handled, so that an event redelivered (tailbox and Kafka
// deliver at least once) is recognised and skipped. Its zero value uses the
// table DefaultName and reads the id from the header tailbox sets. A Table
// holds no connection and no state: it is safe for concurrent use. The
// dialect is MySQL's and MariaDB's.
type Table struct {
	// Name is the table, "name" or "schema.name". Default "": DefaultName.
	// Consumers that handle the same events for different purposes need
	// their own tables (or databases): an id is handled once per table.
	Name string
	// IDHeader is the record header holding the event id. Default "":
	// DefaultIDHeader, "id", which tailbox sets in every format.
	IDHeader string
	// IDFromValue also takes the id from the value when the header is
	// missing or empty: the string field "id" of a JSON object, as in
	// tailbox's envelope and cloudevents formats. Default false: the header
	// only.
	IDFromValue bool
	// TxOptions are the options of the transactions Handle begins. Default
	// nil: the driver's defaults (REPEATABLE READ on InnoDB).
	TxOptions *sql.TxOptions
	// CleanupBatch is how many rows one DELETE of Cleanup removes, so that
	// each statement holds its locks briefly. Default 0:
	// DefaultCleanupBatch.
	CleanupBatch int
}

// Validate reports every problem of t's settings, joined and wrapping
// ErrInvalidConfig; nil when t can be used. It does not change t.
func (t *Table) Validate() error {
	var problems []error
	if _, err := quoteTable(t.name()); err != nil {
		problems = append(problems, fmt.Errorf("Name: %v (got %q)", err, t.Name))
	}
	if t.CleanupBatch < 0 {
		problems = append(problems, fmt.Errorf("CleanupBatch: must not be negative (got %d)", t.CleanupBatch))
	}
	if len(problems) == 0 {
		return nil
	}
	return fmt.Errorf("%w: %w", ErrInvalidConfig, errors.Join(problems...))
}

func (t *Table) name() string {
	if t.Name == "" {
		return DefaultName
	}
	return t.Name
}

// EventID returns msg's event id: the first IDHeader header with a value,
// else (with IDFromValue) the "id" of the JSON value. The error wraps
// ErrNoEventID or ErrInvalidEventID.
func (t *Table) EventID(msg Message) (string, error) {
	header := t.IDHeader
	if header == "" {
		header = DefaultIDHeader
	}
	for _, h := range msg.Headers {
		if h.Key == header && len(h.Value) > 0 {
			return checkEventID(string(h.Value))
		}
	}
	if !t.IDFromValue {
		return "", fmt.Errorf("%w: no %q header", ErrNoEventID, header)
	}
	var v struct {
		ID *string `json:"id"`
	}
	if err := json.Unmarshal(msg.Value, &v); err != nil {
		return "", fmt.Errorf("%w: no %q header, and the value is not a JSON object with a string id: %v", ErrNoEventID, header, err)
	}
	if v.ID == nil || *v.ID == "" {
		return "", fmt.Errorf("%w: no %q header, and the value has no id", ErrNoEventID, header)
	}
	return checkEventID(*v.ID)
}

func checkEventID(id string) (string, error) {
	switch {
	case id == "":
		return "", fmt.Errorf("%w: empty", ErrInvalidEventID)
	case len(id) > maxEventIDLen:
		return "", fmt.Errorf("%w: %d bytes, more than %d (starts %q)", ErrInvalidEventID, len(id), maxEventIDLen, id[:40])
	case !utf8.ValidString(id):
		return "", fmt.Errorf("%w: not UTF-8 (%q)", ErrInvalidEventID, id)
	}
	return id, nil
}

// Claim records id as handled in ex — the consumer's *sql.Tx, whose
// commit makes the record durable together with what the handler did —
// and reports whether this is the first time: false when the id was
// recorded by a committed transaction before. While another transaction
// holds an uncommitted claim of the same id, Claim waits for it (at most
// innodb_lock_wait_timeout): it returns false once that one commits, true
// once it rolls back. When several transactions wait on the same id and
// the holder rolls back, the server may end one of the waiters with a
// deadlock error; the message is then simply handled again.
func (t *Table) Claim(ctx context.Context, ex Execer, id string) (bool, error) {
	if err := t.Validate(); err != nil {
		return false, err
	}
	if _, err := checkEventID(id); err != nil {
		return false, err
	}
	table, _ := quoteTable(t.name())
	// INSERT IGNORE turns only the duplicate key into "0 rows" here: the id
	// fits its column (checked above) and the other column has a default.
	// Unlike a duplicate-key error it needs no driver-specific error type.
	res, err := ex.ExecContext(ctx, "INSERT IGNORE INTO "+table+" (`event_id`) VALUES (?)", id)
	if err != nil {
		return false, fmt.Errorf("record event %s in %s: %w", id, t.name(), err)
	}
	n, err := res.RowsAffected()
	if err != nil {
		return false, fmt.Errorf("record event %s in %s: rows affected: %w", id, t.name(), err)
	}
	return n == 1, nil
}

// Handle runs fn at most once per event id, in a transaction of db that
// also records the id: it begins the transaction, claims msg's event id
// (see Claim; a duplicate waits there while its first delivery is being
// handled), runs fn with the transaction when the id is new, and commits.
// fn does its database work through tx and must not commit or roll it back.
//
// Handle reports whether fn ran and its transaction committed (true), or
// the event had been handled before and fn did not run (false, nil). On an
// error from fn, or from the database, the transaction is rolled back —
// nothing of fn's work and no record of the id remain — and the error is
// returned (wrapped); handle the message again later. A commit error leaves
// the outcome unknown to Handle; handling the message again is still safe:
// if the commit went through, the id is there and fn does not run twice.
// The errors ErrNoEventID and ErrInvalidEventID say the message itself
// cannot be handled this way.
//
// Commit the message's Kafka offset only after Handle returned nil: a
// message handled but whose offset was not committed comes back after a
// restart and is then skipped.
func (t *Table) Handle(ctx context.Context, db TxBeginner, msg Message, fn func(ctx context.Context, tx *sql.Tx) error) (bool, error) {
	if err := t.Validate(); err != nil {
		return false, err
	}
	id, err := t.EventID(msg)
	if err != nil {
		return false, err
	}
	tx, err := db.BeginTx(ctx, t.TxOptions)
	if err != nil {
		return false, fmt.Errorf("handle event %s: begin: %w", id, err)
	}
	// Rolls back on every return before Commit (and on a panic in fn); a
	// failed rollback leaves nothing either: the server rolls back the
	// transaction of a broken connection.
	defer func() { _ = tx.Rollback() }()
	first, err := t.Claim(ctx, tx, id)
	if err != nil {
		return false, fmt.Errorf("handle event %s: %w", id, err)
	}
	if !first {
		return false, nil
	}
	if err := fn(ctx, tx); err != nil {
		return false, fmt.Errorf("handle event %s: %w", id, err)
	}
	if err := tx.Commit(); err != nil {
		return false, fmt.Errorf("handle event %s: commit: %w", id, err)
	}
	return true, nil
}

// Cleanup deletes the ids handled more than olderThan ago, by the
// database's clock, in statements of CleanupBatch rows until none is left,
// and returns how many it deleted. Pass a *sql.DB (or *sql.Conn), so that
// each batch commits on its own and holds its locks briefly; run it from
// time to time (an hourly ticker is plenty). It blocks until done or ctx
// ends; the rows deleted before an error stay deleted.
//
// How long to keep ids: longer than any redelivery you want to absorb.
// tailbox redelivers, after a crash, the events published since its last
// checkpoint (usually the last second) — but only when it runs again, so
// an event can come back as late as the longest tailbox outage. The
// consumer itself re-reads what it handled but had not committed the
// offset of, again as late as its own longest outage. A consumer group
// reset to an earlier offset, or `tailbox offsets set` to an earlier
// position, replays everything after that point. Keeping the ids as long
// as the topics keep their records (retention.ms, 7 days by default)
// covers all of these; the table stays small anyway (one short row per
// event).
func (t *Table) Cleanup(ctx context.Context, db Execer, olderThan time.Duration) (int64, error) {
	if err := t.Validate(); err != nil {
		return 0, err
	}
	if olderThan <= 0 {
		return 0, fmt.Errorf("clean up inbox %s: olderThan must be positive (got %s)", t.name(), olderThan)
	}
	batch := t.CleanupBatch
	if batch == 0 {
		batch = DefaultCleanupBatch
	}
	table, _ := quoteTable(t.name())
	query := "DELETE FROM " + table + " WHERE `handled_at` < NOW(6) - INTERVAL ? MICROSECOND ORDER BY `handled_at` LIMIT ?"
	var total int64
	for {
		if err := ctx.Err(); err != nil {
			return total, fmt.Errorf("clean up inbox %s: %w", t.name(), err)
		}
		res, err := db.ExecContext(ctx, query, olderThan.Microseconds(), batch)
		if err != nil {
			return total, fmt.Errorf("clean up inbox %s: %w", t.name(), err)
		}
		n, err := res.RowsAffected()
		if err != nil {
			return total, fmt.Errorf("clean up inbox %s: rows affected: %w", t.name(), err)
		}
		total += n
		if n < int64(batch) {
			return total, nil
		}
	}
}

// CreateTableSQL returns the CREATE TABLE IF NOT EXISTS statement of t's
// table, for MySQL 8.0+ and MariaDB 10.5+: the event id as exact bytes
// (VARBINARY: no collation folds two ids into one), the time it was
// handled, indexed for Cleanup. The table must be InnoDB (Claim relies on
// its row locks and on rollback). The error wraps ErrInvalidConfig.
func (t *Table) CreateTableSQL() (string, error) {
	if err := t.Validate(); err != nil {
		return "", err
	}
	table, _ := quoteTable(t.name())
	return fmt.Sprintf("CREATE TABLE IF NOT EXISTS %s (\n"+
		"  `event_id`   VARBINARY(%d) NOT NULL PRIMARY KEY,\n"+
		"  `handled_at` TIMESTAMP(6)   NOT NULL DEFAULT CURRENT_TIMESTAMP(6),\n"+
		"  KEY `handled_at` (`handled_at`)\n"+
		") ENGINE=InnoDB", table, maxEventIDLen), nil
}

// quoteTable checks and quotes "name" or "schema.name" with backticks.
func quoteTable(table string) (string, error) {
	parts := strings.Split(table, ".")
	if len(parts) > 2 {
		return "", errors.New(`not "name" or "schema.name"`)
	}
	for i, p := range parts {
		switch {
		case p == "":
			return "", errors.New("empty name")
		case utf8.RuneCountInString(p) > 64:
			return "", errors.New("longer than 64 characters")
		case strings.ContainsRune(p, 0):
			return "", errors.New("contains a NUL character")
		case strings.HasSuffix(p, " "):
			return "", errors.New("ends with a space")
		}
		parts[i] = "`" + strings.ReplaceAll(p, "`", "``") + "`"
	}
	return strings.Join(parts, "."), nil
}
