package main

import (
	"encoding/hex"
	"fmt"
	"math/rand/v2"
	"os"
	"strconv"
	"strings"
	"time"

	"github.com/go-mysql-org/go-mysql/client"

	"github.com/tailbox-cdc/tailbox/pkg/binlog"
)

// env is what the scenarios share: the options, a connection to the
// server, the benchmark's database and its work directory.
type env struct {
	o      options
	db     *client.Conn
	schema string
	runID  string // distinguishes this run's topics
	work   string // configs, checkpoints
	rep    report
	rng    *rand.Rand
}

func newEnv(o options) (*env, error) {
	db, err := client.Connect(o.mysqlAddr, o.user, o.password, "")
	if err != nil {
		return nil, fmt.Errorf("connect to %s: %w", o.mysqlAddr, err)
	}
	id := strconv.FormatInt(time.Now().UnixNano(), 36)
	e := &env{o: o, db: db, schema: "bench_" + id, runID: id, rng: rand.New(rand.NewPCG(1, 2))}
	if _, err := db.Execute("CREATE DATABASE " + e.schema); err != nil {
		db.Close()
		return nil, fmt.Errorf("create database %s: %w", e.schema, err)
	}
	if e.work, err = os.MkdirTemp("", "tailbox-bench-"); err != nil {
		e.close()
		return nil, err
	}
	if o.ownServer {
		// Each run writes hundreds of MiB of binlog: keep only a new file.
		to, err := e.rotate()
		if err == nil {
			err = execSQL(db, "PURGE BINARY LOGS TO '"+to.file+"'")
		}
		if err != nil {
			e.close()
			return nil, err
		}
	}
	return e, nil
}

// rotate starts a new binlog file (on the benchmark's own server) and
// returns its start. A range that starts near the beginning of a file keeps
// MariaDB's BINLOG_GTID_POS, which tailbox uses to turn --from FILE:POS
// into a GTID and which reads the file up to POS, out of the timings.
func (e *env) rotate() (binlogPos, error) {
	if !e.o.ownServer {
		return e.status()
	}
	if err := execSQL(e.db, "FLUSH BINARY LOGS"); err != nil {
		return binlogPos{}, err
	}
	return e.status()
}

func (e *env) close() {
	if e.o.keep {
		fmt.Printf("kept database %s and %s\n", e.schema, e.work)
	} else {
		_, _ = e.db.Execute("DROP DATABASE IF EXISTS " + e.schema)
		if e.work != "" {
			_ = os.RemoveAll(e.work)
		}
	}
	e.db.Close()
}

// connect opens another connection (for concurrent writers).
func (e *env) connect() (*client.Conn, error) {
	c, err := client.Connect(e.o.mysqlAddr, e.o.user, e.o.password, e.schema)
	if err != nil {
		return nil, fmt.Errorf("connect to %s: %w", e.o.mysqlAddr, err)
	}
	return c, nil
}

// binlogPos is a file position in the binlog.
type binlogPos struct {
	file string
	pos  uint32
}

func (p binlogPos) String() string { return p.file + ":" + strconv.FormatUint(uint64(p.pos), 10) }

// reachedBy reports whether checkpoint position cp is at or after p.
func (p binlogPos) reachedBy(cp binlog.Position) bool {
	return cp.File > p.file || cp.File == p.file && cp.Pos >= p.pos
}

// status returns the end of the binlog.
func (e *env) status() (binlogPos, error) {
	r, err := e.db.Execute("SHOW MASTER STATUS")
	if err != nil {
		return binlogPos{}, fmt.Errorf("show master status: %w", err)
	}
	f, _ := r.GetString(0, 0)
	p, _ := r.GetUint(0, 1)
	return binlogPos{f, uint32(p)}, nil
}

// createOutbox creates an outbox table (DESIGN.md's layout) and returns its
// qualified name.
func (e *env) createOutbox(name string) (string, error) {
	t := e.schema + "." + name
	_, err := e.db.Execute(`CREATE TABLE ` + t + ` (
  id CHAR(36) NOT NULL PRIMARY KEY, aggregatetype VARCHAR(255) NOT NULL, aggregateid VARCHAR(255) NOT NULL,
  type VARCHAR(255) NOT NULL, payload JSON, created_at TIMESTAMP(6) NOT NULL DEFAULT CURRENT_TIMESTAMP(6))`)
	if err != nil {
		return "", fmt.Errorf("create %s: %w", t, err)
	}
	return t, nil
}

