package controllers

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"maps"
	"os"
	"path/filepath"
	"slices"
	"time"

	"go.uber.org/zap"

	"github.com/claude-parallel/claude-parallel/config"
	"github.com/claude-parallel/claude-parallel/models"
)

// Retention runs at the start of each leadership term and every
// intervals.retention. It deletes what is older than retention.data_max_age
// and nothing else:
//
//   - finished tasks whose run ended before the cutoff, with their diffs
//     (whatever their state), execution log rows, container rows and events,
//     their log files (<TaskLogDir>/<task id>/) and workspace;
//   - applied, rejected and superseded diffs last written before the cutoff
//     whose task is kept;
//   - events older than the cutoff.
//
// It also rejects the diffs awaiting a decision whose task's workspace is
// gone: nothing could revise them any more, and the original server rejected
// diffs of vanished containers the same way.
//
// Deletions go in batches of retentionBatch rows, each object in its own
// transaction, so a large backlog never holds the database's write lock for
// long. A task's rows go before its files, in a transaction that first checks
// that nothing was accepted for the task since retention read it; a crash
// between the two leaves files no row names, which every run sweeps.

// retentionBatch is how many tasks or diffs one query of a retention run
// fetches.
const retentionBatch = 100

// diffReasonWorkspaceGone's message, kept from the original server.
const workspaceGoneMessage = "workspace is gone"

// retention is the retention job. Like diffReconciler it depends on a few
// narrow things, which setup (setup.go) fills in and its tests build directly.
type retention struct {
	store      *models.Store
	workspaces Workspaces
	paths      config.Paths
	// maxAge is read on every run, so a reloaded configuration applies.
	maxAge func() time.Duration
	batch  int
	log    *zap.Logger
	now    func() time.Time
	// notify enqueues a diff whose status retention changed.
	notify func(kind, id string)
}

// retentionCounts is what one run removed, for the log.
type retentionCounts struct {
	tasks, diffs, events, rejected, orphans int64
}

// run is one retention pass. Each part runs even if an earlier one failed;
// the errors are joined.
func (r *retention) run(ctx context.Context) error {
	maxAge := r.maxAge()
	if maxAge <= 0 {
		// Validate refuses this; never read it as "delete everything".
		return fmt.Errorf("retention: data max age %s is not positive", maxAge)
	}
	cutoff := r.now().Add(-maxAge)
	var n retentionCounts
	var errs []error
	for _, part := range []func(context.Context, time.Time, *retentionCounts) error{
		r.deleteOldTasks, r.deleteOldDiffs, r.deleteOldEvents, r.rejectOrphanedDiffs, r.sweepOrphanFiles,
	} {
		if err := part(ctx, cutoff, &n); err != nil {
			if ctx.Err() != nil {
				return ctx.Err()
			}
			errs = append(errs, err)
		}
	}
	r.log.Info("retention pass done", zap.Time("cutoff", cutoff),
		zap.Int64("tasks", n.tasks), zap.Int64("diffs", n.diffs),
		zap.Int64("events", n.events), zap.Int64("rejectedDiffs", n.rejected), zap.Int64("orphanedTasksSwept", n.orphans))
	if err := errors.Join(errs...); err != nil {
		return fmt.Errorf("retention: %w", err)
	}
	return nil
}

// deleteOldTasks deletes the finished tasks that ended before cutoff, batch
// by batch, with everything they left: files first, then the rows.
func (r *retention) deleteOldTasks(ctx context.Context, cutoff time.Time, n *retentionCounts) error {
	for ctx.Err() == nil {
		tasks, err := r.store.ListFinishedTasksBefore(ctx, cutoff, r.batch)
		if err != nil {
			return err
		}
		deleted := 0
		for i := range tasks {
			ok, err := r.deleteTask(ctx, &tasks[i], cutoff)
			if err != nil {
				return err
			}
			if ok {
				deleted++
				n.tasks++
			}
		}
		// A batch in which every task was kept back (busy) would come back
		// unchanged; the next run tries those again.
		if len(tasks) < r.batch || deleted == 0 {
			return nil
		}
	}
	return ctx.Err()
}

