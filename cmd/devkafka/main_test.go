package main

import (
	"bytes"
	"context"
	"crypto/tls"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/tailbox-cdc/tailbox/internal/testenv"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/sasl/plain"
	"github.com/twmb/franz-go/pkg/sasl/scram"
)

func TestMain(m *testing.M) { testenv.Main(m) }

func TestDevkafkaServesAndExitsCleanlyOnSIGTERM(t *testing.T) {
	bin := testenv.Binary(t, "devkafka")
	ready := filepath.Join(t.TempDir(), "ready")
	var stderr testenv.SyncBuffer
	cmd := exec.Command(bin, "-listen", "127.0.0.1:0", "-partitions", "2", "-ready-file", ready)
	cmd.Stderr = &stderr
	if err := cmd.Start(); err != nil {
		t.Fatalf("start devkafka: %v", err)
	}
	exited := make(chan error, 1)
	go func() { exited <- cmd.Wait() }()
	t.Cleanup(func() {
		if cmd.ProcessState == nil {
			cmd.Process.Kill()
			<-exited
		}
	})

	addr := waitForFile(t, ready, exited, &stderr)
	if !strings.HasPrefix(addr, "127.0.0.1:") {
		t.Fatalf("ready file holds %q, want 127.0.0.1:PORT", addr)
	}

	cl, err := kgo.NewClient(kgo.SeedBrokers(addr), kgo.AllowAutoTopicCreation(),
		kgo.ConsumeTopics("devkafka.test"), kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()))
	if err != nil {
		t.Fatalf("create client: %v", err)
	}
	defer cl.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := cl.ProduceSync(ctx, &kgo.Record{Topic: "devkafka.test", Key: []byte("k"), Value: []byte("v")}).FirstErr(); err != nil {
		t.Fatalf("produce: %v", err)
	}
	fetches := cl.PollFetches(ctx)
	if errs := fetches.Errors(); len(errs) > 0 {
		t.Fatalf("fetch: %v", errs)
	}
	if recs := fetches.Records(); len(recs) != 1 || string(recs[0].Value) != "v" {
		t.Fatalf("fetched:\n%s\nwant the produced record", testenv.FormatRecords(recs))
	}
	cl.Close()

	if err := cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatalf("signal devkafka: %v", err)
	}
	select {
	case err := <-exited:
		if err != nil {
			t.Fatalf("devkafka exited with %v after SIGTERM, want status 0\n%s", err, stderr.String())
		}
	case <-time.After(10 * time.Second):
		t.Fatalf("devkafka still running 10s after SIGTERM\n%s", stderr.String())
	}
	if _, err := os.Stat(ready); !os.IsNotExist(err) {
		t.Errorf("ready file still exists after exit (stat: %v)", err)
	}
	if !strings.Contains(stderr.String(), "listening") {
		t.Errorf("log does not say where it listens:\n%s", stderr.String())
	}
}

func TestDevkafkaRejectsBadFlags(t *testing.T) {
	tests := []struct {
		name string
		args []string
		want string
	}{
		{name: "a listen address without port", args: []string{"-listen", "localhost"}, want: "-listen: want host:port"},
		{name: "zero brokers", args: []string{"-brokers", "0"}, want: "-brokers: must be between 1 and 32"},
		{name: "zero partitions", args: []string{"-partitions", "0"}, want: "-partitions: must be at least 1"},
		{name: "an unknown log level", args: []string{"-log-level", "loud"}, want: "-log-level: must be none"},
		{name: "a positional argument", args: []string{"extra"}, want: "unexpected arguments: extra"},
		{name: "a certificate without its key", args: []string{"-tls-cert", "cert.pem"}, want: "-tls-cert and -tls-key: set both or neither"},
		{name: "a client CA without a certificate", args: []string{"-tls-client-ca", "ca.pem"}, want: "-tls-client-ca: needs -tls-cert and -tls-key"},
		{name: "an unknown SASL mechanism", args: []string{"-sasl-user", "GSSAPI:u:p"}, want: `mechanism must be PLAIN, SCRAM-SHA-256 or SCRAM-SHA-512 (got "GSSAPI")`},
		{name: "a SASL user without password", args: []string{"-sasl-user", "PLAIN:u"}, want: "want MECHANISM:USER:PASSWORD"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var stderr bytes.Buffer
			if code := run(context.Background(), tt.args, &stderr); code != 2 {
				t.Errorf("exit status %d, want 2", code)
			}
			if !strings.Contains(stderr.String(), tt.want) {
				t.Errorf("stderr %q does not contain %q", stderr.String(), tt.want)
			}
		})
	}
}

