package controllers

import (
	"context"
	"os"
	"path/filepath"
	"slices"
	"testing"
	"time"

	"github.com/claude-parallel/claude-parallel/config"
	"github.com/claude-parallel/claude-parallel/controllers/engine"
	"github.com/claude-parallel/claude-parallel/models"
	"github.com/claude-parallel/claude-parallel/reconciler"
)

func TestDecideContainer(t *testing.T) {
	now := time.Date(2026, 1, 1, 12, 0, 0, 0, time.UTC)
	maxAge := time.Hour
	live := ownerFacts{Exists: true, Phase: models.TaskPhaseRunning, RunNumber: 1}
	preparing := ownerFacts{Exists: true, Phase: models.TaskPhasePreparing, RunNumber: 1}
	done := ownerFacts{Exists: true, Phase: models.TaskPhaseSucceeded, RunNumber: 1}
	nextRun := ownerFacts{Exists: true, Phase: models.TaskPhaseRunning, RunNumber: 2}
	absent := ownerFacts{}
	old, young := now.Add(-2*time.Hour), now.Add(-time.Minute)
	cases := []struct {
		name  string
		c     containerFacts
		owner ownerFacts
		want  containerAction
	}{
		{"running, owned", containerFacts{Run: 1, Running: true}, live, containerKeep},
		{"running, owned by a run still preparing (crash before record)", containerFacts{Run: 1, Running: true}, preparing, containerKeep},
		{"running, task absent", containerFacts{Run: 1, Running: true}, absent, containerAdopt},
		{"running, task finished", containerFacts{Run: 1, Running: true}, done, containerAdopt},
		{"running, an older run", containerFacts{Run: 1, Running: true}, nextRun, containerAdopt},
		{"stopped long ago, task finished", containerFacts{Run: 1, FinishedAt: old}, done, containerRemove},
		{"stopped long ago, task absent", containerFacts{Run: 1, FinishedAt: old}, absent, containerRemove},
		{"stopped long ago, older run", containerFacts{Run: 1, FinishedAt: old}, nextRun, containerRemove},
		{"stopped recently, task finished", containerFacts{Run: 1, FinishedAt: young}, done, containerKeep},
		{"stopped long ago, task still running on it", containerFacts{Run: 1, FinishedAt: old}, live, containerKeep},
		{"created long ago, never started, no owner", containerFacts{Run: 1, CreatedAt: old}, absent, containerRemove},
		{"created, never started, owner preparing", containerFacts{Run: 1, CreatedAt: old}, preparing, containerKeep},
	}
	for _, c := range cases {
		if got := decideContainer(c.c, c.owner, now, maxAge); got != c.want {
			t.Errorf("%s: %s, want %s", c.name, got, c.want)
		}
	}
}

func (h *harness) reconcileContainer(name string) reconciler.Result {
	h.t.Helper()
	ctx, cancel := context.WithTimeout(h.ctx, 30*time.Second)
	defer cancel()
	res, err := h.s.containers.Reconcile(ctx, reconciler.Request{Key: name})
	if err != nil {
		h.t.Fatalf("reconcile container %s: %v", name, err)
	}
	return res
}

