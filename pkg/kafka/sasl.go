package kafka

import (
	"context"
	"errors"
	"fmt"
	"io"
	"syscall"

	"github.com/IBM/sarama"
)

// authFailure returns err, the failure to start the producer, or — when
// it is a refused SASL login — an error wrapping ErrAuthentication and err
// that names the mechanism, the user and the broker addr (which accepted a
// connection moments ago).
//
// Kafka answers wrong credentials with SASL_AUTHENTICATION_FAILED, which
// sarama returns as such; other brokers (kfake, Kafka before 1.0) close the
// connection instead, which sarama reports as an EOF indistinguishable from
// a broken connection. For those, authFailure asks addr again: once
// without SASL, which must work (the broker is up and speaks Kafka over this
// transport), then with SASL, which must fail.
func authFailure(cfg Config, addr string, err error) error {
	if cfg.SASL.Mechanism == "" || errors.Is(err, ErrUnreachable) {
		return err
	}
	switch {
	case errors.Is(err, sarama.ErrSASLAuthenticationFailed):
		return authError(cfg, addr, "the broker refused the credentials", err)
	case errors.Is(err, sarama.ErrUnsupportedSASLMechanism):
		return authError(cfg, addr, "the broker does not enable this mechanism", err)
	case !hungUp(err) || addr == "":
		return err
	}
	plain := cfg
	plain.SASL = SASL{}
	psc, perr := plain.saramaConfig()
	sc, serr := cfg.saramaConfig()
	if perr != nil || serr != nil || openBroker(addr, psc) != nil {
		return err
	}
	saslErr := openBroker(addr, sc)
	switch {
	case saslErr == nil:
		return err // the login works now: not an authentication problem
	case errors.Is(saslErr, sarama.ErrSASLAuthenticationFailed), hungUp(saslErr):
		return authError(cfg, addr, "the broker closed the connection during the SASL exchange, which is how it refuses a wrong user name or password", err)
	case errors.Is(saslErr, sarama.ErrUnsupportedSASLMechanism):
		return authError(cfg, addr, "the broker does not enable this mechanism", saslErr)
	}
	return err
}

// authError is the ErrAuthentication error for cfg's credentials at addr.
func authError(cfg Config, addr, why string, err error) error {
	return fmt.Errorf("%w: mechanism %s, user %q, broker %s: %s (check kafka.sasl.mechanism, kafka.sasl.user and the password): %w",
		ErrAuthentication, cfg.SASL.Mechanism, cfg.SASL.User, addr, why, err)
}

// hungUp reports whether err is the peer closing the connection.
func hungUp(err error) bool {
	return errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) ||
		errors.Is(err, syscall.ECONNRESET) || errors.Is(err, syscall.EPIPE)
}

// openBroker connects to addr with sc (TLS, SASL, an ApiVersions request)
// and closes the connection again; it returns the first error.
func openBroker(addr string, sc *sarama.Config) error {
	b := sarama.NewBroker(addr)
	if err := b.Open(sc); err != nil {
		return err
	}
	defer b.Close()
	if _, err := b.Connected(); err != nil {
		return err
	}
	if _, err := b.ApiVersions(&sarama.ApiVersionsRequest{}); err != nil {
		return err
	}
	return nil
}

// Diagnose tells why a client with cfg may fail to connect, for callers
// whose own client (sarama's, directly) reports only that it ran out of
// brokers: an error wrapping ErrUnreachable when no broker accepts a
// connection, the TLS error when the handshake fails, an error wrapping
// ErrAuthentication (naming mechanism, user and broker) when a reachable
// broker refuses the SASL login, and nil when a broker accepts it.
func Diagnose(ctx context.Context, cfg Config) error {
	if err := cfg.Validate(); err != nil {
		return err
	}
	cfg = cfg.withDefaults()
	addr, err := probe(ctx, cfg)
	if err != nil {
		return err
	}
	sc, err := cfg.saramaConfig()
	if err != nil {
		return err
	}
	if err := openBroker(addr, sc); err != nil {
		return authFailure(cfg, addr, err)
	}
	return nil
}
