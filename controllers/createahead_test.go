package controllers

import (
	"sync"
	"testing"
	"time"

	"github.com/claude-parallel/claude-parallel/controllers/engine"
	"github.com/claude-parallel/claude-parallel/models"
	"github.com/claude-parallel/claude-parallel/test/testutil"
)

// The pass that admits a task begins creating its container at once, while
// the snapshot is still being taken (held back here), so the create is off
// the way from the intent to the start; the Preparing pass takes that
// container (no second create, no adoption) and starts it only once the
// workspace is ready.
func TestTaskReconcile_CreatesContainerWhenAdmitted(t *testing.T) {
	h := newHarness(t)
	gate := make(chan struct{})
	var release sync.Once
	open := func() { release.Do(func() { close(gate) }) }
	t.Cleanup(open) // before the harness waits for its builds, even on failure
	h.s.tasks.workspaces = gatedWorkspaces{gate: gate}
	task := h.createTask("true", func(t *models.Task) { t.Spec.IncludeUncommitted = true })

	h.reconcile(task.ID) // Pending: admitted, snapshot and create in the background
	if got := h.task(task.ID); got.Status.Phase != models.TaskPhasePreparing {
		t.Fatalf("after admission: %+v", got.Status)
	}
	name := engine.ContainerName(task.ID, 1)
	if _, ok := testutil.Poll(t, 30*time.Second, 5*time.Millisecond, func() (int, error) {
		return h.fe.Count(name), nil
	}, func(n int) bool { return n == 1 }); !ok {
		t.Fatal("the admitted run's container was not created before its Preparing pass")
	}
	open()
	h.reconcile(task.ID) // Preparing: takes the container, starts it
	got := h.task(task.ID)
	if got.Status.Phase != models.TaskPhaseRunning {
		t.Fatalf("after the Preparing pass: %+v", got.Status)
	}
	h.fe.mu.Lock()
	creates, starts := h.fe.Creates, h.fe.Starts
	h.fe.mu.Unlock()
	if h.fe.Count(name) != 1 || creates != 1 || starts != 1 {
		t.Fatalf("containers %d, creates %d, starts %d: want one created (ahead) and started once", h.fe.Count(name), creates, starts)
	}
	events, err := h.store.ListEvents(h.ctx, models.EventKindTask, task.ID, 0)
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range events {
		if e.Reason == "ContainerAdopted" {
			t.Errorf("the container created ahead was adopted as if left by a crash: %+v", e)
		}
	}
}

// A process that dies after creating the container ahead, before its
// Preparing pass (here: the creates of the term are forgotten), leaves a
// created container that the next Preparing pass adopts: still one
// container, started once.
func TestTaskReconcile_ContainerCreatedAheadAdoptedAfterCrash(t *testing.T) {
	h := newHarness(t)
	task := h.createTask("true", func(t *models.Task) { t.Spec.IncludeUncommitted = true })
	h.reconcile(task.ID)
	name := engine.ContainerName(task.ID, 1)
	h.s.tasks.ahead.stop() // waits for the create, then forgets it, as a restart does
	if h.fe.Count(name) != 1 {
		t.Fatalf("containers %d before the Preparing pass: want the one created ahead", h.fe.Count(name))
	}
	got := h.stepTwice(task.ID)
	if got.Status.Phase != models.TaskPhaseRunning {
		t.Fatalf("after the Preparing pass: %+v", got.Status)
	}
	h.fe.mu.Lock()
	starts := h.fe.Starts
	h.fe.mu.Unlock()
	if h.fe.Count(name) != 1 || starts != 1 {
		t.Fatalf("containers %d, starts %d: want the container created ahead adopted and started once", h.fe.Count(name), starts)
	}
}
