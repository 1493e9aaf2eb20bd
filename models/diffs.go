package models

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"time"

	"gorm.io/gorm"
)

// DiffFilter selects diffs for ListDiffs. Zero-valued fields do not filter.
type DiffFilter struct {
	IDs             []string
	TaskID          string
	States          []DiffState // external status (column status)
	Desired         []DiffDesired
	TargetWorkspace string
	UpdatedBefore   time.Time // retention: only diffs last written before this
	Limit           int       // 0: no limit
	Order           DiffOrder
	// WithPatch loads the patch too; by default lists leave it out (it can be
	// megabytes per diff). GetDiff always loads it.
	WithPatch bool
	// Awaiting selects the diffs in DiffAwaitingStates through their partial
	// index (States with the same states would sort every one of them).
	Awaiting bool
	// Paged lists by (created_at, id) in Order's direction, from the start
	// or, with After, past the end of a previous page.
	Paged bool
	After *Cursor
}

// DiffOrder is the order of ListDiffs results.
type DiffOrder int

// Diff orders.
const (
	DiffsNewestFirst DiffOrder = iota // created_at descending
	DiffsOldestFirst                  // created_at ascending
)

// CreateDiff stores the diff captured for one task run and returns it with
// created=true. Capture is idempotent: if the run already has a diff (same
// TaskID and RunNumber), nothing is written and that diff is returned with
// created=false, so a capture repeated after a crash never makes a second row.
//
// The store fills in: ID (fresh when empty), Generation and ResourceVersion 1,
// timestamps, PatchSHA256 and PatchSize (from Patch, when Patch is set),
// defaults (desired pending, apply mode worktree, phase Pending) and State.
// The task must exist (ErrNotFound otherwise). On success d itself is updated
// and returned.
func (s *Store) CreateDiff(ctx context.Context, d *Diff) (diff *Diff, created bool, err error) {
	if d == nil {
		return nil, false, fmt.Errorf("create diff: %w: nil diff", ErrInvalid)
	}
	nd := *d
	if err := s.prepareNewDiff(&nd); err != nil {
		return nil, false, fmt.Errorf("create diff: %w", err)
	}
	autoID := d.ID == ""
	var existing *Diff
	err = s.write(ctx, func(tx *gorm.DB) error {
		existing = nil
		var found Diff
		err := tx.Where("task_id = ? AND run_number = ?", nd.TaskID, nd.RunNumber).Take(&found).Error
		if err == nil {
			existing = &found
			return nil
		}
		if !errors.Is(err, gorm.ErrRecordNotFound) {
			return fmt.Errorf("look up diff of run: %w", err)
		}
		var n int64
		if err := tx.Model(&Task{}).Where("id = ?", nd.TaskID).Count(&n).Error; err != nil {
			return fmt.Errorf("look up task: %w", err)
		}
		if n == 0 {
			return fmt.Errorf("task %s: %w", nd.TaskID, ErrNotFound)
		}
		return insertWithID(tx, &nd, autoID, func() { nd.ID = NewDiffID() }, func() string { return nd.ID })
	})
	if err != nil {
		return nil, false, fmt.Errorf("create diff for task %s run %d: %w", nd.TaskID, nd.RunNumber, err)
	}
	if existing != nil {
		return existing, false, nil
	}
	*d = nd
	return d, true, nil
}