// deleteTask deletes one old finished task unless it became busy since it
// was listed (a revision or an answer asked for another run, or one of its
// diffs is being applied). It reports whether the task went.
func (r *retention) deleteTask(ctx context.Context, listed *models.Task, cutoff time.Time) (bool, error) {
	t, err := r.store.GetTask(ctx, listed.ID)
	if errors.Is(err, models.ErrNotFound) {
		return false, nil
	}
	if err != nil {
		return false, err
	}
	if taskBusy(t, cutoff) {
		return false, nil
	}
	// Rows first, and only if nothing was accepted for the task since it was
	// read: a revision, an answer or an apply that a front end accepted a
	// moment ago keeps the task and its workspace.
	if err := r.store.DeleteSettledTask(ctx, t); err != nil {
		if errors.Is(err, models.ErrNotFound) || errors.Is(err, models.ErrConflict) {
			return false, nil
		}
		return false, fmt.Errorf("delete task %s: %w", t.ID, err)
	}
	if err := r.removeTaskFiles(t); err != nil {
		// The next run's sweep removes what no row names any more.
		return true, err
	}
	r.log.Debug("retention deleted task", zap.String("task", t.ID), zap.Timep("endTime", t.Status.EndTime))
	return true, nil
}

// sweepOrphanFiles removes the log folders and workspaces named after a task
// the store no longer has: what a run left when it died between deleting a
// task's rows and its files. Only names that are task ids are looked at, so
// nothing else under those folders is touched, and a task's row is written
// before any of its files exist, so a live task never looks orphaned.
func (r *retention) sweepOrphanFiles(ctx context.Context, _ time.Time, n *retentionCounts) error {
	named := map[string]bool{} // task ids that name a folder
	for _, root := range []string{r.paths.TaskLogDir, r.paths.WorkspaceDir} {
		entries, err := os.ReadDir(root)
		if errors.Is(err, fs.ErrNotExist) {
			continue
		}
		if err != nil {
			return fmt.Errorf("sweep %s: %w", root, err)
		}
		for _, e := range entries {
			if e.IsDir() && models.IsTaskID(e.Name()) {
				named[e.Name()] = true
			}
		}
	}
	ids := slices.Sorted(maps.Keys(named))
	for len(ids) > 0 && ctx.Err() == nil {
		chunk := ids[:min(len(ids), r.batch)]
		ids = ids[len(chunk):]
		known, err := r.store.TasksByID(ctx, chunk)
		if err != nil {
			return fmt.Errorf("sweep: %w", err)
		}
		for _, id := range chunk {
			if known[id] != nil {
				continue
			}
			if err := r.removeTaskFiles(&models.Task{ID: id}); err != nil {
				return fmt.Errorf("sweep: %w", err)
			}
			n.orphans++
		}
	}
	return ctx.Err()
}

// taskBusy reports whether a task listed for deletion must be kept: it is no
// longer finished and old, or a spec change awaits the task controller. (Its
// diffs are checked by DeleteSettledTask, in the deleting transaction.)
func taskBusy(t *models.Task, cutoff time.Time) bool {
	return !t.Status.Finished || t.Status.EndTime == nil || !t.Status.EndTime.Before(cutoff) ||
		t.Generation != t.Status.ObservedGeneration
}

// removeTaskFiles removes a task's log folder and workspace. Paths are built
// from the task id (checked), never taken whole from the database.
func (r *retention) removeTaskFiles(t *models.Task) error {
	if !models.IsTaskID(t.ID) {
		return fmt.Errorf("task id %q is not a task id; not removing its files", t.ID)
	}
	logDir := filepath.Join(r.paths.TaskLogDir, t.ID)
	if err := os.RemoveAll(logDir); err != nil {
		return fmt.Errorf("remove logs of task %s: %w", t.ID, err)
	}
	dirs := []string{filepath.Join(r.paths.WorkspaceDir, t.ID)}
	if recorded := workspaceDirOf(r.paths, t); recorded != dirs[0] {
		dirs = append(dirs, recorded)
	}
	for _, dir := range dirs {
		if _, err := os.Lstat(dir); errors.Is(err, fs.ErrNotExist) {
			continue
		}
		if err := r.workspaces.Remove(t.ID, dir); err != nil {
			return fmt.Errorf("remove workspace of task %s: %w", t.ID, err)
		}
	}
	return nil
}

