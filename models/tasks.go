package models

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"time"

	"gorm.io/gorm"
)

// TaskFilter selects tasks for ListTasks. Zero-valued fields do not filter.
type TaskFilter struct {
	IDs      []string
	States   []TaskState // external status (column status)
	Phases   []TaskPhase
	Finished *bool // nil: both
	Limit    int   // 0: no limit
	Order    TaskOrder
	// Paged lists by (start_time, id) in Order's direction (newest or oldest
	// first), from the start or, with After, past the end of a previous page.
	Paged bool
	After *Cursor
}

// TaskOrder is the order of ListTasks results.
type TaskOrder int

// Task orders.
const (
	TasksNewestFirst    TaskOrder = iota // start_time descending
	TasksOldestFirst                     // start_time ascending
	TasksAdmissionOrder                  // priority (high first), then oldest first: the admission queue
)

// CreateTask stores a new task intent and returns it with created=true.
//
// The store fills in: ID (a fresh task id when empty; a given one must be a
// valid id not yet taken, else ErrInvalid/ErrAlreadyExists), Generation and
// ResourceVersion 1, timestamps, defaults (priority medium, desired state run,
// desired runs 1, phase Pending) and the derived PriorityRank, State and
// Finished. On success t itself is updated and returned.
//
// If Spec.ParentTaskID is set and a task with that key exists, nothing is
// written: that task is returned with created=false (t is left unchanged).
func (s *Store) CreateTask(ctx context.Context, t *Task) (task *Task, created bool, err error) {
	if t == nil {
		return nil, false, fmt.Errorf("create task: %w: nil task", ErrInvalid)
	}
	nt := *t
	nt.Spec.DependsOn = slices.Clone(t.Spec.DependsOn)
	if err := s.prepareNewTask(&nt); err != nil {
		return nil, false, fmt.Errorf("create task: %w", err)
	}
	autoID := t.ID == ""
	var existing *Task
	err = s.write(ctx, func(tx *gorm.DB) error {
		existing = nil
		if key := nt.Spec.ParentTaskID; key != "" {
			var found Task
			err := tx.Where("parent_task_id = ?", key).Take(&found).Error
			if err == nil {
				existing = &found
				return nil
			}
			if !errors.Is(err, gorm.ErrRecordNotFound) {
				return fmt.Errorf("look up parent task id: %w", err)
			}
		}
		return insertWithID(tx, &nt, autoID, func() { nt.ID = NewTaskID() }, func() string { return nt.ID })
	})
	if err != nil {
		return nil, false, fmt.Errorf("create task: %w", err)
	}
	if existing != nil {
		return existing, false, nil
	}
	*t = nt
	return t, true, nil
}

func (s *Store) prepareNewTask(t *Task) error {
	if t.ID != "" && !IsTaskID(t.ID) {
		return fmt.Errorf("%w: task id %q does not match task-<12 hex>", ErrInvalid, t.ID)
	}
	if t.Spec.Prompt == "" {
		return fmt.Errorf("%w: empty prompt", ErrInvalid)
	}
	if t.Spec.WorkFolder == "" {
		return fmt.Errorf("%w: empty work folder", ErrInvalid)
	}
	if t.Spec.DesiredRuns < 1 {
		t.Spec.DesiredRuns = 1
	}
	if t.Spec.DesiredState == "" {
		t.Spec.DesiredState = TaskDesiredRun
	}
	if err := normalizeTaskSpec(&t.Spec); err != nil {
		return err
	}
	if t.Status.Phase == "" {
		t.Status.Phase = TaskPhasePending
	}
	if !t.Status.Phase.Valid() {
		return fmt.Errorf("%w: unknown task phase %q", ErrInvalid, t.Status.Phase)
	}
	now := s.now()
	t.Generation, t.ResourceVersion = 1, 1
	t.CreatedAt, t.UpdatedAt = now, now
	if t.StartTime.IsZero() {
		t.StartTime = now
	}
	deriveTaskStatus(&t.Status, now)
	utcTimes(t)
	return nil
}

