package binlog

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"net"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/go-mysql-org/go-mysql/client"
	"github.com/go-mysql-org/go-mysql/mysql"
	"github.com/rs/zerolog"

	"github.com/tailbox-cdc/tailbox/internal/tlsfile"
)

// TLSMode says whether and how the connections to the server use TLS. Its
// values are those of MySQL's --ssl-mode, lower case; the zero value means
// TLSDisabled. Messages name the mode as tailbox's source.tls.mode setting.
type TLSMode string

// TLS modes.
const (
	// TLSDisabled connects without TLS.
	TLSDisabled TLSMode = "disabled"
	// TLSPreferred encrypts, without verifying the server, when the server
	// offers TLS, and connects without TLS otherwise.
	TLSPreferred TLSMode = "preferred"
	// TLSRequired encrypts without verifying the server.
	TLSRequired TLSMode = "required"
	// TLSVerifyCA encrypts and checks that the server's certificate chains
	// to a CA of TLS.CAFile.
	TLSVerifyCA TLSMode = "verify_ca"
	// TLSVerifyIdentity is TLSVerifyCA, and the certificate must name the
	// host of Config.Addr (a DNS name or IP address SAN).
	TLSVerifyIdentity TLSMode = "verify_identity"
)

// TLS is the TLS setting of the connections to the server. Its zero value
// is plaintext.
type TLS struct {
	// Mode is how TLS is used; "" means TLSDisabled.
	Mode TLSMode
	// CAFile names the PEM CA bundle that TLSVerifyCA and TLSVerifyIdentity
	// verify the server's certificate against; the other modes ignore it.
	CAFile string
	// CertFile and KeyFile name the client certificate and its key, sent
	// when the server asks for one; both or neither.
	CertFile, KeyFile string
}

// tlsCheckTimeout bounds the logins resolveTLS makes.
const tlsCheckTimeout = 5 * time.Second

// erSecureTransportRequired is MySQL's ER_SECURE_TRANSPORT_REQUIRED (3159):
// a plaintext login refused under require_secure_transport=ON. MariaDB
// answers ER_ACCESS_DENIED_ERROR (1045) instead.
const erSecureTransportRequired = 3159

// tlsError marks a TLS problem as ErrTLS without changing its message, which
// names the source.tls setting to change.
type tlsError struct{ err error }

func (e *tlsError) Error() string   { return e.err.Error() }
func (e *tlsError) Unwrap() []error { return []error{ErrTLS, e.err} }

// resolveTLS settles cfg.TLS into cfg.tls, the TLS decision of every
// connection to the server that cfg and its copies make: the mapping of
// TLS.config, checked by checkTLS with one login bounded by tlsCheckTimeout.
// Under preferred, a server that cannot be reached leaves the decision to
// the next connection (see Config.tlsConfig). Its errors match ErrTLS,
// except the error of ctx when ctx ends first.
func resolveTLS(ctx context.Context, cfg *Config, log zerolog.Logger) error {
	tc, err := cfg.TLS.config(cfg.Addr)
	if err != nil {
		return &tlsError{err}
	}
	pctx := ctx
	ctx, cancel := context.WithTimeout(ctx, tlsCheckTimeout)
	defer cancel()
	settled, undecided, err := checkTLS(ctx, cfg, tc, log)
	if cerr := pctx.Err(); cerr != nil {
		return fmt.Errorf("check tls with %s: %w", cfg.Addr, cerr)
	}
	if err != nil {
		return &tlsError{err}
	}
	cfg.tls = &tlsDecision{conf: settled, log: log}
	if undecided {
		cfg.tls.pending = tc
		log.Warn().Str("addr", cfg.Addr).
			Msg("source.tls.mode preferred: cannot reach the source to learn whether it offers TLS; each connection tries to find out until one does")
	}
	return nil
}

// tlsDecision is the TLS of the connections to one server, shared by the
// copies of the Config resolveTLS settled (the Reader's, its Inspector's).
// Safe for concurrent use.
type tlsDecision struct {
	mu   sync.Mutex
	conf *tls.Config // nil: plaintext
	// pending is set while preferred has not been decided because the
	// server could not be reached: the tls.Config to check with at the
	// next connection.
	pending *tls.Config
	log     zerolog.Logger
}

// tlsConfig returns the tls.Config of a new connection to the server, nil
// for plaintext. A decision checkTLS made with the server's answer holds
// for every connection: whether the server offers TLS is part of its
// configuration. One made without an answer — preferred, the server
// unreachable — is made again, with one login, at each new connection
// until the server answers, so that a server that was down when tailbox
// started is not read in plaintext for the life of the process.
func (c *Config) tlsConfig(ctx context.Context) *tls.Config {
	d := c.tls
	if d == nil {
		return nil
	}
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.pending == nil {
		return d.conf
	}
	pctx, cancel := context.WithTimeout(ctx, tlsCheckTimeout)
	defer cancel()
	tc, undecided, err := checkTLS(pctx, c, d.pending, d.log)
	if err != nil || undecided {
		return nil // still unreachable, most likely: this connection fails too
	}
	d.conf, d.pending = tc, nil
	d.log.Info().Str("addr", c.Addr).Bool("tls", tc != nil).Msg("source.tls.mode preferred: decided with the source reachable")
	return tc
}