func (s *Store) prepareNewDiff(d *Diff) error {
	if d.ID != "" && !IsDiffID(d.ID) {
		return fmt.Errorf("%w: diff id %q does not match diff-<12 hex>", ErrInvalid, d.ID)
	}
	if !IsTaskID(d.TaskID) {
		return fmt.Errorf("%w: task id %q is not a task id", ErrInvalid, d.TaskID)
	}
	if d.RunNumber < 1 {
		return fmt.Errorf("%w: run number %d < 1", ErrInvalid, d.RunNumber)
	}
	if d.Spec.Desired == "" {
		d.Spec.Desired = DiffDesiredPending
	}
	if err := normalizeDiffSpec(&d.Spec); err != nil {
		return err
	}
	if d.Status.Phase == "" {
		d.Status.Phase = DiffPhasePending
	}
	if !d.Status.Phase.Valid() {
		return fmt.Errorf("%w: unknown diff phase %q", ErrInvalid, d.Status.Phase)
	}
	d.Status.State = DiffStateFor(d.Status.Phase)
	if len(d.Patch) > 0 {
		sum := sha256.Sum256(d.Patch)
		d.PatchSHA256 = hex.EncodeToString(sum[:])
		d.PatchSize = int64(len(d.Patch))
	}
	now := s.now()
	d.Generation, d.ResourceVersion = 1, 1
	d.CreatedAt, d.UpdatedAt = now, now
	d.Task = nil
	utcTimes(d)
	return nil
}

func normalizeDiffSpec(spec *DiffSpec) error {
	if spec.ApplyMode == "" {
		spec.ApplyMode = ApplyModeWorktree
	}
	if !spec.Desired.Valid() {
		return fmt.Errorf("%w: unknown desired outcome %q (want pending, applied or rejected)", ErrInvalid, spec.Desired)
	}
	if !spec.ApplyMode.Valid() {
		return fmt.Errorf("%w: unknown apply mode %q (want worktree or branch)", ErrInvalid, spec.ApplyMode)
	}
	return nil
}

// diffKind describes Diff to updateSpec and updateStatus.
var diffKind = objectKind[Diff, DiffSpec, DiffStatus]{
	name:          EventKindDiff,
	table:         Diff{}.TableName(),
	head:          func(d *Diff) objectHeader { return objectHeader{d.ID, &d.Generation, &d.ResourceVersion, &d.UpdatedAt} },
	spec:          func(d *Diff) *DiffSpec { return &d.Spec },
	status:        func(d *Diff) *DiffStatus { return &d.Status },
	columns:       func(cs *columnSets) objectColumns { return cs.diff },
	omitOnUpdate:  []string{"patch"},
	normalizeSpec: normalizeDiffSpec,
	checkStatus:   func(st *DiffStatus) error { return checkPhase(st.Phase) },
	deriveStatus:  deriveDiffStatus,
}

// deriveDiffStatus sets the fields of a diff status the store owns.
func deriveDiffStatus(st *DiffStatus, _ time.Time) {
	st.State = DiffStateFor(st.Phase)
	if len(st.ConflictFiles) == 0 {
		st.ConflictFiles = nil
	}
}

// GetDiff returns one diff with its patch, or ErrNotFound.
func (s *Store) GetDiff(ctx context.Context, id string) (*Diff, error) {
	d, err := readOne[Diff](ctx, s, "id = ?", id)
	if err != nil {
		return nil, fmt.Errorf("get diff %s: %w", id, err)
	}
	return d, nil
}

// ListDiffs returns the diffs matching f, without their patches unless f.WithPatch.
func (s *Store) ListDiffs(ctx context.Context, f DiffFilter) ([]Diff, error) {
	out, err := readAll[Diff](ctx, s, func(db *gorm.DB) *gorm.DB { return diffListQuery(db, f) })
	if err != nil {
		return nil, fmt.Errorf("list diffs: %w", err)
	}
	return out, nil
}

