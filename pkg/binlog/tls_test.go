package binlog

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/rs/zerolog"

	"github.com/tailbox-cdc/tailbox/internal/testenv"
)

func TestSourceTLSMapsEveryMode(t *testing.T) {
	ca := testenv.NewCA(t, "test CA")
	client := ca.Client(t, "tailbox")
	tests := []struct {
		name    string
		tls     TLS
		wantNil bool
		wantErr string
	}{
		{name: "disabled is plaintext", tls: TLS{Mode: "disabled"}, wantNil: true},
		{name: "preferred encrypts without verifying", tls: TLS{Mode: "preferred"}},
		{name: "required encrypts without verifying", tls: TLS{Mode: "required"}},
		{name: "verify_ca verifies the chain", tls: TLS{Mode: "verify_ca", CAFile: ca.CertFile}},
		{name: "verify_identity verifies chain and name", tls: TLS{Mode: "verify_identity", CAFile: ca.CertFile}},
		{name: "a client certificate is loaded", tls: TLS{Mode: "required", CertFile: client.CertFile, KeyFile: client.KeyFile}},
		{name: "a missing CA file is an error", tls: TLS{Mode: "verify_ca", CAFile: "/nonexistent/ca.pem"}, wantErr: "source.tls.ca_file: read CA file"},
		{name: "a CA file without certificates is an error", tls: TLS{Mode: "verify_ca", CAFile: client.KeyFile}, wantErr: "holds no PEM certificate"},
		{name: "a certificate without its key is an error", tls: TLS{Mode: "required", CertFile: client.CertFile}, wantErr: "cert_file and key_file must be set together"},
		{name: "an unknown mode is an error", tls: TLS{Mode: "sometimes"}, wantErr: `unknown mode "sometimes"`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			tc, err := tt.tls.config("db.internal:3306")
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("sourceTLS = %v, want an error containing %q", err, tt.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if tt.wantNil != (tc == nil) {
				t.Fatalf("sourceTLS = %v, want nil: %v", tc, tt.wantNil)
			}
			if tc == nil {
				return
			}
			verifies := strings.HasPrefix(string(tt.tls.Mode), "verify_")
			if (tc.VerifyConnection != nil) != verifies {
				t.Errorf("VerifyConnection set: %v, want %v", tc.VerifyConnection != nil, verifies)
			}
			if tc.MinVersion < tls.VersionTLS12 {
				t.Errorf("MinVersion %x, want TLS 1.2 or newer", tc.MinVersion)
			}
			if tt.tls.CertFile != "" && len(tc.Certificates) != 1 {
				t.Errorf("%d client certificates, want 1", len(tc.Certificates))
			}
		})
	}
}

