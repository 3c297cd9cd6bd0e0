package connector

import (
	"context"
	"errors"
	"time"

	"github.com/tailbox-cdc/tailbox/pkg/lease"
)

// errLeaseLost ends the active replica's run when its lease goes to another.
var errLeaseLost = errors.New("ha lease lost")

// runHA is Run with ha.enabled: the replica joins consumer group
// "tailbox-<name>" on ha.lease_topic and runs the pipeline only while the
// group assigns it the topic's partition. A new leader's transactional
// producer fences the former one before it loads the Kafka-stored
// checkpoint (see session), so a stalled former leader that resumes can
// commit nothing more: its commit fails as fenced, it steps down and
// stands by again.
func (c *Connector) runHA(ctx context.Context, opts RunOptions) error {
	sc, err := c.kafkaClientConfig()
	if err != nil {
		return err
	}
	wait := time.Second
	for ctx.Err() == nil {
		c.m.standby()
		l, err := lease.Join(ctx, lease.Options{
			Brokers:        c.cfg.Kafka.Brokers,
			Config:         sc,
			Group:          "tailbox-" + c.cfg.Name,
			Topic:          c.cfg.HA.LeaseTopic,
			SessionTimeout: c.cfg.HA.SessionTimeout.D(),
			OnError:        func(err error) { c.log.Warn().Err(err).Msg("ha lease") },
		})
		if err != nil {
			if ctx.Err() != nil {
				return nil
			}
			c.log.Warn().Err(err).Dur("backoff", wait).Msg("cannot join the ha lease group, retrying")
			select {
			case <-ctx.Done():
				return nil
			case <-time.After(wait):
			}
			wait = min(wait*2, 30*time.Second)
			continue
		}
		wait = time.Second
		c.log.Info().Str("lease_topic", c.cfg.HA.LeaseTopic).Str("group", "tailbox-"+c.cfg.Name).Msg("standing by until this replica holds the ha lease")
		lost, err := l.Acquire(ctx)
		if err != nil {
			_ = l.Close()
			if ctx.Err() != nil {
				return nil
			}
			return err
		}
		c.m.active()
		c.log.Info().Msg("ha lease acquired: this replica is active and takes over from the Kafka-stored checkpoint")
		actx, cancel := context.WithCancelCause(ctx)
		go func() {
			select {
			case <-lost:
				cancel(errLeaseLost)
			case <-actx.Done():
			}
		}()
		err = c.runActive(actx, opts)
		leaseLost := errors.Is(context.Cause(actx), errLeaseLost)
		cancel(nil)
		_ = l.Close()
		switch {
		case ctx.Err() != nil:
			return err
		case errors.Is(err, ErrFenced):
			c.log.Warn().Err(err).Msg("fenced by the replica that took over: standing by")
		case err != nil:
			return err
		case leaseLost:
			c.log.Warn().Msg("ha lease lost: stopped streaming, standing by")
		}
	}
	return nil
}
