package controllers

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/claude-parallel/claude-parallel/controllers/engine"
	"github.com/claude-parallel/claude-parallel/models"
)

// TestLogFollower_NeverWritesTaskStatus: while a run prints a lot (stream-json
// progress included), its follower keeps the run's own row up to date and
// never writes the task: the task's resource version stays put, so the task
// controller's status writes during the output never conflict (the old
// follower's compare-and-swap on the task made them requeue).
func TestLogFollower_NeverWritesTaskStatus(t *testing.T) {
	h := newHarness(t)
	task, name := h.running("print", func(t *models.Task) { t.Spec.Agent = "claude" })
	for batch := range 20 {
		lines := make([]string, 0, 50)
		for i := range 50 {
			lines = append(lines, fmt.Sprintf(`{"type":"assistant","message":{"content":[{"type":"text","text":"batch %d line %d %s"}]},"session_id":"sess-w"}`,
				batch, i, strings.Repeat("x", 200)))
		}
		h.fe.Emit(name, lines...)
		// A status write of the task controller (it notes the paused
		// container, then clears the note) lands in the middle of the output.
		if batch%2 == 0 {
			h.fe.SetState(name, engine.StatePaused, "pause")
		} else {
			h.fe.SetState(name, engine.StateRunning, "unpause")
		}
		res, err := h.reconcileErr(task.ID)
		if err != nil {
			t.Fatalf("pass during output: %v", err)
		}
		if res.RequeueAfter == conflictRequeue {
			t.Fatalf("pass during output conflicted with another writer")
		}
	}
	h.fe.SetState(name, engine.StateRunning, "unpause")
	if _, err := h.reconcileErr(task.ID); err != nil {
		t.Fatal(err)
	}
	rv := h.task(task.ID).ResourceVersion
	got := h.runUntil(task.ID, 10*time.Second, func(t *models.Task) bool { return t.Progress.NumTurns == 1000 })
	if got.Progress.SessionID != "sess-w" || got.Progress.LastOutputAt == nil {
		t.Fatalf("progress %+v", got.Progress)
	}
	// Output and progress moved on since the last pass; the task did not.
	if got.ResourceVersion != rv {
		t.Errorf("task written while only output arrived: resource version %d → %d", rv, got.ResourceVersion)
	}
	el, err := h.store.GetExecutionLog(h.ctx, task.ID, 1)
	if err != nil || el.Progress.NumTurns != 1000 || el.Size == 0 {
		t.Fatalf("run row %+v, %v", el, err)
	}
}

// TestDiffReconcile_SupersedesWhenANewerRunEnds: the diff controller alone
// decides that a newer run's result replaces a diff awaiting review. A run
// that never ran its container leaves no result and supersedes nothing; one
// whose container exited and whose workspace is being collected does (the
// task controller ends that run only once its older diffs are superseded).
// Each verdict is stable on a second pass.
func TestDiffReconcile_SupersedesWhenANewerRunEnds(t *testing.T) {
	e := newDiffTestEnv(t)
	repo := e.newRepo(dtBaseFiles())
	d := e.newDiff(repo, dtEditLine(t, "a.txt", 3, "changed"))
	e.settle(d.ID)

	endRun := func(run int, phase models.TaskPhase, reason string, exit *int) {
		task := e.task(d.TaskID)
		task.Status.RunNumber, task.Status.Phase, task.Status.Reason, task.Status.ExitCode = run, phase, reason, exit
		if err := e.store.UpdateTaskStatus(e.ctx, task); err != nil {
			t.Fatal(err)
		}
	}
	twice := func() *models.Diff {
		if _, err := e.reconcile(d.ID); err != nil {
			t.Fatal(err)
		}
		first := e.diff(d.ID)
		if _, err := e.reconcile(d.ID); err != nil {
			t.Fatal(err)
		}
		again := e.diff(d.ID)
		if again.ResourceVersion != first.ResourceVersion {
			t.Errorf("second pass wrote again: %+v → %+v", first.Status, again.Status)
		}
		return again
	}

	endRun(2, models.TaskPhaseFailed, ReasonImageNotFound, nil)
	if st := twice().Status; st.Phase != models.DiffPhasePending {
		t.Fatalf("after a run that never started: %s, want Pending", st.Phase)
	}
	exit := 0
	endRun(3, models.TaskPhaseCollecting, "", &exit)
	st := twice().Status
	if st.Phase != models.DiffPhaseSuperseded || st.State != models.DiffStateSuperseded || st.Message != "superseded by run 3" {
		t.Fatalf("while run 3 is collected: %+v, want Superseded by run 3", st)
	}
	if got := dtEventReasons(t, e.store, models.EventKindDiff, d.ID); got[len(got)-1] != string(models.DiffPhaseSuperseded) {
		t.Errorf("timeline %v, want it to end with Superseded", got)
	}
}

