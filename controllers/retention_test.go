package controllers

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"testing"
	"time"

	"go.uber.org/zap/zaptest"

	"github.com/claude-parallel/claude-parallel/models"
)

const dtDay = 24 * time.Hour

// newRetentionForTest is the retention job of e's installation, keeping data
// for maxAge, fetching batch rows at a time.
func newRetentionForTest(e *dtEnv, maxAge time.Duration, batch int) *retention {
	return &retention{
		store:      e.store,
		workspaces: hostWorkspaces{},
		paths:      e.paths,
		maxAge:     func() time.Duration { return maxAge },
		batch:      batch,
		log:        zaptest.NewLogger(e.t),
		now:        time.Now,
		// What retention enqueues goes to the test's diff controller queue
		// (dtEnv.settle runs it), as the manager would route it.
		notify: e.r.notify,
	}
}

// dtSeededTask is a task written with the store's clock at a chosen time, with
// files on disk where the controllers would have put them.
type dtSeededTask struct {
	id        string
	workspace string
	logDir    string
	diffs     []string
}

// seedTask creates a task that started at start and, when ended is not zero,
// finished then; it gets a workspace folder and a log folder with a file in
// each, one execution log row and an event, all written at start.
func (e *dtEnv) seedTask(start, ended time.Time) *dtSeededTask {
	e.t.Helper()
	defer e.clock.reset()
	e.clock.at(start)
	task, _, err := e.store.CreateTask(e.ctx, &models.Task{Spec: models.TaskSpec{Prompt: "p", WorkFolder: "/nowhere", Agent: "shell"}})
	if err != nil {
		e.t.Fatal(err)
	}
	st := &dtSeededTask{
		id:        task.ID,
		workspace: filepath.Join(e.paths.WorkspaceDir, task.ID),
		logDir:    filepath.Join(e.paths.TaskLogDir, task.ID),
	}
	dtWrite(e.t, filepath.Join(st.workspace, "work", "file.txt"), "work\n")
	dtWrite(e.t, filepath.Join(st.logDir, "run-1.log"), "output\n")
	if err := e.store.UpsertExecutionLog(e.ctx, &models.ExecutionLog{TaskID: task.ID, Run: 1,
		Path: filepath.Join(st.logDir, "run-1.log"), Size: 7, Complete: !ended.IsZero()}); err != nil {
		e.t.Fatal(err)
	}
	if err := e.store.RecordEvent(e.ctx, models.EventKindTask, task.ID, "Seeded", "seeded"); err != nil {
		e.t.Fatal(err)
	}
	task.Status.Phase = models.TaskPhaseRunning
	task.Status.RunNumber = 1
	task.Status.WorkspacePath = st.workspace
	task.Status.ObservedGeneration = task.Generation
	if !ended.IsZero() {
		e.clock.at(ended)
		end := ended.UTC()
		task.Status.Phase = models.TaskPhaseSucceeded
		task.Status.EndTime = &end
	}
	if err := e.store.UpdateTaskStatus(e.ctx, task); err != nil {
		e.t.Fatal(err)
	}
	return st
}

// seedDiff stores a diff of run for task st, decided (its status written) at
// decided with phase.
func (e *dtEnv) seedDiff(st *dtSeededTask, run int, decided time.Time, phase models.DiffPhase) string {
	e.t.Helper()
	defer e.clock.reset()
	e.clock.at(decided)
	d, _, err := e.store.CreateDiff(e.ctx, &models.Diff{TaskID: st.id, RunNumber: run, Patch: []byte("patch\n")})
	if err != nil {
		e.t.Fatal(err)
	}
	d.Status.Phase = phase
	d.Status.ObservedGeneration = d.Generation
	if err := e.store.UpdateDiffStatus(e.ctx, d); err != nil {
		e.t.Fatal(err)
	}
	if err := e.store.RecordEvent(e.ctx, models.EventKindDiff, d.ID, string(phase), "seeded"); err != nil {
		e.t.Fatal(err)
	}
	st.diffs = append(st.diffs, d.ID)
	return d.ID
}

func dtExists(t *testing.T, p string) bool {
	t.Helper()
	_, err := os.Lstat(p)
	if err != nil && !errors.Is(err, fs.ErrNotExist) {
		t.Fatal(err)
	}
	return err == nil
}

