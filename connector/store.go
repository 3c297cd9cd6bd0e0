package connector

import (
	"context"
	"errors"
	"fmt"

	"github.com/IBM/sarama"

	"github.com/tailbox-cdc/tailbox/config"
	"github.com/tailbox-cdc/tailbox/pkg/checkpoint"
	"github.com/tailbox-cdc/tailbox/pkg/kafka"
)

// kafkaStore reports whether the checkpoint lives in Kafka.
func (c *Connector) kafkaStore() bool { return c.cfg.Checkpoint.Store == config.StoreKafka }

// kafkaClientConfig is the sarama configuration of the connector's other
// Kafka clients (checkpoint store, lease): kafka.* connection settings.
func (c *Connector) kafkaClientConfig() (*sarama.Config, error) {
	pc, err := c.producerConfig()
	if err != nil {
		return nil, err
	}
	sc, err := kafka.ClientConfig(pc)
	if err != nil {
		return nil, fmt.Errorf("%w: %w", ErrConfig, err)
	}
	return sc, nil
}

// openStore opens the configured checkpoint store for writing: the file,
// locked against a second instance, or the Kafka topic.
func (c *Connector) openStore(ctx context.Context) (checkpoint.Store, error) {
	if !c.kafkaStore() {
		f, err := checkpoint.Open(c.cfg.Checkpoint.File)
		if err != nil {
			return nil, fmt.Errorf("open checkpoint: %w", err)
		}
		return f, nil
	}
	// Retried like the producer while Kafka cannot be reached or refuses
	// the login; sarama's own error says only that it ran out of brokers,
	// so ask pkg/kafka which it is.
	return retryKafka(ctx, c, func() (checkpoint.Store, error) {
		k, err := c.openKafkaStore(ctx, false)
		if err == nil {
			return k, nil
		}
		if errors.Is(err, checkpoint.ErrUnavailable) && ctx.Err() == nil {
			if pc, perr := c.producerConfig(); perr == nil {
				if derr := kafka.Diagnose(ctx, pc); errors.Is(derr, kafka.ErrAuthentication) || errors.Is(derr, kafka.ErrUnreachable) {
					return nil, fmt.Errorf("open checkpoint store (kafka topic %s): %w", c.cfg.Checkpoint.Topic, derr)
				}
			}
		}
		return nil, err
	})
}

// openKafkaStore opens the Kafka checkpoint store; readOnly creates no topic.
func (c *Connector) openKafkaStore(ctx context.Context, readOnly bool) (*checkpoint.Kafka, error) {
	sc, err := c.kafkaClientConfig()
	if err != nil {
		return nil, err
	}
	k, err := checkpoint.OpenKafka(ctx, checkpoint.KafkaOptions{
		Brokers: c.cfg.Kafka.Brokers, Config: sc, Topic: c.cfg.Checkpoint.Topic, Name: c.cfg.Name, ReadOnly: readOnly,
	})
	if err != nil {
		return nil, fmt.Errorf("open checkpoint: %w", err)
	}
	return k, nil
}

// readCheckpoint loads the stored checkpoint without taking the file's
// lock, so that it works while a connector runs (offsets show, dry run,
// check), and without creating the Kafka store's topic. It returns
// checkpoint.ErrNotFound when there is none.
func (c *Connector) readCheckpoint(ctx context.Context) (*checkpoint.Checkpoint, error) {
	if !c.kafkaStore() {
		return checkpoint.Read(c.cfg.Checkpoint.File)
	}
	k, err := c.openKafkaStore(ctx, true)
	if err != nil {
		return nil, err
	}
	defer k.Close()
	return k.Load(ctx)
}

// storeName names the checkpoint store in messages.
func (c *Connector) storeName() string {
	if c.kafkaStore() {
		return "kafka topic " + c.cfg.Checkpoint.Topic + " key " + c.cfg.Name
	}
	return c.cfg.Checkpoint.File
}