// deleteOldDiffs deletes the decided diffs (applied, rejected, superseded)
// last written before cutoff, of tasks retention keeps.
func (r *retention) deleteOldDiffs(ctx context.Context, cutoff time.Time, n *retentionCounts) error {
	for ctx.Err() == nil {
		diffs, err := r.store.ListDiffs(ctx, models.DiffFilter{
			States: []models.DiffState{models.DiffStateApplied, models.DiffStateRejected, models.DiffStateSuperseded},
			// The status write that decided a diff is its last write.
			UpdatedBefore: cutoff,
			Limit:         r.batch,
			Order:         models.DiffsOldestFirst,
		})
		if err != nil {
			return err
		}
		for _, d := range diffs {
			err := r.store.DeleteDiff(ctx, d.ID)
			if errors.Is(err, models.ErrNotFound) {
				continue
			}
			if err != nil {
				return err
			}
			n.diffs++
		}
		if len(diffs) < r.batch {
			return nil
		}
	}
	return ctx.Err()
}

// eventsPerBatch is how many events one transaction of a retention run
// deletes: events are small rows, so more go at once than tasks do.
const eventsPerBatch = 10 * retentionBatch

// deleteOldEvents deletes the events older than cutoff, a batch per
// transaction.
func (r *retention) deleteOldEvents(ctx context.Context, cutoff time.Time, n *retentionCounts) error {
	batch := r.batch * eventsPerBatch / retentionBatch
	for ctx.Err() == nil {
		k, err := r.store.DeleteEventsBefore(ctx, cutoff, batch)
		n.events += k
		if err != nil || k < int64(batch) {
			return err
		}
	}
	return ctx.Err()
}

// rejectOrphanedDiffs hands the diffs awaiting a decision whose task's
// workspace is gone to the diff controller, which rejects them with reason
// WorkspaceGone (diffReconciler.rejectOrphan): it writes neither their status,
// which is the diff controller's alone, nor their spec, which only front ends
// write. It reads them a page at a time with their tasks, two queries a page
// and no patch: a store with a hundred thousand diffs nobody decided on once
// held them all in memory here, with a query for each.
func (r *retention) rejectOrphanedDiffs(ctx context.Context, _ time.Time, n *retentionCounts) error {
	var after *models.Cursor
	for ctx.Err() == nil {
		// Not filtered by Spec.Desired: a diff whose apply met a conflict
		// waits for a decision too (models.Diff.Decision); the diff
		// controller decides again on what it reads.
		diffs, err := r.store.ListDiffs(ctx, models.DiffFilter{Awaiting: true, Order: models.DiffsOldestFirst,
			Paged: true, After: after, Limit: r.batch})
		if err != nil {
			return err
		}
		ids := make([]string, 0, len(diffs))
		for i := range diffs {
			ids = append(ids, diffs[i].TaskID)
		}
		tasks, err := r.store.TasksByID(ctx, ids)
		if err != nil {
			return err
		}
		for i := range diffs {
			if d := &diffs[i]; d.AwaitingDecision() && workspaceGone(r.paths, tasks[d.TaskID]) {
				r.notify(KindDiff, d.ID)
				n.rejected++
			}
		}
		if len(diffs) < r.batch {
			return nil
		}
		last := diffs[len(diffs)-1]
		after = &models.Cursor{Time: last.CreatedAt, ID: last.ID}
	}
	return ctx.Err()
}

// workspaceGone reports whether task t's workspace is known to be gone (a
// task deleted meanwhile is not: its diff goes with it).
func workspaceGone(paths config.Paths, t *models.Task) bool {
	if t == nil {
		return false
	}
	_, err := os.Lstat(workspaceDirOf(paths, t))
	return errors.Is(err, fs.ErrNotExist) // there, or unreadable: not known to be gone
}