func TestSupersedingRun(t *testing.T) {
	exit := 0
	d := &models.Diff{RunNumber: 1}
	task := func(run int, phase models.TaskPhase, reason string, exit *int) *models.Task {
		st := models.TaskStatus{RunNumber: run, Phase: phase, Reason: reason, ExitCode: exit, Finished: phase.Terminal()}
		return &models.Task{Status: st}
	}
	yes, no := func() bool { return true }, func() bool { return false }
	cases := []struct {
		name  string
		task  *models.Task
		diffs []models.Diff
		ws    func() bool
		want  int
	}{
		{"same run", task(1, models.TaskPhaseSucceeded, ReasonCompleted, &exit), nil, yes, 0},
		{"later run still running", task(2, models.TaskPhaseRunning, "", nil), nil, yes, 0},
		{"later run collected from its workspace", task(2, models.TaskPhaseCollecting, "", &exit), nil, yes, 2},
		{"later run collecting, workspace gone", task(2, models.TaskPhaseCollecting, "", &exit), nil, no, 0},
		{"later run ended with no change", task(2, models.TaskPhaseSucceeded, ReasonNoChanges, &exit), nil, no, 2},
		{"later run ended without its workspace", task(2, models.TaskPhaseFailed, ReasonWorkspaceMissing, &exit), nil, no, 0},
		{"later run never started its container", task(2, models.TaskPhaseFailed, ReasonImageNotFound, nil), nil, yes, 0},
		{"a later run's diff", task(3, models.TaskPhasePending, ReasonFollowUp, nil), []models.Diff{{RunNumber: 1}, {RunNumber: 2}}, yes, 2},
	}
	for _, c := range cases {
		if got := supersedingRun(d, c.task, c.diffs, c.ws); got != c.want {
			t.Errorf("%s: superseded by run %d, want %d", c.name, got, c.want)
		}
	}
}

// TestStatusWrites_OneCallSiteEach: the task status has one writer (the task
// reconciler's writeStatus) and the diff status one (the diff reconciler's
// commitStatus); the log follower writes the run's row, retention and the
// task reconciler only enqueue diffs. A second call site anywhere in the
// program's packages fails this.
func TestStatusWrites_OneCallSiteEach(t *testing.T) {
	want := map[string]string{"UpdateTaskStatus": "task.go", "UpdateDiffStatus": "diff.go"}
	sites := map[string][]string{}
	for _, dir := range []string{".", "logfollow", "engine", "workspace", "../mcp", "../mcp/service", "../mcp/dashboard", "../mcp/ops", "../cmd/claude-parallel"} {
		files, err := filepath.Glob(filepath.Join(dir, "*.go"))
		if err != nil {
			t.Fatal(err)
		}
		for _, f := range files {
			if strings.HasSuffix(f, "_test.go") {
				continue
			}
			src, err := os.ReadFile(f)
			if err != nil {
				t.Fatal(err)
			}
			for name := range want {
				for range strings.Count(string(src), "."+name+"(") {
					sites[name] = append(sites[name], filepath.Clean(f))
				}
			}
		}
	}
	for name, file := range want {
		if got := sites[name]; len(got) != 1 || got[0] != file {
			t.Errorf("%s is called from %v, want once, from %s", name, got, file)
		}
	}
}