func TestDevkafkaServesTLSWithClientCertificatesAndSASL(t *testing.T) {
	ca := testenv.NewCA(t, "devkafka CA")
	server := ca.Server(t, "broker", "127.0.0.1")
	clientCert := ca.Client(t, "client")
	pwFile := filepath.Join(t.TempDir(), "pw")
	if err := os.WriteFile(pwFile, []byte("scram-secret\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	bin := testenv.Binary(t, "devkafka")
	ready := filepath.Join(t.TempDir(), "ready")
	var stderr testenv.SyncBuffer
	cmd := exec.Command(bin, "-listen", "127.0.0.1:0", "-ready-file", ready, "-log-level", "info",
		"-tls-cert", server.CertFile, "-tls-key", server.KeyFile, "-tls-client-ca", ca.CertFile,
		"-sasl-user", "SCRAM-SHA-512:alice:@"+pwFile, "-sasl-user", "PLAIN:bob:plain-secret")
	cmd.Stderr = &stderr
	if err := cmd.Start(); err != nil {
		t.Fatalf("start devkafka: %v", err)
	}
	exited := make(chan error, 1)
	go func() { exited <- cmd.Wait() }()
	t.Cleanup(func() {
		cmd.Process.Signal(syscall.SIGTERM)
		<-exited
	})
	addr := waitForFile(t, ready, exited, &stderr)

	tlsCfg := &tls.Config{RootCAs: ca.Pool(), Certificates: []tls.Certificate{clientCert.TLSCertificate(t)}, MinVersion: tls.VersionTLS12}
	ping := func(opts ...kgo.Opt) error {
		cl, err := kgo.NewClient(append([]kgo.Opt{kgo.SeedBrokers(addr)}, opts...)...)
		if err != nil {
			return err
		}
		defer cl.Close()
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		return cl.Ping(ctx)
	}
	tests := []struct {
		name string
		opts []kgo.Opt
		ok   bool
	}{
		{"SCRAM-SHA-512 with the password from the file", []kgo.Opt{kgo.DialTLSConfig(tlsCfg), kgo.SASL(scram.Auth{User: "alice", Pass: "scram-secret"}.AsSha512Mechanism())}, true},
		{"PLAIN with the password from the command line", []kgo.Opt{kgo.DialTLSConfig(tlsCfg), kgo.SASL(plain.Auth{User: "bob", Pass: "plain-secret"}.AsMechanism())}, true},
		{"a wrong password is refused", []kgo.Opt{kgo.DialTLSConfig(tlsCfg), kgo.SASL(scram.Auth{User: "alice", Pass: "wrong"}.AsSha512Mechanism())}, false},
		{"no client certificate is refused", []kgo.Opt{kgo.DialTLSConfig(&tls.Config{RootCAs: ca.Pool(), MinVersion: tls.VersionTLS12}), kgo.SASL(plain.Auth{User: "bob", Pass: "plain-secret"}.AsMechanism())}, false},
		{"plaintext is refused", []kgo.Opt{kgo.SASL(plain.Auth{User: "bob", Pass: "plain-secret"}.AsMechanism())}, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := ping(tt.opts...)
			if tt.ok && err != nil {
				t.Fatalf("ping: %v", err)
			}
			if !tt.ok && err == nil {
				t.Fatal("ping succeeded, want a refusal")
			}
		})
	}
	for _, secret := range []string{"scram-secret", "plain-secret"} {
		if strings.Contains(stderr.String(), secret) {
			t.Errorf("devkafka's log shows a password:\n%s", stderr.String())
		}
	}
	if !strings.Contains(stderr.String(), "SCRAM-SHA-512:alice,PLAIN:bob") {
		t.Errorf("the listening line does not name the SASL users:\n%s", stderr.String())
	}
}

// waitForFile returns the trimmed content of path once it exists, failing t
// when the process exits or 10 seconds pass first.
func waitForFile(t *testing.T, path string, exited <-chan error, stderr *testenv.SyncBuffer) string {
	t.Helper()
	deadline := time.After(10 * time.Second)
	for {
		if data, err := os.ReadFile(path); err == nil {
			return strings.TrimSpace(string(data))
		}
		select {
		case err := <-exited:
			t.Fatalf("devkafka exited before it was ready: %v\n%s", err, stderr.String())
		case <-deadline:
			t.Fatalf("no ready file after 10s\n%s", stderr.String())
		case <-time.After(20 * time.Millisecond):
		}
	}
}
