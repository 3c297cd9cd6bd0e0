// Command bench is tailbox's performance benchmark (make bench). Against a
// MariaDB and a Kafka-protocol broker (devkafka) it runs the tailbox binary
// as a separate process and measures, in the same run, the ceilings it is
// compared with, so that the ratios hold on a noisy machine:
//
//   - ceiling_read: go-mysql alone streaming and decoding the same binlog
//     range, discarding the rows;
//   - ceiling_produce: the producer alone (pkg/kafka, the same sarama
//     settings as tailbox) sending the very records tailbox produced (a
//     sample of them, cycled) to the same broker.
//
// Scenarios (-scenario, comma-separated; default all):
//
//   - backlog: -rows outbox rows already in the binlog, tailbox started
//     before them (--from FILE:POS), timed from exec until its checkpoint
//     file reaches the end of the range, i.e. every record acknowledged and
//     checkpointed. Compared with the composed ceiling
//     1/(1/ceiling_read + 1/ceiling_produce).
//   - mixed: the same, but outbox rows are -mixed-share of the rows and the
//     rest are rows of a wide business table in the same transactions;
//     compared with go-mysql reading and decoding every row of the range.
//   - live: a steady -live-rate events/s for -live-duration, one outbox row
//     per transaction; latency from just before the COMMIT is sent until a
//     consumer (franz-go) has fetched the record, acks=all. Floors: go-mysql
//     alone reading the same binlog meanwhile, and pkg/kafka alone producing
//     at the same rate afterwards (see live.go).
//   - live-eo: live with delivery: exactly_once, consumed read_committed.
//   - bigtxn: one transaction of -bigtxn-rows outbox rows; peak RSS.
//   - startup: exec of the binary, restarting from a checkpoint, until a
//     consumer fetches the one event that was already waiting in the binlog
//     (see startup.go).
//
// backlog and mixed run -repeat rounds (ceilings and tailbox one after the
// other) and report the medians, so that a burst of load elsewhere on the
// machine moves a ratio less; the backlog target is judged on the median of
// the rounds' own ratios (each round's ceilings were measured within
// seconds of its tailbox run). Every tailbox run reports CPU seconds per
// 100k events (rusage) and peak RSS (VmHWM). The output is a table, the
// targets of the performance issue with PASS/FAIL (not reflected in the
// exit status), and one machine-readable line `BENCH key=value ...`.
//
// With -profile DIR the backlog is run once more in a profiling process
// (this binary's connector subcommand: the same connector package as
// tailbox) that writes CPU, heap and block profiles to DIR; the live run,
// if selected, is that process too and also writes 5s of execution trace.
//
// The exit status is 1 when a scenario could not be run, else 0.
package main

import (
	"flag"
	"fmt"
	"os"
	"slices"
	"strings"
	"time"
)

// scenarioNames are the scenarios in the order they run.
var scenarioNames = []string{"backlog", "mixed", "live", "live-eo", "bigtxn", "startup"}

// options are the command-line flags.
type options struct {
	// cleanup runs tailbox with outbox.cleanup on.
	cleanup   bool
	scenarios map[string]bool

	rows, txnRows, aggregates, payload int

	mixedRows  int
	mixedShare float64

	liveRate     int
	liveDuration time.Duration
	liveWriters  int

	bigRows int

	startupRuns int
	repeat      int
	interval    time.Duration // checkpoint interval of timed ranges

	profileDir string

	mysqlAddr, user, password, brokers string
	tailbox, compare                   string
	keep, ownServer                    bool
}

