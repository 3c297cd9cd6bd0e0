package main

import (
	"context"
	"flag"
	"fmt"
	"os"
	"os/signal"
	"runtime"
	"runtime/pprof"
	"runtime/trace"
	"syscall"
	"time"

	"github.com/rs/zerolog"

	"github.com/tailbox-cdc/tailbox/config"
	"github.com/tailbox-cdc/tailbox/connector"
	"github.com/tailbox-cdc/tailbox/internal/knobs"
)

// connectorMain is `bench connector -c FILE --from SPEC -cpuprofile F
// -memprofile F -blockprofile F`: what `tailbox run` does (the same
// connector package), with a CPU profile of the whole run and, written when
// it stops on SIGTERM, a heap profile (in use at the end, and every
// allocation since start) and a block profile (where goroutines waited).
// It exists so that profiles come from a process that does nothing else;
// the tailbox binary itself has no profiling switch.
func connectorMain(args []string) int {
	fs := flag.NewFlagSet("bench connector", flag.ContinueOnError)
	cfgPath := fs.String("c", "", "configuration `FILE`")
	from := fs.String("from", "", "start at `SPEC`")
	cpuProfile := fs.String("cpuprofile", "", "write a CPU profile to `FILE`")
	memProfile := fs.String("memprofile", "", "write a heap profile to `FILE` at the end")
	blockProfile := fs.String("blockprofile", "", "write a profile of where goroutines blocked (over 100µs sampled) to `FILE` at the end")
	traceFile := fs.String("trace", "", "write an execution trace to `FILE`")
	traceAfter := fs.Duration("trace-after", 0, "start the trace this long after start")
	traceFor := fs.Duration("trace-for", 5*time.Second, "trace for this long")
	if err := fs.Parse(args); err != nil {
		return 2
	}
	cfg, err := config.Load(*cfgPath)
	if err != nil {
		fmt.Fprintln(os.Stderr, "bench connector:", err)
		return 2
	}
	zerolog.TimeFieldFormat = time.RFC3339Nano
	level, err := zerolog.ParseLevel(cfg.Log.Level)
	if err != nil {
		level = zerolog.InfoLevel
	}
	knobs.SetGCPercent() // as tailbox run does
	logger := zerolog.New(os.Stderr).Level(level).With().Timestamp().Logger()
	conn, err := connector.New(cfg, logger)
	if err != nil {
		fmt.Fprintln(os.Stderr, "bench connector:", err)
		return 2
	}
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, os.Interrupt)
	defer stop()
	if *cpuProfile != "" {
		f, err := os.Create(*cpuProfile)
		if err != nil {
			fmt.Fprintln(os.Stderr, "bench connector:", err)
			return 1
		}
		defer f.Close()
		if err := pprof.StartCPUProfile(f); err != nil {
			fmt.Fprintln(os.Stderr, "bench connector:", err)
			return 1
		}
	}
	if *blockProfile != "" {
		runtime.SetBlockProfileRate(int(100 * time.Microsecond))
	}
	if *traceFile != "" {
		go traceWindow(ctx, *traceFile, *traceAfter, *traceFor, logger)
	}
	logger.Info().Msg("tailbox starting")
	err = conn.Run(ctx, connector.RunOptions{From: *from})
	if *cpuProfile != "" {
		pprof.StopCPUProfile()
	}
	for _, w := range []struct{ path, name string }{{*memProfile, "heap"}, {*blockProfile, "block"}} {
		if w.path == "" {
			continue
		}
		if werr := writeProfile(w.path, w.name); werr != nil {
			fmt.Fprintln(os.Stderr, "bench connector:", werr)
			return 1
		}
	}
	if err != nil {
		logger.Error().Err(err).Msg("stopped on error")
		return 1
	}
	return 0
}

// traceWindow writes an execution trace of [after, after+d) to path, or
// until ctx ends.
func traceWindow(ctx context.Context, path string, after, d time.Duration, logger zerolog.Logger) {
	select {
	case <-ctx.Done():
		return
	case <-time.After(after):
	}
	f, err := os.Create(path)
	if err != nil {
		logger.Error().Err(err).Msg("execution trace")
		return
	}
	defer f.Close()
	if err := trace.Start(f); err != nil {
		logger.Error().Err(err).Msg("execution trace")
		return
	}
	select {
	case <-ctx.Done():
	case <-time.After(d):
	}
	trace.Stop()
}

// writeProfile writes the runtime profile name ("heap", "block") to path.
func writeProfile(path, name string) error {
	f, err := os.Create(path)
	if err != nil {
		return err
	}
	if name == "heap" {
		runtime.GC()
	}
	if err := pprof.Lookup(name).WriteTo(f, 0); err != nil {
		f.Close()
		return err
	}
	return f.Close()
}