// normalizeTaskSpec fills defaults and derived fields and refuses values the
// controllers could not act on.
func normalizeTaskSpec(spec *TaskSpec) error {
	if spec.Priority == "" {
		spec.Priority = PriorityMedium
	}
	if !spec.Priority.Valid() {
		return fmt.Errorf("%w: unknown priority %q (want high, medium or low)", ErrInvalid, spec.Priority)
	}
	spec.PriorityRank = spec.Priority.Rank()
	if !spec.DesiredState.Valid() {
		return fmt.Errorf("%w: unknown desired state %q (want run or cancel)", ErrInvalid, spec.DesiredState)
	}
	if !spec.FollowUpKind.Valid() {
		return fmt.Errorf("%w: unknown follow-up kind %q", ErrInvalid, spec.FollowUpKind)
	}
	if spec.DesiredRuns < 1 {
		return fmt.Errorf("%w: desired runs %d < 1", ErrInvalid, spec.DesiredRuns)
	}
	if spec.MemoryBytes < 0 || spec.NanoCPUs < 0 || spec.TimeoutSeconds < 0 {
		return fmt.Errorf("%w: negative resource request", ErrInvalid)
	}
	for _, dep := range spec.DependsOn {
		if !IsTaskID(dep) {
			return fmt.Errorf("%w: depends-on entry %q is not a task id", ErrInvalid, dep)
		}
	}
	if len(spec.DependsOn) == 0 {
		spec.DependsOn = nil // "[]" reads back as nil; keep change detection exact
	}
	return nil
}

// deriveTaskStatus sets the fields the store owns: the external status, the
// finished flag the live-work index is built on, and an end time for retention.
func deriveTaskStatus(st *TaskStatus, now time.Time) {
	st.State = TaskStateFor(st.Phase, st.PendingQuestion)
	st.Finished = st.Phase.Terminal()
	if st.Finished && st.EndTime == nil {
		st.EndTime = &now
	}
}

// taskKind describes Task to updateSpec and updateStatus.
var taskKind = objectKind[Task, TaskSpec, TaskStatus]{
	name:          EventKindTask,
	table:         Task{}.TableName(),
	head:          func(t *Task) objectHeader { return objectHeader{t.ID, &t.Generation, &t.ResourceVersion, &t.UpdatedAt} },
	spec:          func(t *Task) *TaskSpec { return &t.Spec },
	status:        func(t *Task) *TaskStatus { return &t.Status },
	columns:       func(cs *columnSets) objectColumns { return cs.task },
	cloneSpec:     func(spec *TaskSpec) { spec.DependsOn = slices.Clone(spec.DependsOn) },
	normalizeSpec: normalizeTaskSpec,
	checkStatus:   func(st *TaskStatus) error { return checkPhase(st.Phase) },
	deriveStatus:  deriveTaskStatus,
}

// GetTask returns one task, or ErrNotFound.
func (s *Store) GetTask(ctx context.Context, id string) (*Task, error) {
	t, err := readOne[Task](ctx, s, "id = ?", id)
	if err == nil {
		err = s.attachProgress(ctx, []*Task{t})
	}
	if err != nil {
		return nil, fmt.Errorf("get task %s: %w", id, err)
	}
	return t, nil
}

// TasksByID reads the tasks of ids that exist, in one query, by id. Ids may
// repeat; a missing task is simply absent from the map.
func (s *Store) TasksByID(ctx context.Context, ids []string) (map[string]*Task, error) {
	out := make(map[string]*Task, len(ids))
	if len(ids) == 0 {
		return out, nil
	}
	unique := slices.Compact(slices.Sorted(slices.Values(ids)))
	rows, err := s.ListTasks(ctx, TaskFilter{IDs: unique})
	if err != nil {
		return nil, err
	}
	for i := range rows {
		out[rows[i].ID] = &rows[i]
	}
	return out, nil
}

// ListTasks returns the tasks matching f.
func (s *Store) ListTasks(ctx context.Context, f TaskFilter) ([]Task, error) {
	out, err := readAll[Task](ctx, s, func(db *gorm.DB) *gorm.DB { return taskListQuery(db, f) })
	if err == nil {
		ptrs := make([]*Task, len(out))
		for i := range out {
			ptrs[i] = &out[i]
		}
		err = s.attachProgress(ctx, ptrs)
	}
	if err != nil {
		return nil, fmt.Errorf("list tasks: %w", err)
	}
	return out, nil
}

