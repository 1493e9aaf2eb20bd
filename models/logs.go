package models

import (
	"context"
	"errors"
	"fmt"
	"slices"

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

// UpsertExecutionLog records the log file and progress of one task run, keyed
// by (TaskID, Run): created on first sight, every column overwritten
// afterwards (zero values included). The log follower of the run is its only
// writer in the controllers, so it needs no compare-and-swap. The task must exist. On success l.CreatedAt and
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
	// Progress while the output flows may be lost with a power cut; the
	// row that says the output is complete may not (durability.go).
	write := s.write
	if !nl.Complete {
		write = s.writeRelaxed
	}
	err := write(ctx, func(tx *gorm.DB) error {
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
				"session_id":    nl.Progress.SessionID,
				"num_turns":     nl.Progress.NumTurns,
				"cost_usd":      nl.Progress.CostUSD,
				"last_message":  nl.Progress.LastMessage,
				"result_text":   nl.Progress.ResultText,
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

// LastSessionID returns the newest agent session id recorded by a run of the
// task before run (the session a follow-up run resumes), or "" if none was.
func (s *Store) LastSessionID(ctx context.Context, taskID string, before int) (string, error) {
	var ids []string
	err := s.read(ctx, func(db *gorm.DB) error {
		return db.Model(&ExecutionLog{}).Where("task_id = ? AND run < ? AND session_id <> ''", taskID, before).
			Order("run DESC").Limit(1).Pluck("session_id", &ids).Error
	})
	if err != nil {
		return "", fmt.Errorf("last session of task %s before run %d: %w", taskID, before, err)
	}
	if len(ids) == 0 {
		return "", nil
	}
	return ids[0], nil
}

// attachProgress fills the Progress of each task from its current run's
// execution_logs row, in one query (by primary key) for all of them.
func (s *Store) attachProgress(ctx context.Context, tasks []*Task) error {
	ids := make([]string, 0, len(tasks))
	for _, t := range tasks {
		t.Progress = TaskProgress{}
		if t.Status.RunNumber > 0 {
			ids = append(ids, t.ID)
		}
	}
	if len(ids) == 0 {
		return nil
	}
	var rows []ExecutionLog
	// In chunks, well under SQLite's limit on bound parameters.
	for chunk := range slices.Chunk(ids, 500) {
		part, err := readAll[ExecutionLog](ctx, s, func(db *gorm.DB) *gorm.DB {
			return whereIn(db.Model(&ExecutionLog{}), "task_id", chunk)
		})
		if err != nil {
			return fmt.Errorf("read run progress: %w", err)
		}
		rows = append(rows, part...)
	}
	type key struct {
		id  string
		run int
	}
	byRun := make(map[key]*ExecutionLog, len(rows))
	for i := range rows {
		byRun[key{rows[i].TaskID, rows[i].Run}] = &rows[i]
	}
	for _, t := range tasks {
		if l := byRun[key{t.ID, t.Status.RunNumber}]; l != nil {
			t.Progress = TaskProgress{LastOutputAt: l.LastLogTime, RunProgress: l.Progress}
		}
	}
	return nil
}