// config maps t onto a tls.Config for the server at addr; nil (mode
// disabled) means plaintext. As MySQL's --ssl-mode:
//   - preferred and required encrypt without verifying the server (whether
//     preferred uses TLS at all is decided by checkTLS);
//   - verify_ca also checks that the server's certificate chains to a CA
//     of ca_file, and verify_identity that it names addr's host too (a DNS
//     name or IP address SAN).
//
// Verification is done in VerifyConnection rather than by crypto/tls, so
// that its error names the mode and the CA file wherever it surfaces.
func (t TLS) config(addr string) (*tls.Config, error) {
	if t.Mode == "" || t.Mode == TLSDisabled {
		return nil, nil
	}
	tc := &tls.Config{MinVersion: tls.VersionTLS12}
	if err := tlsfile.ClientCert(tc, t.CertFile, t.KeyFile); err != nil {
		return nil, fmt.Errorf("source.tls: %w", err)
	}
	switch t.Mode {
	case TLSPreferred, TLSRequired:
		tc.InsecureSkipVerify = true // encrypted, server not verified
	case TLSVerifyCA, TLSVerifyIdentity:
		pool, err := tlsfile.LoadCA(t.CAFile)
		if err != nil {
			return nil, fmt.Errorf("source.tls.ca_file: %w", err)
		}
		host, _, err := net.SplitHostPort(addr)
		if err != nil {
			return nil, fmt.Errorf("source.addr: %w", err)
		}
		tc.ServerName = host // SNI; not sent for IP addresses
		// crypto/tls would check the host name too: verify here instead.
		tc.InsecureSkipVerify = true
		tc.VerifyConnection = verifyServer(t.Mode, t.CAFile, pool, addr)
	default:
		return nil, fmt.Errorf("source.tls.mode: unknown mode %q", t.Mode)
	}
	return tc, nil
}

// certError is a server certificate that verify_ca or verify_identity
// refused.
type certError struct {
	mode          TLSMode
	addr, subject string
	why           string
	err           error
}

func (e *certError) Error() string {
	return fmt.Sprintf("source.tls.mode %s: the certificate of %s (subject %q) %s: %v", e.mode, e.addr, e.subject, e.why, e.err)
}

func (e *certError) Unwrap() error { return e.err }

// verifyServer returns a VerifyConnection callback that accepts a server
// certificate chaining to pool and, for verify_identity, valid for addr's
// host; it returns a *certError otherwise.
func verifyServer(mode TLSMode, caFile string, pool *x509.CertPool, addr string) func(tls.ConnectionState) error {
	host, _, _ := net.SplitHostPort(addr)
	return func(cs tls.ConnectionState) error {
		if len(cs.PeerCertificates) == 0 {
			return &certError{mode: mode, addr: addr, why: "is missing", err: errors.New("the server sent no certificate")}
		}
		leaf := cs.PeerCertificates[0]
		opts := x509.VerifyOptions{Roots: pool, Intermediates: x509.NewCertPool()}
		for _, c := range cs.PeerCertificates[1:] {
			opts.Intermediates.AddCert(c)
		}
		if mode == TLSVerifyIdentity {
			opts.DNSName = host
		}
		if _, err := leaf.Verify(opts); err != nil {
			why := "is not signed by a CA of source.tls.ca_file " + caFile
			var hostErr x509.HostnameError
			if errors.As(err, &hostErr) {
				why = "does not name " + host + " (it names " + certNames(leaf) +
					"; verify_identity checks the host of source.addr against these)"
			}
			return &certError{mode: mode, addr: addr, subject: leaf.Subject.String(), why: why, err: err}
		}
		return nil
	}
}

// certNames lists the DNS names and IP addresses c is valid for.
func certNames(c *x509.Certificate) string {
	names := append([]string(nil), c.DNSNames...)
	for _, ip := range c.IPAddresses {
		names = append(names, ip.String())
	}
	if len(names) == 0 {
		return "no DNS name or IP address"
	}
	return strings.Join(names, ", ")
}

