package models

import (
	"context"
	"errors"
	"fmt"
	"strconv"

	"gorm.io/gorm"
	"gorm.io/gorm/clause"
)

// SchemaVersion is the version of the schema this binary writes. Bump it with
// every change to the models or indexes; a binary refuses a database whose
// version is higher than its own (ErrSchemaTooNew) instead of guessing.
//
// 2: the progress of a run (last output time, agent session, turns, cost,
// last message, result) moved from background_tasks to the run's
// execution_logs row, written by the log follower alone.
//
// 3: git_diffs.target_fingerprint, what a pending diff's verdict was reached
// on (the target watch compares it instead of keeping it in memory).
const SchemaVersion = 3

// Keys of table meta.
const (
	metaSchemaVersion  = "schema_version"
	metaInstallationID = "installation_id"
	metaCreatedAt      = "created_at"
)

// indexes lists every secondary index with the query it serves. They are
// created with plain SQL because several are partial (WHERE ...), which keeps
// them as small as the live set: the cost of a reconcile pass then grows with
// live objects, not with history. A query meant to use a partial index must
// repeat its WHERE expression verbatim (SQLite matches it textually).
var indexes = []string{
	// ListLiveTaskIDs: unfinished tasks, or finished ones with a spec change not yet observed.
	`CREATE INDEX IF NOT EXISTS idx_background_tasks_live ON background_tasks (id, finished, generation, observed_generation)
		WHERE ` + liveTasksWhere,
	// CreateTask idempotency: one task per caller-supplied parent_task_id.
	`CREATE UNIQUE INDEX IF NOT EXISTS idx_background_tasks_parent_task_id ON background_tasks (parent_task_id)
		WHERE parent_task_id <> ''`,
	// ListTasks by status (work_status, operators), CountTasksByStatus (covering).
	`CREATE INDEX IF NOT EXISTS idx_background_tasks_status ON background_tasks (status, start_time)`,
	// ListTasks newest first; operators' ORDER BY start_time DESC.
	`CREATE INDEX IF NOT EXISTS idx_background_tasks_start_time ON background_tasks (start_time)`,
	// Admission (pending tasks by priority then age) and CountLiveTasksByPhase.
	`CREATE INDEX IF NOT EXISTS idx_background_tasks_admission ON background_tasks (finished, phase, priority_rank, start_time)`,
	// Retention: ListFinishedTasksBefore.
	`CREATE INDEX IF NOT EXISTS idx_background_tasks_retention ON background_tasks (finished, end_time)`,

	// CreateDiff idempotency (one diff per task run) and the diffs of a task.
	`CREATE UNIQUE INDEX IF NOT EXISTS idx_git_diffs_task_run ON git_diffs (task_id, run_number)`,
	// ListLiveDiffIDs: a spec change not yet observed, or an apply in flight.
	`CREATE INDEX IF NOT EXISTS idx_git_diffs_live ON git_diffs (id, generation, observed_generation, status)
		WHERE ` + liveDiffsWhere,
	// ListDiffs by status (review_changes, operators' WHERE status = 'pending'), CountDiffsByStatus.
	`CREATE INDEX IF NOT EXISTS idx_git_diffs_status ON git_diffs (status, created_at)`,
	// review_changes's pending list, a page at a time in creation order: as
	// small as the diffs awaiting a decision, and in the page's order.
	`CREATE INDEX IF NOT EXISTS idx_git_diffs_awaiting ON git_diffs (created_at, id) WHERE ` + awaitingDiffsWhere,
	// Conflict re-check after an apply: pending diffs for the same target.
	`CREATE INDEX IF NOT EXISTS idx_git_diffs_target ON git_diffs (target_workspace, status, created_at)`,
	// ListDiffs by desired outcome.
	`CREATE INDEX IF NOT EXISTS idx_git_diffs_desired ON git_diffs (desired, status)`,
	// Retention of applied, rejected and superseded diffs.
	`CREATE INDEX IF NOT EXISTS idx_git_diffs_retention ON git_diffs (status, updated_at)`,
	// Newest diffs first without a filter.
	`CREATE INDEX IF NOT EXISTS idx_git_diffs_created_at ON git_diffs (created_at)`,

	// Container GC and adoption: by task, by state, by Docker id.
	`CREATE INDEX IF NOT EXISTS idx_containers_task ON containers (task_id, run)`,
	`CREATE INDEX IF NOT EXISTS idx_containers_state ON containers (state, finished_at)`,
	`CREATE INDEX IF NOT EXISTS idx_containers_docker_id ON containers (docker_id)`,

	// list_container_logs sorted by time or size.
	`CREATE INDEX IF NOT EXISTS idx_execution_logs_updated_at ON execution_logs (updated_at)`,
	`CREATE INDEX IF NOT EXISTS idx_execution_logs_size ON execution_logs (size)`,

	// A task's or diff's timeline; retention of old events.
	`CREATE INDEX IF NOT EXISTS idx_events_object ON events (kind, object_id, id)`,
	`CREATE INDEX IF NOT EXISTS idx_events_time ON events (time)`,
}

