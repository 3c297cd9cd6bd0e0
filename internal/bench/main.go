// Command bench measures tailbox against the binlog ceiling (backlog
// scenario of the performance issue): it writes a backlog of outbox rows to
// a MariaDB, then times, on the same binlog range and the same broker,
//
//   - ceiling_read: go-mysql alone reading and decoding the range;
//   - ceiling_produce: the producer alone (pkg/kafka, the same safe sarama
//     settings) sending records of the same size and keys;
//   - tailbox: the built binary from the start of the range until its
//     checkpoint reaches the end, i.e. every record acknowledged.
//
// It prints a table and one machine-readable `BENCH key=value ...` line.
// scripts/bench.sh (make bench) starts the servers and runs it.
package main

import (
	"context"
	"flag"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/go-mysql-org/go-mysql/client"
	"github.com/go-mysql-org/go-mysql/mysql"
	"github.com/go-mysql-org/go-mysql/replication"

	"github.com/tailbox-cdc/tailbox/pkg/checkpoint"
	"github.com/tailbox-cdc/tailbox/pkg/kafka"
)

type options struct {
	rows, txnRows, aggregates, payload int
	mysqlAddr, user, password, brokers string
	tailbox                            string
}

func main() {
	var o options
	flag.IntVar(&o.rows, "rows", 200000, "outbox rows in the backlog")
	flag.IntVar(&o.txnRows, "txn-rows", 100, "rows per transaction")
	flag.IntVar(&o.aggregates, "aggregates", 10000, "distinct aggregate ids (keys)")
	flag.IntVar(&o.payload, "payload", 400, "approximate JSON payload bytes")
	flag.StringVar(&o.mysqlAddr, "mysql", os.Getenv("TAILBOX_TEST_MYSQL_ADDR"), "MariaDB host:port")
	flag.StringVar(&o.user, "user", os.Getenv("TAILBOX_TEST_MYSQL_USER"), "MariaDB user (all privileges)")
	flag.StringVar(&o.password, "password", os.Getenv("TAILBOX_TEST_MYSQL_PASSWORD"), "its password")
	flag.StringVar(&o.brokers, "brokers", "", "Kafka bootstrap host:port (devkafka)")
	flag.StringVar(&o.tailbox, "tailbox", "bin/tailbox", "tailbox binary")
	flag.Parse()
	if err := run(o); err != nil {
		fmt.Fprintln(os.Stderr, "bench:", err)
		os.Exit(1)
	}
}

