package observe

import (
	"context"
	"fmt"
	"math"
	"time"

	"github.com/tailbox-cdc/tailbox/pkg/binlog"
)

const (
	// backlogEvery is how often the Observer lists the source's binary logs
	// to measure how far the read position is behind the newest one.
	backlogEvery = 2 * time.Second
	// backlogTimeout bounds one listing (connecting included).
	backlogTimeout = 10 * time.Second
	// rateWindow is the time constant of the smoothed byte rates: a change
	// of pace shows in about that long.
	rateWindow = 20 * time.Second
)

// BinaryLogs lists the source's binary logs with their sizes (SHOW BINARY
// LOGS), oldest first, on a connection of its own: the Observer calls it
// from its own goroutine, every backlogEvery while a session reads, never
// from the stream's.
type BinaryLogs func(ctx context.Context) ([]binlog.LogFile, error)

// Behind is how far a position is behind the newest end of the source's
// binary logs.
type Behind struct {
	// Bytes is the size of the binary logs from the position to the end of
	// the newest file.
	Bytes uint64
	// Files is the number of files after the position's own.
	Files int
	// Newest is the end of the newest file: its name and size.
	Newest binlog.Position
}

// BehindOf returns how far p, a position in file p.File, is behind the end
// of the newest file of logs (SHOW BINARY LOGS, oldest first). It fails when
// p names no file, or a file logs does not list (purged, or of another
// server). A position past its file's listed size (written after the
// listing) counts as 0 bytes behind in that file.
func BehindOf(logs []binlog.LogFile, p binlog.Position) (Behind, error) {
	if p.File == "" {
		return Behind{}, fmt.Errorf("position %s names no binlog file", p)
	}
	if len(logs) == 0 {
		return Behind{}, fmt.Errorf("the source lists no binary logs")
	}
	last := logs[len(logs)-1]
	b := Behind{Newest: binlog.Position{File: last.Name, Pos: uint32(min(last.Size, math.MaxUint32))}}
	for i, f := range logs {
		if f.Name != p.File {
			continue
		}
		if f.Size > uint64(p.Pos) {
			b.Bytes = f.Size - uint64(p.Pos)
		}
		for _, g := range logs[i+1:] {
			b.Bytes += g.Size
		}
		b.Files = len(logs) - 1 - i
		return b, nil
	}
	return Behind{}, fmt.Errorf("binlog file %s is not among the source's binary logs (%s to %s)", p.File, logs[0].Name, last.Name)
}

// offset returns the byte offset of p from the start of the oldest file of
// logs, and whether p's file is listed.
func offset(logs []binlog.LogFile, p binlog.Position) (uint64, bool) {
	var n uint64
	for _, f := range logs {
		if f.Name == p.File {
			return n + uint64(p.Pos), true
		}
		n += f.Size
	}
	return 0, false
}

// backlog turns samples of the read position and the source's binary logs
// into bytes behind, a smoothed read rate and a smoothed rate at which the
// backlog shrinks (reading faster than the source writes), for the catch-up
// ETA. The zero value knows nothing.
type backlog struct {
	known  bool // a sample succeeded since the last reset
	behind Behind
	at     time.Time       // time of the last sample
	read   binlog.Position // read position at the last sample
	rated  bool            // readRate and closeRate hold values
	// readRate is the bytes read per second; closeRate the bytes per
	// second by which the backlog shrinks (negative while it grows).
	readRate, closeRate float64
	stalled             bool // nothing was read in the last interval
}

// observe takes a sample at now: logs listed, read the position read.
// caughtUp says the reader has everything the source sent (it waits with
// nothing arriving): then nothing is behind, whatever bytes follow the
// last transaction end (the header events of a new file, say).
func (b *backlog) observe(now time.Time, logs []binlog.LogFile, read binlog.Position, caughtUp bool) error {
	cur, err := BehindOf(logs, read)
	if err != nil {
		return err
	}
	if caughtUp {
		cur.Bytes, cur.Files = 0, 0
	}
	if b.known && now.After(b.at) {
		if prev, ok := offset(logs, b.read); ok {
			dt := now.Sub(b.at).Seconds()
			next, _ := offset(logs, read)
			readRate := float64(next-min(prev, next)) / dt
			closeRate := (float64(b.behind.Bytes) - float64(cur.Bytes)) / dt
			// After a stall (nothing read in the last interval: Kafka
			// held the records, say), the pace starts over: the
			// stalled interval says nothing about the pace of reading.
			if !b.rated || b.stalled {
				b.readRate, b.closeRate, b.rated = readRate, closeRate, true
			} else {
				a := 1 - math.Exp(-dt/rateWindow.Seconds())
				b.readRate += a * (readRate - b.readRate)
				b.closeRate += a * (closeRate - b.closeRate)
			}
			b.stalled = readRate == 0
		}
	}
	b.known, b.behind, b.at, b.read = true, cur, now, read
	return nil
}

// eta returns the time left to catch up at the current smoothed rate: ok
// only while something is behind and the backlog shrinks.
func (b *backlog) eta() (time.Duration, bool) {
	if !b.known || !b.rated || b.behind.Bytes == 0 || b.closeRate <= 0 {
		return 0, false
	}
	return time.Duration(float64(b.behind.Bytes) / b.closeRate * float64(time.Second)), true
}
