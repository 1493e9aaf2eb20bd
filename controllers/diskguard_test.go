package controllers

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/claude-parallel/claude-parallel/config"
	"github.com/claude-parallel/claude-parallel/models"
	"github.com/claude-parallel/claude-parallel/models/diskusage"
)

// While the workspaces' volume has less free than the reserve, a pending task
// does not start (no snapshot, no container) and says DiskLow; once the
// reserve is met (here: lowered by a reload) it is admitted.
func TestTaskReconcile_DiskLowHoldsAdmission(t *testing.T) {
	var free uint64
	h := newHarness(t, func(c *config.Config) {
		var err error
		if free, err = diskusage.Free(c.Home); err != nil {
			t.Fatal(err)
		}
		// More than this volume has free: the real disk is "low".
		c.Limits.DiskReserveBytes = int64(free) + 1<<40
	})
	task := h.createTask("echo hi")
	for range 2 {
		h.reconcile(task.ID)
	}
	got := h.task(task.ID)
	if got.Status.Phase != models.TaskPhasePending || got.Status.Reason != ReasonDiskLow ||
		!strings.Contains(got.Status.Message, "limits.disk_reserve_bytes") {
		t.Fatalf("task on a low disk: %+v, want pending with reason DiskLow naming the setting", got.Status)
	}
	if got.Status.WorkspacePath != "" || h.fe.Count(got.Status.ContainerName) != 0 {
		t.Fatalf("task on a low disk took a snapshot or a container: %+v", got.Status)
	}
	if _, err := os.Stat(filepath.Join(h.cfg.Paths().WorkspaceDir, task.ID)); !os.IsNotExist(err) {
		t.Fatalf("workspace created on a low disk: %v", err)
	}
	if r := eventReasonsOf(t, h, task.ID); strings.Count(r, ReasonDiskLow) != 1 {
		t.Fatalf("events %s: want one DiskLow event for the streak", r)
	}

	next := h.cfg.Clone()
	next.Limits.DiskReserveBytes = 1 << 20
	h.s.SetConfig(next)
	if got := h.runUntil(task.ID, 30*time.Second, phaseIs(models.TaskPhasePreparing)); got.Status.Reason == ReasonDiskLow {
		t.Fatalf("admitted but still says DiskLow: %+v", got.Status)
	}
}

// A running task whose workspace grows past limits.workspace_max_bytes is
// stopped by the next size walk and fails as WorkspaceTooLarge; a workspace
// under the cap is left alone.
func TestTaskReconcile_WorkspaceOverCapFailsTheRun(t *testing.T) {
	const limit = 8 << 20
	h := newHarness(t, func(c *config.Config) { c.Limits.WorkspaceMaxBytes = limit })
	task := h.createTask("fill the disk")
	running := h.runUntil(task.ID, 30*time.Second, phaseIs(models.TaskPhaseRunning))

	if err := h.s.tasks.disk.checkWorkspaceSizes(h.ctx); err != nil {
		t.Fatal(err)
	}
	h.reconcile(task.ID)
	if got := h.task(task.ID); got.Status.Phase != models.TaskPhaseRunning {
		t.Fatalf("task under the cap: %+v", got.Status)
	}

	// The agent writes past the cap (real blocks: a sparse file would not count).
	big := make([]byte, 2*limit)
	for i := range big {
		big[i] = byte(i)
	}
	if err := os.WriteFile(filepath.Join(running.Status.WorkspacePath, "work", "big.bin"), big, 0o644); err != nil {
		t.Fatal(err)
	}
	if err := h.s.tasks.disk.checkWorkspaceSizes(h.ctx); err != nil {
		t.Fatal(err)
	}
	for range 2 { // idempotent: the second pass finds it failed
		h.reconcile(task.ID)
	}
	got := h.task(task.ID)
	if got.Status.Phase != models.TaskPhaseFailed || got.Status.Reason != ReasonWorkspaceTooLarge ||
		!strings.Contains(got.Status.Message, "limits.workspace_max_bytes (8m)") || !got.Status.Finished {
		t.Fatalf("task over the cap: %+v, want failed WorkspaceTooLarge naming the setting", got.Status)
	}
	info, err := h.fe.Inspect(h.ctx, running.Status.ContainerName)
	if err != nil || info.Running() {
		t.Fatalf("container of the oversize run: running=%v err=%v, want stopped", info.Running(), err)
	}
}

func eventReasonsOf(t *testing.T, h *harness, taskID string) string {
	t.Helper()
	events, err := h.store.ListEvents(h.ctx, models.EventKindTask, taskID, 0)
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	for _, e := range events {
		out = append(out, e.Reason)
	}
	return strings.Join(out, ",")
}

// On the real engine: an agent that writes past the cap is stopped while it
// runs, by the periodic size walk, and its task fails as WorkspaceTooLarge.
func TestDocker_WorkspaceOverCapStopsTheRun(t *testing.T) {
	t.Parallel()
	e := newDockerEnv(t, func(c *config.Config) {
		c.Limits.WorkspaceMaxBytes = 4 << 20
		c.Intervals.WorkspaceCheck = config.D(200 * time.Millisecond)
	})
	task := e.submit(`dd if=/dev/zero of=big.bin bs=1048576 count=12; echo written; sleep 120`)
	got := e.wait(task.ID, 60*time.Second, finished)
	if got.Status.Phase != models.TaskPhaseFailed || got.Status.Reason != ReasonWorkspaceTooLarge {
		t.Fatalf("task that filled its workspace: %+v, want failed WorkspaceTooLarge", got.Status)
	}
	if info := e.inspect(got.Status.ContainerName); info.Running() {
		t.Fatalf("container still running after its task failed WorkspaceTooLarge")
	}
}