func main() {
	if len(os.Args) > 1 && os.Args[1] == "connector" {
		os.Exit(connectorMain(os.Args[2:]))
	}
	var o options
	var scenarios string
	flag.StringVar(&scenarios, "scenario", "all", "scenarios to run, comma-separated: all or "+strings.Join(scenarioNames, ","))
	flag.IntVar(&o.rows, "rows", 1000000, "backlog: outbox rows")
	flag.IntVar(&o.txnRows, "txn-rows", 100, "backlog, mixed: rows per transaction")
	flag.IntVar(&o.aggregates, "aggregates", 10000, "distinct aggregate ids (record keys)")
	flag.IntVar(&o.payload, "payload", 400, "approximate JSON payload bytes of an outbox row")
	flag.IntVar(&o.mixedRows, "mixed-rows", 30000, "mixed: outbox rows (the wide-table rows come on top)")
	flag.Float64Var(&o.mixedShare, "mixed-share", 0.10, "mixed: share of outbox rows among all rows of the range")
	flag.IntVar(&o.liveRate, "live-rate", 2000, "live: events (transactions) per second")
	flag.DurationVar(&o.liveDuration, "live-duration", 30*time.Second, "live: how long to write")
	flag.IntVar(&o.liveWriters, "live-writers", 4, "live: writer connections sharing the rate")
	flag.IntVar(&o.bigRows, "bigtxn-rows", 200000, "bigtxn: rows of the one transaction")
	flag.IntVar(&o.startupRuns, "startup-runs", 5, "startup: timed starts")
	flag.DurationVar(&o.interval, "checkpoint-interval", defaultInterval, "checkpoint interval of the runs timed to their checkpoint (backlog, mixed, bigtxn, startup); tailbox also writes it when it has caught up, builds from before that only every interval: -compare with those at a short one, such as 20ms")
	flag.IntVar(&o.repeat, "repeat", 5, "backlog, mixed: rounds of ceilings and tailbox; the backlog target is judged on the median of the rounds' ratios")
	flag.StringVar(&o.profileDir, "profile", "", "write CPU and heap profiles to `DIR`: of an extra backlog run, and of the live run (which then is the profiling process)")
	flag.StringVar(&o.mysqlAddr, "mysql", os.Getenv("TAILBOX_TEST_MYSQL_ADDR"), "MariaDB host:port")
	flag.StringVar(&o.user, "user", os.Getenv("TAILBOX_TEST_MYSQL_USER"), "MariaDB user (all privileges)")
	flag.StringVar(&o.password, "password", os.Getenv("TAILBOX_TEST_MYSQL_PASSWORD"), "its password")
	flag.StringVar(&o.brokers, "brokers", "", "Kafka bootstrap host:port (devkafka)")
	flag.StringVar(&o.tailbox, "tailbox", "bin/tailbox", "tailbox binary")
	flag.StringVar(&o.compare, "compare", "", "backlog: another tailbox `binary` (e.g. built from an older commit) run in every round next to -tailbox, in alternating order, for a paired comparison")
	flag.BoolVar(&o.cleanup, "cleanup", false, "backlog, mixed, bigtxn, startup: run tailbox with outbox.cleanup on (rate unbounded), deleting the rows it published; in backlog's later rounds the rows are gone already and the DELETEs find none: use -repeat 1 for the cost of deleting")
	flag.BoolVar(&o.keep, "keep", false, "keep the benchmark database and the work directory")
	flag.BoolVar(&o.ownServer, "own-server", false, "the server is the benchmark's own (make bench's): purge its old binary logs first and rotate the binlog before each scenario")
	flag.Parse()
	if flag.NArg() > 0 {
		fmt.Fprintf(os.Stderr, "bench: unexpected argument %q\n", flag.Arg(0))
		os.Exit(2)
	}
	var err error
	if o.scenarios, err = parseScenarios(scenarios); err == nil {
		err = o.validate()
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "bench:", err)
		os.Exit(2)
	}
	if err := run(o); err != nil {
		fmt.Fprintln(os.Stderr, "bench:", err)
		os.Exit(1)
	}
}

func parseScenarios(s string) (map[string]bool, error) {
	m := map[string]bool{}
	for _, name := range strings.Split(s, ",") {
		name = strings.TrimSpace(name)
		switch {
		case name == "all":
			for _, n := range scenarioNames {
				m[n] = true
			}
		case slices.Contains(scenarioNames, name):
			m[name] = true
		default:
			return nil, fmt.Errorf("-scenario: unknown scenario %q (want all or some of %s)", name, strings.Join(scenarioNames, ","))
		}
	}
	return m, nil
}

func (o options) validate() error {
	var errs []string
	positive := func(name string, v int) {
		if v <= 0 {
			errs = append(errs, fmt.Sprintf("%s: must be positive (got %d)", name, v))
		}
	}
	positive("-rows", o.rows)
	positive("-txn-rows", o.txnRows)
	positive("-aggregates", o.aggregates)
	positive("-mixed-rows", o.mixedRows)
	positive("-live-rate", o.liveRate)
	positive("-live-writers", o.liveWriters)
	positive("-bigtxn-rows", o.bigRows)
	positive("-startup-runs", o.startupRuns)
	positive("-repeat", o.repeat)
	if o.payload < 100 {
		errs = append(errs, fmt.Sprintf("-payload: must be at least 100 (got %d)", o.payload))
	}
	if o.mixedShare <= 0 || o.mixedShare > 1 {
		errs = append(errs, fmt.Sprintf("-mixed-share: must be in (0, 1] (got %g)", o.mixedShare))
	}
	if o.interval < time.Millisecond {
		errs = append(errs, fmt.Sprintf("-checkpoint-interval: must be at least 1ms (got %s)", o.interval))
	}
	if o.liveDuration < time.Second {
		errs = append(errs, fmt.Sprintf("-live-duration: must be at least 1s (got %s)", o.liveDuration))
	}
	if o.profileDir != "" && !o.scenarios["backlog"] && !o.scenarios["live"] {
		errs = append(errs, "-profile: profiles the backlog and live scenarios, which -scenario leaves out")
	}
	if o.mysqlAddr == "" || o.brokers == "" {
		errs = append(errs, "-mysql and -brokers are required (make bench sets them)")
	}
	if len(errs) > 0 {
		return fmt.Errorf("%s", strings.Join(errs, "\n  "))
	}
	return nil
}

func run(o options) error {
	e, err := newEnv(o)
	if err != nil {
		return err
	}
	defer e.close()
	fmt.Printf("bench: database %s, topics bench.%s.*, brokers %s, tailbox %s\n", e.schema, e.runID, o.brokers, o.tailbox)

	var failed []string
	for _, name := range scenarioNames {
		if !o.scenarios[name] {
			continue
		}
		fmt.Printf("\n== %s\n", name)
		var err error
		switch name {
		case "backlog":
			err = e.backlog()
		case "mixed":
			err = e.mixed()
		case "live":
			err = e.live()
		case "live-eo":
			err = e.liveEO()
		case "bigtxn":
			err = e.bigTxn()
		case "startup":
			err = e.startup()
		}
		if err != nil {
			fmt.Fprintf(os.Stderr, "bench: %s: %v\n", name, err)
			e.rep.key(name+"_error", 1)
			failed = append(failed, name)
		}
	}
	fmt.Println()
	e.rep.print(os.Stdout)
	if len(failed) > 0 {
		return fmt.Errorf("scenarios that could not be run: %s", strings.Join(failed, ", "))
	}
	return nil
}
