// Command devkafka runs a local Kafka-protocol broker for demos and manual
// tests: franz-go's kfake, in memory unless -data-dir is given. It is not a
// Kafka: no replication, no durability guarantees, and its TLS and SASL are
// for trying a client's settings, not for protecting anything. Tests use the
// same broker in-process through internal/testenv.
//
// Usage:
//
//	devkafka [-listen 127.0.0.1:9092] [-partitions 3] [-brokers 1]
//	         [-data-dir DIR] [-ready-file PATH] [-broker-config key=value]...
//	         [-tls-cert FILE -tls-key FILE [-tls-client-ca FILE]]
//	         [-sasl-user MECHANISM:USER:PASSWORD]...
//	         [-log-level none|error|warn|info|debug]
//
// With -tls-cert and -tls-key every broker speaks TLS only; -tls-client-ca
// also requires clients to present a certificate signed by a CA of that
// file. Each -sasl-user enables SASL and adds a user for one mechanism
// (PLAIN, SCRAM-SHA-256 or SCRAM-SHA-512); PASSWORD may be @FILE to read it
// from FILE (trailing newlines trimmed), which keeps it out of the process
// list. A client whose credentials are refused is disconnected, as by Kafka
// before 1.0.
//
// Topics are created on first use (metadata or produce) with -partitions
// partitions. With -brokers N and a non-zero port P the brokers listen on
// P..P+N-1; port 0 lets each broker pick a free port. Once listening,
// devkafka logs one line with the bootstrap address and, with -ready-file,
// writes that address (comma-separated when several brokers) to the file
// atomically, so scripts can wait for the file instead of polling the port.
// SIGINT or SIGTERM closes the cluster (saving state to -data-dir), removes
// the ready file and exits 0. Exit status 2 is a usage error, 1 a start
// failure.
package main

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"os"
	"os/signal"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"syscall"

	"github.com/rs/zerolog"
	"github.com/twmb/franz-go/pkg/kfake"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	os.Exit(run(ctx, os.Args[1:], os.Stderr))
}

// options are the parsed command-line flags.
type options struct {
	listen        string
	partitions    int
	brokers       int
	dataDir       string
	readyFile     string
	logLevel      string
	brokerConfigs keyValues
	tlsCert       string
	tlsKey        string
	tlsClientCA   string
	saslUsers     saslUsers
}

// saslUser is one -sasl-user.
type saslUser struct {
	mechanism, user, password string
}

// saslUsers is the repeatable -sasl-user flag; String never shows a password.
type saslUsers []saslUser

func (u *saslUsers) String() string {
	if u == nil {
		return ""
	}
	names := make([]string, len(*u))
	for i, su := range *u {
		names[i] = su.mechanism + ":" + su.user
	}
	return strings.Join(names, ",")
}

func (u *saslUsers) Set(s string) error {
	mech, rest, ok1 := strings.Cut(s, ":")
	user, password, ok2 := strings.Cut(rest, ":")
	if !ok1 || !ok2 || user == "" || password == "" {
		return errors.New("want MECHANISM:USER:PASSWORD or MECHANISM:USER:@FILE")
	}
	mech = strings.ToUpper(mech)
	switch mech {
	case "PLAIN", "SCRAM-SHA-256", "SCRAM-SHA-512":
	default:
		return fmt.Errorf("mechanism must be PLAIN, SCRAM-SHA-256 or SCRAM-SHA-512 (got %q)", mech)
	}
	if file, ok := strings.CutPrefix(password, "@"); ok {
		b, err := os.ReadFile(file)
		if err != nil {
			return fmt.Errorf("read the password of %s: %w", user, err)
		}
		password = strings.TrimRight(string(b), "\r\n")
		if password == "" {
			return fmt.Errorf("the password file of %s is empty", user)
		}
	}
	*u = append(*u, saslUser{mechanism: mech, user: user, password: password})
	return nil
}

// keyValues is a repeatable key=value flag.
type keyValues map[string]string

