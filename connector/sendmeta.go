package connector

import "github.com/tailbox-cdc/tailbox/pkg/binlog"

// sendMeta is what the acknowledgement of a record that pump hands to the
// producer needs; the record's kafka.Record.Meta points to it.
type sendMeta struct {
	// seq is the record's slot in the tracker.
	seq uint64
	// commit is the commit time of its transaction (Unix ns, 0 unknown),
	// for the commit-to-ack histogram.
	commit int64
	// size is the record's kafka.Record.Size, taken from the in-flight
	// bound at its acknowledgement.
	size int
}

// commitNanos returns sm.commit, or 0 (unknown) for a nil sm: the Meta of
// an acknowledged record that is no event.
func (sm *sendMeta) commitNanos() int64 {
	if sm == nil {
		return 0
	}
	return sm.commit
}

// commitNanos is sendMeta.commit for a change of txn: its commit time in
// Unix ns, 0 when unknown.
func commitNanos(txn *binlog.Txn) int64 {
	if txn == nil || txn.CommitTime.IsZero() {
		return 0
	}
	return txn.CommitTime.UnixNano()
}
