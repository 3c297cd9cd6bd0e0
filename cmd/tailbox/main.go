// Command tailbox is a transactional-outbox CDC connector: it tails a MySQL
// or MariaDB binlog and publishes every committed outbox row to Kafka.
//
//	tailbox run     -c FILE [--from SPEC] [--dry-run]
//	tailbox check   -c FILE
//	tailbox offsets show -c FILE
//	tailbox offsets set  -c FILE --from SPEC
//	tailbox health  [-url URL] [-timeout D]
//	tailbox version
//
// Exit status: 0 clean stop, 1 runtime failure, 2 usage or configuration
// error; check exits 0 only when every item passes and 1 when one fails.
package main

import (
	_ "time/tzdata" // timestamp_zone works on hosts without zoneinfo

	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"log"
	"net/http"
	"os"
	"os/signal"
	"runtime"
	"strings"
	"syscall"
	"time"

	"github.com/IBM/sarama"
	"github.com/rs/zerolog"

	"github.com/tailbox-cdc/tailbox/config"
	"github.com/tailbox-cdc/tailbox/connector"
	"github.com/tailbox-cdc/tailbox/connector/preflight"
	"github.com/tailbox-cdc/tailbox/internal/knobs"
)

// version is set at build time with -ldflags "-X main.version=...".
var version = "dev"

// Exit statuses.
const (
	exitOK      = 0
	exitFailure = 1
	exitUsage   = 2
)

const usage = `tailbox — transactional-outbox CDC: MySQL/MariaDB binlog → Kafka

Usage:
  tailbox run     -c FILE [--from SPEC] [--dry-run]
  tailbox check   -c FILE
  tailbox offsets show -c FILE
  tailbox offsets set  -c FILE --from SPEC
  tailbox health  [-url URL] [-timeout D]
  tailbox version

run      stream outbox events to Kafka, checkpointing the binlog position
check    preflight: server reachable, binlog settings, grants, outbox tables,
         server_id, start position and Kafka, each line ok, warn or FAIL
         with the exact fix; writes and produces nothing
offsets  show or replace the stored checkpoint
health   probe a running tailbox's /healthz (for container healthchecks;
         default URL http://127.0.0.1:7391/healthz): exit 0 when it answers 2xx

SPEC is latest, earliest, FILE:POS, gtid:SET or time:RFC3339.
Exit status: 0 clean stop, 1 runtime failure (check: an item failed),
2 usage or configuration error.
`

func main() {
	// tailbox serves no heap profile, so allocations are not sampled for
	// one: sampling costs CPU on the hot path. (`make bench ARGS=-profile`
	// profiles the bench binary, which keeps sampling.)
	runtime.MemProfileRate = 0
	os.Exit(run(os.Args[1:], os.Stdout, os.Stderr))
}

// usageError is a command-line mistake (exit 2).
type usageError struct{ msg string }

func (e usageError) Error() string { return e.msg }

func run(args []string, stdout, stderr io.Writer) int {
	if len(args) == 0 {
		fmt.Fprint(stderr, usage)
		return exitUsage
	}
	var err error
	switch args[0] {
	case "run":
		err = cmdRun(args[1:], stdout, stderr)
	case "check":
		err = cmdCheck(args[1:], stdout, stderr)
	case "offsets":
		if len(args) < 2 {
			err = usageError{"offsets: want `offsets show` or `offsets set`"}
			break
		}
		switch args[1] {
		case "show":
			err = cmdOffsetsShow(args[2:], stdout, stderr)
		case "set":
			err = cmdOffsetsSet(args[2:], stdout, stderr)
		default:
			err = usageError{fmt.Sprintf("offsets: unknown command %q (want show or set)", args[1])}
		}
	case "health":
		err = cmdHealth(args[1:], stdout, stderr)
	case "version", "--version", "-version":
		fmt.Fprintf(stdout, "tailbox %s (%s %s/%s)\n", version, runtime.Version(), runtime.GOOS, runtime.GOARCH)
	case "help", "-h", "--help":
		fmt.Fprint(stdout, usage)
	default:
		err = usageError{fmt.Sprintf("unknown command %q", args[0])}
	}
	return report(err, stderr)
}

// loggedError is an error the command has already logged: report maps
// it to its exit status without printing it a second time.
type loggedError struct{ err error }

func (e loggedError) Error() string { return e.err.Error() }
func (e loggedError) Unwrap() error { return e.err }

// report prints err, unless it is a loggedError, and maps it to an exit
// status.
func report(err error, stderr io.Writer) int {
	var ue usageError
	if _, ok := errors.AsType[loggedError](err); ok {
		stderr = io.Discard
	}
	switch {
	case err == nil:
		return exitOK
	case errors.Is(err, flag.ErrHelp):
		return exitUsage
	case errors.As(err, &ue):
		fmt.Fprintf(stderr, "tailbox: %s\n\n%s", ue.msg, usage)
		return exitUsage
	case errors.Is(err, config.ErrInvalid), errors.Is(err, connector.ErrConfig):
		fmt.Fprintf(stderr, "tailbox: configuration error:\n%s\n", indent(err.Error()))
		return exitUsage
	default:
		fmt.Fprintf(stderr, "tailbox: %s\n", err)
		return exitFailure
	}
}