// taskListQuery builds the ListTasks query (shared with the query-plan test).
func taskListQuery(db *gorm.DB, f TaskFilter) *gorm.DB {
	q := db.Model(&Task{})
	if len(f.IDs) > 0 {
		q = whereIn(q, "id", f.IDs)
	}
	if len(f.States) > 0 {
		q = whereIn(q, "status", f.States)
	}
	if len(f.Phases) > 0 {
		q = whereIn(q, "phase", f.Phases)
	}
	if f.Finished != nil {
		q = q.Where("finished = ?", *f.Finished)
	}
	// No id tie-breaker: start_time has nanosecond precision, and a second
	// sort key the index does not hold would force a sort of every match.
	switch {
	case f.Paged:
		q = keysetPage(q, "start_time", f.Order != TasksOldestFirst, f.After)
	case f.Order == TasksOldestFirst:
		q = q.Order("start_time ASC")
	case f.Order == TasksAdmissionOrder:
		q = q.Order("priority_rank ASC, start_time ASC")
	default:
		q = q.Order("start_time DESC")
	}
	if f.Limit > 0 {
		q = q.Limit(f.Limit)
	}
	return q
}

// ListLiveTaskIDs returns the ids of the tasks a reconcile pass must look at:
// those not finished, and finished ones whose spec changed since the
// controller last observed it (Generation != ObservedGeneration: an answer, a
// revision, a cancel). It reads only the partial index of live tasks, so its
// cost does not grow with finished history.
func (s *Store) ListLiveTaskIDs(ctx context.Context) ([]string, error) {
	var ids []string
	err := s.read(ctx, func(db *gorm.DB) error {
		return liveTaskIDsQuery(db).Pluck("id", &ids).Error
	})
	if err != nil {
		return nil, fmt.Errorf("list live tasks: %w", err)
	}
	return ids, nil
}

// liveTaskIDsQuery selects the live tasks. Its WHERE is the partial index's,
// verbatim, so SQLite scans that index only.
func liveTaskIDsQuery(db *gorm.DB) *gorm.DB {
	return db.Model(&Task{}).Where(sqlFor(db, liveTasksWhere)).Order("id")
}

// UpdateTaskSpec changes a task's spec in one transaction: it reads the task,
// calls mutate on it, and writes the spec columns back with Generation and
// ResourceVersion bumped. Changes mutate makes outside Spec are ignored; an
// error from mutate aborts the update and is returned wrapped. If the spec did
// not change, nothing is written (no new generation). mutate runs while the
// database write lock is held, and runs again if the transaction has to be
// retried: keep it to in-memory decisions with no side effects.
// Returns the task as stored afterwards.
func (s *Store) UpdateTaskSpec(ctx context.Context, id string, mutate func(*Task) error) (*Task, error) {
	return updateSpec(ctx, s, &taskKind, id, mutate)
}

// UpdateTaskStatus writes t's status columns (and nothing else) if the row is
// still at t.ResourceVersion; otherwise it returns ErrConflict (the row changed
// since t was read: re-read and decide again) or ErrNotFound. Every status
// column is written, zero values included. The store derives State, Finished
// and, for a terminal phase, EndTime. On success t.Status, t.ResourceVersion
// and t.UpdatedAt are updated to what was stored. The timeline entries are
// recorded as the task's events in the same transaction.
func (s *Store) UpdateTaskStatus(ctx context.Context, t *Task, timeline ...TimelineEntry) error {
	return updateStatus(ctx, s, &taskKind, t, timeline)
}

// CountTasksByStatus counts all tasks by external status (history included).
// It reads the counts the triggers keep (counts.go), not the tasks.
func (s *Store) CountTasksByStatus(ctx context.Context) (map[TaskState]int64, error) {
	out, err := keptCounts[TaskState](ctx, s, Task{}.TableName())
	if err != nil {
		return nil, fmt.Errorf("count tasks by status: %w", err)
	}
	return out, nil
}

// CountLiveTasksByPhase counts unfinished tasks by phase (for admission:
// how many are Preparing/Running/Collecting). Its cost grows with live tasks only.
func (s *Store) CountLiveTasksByPhase(ctx context.Context) (map[TaskPhase]int64, error) {
	out, err := countByKey[TaskPhase](ctx, s, liveByPhaseQuery)
	if err != nil {
		return nil, fmt.Errorf("count live tasks by phase: %w", err)
	}
	return out, nil
}

