package kafka

import (
	"fmt"
	"math/rand/v2"

	"github.com/IBM/sarama"
)

// Murmur2 is Kafka's murmur2 hash of key (Utils.murmur2 of the Java client),
// as the signed 32-bit value Java returns.
func Murmur2(key []byte) int32 {
	const (
		seed uint32 = 0x9747b28c
		m    uint32 = 0x5bd1e995
		r           = 24
	)
	h := seed ^ uint32(len(key))
	b := key
	for len(b) >= 4 {
		k := uint32(b[0]) | uint32(b[1])<<8 | uint32(b[2])<<16 | uint32(b[3])<<24
		k *= m
		k ^= k >> r
		k *= m
		h *= m
		h ^= k
		b = b[4:]
	}
	switch len(b) {
	case 3:
		h ^= uint32(b[2]) << 16
		fallthrough
	case 2:
		h ^= uint32(b[1]) << 8
		fallthrough
	case 1:
		h ^= uint32(b[0])
		h *= m
	}
	h ^= h >> 13
	h *= m
	h ^= h >> 15
	return int32(h)
}

// PartitionForKey returns the partition the Java producer's default
// partitioner (DefaultPartitioner, BuiltInPartitioner.partitionForKey)
// chooses for a non-NULL key: toPositive(murmur2(key)) % numPartitions. An
// empty key is a key, hashed like any other. It returns -1 when
// numPartitions is not positive.
func PartitionForKey(key []byte, numPartitions int32) int32 {
	if numPartitions <= 0 {
		return -1
	}
	return (Murmur2(key) & 0x7fffffff) % numPartitions
}

// murmur2Partitioner is a sarama.Partitioner placing keyed records where the
// Java client places them and NULL-keyed records on a random partition; a
// Record with ExplicitPartition goes to its Partition.
type murmur2Partitioner struct{}

var _ sarama.DynamicConsistencyPartitioner = murmur2Partitioner{}

// newMurmur2Partitioner is a sarama.PartitionerConstructor.
func newMurmur2Partitioner(string) sarama.Partitioner { return murmur2Partitioner{} }

// Partition implements sarama.Partitioner.
func (murmur2Partitioner) Partition(msg *sarama.ProducerMessage, numPartitions int32) (int32, error) {
	if numPartitions <= 0 {
		return -1, fmt.Errorf("partition record for topic %q: no partitions", msg.Topic)
	}
	if r, ok := msg.Metadata.(*Record); ok && r.ExplicitPartition {
		if r.Partition < 0 || r.Partition >= numPartitions {
			return -1, partitionError(msg.Topic, r.Partition, numPartitions)
		}
		return r.Partition, nil
	}
	if msg.Key == nil {
		return rand.Int32N(numPartitions), nil
	}
	key, err := msg.Key.Encode()
	if err != nil {
		return -1, fmt.Errorf("encode key for topic %q: %w", msg.Topic, err)
	}
	return PartitionForKey(key, numPartitions), nil
}

// RequiresConsistency implements sarama.Partitioner: a key's partition must
// not depend on which partitions are available right now.
func (murmur2Partitioner) RequiresConsistency() bool { return true }

// MessageRequiresConsistency implements sarama.DynamicConsistencyPartitioner:
// NULL-keyed records may go to any available partition; a record with an
// explicit partition is numbered among all of them.
func (murmur2Partitioner) MessageRequiresConsistency(msg *sarama.ProducerMessage) bool {
	if r, ok := msg.Metadata.(*Record); ok && r.ExplicitPartition {
		return true
	}
	return msg.Key != nil
}
