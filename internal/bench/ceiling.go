package main

import (
	"context"
	"fmt"
	"log/slog"
	"net"
	"strconv"
	"strings"
	"time"

	"github.com/go-mysql-org/go-mysql/mysql"
	"github.com/go-mysql-org/go-mysql/replication"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/tailbox-cdc/tailbox/pkg/kafka"
)

// ceilingRead streams [from, to) with go-mysql alone — the reader's syncer
// settings, but every row of every table decoded — and returns the time
// from StartSync to the event ending at to, and the rows decoded.
func (e *env) ceilingRead(from, to binlogPos) (time.Duration, int, error) {
	s := e.syncer(7999)
	defer s.Close()
	t0 := time.Now()
	st, err := s.StartSync(mysql.Position{Name: from.file, Pos: from.pos})
	if err != nil {
		return 0, 0, fmt.Errorf("start sync at %s: %w", from, err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Minute)
	defer cancel()
	rows, file := 0, from.file
	for {
		ev, err := st.GetEvent(ctx)
		if err != nil {
			return 0, rows, fmt.Errorf("read %s..%s: %w", from, to, err)
		}
		switch ev := ev.Event.(type) {
		case *replication.RotateEvent:
			file = string(ev.NextLogName)
		case *replication.RowsEvent:
			rows += len(ev.Rows)
		}
		if file == to.file && ev.Header.LogPos >= to.pos || file > to.file {
			return time.Since(t0), rows, nil
		}
	}
}

// syncer returns a go-mysql binlog syncer with the reader's settings.
func (e *env) syncer(serverID uint32) *replication.BinlogSyncer {
	host, port, _ := net.SplitHostPort(e.o.mysqlAddr)
	p, _ := strconv.Atoi(port)
	return replication.NewBinlogSyncer(replication.BinlogSyncerConfig{
		ServerID: serverID, Flavor: mysql.MariaDBFlavor, Host: host, Port: uint16(p), User: e.o.user, Password: e.o.password,
		ParseTime: true, TimestampStringLocation: time.UTC, RenderJSONAsMySQLText: true,
		DisableRetrySync: true, VerifyChecksum: true, EventCacheCount: 16,
		Logger: slog.New(slog.DiscardHandler),
	})
}

// ceilingProduce sends n records with the producer alone, cycling through
// sample (records tailbox produced: same keys, values, headers and
// timestamps), to topic; it returns the time until the last is
// acknowledged.
func (e *env) ceilingProduce(sample []*kgo.Record, n int, topic string) (time.Duration, error) {
	if len(sample) == 0 {
		return 0, fmt.Errorf("no sample records")
	}
	recs := make([]kafka.Record, len(sample))
	for i, s := range sample {
		r := kafka.Record{Topic: topic, Key: s.Key, Value: s.Value, Timestamp: s.Timestamp}
		for _, h := range s.Headers {
			r.Headers = append(r.Headers, kafka.Header{Key: h.Key, Value: h.Value})
		}
		recs[i] = r
	}
	ctx := context.Background()
	// tailbox's defaults: acks=all (idempotent), lz4, linger 5ms.
	p, err := kafka.New(ctx, kafka.Config{Brokers: strings.Split(e.o.brokers, ","), Compression: "lz4", Linger: 5 * time.Millisecond,
		MaxMessageBytes: 1000000})
	if err != nil {
		return 0, err
	}
	t0 := time.Now()
	done := make(chan error, 1)
	go func() {
		got := 0
		var first error
		for a := range p.Acks() {
			if a.Err != nil && first == nil {
				first = a.Err
			}
			if got++; got == n {
				done <- first
				return
			}
		}
		done <- fmt.Errorf("acks closed after %d of %d", got, n)
	}()
	for i := 0; i < n; i++ {
		r := recs[i%len(recs)] // a copy: the producer keeps the pointer until its ack
		if err := p.Send(ctx, &r); err != nil {
			_ = p.Close(ctx)
			return 0, err
		}
	}
	err = <-done
	d := time.Since(t0)
	cctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	_ = p.Close(cctx)
	return d, err
}
