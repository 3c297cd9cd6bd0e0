package connector

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"net"
	"os"
	"strings"
	"sync/atomic"
	"time"

	"github.com/go-mysql-org/go-mysql/client"
	"github.com/go-mysql-org/go-mysql/mysql"

	"github.com/tailbox-cdc/tailbox/config"
)

// TLS modes of source.tls.mode, named as MySQL's --ssl-mode values.
const (
	tlsDisabled       = "disabled"
	tlsPreferred      = "preferred"
	tlsRequired       = "required"
	tlsVerifyCA       = "verify_ca"
	tlsVerifyIdentity = "verify_identity"
)

// tlsCheckTimeout bounds the connection checkSourceTLS makes.
const tlsCheckTimeout = 5 * time.Second

// erSecureTransportRequired is MySQL's ER_SECURE_TRANSPORT_REQUIRED (3159):
// a plaintext login refused under require_secure_transport=ON. MariaDB
// answers ER_ACCESS_DENIED_ERROR (1045) instead.
const erSecureTransportRequired = 3159

func loadCA(path string) (*x509.CertPool, error) {
	pem, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("read CA file: %w", err)
	}
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(pem) {
		return nil, fmt.Errorf("CA file %s holds no PEM certificate", path)
	}
	return pool, nil
}

func clientCert(tc *tls.Config, certFile, keyFile string) error {
	if certFile == "" && keyFile == "" {
		return nil
	}
	if certFile == "" || keyFile == "" {
		return errors.New("cert_file and key_file must be set together")
	}
	cert, err := tls.LoadX509KeyPair(certFile, keyFile)
	if err != nil {
		return fmt.Errorf("load client certificate: %w", err)
	}
	tc.Certificates = []tls.Certificate{cert}
	return nil
}

