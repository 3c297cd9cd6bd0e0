package connector

import (
	"crypto/tls"
	"fmt"

	"github.com/tailbox-cdc/tailbox/config"
	"github.com/tailbox-cdc/tailbox/internal/tlsfile"
)

// kafkaTLS maps kafka.tls onto a tls.Config; nil means plaintext. Without
// ca_file the system's roots verify the brokers; sarama sets the server name
// to each broker's host.
func kafkaTLS(t config.KafkaTLS) (*tls.Config, error) {
	if !t.Enabled {
		return nil, nil
	}
	tc := &tls.Config{MinVersion: tls.VersionTLS12, InsecureSkipVerify: t.InsecureSkipVerify}
	if t.CAFile != "" {
		pool, err := tlsfile.LoadCA(t.CAFile)
		if err != nil {
			return nil, fmt.Errorf("kafka.tls.ca_file: %w", err)
		}
		tc.RootCAs = pool
	}
	if err := tlsfile.ClientCert(tc, t.CertFile, t.KeyFile); err != nil {
		return nil, fmt.Errorf("kafka.tls: %w", err)
	}
	return tc, nil
}