func (kv keyValues) String() string {
	keys := make([]string, 0, len(kv))
	for k := range kv {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	pairs := make([]string, 0, len(keys))
	for _, k := range keys {
		pairs = append(pairs, k+"="+kv[k])
	}
	return strings.Join(pairs, ",")
}

func (kv keyValues) Set(s string) error {
	k, v, ok := strings.Cut(s, "=")
	if !ok || k == "" {
		return fmt.Errorf("want key=value (got %q)", s)
	}
	kv[k] = v
	return nil
}

// run runs the broker until ctx is done and returns the exit status.
func run(ctx context.Context, args []string, stderr io.Writer) int {
	opts := options{brokerConfigs: keyValues{}}
	fs := flag.NewFlagSet("devkafka", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.StringVar(&opts.listen, "listen", "127.0.0.1:9092", "`host:port` of the first broker; port 0 picks free ports")
	fs.IntVar(&opts.partitions, "partitions", 3, "partitions of auto-created topics")
	fs.IntVar(&opts.brokers, "brokers", 1, "number of brokers")
	fs.StringVar(&opts.dataDir, "data-dir", "", "persist topics and offsets in this `directory` (default: memory only)")
	fs.StringVar(&opts.readyFile, "ready-file", "", "write the bootstrap address to this `file` once listening")
	fs.StringVar(&opts.logLevel, "log-level", "error", "broker log level: none, error, warn, info, debug")
	fs.Var(opts.brokerConfigs, "broker-config", "broker config `key=value`, e.g. message.max.bytes=1048588 (repeatable)")
	fs.StringVar(&opts.tlsCert, "tls-cert", "", "serve TLS with the certificate (chain) in this PEM `file`; needs -tls-key")
	fs.StringVar(&opts.tlsKey, "tls-key", "", "private key `file` (PEM) of -tls-cert")
	fs.StringVar(&opts.tlsClientCA, "tls-client-ca", "", "require client certificates signed by a CA in this PEM `file`")
	fs.Var(&opts.saslUsers, "sasl-user", "enable SASL and add `MECHANISM:USER:PASSWORD` (PASSWORD may be @FILE; repeatable)")
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return 0
		}
		return 2
	}
	if fs.NArg() > 0 {
		fmt.Fprintf(stderr, "devkafka: unexpected arguments: %s\n", strings.Join(fs.Args(), " "))
		return 2
	}

	base := zerolog.New(zerolog.ConsoleWriter{Out: stderr, TimeFormat: "15:04:05", NoColor: !isTerminal(stderr)}).
		With().Timestamp().Logger()
	log := base.With().Str("component", "devkafka").Logger()

	kopts, err := clusterOptions(opts, base.With().Str("component", "kfake").Logger())
	if err != nil {
		fmt.Fprintf(stderr, "devkafka: %v\n", err)
		return 2
	}
	cluster, err := kfake.NewCluster(kopts...)
	if err != nil {
		log.Error().Err(err).Str("listen", opts.listen).Msg("cannot start the cluster")
		return 1
	}
	bootstrap := strings.Join(cluster.ListenAddrs(), ",")

	if opts.readyFile != "" {
		if err := writeFileAtomic(opts.readyFile, bootstrap+"\n"); err != nil {
			cluster.Close()
			log.Error().Err(err).Msg("cannot write the ready file")
			return 1
		}
	}
	log.Info().Str("bootstrap", bootstrap).Int("brokers", opts.brokers).
		Int("partitions", opts.partitions).Str("data_dir", opts.dataDir).
		Bool("tls", opts.tlsCert != "").Bool("client_certs", opts.tlsClientCA != "").
		Str("sasl_users", opts.saslUsers.String()).Msg("listening")

	<-ctx.Done()
	log.Info().Msg("shutting down")
	cluster.Close()
	if opts.readyFile != "" {
		if err := os.Remove(opts.readyFile); err != nil && !errors.Is(err, os.ErrNotExist) {
			log.Warn().Err(err).Msg("cannot remove the ready file")
		}
	}
	return 0
}

// clusterOptions validates opts and maps them to kfake options; kfake's own
// messages go to log.
func clusterOptions(opts options, log zerolog.Logger) ([]kfake.Opt, error) {
	var problems []error
	host, portText, err := net.SplitHostPort(opts.listen)
	port, perr := strconv.Atoi(portText)
	switch {
	case err != nil:
		problems = append(problems, fmt.Errorf("-listen: want host:port (got %q)", opts.listen))
	case perr != nil || port < 0 || port > 65535:
		problems = append(problems, fmt.Errorf("-listen: invalid port (got %q)", portText))
	}
	if opts.brokers < 1 || opts.brokers > 32 {
		problems = append(problems, fmt.Errorf("-brokers: must be between 1 and 32 (got %d)", opts.brokers))
	} else if port > 0 && port+opts.brokers-1 > 65535 {
		problems = append(problems, fmt.Errorf("-brokers: ports %d..%d exceed 65535", port, port+opts.brokers-1))
	}
	if opts.partitions < 1 {
		problems = append(problems, fmt.Errorf("-partitions: must be at least 1 (got %d)", opts.partitions))
	}
	level, ok := map[string]kfake.LogLevel{
		"none": kfake.LogLevelNone, "error": kfake.LogLevelError, "warn": kfake.LogLevelWarn,
		"info": kfake.LogLevelInfo, "debug": kfake.LogLevelDebug,
	}[opts.logLevel]
	if !ok {
		problems = append(problems, fmt.Errorf("-log-level: must be none, error, warn, info or debug (got %q)", opts.logLevel))
	}
	tlsCfg, err := serverTLS(opts)
	if err != nil {
		problems = append(problems, err)
	}
	if len(problems) > 0 {
		return nil, errors.Join(problems...)
	}

	kopts := []kfake.Opt{
		kfake.NumBrokers(opts.brokers),
		kfake.AllowAutoTopicCreation(),
		kfake.DefaultNumPartitions(opts.partitions),
		kfake.WithLogger(kfakeLogger{log: log, level: level}),
	}
	if port > 0 {
		ports := make([]int, opts.brokers)
		for i := range ports {
			ports[i] = port + i
		}
		kopts = append(kopts, kfake.Ports(ports...))
	}
	// kfake always listens on 127.0.0.1; honour another host by rewriting the
	// address it asks for. Brokers advertise the address they listen on.
	if host != "127.0.0.1" {
		kopts = append(kopts, kfake.ListenFn(func(network, address string) (net.Listener, error) {
			_, p, err := net.SplitHostPort(address)
			if err != nil {
				return nil, err
			}
			return net.Listen(network, net.JoinHostPort(host, p))
		}))
	}
	if opts.dataDir != "" {
		kopts = append(kopts, kfake.DataDir(opts.dataDir))
	}
	if len(opts.brokerConfigs) > 0 {
		kopts = append(kopts, kfake.BrokerConfigs(opts.brokerConfigs))
	}
	if tlsCfg != nil {
		kopts = append(kopts, kfake.TLS(tlsCfg))
	}
	if len(opts.saslUsers) > 0 {
		kopts = append(kopts, kfake.EnableSASL())
		for _, u := range opts.saslUsers {
			kopts = append(kopts, kfake.Superuser(u.mechanism, u.user, u.password))
		}
	}
	return kopts, nil
}

