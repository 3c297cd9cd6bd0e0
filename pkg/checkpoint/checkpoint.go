// Package checkpoint stores tailbox's checkpoint: the last binlog position
// before which every event is settled in Kafka, in a small versioned JSON
// file that `cat` can read.
//
// A File owns the checkpoint of one connector: Open takes an exclusive lock
// so that a second instance with the same file refuses to start, Save
// replaces the file atomically (temporary file, fsync, rename, fsync of the
// directory, as hashicorp/raft writes its snapshot metadata), and Load
// refuses a file it cannot fully trust without ever modifying it. Read loads
// a checkpoint without the lock, for `tailbox offsets show`.
//
// Next to the checkpoint at PATH live two sidecar files: PATH.lock, which
// carries the lock and is never removed (removing it would let two
// processes lock different inodes), and PATH.tmp, the temporary file of a
// Save in progress, which an interrupted Save may leave behind; Load ignores
// it and the next Save overwrites it.
package checkpoint

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/tailbox-cdc/tailbox/pkg/binlog"
)

// Version is the format version this package writes and reads.
const Version = 1

// Sentinel errors. Callers test for them with errors.Is; the errors returned
// name the file and what was being done.
var (
	// ErrNotFound is returned by Load and Read when the checkpoint file does
	// not exist: the connector has never saved one (start from start.from).
	ErrNotFound = errors.New("checkpoint file does not exist")

	// ErrCorrupt is returned by Load and Read when the file is not a valid
	// checkpoint: not JSON, truncated, trailing data, unknown fields, an
	// unknown version, or required fields missing. Fatal: the file is left
	// untouched for the operator (`offsets set` replaces it).
	ErrCorrupt = errors.New("checkpoint file is corrupt")

	// ErrLocked is returned by Open when another process (or another Open
	// in this process) holds the checkpoint's lock. Fatal: another instance
	// of the connector uses the same file.
	ErrLocked = errors.New("checkpoint file is locked by another process")

	// ErrClosed is returned by Load and Save after Close.
	ErrClosed = errors.New("checkpoint file is closed")

	// ErrInvalid is returned by Save, and by Checkpoint.Validate, for a
	// checkpoint Load would reject; nothing is written.
	ErrInvalid = errors.New("invalid checkpoint")

	// ErrUnavailable is returned by OpenKafka when no broker could be
	// reached, a broker refused the login, or the cluster did not answer
	// within the timeout: a condition that may pass, unlike a topic with
	// the wrong cleanup.policy.
	ErrUnavailable = errors.New("kafka unavailable")
	// ErrOpenTransaction means a Kafka store's Load gave up waiting for
	// another producer's transaction on the checkpoint topic to end:
	// until it does, the latest committed checkpoint cannot be known.
	ErrOpenTransaction = errors.New("checkpoint topic has an open transaction")
)

// Server identifies the server a FILE:POS checkpoint is bound to. Every field
// may be empty when unknown.
type Server struct {
	// Flavor is "mysql" or "mariadb".
	Flavor string `json:"flavor,omitempty"`
	// ServerID is the server's @@server_id.
	ServerID uint32 `json:"server_id,omitempty"`
	// ServerUUID is MySQL's @@server_uuid; empty on MariaDB.
	ServerUUID string `json:"server_uuid,omitempty"`
	// BinlogBasename is the binlog file name without its numeric
	// extension, e.g. "mysql-bin".
	BinlogBasename string `json:"binlog_basename,omitempty"`
	// FileStartTime is the time of the first event of Position.File; a
	// different time for the same file name reveals RESET MASTER.
	FileStartTime time.Time `json:"file_start_time,omitzero"`
}

// Checkpoint is the content of the checkpoint file.
type Checkpoint struct {
	// Version is the format version; Save sets it to Version.
	Version int `json:"version"`
	// Name is the connector's name. Required.
	Name string `json:"name"`
	// Position is the last marker: every event before it is settled.
	// Required: a file or a GTID set.
	Position binlog.Position `json:"position"`
	// Skip is the number of captured row images already settled at the
	// head of the transaction that follows Position; 0 when none.
	Skip int `json:"skip"`
	// NextTxn identifies that transaction (its GTID, or FILE:POS of its
	// start); required when Skip > 0, empty (omitted) otherwise.
	NextTxn string `json:"next_txn,omitempty"`
	// Server is the server the position was read from.
	Server Server `json:"server"`
	// TablesHash is the hash of the captured tables (outbox.tables).
	TablesHash string `json:"tables_hash,omitempty"`
	// UpdatedAt is when the checkpoint was saved; Save sets it.
	UpdatedAt time.Time `json:"updated_at"`
	// Cleaned, with outbox.cleanup, is a point at or before Position
	// before which the connector deleted every published outbox row it
	// knows of: a restart reads the binlog from Cleaned to Position for
	// the keys of the rows left to delete. nil (omitted) without cleanup.
	Cleaned *Cleaned `json:"cleaned,omitempty"`
}