func TestRetention_RemovesExactlyWhatIsOlderThanTheAge(t *testing.T) {
	e := newDiffTestEnv(t)
	now := time.Now()
	const maxAge = 7 * dtDay

	// Deleted: finished before the cutoff, with every kind of diff (a pending
	// one too: it goes with its task). Four of them, so batches of two loop.
	var old []*dtSeededTask
	for i, phase := range []models.DiffPhase{models.DiffPhaseApplied, models.DiffPhaseRejected, models.DiffPhasePending, models.DiffPhaseSuperseded} {
		st := e.seedTask(now.Add(-20*dtDay), now.Add(-8*dtDay-time.Duration(i)*time.Hour))
		e.seedDiff(st, 1, now.Add(-8*dtDay-time.Duration(i)*time.Hour), phase)
		old = append(old, st)
	}
	// Kept: finished just inside the age, with a diff decided just inside it.
	recent := e.seedTask(now.Add(-20*dtDay), now.Add(-maxAge+time.Hour))
	recentDiff := e.seedDiff(recent, 1, now.Add(-maxAge+time.Hour), models.DiffPhaseRejected)
	// Kept: still running though it started long ago; its old superseded diff
	// goes, its newer pending one stays.
	running := e.seedTask(now.Add(-30*dtDay), time.Time{})
	supersededOld := e.seedDiff(running, 1, now.Add(-9*dtDay), models.DiffPhaseSuperseded)
	pendingOld := e.seedDiff(running, 2, now.Add(-9*dtDay), models.DiffPhasePending)
	// Kept: finished long ago, but a revision was asked for and not yet acted on.
	revised := e.seedTask(now.Add(-20*dtDay), now.Add(-10*dtDay))
	if _, err := e.store.UpdateTaskSpec(e.ctx, revised.id, func(t *models.Task) error {
		t.Spec.DesiredRuns, t.Spec.FollowUp, t.Spec.FollowUpKind = 2, "again", models.FollowUpRevision
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	// Kept: finished long ago, but its diff is being applied.
	applying := e.seedTask(now.Add(-20*dtDay), now.Add(-10*dtDay))
	applyingDiff := e.seedDiff(applying, 1, now.Add(-10*dtDay), models.DiffPhaseApplying)
	// A recent event about an old task goes with the task; an old event about
	// a kept task goes by age; a recent one about a kept task stays.
	if err := e.store.RecordEvent(e.ctx, models.EventKindTask, old[0].id, "Recent", "recent"); err != nil {
		t.Fatal(err)
	}
	if err := e.store.RecordEvent(e.ctx, models.EventKindTask, recent.id, "Recent", "recent"); err != nil {
		t.Fatal(err)
	}

	r := newRetentionForTest(e, maxAge, 2)
	for pass := range 2 { // the second pass finds nothing more to do
		if err := r.run(e.ctx); err != nil {
			t.Fatalf("retention pass %d: %v", pass+1, err)
		}
	}

	for _, st := range old {
		if _, err := e.store.GetTask(e.ctx, st.id); !errors.Is(err, models.ErrNotFound) {
			t.Errorf("old task %s: %v, want it deleted", st.id, err)
		}
		for _, id := range st.diffs {
			if _, err := e.store.GetDiff(e.ctx, id); !errors.Is(err, models.ErrNotFound) {
				t.Errorf("diff %s of old task %s: %v, want it deleted", id, st.id, err)
			}
		}
		if logs, err := e.store.ListExecutionLogs(e.ctx, models.LogFilter{TaskID: st.id}); err != nil || len(logs) != 0 {
			t.Errorf("execution logs of old task %s: %v %v, want none", st.id, logs, err)
		}
		if evs := dtEventReasons(t, e.store, "", st.id); len(evs) != 0 {
			t.Errorf("events of old task %s left: %v", st.id, evs)
		}
		if dtExists(t, st.workspace) || dtExists(t, st.logDir) {
			t.Errorf("files of old task %s left (workspace %v, logs %v)", st.id, dtExists(t, st.workspace), dtExists(t, st.logDir))
		}
	}

	for _, st := range []*dtSeededTask{recent, running, revised, applying} {
		if _, err := e.store.GetTask(e.ctx, st.id); err != nil {
			t.Errorf("kept task %s: %v", st.id, err)
		}
		if !dtExists(t, st.workspace) || !dtExists(t, st.logDir) {
			t.Errorf("files of kept task %s removed", st.id)
		}
		if logs, err := e.store.ListExecutionLogs(e.ctx, models.LogFilter{TaskID: st.id}); err != nil || len(logs) != 1 {
			t.Errorf("execution logs of kept task %s: %v %v, want one", st.id, logs, err)
		}
	}
	for _, id := range []string{recentDiff, pendingOld, applyingDiff} {
		if _, err := e.store.GetDiff(e.ctx, id); err != nil {
			t.Errorf("kept diff %s: %v", id, err)
		}
	}
	if _, err := e.store.GetDiff(e.ctx, supersededOld); !errors.Is(err, models.ErrNotFound) {
		t.Errorf("old superseded diff of a kept task: %v, want it deleted", err)
	}
	if got := dtEventReasons(t, e.store, models.EventKindTask, recent.id); !slices.Equal(got, []string{"Recent"}) {
		t.Errorf("events of the recent task %v, want only the recent one (the seeded one was 20 days old)", got)
	}
	if got := dtEventReasons(t, e.store, models.EventKindDiff, recentDiff); !slices.Equal(got, []string{"Rejected"}) {
		t.Errorf("events of the recent diff %v, want its one event", got)
	}
}

func TestRetention_RejectsPendingDiffWhoseWorkspaceIsGone(t *testing.T) {
	e := newDiffTestEnv(t)
	now := time.Now()
	gone := e.seedTask(now.Add(-time.Hour), now.Add(-time.Minute))
	orphan := e.seedDiff(gone, 1, now, models.DiffPhasePending)
	conflicted := e.seedDiff(gone, 2, now, models.DiffPhaseConflict)
	applying := e.seedDiff(gone, 3, now, models.DiffPhasePending)
	e.decide(applying, dtApplyIn("worktree")) // an apply asked for: the diff controller's business
	if err := os.RemoveAll(gone.workspace); err != nil {
		t.Fatal(err)
	}
	there := e.seedTask(now.Add(-time.Hour), now.Add(-time.Minute))
	kept := e.seedDiff(there, 1, now, models.DiffPhasePending)

	// Pages of two: the four diffs awaiting a decision (created in the same
	// instant, so the pages part them by id) take three queries.
	r := newRetentionForTest(e, 7*dtDay, 2)
	if err := r.run(e.ctx); err != nil {
		t.Fatal(err)
	}
	// Retention only enqueues; the diff controller, the status's one
	// writer, rejects.
	e.mu.Lock()
	queued := slices.Clone(e.queue)
	e.queue = nil
	e.mu.Unlock()
	slices.Sort(queued)
	if want := []string{conflicted, orphan}; !slices.Equal(queued, sortedCopy(want)) {
		t.Fatalf("retention enqueued %v, want the orphans %v", queued, want)
	}
	e.settle(queued...)
	for _, id := range []string{orphan, conflicted} {
		d := e.diff(id)
		if st := d.Status; st.Phase != models.DiffPhaseRejected || st.State != models.DiffStateRejected ||
			st.Reason != diffReasonWorkspaceGone || st.Message != "workspace is gone" {
			t.Errorf("diff %s: status %+v, want Rejected: workspace is gone", id, st)
		}
		if d.Spec.Desired != models.DiffDesiredPending {
			t.Errorf("retention wrote the spec of %s: desired %s", id, d.Spec.Desired)
		}
	}
	if st := e.diff(applying).Status; st.Phase != models.DiffPhasePending {
		t.Errorf("diff with an apply asked for: phase %s, want it left to the diff controller", st.Phase)
	}
	if st := e.diff(kept).Status; st.Phase != models.DiffPhasePending {
		t.Errorf("diff whose workspace exists: phase %s, want Pending", st.Phase)
	}

	// Idempotent: a second pass writes nothing, and the diff controller
	// leaves the rejected diff alone.
	rv := e.diff(orphan).ResourceVersion
	if err := r.run(e.ctx); err != nil {
		t.Fatal(err)
	}
	e.mu.Lock()
	requeued := len(e.queue)
	e.mu.Unlock()
	if requeued != 0 {
		t.Errorf("a second retention pass enqueued %d diffs, want none", requeued)
	}
	if _, err := e.reconcile(orphan); err != nil {
		t.Fatal(err)
	}
	if d := e.diff(orphan); d.ResourceVersion != rv || d.Status.Phase != models.DiffPhaseRejected {
		t.Errorf("rejected orphan changed again: rv %d → %d, phase %s", rv, d.ResourceVersion, d.Status.Phase)
	}
	if got := dtEventReasons(t, e.store, models.EventKindDiff, orphan); !slices.Equal(got, []string{"Pending", "Rejected"}) {
		t.Errorf("events of the orphan %v, want its seed event and one Rejected", got)
	}
}

func TestRetention_RefusesANonPositiveAge(t *testing.T) {
	e := newDiffTestEnv(t)
	st := e.seedTask(time.Now().Add(-time.Hour), time.Now().Add(-time.Minute))
	if err := newRetentionForTest(e, 0, 10).run(e.ctx); err == nil {
		t.Error("retention ran with a zero age")
	}
	if _, err := e.store.GetTask(e.ctx, st.id); err != nil {
		t.Errorf("task deleted by a retention with a zero age: %v", err)
	}
}

// A backlog of old events goes in several transactions of a bounded size, all
// in one run, and the recent ones stay.
func TestRetention_DeletesOldEventsInBatches(t *testing.T) {
	e := newDiffTestEnv(t)
	now := time.Now()
	const maxAge = 7 * dtDay
	r := newRetentionForTest(e, maxAge, 2)
	batch := r.batch * eventsPerBatch / retentionBatch
	oldEvents := 2*batch + batch/2 // three transactions, the last one short
	e.clock.at(now.Add(-8 * dtDay))
	for i := range oldEvents {
		if err := e.store.RecordEvent(e.ctx, models.EventKindTask, "task-aaaaaaaaaaaa", "Old", fmt.Sprint(i)); err != nil {
			t.Fatal(err)
		}
	}
	e.clock.reset()
	if err := e.store.RecordEvent(e.ctx, models.EventKindTask, "task-aaaaaaaaaaaa", "Recent", "recent"); err != nil {
		t.Fatal(err)
	}

	var n retentionCounts
	if err := r.deleteOldEvents(e.ctx, now.Add(-maxAge), &n); err != nil {
		t.Fatal(err)
	}
	if n.events != int64(oldEvents) {
		t.Errorf("deleted %d events, want the %d old ones", n.events, oldEvents)
	}
	if got := dtEventReasons(t, e.store, models.EventKindTask, "task-aaaaaaaaaaaa"); !slices.Equal(got, []string{"Recent"}) {
		t.Errorf("events left %v, want only the recent one", got)
	}
}

// Files named after a task the store no longer has (a run died between the
// rows and the files) are swept; a live task's files and folders that are not
// named after a task stay.
func TestRetention_SweepsFilesOfDeletedTasks(t *testing.T) {
	e := newDiffTestEnv(t)
	now := time.Now()
	kept := e.seedTask(now.Add(-time.Hour), time.Time{})
	gone := models.NewTaskID()
	goneFiles := []string{
		filepath.Join(e.paths.WorkspaceDir, gone, "work", "a.txt"),
		filepath.Join(e.paths.TaskLogDir, gone, "run-1.log"),
	}
	for _, p := range goneFiles {
		dtWrite(t, p, "left behind\n")
	}
	other := filepath.Join(e.paths.WorkspaceDir, "not-a-task", "file")
	dtWrite(t, other, "someone else's\n")

	r := newRetentionForTest(e, 7*dtDay, 2)
	var n retentionCounts
	if err := r.sweepOrphanFiles(e.ctx, now, &n); err != nil {
		t.Fatal(err)
	}
	if n.orphans != 1 {
		t.Errorf("swept %d tasks' files, want 1", n.orphans)
	}
	for _, p := range goneFiles {
		if dtExists(t, filepath.Dir(p)) {
			t.Errorf("%s of the deleted task left", filepath.Dir(p))
		}
	}
	if !dtExists(t, kept.workspace) || !dtExists(t, kept.logDir) || !dtExists(t, other) {
		t.Errorf("swept too much: workspace %v, logs %v, other %v", dtExists(t, kept.workspace), dtExists(t, kept.logDir), dtExists(t, other))
	}
}

func sortedCopy(s []string) []string {
	c := slices.Clone(s)
	slices.Sort(c)
	return c
}
