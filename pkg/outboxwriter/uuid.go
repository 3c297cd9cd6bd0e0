package outboxwriter

import (
	"crypto/rand"
	"encoding/binary"
	"encoding/hex"
	"sync"
	"time"
)

// NewID returns a new UUID version 7 (RFC 9562) as 36 characters of
// lowercase text, the form an outbox id column (CHAR(36)) holds. The first
// 48 bits are the Unix time in milliseconds, so ids sort — as bytes and as
// text — in the order they were made: within one process strictly (a 12-bit
// counter orders the ids of one millisecond, RFC 9562 section 6.2 method 1,
// and a clock that steps back does not reorder them); across processes by
// millisecond. The remaining 62 bits are random (crypto/rand). NewID is safe
// for concurrent use and never fails.
func NewID() string { return defaultIDs.next() }

// defaultIDs is the process-wide generator behind NewID: one sequence, so
// that every id of the process sorts after the ones made before it.
var defaultIDs = &idGenerator{now: time.Now}

// idGenerator makes UUIDv7 texts in strictly increasing order.
type idGenerator struct {
	now func() time.Time // the clock; tests replace it

	mu   sync.Mutex
	ms   int64  // timestamp of the last id
	seq  uint16 // its 12-bit counter (rand_a)
	used bool   // an id has been made
}

// seqSeedMask bounds the random counter a new millisecond starts at: its
// top bit is clear, so at least 2048 more ids fit in that millisecond before
// the counter runs over.
const seqSeedMask = 0x7ff

func (g *idGenerator) next() string {
	var r [10]byte
	_, _ = rand.Read(r[:]) // crypto/rand.Read never fails (Go 1.24+)

	g.mu.Lock()
	ms := g.now().UnixMilli()
	switch {
	case !g.used || ms > g.ms:
		g.ms, g.seq = ms, binary.BigEndian.Uint16(r[8:])&seqSeedMask
	case g.seq < 0xfff:
		g.seq++ // same millisecond, or the clock stepped back: keep the order
	default:
		// 4096 ids in one millisecond: borrow the next one (RFC 9562
		// allows the timestamp to run ahead to stay monotonic).
		g.ms, g.seq = g.ms+1, binary.BigEndian.Uint16(r[8:])&seqSeedMask
	}
	g.used = true
	ms, seq := g.ms, g.seq
	g.mu.Unlock()

	var u [16]byte
	u[0], u[1], u[2], u[3], u[4], u[5] = byte(ms>>40), byte(ms>>32), byte(ms>>24), byte(ms>>16), byte(ms>>8), byte(ms)
	u[6] = 0x70 | byte(seq>>8) // version 7, then rand_a's top 4 bits
	u[7] = byte(seq)
	copy(u[8:], r[:8])
	u[8] = 0x80 | u[8]&0x3f // variant 10
	return formatUUID(u)
}

// formatUUID writes u as 8-4-4-4-12 lowercase hex.
func formatUUID(u [16]byte) string {
	var b [36]byte
	hex.Encode(b[0:8], u[0:4])
	b[8] = '-'
	hex.Encode(b[9:13], u[4:6])
	b[13] = '-'
	hex.Encode(b[14:18], u[6:8])
	b[18] = '-'
	hex.Encode(b[19:23], u[8:10])
	b[23] = '-'
	hex.Encode(b[24:], u[10:])
	return string(b[:])
}