func run(o options) error {
	if o.mysqlAddr == "" || o.brokers == "" {
		return fmt.Errorf("-mysql and -brokers are required (make bench sets them)")
	}
	db, err := client.Connect(o.mysqlAddr, o.user, o.password, "")
	if err != nil {
		return fmt.Errorf("connect: %w", err)
	}
	defer db.Close()
	schema := fmt.Sprintf("bench_%d", time.Now().UnixNano())
	if _, err := db.Execute("CREATE DATABASE " + schema); err != nil {
		return err
	}
	defer db.Execute("DROP DATABASE " + schema)
	if _, err := db.Execute(fmt.Sprintf(`CREATE TABLE %s.outbox (
  id CHAR(36) NOT NULL PRIMARY KEY, aggregatetype VARCHAR(255) NOT NULL, aggregateid VARCHAR(255) NOT NULL,
  type VARCHAR(255) NOT NULL, payload JSON, created_at TIMESTAMP(6) NOT NULL DEFAULT CURRENT_TIMESTAMP(6))`, schema)); err != nil {
		return err
	}
	startFile, startPos, err := status(db)
	if err != nil {
		return err
	}
	fmt.Printf("writing %d outbox rows (%d per transaction, %d aggregates, ~%d-byte payload) to %s...\n", o.rows, o.txnRows, o.aggregates, o.payload, schema)
	t0 := time.Now()
	if err := writeBacklog(db, schema, o); err != nil {
		return err
	}
	endFile, endPos, err := status(db)
	if err != nil {
		return err
	}
	fmt.Printf("backlog written in %.1fs: %s:%d .. %s:%d\n", time.Since(t0).Seconds(), startFile, startPos, endFile, endPos)

	readDur, readRows, err := ceilingRead(o, startFile, startPos, endFile, endPos)
	if err != nil {
		return fmt.Errorf("ceiling_read: %w", err)
	}
	if readRows != o.rows {
		return fmt.Errorf("ceiling_read decoded %d rows, want %d", readRows, o.rows)
	}
	prodDur, err := ceilingProduce(o)
	if err != nil {
		return fmt.Errorf("ceiling_produce: %w", err)
	}
	tb, err := runTailbox(o, schema, startFile, startPos, endFile, endPos)
	if err != nil {
		return fmt.Errorf("tailbox: %w", err)
	}

	rate := func(d time.Duration) float64 { return float64(o.rows) / d.Seconds() }
	composed := 1 / (1/rate(readDur) + 1/rate(prodDur))
	fmt.Printf("\n%-16s %12s %12s\n", "scenario", "seconds", "events/s")
	fmt.Printf("%-16s %12.2f %12.0f\n", "ceiling_read", readDur.Seconds(), rate(readDur))
	fmt.Printf("%-16s %12.2f %12.0f\n", "ceiling_produce", prodDur.Seconds(), rate(prodDur))
	fmt.Printf("%-16s %12s %12.0f\n", "composed", "", composed)
	fmt.Printf("%-16s %12.2f %12.0f\n", "tailbox backlog", tb.dur.Seconds(), rate(tb.dur))
	fmt.Printf("tailbox: %.2f CPU s per 100k events, peak RSS %.1f MiB, %.0f%% of the composed ceiling\n",
		tb.cpu.Seconds()/float64(o.rows)*1e5, float64(tb.maxRSSKiB)/1024, 100*rate(tb.dur)/composed)
	fmt.Printf("BENCH scenario=backlog rows=%d events_per_s=%.0f ceiling_read=%.0f ceiling_produce=%.0f composed=%.0f ratio_composed=%.3f ratio_read=%.3f ratio_produce=%.3f cpu_s_per_100k=%.3f peak_rss_mib=%.1f\n",
		o.rows, rate(tb.dur), rate(readDur), rate(prodDur), composed, rate(tb.dur)/composed, rate(tb.dur)/rate(readDur), rate(tb.dur)/rate(prodDur),
		tb.cpu.Seconds()/float64(o.rows)*1e5, float64(tb.maxRSSKiB)/1024)
	return nil
}

func status(db *client.Conn) (string, uint32, error) {
	r, err := db.Execute("SHOW MASTER STATUS")
	if err != nil {
		return "", 0, err
	}
	f, _ := r.GetString(0, 0)
	p, _ := r.GetUint(0, 1)
	return f, uint32(p), nil
}

func writeBacklog(db *client.Conn, schema string, o options) error {
	filler := strings.Repeat("x", max(o.payload-120, 10))
	var b strings.Builder
	for n := 0; n < o.rows; {
		b.Reset()
		fmt.Fprintf(&b, "INSERT INTO %s.outbox (id, aggregatetype, aggregateid, type, payload) VALUES ", schema)
		for i := 0; i < o.txnRows && n < o.rows; i, n = i+1, n+1 {
			if i > 0 {
				b.WriteByte(',')
			}
			agg := rand.IntN(o.aggregates)
			fmt.Fprintf(&b, `('%08x-0000-4000-8000-%012x','member','member-%d','MemberUpdated','{"memberId":%d,"seq":%d,"note":"%s"}')`,
				n, n, agg, agg, n, filler)
		}
		if _, err := db.Execute(b.String()); err != nil {
			return err
		}
	}
	return nil
}

// ceilingRead streams the range with go-mysql alone, decoding every row.
func ceilingRead(o options, startFile string, startPos uint32, endFile string, endPos uint32) (time.Duration, int, error) {
	host, port, _ := net.SplitHostPort(o.mysqlAddr)
	p, _ := strconv.Atoi(port)
	s := replication.NewBinlogSyncer(replication.BinlogSyncerConfig{
		ServerID: 7999, Flavor: mysql.MariaDBFlavor, Host: host, Port: uint16(p), User: o.user, Password: o.password,
		ParseTime: true, DisableRetrySync: true, VerifyChecksum: true, EventCacheCount: 64,
		Logger: slog.New(slog.DiscardHandler),
	})
	defer s.Close()
	t0 := time.Now()
	st, err := s.StartSync(mysql.Position{Name: startFile, Pos: startPos})
	if err != nil {
		return 0, 0, err
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Minute)
	defer cancel()
	rows, file := 0, startFile
	for {
		ev, err := st.GetEvent(ctx)
		if err != nil {
			return 0, rows, err
		}
		switch e := ev.Event.(type) {
		case *replication.RotateEvent:
			file = string(e.NextLogName)
		case *replication.RowsEvent:
			rows += len(e.Rows)
		}
		if file == endFile && ev.Header.LogPos >= endPos {
			return time.Since(t0), rows, nil
		}
	}
}