// ListFinishedTasksBefore returns up to limit finished tasks whose EndTime is
// before t, oldest first, leaving out those with a spec change still to be
// acted on. Retention deletes them (DeleteSettledTask) with their workspaces.
func (s *Store) ListFinishedTasksBefore(ctx context.Context, t time.Time, limit int) ([]Task, error) {
	out, err := readAll[Task](ctx, s, func(db *gorm.DB) *gorm.DB { return finishedBeforeQuery(db, t, limit) })
	if err != nil {
		return nil, fmt.Errorf("list finished tasks before %s: %w", t.Format(time.RFC3339), err)
	}
	return out, nil
}

func liveByPhaseQuery(db *gorm.DB) *gorm.DB {
	return db.Model(&Task{}).Select("phase, count(*) AS n").Where(sqlFor(db, "finished = 0")).Group("phase")
}

func finishedBeforeQuery(db *gorm.DB, t time.Time, limit int) *gorm.DB {
	q := db.Model(&Task{}).Where(sqlFor(db, "finished = 1 AND end_time < ? AND generation = observed_generation"), t.UTC()).
		Order("end_time ASC")
	if limit > 0 {
		q = q.Limit(limit)
	}
	return q
}

// DeleteSettledTask deletes a task with everything recorded about it: its
// diffs, execution log rows, container rows and events (its own, its diffs'
// and its containers'). Files on disk are the caller's business. ErrNotFound
// if absent. It is retention's delete: in the same transaction it checks that
// the task is as t was read (same resource version: no revision, answer or
// cancel arrived since) and that none of its diffs has a decision not yet
// carried out or an apply in flight, and returns ErrConflict otherwise,
// deleting nothing. What a front end accepted is never deleted under it.
func (s *Store) DeleteSettledTask(ctx context.Context, t *Task) error {
	err := s.write(ctx, func(tx *gorm.DB) error {
		var cur Task
		if err := tx.Select("resource_version").Where("id = ?", t.ID).Take(&cur).Error; err != nil {
			if errors.Is(err, gorm.ErrRecordNotFound) {
				return ErrNotFound
			}
			return err
		}
		if cur.ResourceVersion != t.ResourceVersion {
			return fmt.Errorf("%w: task changed (resource version %d, read %d)", ErrConflict, cur.ResourceVersion, t.ResourceVersion)
		}
		var busy int64
		if err := tx.Model(&Diff{}).Where("task_id = ? AND ("+liveDiffsWhere+")", t.ID).Count(&busy).Error; err != nil {
			return err
		}
		if busy > 0 {
			return fmt.Errorf("%w: %d diff(s) of the task have a decision in progress", ErrConflict, busy)
		}
		return deleteTaskTx(tx, t.ID)
	})
	if err != nil {
		return fmt.Errorf("delete task %s: %w", t.ID, err)
	}
	return nil
}

// deleteTaskTx deletes the task id and what is recorded about it in tx.
func deleteTaskTx(tx *gorm.DB, id string) error {
	var diffIDs, names []string
	if err := tx.Model(&Diff{}).Where("task_id = ?", id).Pluck("id", &diffIDs).Error; err != nil {
		return err
	}
	if err := tx.Model(&Container{}).Where("task_id = ?", id).Pluck("name", &names).Error; err != nil {
		return err
	}
	// Explicit deletes rather than relying on ON DELETE CASCADE alone:
	// containers and events carry no foreign key (a container may be
	// adopted for a task this store never had; events name many kinds).
	steps := []func() error{
		func() error { return tx.Where("kind = ? AND object_id = ?", EventKindTask, id).Delete(&Event{}).Error },
		func() error {
			return tx.Where("kind = ? AND object_id IN ?", EventKindDiff, diffIDs).Delete(&Event{}).Error
		},
		func() error {
			return tx.Where("kind = ? AND object_id IN ?", EventKindContainer, names).Delete(&Event{}).Error
		},
		func() error { return tx.Where("task_id = ?", id).Delete(&Container{}).Error },
		func() error { return tx.Where("task_id = ?", id).Delete(&ExecutionLog{}).Error },
		func() error { return tx.Where("task_id = ?", id).Delete(&Diff{}).Error },
	}
	for _, step := range steps {
		if err := step(); err != nil {
			return err
		}
	}
	return deleteExisting(tx, &Task{}, "id = ?", id)
}