// sourceTLS maps source.tls onto a tls.Config for the server at addr; nil
// (mode disabled) means plaintext. As MySQL's --ssl-mode:
//   - preferred and required encrypt without verifying the server (whether
//     preferred uses TLS at all is decided by resolveSourceTLS);
//   - verify_ca also checks that the server's certificate chains to a CA
//     of ca_file, and verify_identity that it names addr's host too (a DNS
//     name or IP address SAN).
//
// Verification is done in VerifyConnection rather than by crypto/tls, so
// that its error names the mode and the CA file wherever it surfaces.
func sourceTLS(t config.SourceTLS, addr string) (*tls.Config, error) {
	if t.Mode == "" || t.Mode == tlsDisabled {
		return nil, nil
	}
	tc := &tls.Config{MinVersion: tls.VersionTLS12}
	if err := clientCert(tc, t.CertFile, t.KeyFile); err != nil {
		return nil, fmt.Errorf("source.tls: %w", err)
	}
	switch t.Mode {
	case tlsPreferred, tlsRequired:
		tc.InsecureSkipVerify = true // encrypted, server not verified
	case tlsVerifyCA, tlsVerifyIdentity:
		pool, err := loadCA(t.CAFile)
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
	mode, addr, subject, why string
	err                      error
}

func (e *certError) Error() string {
	return fmt.Sprintf("source.tls.mode %s: the certificate of %s (subject %q) %s: %v", e.mode, e.addr, e.subject, e.why, e.err)
}

func (e *certError) Unwrap() error { return e.err }

// verifyServer returns a VerifyConnection callback that accepts a server
// certificate chaining to pool and, for verify_identity, valid for addr's
// host; it returns a *certError otherwise.
func verifyServer(mode, caFile string, pool *x509.CertPool, addr string) func(tls.ConnectionState) error {
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
		if mode == tlsVerifyIdentity {
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

// resolveSourceTLS returns the tls.Config of the source connections:
// sourceTLS's mapping, checked by checkSourceTLS.
func (c *Connector) resolveSourceTLS() (*tls.Config, error) {
	src := c.cfg.Source
	tc, err := sourceTLS(src.TLS, src.Addr)
	if err != nil {
		return nil, err
	}
	ctx, cancel := context.WithTimeout(context.Background(), tlsCheckTimeout)
	defer cancel()
	return c.checkSourceTLS(ctx, tc)
}

// checkSourceTLS logs in to the source once with tc, so that a TLS problem
// stops the connector at once with a clear error rather than being retried
// as a lost connection, and decides mode preferred:
//   - preferred: tc when the server offers TLS, else nil (plaintext) — also,
//     with a warning, when the check cannot tell, since preferred never
//     makes a connection fail that disabled would allow;
//   - required, verify_ca, verify_identity: an error when the server offers
//     no TLS or the handshake fails (certificate not accepted, client
//     certificate refused);
//   - disabled: an error when the server refuses the plaintext login but
//     accepts the same credentials over TLS (require_secure_transport=ON, a
//     user created REQUIRE SSL).
//
// Anything else — unreachable, wrong password — is left to the reader,
// which retries.
func (c *Connector) checkSourceTLS(ctx context.Context, tc *tls.Config) (*tls.Config, error) {
	src := c.cfg.Source
	mode := src.TLS.Mode
	if mode == "" {
		mode = tlsDisabled
	}
	res := c.tryLogin(ctx, tc)
	switch {
	case res.err == nil:
		return tc, nil

	case tc == nil:
		var myErr *mysql.MyError
		if !errors.As(res.err, &myErr) || (myErr.Code != mysql.ER_ACCESS_DENIED_ERROR && myErr.Code != erSecureTransportRequired) {
			return nil, nil
		}
		// Does the server let this user in over TLS? Then TLS is what it
		// wants.
		probe := &tls.Config{MinVersion: tls.VersionTLS12, InsecureSkipVerify: true}
		if myErr.Code == erSecureTransportRequired || c.tryLogin(ctx, probe).err == nil {
			return nil, fmt.Errorf("source.tls.mode disabled: %s refuses the plaintext login of %s but accepts it over TLS "+
				"(require_secure_transport=ON, or the user requires SSL): set source.tls.mode to required, verify_ca or verify_identity: %w",
				src.Addr, src.User, res.err)
		}
		return nil, nil

	case !res.dialed:
		if mode == tlsPreferred {
			c.log.Warn().Err(res.err).Str("addr", src.Addr).
				Msg("source.tls.mode preferred: cannot reach the source to learn whether it offers TLS; connecting without TLS")
			return nil, nil
		}
		return tc, nil // the reader retries; certificates are still checked then

	case strings.Contains(res.err.Error(), "does not support TLS"):
		if mode == tlsPreferred {
			c.log.Debug().Str("addr", src.Addr).Msg("source offers no TLS: connecting without TLS (source.tls.mode preferred)")
			return nil, nil
		}
		return nil, fmt.Errorf("source.tls.mode %s: %s does not offer TLS (its have_ssl is not YES): configure ssl_cert and ssl_key on the server, or set source.tls.mode to preferred or disabled", mode, src.Addr)

	case !res.handshook:
		if mode == tlsPreferred {
			c.log.Warn().Err(res.err).Str("addr", src.Addr).
				Msg("source.tls.mode preferred: TLS handshake failed; connecting without TLS")
			return nil, nil
		}
		var certErr *certError
		if errors.As(res.err, &certErr) {
			return nil, certErr
		}
		return nil, fmt.Errorf("source.tls.mode %s: TLS handshake with %s failed: %w", mode, src.Addr, res.err)
	}
	return tc, nil
}

// loginResult is what tryLogin saw.
type loginResult struct {
	err       error
	dialed    bool // the TCP connection was established
	handshook bool // the TLS handshake completed
}

// tryLogin connects and logs in to the source once with tc (nil: plaintext)
// and quits.
func (c *Connector) tryLogin(ctx context.Context, tc *tls.Config) loginResult {
	src := c.cfg.Source
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
	conn, err := client.ConnectWithDialer(ctx, "tcp", src.Addr, src.User, src.Password.Reveal(), "", dial, opts...)
	if err == nil {
		_ = conn.Quit()
	}
	return loginResult{err: err, dialed: dialed.Load(), handshook: handshook.Load()}
}

// kafkaTLS maps kafka.tls onto a tls.Config; nil means plaintext. Without
// ca_file the system's roots verify the brokers; sarama sets the server name
// to each broker's host.
func kafkaTLS(t config.KafkaTLS) (*tls.Config, error) {
	if !t.Enabled {
		return nil, nil
	}
	tc := &tls.Config{MinVersion: tls.VersionTLS12, InsecureSkipVerify: t.InsecureSkipVerify}
	if t.CAFile != "" {
		pool, err := loadCA(t.CAFile)
		if err != nil {
			return nil, fmt.Errorf("kafka.tls.ca_file: %w", err)
		}
		tc.RootCAs = pool
	}
	if err := clientCert(tc, t.CertFile, t.KeyFile); err != nil {
		return nil, fmt.Errorf("kafka.tls: %w", err)
	}
	return tc, nil
}
