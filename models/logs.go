package models

import (
	"context"
	"errors"
	"fmt"

	"gorm.io/gorm"
)

// LogFilter selects execution logs for ListExecutionLogs. Zero-valued fields do not filter.
type LogFilter struct {
	TaskID string // empty: every task
	Limit  int    // 0: no limit
	Order  LogOrder
}

// LogOrder is the order of ListExecutionLogs results.
type LogOrder int

// Log orders.
const (
	LogsByRun        LogOrder = iota // task id, then run number: a task's runs in order
	LogsNewestFirst                  // most recently written first
	LogsOldestFirst                  // least recently written first
	LogsLargestFirst                 // by size, descending
)

// UpsertExecutionLog records the log file of one task run, keyed by (TaskID,
// Run): created on first sight, every column overwritten afterwards (zero
// values included). The task must exist. On success l.CreatedAt and
// l.UpdatedAt reflect the stored row.
func (s *Store) UpsertExecutionLog(ctx context.Context, l *ExecutionLog) error {
	if l.TaskID == "" || l.Run < 1 {
		return fmt.Errorf("upsert execution log: %w: need a task id and a run >= 1", ErrInvalid)
	}
	nl := *l
	nl.Task = nil
	now := s.now()
	nl.UpdatedAt = now
	utcTimes(&nl)
	err := s.write(ctx, func(tx *gorm.DB) error {
		var cur ExecutionLog
		err := tx.Where("task_id = ? AND run = ?", nl.TaskID, nl.Run).Take(&cur).Error
		if errors.Is(err, gorm.ErrRecordNotFound) {
			var n int64
			if err := tx.Model(&Task{}).Where("id = ?", nl.TaskID).Count(&n).Error; err != nil {
				return err
			}
			if n == 0 {
				return fmt.Errorf("task %s: %w", nl.TaskID, ErrNotFound)
			}
			nl.CreatedAt = now
			return tx.Create(&nl).Error
		}
		if err != nil {
			return err
		}
		nl.CreatedAt = cur.CreatedAt
		return tx.Table(ExecutionLog{}.TableName()).Where("task_id = ? AND run = ?", nl.TaskID, nl.Run).
			Updates(map[string]any{
				"path":          nl.Path,
				"size":          nl.Size,
				"complete":      nl.Complete,
				"last_log_time": nl.LastLogTime,
				"updated_at":    nl.UpdatedAt,
			}).Error
	})
	if err != nil {
		return fmt.Errorf("upsert execution log of task %s run %d: %w", l.TaskID, l.Run, err)
	}
	*l = nl
	return nil
}

// GetExecutionLog returns the log row of one task run, or ErrNotFound.
func (s *Store) GetExecutionLog(ctx context.Context, taskID string, run int) (*ExecutionLog, error) {
	l, err := readOne[ExecutionLog](ctx, s, "task_id = ? AND run = ?", taskID, run)
	if err != nil {
		return nil, fmt.Errorf("get execution log of task %s run %d: %w", taskID, run, err)
	}
	return l, nil
}

// ListExecutionLogs returns the log rows matching f.
func (s *Store) ListExecutionLogs(ctx context.Context, f LogFilter) ([]ExecutionLog, error) {
	out, err := readAll[ExecutionLog](ctx, s, func(db *gorm.DB) *gorm.DB {
		q := db.Model(&ExecutionLog{})
		if f.TaskID != "" {
			q = q.Where("task_id = ?", f.TaskID)
		}
		switch f.Order {
		case LogsNewestFirst:
			q = q.Order("updated_at DESC, task_id, run")
		case LogsOldestFirst:
			q = q.Order("updated_at ASC, task_id, run")
		case LogsLargestFirst:
			q = q.Order("size DESC, task_id, run")
		default:
			q = q.Order("task_id, run")
		}
		if f.Limit > 0 {
			q = q.Limit(f.Limit)
		}
		return q
	})
	if err != nil {
		return nil, fmt.Errorf("list execution logs: %w", err)
	}
	return out, nil
}
