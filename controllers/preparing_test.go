package controllers

import (
	"fmt"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/claude-parallel/claude-parallel/controllers/engine"
	"github.com/claude-parallel/claude-parallel/models"
	"github.com/claude-parallel/claude-parallel/test/testutil"
)

// An admitted task's snapshot is finished in the background; the Preparing
// pass creates the container meanwhile and starts it only once the
// workspace is ready.
func TestTaskReconcile_CreatesContainerWhileSnapshotFinishes(t *testing.T) {
	h := newHarness(t)
	// Enough files that the snapshot is still being recorded when the
	// Preparing pass runs.
	files := map[string]string{}
	for i := range 400 {
		files[fmt.Sprintf("d%d/f%d.txt", i%20, i)] = strings.Repeat("x", i)
	}
	h.repo = testutil.NewRepo(t, t.TempDir(), files)
	task := h.createTask("true", func(t *models.Task) { t.Spec.IncludeUncommitted = true })

	h.reconcile(task.ID)
	got := h.task(task.ID)
	if got.Status.Phase != models.TaskPhasePreparing || got.Status.RunNumber != 1 {
		t.Fatalf("after admission: %+v", got.Status)
	}
	if h.s.builds.get(task.ID) == nil {
		t.Skip("the snapshot finished before the Preparing pass; nothing to overlap")
	}
	h.reconcile(task.ID)
	got = h.task(task.ID)
	name := engine.ContainerName(task.ID, 1)
	if got.Status.Phase != models.TaskPhaseRunning || got.Status.BaseCommit == "" || got.Status.WorkspacePath == "" {
		t.Fatalf("after start: %+v", got.Status)
	}
	if h.fe.Count(name) != 1 || h.fe.Creates != 1 || h.fe.Starts != 1 {
		t.Fatalf("containers %d, creates %d, starts %d: want one created and started once", h.fe.Count(name), h.fe.Creates, h.fe.Starts)
	}
	if src := h.fe.Spec(name).Mounts[0].Source; src != filepath.Join(got.Status.WorkspacePath, "work") {
		t.Errorf("work mount %s, workspace %s", src, got.Status.WorkspacePath)
	}
	steps := h.stepsSeen()
	ready := slices.Index(steps, string(StepWorkspaceReady)+" "+task.ID)
	started := slices.Index(steps, string(StepContainerStarted)+" "+task.ID)
	if ready < 0 || started < 0 || started < ready {
		t.Errorf("steps %v: the container started before the workspace was ready", steps)
	}
}