// serverTLS builds the brokers' tls.Config from -tls-cert, -tls-key and
// -tls-client-ca; nil means plaintext.
func serverTLS(opts options) (*tls.Config, error) {
	switch {
	case opts.tlsCert == "" && opts.tlsKey == "":
		if opts.tlsClientCA != "" {
			return nil, errors.New("-tls-client-ca: needs -tls-cert and -tls-key")
		}
		return nil, nil
	case opts.tlsCert == "" || opts.tlsKey == "":
		return nil, errors.New("-tls-cert and -tls-key: set both or neither")
	}
	cert, err := tls.LoadX509KeyPair(opts.tlsCert, opts.tlsKey)
	if err != nil {
		return nil, fmt.Errorf("-tls-cert/-tls-key: %w", err)
	}
	tc := &tls.Config{Certificates: []tls.Certificate{cert}, MinVersion: tls.VersionTLS12}
	if opts.tlsClientCA != "" {
		pem, err := os.ReadFile(opts.tlsClientCA)
		if err != nil {
			return nil, fmt.Errorf("-tls-client-ca: %w", err)
		}
		pool := x509.NewCertPool()
		if !pool.AppendCertsFromPEM(pem) {
			return nil, fmt.Errorf("-tls-client-ca: %s holds no PEM certificate", opts.tlsClientCA)
		}
		tc.ClientCAs = pool
		tc.ClientAuth = tls.RequireAndVerifyClientCert
	}
	return tc, nil
}

// kfakeLogger passes kfake's messages at or above level to zerolog.
type kfakeLogger struct {
	log   zerolog.Logger
	level kfake.LogLevel
}

func (l kfakeLogger) Logf(level kfake.LogLevel, format string, args ...any) {
	if level > l.level || level == kfake.LogLevelNone {
		return
	}
	var ev *zerolog.Event
	switch level {
	case kfake.LogLevelError:
		ev = l.log.Error()
	case kfake.LogLevelWarn:
		ev = l.log.Warn()
	case kfake.LogLevelInfo:
		ev = l.log.Info()
	default:
		ev = l.log.Debug()
	}
	ev.Msg(fmt.Sprintf(format, args...))
}

// isTerminal reports whether w is a character device such as a terminal.
func isTerminal(w io.Writer) bool {
	f, ok := w.(*os.File)
	if !ok {
		return false
	}
	st, err := f.Stat()
	return err == nil && st.Mode()&os.ModeCharDevice != 0
}

// writeFileAtomic writes data to a temporary file beside path and renames it
// into place, so a reader never sees a partial file.
func writeFileAtomic(path, data string) error {
	tmp, err := os.CreateTemp(filepath.Dir(path), "."+filepath.Base(path)+".*")
	if err != nil {
		return fmt.Errorf("create temp file for %s: %w", path, err)
	}
	defer os.Remove(tmp.Name())
	if _, err := tmp.WriteString(data); err != nil {
		tmp.Close()
		return fmt.Errorf("write %s: %w", tmp.Name(), err)
	}
	if err := tmp.Close(); err != nil {
		return fmt.Errorf("close %s: %w", tmp.Name(), err)
	}
	if err := os.Rename(tmp.Name(), path); err != nil {
		return fmt.Errorf("rename %s to %s: %w", tmp.Name(), path, err)
	}
	return nil
}
