package connector

import (
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"net"
	"os"

	"github.com/tailbox-cdc/tailbox/config"
)

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
// means plaintext.
// "preferred" is plaintext in this version: go-mysql cannot fall back from
// TLS to plaintext on one connection attempt.
func sourceTLS(t config.SourceTLS, addr string) (*tls.Config, error) {
	switch t.Mode {
	case "", "disabled", "preferred":
		return nil, nil
	}
	tc := &tls.Config{MinVersion: tls.VersionTLS12}
	if err := clientCert(tc, t.CertFile, t.KeyFile); err != nil {
		return nil, fmt.Errorf("source.tls: %w", err)
	}
	switch t.Mode {
	case "required":
		tc.InsecureSkipVerify = true // encrypted, server not verified, as MySQL's REQUIRED
	case "verify_ca", "verify_identity":
		pool, err := loadCA(t.CAFile)
		if err != nil {
			return nil, fmt.Errorf("source.tls.ca_file: %w", err)
		}
		tc.RootCAs = pool
		if host, _, err := net.SplitHostPort(addr); err == nil {
			tc.ServerName = host // verify_identity checks it
		}
		if t.Mode == "verify_ca" {
			// Verify the chain but not the host name, as MySQL's VERIFY_CA.
			tc.InsecureSkipVerify = true
			tc.VerifyPeerCertificate = func(raw [][]byte, _ [][]*x509.Certificate) error {
				return verifyChain(raw, pool)
			}
		}
	default:
		return nil, fmt.Errorf("source.tls.mode: unknown mode %q", t.Mode)
	}
	return tc, nil
}

func verifyChain(raw [][]byte, pool *x509.CertPool) error {
	if len(raw) == 0 {
		return errors.New("server sent no certificate")
	}
	certs := make([]*x509.Certificate, len(raw))
	for i, r := range raw {
		c, err := x509.ParseCertificate(r)
		if err != nil {
			return fmt.Errorf("parse server certificate: %w", err)
		}
		certs[i] = c
	}
	inter := x509.NewCertPool()
	for _, c := range certs[1:] {
		inter.AddCert(c)
	}
	_, err := certs[0].Verify(x509.VerifyOptions{Roots: pool, Intermediates: inter})
	return err
}

// kafkaTLS maps kafka.tls onto a tls.Config; nil means plaintext.
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