func TestVerifyServer(t *testing.T) {
	ca := testenv.NewCA(t, "test CA")
	other := testenv.NewCA(t, "other CA")
	parse := func(p testenv.CertPair) *x509.Certificate {
		c, err := x509.ParseCertificate(p.TLSCertificate(t).Certificate[0])
		if err != nil {
			t.Fatal(err)
		}
		return c
	}
	named := parse(ca.Server(t, "db", "db.internal", "10.0.0.5"))
	elsewhere := parse(ca.Server(t, "elsewhere", "db.example.org"))
	foreign := parse(other.Server(t, "foreign", "db.internal"))

	tests := []struct {
		name    string
		mode    TLSMode
		addr    string
		cert    *x509.Certificate
		wantErr string
	}{
		{"verify_ca accepts a certificate of the CA", "verify_ca", "db.internal:3306", named, ""},
		{"verify_ca accepts a certificate of the CA for another host", "verify_ca", "db.internal:3306", elsewhere, ""},
		{"verify_ca refuses another CA's certificate", "verify_ca", "db.internal:3306", foreign,
			`source.tls.mode verify_ca: the certificate of db.internal:3306 (subject "CN=foreign") is not signed by a CA of source.tls.ca_file CA.pem`},
		{"verify_identity accepts a certificate naming the host", "verify_identity", "db.internal:3306", named, ""},
		{"verify_identity accepts a certificate naming the IP address", "verify_identity", "10.0.0.5:3306", named, ""},
		{"verify_identity refuses a certificate naming another host", "verify_identity", "db.internal:3306", elsewhere,
			"source.tls.mode verify_identity: the certificate of db.internal:3306 (subject \"CN=elsewhere\") does not name db.internal (it names db.example.org;"},
		{"verify_identity refuses another CA's certificate", "verify_identity", "db.internal:3306", foreign, "is not signed by a CA of source.tls.ca_file CA.pem"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := verifyServer(tt.mode, "CA.pem", ca.Pool(), tt.addr)(tls.ConnectionState{PeerCertificates: []*x509.Certificate{tt.cert}})
			switch {
			case tt.wantErr == "" && err != nil:
				t.Fatalf("refused: %v", err)
			case tt.wantErr != "" && (err == nil || !strings.Contains(err.Error(), tt.wantErr)):
				t.Fatalf("got %v, want an error containing %q", err, tt.wantErr)
			}
		})
	}
	if err := verifyServer("verify_ca", "CA.pem", ca.Pool(), "db.internal:3306")(tls.ConnectionState{}); err == nil {
		t.Error("no server certificate accepted")
	}
}

// Open settles Config.TLS against the shared server, which offers no TLS:
// the modes that need TLS fail with ErrTLS and the fix, preferred falls
// back to plaintext, and the caller's context bounds the login.
func TestOpenSettlesTLS(t *testing.T) {
	db := testenv.MySQL(t)
	ca := testenv.NewCA(t, "test CA")
	open := func(ctx context.Context, t *testing.T, tc TLS) (*Reader, error) {
		return Open(ctx, Config{Addr: db.Addr, User: db.User, Password: db.Password, ServerID: 4182,
			Tables: []string{"tlscheck.outbox"}, TLS: tc}, zerolog.New(zerolog.NewTestWriter(t)), nil)
	}
	tests := []struct {
		name    string
		tls     TLS
		wantErr []string // nil: Open succeeds
	}{
		{name: "disabled connects in plaintext", tls: TLS{Mode: TLSDisabled}},
		{name: "the zero value connects in plaintext", tls: TLS{}},
		{name: "preferred falls back to plaintext when the server offers no TLS", tls: TLS{Mode: TLSPreferred}},
		{name: "required fails naming the mode and the fix", tls: TLS{Mode: TLSRequired},
			wantErr: []string{"source.tls.mode required: " + db.Addr + " does not offer TLS", "configure ssl_cert and ssl_key on the server"}},
		{name: "verify_ca fails naming the mode", tls: TLS{Mode: TLSVerifyCA, CAFile: ca.CertFile},
			wantErr: []string{"source.tls.mode verify_ca: " + db.Addr + " does not offer TLS"}},
		{name: "an unreadable CA file fails before any login", tls: TLS{Mode: TLSVerifyIdentity, CAFile: "/nonexistent/ca.pem"},
			wantErr: []string{"source.tls.ca_file: read CA file"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
			defer cancel()
			r, err := open(ctx, t, tt.tls)
			if tt.wantErr == nil {
				if err != nil {
					t.Fatalf("Open: %v", err)
				}
				defer r.Close()
				if r.cfg.tls.conf != nil {
					t.Fatalf("Open settled on TLS with a server that offers none")
				}
				if _, err := r.Inspector().BinaryLogs(ctx); err != nil {
					t.Fatalf("the metadata connection does not work: %v", err)
				}
				return
			}
			if err == nil {
				r.Close()
				t.Fatal("Open succeeded, want an error")
			}
			if !errors.Is(err, ErrTLS) || errors.Is(err, ErrConnection) {
				t.Errorf("errors.Is(err, ErrTLS) = %v, errors.Is(err, ErrConnection) = %v, want true, false: %v",
					errors.Is(err, ErrTLS), errors.Is(err, ErrConnection), err)
			}
			for _, w := range tt.wantErr {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error %q does not contain %q", err, w)
				}
			}
		})
	}

	t.Run("a context that has ended is the error, not a TLS problem", func(t *testing.T) {
		ctx, cancel := context.WithCancel(context.Background())
		cancel()
		r, err := open(ctx, t, TLS{Mode: TLSRequired})
		if err == nil {
			r.Close()
			t.Fatal("Open succeeded with an ended context")
		}
		if !errors.Is(err, context.Canceled) || errors.Is(err, ErrTLS) {
			t.Fatalf("got %v, want context.Canceled and no ErrTLS", err)
		}
	})
}

