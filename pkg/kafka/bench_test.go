package kafka

import (
	"bytes"
	"context"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kfake"
)

// benchRecord is shaped like a tailbox envelope event: a UUID id header, a
// type header, one additional header and a value of about 700 bytes.
func benchRecord(topic string) *Record {
	return &Record{
		Topic: topic,
		Key:   []byte("member-4711"),
		Value: bytes.Repeat([]byte("x"), 700),
		Headers: []Header{
			{Key: "id", Value: []byte("00000000-0000-4000-8000-00000000002a")},
			{Key: "type", Value: []byte("MemberUpdated")},
			{Key: "tenantId", Value: []byte("acme")},
		},
		Timestamp: time.Date(2026, 11, 24, 17, 21, 10, 0, time.UTC),
	}
}

// BenchmarkMessage measures what Send does per record before handing it to
// sarama.
func BenchmarkMessage(b *testing.B) {
	r := benchRecord("bench")
	b.ReportAllocs()
	for b.Loop() {
		if msg := r.message(); msg.Metadata != r {
			b.Fatal("wrong metadata")
		}
	}
}

// BenchmarkSend measures Send through to the Ack against an in-process
// kfake broker (whose own work and allocations are included).
func BenchmarkSend(b *testing.B) {
	const topic = "bench"
	c, err := kfake.NewCluster(kfake.NumBrokers(1), kfake.SeedTopics(8, topic))
	if err != nil {
		b.Fatal(err)
	}
	defer c.Close()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	p, err := New(ctx, Config{Brokers: c.ListenAddrs(), ClientID: "tailbox-bench", DialTimeout: 5 * time.Second})
	if err != nil {
		b.Fatal(err)
	}
	done := make(chan int)
	go func() {
		n := 0
		for a := range p.Acks() {
			if a.Err == nil {
				n++
			}
		}
		done <- n
	}()
	r := benchRecord(topic)
	sent := 0
	b.ReportAllocs()
	for b.Loop() {
		if err := p.Send(ctx, r); err != nil {
			b.Fatal(err)
		}
		sent++
	}
	if err := p.Close(ctx); err != nil {
		b.Fatal(err)
	}
	b.StopTimer()
	if n := <-done; n != sent {
		b.Fatalf("%d of %d records acknowledged", n, sent)
	}
}
