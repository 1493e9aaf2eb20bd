package controllers

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/claude-parallel/claude-parallel/config"
	"github.com/claude-parallel/claude-parallel/controllers/engine"
	"github.com/claude-parallel/claude-parallel/controllers/workspace"
	"github.com/claude-parallel/claude-parallel/models"
	"github.com/claude-parallel/claude-parallel/test/testutil"
)

// workDir is where the fake container's /workspace lives on the host.
func workDirOf(spec engine.RunSpec) string {
	for _, m := range spec.Mounts {
		if m.Target == "/workspace" {
			return m.Source
		}
	}
	return ""
}

// countingDiffs counts the captures it makes.
type countingDiffs struct {
	workspaceDiffs
	captures atomic.Int32
}

func (c *countingDiffs) CaptureDiff(ctx context.Context, ws *workspace.Workspace, run int, maxPatchBytes int64) (*models.Diff, error) {
	c.captures.Add(1)
	return c.workspaceDiffs.CaptureDiff(ctx, ws, run, maxPatchBytes)
}

func TestTaskReconcile_RunsToSucceededWithDiffAndLog(t *testing.T) {
	h := newHarness(t)
	counted := &countingDiffs{}
	h.s.tasks.diffs = counted
	task := h.createTask("echo hi > new.txt")
	name := engine.ContainerName(task.ID, 1)

	got := h.stepTwice(task.ID)
	if got.Status.Phase != models.TaskPhasePreparing || got.Status.RunNumber != 1 || got.Status.ContainerName != name {
		t.Fatalf("after admission: %+v", got.Status)
	}

	got = h.stepTwice(task.ID)
	if got.Status.Phase != models.TaskPhaseRunning || got.Status.ContainerID == "" || got.Status.BaseCommit == "" {
		t.Fatalf("after start: %+v", got.Status)
	}
	if h.fe.Count(name) != 1 || h.fe.Starts != 1 {
		t.Fatalf("containers %d, starts %d: want one container started once", h.fe.Count(name), h.fe.Starts)
	}
	spec := h.fe.Spec(name)
	if !reflect.DeepEqual(spec.Cmd, []string{"sh", "-c", "echo hi > new.txt"}) {
		t.Errorf("cmd = %q", spec.Cmd)
	}
	if spec.User != "10001:10001" && os.Geteuid() == 0 {
		t.Errorf("user = %q, want the profile's non-root user", spec.User)
	}
	ws := got.Status.WorkspacePath
	wantMounts := []engine.Mount{{Source: filepath.Join(ws, "work"), Target: "/workspace"}, {Source: filepath.Join(ws, "home"), Target: agentHome}}
	if !reflect.DeepEqual(spec.Mounts, wantMounts) {
		t.Errorf("mounts = %+v, want %+v", spec.Mounts, wantMounts)
	}
	if err := os.WriteFile(filepath.Join(workDirOf(spec), "new.txt"), []byte("hi\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	h.fe.Emit(name, "line 1", "", "line 3")
	h.fe.Exit(name, 0)

	got = h.stepTwice(task.ID)
	if got.Status.Phase != models.TaskPhaseCollecting || got.Status.ExitCode == nil || *got.Status.ExitCode != 0 {
		t.Fatalf("after exit: %+v", got.Status)
	}
	if lines := stripStamps(h.logFile(task.ID, 1)); !reflect.DeepEqual(lines, []string{"line 1", "", "line 3"}) {
		t.Fatalf("log file lines = %q", lines)
	}

	got = h.stepTwice(task.ID)
	st := got.Status
	if st.Phase != models.TaskPhaseSucceeded || st.State != models.TaskStateCompleted || st.DiffID == "" || st.Reason != ReasonCompleted {
		t.Fatalf("after collect: %+v", st)
	}
	d, err := h.store.GetDiff(h.ctx, st.DiffID)
	if err != nil {
		t.Fatal(err)
	}
	if d.FilesChanged != 1 || d.Files[0].Path != "new.txt" || !strings.Contains(string(d.Patch), "+hi") {
		t.Fatalf("diff = %+v\n%s", d, d.Patch)
	}
	if diffs, _ := h.store.ListDiffs(h.ctx, models.DiffFilter{TaskID: task.ID}); len(diffs) != 1 {
		t.Fatalf("%d diffs, want 1", len(diffs))
	}
	// stepTwice ran the collect pass again as if its status write had been
	// lost: it found the run's diff stored and did not capture it again.
	if n := counted.captures.Load(); n != 1 {
		t.Errorf("%d captures for one run, want 1", n)
	}
	el, err := h.store.GetExecutionLog(h.ctx, task.ID, 1)
	if err != nil || !el.Complete || el.Path != h.s.tasks.taskLogPath(task.ID, 1) || el.LastLogTime == nil {
		t.Fatalf("execution log = %+v, %v", el, err)
	}

	// A finished task needs no more passes.
	h.reconcile(task.ID)
	if again := h.task(task.ID); again.ResourceVersion != got.ResourceVersion {
		t.Errorf("a settled task was written again")
	}
	for _, step := range Steps() {
		if !slices.Contains(h.stepsSeen(), string(step)+" "+task.ID) {
			t.Errorf("step %s never reported", step)
		}
	}
	events, _ := h.store.ListEvents(h.ctx, models.EventKindTask, task.ID, 0)
	var reasons []string
	for _, e := range events {
		reasons = append(reasons, e.Reason)
	}
	for _, want := range []string{"Preparing", "Running", "Collecting", "DiffCaptured", "Succeeded"} {
		if !slices.Contains(reasons, want) {
			t.Errorf("event %s missing from %v", want, reasons)
		}
	}
}

func TestTaskReconcile_AdoptsContainerCreatedBeforeCrash(t *testing.T) {
	for _, state := range []string{engine.StateCreated, engine.StateRunning, engine.StateExited} {
		t.Run(state, func(t *testing.T) {
			h := newHarness(t)
			task := h.createTask("true")
			h.stepTwice(task.ID) // admitted
			name := engine.ContainerName(task.ID, 1)
			// A leader created (and maybe started) the container, then died
			// before recording it.
			h.fe.Put(engine.ContainerInfo{Name: name, Labels: engine.Labels(h.store.InstallationID(), task.ID, 1),
				State: state, StartedAt: time.Now(), FinishedAt: time.Now()})
			got := h.stepTwice(task.ID)
			if got.Status.Phase != models.TaskPhaseRunning {
				t.Fatalf("status %+v", got.Status)
			}
			if h.fe.Count(name) != 1 {
				t.Fatalf("%d containers named %s", h.fe.Count(name), name)
			}
			wantStarts := 0
			if state == engine.StateCreated {
				wantStarts = 1
			}
			if h.fe.Starts != wantStarts {
				t.Errorf("starts = %d, want %d", h.fe.Starts, wantStarts)
			}
		})
	}
}

func TestTaskReconcile_NameHeldByForeignContainerFails(t *testing.T) {
	h := newHarness(t)
	task := h.createTask("true")
	h.stepTwice(task.ID)
	name := engine.ContainerName(task.ID, 1)
	h.fe.Put(engine.ContainerInfo{Name: name, Labels: engine.Labels("another-store", task.ID, 1), State: engine.StateRunning})
	got := h.stepTwice(task.ID)
	if got.Status.Phase != models.TaskPhaseFailed || got.Status.Reason != ReasonNameTaken {
		t.Fatalf("status %+v", got.Status)
	}
	if h.fe.Stops != 0 || h.fe.Removes != 0 {
		t.Errorf("a foreign container was touched")
	}
}

func TestTaskReconcile_StartFailures(t *testing.T) {
	t.Run("transient errors are retried", func(t *testing.T) {
		h := newHarness(t)
		task := h.createTask("true")
		h.stepTwice(task.ID)
		h.fe.CreateErr = errors.New("daemon busy")
		if _, err := h.reconcileErr(task.ID); err == nil {
			t.Fatal("want the create error")
		}
		h.fe.StartErr = errors.New("daemon busy")
		if _, err := h.reconcileErr(task.ID); err == nil {
			t.Fatal("want the start error")
		}
		if got := h.task(task.ID); got.Status.Phase != models.TaskPhasePreparing {
			t.Fatalf("status %+v", got.Status)
		}
		got := h.stepTwice(task.ID)
		if got.Status.Phase != models.TaskPhaseRunning || h.fe.Count(got.Status.ContainerName) != 1 {
			t.Fatalf("status %+v", got.Status)
		}
	})
	t.Run("a refused start fails the task", func(t *testing.T) {
		h := newHarness(t)
		task := h.createTask("true")
		h.stepTwice(task.ID)
		h.fe.StartRefusal = `exec: "sh": executable file not found in $PATH`
		got := h.stepTwice(task.ID)
		if got.Status.Phase != models.TaskPhaseFailed || got.Status.Reason != ReasonStartFailed ||
			!strings.Contains(got.Status.Message, "executable file not found") {
			t.Fatalf("status %+v", got.Status)
		}
	})
	t.Run("a missing image fails the task", func(t *testing.T) {
		h := newHarness(t)
		h.fe.Images = map[string]bool{}
		task := h.createTask("true")
		h.stepTwice(task.ID)
		got := h.stepTwice(task.ID)
		if got.Status.Phase != models.TaskPhaseFailed || got.Status.Reason != ReasonImageNotFound {
			t.Fatalf("status %+v", got.Status)
		}
	})
	t.Run("an unknown profile fails the task", func(t *testing.T) {
		h := newHarness(t)
		task := h.createTask("true", func(t *models.Task) { t.Spec.Agent = "nope" })
		// Refused while still waiting for a slot: a spec that cannot run
		// never holds one.
		got := h.stepTwice(task.ID)
		if got.Status.Phase != models.TaskPhaseFailed || got.Status.Reason != ReasonInvalidSpec {
			t.Fatalf("status %+v", got.Status)
		}
	})
	t.Run("a folder that is not a repository fails the task", func(t *testing.T) {
		h := newHarness(t)
		task := h.createTask("true", func(t *models.Task) { t.Spec.WorkFolder = h.t.TempDir() })
		// The snapshot is taken while the task waits, so a bad folder fails
		// it before it is admitted.
		got := h.stepTwice(task.ID)
		if got.Status.Phase != models.TaskPhaseFailed || got.Status.Reason != ReasonPrepareFailed || got.Status.RunNumber != 0 {
			t.Fatalf("status %+v", got.Status)
		}
	})
}

// running brings a new task to Running and returns it with its container name.
func (h *harness) running(prompt string, mutate ...func(*models.Task)) (*models.Task, string) {
	h.t.Helper()
	task := h.createTask(prompt, mutate...)
	h.stepTwice(task.ID)
	got := h.stepTwice(task.ID)
	if got.Status.Phase != models.TaskPhaseRunning {
		h.t.Fatalf("task not running: %+v", got.Status)
	}
	return got, got.Status.ContainerName
}

func TestTaskReconcile_FailingCommandFailsWithExitCode(t *testing.T) {
	h := newHarness(t)
	task, name := h.running("exit 3")
	h.fe.Exit(name, 3)
	h.stepTwice(task.ID)
	got := h.stepTwice(task.ID)
	if got.Status.Phase != models.TaskPhaseFailed || got.Status.Message != "exited with code 3" || got.Status.State != models.TaskStateFailed {
		t.Fatalf("status %+v", got.Status)
	}
}

// A daemon without live-restore kills the containers on its way down, while
// the engine is away: the run fails saying so, keeping what it changed.
func TestTaskReconcile_StoppedByDaemonRestart(t *testing.T) {
	h := newHarness(t)
	task, name := h.running("sleep 100")
	if err := os.WriteFile(filepath.Join(workDirOf(h.fe.Spec(name)), "half.txt"), []byte("half\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	// The daemon stopped it on its way down and then went away.
	h.fe.Exit(name, 137)
	h.fe.EngineOutages = []engine.Outage{{From: time.Now().Add(time.Second)}}
	got := h.runUntil(task.ID, 10*time.Second, finished)
	if got.Status.Phase != models.TaskPhaseFailed || got.Status.Reason != ReasonDaemonRestart ||
		!strings.HasPrefix(got.Status.Message, "container stopped by a Docker daemon restart (exit 137)") ||
		got.Status.DiffID == "" || got.Status.RunNumber != 1 {
		t.Fatalf("status %+v", got.Status)
	}
	if n := h.fe.Count(engine.ContainerName(task.ID, 2)); n != 0 {
		t.Errorf("the run was retried in a second container")
	}
}

// The end is read while the daemon shuts down: it refuses new connections.
func TestTaskReconcile_StoppedWhileDaemonShutsDown(t *testing.T) {
	h := newHarness(t)
	task, name := h.running("sleep 100")
	h.fe.ShuttingDown = true
	h.fe.Exit(name, 143)
	got := h.runUntil(task.ID, 10*time.Second, finished)
	if got.Status.Phase != models.TaskPhaseFailed || got.Status.Reason != ReasonDaemonRestart ||
		!strings.HasPrefix(got.Status.Message, "container stopped by a Docker daemon restart (exit 143)") {
		t.Fatalf("status %+v", got.Status)
	}
}

// With live-restore a run may end while the daemon is away: its exit code
// stands, and the timeline warns that Docker dropped what it printed meanwhile.
func TestTaskReconcile_EndedWhileDaemonAway(t *testing.T) {
	h := newHarness(t)
	task, name := h.running("sleep 100")
	h.fe.EngineOutages = []engine.Outage{{From: time.Now().Add(-time.Second)}}
	h.fe.Exit(name, 0)
	got := h.runUntil(task.ID, 10*time.Second, finished)
	if got.Status.Phase != models.TaskPhaseSucceeded {
		t.Fatalf("status %+v", got.Status)
	}
	events, _ := h.store.ListEvents(h.ctx, models.EventKindTask, task.ID, 0)
	if !slices.ContainsFunc(events, func(e models.Event) bool { return e.Reason == "EndedWhileDockerAway" }) {
		t.Errorf("no EndedWhileDockerAway event in %+v", events)
	}
}

// Killed from outside while the daemon is up: the exit code speaks.
func TestTaskReconcile_KilledFromOutside(t *testing.T) {
	h := newHarness(t)
	task, name := h.running("sleep 100")
	h.fe.Exit(name, 137)
	got := h.runUntil(task.ID, 10*time.Second, finished)
	if got.Status.Phase != models.TaskPhaseFailed || got.Status.Reason != ReasonExitCode || got.Status.Message != "exited with code 137" {
		t.Fatalf("status %+v", got.Status)
	}
}

func TestTaskReconcile_NoChanges(t *testing.T) {
	h := newHarness(t)
	task, name := h.running("true")
	h.fe.Exit(name, 0)
	got := h.runUntil(task.ID, 10*time.Second, finished)
	if got.Status.Phase != models.TaskPhaseSucceeded || got.Status.Reason != ReasonNoChanges ||
		got.Status.Message != "no changes" || got.Status.DiffID != "" {
		t.Fatalf("status %+v", got.Status)
	}
}

func TestTaskReconcile_PatchTooLargeSucceedsWithReason(t *testing.T) {
	h := newHarness(t, func(c *config.Config) { c.MaxPatchBytes = 64 })
	task, name := h.running("big")
	big := strings.Repeat("a line of text\n", 100)
	if err := os.WriteFile(filepath.Join(workDirOf(h.fe.Spec(name)), "big.txt"), []byte(big), 0o644); err != nil {
		t.Fatal(err)
	}
	h.fe.Exit(name, 0)
	got := h.runUntil(task.ID, 10*time.Second, finished)
	if got.Status.Phase != models.TaskPhaseSucceeded || got.Status.Reason != ReasonPatchTooLarge ||
		!strings.Contains(got.Status.Message, "limit 64") || got.Status.DiffID != "" {
		t.Fatalf("status %+v", got.Status)
	}
	// The message says no diff was kept and how to reach the result; the
	// command it gives works on the user's repository.
	work := workDirOf(h.fe.Spec(name))
	gitDir := filepath.Join(got.Status.WorkspacePath, "git")
	branch := workspace.BranchName(task.ID)
	fetch := fmt.Sprintf("git -C %s fetch %s %s:%s", h.repo, gitDir, workspace.RunRef(1), branch)
	if msg := got.Status.Message; !strings.HasPrefix(msg, "no diff was kept") || !strings.Contains(msg, work) || !strings.Contains(msg, "`"+fetch+"`") {
		t.Fatalf("message %q: want it to say no diff was kept, name %s and give `%s`", msg, work, fetch)
	}
	testutil.Git(t, h.repo, "fetch", "--quiet", gitDir, workspace.RunRef(1)+":"+branch)
	if got := testutil.Git(t, h.repo, "show", branch+":big.txt"); got != strings.TrimSuffix(big, "\n") {
		t.Errorf("big.txt on the fetched branch: %d bytes, want the run's %d", len(got), len(big))
	}
}

// A run that leaves a FIFO where git reads its rules cannot be captured: it
// fails at once with a reason naming the file, instead of a capture that
// waits in git until its timeout, again and again.
func TestTaskReconcile_UncapturableWorkTreeFails(t *testing.T) {
	h := newHarness(t)
	task, name := h.running("mkfifo src/.gitignore")
	if err := syscall.Mkfifo(filepath.Join(workDirOf(h.fe.Spec(name)), "src", ".gitignore"), 0o644); err != nil {
		t.Fatal(err)
	}
	h.fe.Exit(name, 0)
	got := h.runUntil(task.ID, 20*time.Second, finished)
	if got.Status.Phase != models.TaskPhaseFailed || got.Status.Reason != ReasonUncapturable ||
		!strings.Contains(got.Status.Message, "src/.gitignore is a named pipe (FIFO)") || got.Status.DiffID != "" {
		t.Fatalf("status %+v", got.Status)
	}
}

func TestTaskReconcile_ContainerVanished(t *testing.T) {
	for _, how := range []string{"removed", "inspect says not found"} {
		t.Run(how, func(t *testing.T) {
			h := newHarness(t)
			task, name := h.running("sleep 100")
			if how == "removed" {
				if err := h.fe.Remove(h.ctx, name, true); err != nil {
					t.Fatal(err)
				}
			} else {
				h.fe.VanishOnInspect = 1
			}
			h.reconcile(task.ID)
			got := h.task(task.ID)
			if got.Status.Phase != models.TaskPhaseFailed || got.Status.Reason != ReasonVanished || got.Status.Message != "container vanished" {
				t.Fatalf("status %+v", got.Status)
			}
		})
	}
}

func TestTaskReconcile_DeadlineStopsContainer(t *testing.T) {
	h := newHarness(t)
	task, name := h.running("sleep 100", func(t *models.Task) { t.Spec.TimeoutSeconds = 60 })
	res := h.reconcile(task.ID)
	if res.RequeueAfter <= 0 || res.RequeueAfter > h.cfg.Intervals.Resync.Duration {
		t.Errorf("a running task should be looked at again by its deadline or resync, got %v", res.RequeueAfter)
	}
	// Pretend the run started long ago.
	cur := h.task(task.ID)
	past := time.Now().Add(-2 * time.Minute).UTC()
	cur.Status.RunStartedAt = &past
	if err := h.store.UpdateTaskStatus(h.ctx, cur); err != nil {
		t.Fatal(err)
	}
	got := h.stepTwice(task.ID)
	if got.Status.Phase != models.TaskPhaseCollecting || got.Status.Reason != ReasonTimedOut || h.fe.Stops == 0 {
		t.Fatalf("status %+v, stops %d", got.Status, h.fe.Stops)
	}
	if info, _ := h.fe.Inspect(h.ctx, name); info.Running() {
		t.Fatalf("container still running")
	}
	got = h.stepTwice(task.ID)
	if got.Status.Phase != models.TaskPhaseTimedOut || got.Status.State != models.TaskStateTimedOut ||
		got.Status.Message != "timed out after 1m0s" {
		t.Fatalf("status %+v", got.Status)
	}
}

// A paused container leaves its task running: the task says so (reason
// ContainerPaused) on the next pass, which comes within one resync, and the
// line goes when it runs again. Cancel and the deadline still end the run.
func TestTaskReconcile_PausedContainerIsShown(t *testing.T) {
	h := newHarness(t)
	task, name := h.running("sleep 100", func(t *models.Task) { t.Spec.TimeoutSeconds = 60 })
	h.fe.SetState(name, engine.StatePaused, "pause")
	res := h.reconcile(task.ID)
	got := h.task(task.ID)
	if got.Status.Phase != models.TaskPhaseRunning || got.Status.State != models.TaskStateRunning ||
		got.Status.Reason != ReasonPaused || !strings.Contains(got.Status.Message, "docker unpause "+name) {
		t.Fatalf("paused: %+v, want Running with reason %s", got.Status, ReasonPaused)
	}
	if res.RequeueAfter <= 0 || res.RequeueAfter > h.cfg.Intervals.Resync.Duration {
		t.Errorf("a paused run should be looked at again within a resync, got %v", res.RequeueAfter)
	}
	h.reconcile(task.ID)
	if again := h.task(task.ID); again.ResourceVersion != got.ResourceVersion {
		t.Fatalf("a second pass on the paused run wrote again: %+v", again.Status)
	}
	h.fe.SetState(name, engine.StateRunning, "unpause")
	if got := h.stepTwice(task.ID); got.Status.Reason != "" || got.Status.Message != "" || got.Status.Phase != models.TaskPhaseRunning {
		t.Fatalf("unpaused: %+v, want the pause line gone", got.Status)
	}
	if reasons := dtEventReasons(t, h.store, models.EventKindTask, task.ID); !slices.Contains(reasons, ReasonPaused) ||
		!slices.Contains(reasons, "ContainerUnpaused") {
		t.Errorf("timeline %v, want %s and ContainerUnpaused", reasons, ReasonPaused)
	}

	t.Run("cancel", func(t *testing.T) {
		h := newHarness(t)
		task, name := h.running("sleep 100")
		h.fe.SetState(name, engine.StatePaused, "pause")
		h.reconcile(task.ID)
		if _, err := h.store.UpdateTaskSpec(h.ctx, task.ID, func(t *models.Task) error {
			t.Spec.DesiredState = models.TaskDesiredCancel
			return nil
		}); err != nil {
			t.Fatal(err)
		}
		if got := h.runUntil(task.ID, 10*time.Second, finished); got.Status.Phase != models.TaskPhaseCancelled {
			t.Fatalf("cancel of a paused run: %+v", got.Status)
		}
	})
	t.Run("deadline", func(t *testing.T) {
		h := newHarness(t)
		task, name := h.running("sleep 100", func(t *models.Task) { t.Spec.TimeoutSeconds = 60 })
		h.fe.SetState(name, engine.StatePaused, "pause")
		h.reconcile(task.ID)
		cur := h.task(task.ID)
		past := time.Now().Add(-2 * time.Minute).UTC()
		cur.Status.RunStartedAt = &past
		if err := h.store.UpdateTaskStatus(h.ctx, cur); err != nil {
			t.Fatal(err)
		}
		if got := h.runUntil(task.ID, 10*time.Second, finished); got.Status.Phase != models.TaskPhaseTimedOut {
			t.Fatalf("paused past its deadline: %+v", got.Status)
		}
	})
}

func TestTaskReconcile_Cancel(t *testing.T) {
	cancel := func(h *harness, id string) {
		h.t.Helper()
		if _, err := h.store.UpdateTaskSpec(h.ctx, id, func(t *models.Task) error {
			t.Spec.DesiredState, t.Spec.CancelReason = models.TaskDesiredCancel, "not needed"
			return nil
		}); err != nil {
			h.t.Fatal(err)
		}
	}
	t.Run("pending", func(t *testing.T) {
		h := newHarness(t)
		task := h.createTask("true")
		cancel(h, task.ID)
		got := h.stepTwice(task.ID)
		if got.Status.Phase != models.TaskPhaseCancelled || got.Status.Message != "cancelled: not needed" ||
			got.Status.ObservedGeneration != got.Generation {
			t.Fatalf("status %+v", got.Status)
		}
		if h.fe.Creates != 0 {
			t.Errorf("a cancelled pending task created a container")
		}
	})
	t.Run("running keeps what it left", func(t *testing.T) {
		h := newHarness(t)
		task, name := h.running("sleep 100")
		if err := os.WriteFile(filepath.Join(workDirOf(h.fe.Spec(name)), "partial.txt"), []byte("x\n"), 0o644); err != nil {
			t.Fatal(err)
		}
		cancel(h, task.ID)
		got := h.runUntil(task.ID, 10*time.Second, finished)
		if got.Status.Phase != models.TaskPhaseCancelled || got.Status.State != models.TaskStateCancelled || got.Status.DiffID == "" {
			t.Fatalf("status %+v", got.Status)
		}
		if info, _ := h.fe.Inspect(h.ctx, name); info.Running() {
			t.Fatalf("container still running")
		}
	})
	t.Run("after it finished nothing changes", func(t *testing.T) {
		h := newHarness(t)
		task, name := h.running("true")
		h.fe.Exit(name, 0)
		done := h.runUntil(task.ID, 10*time.Second, finished)
		cancel(h, task.ID)
		h.reconcile(task.ID)
		got := h.task(task.ID)
		if got.Status.Phase != done.Status.Phase || got.Status.ObservedGeneration != got.Generation {
			t.Fatalf("status %+v", got.Status)
		}
		if ids, _ := h.store.ListLiveTaskIDs(h.ctx); len(ids) != 0 {
			t.Fatalf("live tasks %v, want none", ids)
		}
	})
}

func TestTaskReconcile_Dependencies(t *testing.T) {
	h := newHarness(t)
	a := h.createTask("a")
	b := h.createTask("b", func(t *models.Task) { t.Spec.DependsOn = []string{a.ID} })
	h.reconcile(b.ID)
	got := h.task(b.ID)
	if got.Status.Phase != models.TaskPhasePending || got.Status.Reason != ReasonWaitingForDeps ||
		!strings.Contains(got.Status.Message, a.ID) {
		t.Fatalf("b: %+v", got.Status)
	}
	// A fails: B fails with the reason.
	cur := h.task(a.ID)
	cur.Status.Phase = models.TaskPhaseFailed
	if err := h.store.UpdateTaskStatus(h.ctx, cur); err != nil {
		t.Fatal(err)
	}
	got = h.stepTwice(b.ID)
	if got.Status.Phase != models.TaskPhaseFailed || got.Status.Reason != ReasonDependencyFailed ||
		got.Status.Message != fmt.Sprintf("dependency %s failed", a.ID) {
		t.Fatalf("b: %+v", got.Status)
	}

	c := h.createTask("c", func(t *models.Task) { t.Spec.DependsOn = []string{models.NewTaskID()} })
	if got := h.stepTwice(c.ID); got.Status.Phase != models.TaskPhaseFailed || !strings.Contains(got.Status.Message, "not found") {
		t.Fatalf("c: %+v", got.Status)
	}

	// A completed dependency lets the task through.
	d := h.createTask("d")
	cur = h.task(d.ID)
	cur.Status.Phase = models.TaskPhaseSucceeded
	if err := h.store.UpdateTaskStatus(h.ctx, cur); err != nil {
		t.Fatal(err)
	}
	e := h.createTask("e", func(t *models.Task) { t.Spec.DependsOn = []string{d.ID} })
	if got := h.stepTwice(e.ID); got.Status.Phase != models.TaskPhasePreparing {
		t.Fatalf("e: %+v", got.Status)
	}
}

func TestTaskReconcile_AdmissionOrderAndLimit(t *testing.T) {
	h := newHarness(t, func(c *config.Config) { c.MaxParallel = 1 })
	low := h.createTask("low", func(t *models.Task) { t.Spec.Priority = models.PriorityLow })
	high := h.createTask("high", func(t *models.Task) { t.Spec.Priority = models.PriorityHigh })

	h.reconcile(low.ID)
	if got := h.task(low.ID); got.Status.Phase != models.TaskPhasePending || got.Status.Reason != ReasonWaitingForSlot {
		t.Fatalf("low admitted before high: %+v", got.Status)
	}
	if got := h.stepTwice(high.ID); got.Status.Phase != models.TaskPhasePreparing {
		t.Fatalf("high: %+v", got.Status)
	}
	h.reconcile(low.ID)
	if got := h.task(low.ID); got.Status.Phase != models.TaskPhasePending {
		t.Fatalf("low admitted past the limit: %+v", got.Status)
	}
	// High's run ends: low goes.
	h.stepTwice(high.ID)
	h.fe.Exit(engine.ContainerName(high.ID, 1), 0)
	h.runUntil(high.ID, 10*time.Second, finished)
	if got := h.stepTwice(low.ID); got.Status.Phase != models.TaskPhasePreparing {
		t.Fatalf("low: %+v", got.Status)
	}
}

// A reloaded configuration reaches the next pass: raising max_parallel admits
// the task that was waiting, a new timeout applies to the run that starts.
func TestTaskReconcile_ReloadedConfigApplies(t *testing.T) {
	h := newHarness(t, func(c *config.Config) { c.MaxParallel = 1 })
	first := h.createTask("first")
	second := h.createTask("second")
	if got := h.stepTwice(first.ID); got.Status.Phase != models.TaskPhasePreparing {
		t.Fatalf("first: %+v", got.Status)
	}
	h.reconcile(second.ID)
	if got := h.task(second.ID); got.Status.Reason != ReasonWaitingForSlot {
		t.Fatalf("second not waiting: %+v", got.Status)
	}

	next := h.cfg.Clone()
	next.MaxParallel = 2
	next.DefaultTaskTimeout = config.Duration{Duration: 42 * time.Minute}
	h.s.SetConfig(next)
	if got := h.stepTwice(second.ID); got.Status.Phase != models.TaskPhasePreparing {
		t.Fatalf("second still held back after max_parallel went to 2: %+v", got.Status)
	}
	if got := h.s.tasks.taskTimeout(h.task(second.ID)); got != 42*time.Minute {
		t.Fatalf("timeout after reload %s, want 42m", got)
	}
	if h.cfg.MaxParallel != 1 {
		t.Fatal("SetConfig changed the configuration it replaced")
	}
}

func TestTaskReconcile_ConcurrentAdmissionNeverExceedsLimit(t *testing.T) {
	h := newHarness(t, func(c *config.Config) { c.MaxParallel = 3 })
	var ids []string
	for i := range 12 {
		ids = append(ids, h.createTask(fmt.Sprint("t", i)).ID)
	}
	var wg sync.WaitGroup
	for round := 0; round < 3; round++ {
		for _, id := range ids {
			wg.Add(1)
			go func() {
				defer wg.Done()
				_, _ = h.reconcileErr(id) // conflicts are fine; the limit is what matters
			}()
		}
		wg.Wait()
	}
	n := 0
	for _, id := range ids {
		if holdsSlot(h.task(id).Status.Phase) {
			n++
		}
	}
	if n != 3 {
		t.Fatalf("%d tasks admitted, want exactly 3", n)
	}
}

func TestTaskReconcile_StreamJSONProgressAndQuestion(t *testing.T) {
	t.Setenv("ANTHROPIC_API_KEY", "sk-test-secret")
	h := newHarness(t)
	task, name := h.running("fix it", func(t *models.Task) { t.Spec.Agent = "claude" })
	spec := h.fe.Spec(name)
	if spec.Cmd[0] != "claude" || spec.Cmd[2] != "fix it" || !slices.Contains(spec.Env, "ANTHROPIC_API_KEY=sk-test-secret") {
		t.Fatalf("spec cmd %q env has key: %v", spec.Cmd, slices.Contains(spec.Env, "ANTHROPIC_API_KEY=sk-test-secret"))
	}
	h.fe.Emit(name,
		`{"type":"system","subtype":"init","session_id":"sess-1"}`,
		`{"type":"assistant","message":{"content":[{"type":"text","text":"Looking."}]},"session_id":"sess-1"}`,
		`not json at all`,
		`{"type":"assistant","message":{"content":[{"type":"tool_use","name":"Read"}]},"session_id":"sess-1"}`,
	)
	// Progress reaches the status while the agent works.
	h.runUntil(task.ID, 5*time.Second, func(t *models.Task) bool { return t.Progress.SessionID == "sess-1" && t.Progress.NumTurns == 2 })
	h.fe.Emit(name, `{"type":"result","subtype":"success","is_error":false,"num_turns":3,"result":"Which file should I fix?","session_id":"sess-1","total_cost_usd":0.25}`)
	h.fe.Exit(name, 0)
	got := h.runUntil(task.ID, 10*time.Second, finished)
	st, pr := got.Status, got.Progress
	if st.State != models.TaskStateNeedsInput || st.PendingQuestion != "Which file should I fix?" || pr.NumTurns != 3 ||
		pr.CostUSD != 0.25 || pr.LastMessage != "Looking." || pr.ResultText != "Which file should I fix?" {
		t.Fatalf("status %+v, progress %+v", st, pr)
	}
	// The key's value reached Docker only: no file under the installation's
	// home (database and its WAL, logs, workspaces) holds it.
	assertNoFileHolds(t, h.cfg.Home, "sk-test-secret")
}

// assertNoFileHolds fails if any file under dir contains secret.
func assertNoFileHolds(t *testing.T, dir, secret string) {
	t.Helper()
	files := 0
	err := filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil || !d.Type().IsRegular() {
			return err
		}
		b, err := os.ReadFile(p)
		if err != nil {
			return err
		}
		files++
		if bytes.Contains(b, []byte(secret)) {
			t.Errorf("%s holds the secret", p)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if files == 0 {
		t.Fatalf("no file under %s to look at", dir)
	}
}

func TestTaskReconcile_RevisionRunsOnSameWorkspaceAndSupersedesDiff(t *testing.T) {
	h := newHarness(t)
	task, name := h.running("first")
	work := workDirOf(h.fe.Spec(name))
	if err := os.WriteFile(filepath.Join(work, "a.txt"), []byte("a\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	h.fe.Exit(name, 0)
	first := h.runUntil(task.ID, 10*time.Second, finished)
	if first.Status.DiffID == "" {
		t.Fatalf("no diff: %+v", first.Status)
	}
	if _, err := h.store.UpdateTaskSpec(h.ctx, task.ID, func(t *models.Task) error {
		t.Spec.DesiredRuns, t.Spec.FollowUp, t.Spec.FollowUpKind = 2, "echo more", models.FollowUpRevision
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	got := h.stepTwice(task.ID)
	if got.Status.Phase != models.TaskPhasePending || got.Status.Reason != ReasonFollowUp || got.Status.RunNumber != 1 {
		t.Fatalf("status %+v", got.Status)
	}
	got = h.stepTwice(task.ID)
	if got.Status.Phase != models.TaskPhasePreparing || got.Status.RunNumber != 2 {
		t.Fatalf("status %+v", got.Status)
	}
	got = h.stepTwice(task.ID)
	name2 := engine.ContainerName(task.ID, 2)
	spec2 := h.fe.Spec(name2)
	if got.Status.Phase != models.TaskPhaseRunning || !reflect.DeepEqual(spec2.Cmd, []string{"sh", "-c", "echo more"}) ||
		!reflect.DeepEqual(spec2.Mounts, h.fe.Spec(name).Mounts) {
		t.Fatalf("run 2: status %+v, spec %+v", got.Status, spec2)
	}
	if err := os.WriteFile(filepath.Join(work, "b.txt"), []byte("b\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	h.fe.Exit(name2, 0)
	second := h.runUntil(task.ID, 10*time.Second, finished)
	if second.Status.DiffID == "" || second.Status.DiffID == first.Status.DiffID || second.Status.ObservedGeneration != second.Generation {
		t.Fatalf("status %+v", second.Status)
	}
	old := h.diffPass(first.Status.DiffID) // the diff controller decides it, notified by the task's
	if old.Status.Phase != models.DiffPhaseSuperseded {
		t.Errorf("old diff %s, want Superseded", old.Status.Phase)
	}
	d2, _ := h.store.GetDiff(h.ctx, second.Status.DiffID)
	if d2.FilesChanged != 2 || d2.BaseCommit != old.BaseCommit {
		t.Errorf("run 2 diff: %d files against %s, want both files against the original base %s", d2.FilesChanged, d2.BaseCommit, old.BaseCommit)
	}
}

// A run that fails after changing files keeps its diff; a revision asked on
// that diff must run (issue: the controller used to follow up succeeded runs
// only, so the revision was void and the task stayed Failed on run 1).
func TestTaskReconcile_RevisionOfFailedRunRuns(t *testing.T) {
	for _, c := range []struct {
		name  string
		end   func(h *harness, id, name string)
		phase models.TaskPhase
	}{
		{"exit code", func(h *harness, _, name string) { h.fe.Exit(name, 2) }, models.TaskPhaseFailed},
		{"timed out", func(h *harness, id, _ string) {
			// The run started long ago: the next pass stops it at its deadline.
			cur := h.task(id)
			past := time.Now().Add(-2 * time.Minute).UTC()
			cur.Status.RunStartedAt = &past
			if err := h.store.UpdateTaskStatus(h.ctx, cur); err != nil {
				h.t.Fatal(err)
			}
		}, models.TaskPhaseTimedOut},
	} {
		t.Run(c.name, func(t *testing.T) {
			h := newHarness(t)
			task, name := h.running("first", func(t *models.Task) { t.Spec.TimeoutSeconds = 60 })
			work := workDirOf(h.fe.Spec(name))
			if err := os.WriteFile(filepath.Join(work, "partial.txt"), []byte("half done\n"), 0o644); err != nil {
				t.Fatal(err)
			}
			c.end(h, task.ID, name)
			first := h.runUntil(task.ID, 10*time.Second, finished)
			if first.Status.Phase != c.phase || first.Status.DiffID == "" {
				t.Fatalf("first run: %+v, want %s with a diff", first.Status, c.phase)
			}
			if _, err := h.store.UpdateTaskSpec(h.ctx, task.ID, func(t *models.Task) error {
				t.Spec.DesiredRuns, t.Spec.FollowUp, t.Spec.FollowUpKind = 2, "echo fixed", models.FollowUpRevision
				t.Spec.RevisionOfDiff = first.Status.DiffID
				return nil
			}); err != nil {
				t.Fatal(err)
			}
			got := h.stepTwice(task.ID)
			if got.Status.Phase != models.TaskPhasePending || got.Status.Reason != ReasonFollowUp || got.Status.ExitCode != nil {
				t.Fatalf("after the revision request: %+v, want Pending (%s)", got.Status, ReasonFollowUp)
			}
			h.stepTwice(task.ID)
			got = h.stepTwice(task.ID)
			name2 := engine.ContainerName(task.ID, 2)
			if got.Status.Phase != models.TaskPhaseRunning || got.Status.RunNumber != 2 ||
				!reflect.DeepEqual(h.fe.Spec(name2).Cmd, []string{"sh", "-c", "echo fixed"}) {
				t.Fatalf("run 2: %+v", got.Status)
			}
			h.fe.Exit(name2, 0)
			second := h.runUntil(task.ID, 10*time.Second, finished)
			if second.Status.Phase != models.TaskPhaseSucceeded || second.Status.RunNumber != 2 {
				t.Fatalf("run 2 ended: %+v", second.Status)
			}
			if old := h.diffPass(first.Status.DiffID); old.Status.Phase != models.DiffPhaseSuperseded {
				t.Errorf("the failed run's diff is %s, want Superseded by run 2's", old.Status.Phase)
			}
		})
	}
}

func TestTaskReconcile_RevisionRequestedDuringRunIsNotLost(t *testing.T) {
	h := newHarness(t)
	task, name := h.running("first")
	if _, err := h.store.UpdateTaskSpec(h.ctx, task.ID, func(t *models.Task) error {
		t.Spec.DesiredRuns, t.Spec.FollowUp, t.Spec.FollowUpKind = 2, "again", models.FollowUpRevision
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	h.reconcile(task.ID) // still running: sees the new generation
	h.fe.Exit(name, 0)
	done := h.runUntil(task.ID, 10*time.Second, finished)
	// Even if the process died right here, the task is still live work.
	if ids, _ := h.store.ListLiveTaskIDs(h.ctx); !slices.Contains(ids, task.ID) {
		t.Fatalf("task with an unstarted revision dropped from the live set: %+v", done.Status)
	}
	got := h.runUntil(task.ID, 10*time.Second, func(t *models.Task) bool { return t.Status.RunNumber == 2 })
	if got.Status.Phase != models.TaskPhasePreparing {
		t.Fatalf("status %+v", got.Status)
	}
}

func TestTaskReconcile_LogsSurviveCutStream(t *testing.T) {
	h := newHarness(t)
	task, name := h.running("count")
	h.fe.CutLogsAfter = 3
	h.reconcile(task.ID) // starts the follower on the cut stream
	var want []string
	for i := 1; i <= 20; i++ {
		want = append(want, fmt.Sprint("line ", i))
	}
	h.fe.Emit(name, want[:10]...)
	time.Sleep(50 * time.Millisecond)
	h.fe.Emit(name, want[10:]...)
	h.fe.Exit(name, 0)
	done := h.runUntil(task.ID, 10*time.Second, finished)
	if got := stripStamps(h.logFile(task.ID, 1)); !reflect.DeepEqual(got, want) {
		t.Fatalf("log lines = %q", got)
	}
	if done.Progress.LastOutputAt == nil {
		t.Errorf("LastOutputAt not recorded")
	}
}

func TestTaskReconcile_LogResumesFromFileAfterRestart(t *testing.T) {
	h := newHarness(t)
	task, name := h.running("count")
	var want []string
	for i := 1; i <= 10; i++ {
		want = append(want, fmt.Sprint("line ", i))
	}
	h.fe.Emit(name, want...)
	h.fe.Exit(name, 0)
	// What a crashed follower left: the first six lines and half of the seventh.
	h.fe.mu.Lock()
	lines := slices.Clone(h.fe.find(name).lines)
	h.fe.mu.Unlock()
	var b strings.Builder
	for _, l := range lines[:6] {
		b.WriteString(dockerStamp(l.Time) + " " + l.Text + "\n")
	}
	b.WriteString(dockerStamp(lines[6].Time) + " li")
	path := h.s.tasks.taskLogPath(task.ID, 1)
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, []byte(b.String()), 0o644); err != nil {
		t.Fatal(err)
	}
	h.runUntil(task.ID, 10*time.Second, finished)
	if got := stripStamps(h.logFile(task.ID, 1)); !reflect.DeepEqual(got, want) {
		t.Fatalf("log lines = %q", got)
	}
}

// --- pure functions ---

func TestRunOutcome(t *testing.T) {
	cases := []struct {
		name string
		in   outcomeInput
		want outcome
	}{
		{"diff", outcomeInput{Capture: captureDiff, CaptureText: "1 file changed, +1 -0"},
			outcome{models.TaskPhaseSucceeded, ReasonCompleted, "1 file changed, +1 -0", ""}},
		{"no change", outcomeInput{Capture: captureNone}, outcome{models.TaskPhaseSucceeded, ReasonNoChanges, "no changes", ""}},
		{"question", outcomeInput{Capture: captureNone, Question: "Which one?"},
			outcome{models.TaskPhaseSucceeded, ReasonNoChanges, "no changes", "Which one?"}},
		{"too large", outcomeInput{Capture: captureTooLarge, CaptureText: "patch too large: 9 bytes"},
			outcome{models.TaskPhaseSucceeded, ReasonPatchTooLarge, "patch too large: 9 bytes", ""}},
		{"exit code", outcomeInput{ExitCode: 2, Capture: captureDiff}, outcome{models.TaskPhaseFailed, ReasonExitCode, "exited with code 2", ""}},
		{"exit code, question ignored", outcomeInput{ExitCode: 1, Capture: captureNone, Question: "?"},
			outcome{models.TaskPhaseFailed, ReasonExitCode, "exited with code 1", ""}},
		{"agent error", outcomeInput{ExitCode: 1, Capture: captureNone, AgentResult: "API Error: 401 authentication_error\n", Question: "?"},
			outcome{models.TaskPhaseFailed, ReasonAgentError, "exited with code 1: API Error: 401 authentication_error", ""}},
		{"agent error clipped", outcomeInput{ExitCode: 1, AgentResult: strings.Repeat("é", 600)},
			outcome{models.TaskPhaseFailed, ReasonAgentError, "exited with code 1: " + strings.Repeat("é", 500) + "…", ""}},
		{"agent result of a run that succeeded", outcomeInput{Capture: captureNone, AgentResult: "All done."},
			outcome{models.TaskPhaseSucceeded, ReasonNoChanges, "no changes", ""}},
		{"timed out", outcomeInput{ExitCode: 137, Reason: ReasonTimedOut, Message: "timed out after 1s"},
			outcome{models.TaskPhaseTimedOut, ReasonTimedOut, "timed out after 1s", ""}},
		{"oom", outcomeInput{ExitCode: 137, Reason: ReasonOOMKilled, Message: "killed"}, outcome{models.TaskPhaseFailed, ReasonOOMKilled, "killed", ""}},
		{"cancelled wins", outcomeInput{Cancelled: true, CancelReason: "stop", Reason: ReasonTimedOut, ExitCode: 143},
			outcome{models.TaskPhaseCancelled, ReasonCancelled, "cancelled: stop", ""}},
		{"workspace gone", outcomeInput{Capture: captureNoWorkdir, CaptureText: "gone"}, outcome{models.TaskPhaseFailed, ReasonWorkspaceMissing, "gone", ""}},
		{"uncapturable", outcomeInput{Capture: captureRefused, CaptureText: "x is a FIFO"}, outcome{models.TaskPhaseFailed, ReasonUncapturable, "x is a FIFO", ""}},
		{"daemon restart", outcomeInput{ExitCode: 137, Reason: ReasonDaemonRestart, Message: "restarted", Capture: captureDiff},
			outcome{models.TaskPhaseFailed, ReasonDaemonRestart, "restarted", ""}},
	}
	for _, c := range cases {
		if got := runOutcome(c.in); got != c.want {
			t.Errorf("%s: got %+v, want %+v", c.name, got, c.want)
		}
	}
}

func TestGenerationBookkeeping(t *testing.T) {
	mk := func(phase models.TaskPhase, run, desired int, cancel bool) *models.Task {
		t := &models.Task{Generation: 2}
		t.Status.Phase, t.Status.RunNumber, t.Spec.DesiredRuns = phase, run, desired
		t.Status.Finished = phase.Terminal()
		t.Status.ObservedGeneration = 2
		if cancel {
			t.Spec.DesiredState = models.TaskDesiredCancel
		}
		return t
	}
	cases := []struct {
		name                     string
		t                        *models.Task
		follow, settled, observe bool
		next                     int
	}{
		{"first run pending", mk(models.TaskPhasePending, 0, 1, false), false, false, false, 1},
		{"running, nothing more asked", mk(models.TaskPhaseRunning, 1, 1, false), false, false, true, 2},
		{"running, revision asked", mk(models.TaskPhaseRunning, 1, 2, false), false, false, false, 2},
		{"succeeded, revision asked", mk(models.TaskPhaseSucceeded, 1, 2, false), true, false, false, 2},
		{"succeeded, two revisions asked", mk(models.TaskPhaseSucceeded, 1, 3, false), true, false, false, 3},
		{"succeeded, done", mk(models.TaskPhaseSucceeded, 2, 2, false), false, true, true, 3},
		{"failed, revision asked", mk(models.TaskPhaseFailed, 1, 2, false), true, false, false, 2},
		{"timed out, revision asked", mk(models.TaskPhaseTimedOut, 1, 2, false), true, false, false, 2},
		{"dependency failed before the first run", mk(models.TaskPhaseFailed, 0, 1, false), false, true, true, 1},
		{"cancelled", mk(models.TaskPhaseSucceeded, 1, 2, true), false, true, true, 2},
	}
	for _, c := range cases {
		if got := c.t.WantsFollowUp(); got != c.follow {
			t.Errorf("%s: WantsFollowUp = %v", c.name, got)
		}
		if got := c.t.Settled(); got != c.settled {
			t.Errorf("%s: Settled = %v", c.name, got)
		}
		if got := observesGeneration(c.t); got != c.observe {
			t.Errorf("%s: observesGeneration = %v", c.name, got)
		}
		if got := nextRunNumber(c.t); got != c.next {
			t.Errorf("%s: nextRunNumber = %d, want %d", c.name, got, c.next)
		}
	}
}

func TestExitReason(t *testing.T) {
	start := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	deadline := start.Add(time.Minute)
	cases := []struct {
		info   engine.ContainerInfo
		daemon engine.DaemonState
		reason string
	}{
		{engine.ContainerInfo{FinishedAt: start.Add(30 * time.Second)}, engine.DaemonUp, ""},
		{engine.ContainerInfo{FinishedAt: deadline.Add(time.Second), ExitCode: 137}, engine.DaemonUp, ReasonTimedOut},
		{engine.ContainerInfo{FinishedAt: start.Add(time.Second), OOMKilled: true, ExitCode: 137}, engine.DaemonUp, ReasonOOMKilled},
		// Stopped as the daemon went down.
		{engine.ContainerInfo{FinishedAt: start.Add(25 * time.Second), ExitCode: 137}, engine.DaemonStopping, ReasonDaemonRestart},
		{engine.ContainerInfo{FinishedAt: start.Add(25 * time.Second), ExitCode: 143}, engine.DaemonStopping, ReasonDaemonRestart},
		// Finished as it went down: kept.
		{engine.ContainerInfo{FinishedAt: start.Add(25 * time.Second), ExitCode: 0}, engine.DaemonStopping, ""},
		// Killed while the daemon was up: someone's docker kill.
		{engine.ContainerInfo{FinishedAt: start.Add(10 * time.Second), ExitCode: 137}, engine.DaemonUp, ""},
		// Ended by itself while the daemon was away (live-restore kept it running).
		{engine.ContainerInfo{FinishedAt: start.Add(25 * time.Second), ExitCode: 1}, engine.DaemonAway, ""},
		// Past its deadline, whatever stopped it.
		{engine.ContainerInfo{FinishedAt: deadline.Add(time.Second), ExitCode: 137}, engine.DaemonStopping, ReasonTimedOut},
	}
	for i, c := range cases {
		got, msg := exitReason(c.info, deadline, time.Minute, c.daemon)
		if got != c.reason {
			t.Errorf("case %d: reason %q, want %q", i, got, c.reason)
		}
		if got == ReasonDaemonRestart && !strings.HasPrefix(msg, fmt.Sprintf("container stopped by a Docker daemon restart (exit %d)", c.info.ExitCode)) {
			t.Errorf("case %d: message %q", i, msg)
		}
	}
}
