package models

import (
	"context"
	"errors"
	"fmt"
	"time"

	"gorm.io/gorm"

	"github.com/claude-parallel/claude-parallel/models/procid"
)

// LeaderLease is the lease every process on one database competes for; its
// holder runs the controllers. Front ends read it to say who leads.
const LeaderLease = "leader"

// TryAcquireLease acquires or renews the lease name for holder, for ttl, in
// one immediate transaction, so processes sharing the database agree on one
// holder. It succeeds (true) if nobody holds the lease, if holder already
// holds it (a renewal), if the current holder let it expire (its last
// renewal plus its own duration is in the past), or if the current holder's
// identity (procid) names a process of this machine that is certainly gone.
// Otherwise it returns false: someone else holds it. A holder must renew well
// within ttl.
func (s *Store) TryAcquireLease(ctx context.Context, name, holder string, ttl time.Duration) (bool, error) {
	if name == "" || holder == "" || ttl <= 0 {
		return false, fmt.Errorf("acquire lease: %w: need a name, a holder and a positive ttl", ErrInvalid)
	}
	var acquired bool
	err := s.write(ctx, func(tx *gorm.DB) error {
		acquired = false
		now, err := s.txNow(tx)
		if err != nil {
			return err
		}
		// A renewal by the holder is the one write an idle leader makes,
		// every few seconds: one prepared UPDATE, without reading the row
		// first nor building the statement from the model each time.
		renew := tx.Exec(`UPDATE leases SET renewed_at = ?, duration_ms = ? WHERE name = ? AND holder = ?`,
			now, ttl.Milliseconds(), name, holder)
		if renew.Error != nil {
			return renew.Error
		}
		if renew.RowsAffected == 1 {
			acquired = true
			return nil
		}
		var cur Lease
		err = tx.Where("name = ?", name).Take(&cur).Error
		switch {
		case errors.Is(err, gorm.ErrRecordNotFound):
			l := Lease{Name: name, Holder: holder, AcquiredAt: now, RenewedAt: now, DurationMS: ttl.Milliseconds()}
			if err := tx.Create(&l).Error; err != nil {
				return err
			}
			acquired = true
			return recordEventTx(tx, now, EventKindLease, name, "LeaseAcquired", holder+" acquired the lease")
		case err != nil:
			return err
		case cur.Holder == holder:
			acquired = true
			return tx.Model(&Lease{}).Where("name = ?", name).
				Updates(map[string]any{"renewed_at": now, "duration_ms": ttl.Milliseconds()}).Error
		case !cur.held(now):
			// A holder whose process is gone (same machine, its pid now free
			// or another process's) can act no more: waiting for its lease to
			// run out would only delay the restarted server by a whole lease.
			acquired = true
			if err := tx.Model(&Lease{}).Where("name = ?", name).Updates(map[string]any{
				"holder": holder, "acquired_at": now, "renewed_at": now, "duration_ms": ttl.Milliseconds(),
			}).Error; err != nil {
				return err
			}
			why := "let it expire"
			if !cur.expired(now) {
				why = "has no process any more"
			}
			return recordEventTx(tx, now, EventKindLease, name, "LeaseTakenOver",
				fmt.Sprintf("%s took over the lease: %s %s (last renewed at %s)", holder, cur.Holder, why, cur.RenewedAt.Format(time.RFC3339Nano)))
		default:
			return nil
		}
	})
	if err != nil {
		return false, fmt.Errorf("acquire lease %s for %s: %w", name, holder, err)
	}
	return acquired, nil
}

// ReleaseLease gives the lease up if holder holds it, so another process can
// take it at once instead of waiting for it to expire. Releasing a lease held
// by someone else, or by nobody, does nothing.
func (s *Store) ReleaseLease(ctx context.Context, name, holder string) error {
	err := s.write(ctx, func(tx *gorm.DB) error {
		res := tx.Where("name = ? AND holder = ?", name, holder).Delete(&Lease{})
		if res.Error != nil || res.RowsAffected == 0 {
			return res.Error
		}
		return recordEventTx(tx, s.now(), EventKindLease, name, "LeaseReleased", holder+" released the lease")
	})
	if err != nil {
		return fmt.Errorf("release lease %s for %s: %w", name, holder, err)
	}
	return nil
}

