package models

import (
	"context"
	"database/sql"
	"fmt"
	"time"

	"gorm.io/gorm"
)

// StoreObserver receives figures about the store's writes, for metrics. Its
// methods are called on the writing goroutine and must return at once.
type StoreObserver interface {
	// WriteDone reports one write transaction: how long it took from the
	// call (queueing for the write slot and the lock included) and whether
	// it failed.
	WriteDone(d time.Duration, err error)
	// BusyRetry reports that SQLite answered busy despite the busy timeout
	// and the operation is being retried.
	BusyRetry()
}

// observeWrite reports a write that started at start to the observer, if any.
func (s *Store) observeWrite(start time.Time, err error) {
	if s.observer != nil {
		s.observer.WriteDone(time.Since(start), err)
	}
}

// CountTasksByPhase counts every task by phase, history included.
func (s *Store) CountTasksByPhase(ctx context.Context) (map[TaskPhase]int64, error) {
	out, err := countByKey[TaskPhase](ctx, s, func(db *gorm.DB) *gorm.DB {
		return db.Model(&Task{}).Select("phase, count(*) AS n").Group("phase")
	})
	if err != nil {
		return nil, fmt.Errorf("count tasks by phase: %w", err)
	}
	return out, nil
}

// AdmissionQueue describes the tasks waiting to be admitted (phase Pending).
type AdmissionQueue struct {
	// ByReason counts them by the reason the controller gave ("" before its
	// first look, WaitingForSlot, WaitingForDependencies, ...).
	ByReason map[string]int64
	// OldestSince is when the longest-waiting one was accepted (zero when
	// none waits).
	OldestSince time.Time
}

// PendingAdmission reads the admission queue. Its cost grows with live
// tasks only (the admission index leads with finished and phase).
func (s *Store) PendingAdmission(ctx context.Context) (AdmissionQueue, error) {
	q := AdmissionQueue{ByReason: map[string]int64{}}
	err := s.read(ctx, func(db *gorm.DB) error {
		rows, err := db.Model(&Task{}).Select("reason, count(*), min(created_at)").
			Where("finished = ? AND phase = ?", false, TaskPhasePending).Group("reason").Rows()
		if err != nil {
			return err
		}
		defer rows.Close()
		for rows.Next() {
			var reason string
			var n int64
			var oldest sql.NullString
			if err := rows.Scan(&reason, &n, &oldest); err != nil {
				return err
			}
			q.ByReason[reason] = n
			if t, ok := parseSQLiteTime(oldest.String); ok && (q.OldestSince.IsZero() || t.Before(q.OldestSince)) {
				q.OldestSince = t
			}
		}
		return rows.Err()
	})
	if err != nil {
		return AdmissionQueue{}, fmt.Errorf("read admission queue: %w", err)
	}
	return q, nil
}

// parseSQLiteTime reads a time as the SQLite driver stores it (min() of a
// time column comes back as text).
func parseSQLiteTime(v string) (time.Time, bool) {
	for _, layout := range []string{"2006-01-02 15:04:05.999999999-07:00", "2006-01-02T15:04:05.999999999-07:00",
		"2006-01-02 15:04:05.999999999", "2006-01-02T15:04:05.999999999Z07:00", time.RFC3339Nano} {
		if t, err := time.Parse(layout, v); err == nil {
			return t, true
		}
	}
	return time.Time{}, false
}

// metaWriteProbe is the meta key ProbeWrite rewrites.
const metaWriteProbe = "write_probe"

// ProbeWrite proves the store takes writes now: one immediate transaction
// that rewrites a meta row, through the same queue, lock and busy handling as
// every other write, committed with the same fsync. A full disk, a read-only
// file or a lock held by a wedged process makes it fail (or wait until ctx
// ends). Readiness probes call it; keep them a few seconds apart, since every
// commit makes the processes sharing the database look for new work.
func (s *Store) ProbeWrite(ctx context.Context) error {
	err := s.write(ctx, func(tx *gorm.DB) error {
		return tx.Exec(`INSERT INTO meta (key, value) VALUES (?, ?)
			ON CONFLICT (key) DO UPDATE SET value = excluded.value`,
			metaWriteProbe, s.now().Format(time.RFC3339Nano)).Error
	})
	if err != nil {
		return fmt.Errorf("probe store write: %w", err)
	}
	return nil
}

// CountContainersByState counts the registry of containers by Docker state
// ("running", "exited", ...), as the container controller last saw them.
func (s *Store) CountContainersByState(ctx context.Context) (map[string]int64, error) {
	out, err := countByKey[string](ctx, s, func(db *gorm.DB) *gorm.DB {
		return db.Model(&Container{}).Select("state, count(*) AS n").Group("state")
	})
	if err != nil {
		return nil, fmt.Errorf("count containers by state: %w", err)
	}
	return out, nil
}
