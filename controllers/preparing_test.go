package controllers

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/claude-parallel/claude-parallel/config"
	"github.com/claude-parallel/claude-parallel/controllers/engine"
	"github.com/claude-parallel/claude-parallel/controllers/workspace"
	"github.com/claude-parallel/claude-parallel/models"
	"github.com/claude-parallel/claude-parallel/reconciler"
	"github.com/claude-parallel/claude-parallel/test/testutil"
)

// gatedWorkspaces prepares workspaces for real but holds every background
// build's Wait until gate closes, so a test sees the Preparing pass with the
// snapshot still being recorded, whatever the machine's speed.
type gatedWorkspaces struct {
	hostWorkspaces
	gate chan struct{}
}

func (g gatedWorkspaces) Begin(ctx context.Context, spec workspace.PrepareSpec) (building, error) {
	b, err := g.hostWorkspaces.Begin(ctx, spec)
	if err != nil {
		return nil, err
	}
	return gatedBuilding{b, g.gate}, nil
}

type gatedBuilding struct {
	building
	gate chan struct{}
}

func (g gatedBuilding) Wait(ctx context.Context) (*workspace.Workspace, error) {
	select {
	case <-g.gate:
	case <-ctx.Done():
		return nil, ctx.Err()
	}
	return g.building.Wait(ctx)
}

// An admitted task's snapshot is finished in the background; the Preparing
// pass creates the container meanwhile and starts it only once the
// workspace is ready.
func TestTaskReconcile_CreatesContainerWhileSnapshotFinishes(t *testing.T) {
	h := newHarness(t)
	gate := make(chan struct{})
	var release sync.Once
	open := func() { release.Do(func() { close(gate) }) }
	t.Cleanup(open) // before the harness waits for its builds, even on failure
	h.s.tasks.workspaces = gatedWorkspaces{gate: gate}
	files := map[string]string{}
	for i := range 50 {
		files[fmt.Sprintf("d%d/f%d.txt", i%5, i)] = strings.Repeat("x", i)
	}
	h.repo = testutil.NewRepo(t, t.TempDir(), files)
	task := h.createTask("true", func(t *models.Task) { t.Spec.IncludeUncommitted = true })

	h.reconcile(task.ID)
	got := h.task(task.ID)
	if got.Status.Phase != models.TaskPhasePreparing || got.Status.RunNumber != 1 {
		t.Fatalf("after admission: %+v", got.Status)
	}
	if h.s.tasks.builds.get(task.ID) == nil {
		t.Fatal("the admitted task's snapshot is not being built in the background")
	}
	name := engine.ContainerName(task.ID, 1)
	passDone := make(chan struct{})
	go func() {
		defer close(passDone)
		_, _ = h.reconcileErr(task.ID)
	}()
	// The container is created while the snapshot is held back, and not
	// started until it is released.
	counts := func() (creates, starts int) {
		h.fe.mu.Lock()
		defer h.fe.mu.Unlock()
		return h.fe.Creates, h.fe.Starts
	}
	if _, ok := testutil.Poll(t, 30*time.Second, 5*time.Millisecond, func() (int, error) {
		c, _ := counts()
		return c, nil
	}, func(c int) bool { return c == 1 }); !ok {
		t.Fatal("the Preparing pass did not create the container while the snapshot was being recorded")
	}
	if _, starts := counts(); starts != 0 {
		t.Fatal("the container started before the workspace was ready")
	}
	open()
	<-passDone

	got = h.task(task.ID)
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

// Git blocked for good while a workspace is prepared (here a FIFO where git
// reads an ignore file) costs each pass at most its own timeout: the task says
// why it does not start and is retried, instead of the pass, its worker and
// the task's slot waiting forever. Once the cause is gone it starts.
func TestTaskReconcile_BlockedSnapshotIsRetriedAndSaysWhy(t *testing.T) {
	const passTimeout = 2 * time.Second
	h := newHarness(t, func(c *config.Config) { c.Intervals.ReconcileTimeout = config.D(passTimeout) })
	fifo := filepath.Join(h.repo, "src", ".gitignore")
	if err := syscall.Mkfifo(fifo, 0o644); err != nil {
		t.Fatal(err)
	}
	task := h.createTask("true", func(t *models.Task) { t.Spec.IncludeUncommitted = true })
	pass := func() {
		t.Helper()
		done := make(chan error, 1)
		go func() {
			ctx, cancel := context.WithTimeout(h.ctx, passTimeout)
			defer cancel()
			_, err := (&taskReconciler{deps: h.s.tasks}).Reconcile(ctx, reconciler.Request{Key: task.ID})
			done <- err
		}()
		select {
		case <-done:
		case <-time.After(passTimeout + retryNoteTimeout + 5*time.Second):
			t.Fatal("a pass outlived its timeout: it waits for git blocked on a FIFO")
		}
	}

	pass() // Begin reads no ignore file: admitted, the snapshot blocked in the background
	if got := h.task(task.ID); got.Status.Phase != models.TaskPhasePreparing {
		t.Fatalf("after the first pass: %+v, want Preparing", got.Status)
	}
	var st models.TaskStatus
	for range 4 {
		pass()
		st = h.task(task.ID).Status
		if strings.Contains(st.Message, "git ls-files: no answer after") {
			break
		}
	}
	if st.Phase != models.TaskPhasePreparing || st.Reason != ReasonRetrying || !strings.HasSuffix(st.Message, "; retrying") ||
		!strings.Contains(st.Message, "git ls-files: no answer after ") {
		t.Fatalf("blocked snapshot: %s %s %q, want Preparing, %s, naming git ls-files", st.Phase, st.Reason, st.Message, ReasonRetrying)
	}

	if err := os.Remove(fifo); err != nil {
		t.Fatal(err)
	}
	testutil.WriteFile(t, fifo, "*.tmp\n")
	got := h.runUntil(task.ID, 30*time.Second, phaseIs(models.TaskPhaseRunning))
	if got.Status.Reason != "" || got.Status.Message != "" {
		t.Fatalf("running, yet still says %s %q", got.Status.Reason, got.Status.Message)
	}
	events, err := h.store.ListEvents(h.ctx, models.EventKindTask, task.ID, 0)
	if err != nil {
		t.Fatal(err)
	}
	retries := 0
	for _, e := range events {
		if e.Reason == ReasonRetrying {
			retries++
		}
	}
	if retries != 1 {
		t.Fatalf("%d %s events, want one for the streak: %+v", retries, ReasonRetrying, events)
	}
}