// ceilingProduce sends records of the size tailbox sends, keyed alike.
func ceilingProduce(o options) (time.Duration, error) {
	ctx := context.Background()
	p, err := kafka.New(ctx, kafka.Config{Brokers: strings.Split(o.brokers, ","), Compression: "lz4", Linger: 5 * time.Millisecond})
	if err != nil {
		return 0, err
	}
	value := make([]byte, o.payload+400) // envelope framing around the payload
	for i := range value {
		value[i] = 'a' + byte(i%26)
	}
	t0 := time.Now()
	done := make(chan error, 1)
	go func() {
		n := 0
		for a := range p.Acks() {
			if a.Err != nil {
				done <- a.Err
				return
			}
			if n++; n == o.rows {
				done <- nil
				return
			}
		}
	}()
	for i := 0; i < o.rows; i++ {
		key := []byte("member-" + strconv.Itoa(rand.IntN(o.aggregates)))
		if err := p.Send(ctx, &kafka.Record{Topic: "bench.ceiling", Key: key, Value: value,
			Headers: []kafka.Header{{Key: "id", Value: []byte("00000000-0000-4000-8000-000000000000")}, {Key: "type", Value: []byte("MemberUpdated")}}}); err != nil {
			return 0, err
		}
	}
	err = <-done
	d := time.Since(t0)
	_ = p.Close(ctx)
	return d, err
}

type tailboxResult struct {
	dur       time.Duration
	cpu       time.Duration
	maxRSSKiB int64
}

// runTailbox runs the binary from the start of the range and stops it once
// its checkpoint has reached the end of the range.
func runTailbox(o options, schema, startFile string, startPos uint32, endFile string, endPos uint32) (tailboxResult, error) {
	dir, err := os.MkdirTemp("", "tailbox-bench-")
	if err != nil {
		return tailboxResult{}, err
	}
	defer os.RemoveAll(dir)
	cpFile := filepath.Join(dir, "cp.json")
	cfg := fmt.Sprintf(`name: bench
source: {addr: %q, user: %q, password: %q, server_id: 7998}
outbox: {tables: [%s.outbox]}
kafka: {brokers: [%q]}
checkpoint: {file: %q, interval: 50ms}
log: {level: warn}
`, o.mysqlAddr, o.user, o.password, schema, o.brokers, cpFile)
	cfgPath := filepath.Join(dir, "tailbox.yaml")
	if err := os.WriteFile(cfgPath, []byte(cfg), 0o600); err != nil {
		return tailboxResult{}, err
	}
	cmd := exec.Command(o.tailbox, "run", "-c", cfgPath, "--from", fmt.Sprintf("%s:%d", startFile, startPos))
	cmd.Stderr = os.Stderr
	t0 := time.Now()
	if err := cmd.Start(); err != nil {
		return tailboxResult{}, err
	}
	exited := make(chan error, 1)
	go func() { exited <- cmd.Wait() }()
	var dur time.Duration
	for dur == 0 {
		select {
		case err := <-exited:
			return tailboxResult{}, fmt.Errorf("exited early: %v", err)
		case <-time.After(10 * time.Millisecond):
		}
		cp, err := checkpoint.Read(cpFile)
		if err != nil {
			continue
		}
		if cp.Position.File > endFile || cp.Position.File == endFile && cp.Position.Pos >= endPos {
			dur = time.Since(t0)
		}
		if time.Since(t0) > 15*time.Minute {
			_ = cmd.Process.Kill()
			return tailboxResult{}, fmt.Errorf("did not reach %s:%d in 15 minutes", endFile, endPos)
		}
	}
	_ = cmd.Process.Signal(syscall.SIGTERM)
	if err := <-exited; err != nil {
		return tailboxResult{}, fmt.Errorf("stop: %w", err)
	}
	ru := cmd.ProcessState.SysUsage().(*syscall.Rusage)
	cpu := time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
	return tailboxResult{dur: dur, cpu: cpu, maxRSSKiB: ru.Maxrss}, nil
}
