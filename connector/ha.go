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
//
// The replica stays in the group for as long as it can: it leaves only
// when it steps down for a reason the group does not know of (fenced, or a
// failed takeover), so that the group hands the lease to another member.
// Other members joining or leaving do not move the lease (see package
// lease).
//
// opts.From applies to the first takeover that resolves a start position;
// later takeovers resume from the stored checkpoint. Errors that every
// takeover would meet again (configuration, an unusable checkpoint, a
// source server not set up for CDC, a rejected event) end Run; any other
// failure of a takeover sends the replica back to standby after a back-off.
func (c *Connector) runHA(ctx context.Context, opts RunOptions) error {
	sc, err := c.kafkaClientConfig()
	if err != nil {
		return err
	}
	var l *lease.Lease
	defer func() {
		if l != nil {
			_ = l.Close()
		}
	}()
	// leave steps down from the group; the next iteration joins again.
	leave := func() {
		_ = l.Close()
		l = nil
	}
	// sleep waits d unless ctx ends first, and reports whether it waited.
	sleep := func(d time.Duration) bool {
		select {
		case <-ctx.Done():
			return false
		case <-time.After(d):
			return true
		}
	}
	joinWait, failWait := time.Second, time.Second
	for ctx.Err() == nil {
		c.m.Standby()
		if l == nil {
			l, err = lease.Join(ctx, lease.Options{
				Brokers:        c.cfg.Kafka.Brokers,
				Config:         sc,
				Group:          "tailbox-" + c.cfg.Name,
				Topic:          c.cfg.HA.LeaseTopic,
				SessionTimeout: c.cfg.HA.SessionTimeout.D(),
				OnError:        func(err error) { c.log.Warn().Err(err).Msg("ha lease") },
			})
			if err != nil {
				l = nil
				if ctx.Err() != nil {
					return nil
				}
				c.log.Warn().Err(err).Dur("backoff", joinWait).Msg("cannot join the ha lease group, retrying")
				if !sleep(joinWait) {
					return nil
				}
				joinWait = min(joinWait*2, 30*time.Second)
				continue
			}
			joinWait = time.Second
		}
		c.log.Info().Str("lease_topic", c.cfg.HA.LeaseTopic).Str("group", "tailbox-"+c.cfg.Name).Msg("standing by until this replica holds the ha lease")
		lost, err := l.Acquire(ctx)
		if err != nil {
			if ctx.Err() != nil {
				return nil
			}
			return err
		}
		c.m.Active()
		c.log.Info().Str("from", opts.From).Msg("ha lease acquired: this replica is active and takes over from the Kafka-stored checkpoint")
		actx, cancel := context.WithCancelCause(ctx)
		go func() {
			select {
			case <-lost:
				cancel(errLeaseLost)
			case <-actx.Done():
			}
		}()
		began := time.Now()
		c.fromResolved = false
		err = c.runActive(actx, opts)
		leaseLost := errors.Is(context.Cause(actx), errLeaseLost)
		cancel(nil)
		if c.fromResolved {
			// --from is a one-time instruction: this takeover resolved it,
			// the next ones resume from the checkpoint it stored.
			opts.From = ""
		}
		if time.Since(began) > healthySession {
			failWait = time.Second // the back-off is for failures in a row
		}
		switch {
		case ctx.Err() != nil:
			return err
		case errors.Is(err, ErrFenced):
			// Another replica took over while this one believed it held the
			// lease (it stalled past its session): its membership is stale.
			c.log.Warn().Err(err).Msg("fenced by the replica that took over: standing by")
			leave()
		case err != nil && fatalInHA(err):
			return err
		case err != nil && !leaseLost:
			c.log.Warn().Err(err).Bool("lease_lost", leaseLost).Dur("backoff", failWait).Msg("takeover failed: handing the ha lease over and standing by")
			leave()
			if !sleep(failWait) {
				return nil
			}
			failWait = min(failWait*2, 30*time.Second)
		default:
			// The lease was lost: the member is still in the group (or
			// rejoins it by itself) and stands by in it.
			c.log.Warn().AnErr("run_error", err).Msg("ha lease lost: stopped streaming, standing by")
		}
	}
	return nil
}

// fatalInHA reports whether err, which ended a takeover, would end every
// later takeover of any replica the same way, so that standing by again
// cannot help: the configuration, the stored checkpoint or the source
// server's settings need an operator, or an event is rejected with
// outbox.on_error fail.
func fatalInHA(err error) bool {
	return errors.Is(err, ErrConfig) || errors.Is(err, ErrCheckpoint) || errors.Is(err, ErrServerSetup) || errors.Is(err, ErrRejected)
}
