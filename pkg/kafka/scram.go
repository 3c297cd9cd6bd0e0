package kafka

import (
	"context"
	"errors"

	"github.com/twmb/franz-go/pkg/sasl"
	"github.com/twmb/franz-go/pkg/sasl/scram"
)

// scramClient is a sarama.SCRAMClient built on franz-go's SCRAM
// implementation (github.com/twmb/franz-go/pkg/sasl/scram, part of the
// franz-go module already required), since xdg-go/scram, which sarama's
// examples use, is not a dependency. Like the Java client, it sends user
// name and password without SASLprep normalisation.
//
// Sarama drives it as: Begin, Step("") for the client-first message,
// Step(server-first) for the client-final message, Step(server-final),
// which verifies the server signature and ends the exchange.
type scramClient struct {
	sha512  bool
	mech    sasl.Mechanism
	session sasl.Session
	done    bool
}

// Begin implements sarama.SCRAMClient.
func (c *scramClient) Begin(user, password, authzID string) error {
	auth := scram.Auth{Zid: authzID, User: user, Pass: password}
	if c.sha512 {
		c.mech = auth.AsSha512Mechanism()
	} else {
		c.mech = auth.AsSha256Mechanism()
	}
	c.session, c.done = nil, false
	return nil
}

// Step implements sarama.SCRAMClient.
func (c *scramClient) Step(challenge string) (string, error) {
	if c.mech == nil {
		return "", errors.New("scram: Step before Begin")
	}
	if c.session == nil {
		session, first, err := c.mech.Authenticate(context.Background(), "")
		if err != nil {
			return "", err
		}
		c.session = session
		return string(first), nil
	}
	done, resp, err := c.session.Challenge([]byte(challenge))
	if err != nil {
		return "", err
	}
	c.done = done
	return string(resp), nil
}

// Done implements sarama.SCRAMClient.
func (c *scramClient) Done() bool { return c.done }