func indent(s string) string {
	lines := strings.Split(strings.TrimSpace(s), "\n")
	for i, l := range lines {
		lines[i] = "  " + l
	}
	return strings.Join(lines, "\n")
}

type common struct {
	fs     *flag.FlagSet
	config string
}

func newFlags(name string, stderr io.Writer) *common {
	c := &common{fs: flag.NewFlagSet(name, flag.ContinueOnError)}
	c.fs.SetOutput(stderr)
	c.fs.StringVar(&c.config, "c", "", "configuration `FILE` (YAML)")
	c.fs.StringVar(&c.config, "config", "", "configuration `FILE` (YAML)")
	return c
}

func (c *common) parse(args []string) error {
	if err := c.fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return err
		}
		return usageError{fmt.Sprintf("%s: %s", c.fs.Name(), err)}
	}
	if c.fs.NArg() > 0 {
		return usageError{fmt.Sprintf("%s: unexpected argument %q", c.fs.Name(), c.fs.Arg(0))}
	}
	if c.config == "" {
		return usageError{fmt.Sprintf("%s: -c FILE is required", c.fs.Name())}
	}
	return nil
}

func checkFrom(from string) error {
	if from == "" {
		return nil
	}
	if err := config.ValidateStartSpec(from); err != nil {
		return usageError{fmt.Sprintf("--from: %s", err)}
	}
	return nil
}

// load reads the configuration and builds the logger and connector.
func load(path string, stderr io.Writer) (*config.Config, zerolog.Logger, *connector.Connector, error) {
	cfg, err := config.Load(path)
	if err != nil {
		return nil, zerolog.Nop(), nil, err
	}
	logger := newLogger(cfg.Name, cfg.Log, stderr)
	conn, err := connector.New(cfg, logger)
	if err != nil {
		return nil, logger, nil, err
	}
	return cfg, logger, conn, nil
}

// newLogger builds the process's one logger: every line carries the
// connector's name; durations are whole milliseconds, in fields whose names
// end in _ms; the console format is coloured only on a terminal.
func newLogger(name string, lc config.Log, w io.Writer) zerolog.Logger {
	zerolog.TimeFieldFormat = time.RFC3339Nano
	zerolog.DurationFieldUnit = time.Millisecond
	zerolog.DurationFieldInteger = true
	out := w
	if lc.Format == "console" {
		out = zerolog.ConsoleWriter{Out: w, TimeFormat: "15:04:05.000", NoColor: !colorTerminal(w)}
	}
	level, err := zerolog.ParseLevel(lc.Level)
	if err != nil || lc.Level == "" {
		level = zerolog.InfoLevel
	}
	logger := zerolog.New(out).Level(level).With().Timestamp().Str("connector", name).Logger()
	// sarama's package logger is set once, here.
	sarama.Logger = log.New(saramaWriter{logger.With().Str("component", "sarama").Logger()}, "", 0)
	return logger
}

// colorTerminal reports whether w is a terminal that may be written ANSI
// colours: a character device, and NO_COLOR (https://no-color.org) unset.
// A file or a pipe gets plain text.
func colorTerminal(w io.Writer) bool {
	f, ok := w.(*os.File)
	if !ok || os.Getenv("NO_COLOR") != "" {
		return false
	}
	st, err := f.Stat()
	return err == nil && st.Mode()&os.ModeCharDevice != 0
}

// saramaWriter turns sarama's printf lines into debug log events.
type saramaWriter struct{ log zerolog.Logger }

func (w saramaWriter) Write(p []byte) (int, error) {
	w.log.Debug().Msg(strings.TrimSpace(string(p)))
	return len(p), nil
}

// signalContext is canceled at the first SIGINT/SIGTERM; a second one exits at once.
func signalContext(logger zerolog.Logger) (context.Context, func()) {
	ctx, cancel := context.WithCancel(context.Background())
	ch := make(chan os.Signal, 2)
	signal.Notify(ch, syscall.SIGINT, syscall.SIGTERM)
	go func() {
		s, ok := <-ch
		if !ok {
			return
		}
		logger.Info().Str("signal", s.String()).Msg("stopping: draining in-flight events and writing the checkpoint")
		cancel()
		if s, ok := <-ch; ok {
			logger.Warn().Str("signal", s.String()).Msg("second signal, exiting without draining")
			os.Exit(exitFailure)
		}
	}()
	return ctx, func() { signal.Stop(ch); close(ch); cancel() }
}

