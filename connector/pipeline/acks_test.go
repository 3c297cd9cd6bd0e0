package pipeline

import (
	"testing"

	"github.com/tailbox-cdc/tailbox/pkg/kafka"
)

func TestAckCommitTimeOfRecordsThatAreNoEvents(t *testing.T) {
	tests := []struct {
		name string
		meta any
		want int64
	}{
		{"an event's record gives its transaction's commit time", &sendMeta{commit: 42}, 42},
		{"an event of unknown commit time gives 0", &sendMeta{}, 0},
		{"a checkpoint record gives 0", checkpointMeta{}, 0},
		{"a record without Meta gives 0", nil, 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ack := kafka.Ack{Record: &kafka.Record{Meta: tt.meta}}
			meta, _ := ack.Record.Meta.(*sendMeta) // as the acknowledgement loop takes it
			if got := meta.commitNanos(); got != tt.want {
				t.Errorf("commitNanos() = %d, want %d", got, tt.want)
			}
		})
	}
}
