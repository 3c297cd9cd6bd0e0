// Command tailbox is a transactional-outbox CDC connector: it tails a MySQL
// or MariaDB binlog and publishes every committed outbox row to Kafka.
//
//	tailbox run     -c FILE [--from SPEC] [--dry-run]
//	tailbox check   -c FILE [-o text|json]
//	tailbox offsets show -c FILE [-o text|json]
//	tailbox offsets set  -c FILE --from SPEC [-o text|json]
//	tailbox health  [-c FILE | -url URL] [-timeout D]
//	tailbox version [-o text|json]
//	tailbox help [COMMAND]
//
// Every command answers -h or --help with its usage on stdout (exit 0).
// Exit status: 0 clean stop, 1 runtime failure, 2 usage or configuration
// error; check exits 0 only when every item passes and 1 when one fails.
package main

import (
	_ "time/tzdata" // timestamp_zone works on hosts without zoneinfo

	"context"
	"errors"
	"fmt"
	"io"
	"log"
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
)

// Exit statuses.
const (
	exitOK      = 0
	exitFailure = 1
	exitUsage   = 2
)

const usage = `tailbox — transactional-outbox CDC: MySQL/MariaDB binlog → Kafka

Usage:
  tailbox run     -c FILE [--from SPEC] [--dry-run]
  tailbox check   -c FILE [-o text|json]
  tailbox offsets show -c FILE [-o text|json]
  tailbox offsets set  -c FILE --from SPEC [-o text|json]
  tailbox health  [-c FILE | -url URL] [-timeout D]
  tailbox version [-o text|json]
  tailbox help [COMMAND]

run      stream outbox events to Kafka, checkpointing the binlog position
check    preflight: server reachable, binlog settings, grants, outbox tables,
         server_id, start position and Kafka, each line ok, warn or FAIL
         with the exact fix; writes and produces nothing
offsets  show or replace the stored checkpoint
health   probe a running tailbox's /healthz (for container healthchecks;
         the port from -c FILE's http.listen, or -url, default
         http://127.0.0.1:7391/healthz): exit 0 when it answers 2xx
version  print the version, commit, build date, Go version and platform

SPEC is latest, earliest, FILE:POS, gtid:SET or time:RFC3339.
` + "`tailbox COMMAND -h`" + ` shows a command's flags.
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

func run(args []string, stdout, stderr io.Writer) int {
	return report(dispatch(args, stdout, stderr), stdout, stderr)
}

// dispatch runs the command of args.
func dispatch(args []string, stdout, stderr io.Writer) error {
	if len(args) == 0 {
		return usageError{msg: "no command given"}
	}
	switch args[0] {
	case "run":
		return cmdRun(args[1:], stdout, stderr)
	case "check":
		return cmdCheck(args[1:], stdout, stderr)
	case "offsets":
		return cmdOffsets(args[1:], stdout, stderr)
	case "health":
		return cmdHealth(args[1:], stdout, stderr)
	case "version", "--version", "-version":
		return cmdVersion(args[1:], stdout)
	case "help":
		return help(args[1:])
	case "-h", "-help", "--help":
		return helpRequest{usage}
	}
	return unknownCommand("unknown command", args[0], commands, "")
}

// cmdOffsets runs `offsets show` or `offsets set`.
func cmdOffsets(args []string, stdout, stderr io.Writer) error {
	if len(args) == 0 {
		return usageError{msg: "offsets: want `offsets show` or `offsets set`", usage: offsetsUsage}
	}
	switch args[0] {
	case "show":
		return cmdOffsetsShow(args[1:], stdout, stderr)
	case "set":
		return cmdOffsetsSet(args[1:], stdout, stderr)
	case "help", "-h", "-help", "--help":
		return helpRequest{offsetsUsage}
	}
	return unknownCommand("offsets: unknown command", args[0], []string{"show", "set"}, offsetsUsage)
}

// report prints err — a help request's usage on stdout; a usage error
// with the command's usage, and any other error, on stderr; a loggedError
// not at all — and maps it to an exit status.
func report(err error, stdout, stderr io.Writer) int {
	if _, ok := errors.AsType[loggedError](err); ok {
		stderr = io.Discard
	}
	if h, ok := errors.AsType[helpRequest](err); ok {
		fmt.Fprint(stdout, h.usage)
		return exitOK
	}
	if ue, ok := errors.AsType[usageError](err); ok {
		text := ue.usage
		if text == "" {
			text = usage
		}
		fmt.Fprintf(stderr, "tailbox: %s\n\n%s", ue.msg, text)
		return exitUsage
	}
	switch {
	case err == nil:
		return exitOK
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

func checkFrom(from string) error {
	if from == "" {
		return nil
	}
	if err := config.ValidateStartSpec(from); err != nil {
		return usageError{msg: fmt.Sprintf("--from: %s", err)}
	}
	return nil
}

// load reads the configuration and builds the logger and connector.
func load(path string, stderr io.Writer) (*config.Config, zerolog.Logger, *connector.Connector, error) {
	return loadWith(config.Load, path, stderr)
}

// loadWith is load with a given config loader (config.Load or
// config.LoadWithoutSecrets).
func loadWith(loader func(string) (*config.Config, error), path string, stderr io.Writer) (*config.Config, zerolog.Logger, *connector.Connector, error) {
	cfg, err := loader(path)
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
