package reconciler

import (
	"context"
	"fmt"
	"time"

	"go.uber.org/zap"

	"github.com/claude-parallel/claude-parallel/models/procid"
)

// LeaseStore keeps the leader lease. models.Store implements it over the leases
// table shared by every process using the same database.
type LeaseStore interface {
	// TryAcquireLease takes the lease named name for holder for ttl when it is
	// free, expired or already held by holder (a renewal), and reports whether
	// holder now holds it. Expiry is judged against the time of the last grant.
	TryAcquireLease(ctx context.Context, name, holder string, ttl time.Duration) (bool, error)
	// ReleaseLease gives the lease up if holder holds it, so a successor need not
	// wait for it to expire.
	ReleaseLease(ctx context.Context, name, holder string) error
}

// leaseFencer is implemented by a LeaseStore that can refuse the writes of a
// process that no longer holds the lease (models.Store does): the leader's
// controllers act under FenceContext, so a goroutine still running after the
// term ended — however late the scheduler runs it — cannot write once another
// process may have taken over.
type leaseFencer interface {
	FenceContext(ctx context.Context, name, holder string) context.Context
}

// releaseTimeout bounds the best-effort release on the way out.
const releaseTimeout = 5 * time.Second

// NewHolderIdentity returns "hostname:pid:random" followed by the boot,
// pid-namespace and start-time fields of procid: unique per process even when
// a pid is reused after a crash, readable in the leases table, and enough for
// a successor on the same machine to see that the holder died (procid.Gone).
func NewHolderIdentity() string { return procid.New() }

// stopReason says why a leadership term ended, for the log.
type stopReason string

const (
	stopShutdown      stopReason = "shutdown"
	stopLeaseTaken    stopReason = "lease held by another process"
	stopRenewDeadline stopReason = "lease not renewed before the renew deadline"
)

// leaseTerm is the state of one term under a lease.
type leaseTerm struct {
	// lastRenew is when the last successful grant was *requested*: the store
	// stamps the grant no earlier, so lastRenew+LeaseDuration never outlives the
	// lease other processes see.
	lastRenew time.Time
}

type renewal struct {
	at      time.Time
	granted bool
	err     error
}

// campaign tries for the lease every CampaignInterval until it is granted (it returns
// when the successful request was sent) or ctx ends (ok is false).
func (m *Manager) campaign(ctx context.Context) (requestedAt time.Time, ok bool) {
	m.log.Info("waiting for leader lease", zap.String("lease", m.opts.LeaseName))
	t := time.NewTimer(0)
	defer t.Stop()
	failing := false
	for {
		select {
		case <-ctx.Done():
			return time.Time{}, false
		case <-t.C:
		}
		at := time.Now()
		m.wakes.add(WakeLeaseAttempt)
		granted, err := m.tryAcquire(ctx)
		switch {
		case err != nil && ctx.Err() != nil:
			return time.Time{}, false
		case err != nil:
			// Log the first failure of a run, not one per retry.
			if !failing {
				m.log.Warn("acquire leader lease failed", zap.Error(err))
			}
			failing = true
		case granted:
			return at, true
		default:
			failing = false
		}
		t.Reset(m.opts.CampaignInterval)
	}
}

func (m *Manager) tryAcquire(ctx context.Context) (bool, error) {
	// A call may take no longer than the gap between two calls, so a slow store
	// cannot hold a renewal past the renew deadline unnoticed.
	ctx, cancel := context.WithTimeout(ctx, m.opts.RenewInterval)
	defer cancel()
	granted, err := m.opts.Lease.TryAcquireLease(ctx, m.opts.LeaseName, m.opts.Holder, m.opts.LeaseDuration)
	if err != nil {
		return false, fmt.Errorf("acquire lease %s: %w", m.opts.LeaseName, err)
	}
	return granted, nil
}

// renewLoop renews the lease every RenewInterval and reports each outcome. It
// only reports: holdLease decides, so the renew deadline also holds when the
// store hangs or this goroutine dies.
func (m *Manager) renewLoop(ctx context.Context, out chan<- renewal) {
	t := time.NewTicker(m.opts.RenewInterval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		r := renewal{at: time.Now()}
		m.wakes.add(WakeLeaseRenew)
		r.granted, r.err = m.tryAcquire(ctx)
		select {
		case out <- r:
		case <-ctx.Done():
			return
		}
		if r.err == nil && !r.granted {
			return
		}
	}
}

// holdLease blocks while this process leads and returns why it stopped: ctx
// ended, a renewal was refused (someone else holds the lease), or no renewal
// succeeded within RenewDeadline of the last one. A failed renewal alone does not
// end the term; a transient store error is retried until the deadline.
func (m *Manager) holdLease(ctx context.Context, term *leaseTerm, renewals <-chan renewal) stopReason {
	deadline := time.NewTimer(time.Until(term.lastRenew.Add(m.opts.RenewDeadline)))
	defer deadline.Stop()
	for {
		select {
		case <-ctx.Done():
			return stopShutdown
		case <-deadline.C:
			m.log.Warn("leader lease not renewed in time, stepping down",
				zap.Time("lastRenew", term.lastRenew), zap.Duration("renewDeadline", m.opts.RenewDeadline))
			return stopRenewDeadline
		case r := <-renewals:
			switch {
			case r.err != nil:
				if ctx.Err() == nil {
					m.log.Warn("renew leader lease failed", zap.Error(r.err),
						zap.Duration("stepDownIn", time.Until(term.lastRenew.Add(m.opts.RenewDeadline))))
				}
			case !r.granted:
				m.log.Warn("leader lease taken by another holder, stepping down")
				return stopLeaseTaken
			default:
				term.lastRenew = r.at
				deadline.Reset(time.Until(term.lastRenew.Add(m.opts.RenewDeadline)))
			}
		}
	}
}

// release gives the lease up after the term's controllers have stopped, so the
// next holder need not wait for it to expire. It runs after ctx may have ended.
func (m *Manager) release(ctx context.Context) {
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), releaseTimeout)
	defer cancel()
	if e := m.opts.Lease.ReleaseLease(ctx, m.opts.LeaseName, m.opts.Holder); e != nil {
		m.log.Warn("release leader lease failed", zap.Error(e))
		return
	}
	m.log.Info("released leader lease")
}