// The WHERE clauses of the live-set queries, shared verbatim by the partial
// indexes and the queries so SQLite's planner can match them.
const (
	liveTasksWhere = `finished = 0 OR generation <> observed_generation`
	liveDiffsWhere = `generation <> observed_generation OR status = 'applying'`
	// awaitingDiffsWhere is DiffAwaitingStates as SQL text (a partial index
	// cannot be matched through bound parameters).
	awaitingDiffsWhere = `status IN ('pending', 'conflict')`
)

// migrate brings the schema to SchemaVersion in one immediate transaction, so
// two processes opening a fresh file at once neither race on CREATE TABLE nor
// make two installation ids. A database from a newer binary is left untouched.
func (s *Store) migrate(ctx context.Context) error {
	return s.write(ctx, func(tx *gorm.DB) error {
		stored, err := storedSchemaVersion(tx)
		if err != nil {
			return err
		}
		if stored > SchemaVersion {
			return fmt.Errorf("%w: database has schema version %d, this binary supports up to %d",
				ErrSchemaTooNew, stored, SchemaVersion)
		}
		if err := tx.AutoMigrate(&metaRow{}, &Task{}, &Diff{}, &Container{}, &ExecutionLog{}, &Lease{}, &Event{}); err != nil {
			return fmt.Errorf("auto-migrate: %w", err)
		}
		for _, ddl := range indexes {
			if err := tx.Exec(sqlFor(tx, ddl)).Error; err != nil {
				return fmt.Errorf("create index: %w", err)
			}
		}
		if err := migrateCounts(tx); err != nil {
			return err
		}
		if stored == 1 {
			if err := moveProgressToRuns(tx); err != nil {
				return err
			}
		}
		// The installation id and creation time are written once (DO NOTHING
		// keeps the first); the schema version is raised to ours.
		now := s.now().Format(timeFormat)
		rows := []metaRow{
			{Key: metaInstallationID, Value: newInstallationID()},
			{Key: metaCreatedAt, Value: now},
		}
		if err := tx.Clauses(clause.OnConflict{DoNothing: true}).Create(&rows).Error; err != nil {
			return fmt.Errorf("write meta: %w", err)
		}
		version := metaRow{Key: metaSchemaVersion, Value: strconv.Itoa(SchemaVersion)}
		if err := tx.Clauses(clause.OnConflict{
			Columns:   []clause.Column{{Name: "key"}},
			DoUpdates: clause.AssignmentColumns([]string{"value"}),
		}).Create(&version).Error; err != nil {
			return fmt.Errorf("write schema version: %w", err)
		}
		return nil
	})
}

// moveProgressToRuns copies the run progress a version-1 database kept on
// background_tasks onto each task's current run row, so a follow-up run still
// resumes the agent's session after an upgrade. The old columns stay (SQLite
// keeps them harmlessly) and are no longer read or written.
func moveProgressToRuns(tx *gorm.DB) error {
	if !tx.Migrator().HasColumn(&Task{}, "session_id") {
		return nil
	}
	err := tx.Exec(`UPDATE execution_logs SET
		session_id   = t.session_id,
		num_turns    = t.num_turns,
		cost_usd     = t.cost_usd,
		last_message = t.last_message,
		result_text  = t.result_text
		FROM background_tasks AS t
		WHERE t.id = execution_logs.task_id AND t.run_number = execution_logs.run`).Error
	if err != nil {
		return fmt.Errorf("move run progress to execution_logs: %w", err)
	}
	return nil
}

// storedSchemaVersion reads meta.schema_version, 0 for a new database.
func storedSchemaVersion(tx *gorm.DB) (int, error) {
	n, err := dialectOf(tx).schemaObjects(tx, []string{"meta"})
	if err != nil {
		return 0, fmt.Errorf("read schema: %w", err)
	}
	if n == 0 {
		return 0, nil
	}
	var row metaRow
	err = tx.Where("key = ?", metaSchemaVersion).Take(&row).Error
	if errors.Is(err, gorm.ErrRecordNotFound) {
		return 0, nil
	}
	if err != nil {
		return 0, fmt.Errorf("read schema version: %w", err)
	}
	v, err := strconv.Atoi(row.Value)
	if err != nil {
		return 0, fmt.Errorf("read schema version: %w: meta.schema_version is %q", ErrCorrupt, row.Value)
	}
	return v, nil
}

func (s *Store) readMeta(ctx context.Context, key string) (string, error) {
	var row metaRow
	err := s.read(ctx, func(db *gorm.DB) error { return db.Where("key = ?", key).Take(&row).Error })
	if err != nil {
		return "", fmt.Errorf("read meta %s: %w", key, notFound(err))
	}
	return row.Value, nil
}

// newInstallationID is a random 128-bit id in lowercase hex: short enough for
// a Docker label, long enough never to collide between installations.
func newInstallationID() string { return randomHex(16) }

// timeFormat is how mattn/go-sqlite3 writes a time.Time. Times are always
// stored in UTC, so text comparison in SQL is chronological.
const timeFormat = "2006-01-02 15:04:05.999999999-07:00"
