package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"
	"time"

	"github.com/tailbox-cdc/tailbox/config"
	"github.com/tailbox-cdc/tailbox/connector"
	"github.com/tailbox-cdc/tailbox/connector/preflight"
	"github.com/tailbox-cdc/tailbox/internal/buildinfo"
	"github.com/tailbox-cdc/tailbox/internal/knobs"
	"github.com/tailbox-cdc/tailbox/pkg/checkpoint"
)

func cmdRun(args []string, stdout, stderr io.Writer) error {
	f := newFlags("run", "tailbox run -c FILE [--from SPEC] [--dry-run]",
		`Stream outbox events to Kafka, checkpointing the binlog position, until
SIGINT or SIGTERM; then drain what is in flight, write the checkpoint and
exit 0. A second signal exits at once (1).
`)
	from := f.fs.String("from", "", "start at `SPEC`, overriding the checkpoint (latest, earliest, FILE:POS, gtid:SET, time:RFC3339)")
	dry := f.fs.Bool("dry-run", false, "print events to stdout instead of producing them; write no checkpoint")
	if err := f.parse(args, false); err != nil {
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
	version := buildinfo.Version()
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

// checkReport is the JSON of `tailbox check -o json`.
type checkReport struct {
	// Passed is true when no item failed (exit 0).
	Passed   bool        `json:"passed"`
	Failed   int         `json:"failed"`
	Warnings int         `json:"warnings"`
	Items    []checkItem `json:"items"`
}

// checkItem is one preflight.Result in checkReport.
type checkItem struct {
	Name string `json:"name"`
	// Status is "ok", "warn" or "fail".
	Status string `json:"status"`
	Detail string `json:"detail"`
	// Fix is the remedy of a failure or a warning, omitted for ok.
	Fix string `json:"fix,omitempty"`
	// RunTolerates marks the one kind of failure on which run starts
	// anyway, with a warning (see preflight.Result.RunTolerates).
	RunTolerates bool `json:"run_tolerates,omitempty"`
}

func cmdCheck(args []string, stdout, stderr io.Writer) error {
	f := newFlags("check", "tailbox check -c FILE [-o text|json]",
		`Preflight: server reachable, binlog settings, grants, outbox tables,
server_id, start position and Kafka, each item ok, warn or FAIL with the
exact fix; writes and produces nothing. Exit 0 when no item fails, 1 when
one does. -o json prints {"passed","failed","warnings","items":[{"name",
"status" (ok, warn or fail),"detail","fix","run_tolerates"}]}.
`).withOutput()
	if err := f.parse(args, false); err != nil {
		return err
	}
	_, logger, conn, err := load(f.config, stderr)
	if err != nil {
		return err
	}
	ctx, stop := signalContext(logger)
	defer stop()
	results := conn.Check(ctx)
	rep := checkReport{Items: make([]checkItem, len(results))}
	for i, r := range results {
		rep.Items[i] = checkItem{Name: r.Name, Status: strings.ToLower(r.Status.String()), Detail: r.Detail, Fix: r.Fix, RunTolerates: r.RunTolerates}
		switch r.Status {
		case preflight.StatusFail:
			rep.Failed++
		case preflight.StatusWarn:
			rep.Warnings++
		}
		if f.output == "text" {
			fmt.Fprintln(stdout, r)
		}
	}
	if ctx.Err() != nil {
		return fmt.Errorf("check: interrupted")
	}
	rep.Passed = rep.Failed == 0
	if f.output == "json" {
		if err := printJSON(stdout, rep); err != nil {
			return err
		}
	}
	if rep.Failed > 0 {
		return fmt.Errorf("%w: %d of %d items failed, %d warnings; fix the FAIL lines and run check again", errCheckFailed, rep.Failed, len(results), rep.Warnings)
	}
	if f.output == "text" {
		fmt.Fprintf(stdout, "all %d items passed, %d warnings\n", len(results), rep.Warnings)
	}
	return nil
}

// offsetsOutput describes the output of the offsets commands.
const offsetsOutput = `-o text (default) prints one field a line; -o json prints the checkpoint as
stored: {"version","name","position":{"file","pos","gtid"},"skip",
"next_txn","server":{"flavor","server_id","server_uuid","binlog_basename",
"file_start_time"},"tables_hash","updated_at"}.
`

func cmdOffsetsShow(args []string, stdout, stderr io.Writer) error {
	f := newFlags("offsets show", "tailbox offsets show -c FILE [-o text|json]",
		`Print the stored checkpoint. It takes no lock, so it works while the
connector runs; with the file store it reads the file and needs no
password (source.password or kafka.sasl.password may be unset).
`+offsetsOutput).withOutput()
	if err := f.parse(args, false); err != nil {
		return err
	}
	cfg, _, conn, err := loadWith(config.LoadWithoutSecrets, f.config, stderr)
	if err == nil && cfg.Checkpoint.Store != config.StoreFile {
		// The Kafka store needs the cluster's credentials.
		_, _, conn, err = load(f.config, stderr)
	}
	if err != nil {
		return err
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	cp, err := conn.ShowOffset(ctx)
	if err != nil {
		return err
	}
	if err := printCheckpoint(stdout, cp, f.output); err != nil {
		return err
	}
	// stdout stays the checkpoint; how far it is behind is for the reader,
	// on stderr, and the command succeeds without it. Measuring it logs in
	// to the source: with the file store only when the configuration's
	// password is at hand.
	if cfg != nil && cfg.Checkpoint.Store == config.StoreFile {
		if _, _, full, ferr := load(f.config, io.Discard); ferr == nil {
			conn = full
		} else {
			fmt.Fprintf(stderr, "behind the source: unknown (the source's password is not at hand: %v)\n", ferr)
			return nil
		}
	}
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
	f := newFlags("offsets set", "tailbox offsets set -c FILE --from SPEC [-o text|json]",
		`Resolve SPEC on the source server and replace the stored checkpoint with
it; with the file store it refuses while a connector holds the file. It
prints the new checkpoint.
`+offsetsOutput).withOutput()
	from := f.fs.String("from", "", "new position `SPEC` (latest, earliest, FILE:POS, gtid:SET, time:RFC3339); required")
	if err := f.parse(args, false); err != nil {
		return err
	}
	if *from == "" {
		return f.usageError("--from SPEC is required")
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
	return printCheckpoint(stdout, cp, f.output)
}

// printCheckpoint prints cp as JSON (format "json") or one field a line.
func printCheckpoint(w io.Writer, cp *checkpoint.Checkpoint, format string) error {
	if format == "json" {
		return printJSON(w, cp)
	}
	pos := "-"
	if cp.Position.File != "" {
		pos = fmt.Sprintf("%s:%d", cp.Position.File, cp.Position.Pos)
	}
	srv := cp.Server
	server := fmt.Sprintf("%s server_id %d", srv.Flavor, srv.ServerID)
	if srv.ServerUUID != "" {
		server += " uuid " + srv.ServerUUID
	}
	if srv.BinlogBasename != "" {
		server += " binlog " + srv.BinlogBasename
	}
	rows := [][2]string{
		{"name", cp.Name},
		{"position", pos},
		{"gtid", cp.Position.GTID},
		{"skip", fmt.Sprint(cp.Skip)},
		{"next_txn", cp.NextTxn},
		{"server", server},
		{"updated_at", cp.UpdatedAt.UTC().Format(time.RFC3339Nano)},
	}
	for _, r := range rows {
		if r[1] == "" {
			continue
		}
		if _, err := fmt.Fprintf(w, "%-11s %s\n", r[0]+":", r[1]); err != nil {
			return err
		}
	}
	return nil
}

func printJSON(w io.Writer, v any) error {
	b, err := json.MarshalIndent(v, "", "  ")
	if err != nil {
		return err
	}
	_, err = fmt.Fprintf(w, "%s\n", b)
	return err
}

// cmdVersion prints buildinfo.Get(): one line, or its JSON with -o json.
func cmdVersion(args []string, stdout io.Writer) error {
	f := newFlagsWithoutConfig("version", "tailbox version [-o text|json]",
		`Print tailbox's version, the commit it was built from, the build date
(the commit's time), the Go version and the platform. -o json prints
{"version","commit","go","date","platform"}. A release's version is its
git tag (v1.2.3); a build past the latest tag is v1.2.3-N-gHASH, before
the first tag v0.0.0-N-gHASH, with -dirty for uncommitted changes.
`).withOutput()
	if err := f.parse(args, true); err != nil {
		return err
	}
	info := buildinfo.Get()
	if f.output == "json" {
		return printJSON(stdout, info)
	}
	_, err := fmt.Fprintln(stdout, info)
	return err
}

// defaultHealthURL is what health probes without -url or -c: the default
// http.listen.
var defaultHealthURL = "http://" + config.Default().HTTP.Listen + "/healthz"

// cmdHealth probes a running tailbox's /healthz: the distroless image has
// no shell or curl, so its container healthcheck runs tailbox itself.
func cmdHealth(args []string, stdout, stderr io.Writer) error {
	f := newFlags("health", "tailbox health [-c FILE | -url URL] [-timeout D]",
		`Probe a running tailbox's /healthz: exit 0 when it answers 2xx, 1 when it
does not. With -c FILE the address is that configuration's http.listen
(an unspecified host, such as 0.0.0.0, is probed on the loopback); without
it, -url (default `+defaultHealthURL+`).
`)
	url := f.fs.String("url", "", "`URL` to probe (default "+defaultHealthURL+")")
	timeout := f.fs.Duration("timeout", 3*time.Second, "give up after `D`")
	if err := f.parse(args, true); err != nil {
		return err
	}
	target := *url
	switch {
	case f.config != "" && target != "":
		return f.usageError("give -c FILE or -url URL, not both")
	case f.config != "":
		var err error
		if target, err = healthURL(f.config); err != nil {
			return err
		}
	case target == "":
		target = defaultHealthURL
	}
	ctx, cancel := context.WithTimeout(context.Background(), *timeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, target, nil)
	if err != nil {
		return f.usageError(fmt.Sprintf("-url: %s", err))
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return fmt.Errorf("health: %w", err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(io.LimitReader(resp.Body, 512))
	if resp.StatusCode/100 != 2 {
		return fmt.Errorf("health: %s answered %s: %s", target, resp.Status, strings.TrimSpace(string(body)))
	}
	fmt.Fprintf(stdout, "%s: %s\n", target, resp.Status)
	return nil
}

// healthURL is the /healthz URL of the configuration at path, from its
// http.listen; it needs none of the configuration's secrets.
func healthURL(path string) (string, error) {
	cfg, err := config.LoadWithoutSecrets(path)
	if err != nil {
		return "", err
	}
	listen := cfg.HTTP.Listen
	if listen == "" {
		return "", fmt.Errorf("%w: http.listen is \"\" in %s: the endpoint is off, there is no /healthz to probe", config.ErrInvalid, path)
	}
	host, port, err := net.SplitHostPort(listen)
	if err != nil {
		return "", fmt.Errorf("%w: http.listen in %s: %w", config.ErrInvalid, path, err)
	}
	if port == "0" {
		return "", fmt.Errorf("%w: http.listen in %s has port 0, a free port picked at each start: give health -url with the port the log's \"http listening\" line names", config.ErrInvalid, path)
	}
	if ip := net.ParseIP(host); host == "" || (ip != nil && ip.IsUnspecified()) {
		host = "127.0.0.1"
		if ip != nil && ip.To4() == nil {
			host = "::1"
		}
	}
	return "http://" + net.JoinHostPort(host, port) + "/healthz", nil
}