// Under preferred, a server that cannot be reached when TLS is settled
// leaves the decision to the connections that follow: once a server with
// TLS answers, the metadata connection and the binlog stream are encrypted
// (seen on the connection itself and by the server), and the decision
// holds from then on.
func TestPreferredDecidesAtTheFirstConnectionThatReachesTheServer(t *testing.T) {
	ca := testenv.NewCA(t, "test CA")
	cert := ca.Server(t, "mariadb", "127.0.0.1", "localhost")
	srv := testenv.StartMariaDB(t, fmt.Sprintf("ssl_ca=%s\nssl_cert=%s\nssl_key=%s\nperformance_schema=ON", ca.CertFile, cert.CertFile, cert.KeyFile))
	dbn := srv.CreateDatabase(t, "tlslater")
	srv.Exec(t, fmt.Sprintf(testenv.OutboxDDL, dbn))
	srv.Stop(t)

	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	cfg := Config{Addr: srv.Addr, User: srv.User, Password: srv.Password, ServerID: 4185,
		Tables: []string{dbn + ".outbox"}, TLS: TLS{Mode: TLSPreferred}, Heartbeat: time.Second}
	log := zerolog.New(zerolog.NewTestWriter(t))
	if err := resolveTLS(ctx, &cfg, log); err != nil {
		t.Fatalf("resolveTLS with the server down: %v", err)
	}
	if cfg.tls.conf != nil || cfg.tls.pending == nil {
		t.Fatalf("with the server down: conf %v, pending %v; want no decision yet", cfg.tls.conf, cfg.tls.pending)
	}

	srv.Start(t)
	r, err := open(ctx, cfg, log, nil)
	if err != nil {
		t.Fatalf("open once the server is up: %v", err)
	}
	defer r.Close()
	res, err := r.insp.meta.c.Execute("SHOW SESSION STATUS LIKE 'Ssl_cipher'")
	if err != nil {
		t.Fatal(err)
	}
	if cipher, _ := res.GetString(0, 1); cipher == "" {
		t.Fatal("the metadata connection is not encrypted")
	}
	if cfg.tls.pending != nil || cfg.tls.conf == nil {
		t.Fatalf("after a connection reached the server: conf %v, pending %v; want TLS decided", cfg.tls.conf, cfg.tls.pending)
	}

	start, err := r.Inspector().Latest(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if err := r.Start(ctx, start, 0, ""); err != nil {
		t.Fatal(err)
	}
	rows := srv.Exec(t, `SELECT COALESCE(c.VARIABLE_VALUE, '')
		FROM performance_schema.threads t
		LEFT JOIN performance_schema.status_by_thread c ON c.THREAD_ID = t.THREAD_ID AND c.VARIABLE_NAME = 'Ssl_cipher'
		WHERE t.PROCESSLIST_COMMAND = 'Binlog Dump'`)
	if rows.RowNumber() != 1 {
		t.Fatalf("%d binlog dump connections on the server, want 1", rows.RowNumber())
	}
	if cipher, _ := rows.GetString(0, 0); cipher == "" {
		t.Fatal("the binlog stream is not encrypted")
	}
}