// diffListQuery builds the ListDiffs query (shared with the query-plan test).
func diffListQuery(db *gorm.DB, f DiffFilter) *gorm.DB {
	q := db.Model(&Diff{})
	if !f.WithPatch {
		q = q.Omit("patch")
	}
	if len(f.IDs) > 0 {
		q = whereIn(q, "id", f.IDs)
	}
	if f.TaskID != "" {
		q = q.Where("task_id = ?", f.TaskID)
	}
	if len(f.States) > 0 {
		q = whereIn(q, "status", f.States)
	}
	if f.Awaiting {
		// INDEXED BY: without statistics the planner prefers the status
		// index, which needs a sort of every awaiting diff for the order.
		q = q.Table(indexedBy(q, "git_diffs", "idx_git_diffs_awaiting")).Where(awaitingDiffsWhere)
	}
	if len(f.Desired) > 0 {
		q = whereIn(q, "desired", f.Desired)
	}
	if f.TargetWorkspace != "" {
		q = q.Where("target_workspace = ?", f.TargetWorkspace)
	}
	if !f.UpdatedBefore.IsZero() {
		q = q.Where("updated_at < ?", f.UpdatedBefore.UTC())
	}
	if f.Paged {
		q = keysetPage(q, "created_at", f.Order != DiffsOldestFirst, f.After)
	} else if f.Order == DiffsOldestFirst {
		q = q.Order("created_at ASC")
	} else {
		q = q.Order("created_at DESC")
	}
	if f.Limit > 0 {
		q = q.Limit(f.Limit)
	}
	return q
}

// ListLiveDiffIDs returns the ids of the diffs a reconcile pass must look at:
// a spec change (apply, reject) not yet observed, or an apply in flight. Like
// ListLiveTaskIDs it reads a partial index the size of the live set.
func (s *Store) ListLiveDiffIDs(ctx context.Context) ([]string, error) {
	var ids []string
	err := s.read(ctx, func(db *gorm.DB) error {
		return liveDiffIDsQuery(db).Pluck("id", &ids).Error
	})
	if err != nil {
		return nil, fmt.Errorf("list live diffs: %w", err)
	}
	return ids, nil
}

// liveDiffIDsQuery selects the live diffs; its WHERE is the partial index's, verbatim.
func liveDiffIDsQuery(db *gorm.DB) *gorm.DB {
	return db.Model(&Diff{}).Where(liveDiffsWhere).Order("id")
}

// UpdateDiffSpec changes a diff's spec in one transaction, like UpdateTaskSpec:
// mutate sees the diff as stored (without its patch) and may run again if the
// transaction is retried; only Spec changes are written, with Generation and
// ResourceVersion bumped; nothing is written if the spec did not change.
// Returns the diff as stored afterwards (without its patch).
func (s *Store) UpdateDiffSpec(ctx context.Context, id string, mutate func(*Diff) error) (*Diff, error) {
	return updateSpec(ctx, s, &diffKind, id, mutate)
}

// UpdateDiffStatus writes d's status columns (and nothing else) if the row is
// still at d.ResourceVersion, else ErrConflict (or ErrNotFound), exactly like
// UpdateTaskStatus, timeline included. The store derives State from Phase. On
// success d.Status, d.ResourceVersion and d.UpdatedAt are updated.
func (s *Store) UpdateDiffStatus(ctx context.Context, d *Diff, timeline ...TimelineEntry) error {
	return updateStatus(ctx, s, &diffKind, d, timeline)
}

// CountDiffsByStatus counts all diffs by external status, from the counts the
// triggers keep (counts.go).
func (s *Store) CountDiffsByStatus(ctx context.Context) (map[DiffState]int64, error) {
	out, err := keptCounts[DiffState](ctx, s, Diff{}.TableName())
	if err != nil {
		return nil, fmt.Errorf("count diffs by status: %w", err)
	}
	return out, nil
}

// DeleteDiff deletes one diff and its events (retention of applied, rejected
// and superseded diffs whose task is kept). ErrNotFound if absent.
func (s *Store) DeleteDiff(ctx context.Context, id string) error {
	err := s.write(ctx, func(tx *gorm.DB) error {
		if err := tx.Where("kind = ? AND object_id = ?", EventKindDiff, id).Delete(&Event{}).Error; err != nil {
			return err
		}
		return deleteExisting(tx, &Diff{}, "id = ?", id)
	})
	if err != nil {
		return fmt.Errorf("delete diff %s: %w", id, err)
	}
	return nil
}