func cmdRun(args []string, stdout, stderr io.Writer) error {
	f := newFlags("run", stderr)
	from := f.fs.String("from", "", "start at `SPEC`, overriding the checkpoint (latest, earliest, FILE:POS, gtid:SET, time:RFC3339)")
	dry := f.fs.Bool("dry-run", false, "print events to stdout instead of producing them; write no checkpoint")
	if err := f.parse(args); err != nil {
		return err
	}
	if err := checkFrom(*from); err != nil {
		return err
	}
	_, logger, conn, err := load(f.config, stderr)
	if err != nil {
		return err
	}
	knobs.SetGCPercent()
	ctx, stop := signalContext(logger)
	defer stop()
	logger.Info().Str("version", version).Msg("tailbox starting")
	if err := conn.Run(ctx, connector.RunOptions{From: *from, DryRun: *dry, DryRunOut: stdout, Version: version}); err != nil {
		logger.Error().Err(err).Msg("stopped on error")
		return loggedError{err}
	}
	logger.Info().Msg("stopped")
	return nil
}

// errCheckFailed is returned by check when an item failed (exit 1).
var errCheckFailed = errors.New("check failed")

func cmdCheck(args []string, stdout, stderr io.Writer) error {
	f := newFlags("check", stderr)
	if err := f.parse(args); err != nil {
		return err
	}
	_, logger, conn, err := load(f.config, stderr)
	if err != nil {
		return err
	}
	ctx, stop := signalContext(logger)
	defer stop()
	results := conn.Check(ctx)
	var failed, warned int
	for _, r := range results {
		fmt.Fprintln(stdout, r)
		switch r.Status {
		case preflight.StatusFail:
			failed++
		case preflight.StatusWarn:
			warned++
		}
	}
	if ctx.Err() != nil {
		return fmt.Errorf("check: interrupted")
	}
	if failed > 0 {
		return fmt.Errorf("%w: %d of %d items failed, %d warnings; fix the FAIL lines and run check again", errCheckFailed, failed, len(results), warned)
	}
	fmt.Fprintf(stdout, "all %d items passed, %d warnings\n", len(results), warned)
	return nil
}

func cmdOffsetsShow(args []string, stdout, stderr io.Writer) error {
	f := newFlags("offsets show", stderr)
	if err := f.parse(args); err != nil {
		return err
	}
	_, _, conn, err := load(f.config, stderr)
	if err != nil {
		return err
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	cp, err := conn.ShowOffset(ctx)
	if err != nil {
		return err
	}
	if err := printJSON(stdout, cp); err != nil {
		return err
	}
	// stdout stays the checkpoint's JSON; how far it is behind is for
	// the reader, on stderr, and the command succeeds without it.
	bctx, bcancel := context.WithTimeout(ctx, 15*time.Second)
	defer bcancel()
	b, err := conn.OffsetBehind(bctx, cp)
	if err != nil {
		fmt.Fprintf(stderr, "behind the source: unknown (%v)\n", err)
		return nil
	}
	fmt.Fprintf(stderr, "behind the source: %d bytes (%d newer binlog files; newest position %s)\n", b.Bytes, b.Files, b.Newest)
	return nil
}

func cmdOffsetsSet(args []string, stdout, stderr io.Writer) error {
	f := newFlags("offsets set", stderr)
	from := f.fs.String("from", "", "new position `SPEC` (latest, earliest, FILE:POS, gtid:SET, time:RFC3339); required")
	if err := f.parse(args); err != nil {
		return err
	}
	if *from == "" {
		return usageError{"offsets set: --from SPEC is required"}
	}
	if err := checkFrom(*from); err != nil {
		return err
	}
	_, _, conn, err := load(f.config, stderr)
	if err != nil {
		return err
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	cp, err := conn.SetOffset(ctx, *from)
	if err != nil {
		return err
	}
	return printJSON(stdout, cp)
}

func printJSON(w io.Writer, v any) error {
	b, err := json.MarshalIndent(v, "", "  ")
	if err != nil {
		return err
	}
	_, err = fmt.Fprintf(w, "%s\n", b)
	return err
}

// cmdHealth probes a running tailbox's /healthz: the distroless image has
// no shell or curl, so its container healthcheck runs tailbox itself.
func cmdHealth(args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("health", flag.ContinueOnError)
	fs.SetOutput(stderr)
	url := fs.String("url", "http://"+config.Default().HTTP.Listen+"/healthz", "`URL` to probe")
	timeout := fs.Duration("timeout", 3*time.Second, "give up after `D`")
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return err
		}
		return usageError{fmt.Sprintf("health: %s", err)}
	}
	if fs.NArg() > 0 {
		return usageError{fmt.Sprintf("health: unexpected argument %q", fs.Arg(0))}
	}
	ctx, cancel := context.WithTimeout(context.Background(), *timeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, *url, nil)
	if err != nil {
		return usageError{fmt.Sprintf("health: -url: %s", err)}
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return fmt.Errorf("health: %w", err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(io.LimitReader(resp.Body, 512))
	if resp.StatusCode/100 != 2 {
		return fmt.Errorf("health: %s answered %s: %s", *url, resp.Status, strings.TrimSpace(string(body)))
	}
	fmt.Fprintf(stdout, "%s: %s\n", *url, resp.Status)
	return nil
}
