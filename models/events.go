package models

import (
	"context"
	"fmt"
	"slices"
	"time"

	"gorm.io/gorm"
)

// maxEventMessage bounds an event message: events are a timeline for people,
// not a log sink, and a runaway message must not bloat the table.
const maxEventMessage = 4096

// TimelineEntry is a line of a timeline written with a status
// (UpdateTaskStatus, UpdateDiffStatus), in the same transaction: the line and
// the change it tells of are committed together, for the cost of one commit,
// and a status never commits without the lines that explain it.
type TimelineEntry struct {
	Reason  string // CamelCase
	Message string // a sentence; cut at 4 KiB
	// Kind and ObjectID name another object whose timeline the line belongs
	// to (a diff's apply is also a line of its task's story); empty, the
	// object whose status is written.
	Kind, ObjectID string
}

// RecordEvent appends one line to the audit trail: kind (EventKind*) and id of
// the object, a CamelCase reason and a sentence. Messages longer than 4 KiB
// are cut.
func (s *Store) RecordEvent(ctx context.Context, kind, objectID, reason, message string) error {
	now := s.now()
	err := s.write(ctx, func(tx *gorm.DB) error {
		return recordEventTx(tx, now, kind, objectID, reason, message)
	})
	if err != nil {
		return fmt.Errorf("record event %s %s %s: %w", kind, objectID, reason, err)
	}
	return nil
}

// ListEvents returns the last limit events (all if limit <= 0) about an object,
// in chronological order. An empty kind or objectID matches any.
func (s *Store) ListEvents(ctx context.Context, kind, objectID string, limit int) ([]Event, error) {
	var out []Event
	err := s.read(ctx, func(db *gorm.DB) error {
		q := db.Model(&Event{})
		if kind != "" {
			q = q.Where("kind = ?", kind)
		}
		if objectID != "" {
			q = q.Where("object_id = ?", objectID)
		}
		if limit > 0 {
			q = q.Limit(limit)
		}
		return q.Order("id DESC").Find(&out).Error
	})
	if err != nil {
		return nil, fmt.Errorf("list events of %s %s: %w", kind, objectID, err)
	}
	slices.Reverse(out)
	return out, nil
}

// DeleteEventsBefore deletes at most limit of the events older than t (all
// of them if limit <= 0), oldest first, and returns how many went. Callers
// with a backlog call it until it deletes fewer than limit, so no single
// transaction holds the write lock for long.
func (s *Store) DeleteEventsBefore(ctx context.Context, t time.Time, limit int) (int64, error) {
	var n int64
	err := s.write(ctx, func(tx *gorm.DB) error {
		old := tx.Model(&Event{}).Select("id").Where("time < ?", t.UTC())
		if limit > 0 {
			old = old.Order("time").Limit(limit)
		}
		res := tx.Where("id IN (?)", old).Delete(&Event{})
		n = res.RowsAffected
		return res.Error
	})
	if err != nil {
		return 0, fmt.Errorf("delete events before %s: %w", t.Format(time.RFC3339), err)
	}
	return n, nil
}
