package main

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"slices"
	"strings"

	"github.com/tailbox-cdc/tailbox/config"
)

// usageError is a command-line mistake (exit 2): report prints msg, then
// usage (the command's own, else the overview), once, on stderr.
type usageError struct{ msg, usage string }

func (e usageError) Error() string { return e.msg }

// helpRequest is -h, --help or `help`: report prints usage on stdout and
// exits 0.
type helpRequest struct{ usage string }

func (helpRequest) Error() string { return "help requested" }

// loggedError is an error the command has already logged: report maps
// it to its exit status without printing it a second time.
type loggedError struct{ err error }

func (e loggedError) Error() string { return e.err.Error() }
func (e loggedError) Unwrap() error { return e.err }

// commands are the command names, for "did you mean".
var commands = []string{"run", "check", "offsets", "health", "version", "help"}

// offsetsUsage is the usage of `tailbox offsets` without a subcommand.
const offsetsUsage = `Usage:
  tailbox offsets show -c FILE [-o text|json]
  tailbox offsets set  -c FILE --from SPEC [-o text|json]

Show or replace the stored checkpoint. Run ` + "`tailbox offsets show -h`" + ` or
` + "`tailbox offsets set -h`" + ` for their flags.
`

// unknownCommand is the usage error of a command name that is not one of
// known, with the nearest known name when it is likely a misspelling.
func unknownCommand(what, name string, known []string, usage string) usageError {
	msg := fmt.Sprintf("%s %q", what, name)
	if near := config.Closest(name, known); near != "" {
		msg += fmt.Sprintf("; did you mean %q?", near)
	}
	return usageError{msg: msg, usage: usage}
}

// help answers `tailbox help [COMMAND...]` with that command's usage.
func help(args []string) error {
	if len(args) == 0 {
		return helpRequest{usage}
	}
	// Every command answers -h with its usage.
	err := dispatch(append(slices.Clone(args), "-h"), io.Discard, io.Discard)
	if _, ok := errors.AsType[helpRequest](err); ok {
		return err
	}
	return unknownCommand("help: unknown command", strings.Join(args, " "), commands, usage)
}

// flags is the flag set of one command, with its usage text.
type flags struct {
	fs       *flag.FlagSet
	synopsis string // "tailbox run -c FILE [--from SPEC] [--dry-run]"
	about    string // what the command does
	config   string // -c, --config
	output   string // -o, --output; "" unless the command has it
}

// newFlags returns the flag set of command name (such as "offsets show"),
// with -c FILE. The flag package prints nothing: parse turns its errors
// into one usage error, and -h into a help request.
func newFlags(name, synopsis, about string) *flags {
	f := newFlagsWithoutConfig(name, synopsis, about)
	f.fs.StringVar(&f.config, "c", "", "configuration `FILE` (YAML)")
	f.fs.StringVar(&f.config, "config", "", "configuration `FILE` (YAML), as -c")
	return f
}

// newFlagsWithoutConfig is newFlags without -c, for a command that reads
// no configuration; parse it with optionalConfig.
func newFlagsWithoutConfig(name, synopsis, about string) *flags {
	f := &flags{fs: flag.NewFlagSet(name, flag.ContinueOnError), synopsis: synopsis, about: about}
	f.fs.SetOutput(io.Discard)
	return f
}

// withOutput adds -o/--output text|json.
func (f *flags) withOutput() *flags {
	f.fs.StringVar(&f.output, "o", "text", "output `FORMAT`: text or json")
	f.fs.StringVar(&f.output, "output", "text", "output `FORMAT`, as -o")
	return f
}

// usage is the command's help text: synopsis, what it does, its flags.
func (f *flags) usage() string {
	var b strings.Builder
	fmt.Fprintf(&b, "Usage:\n  %s\n\n%s\nFlags:\n", f.synopsis, f.about)
	f.fs.SetOutput(&b)
	f.fs.PrintDefaults()
	f.fs.SetOutput(io.Discard)
	return b.String()
}

// parse parses args; -c FILE is required unless optionalConfig.
func (f *flags) parse(args []string, optionalConfig bool) error {
	if err := f.fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return helpRequest{f.usage()}
		}
		return f.usageError(err.Error() + f.nearestFlag(err))
	}
	if f.fs.NArg() > 0 {
		return f.usageError(fmt.Sprintf("unexpected argument %q", f.fs.Arg(0)))
	}
	if f.config == "" && !optionalConfig {
		return f.usageError("-c FILE is required")
	}
	if f.output != "" && f.output != "text" && f.output != "json" {
		return f.usageError(fmt.Sprintf("-o: want text or json (got %q)", f.output))
	}
	return nil
}

// usageError is a mistake in this command's arguments.
func (f *flags) usageError(msg string) usageError {
	return usageError{msg: f.fs.Name() + ": " + msg, usage: f.usage()}
}

// nearestFlag is "; did you mean --from?" for an undefined flag near a
// defined one, else "".
func (f *flags) nearestFlag(err error) string {
	name, ok := strings.CutPrefix(err.Error(), "flag provided but not defined: ")
	if !ok {
		return ""
	}
	var known []string
	f.fs.VisitAll(func(fl *flag.Flag) { known = append(known, fl.Name) })
	near := config.Closest(strings.TrimLeft(name, "-"), known)
	switch {
	case near == "":
		return ""
	case len(near) == 1:
		return "; did you mean -" + near + "?"
	}
	return "; did you mean --" + near + "?"
}