// createWide creates the wide business table of the mixed scenario.
func (e *env) createWide(name string) (string, error) {
	t := e.schema + "." + name
	_, err := e.db.Execute(`CREATE TABLE ` + t + ` (
  id BIGINT NOT NULL AUTO_INCREMENT PRIMARY KEY, customer_id BIGINT NOT NULL, order_no VARCHAR(40) NOT NULL,
  status VARCHAR(20) NOT NULL, currency CHAR(3) NOT NULL, amount DECIMAL(12,2) NOT NULL, tax DECIMAL(12,2) NOT NULL,
  discount DECIMAL(12,2), qty INT NOT NULL, weight DOUBLE, is_gift TINYINT(1) NOT NULL,
  created_at DATETIME(6) NOT NULL, updated_at TIMESTAMP(6) NOT NULL DEFAULT CURRENT_TIMESTAMP(6), ship_date DATE,
  email VARCHAR(255), phone VARCHAR(32), street VARCHAR(255), city VARCHAR(100), zip VARCHAR(16), country CHAR(2),
  sku VARCHAR(64), channel ENUM('web','app','store') NOT NULL, tags SET('new','vip','promo','b2b'),
  note TEXT, attrs JSON)`)
	if err != nil {
		return "", fmt.Errorf("create %s: %w", t, err)
	}
	return t, nil
}

// eventID is the id column of outbox row seq; seqOf inverts it.
func eventID(seq int) string { return fmt.Sprintf("00000000-0000-4000-8000-%012x", seq) }

func seqOf(id []byte) (int, bool) {
	i := strings.LastIndexByte(string(id), '-')
	if i < 0 {
		return 0, false
	}
	n, err := strconv.ParseUint(string(id[i+1:]), 16, 48)
	return int(n), err == nil
}

// outboxInsert returns an INSERT of the outbox rows seq in [from, to) into
// table, drawing from rng: aggregate type "member", a random aggregate among o.aggregates and
// a JSON payload of about o.payload bytes whose filler is random hex, so
// that record batches compress like real data rather than like one repeated
// byte.
func (e *env) outboxInsert(rng *rand.Rand, table string, from, to int) string {
	var b strings.Builder
	b.Grow((to - from) * (e.o.payload + 150))
	b.WriteString("INSERT INTO " + table + " (id, aggregatetype, aggregateid, type, payload) VALUES ")
	fill := make([]byte, max(e.o.payload-60, 10)/2)
	hexed := make([]byte, 2*len(fill))
	for n := from; n < to; n++ {
		if n > from {
			b.WriteByte(',')
		}
		for i := range fill {
			fill[i] = byte(rng.Uint32())
		}
		hex.Encode(hexed, fill)
		agg := rng.IntN(e.o.aggregates)
		fmt.Fprintf(&b, `('%s','member','member-%d','MemberUpdated','{"memberId":%d,"seq":%d,"note":"%s"}')`,
			eventID(n), agg, agg, n, hexed)
	}
	return b.String()
}

// wideInsert returns an INSERT of n rows into the wide table.
func (e *env) wideInsert(table string, n int) string {
	var b strings.Builder
	b.WriteString("INSERT INTO " + table + ` (customer_id, order_no, status, currency, amount, tax, discount, qty, weight,
  is_gift, created_at, ship_date, email, phone, street, city, zip, country, sku, channel, tags, note, attrs) VALUES `)
	statuses := []string{"new", "paid", "shipped", "delivered", "cancelled"}
	channels := []string{"web", "app", "store"}
	for i := 0; i < n; i++ {
		if i > 0 {
			b.WriteByte(',')
		}
		r := e.rng
		c := r.IntN(1_000_000)
		fmt.Fprintf(&b, `(%d,'ORD-%010d','%s','EUR',%d.%02d,%d.%02d,%d.00,%d,%g,%d,'2026-%02d-%02d 12:%02d:%02d.%06d','2026-%02d-%02d',`+
			`'customer%d@example.com','+49 30 %08d','%d Long Street Name Apartment %d','Some City %d','%05d','DE','SKU-%08X-%04d','%s','vip,promo',`+
			`'%s','{"source":"bench","score":%d,"flags":[1,2,3],"comment":"%s"}')`,
			c, r.IntN(1e9), statuses[r.IntN(len(statuses))], r.IntN(100000), r.IntN(100), r.IntN(20000), r.IntN(100), r.IntN(50),
			1+r.IntN(20), float64(r.IntN(100000))/100, r.IntN(2), 1+r.IntN(12), 1+r.IntN(28), r.IntN(60), r.IntN(60), r.IntN(1e6),
			1+r.IntN(12), 1+r.IntN(28), c, r.IntN(1e8), r.IntN(999), r.IntN(99), r.IntN(500), r.IntN(99999), r.Uint32(), r.IntN(9999),
			channels[r.IntN(len(channels))], strings.Repeat("lorem ipsum dolor sit amet ", 4), r.IntN(1000), strings.Repeat("z", 40))
	}
	return b.String()
}

// execSQL runs statements on c, wrapping errors with the statement's start.
func execSQL(c *client.Conn, stmts ...string) error {
	for _, s := range stmts {
		if _, err := c.Execute(s); err != nil {
			return fmt.Errorf("%.60s...: %w", s, err)
		}
	}
	return nil
}