func TestContainerReconcile_AdoptsOrphanAndFollowsItsOutput(t *testing.T) {
	h := newHarness(t)
	orphanTask := models.NewTaskID()
	name := engine.ContainerName(orphanTask, 1)
	h.fe.Put(engine.ContainerInfo{Name: name, Labels: engine.Labels(h.store.InstallationID(), orphanTask, 1),
		State: engine.StateRunning, StartedAt: time.Now()})
	h.fe.Emit(name, "orphan says hi")

	for range 2 {
		h.reconcileContainer(name)
	}
	row, err := h.store.GetContainerByName(h.ctx, name)
	if err != nil || !row.Adopted || row.State != engine.StateRunning || row.TaskID != orphanTask {
		t.Fatalf("row %+v, %v", row, err)
	}
	if events, _ := h.store.ListEvents(h.ctx, models.EventKindContainer, name, 0); len(events) != 1 || events[0].Reason != "ContainerAdopted" {
		t.Fatalf("events %+v: want one adoption event", events)
	}
	if managed, adopted := h.s.containers.seen.counts(); managed != 0 || adopted != 1 {
		t.Errorf("counts managed %d adopted %d", managed, adopted)
	}
	path := filepath.Join(h.s.tasks.paths.TaskLogDir, "adopted", name+".log")
	deadline := time.Now().Add(5 * time.Second)
	for {
		b, _ := os.ReadFile(path)
		if lines := stripStamps(string(b)); slices.Equal(lines, []string{"orphan says hi"}) {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("adopted container's output not in %s: %q", path, b)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func TestContainerReconcile_RemovesOldStoppedKeepsYoung(t *testing.T) {
	h := newHarness(t, func(c *config.Config) { c.Retention.StoppedContainerMaxAge = config.D(time.Hour) })
	task := h.createTask("done")
	cur := h.task(task.ID)
	cur.Status.Phase, cur.Status.RunNumber = models.TaskPhaseSucceeded, 1
	if err := h.store.UpdateTaskStatus(h.ctx, cur); err != nil {
		t.Fatal(err)
	}
	store := h.store.InstallationID()
	oldName := engine.ContainerName(task.ID, 1)
	h.fe.Put(engine.ContainerInfo{Name: oldName, Labels: engine.Labels(store, task.ID, 1), State: engine.StateExited,
		FinishedAt: time.Now().Add(-2 * time.Hour)})
	youngName := engine.ContainerName(task.ID, 2)
	h.fe.Put(engine.ContainerInfo{Name: youngName, Labels: engine.Labels(store, task.ID, 2), State: engine.StateExited,
		FinishedAt: time.Now().Add(-time.Minute)})

	h.reconcileContainer(oldName)
	h.reconcileContainer(oldName)
	if h.fe.Count(oldName) != 0 {
		t.Fatalf("old stopped container not removed")
	}
	if _, err := h.store.GetContainerByName(h.ctx, oldName); err == nil {
		t.Fatalf("registry row of a removed container kept")
	}
	res := h.reconcileContainer(youngName)
	if h.fe.Count(youngName) != 1 {
		t.Fatalf("young stopped container removed")
	}
	if res.RequeueAfter < 58*time.Minute || res.RequeueAfter > 61*time.Minute {
		t.Errorf("requeue after %v, want about when it becomes removable", res.RequeueAfter)
	}
}

func TestContainerReconcile_NeverTouchesForeignContainers(t *testing.T) {
	h := newHarness(t, func(c *config.Config) { c.Retention.StoppedContainerMaxAge = config.D(time.Second) })
	id := models.NewTaskID()
	foreign := engine.ContainerName(id, 1)
	h.fe.Put(engine.ContainerInfo{Name: foreign, Labels: engine.Labels("other-installation", id, 1), State: engine.StateRunning})
	unlabelled := "someone-elses-container"
	h.fe.Put(engine.ContainerInfo{Name: unlabelled, State: engine.StateExited, FinishedAt: time.Now().Add(-time.Hour)})
	for _, n := range []string{foreign, unlabelled} {
		h.reconcileContainer(n)
		if h.fe.Count(n) != 1 {
			t.Fatalf("%s removed", n)
		}
		if _, err := h.store.GetContainerByName(h.ctx, n); err == nil {
			t.Fatalf("%s registered", n)
		}
	}
	if h.fe.Stops+h.fe.Removes != 0 {
		t.Fatalf("foreign containers touched")
	}
}

func TestContainerReconcile_GoneContainerFailsItsRunningTask(t *testing.T) {
	h := newHarness(t)
	task, name := h.running("sleep 100")
	h.reconcileContainer(name)
	if row, err := h.store.GetContainerByName(h.ctx, name); err != nil || row.Adopted {
		t.Fatalf("owned container row %+v, %v", row, err)
	}
	if managed, adopted := h.s.containers.seen.counts(); managed != 1 || adopted != 0 {
		t.Errorf("counts managed %d adopted %d", managed, adopted)
	}
	if err := h.fe.Remove(h.ctx, name, true); err != nil {
		t.Fatal(err)
	}
	h.reconcileContainer(name)
	if _, err := h.store.GetContainerByName(h.ctx, name); err == nil {
		t.Fatalf("row of a vanished container kept")
	}
	got := h.runUntil(task.ID, 5*time.Second, finished)
	if got.Status.Reason != ReasonVanished {
		t.Fatalf("status %+v", got.Status)
	}
}

// TestSystem_RunsTasksWithFakeEngine runs the whole System — leader lease,
// queues, wake-ups, event watch — over the fake engine.
func TestSystem_RunsTasksWithFakeEngine(t *testing.T) {
	h := newHarness(t, func(c *config.Config) {
		c.MaxParallel = 2
		c.Intervals.LeaseDuration = config.D(3 * time.Second)
		c.Intervals.LeaseRenew = config.D(time.Second)
		c.Intervals.Resync = config.D(2 * time.Second)
	})
	h.s.tasks.followers.Stop() // Run starts its own term
	h.fe.AutoRun = func(spec engine.RunSpec) ([]string, int, bool) {
		_ = os.WriteFile(filepath.Join(workDirOf(spec), spec.Name+".txt"), []byte("x\n"), 0o644)
		return []string{"working", "done"}, 0, true
	}
	ctx, cancel := context.WithCancel(h.ctx)
	done := make(chan error, 1)
	go func() { done <- h.s.Run(ctx) }()
	defer func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("run: %v", err)
		}
	}()
	var ids []string
	for range 5 {
		task := h.createTask("work")
		ids = append(ids, task.ID)
		h.s.Notify(KindTask, task.ID)
	}
	deadline := time.Now().Add(20 * time.Second)
	for _, id := range ids {
		for {
			got := h.task(id)
			if got.Status.Finished {
				if got.Status.Phase != models.TaskPhaseSucceeded || got.Status.DiffID == "" {
					t.Fatalf("task %s: %+v", id, got.Status)
				}
				break
			}
			if time.Now().After(deadline) {
				t.Fatalf("task %s not finished: %+v", id, got.Status)
			}
			time.Sleep(20 * time.Millisecond)
		}
	}
	st := h.s.Status()
	if !st.IsLeader || len(st.Controllers) < 2 {
		t.Errorf("status %+v", st)
	}
}
