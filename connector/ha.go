package connector

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/tailbox-cdc/tailbox/connector/pipeline"
	"github.com/tailbox-cdc/tailbox/internal/retry"
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
// stands by again. Before it opens a transactional producer, a holder
// confirms the lease with the group coordinator (see confirmLease), so
// that a former holder that resumes fences nobody; a holder fenced while
// the coordinator confirms its lease takes over again after a back-off
// instead of handing the lease over.
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
	h := &haReplica{c: c, opts: opts, lease: lease.Options{
		Brokers:        c.cfg.Kafka.Brokers,
		Config:         sc,
		Group:          "tailbox-" + c.cfg.Name,
		Topic:          c.cfg.HA.LeaseTopic,
		SessionTimeout: c.cfg.HA.SessionTimeout.D(),
		OnError:        func(err error) { c.log.Warn().Err(err).Msg("ha lease") },
	}}
	h.joinWait = retry.Backoff{Initial: time.Second, Max: 30 * time.Second}
	h.failWait = retry.Backoff{Initial: time.Second, Max: 30 * time.Second, ResetAfter: healthySession}
	defer h.leave()
	for ctx.Err() == nil {
		c.m.Standby()
		if h.l == nil && !h.join(ctx) {
			continue
		}
		c.log.Info().Str("lease_topic", c.cfg.HA.LeaseTopic).Str("group", h.lease.Group).Msg("standing by until this replica holds the ha lease")
		lost, err := h.l.Acquire(ctx)
		if err != nil {
			if ctx.Err() != nil {
				return nil
			}
			return err
		}
		if err := h.takeOver(ctx, lost); err != nil || ctx.Err() != nil {
			return err
		}
	}
	return nil
}

// haReplica is the state of runHA.
type haReplica struct {
	c     *Connector
	opts  RunOptions
	lease lease.Options
	l     *lease.Lease // nil while not in the group
	// joinWait backs off joining the group; failWait standing by again
	// after failed takeovers in a row.
	joinWait, failWait retry.Backoff
}

// join joins the lease group; on failure it waits its back-off (or until
// ctx ends) and reports false.
func (h *haReplica) join(ctx context.Context) bool {
	l, err := lease.Join(ctx, h.lease)
	if err != nil {
		if ctx.Err() == nil {
			wait := h.joinWait.Next()
			h.c.log.Warn().Err(err).Dur("backoff_ms", wait).Msg("cannot join the ha lease group, retrying")
			retry.Sleep(ctx, wait)
		}
		return false
	}
	h.l = l
	h.joinWait.Reset()
	return true
}

// leave steps down from the group; the next iteration joins again.
func (h *haReplica) leave() {
	if h.l != nil {
		_ = h.l.Close()
		h.l = nil
	}
}

// takeOver runs the active replica until the lease is lost (lost closes),
// ctx ends or the run fails, and decides what follows: standing by in the
// group, stepping down from it, or — for an error every takeover would
// meet again — ending Run with that error.
func (h *haReplica) takeOver(ctx context.Context, lost <-chan struct{}) error {
	c := h.c
	c.m.Active()
	c.log.Info().Str("from", h.opts.From).Msg("ha lease acquired: this replica is active and takes over from the Kafka-stored checkpoint")
	actx, cancel := context.WithCancelCause(ctx)
	go func() {
		select {
		case <-lost:
			cancel(errLeaseLost)
		case <-actx.Done():
		}
	}()
	h.failWait.Started()
	c.fromResolved = false
	c.lease = h.l
	err := c.runActive(actx, h.opts)
	c.lease = nil
	leaseLost := errors.Is(context.Cause(actx), errLeaseLost) || errors.Is(err, lease.ErrLost)
	cancel(nil)
	h.failWait.Ended()
	if c.fromResolved {
		// --from is a one-time instruction: this takeover resolved it,
		// the next ones resume from the checkpoint it stored.
		h.opts.From = ""
	}
	switch {
	case ctx.Err() != nil:
		return err
	case errors.Is(err, ErrFenced) && h.l.Check(ctx) == nil:
		// The coordinator confirms that this replica holds the lease: the
		// producer that fenced it is a former holder's that resumed from
		// a stall, and has lost the lease since. Take over again (that
		// fences it in turn) after a back-off.
		wait := h.failWait.Next()
		c.log.Warn().Err(err).Dur("backoff_ms", wait).Msg("fenced while holding the ha lease: taking over again after a back-off")
		retry.Sleep(ctx, wait)
	case errors.Is(err, ErrFenced):
		// Another replica took over while this one believed it held the
		// lease (it stalled past its session): its membership is stale.
		c.log.Warn().Err(err).Msg("fenced by the replica that took over: standing by")
		h.leave()
	case err != nil && fatalInHA(err):
		return err
	case err != nil && !leaseLost:
		wait := h.failWait.Next()
		c.log.Warn().Err(err).Bool("lease_lost", leaseLost).Dur("backoff_ms", wait).Msg("takeover failed: handing the ha lease over and standing by")
		h.leave()
		retry.Sleep(ctx, wait)
	default:
		// The lease was lost: the member is still in the group (or
		// rejoins it by itself) and stands by in it.
		c.log.Warn().AnErr("run_error", err).Msg("ha lease lost: stopped streaming, standing by")
	}
	return nil
}

// confirmLease asks the group coordinator, before a transactional
// producer with id txnID opens (its InitProducerId fences any other
// producer of that id), whether this replica still holds the ha lease: a
// replica that stalled past its session, e.g. in a restart back-off, and
// resumed believes it holds the lease until its next heartbeat is
// answered, and must not fence the replica that took over meanwhile. The
// error wraps lease.ErrLost when the lease is gone, and pipeline.ErrRetry
// when the coordinator could not be asked.
func (c *Connector) confirmLease(ctx context.Context, txnID string) error {
	if c.lease == nil || txnID == "" {
		return nil
	}
	err := c.lease.Check(ctx)
	switch {
	case err == nil:
		return nil
	case errors.Is(err, lease.ErrLost), ctx.Err() != nil:
		return fmt.Errorf("open the transactional producer: %w", err)
	default:
		return fmt.Errorf("%w: open the transactional producer: %w", pipeline.ErrRetry, err)
	}
}

// fatalInHA reports whether err, which ended a takeover, would end every
// later takeover of any replica the same way, so that standing by again
// cannot help: the configuration, the stored checkpoint or the source
// server's settings need an operator, or an event is rejected with
// outbox.on_error fail.
func fatalInHA(err error) bool {
	return errors.Is(err, ErrConfig) || errors.Is(err, ErrCheckpoint) || errors.Is(err, ErrServerSetup) || errors.Is(err, ErrRejected)
}