// GetLease returns the lease row name as stored (ErrNotFound if nobody has
// held it or it was released): its holder, when it was acquired and last
// renewed, by the store's clock, and for how long.
func (s *Store) GetLease(ctx context.Context, name string) (Lease, error) {
	var l Lease
	err := s.read(ctx, func(db *gorm.DB) error { return db.Where("name = ?", name).Take(&l).Error })
	if err != nil {
		return Lease{}, fmt.Errorf("read lease %s: %w", name, notFound(err))
	}
	return l, nil
}

// LeaseHolder reports who holds the lease name: holder and its last renewal
// whenever a row exists, and ok = true only while that holding counts (see
// held: not expired, and its process not known to be gone).
func (s *Store) LeaseHolder(ctx context.Context, name string) (holder string, renewedAt time.Time, ok bool, err error) {
	l, err := s.GetLease(ctx, name)
	if errors.Is(err, ErrNotFound) {
		return "", time.Time{}, false, nil
	}
	if err != nil {
		return "", time.Time{}, false, err
	}
	return l.Holder, l.RenewedAt, l.held(s.dbNow(ctx)), nil
}

// held reports whether the holding still counts at now: it has not expired,
// and its holder's process is not known to be gone (a holder on this
// machine killed with -9 holds nothing, whatever its lease says). Acquiring
// and reporting the holder both judge by it.
func (l Lease) held(now time.Time) bool {
	return !l.expired(now) && !procid.Gone(l.Holder)
}

// leaseFence is carried by a context whose writes are only valid while
// holder holds lease name (see FenceContext).
type leaseFence struct{ name, holder string }

type leaseFenceKey struct{}

// FenceContext returns a context whose store writes commit only while holder
// holds the lease name, unexpired by the store's clock: each such write
// transaction checks the lease row first, under the same write lock a
// successor's TryAcquireLease needs. So a process that lost the lease, or
// let it expire, cannot write any more, however late its goroutines run —
// its last write lands strictly before a successor's takeover. The leader's
// controllers write under such a context. A refused write fails with
// ErrLeaseLost.
func (s *Store) FenceContext(ctx context.Context, name, holder string) context.Context {
	return context.WithValue(ctx, leaseFenceKey{}, leaseFence{name: name, holder: holder})
}

// checkFence refuses a write made under a FenceContext whose lease is no
// longer the caller's. It runs inside the write transaction.
func (s *Store) checkFence(ctx context.Context, tx *gorm.DB) error {
	f, ok := ctx.Value(leaseFenceKey{}).(leaseFence)
	if !ok {
		return nil
	}
	fenceNow, err := s.txNow(tx)
	if err != nil {
		return err
	}
	var cur Lease
	err = tx.Where("name = ?", f.name).Take(&cur).Error
	switch {
	case errors.Is(err, gorm.ErrRecordNotFound):
		return fmt.Errorf("%w: lease %s is held by nobody, not %s", ErrLeaseLost, f.name, f.holder)
	case err != nil:
		return fmt.Errorf("check lease %s: %w", f.name, err)
	case cur.Holder != f.holder:
		return fmt.Errorf("%w: lease %s is held by %s, not %s", ErrLeaseLost, f.name, cur.Holder, f.holder)
	case cur.expired(fenceNow):
		return fmt.Errorf("%w: lease %s of %s expired at %s", ErrLeaseLost, f.name, f.holder,
			cur.RenewedAt.Add(time.Duration(cur.DurationMS)*time.Millisecond).Format(time.RFC3339Nano))
	}
	return nil
}

func (l Lease) expired(now time.Time) bool {
	return now.After(l.RenewedAt.Add(time.Duration(l.DurationMS) * time.Millisecond))
}

// recordEventTx appends an event inside a transaction that is already open.
func recordEventTx(tx *gorm.DB, now time.Time, kind, objectID, reason, message string) error {
	e := Event{Time: now, Kind: kind, ObjectID: objectID, Reason: reason, Message: truncate(message, maxEventMessage)}
	return tx.Create(&e).Error
}