// Cleaned is Checkpoint.Cleaned: a binlog.Point.
type Cleaned struct {
	Position binlog.Position `json:"position"`
	Skip     int             `json:"skip"`
	NextTxn  string          `json:"next_txn,omitempty"`
}

// Point returns c as a binlog.Point.
func (c *Cleaned) Point() binlog.Point {
	return binlog.Point{Pos: c.Position, Skip: c.Skip, NextTxn: c.NextTxn}
}

// Validate reports every problem that makes cp unusable, each as
// "path: reason (got X)", joined, wrapped in an error wrapping ErrInvalid. It
// does not check Version, which Save sets and Load checks first. NextTxn is
// New returns the checkpoint of connector name, capturing the tables that
// hash to tablesHash, at p on the server srv.
func New(name, tablesHash string, p binlog.Point, srv Server) *Checkpoint {
	return &Checkpoint{
		Name:       name,
		Position:   p.Pos,
		Skip:       p.Skip,
		NextTxn:    p.NextTxn,
		Server:     srv,
		TablesHash: tablesHash,
	}
}

// Point is where a stream resumes from cp.
func (cp *Checkpoint) Point() binlog.Point {
	return binlog.Point{Pos: cp.Position, Skip: cp.Skip, NextTxn: cp.NextTxn}
}

// not checked when Skip is 0.
func (cp *Checkpoint) Validate() error {
	if err := cp.problems(); err != nil {
		return fmt.Errorf("%w: %w", ErrInvalid, err)
	}
	return nil
}

// problems joins every problem of cp, or returns nil.
func (cp *Checkpoint) problems() error {
	var errs []error
	add := func(format string, args ...any) { errs = append(errs, fmt.Errorf(format, args...)) }
	if cp.Name == "" {
		add("name: required")
	}
	if cp.Position.File == "" && cp.Position.GTID == "" {
		add("position: file or gtid required")
	}
	if cp.Position.File != "" && cp.Position.Pos < 4 {
		add("position.pos: must be at least 4 with a file (got %d)", cp.Position.Pos)
	}
	if cp.Skip < 0 {
		add("skip: must not be negative (got %d)", cp.Skip)
	}
	if cp.Skip > 0 && cp.NextTxn == "" {
		add("next_txn: required when skip > 0 (got skip %d)", cp.Skip)
	}
	return errors.Join(errs...)
}

// encode renders cp as the file's bytes: indented JSON and a newline.
func encode(cp *Checkpoint) ([]byte, error) {
	b, err := json.MarshalIndent(cp, "", "  ")
	if err != nil {
		return nil, err
	}
	return append(b, '\n'), nil
}

// decode parses the file's bytes strictly. Errors wrap ErrCorrupt.
func decode(data []byte) (*Checkpoint, error) {
	// The version first, leniently: a newer format may have other fields.
	// Unmarshal also rejects anything after the object.
	var head struct {
		Version *int `json:"version"`
	}
	if err := json.Unmarshal(data, &head); err != nil {
		return nil, fmt.Errorf("%w: %w", ErrCorrupt, err)
	}
	if head.Version == nil {
		return nil, fmt.Errorf("%w: version: required", ErrCorrupt)
	}
	if *head.Version != Version {
		return nil, fmt.Errorf("%w: version: unsupported (got %d, this tailbox reads %d)", ErrCorrupt, *head.Version, Version)
	}

	dec := json.NewDecoder(bytes.NewReader(data))
	dec.DisallowUnknownFields()
	cp := new(Checkpoint)
	if err := dec.Decode(cp); err != nil {
		return nil, fmt.Errorf("%w: %w", ErrCorrupt, err)
	}
	if err := cp.problems(); err != nil {
		return nil, fmt.Errorf("%w: %w", ErrCorrupt, err)
	}
	return cp, nil
}
