package controllers

import (
	"context"
	"os"
	"path/filepath"
	"reflect"
	"sync"
	"testing"
	"time"

	"go.uber.org/zap/zaptest"

	"github.com/claude-parallel/claude-parallel/config"
	"github.com/claude-parallel/claude-parallel/models"
	"github.com/claude-parallel/claude-parallel/reconciler"
	"github.com/claude-parallel/claude-parallel/test/testutil"
)

// harness drives the controllers of one System by hand: a real SQLite store
// and real git repositories in t.TempDir(), the fake engine for Docker.
type harness struct {
	t     testing.TB
	ctx   context.Context
	cfg   *config.Config
	store *models.Store
	fe    *fakeEngine
	s     *System
	repo  string

	mu    sync.Mutex
	steps []string // "<step> <task> <run>" reported by AfterStep
}

func newHarness(t testing.TB, tune ...func(*config.Config)) *harness {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	t.Cleanup(cancel)
	home := t.TempDir()
	cfg := config.Default()
	cfg.Home = home
	cfg.DBPath = filepath.Join(home, "data", "claude-parallel.db")
	cfg.Log.Dir = filepath.Join(home, "logs")
	cfg.MaxParallel = 2
	cfg.DefaultAgent = "shell"
	cfg.AllowedRoots = []string{os.TempDir()} // the test repositories are made under t.TempDir()
	for _, f := range tune {
		f(cfg)
	}
	store, err := models.Open(ctx, cfg.DBPath, models.Options{})
	if err != nil {
		t.Fatalf("open store: %v", err)
	}
	t.Cleanup(func() { _ = store.Close() })
	h := &harness{t: t, ctx: ctx, cfg: cfg, store: store, fe: newFakeEngine()}
	s, err := newSystem(Deps{
		Config: cfg, Store: store, Logger: zaptest.NewLogger(t),
		AfterStep: func(step Step, taskID string, run int) {
			h.mu.Lock()
			h.steps = append(h.steps, string(step)+" "+taskID)
			h.mu.Unlock()
		},
	}, ports{rt: h.fe, workspaces: hostWorkspaces{}, diffs: workspaceDiffs{}})
	if err != nil {
		t.Fatalf("new system: %v", err)
	}
	s.tasks.stopGrace = 0
	s.tasks.progressEvery = 20 * time.Millisecond
	s.tasks.drainWait = 5 * time.Second
	s.tasks.followers.Start(ctx)
	t.Cleanup(s.tasks.followers.Stop)
	// Workspaces begun while a task is Pending finish in the background; the
	// test's directories must outlive them.
	t.Cleanup(s.tasks.builds.stop)
	h.s = s
	h.repo = testutil.NewRepo(t, t.TempDir(), map[string]string{"README.md": "hello\n", "src/main.txt": "one\ntwo\n"})
	return h
}

// createTask stores a task intent for the harness repository.
func (h *harness) createTask(prompt string, mutate ...func(*models.Task)) *models.Task {
	h.t.Helper()
	task := &models.Task{Spec: models.TaskSpec{Prompt: prompt, WorkFolder: h.repo, Agent: "shell"}}
	for _, m := range mutate {
		m(task)
	}
	got, _, err := h.store.CreateTask(h.ctx, task)
	if err != nil {
		h.t.Fatalf("create task: %v", err)
	}
	return got
}

func (h *harness) task(id string) *models.Task {
	h.t.Helper()
	t, err := h.store.GetTask(h.ctx, id)
	if err != nil {
		h.t.Fatalf("get task: %v", err)
	}
	return t
}

// reconcile runs one task pass and fails the test on an error.
func (h *harness) reconcile(id string) reconciler.Result {
	h.t.Helper()
	res, err := h.reconcileErr(id)
	if err != nil {
		h.t.Fatalf("reconcile %s: %v", id, err)
	}
	return res
}

func (h *harness) reconcileErr(id string) (reconciler.Result, error) {
	ctx, cancel := context.WithTimeout(h.ctx, 30*time.Second)
	defer cancel()
	return (&taskReconciler{deps: h.s.tasks}).Reconcile(ctx, reconciler.Request{Key: id})
}

