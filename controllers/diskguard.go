package controllers

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sync"
	"time"

	"go.uber.org/zap"

	"github.com/claude-parallel/claude-parallel/config"
	"github.com/claude-parallel/claude-parallel/controllers/engine"
	"github.com/claude-parallel/claude-parallel/models"
	"github.com/claude-parallel/claude-parallel/models/diskusage"
)

// Workspaces live on the store's volume, so one task filling it would stall
// every task and the store itself. Two guards keep that from happening:
// admission waits (DiskLow) while the volume has less than
// limits.disk_reserve_bytes free, and a periodic walk stops a running task
// whose workspace grew past limits.workspace_max_bytes (WorkspaceTooLarge).

// Reasons the disk guards give.
const (
	ReasonDiskLow           = "DiskLow"
	ReasonWorkspaceTooLarge = "WorkspaceTooLarge"
)

// workspaceSizeName is the periodic job that measures running workspaces.
const workspaceSizeName = "workspace-size"

// diskGuard holds what the last size walk found: the runs whose workspace
// is over the cap. The walk runs off the reconcile path (the workspace-size
// job); the task's next pass acts on its verdict.
type diskGuard struct {
	store *models.Store
	log   *zap.Logger
	now   func() time.Time
	// limit is limits.workspace_max_bytes in force (0: no cap).
	limit func() int64
	// notify enqueues a task found over the cap (KindTask).
	notify func(kind, id string)

	mu   sync.Mutex
	over map[string]oversize // by task id
}

type oversize struct {
	run   int
	bytes int64 // at least this much: the walk stops past the cap
	limit int64
	at    time.Time
}

// workspaceUsage is the bytes of disk dir takes, or at least more than
// limit. It takes the directory to measure so that it can be pointed at
// whatever holds a run's writes (the work tree, or an overlay's upper dir).
func workspaceUsage(ctx context.Context, dir string, limit int64) (int64, bool, error) {
	n, err := diskusage.DirSize(ctx, dir, limit)
	if errors.Is(err, diskusage.ErrOverLimit) {
		return n, true, nil
	}
	return n, false, err
}

// taskWorkspaceDir is what a run may fill: its whole workspace (work tree,
// agent home, git data).
func taskWorkspaceDir(t *models.Task) string { return t.Status.WorkspacePath }

// checkWorkspaceSizes measures the workspace of every running task against
// limits.workspace_max_bytes and enqueues those over it. A tree is walked only
// as far as the cap, so a runaway costs no more than a tree at the cap.
func (g *diskGuard) checkWorkspaceSizes(ctx context.Context) error {
	_, err := g.sizePass(ctx)
	return err
}

// sizePass is one workspace-size walk as the periodic job runs it: idle
// when no running task has a workspace that can grow (or there is no cap),
// so the job stretches its interval while nothing runs.
func (g *diskGuard) sizePass(ctx context.Context) (idle bool, err error) {
	limit := g.limit()
	over := map[string]oversize{}
	idle = true
	if limit > 0 {
		notFinished := false
		running, err := g.store.ListTasks(ctx, models.TaskFilter{
			Phases: []models.TaskPhase{models.TaskPhaseRunning}, Finished: &notFinished})
		if err != nil {
			return false, fmt.Errorf("workspace sizes: list running tasks: %w", err)
		}
		for _, t := range running {
			dir := taskWorkspaceDir(&t)
			if dir == "" {
				continue
			}
			idle = false
			n, isOver, err := workspaceUsage(ctx, dir, limit)
			if err != nil {
				if ctx.Err() != nil {
					return false, ctx.Err()
				}
				g.log.Warn("measure workspace failed", zap.String("task", t.ID), zap.Error(err))
				continue
			}
			if isOver {
				over[t.ID] = oversize{run: t.Status.RunNumber, bytes: n, limit: limit, at: g.now()}
			}
		}
	}
	g.mu.Lock()
	g.over = over
	g.mu.Unlock()
	for id := range over {
		g.notify(KindTask, id)
	}
	return idle, nil
}

// verdict is what the last walk found of taskID's workspace, if it was over.
func (g *diskGuard) verdict(taskID string) (oversize, bool) {
	g.mu.Lock()
	defer g.mu.Unlock()
	o, ok := g.over[taskID]
	return o, ok
}

// guardDisk runs before the steps of a pending or running task: it holds a
// pending task while the disk is low, and stops a run whose workspace the
// last walk found over its cap. It reports whether the pass is done.
func (r *taskReconciler) guardDisk(ctx context.Context, sc *taskScope) (done bool, err error) {
	switch sc.task.Status.Phase {
	case models.TaskPhasePending:
		return r.deps.holdWhileDiskLow(sc), nil
	case models.TaskPhaseRunning:
		return r.deps.stopOversizeRun(ctx, sc)
	}
	return false, nil
}

// holdWhileDiskLow keeps a task from starting a run (or taking its
// snapshot) while the workspaces' volume has less than the reserve free.
func (s *taskDeps) holdWhileDiskLow(sc *taskScope) bool {
	reserve := s.config().Limits.DiskReserveBytes
	if reserve <= 0 {
		return false
	}
	dir := existingParent(s.paths.WorkspaceDir)
	free, err := diskusage.Free(dir)
	if err != nil {
		s.log.Warn("free space unknown; not holding tasks back", zap.Error(err))
		return false
	}
	if int64(free) >= reserve {
		return false
	}
	st := &sc.task.Status
	st.Reason = ReasonDiskLow
	st.Message = fmt.Sprintf("waiting for disk space: %s free on the volume of %s, below limits.disk_reserve_bytes (%s)",
		config.FormatBytes(int64(free)), dir, config.FormatBytes(reserve))
	if sc.before.Reason != ReasonDiskLow {
		sc.event(ReasonDiskLow, st.Message)
	}
	sc.requeueAfter(waitRequeue)
	return true
}

// stopOversizeRun ends a run the last size walk found over the cap: its
// container is stopped and the task fails as WorkspaceTooLarge. The
// workspace is kept for inspection until retention removes it.
func (s *taskDeps) stopOversizeRun(ctx context.Context, sc *taskScope) (bool, error) {
	t := sc.task
	o, ok := s.disk.verdict(t.ID)
	if !ok || o.run != t.Status.RunNumber {
		return false, nil
	}
	if err := s.rt.Stop(ctx, containerRef(t), s.stopGrace); err != nil && !errors.Is(err, engine.ErrNotFound) {
		return false, fmt.Errorf("stop container of oversize workspace: %w", err)
	}
	sc.fail(ReasonWorkspaceTooLarge, fmt.Sprintf("run %d stopped: its workspace %s grew past limits.workspace_max_bytes (%s): "+
		"at least %s at %s; nothing was captured, the workspace is kept until retention removes it",
		o.run, taskWorkspaceDir(t), config.FormatBytes(o.limit), config.FormatBytes(o.bytes), o.at.UTC().Format(time.RFC3339)))
	// The verdict stays until the next walk replaces the set: should this
	// status write conflict, the next pass must still fail the run rather
	// than collect the container's exit as its own outcome.
	return true, nil
}

// existingParent returns dir or its nearest existing ancestor, whose volume
// dir will be on once created.
func existingParent(dir string) string {
	for {
		if _, err := os.Stat(dir); err == nil {
			return dir
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			return dir
		}
		dir = parent
	}
}
