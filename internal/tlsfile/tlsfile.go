// Package tlsfile loads the PEM files a TLS setting names: a CA bundle that
// verifies servers and a client certificate with its key. It is shared by
// the MySQL side (pkg/binlog) and the Kafka side (connector), which may not
// import each other; each wraps the errors with the setting's path.
package tlsfile

import (
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"os"
)

// LoadCA reads the PEM certificates of the file at path into a pool. It
// returns the file system's error when the file cannot be read, and an
// error naming path when it holds no PEM certificate.
func LoadCA(path string) (*x509.CertPool, error) {
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

// ClientCert loads the client certificate of certFile and keyFile into
// tc.Certificates. Both empty leaves tc as it is; one without the other, or
// a pair that does not load, is an error.
func ClientCert(tc *tls.Config, certFile, keyFile string) error {
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