// diffPass runs the diff controller's pass the task controller's Notify asks
// for (the harness runs no diff controller of its own), twice: the second
// must change nothing.
func (h *harness) diffPass(id string) *models.Diff {
	h.t.Helper()
	r := h.s.diffRec
	if _, err := r.Reconcile(h.ctx, reconciler.Request{Key: id}); err != nil {
		h.t.Fatalf("reconcile diff %s: %v", id, err)
	}
	first, err := h.store.GetDiff(h.ctx, id)
	if err != nil {
		h.t.Fatal(err)
	}
	if _, err := r.Reconcile(h.ctx, reconciler.Request{Key: id}); err != nil {
		h.t.Fatalf("reconcile diff %s again: %v", id, err)
	}
	again, err := h.store.GetDiff(h.ctx, id)
	if err != nil {
		h.t.Fatal(err)
	}
	if again.ResourceVersion != first.ResourceVersion {
		h.t.Errorf("second diff pass wrote again: %+v → %+v", first.Status, again.Status)
	}
	return again
}

// stepTwice runs passes until the task's status moves on, then rewinds the
// status to what it was before — as if the process had died just before its
// status write — and does it again. Both runs must end in the same status,
// and the world must not have grown a second container.
func (h *harness) stepTwice(id string) *models.Task {
	h.t.Helper()
	before := h.task(id)
	first := h.untilChanged(id, before.Status)
	h.rewind(id, before.Status)
	second := h.untilChanged(id, before.Status)
	if a, b := stableStatus(first.Status), stableStatus(second.Status); !reflect.DeepEqual(a, b) {
		h.t.Fatalf("pass is not idempotent:\nfirst:  %+v\nsecond: %+v", a, b)
	}
	if d := h.fe.duplicates(); len(d) > 0 {
		h.t.Fatalf("second container for %v", d)
	}
	return second
}

// untilChanged reconciles id until its status differs from st (the
// follower's progress writes aside), at most a few times.
func (h *harness) untilChanged(id string, st models.TaskStatus) *models.Task {
	h.t.Helper()
	want := stableStatus(st)
	for i := 0; i < 50; i++ {
		h.reconcile(id)
		t := h.task(id)
		if !reflect.DeepEqual(stableStatus(t.Status), want) {
			return t
		}
		time.Sleep(2 * time.Millisecond)
	}
	h.t.Fatalf("task %s: status never moved from %+v", id, st)
	return nil
}

// rewind writes st back as the task's status.
func (h *harness) rewind(id string, st models.TaskStatus) {
	h.t.Helper()
	cur := h.task(id)
	cur.Status = st
	if err := h.store.UpdateTaskStatus(h.ctx, cur); err != nil {
		h.t.Fatalf("rewind status: %v", err)
	}
}

// stableStatus blanks the fields that legitimately differ between two runs of
// the same step (clocks, versions).
func stableStatus(st models.TaskStatus) models.TaskStatus {
	st.RunStartedAt, st.EndTime = nil, nil
	st.ObservedGeneration = 0
	return st
}

// runUntil reconciles id until cond holds, failing after timeout.
func (h *harness) runUntil(id string, timeout time.Duration, cond func(*models.Task) bool) *models.Task {
	h.t.Helper()
	deadline := time.Now().Add(timeout)
	for {
		t := h.task(id)
		if cond(t) {
			return t
		}
		if time.Now().After(deadline) {
			h.t.Fatalf("task %s: condition not met within %s; status %+v", id, timeout, t.Status)
		}
		h.reconcile(id)
		h.notifiedDiffPasses(id)
		time.Sleep(5 * time.Millisecond)
	}
}

// notifiedDiffPasses plays the diff controller (the harness runs none) for
// the diffs a collecting run of task id asks it to supersede: its older
// diffs still awaiting a decision.
func (h *harness) notifiedDiffPasses(id string) {
	h.t.Helper()
	t := h.task(id)
	if t.Status.Phase != models.TaskPhaseCollecting {
		return
	}
	diffs, err := h.store.ListDiffs(h.ctx, models.DiffFilter{TaskID: id})
	if err != nil {
		h.t.Fatal(err)
	}
	for _, d := range olderAwaiting(diffs, t.Status.RunNumber) {
		if _, err := h.s.diffRec.Reconcile(h.ctx, reconciler.Request{Key: d}); err != nil {
			h.t.Fatalf("reconcile diff %s: %v", d, err)
		}
	}
}

func phaseIs(p models.TaskPhase) func(*models.Task) bool {
	return func(t *models.Task) bool { return t.Status.Phase == p }
}

func finished(t *models.Task) bool { return t.Status.Finished }

func (h *harness) stepsSeen() []string {
	h.mu.Lock()
	defer h.mu.Unlock()
	return append([]string(nil), h.steps...)
}

func (h *harness) logFile(id string, run int) string {
	h.t.Helper()
	b, err := os.ReadFile(h.s.tasks.taskLogPath(id, run))
	if err != nil {
		h.t.Fatalf("read task log: %v", err)
	}
	return string(b)
}