// checkTLS logs in to the server once with tc, so that a TLS problem stops
// the caller at once with a clear error rather than being retried as a lost
// connection, and decides mode preferred:
//   - preferred: tc when the server offers TLS, else nil (plaintext) — also
//     when the server cannot be reached, with undecided set, since
//     preferred never makes a connection fail that disabled would allow;
//   - required, verify_ca, verify_identity: an error when the server offers
//     no TLS or the handshake fails (certificate not accepted, client
//     certificate refused);
//   - disabled: an error when the server refuses the plaintext login but
//     accepts the same credentials over TLS (require_secure_transport=ON, a
//     user created REQUIRE SSL).
//
// Anything else — unreachable, wrong password — is left to the connection
// that follows, whose error is ErrConnection's or the server's.
func checkTLS(ctx context.Context, cfg *Config, tc *tls.Config, log zerolog.Logger) (_ *tls.Config, undecided bool, _ error) {
	mode := cfg.TLS.Mode
	if mode == "" {
		mode = TLSDisabled
	}
	res := tryLogin(ctx, cfg, tc)
	switch {
	case res.err == nil:
		return tc, false, nil

	case tc == nil:
		return nil, false, plaintextRefused(ctx, cfg, res.err)

	case !res.dialed:
		if mode == TLSPreferred {
			return nil, true, nil
		}
		return tc, false, nil // the caller retries; certificates are still checked then

	case strings.Contains(res.err.Error(), "does not support TLS"):
		if mode == TLSPreferred {
			log.Debug().Str("addr", cfg.Addr).Msg("source offers no TLS: connecting without TLS (source.tls.mode preferred)")
			return nil, false, nil
		}
		return nil, false, fmt.Errorf("source.tls.mode %s: %s does not offer TLS (its have_ssl is not YES): configure ssl_cert and ssl_key on the server, or set source.tls.mode to preferred or disabled", mode, cfg.Addr)

	case !res.handshook:
		if mode == TLSPreferred {
			log.Warn().Err(res.err).Str("addr", cfg.Addr).
				Msg("source.tls.mode preferred: TLS handshake failed; connecting without TLS")
			return nil, false, nil
		}
		var certErr *certError
		if errors.As(res.err, &certErr) {
			return nil, false, certErr
		}
		return nil, false, fmt.Errorf("source.tls.mode %s: TLS handshake with %s failed: %w", mode, cfg.Addr, res.err)
	}
	return tc, false, nil
}

// plaintextRefused returns an error when loginErr, the server's answer to a
// plaintext login, is a refusal and the server accepts the same login over
// TLS: then TLS is what it wants. Otherwise it returns nil.
func plaintextRefused(ctx context.Context, cfg *Config, loginErr error) error {
	var myErr *mysql.MyError
	if !errors.As(loginErr, &myErr) || (myErr.Code != mysql.ER_ACCESS_DENIED_ERROR && myErr.Code != erSecureTransportRequired) {
		return nil
	}
	probe := &tls.Config{MinVersion: tls.VersionTLS12, InsecureSkipVerify: true}
	if myErr.Code != erSecureTransportRequired && tryLogin(ctx, cfg, probe).err != nil {
		return nil
	}
	return fmt.Errorf("source.tls.mode disabled: %s refuses the plaintext login of %s but accepts it over TLS "+
		"(require_secure_transport=ON, or the user requires SSL): set source.tls.mode to required, verify_ca or verify_identity: %w",
		cfg.Addr, cfg.User, loginErr)
}

// loginResult is what tryLogin saw.
type loginResult struct {
	err       error
	dialed    bool // the TCP connection was established
	handshook bool // the TLS handshake completed
}

// tryLogin connects and logs in to the server once with tc (nil: plaintext)
// and quits.
func tryLogin(ctx context.Context, cfg *Config, tc *tls.Config) loginResult {
	var dialed, handshook atomic.Bool
	deadline, ok := ctx.Deadline()
	if !ok {
		deadline = time.Now().Add(tlsCheckTimeout)
	}
	dial := func(ctx context.Context, network, addr string) (net.Conn, error) {
		conn, err := (&net.Dialer{}).DialContext(ctx, network, addr)
		if err != nil {
			return nil, err
		}
		dialed.Store(true)
		// go-mysql bounds neither the handshake nor the login.
		_ = conn.SetDeadline(deadline)
		return conn, nil
	}
	var opts []client.Option
	if tc != nil {
		tc = tc.Clone()
		verify := tc.VerifyConnection
		tc.VerifyConnection = func(cs tls.ConnectionState) error {
			if verify != nil {
				if err := verify(cs); err != nil {
					return err
				}
			}
			handshook.Store(true)
			return nil
		}
		opts = append(opts, func(conn *client.Conn) error { conn.SetTLSConfig(tc); return nil })
	}
	conn, err := client.ConnectWithDialer(ctx, "tcp", cfg.Addr, cfg.User, cfg.Password, "", dial, opts...)
	if err == nil {
		_ = conn.Quit()
	}
	return loginResult{err: err, dialed: dialed.Load(), handshook: handshook.Load()}
}
