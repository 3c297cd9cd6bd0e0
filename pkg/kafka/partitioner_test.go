package kafka

import (
	"errors"
	"fmt"
	"testing"

	"github.com/IBM/sarama"
	"github.com/twmb/franz-go/pkg/kgo"
)

// The vectors are Kafka's UtilsTest.testMurmur2 (clients/src/test/java/org/
// apache/kafka/common/utils/UtilsTest.java), pinned identically by franz-go's
// kgo TestMurmur2KafkaVectors, plus librdkafka's rdmurmur2.c unit test
// vectors (one per tail length) and the empty key.
func TestMurmur2MatchesKafkaVectors(t *testing.T) {
	tests := []struct {
		in   string
		want int32
	}{
		{"21", -973932308},
		{"foobar", -790332482},
		{"a-little-bit-long-string", -985981536},
		{"a-little-bit-longer-string", -1486304829},
		{"lkjh234lh9fiuh90y23oiuhsafujhadof229phr9h19h89h8", -58897971},
		{"abc", 479470107},
		{"kafka", -798503068},
		{"giberish123456789", -1890243828},
		{"1234", -1614185708},
		{"234", -406844982},
		{"34", -2026295078},
		{"4", 1514888353},
		{"PreAmbleWillBeRemoved,ThePrePartThatIs", 2017611548},
		{"", 275646681},
	}
	for _, tt := range tests {
		t.Run(fmt.Sprintf("murmur2 of %q is %d", tt.in, tt.want), func(t *testing.T) {
			if got := Murmur2([]byte(tt.in)); got != tt.want {
				t.Errorf("Murmur2(%q) = %d, want %d", tt.in, got, tt.want)
			}
		})
	}
}

// kgo.StickyKeyPartitioner(nil) is franz-go's Java-compatible key
// partitioner: an independent implementation to agree with.
func TestPartitionForKeyAgreesWithFranzGo(t *testing.T) {
	kp := kgo.StickyKeyPartitioner(nil).ForTopic("t")
	for _, n := range []int32{1, 2, 3, 7, 8, 12, 50, 1000} {
		for i := range 2000 {
			key := fmt.Appendf(nil, "aggregate-%d-%x", i, i*7919)
			want := int32(kp.Partition(&kgo.Record{Key: key}, int(n)))
			if got := PartitionForKey(key, n); got != want {
				t.Fatalf("PartitionForKey(%q, %d) = %d, franz-go picks %d", key, n, got, want)
			}
		}
	}
}

func TestPartitionerPlacesRecords(t *testing.T) {
	p := newMurmur2Partitioner("t").(sarama.DynamicConsistencyPartitioner)
	t.Run("a key goes where murmur2 puts it and needs consistency", func(t *testing.T) {
		msg := &sarama.ProducerMessage{Topic: "t", Key: sarama.StringEncoder("foobar")}
		got, err := p.Partition(msg, 50)
		if err != nil || got != 16 { // (-790332482 & 0x7fffffff) % 50
			t.Fatalf("Partition = %d, %v; want 16", got, err)
		}
		if !p.MessageRequiresConsistency(msg) || !p.RequiresConsistency() {
			t.Fatal("keyed records must require consistency")
		}
	})
	t.Run("an empty key is hashed, not treated as NULL", func(t *testing.T) {
		msg := &sarama.ProducerMessage{Topic: "t", Key: sarama.ByteEncoder([]byte{})}
		got, err := p.Partition(msg, 1000)
		if err != nil || got != PartitionForKey(nil, 1000) || got != 275646681%1000 {
			t.Fatalf("Partition = %d, %v; want %d", got, err, 275646681%1000)
		}
	})
	t.Run("a NULL key goes to a random partition without consistency", func(t *testing.T) {
		msg := &sarama.ProducerMessage{Topic: "t"}
		if p.MessageRequiresConsistency(msg) {
			t.Fatal("NULL-keyed records must not require consistency")
		}
		seen := map[int32]bool{}
		for range 1000 {
			got, err := p.Partition(msg, 8)
			if err != nil || got < 0 || got >= 8 {
				t.Fatalf("Partition = %d, %v", got, err)
			}
			seen[got] = true
		}
		if len(seen) != 8 {
			t.Fatalf("1000 NULL-keyed records used partitions %v, want all 8", seen)
		}
	})
	t.Run("an explicit partition wins over the key and needs consistency", func(t *testing.T) {
		r := &Record{Topic: "t", Key: []byte("foobar"), ExplicitPartition: true, Partition: 3}
		msg := r.message()
		got, err := p.Partition(msg, 50)
		if err != nil || got != 3 {
			t.Fatalf("Partition = %d, %v; want 3", got, err)
		}
		r.Key = nil
		if msg = r.message(); !p.MessageRequiresConsistency(msg) {
			t.Fatal("a NULL-keyed record with an explicit partition must require consistency")
		}
		if got, err = p.Partition(msg, 50); err != nil || got != 3 {
			t.Fatalf("NULL key: Partition = %d, %v; want 3", got, err)
		}
	})
	t.Run("an explicit partition outside the topic is ErrInvalidPartition", func(t *testing.T) {
		for _, part := range []int32{8, 9, -1} {
			r := &Record{Topic: "t", Key: []byte("k"), ExplicitPartition: true, Partition: part}
			_, err := p.Partition(r.message(), 8)
			if !errors.Is(err, ErrInvalidPartition) || !IsPermanent(err) || halts(err) {
				t.Fatalf("partition %d of 8: err %v, want ErrInvalidPartition, permanent, not halting", part, err)
			}
			t.Logf("partition %d: %v", part, err)
		}
	})
	t.Run("no partitions is an error", func(t *testing.T) {
		if _, err := p.Partition(&sarama.ProducerMessage{Topic: "t"}, 0); err == nil {
			t.Fatal("want an error")
		}
	})
}
