package kafka

import (
	"testing"

	"github.com/IBM/sarama"
)

func TestRecordSizeMatchesSarama(t *testing.T) {
	tests := []struct {
		name string
		rec  Record
	}{
		{name: "an empty record", rec: Record{}},
		{name: "key and value", rec: Record{Key: []byte("m-1"), Value: make([]byte, 1234)}},
		{name: "headers count too", rec: Record{Key: []byte("k"), Value: []byte("v"), Headers: []Header{{Key: "id", Value: []byte("abc")}, {Key: "type", Value: nil}}}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			m := &sarama.ProducerMessage{}
			if tc.rec.Key != nil {
				m.Key = sarama.ByteEncoder(tc.rec.Key)
			}
			if tc.rec.Value != nil {
				m.Value = sarama.ByteEncoder(tc.rec.Value)
			}
			for _, h := range tc.rec.Headers {
				m.Headers = append(m.Headers, sarama.RecordHeader{Key: []byte(h.Key), Value: h.Value})
			}
			if got, want := tc.rec.Size(), m.ByteSize(2); got != want {
				t.Fatalf("Size() = %d, sarama's ByteSize(2) = %d", got, want)
			}
		})
	}
	p := &Producer{maxMessageBytes: 100}
	if err := p.Fits(&Record{Value: make([]byte, 200)}); err == nil {
		t.Fatal("a 200-byte value fits under max_message_bytes 100")
	}
	if err := p.Fits(&Record{Value: make([]byte, 10)}); err != nil {
		t.Fatalf("a 10-byte value: %v", err)
	}
}
