package models

import (
	"context"
	"errors"
	"reflect"
	"slices"
	"testing"
	"time"
)

func TestCreateTask_FillsDefaultsAndDerivedFields(t *testing.T) {
	ctx := context.Background()
	s := newTestStore(t)
	task := mustCreateTask(t, s, newTask("do it"))
	if !IsTaskID(task.ID) {
		t.Fatalf("id %q is not a task id", task.ID)
	}
	if task.Generation != 1 || task.ResourceVersion != 1 {
		t.Fatalf("generation %d rv %d, want 1 1", task.Generation, task.ResourceVersion)
	}
	if task.Spec.Priority != PriorityMedium || task.Spec.PriorityRank != 1 || task.Spec.DesiredState != TaskDesiredRun || task.Spec.DesiredRuns != 1 {
		t.Fatalf("defaults not applied: %+v", task.Spec)
	}
	if task.Status.Phase != TaskPhasePending || task.Status.State != TaskStatePending || task.Status.Finished {
		t.Fatalf("initial status: %+v", task.Status)
	}
	got, err := s.GetTask(ctx, task.ID)
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(got.Spec, task.Spec) || !got.StartTime.Equal(task.StartTime) || got.Status.State != TaskStatePending {
		t.Fatalf("stored task differs:\n got %+v\nwant %+v", got, task)
	}
	if got.StartTime.Location() != time.UTC {
		t.Fatalf("times must come back in UTC, got %v", got.StartTime.Location())
	}
}

func TestCreateTask_SameParentTaskIDReturnsTheFirstTask(t *testing.T) {
	ctx := context.Background()
	s := newTestStore(t)
	first := newTask("first")
	first.Spec.ParentTaskID = "client-key-1"
	mustCreateTask(t, s, first)

	again := newTask("second attempt")
	again.Spec.ParentTaskID = "client-key-1"
	got, created, err := s.CreateTask(ctx, again)
	if err != nil {
		t.Fatal(err)
	}
	if created || got.ID != first.ID || got.Spec.Prompt != "first" {
		t.Fatalf("CreateTask with a known parent id: created=%v id=%s prompt=%q, want the first task", created, got.ID, got.Spec.Prompt)
	}
	if again.ID != "" {
		t.Fatalf("the refused intent was modified: %+v", again)
	}
	all, err := s.ListTasks(ctx, TaskFilter{})
	if err != nil {
		t.Fatal(err)
	}
	if len(all) != 1 {
		t.Fatalf("%d tasks stored, want 1", len(all))
	}
	// Tasks without a key never collide.
	mustCreateTask(t, s, newTask("a"))
	mustCreateTask(t, s, newTask("b"))
}

func TestCreateTask_RefusesInvalidIntents(t *testing.T) {
	s := newTestStore(t)
	for name, mutate := range map[string]func(*Task){
		"empty prompt":      func(t *Task) { t.Spec.Prompt = "" },
		"empty work folder": func(t *Task) { t.Spec.WorkFolder = "" },
		"bad id":            func(t *Task) { t.ID = "task-XYZ" },
		"bad priority":      func(t *Task) { t.Spec.Priority = "urgent" },
		"bad desired state": func(t *Task) { t.Spec.DesiredState = "pause" },
		"bad dependency":    func(t *Task) { t.Spec.DependsOn = JSONList[string]{"../etc"} },
		"negative memory":   func(t *Task) { t.Spec.MemoryBytes = -1 },
		"bad phase":         func(t *Task) { t.Status.Phase = "Sleeping" },
	} {
		t.Run(name, func(t *testing.T) {
			task := newTask("p")
			mutate(task)
			if _, _, err := s.CreateTask(context.Background(), task); !errors.Is(err, ErrInvalid) {
				t.Fatalf("err = %v, want ErrInvalid", err)
			}
		})
	}
}

func TestCreateTask_TakenIDIsAlreadyExists(t *testing.T) {
	s := newTestStore(t)
	task := newTask("p")
	task.ID = "task-0123456789ab"
	mustCreateTask(t, s, task)
	dup := newTask("q")
	dup.ID = "task-0123456789ab"
	if _, _, err := s.CreateTask(context.Background(), dup); !errors.Is(err, ErrAlreadyExists) {
		t.Fatalf("err = %v, want ErrAlreadyExists", err)
	}
}

func TestGetTask_UnknownIsNotFound(t *testing.T) {
	s := newTestStore(t)
	if _, err := s.GetTask(context.Background(), "task-000000000000"); !errors.Is(err, ErrNotFound) {
		t.Fatalf("err = %v, want ErrNotFound", err)
	}
}

// A status write based on a stale read is refused, and the newer row is kept.
func TestUpdateTaskStatus_StaleReadIsConflict(t *testing.T) {
	ctx := context.Background()
	s := newTestStore(t)
	task := mustCreateTask(t, s, newTask("p"))

	a, _ := s.GetTask(ctx, task.ID)
	b, _ := s.GetTask(ctx, task.ID)
	a.Status.Phase, a.Status.Message = TaskPhaseRunning, "from a"
	if err := s.UpdateTaskStatus(ctx, a); err != nil {
		t.Fatal(err)
	}
	b.Status.Phase, b.Status.Message = TaskPhaseFailed, "from b"
	if err := s.UpdateTaskStatus(ctx, b); !errors.Is(err, ErrConflict) {
		t.Fatalf("stale write: err = %v, want ErrConflict", err)
	}
	if b.ResourceVersion != 1 {
		t.Fatalf("a refused write changed the caller's resource version to %d", b.ResourceVersion)
	}
	got, _ := s.GetTask(ctx, task.ID)
	if got.Status.Message != "from a" || got.Status.Phase != TaskPhaseRunning || got.ResourceVersion != 2 {
		t.Fatalf("stored %+v rv %d, want a's write at rv 2", got.Status, got.ResourceVersion)
	}
	// A spec change also moves the resource version: a status write read
	// before it conflicts too, so it cannot act on an outdated spec.
	if _, err := s.UpdateTaskSpec(ctx, task.ID, func(t *Task) error { t.Spec.DesiredState = TaskDesiredCancel; return nil }); err != nil {
		t.Fatal(err)
	}
	a.Status.Message = "after cancel"
	if err := s.UpdateTaskStatus(ctx, a); !errors.Is(err, ErrConflict) {
		t.Fatalf("write read before a spec change: err = %v, want ErrConflict", err)
	}
	gone := *a
	gone.ID = "task-000000000000"
	if err := s.UpdateTaskStatus(ctx, &gone); !errors.Is(err, ErrNotFound) {
		t.Fatalf("write to a missing task: err = %v, want ErrNotFound", err)
	}
}

func TestUpdateTaskStatus_WritesZeroValuesAndDerivesFields(t *testing.T) {
	ctx := context.Background()
	clock := &fakeClock{t: time.Date(2025, 5, 6, 7, 8, 9, 0, time.FixedZone("CEST", 2*3600))}
	s := newTestStore(t, Options{Now: clock.Now})
	task := mustCreateTask(t, s, newTask("p"))

	task.Status.Phase = TaskPhaseSucceeded
	task.Status.ExitCode = ptr(3)
	task.Status.Message = "done"
	task.Status.PendingQuestion = "which file?"
	task.Status.State = TaskStateFailed // ignored: derived
	if err := s.UpdateTaskStatus(ctx, task); err != nil {
		t.Fatal(err)
	}
	got, _ := s.GetTask(ctx, task.ID)
	if got.Status.State != TaskStateNeedsInput || !got.Status.Finished || got.Status.EndTime == nil || *got.Status.ExitCode != 3 {
		t.Fatalf("derived status wrong: %+v", got.Status)
	}
	if !got.Status.EndTime.Equal(clock.t) || got.Status.EndTime.Location() != time.UTC {
		t.Fatalf("end time %v, want %v in UTC", got.Status.EndTime, clock.t)
	}
	if task.Status.State != TaskStateNeedsInput || task.ResourceVersion != got.ResourceVersion {
		t.Fatalf("caller's task not updated: %+v rv %d", task.Status, task.ResourceVersion)
	}

	// Zero values are written too: exit code back to NULL, message and question emptied.
	got.Status.Phase = TaskPhasePending
	got.Status.ExitCode = nil
	got.Status.Message = ""
	got.Status.PendingQuestion = ""
	got.Status.EndTime = nil
	if err := s.UpdateTaskStatus(ctx, got); err != nil {
		t.Fatal(err)
	}
	again, _ := s.GetTask(ctx, task.ID)
	if again.Status.ExitCode != nil || again.Status.Message != "" || again.Status.PendingQuestion != "" ||
		again.Status.Finished || again.Status.State != TaskStatePending || again.Status.EndTime != nil {
		t.Fatalf("zero values not written: %+v", again.Status)
	}
}

// Spec and status writes each touch only their own columns.
func TestTaskSpecAndStatusWritesDoNotOverwriteEachOther(t *testing.T) {
	ctx := context.Background()
	s := newTestStore(t)
	task := mustCreateTask(t, s, newTask("p"))

	stale := *task
	stale.Spec.Prompt = "overwritten by a status write?"
	stale.Status.Phase = TaskPhaseRunning
	if err := s.UpdateTaskStatus(ctx, &stale); err != nil {
		t.Fatal(err)
	}
	updated, err := s.UpdateTaskSpec(ctx, task.ID, func(t *Task) error {
		t.Spec.TimeoutSeconds = 60
		t.Status.Phase = TaskPhaseFailed // ignored: not spec
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	got, _ := s.GetTask(ctx, task.ID)
	if got.Spec.Prompt != "p" || got.Spec.TimeoutSeconds != 60 || got.Status.Phase != TaskPhaseRunning {
		t.Fatalf("columns crossed: spec %+v status phase %s", got.Spec, got.Status.Phase)
	}
	if got.Generation != 2 || got.ResourceVersion != 3 || updated.Generation != 2 || updated.ResourceVersion != 3 {
		t.Fatalf("generation/rv: stored %d/%d returned %d/%d, want 2/3", got.Generation, got.ResourceVersion, updated.Generation, updated.ResourceVersion)
	}
}

func TestUpdateTaskSpec_NoChangeKeepsGenerationAndMutateErrorAborts(t *testing.T) {
	ctx := context.Background()
	s := newTestStore(t)
	task := newTask("p")
	task.Spec.DependsOn = JSONList[string]{"task-aaaaaaaaaaaa"}
	mustCreateTask(t, s, task)

	got, err := s.UpdateTaskSpec(ctx, task.ID, func(t *Task) error {
		t.Spec.Priority = PriorityMedium // already medium
		t.Spec.DependsOn = slices.Clone(t.Spec.DependsOn)
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if got.Generation != 1 || got.ResourceVersion != 1 {
		t.Fatalf("no-op spec update bumped generation/rv to %d/%d", got.Generation, got.ResourceVersion)
	}

	errNope := errors.New("task is not waiting for an answer")
	_, err = s.UpdateTaskSpec(ctx, task.ID, func(t *Task) error {
		t.Spec.DesiredRuns++
		return errNope
	})
	if !errors.Is(err, errNope) {
		t.Fatalf("err = %v, want the mutate error", err)
	}
	if stored, _ := s.GetTask(ctx, task.ID); stored.Spec.DesiredRuns != 1 {
		t.Fatalf("aborted update was written: desired runs %d", stored.Spec.DesiredRuns)
	}
	if _, err := s.UpdateTaskSpec(ctx, task.ID, func(t *Task) error { t.Spec.Priority = "urgent"; return nil }); !errors.Is(err, ErrInvalid) {
		t.Fatalf("invalid spec: err = %v, want ErrInvalid", err)
	}
	if _, err := s.UpdateTaskSpec(ctx, "task-000000000000", func(*Task) error { return nil }); !errors.Is(err, ErrNotFound) {
		t.Fatalf("missing task: err = %v, want ErrNotFound", err)
	}
	high, err := s.UpdateTaskSpec(ctx, task.ID, func(t *Task) error { t.Spec.Priority = PriorityHigh; return nil })
	if err != nil || high.Spec.PriorityRank != 0 {
		t.Fatalf("priority change: rank %d err %v, want rank 0", high.Spec.PriorityRank, err)
	}
}

func TestListLiveTaskIDs_UnfinishedAndFinishedWithSpecChange(t *testing.T) {
	ctx := context.Background()
	s := newTestStore(t)
	pending := mustCreateTask(t, s, newTask("pending"))
	done := mustCreateTask(t, s, newTask("done"))
	answered := mustCreateTask(t, s, newTask("answered"))
	for _, task := range []*Task{done, answered} {
		task.Status.Phase = TaskPhaseSucceeded
		task.Status.ObservedGeneration = task.Generation
		if err := s.UpdateTaskStatus(ctx, task); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := s.UpdateTaskSpec(ctx, answered.ID, func(t *Task) error {
		t.Spec.DesiredRuns++
		t.Spec.FollowUp, t.Spec.FollowUpKind = "use main.go", FollowUpAnswer
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	ids, err := s.ListLiveTaskIDs(ctx)
	if err != nil {
		t.Fatal(err)
	}
	want := []string{pending.ID, answered.ID}
	slices.Sort(want)
	if !slices.Equal(ids, want) {
		t.Fatalf("live ids %v, want %v (not %s)", ids, want, done.ID)
	}
}

func TestListTasks_FiltersAndOrders(t *testing.T) {
	ctx := context.Background()
	clock := &fakeClock{t: time.Date(2025, 1, 1, 0, 0, 0, 0, time.UTC)}
	s := newTestStore(t, Options{Now: clock.Now})
	var tasks []*Task
	for i, p := range []Priority{PriorityLow, PriorityHigh, PriorityMedium, PriorityHigh} {
		task := newTask("p")
		task.Spec.Priority = p
		tasks = append(tasks, mustCreateTask(t, s, task))
		clock.Advance(time.Duration(i+1) * time.Second)
	}
	tasks[3].Status.Phase = TaskPhaseFailed
	if err := s.UpdateTaskStatus(ctx, tasks[3]); err != nil {
		t.Fatal(err)
	}
	ids := func(ts []Task) []string {
		var out []string
		for _, t := range ts {
			out = append(out, t.ID)
		}
		return out
	}
	check := func(name string, f TaskFilter, want ...*Task) {
		t.Helper()
		got, err := s.ListTasks(ctx, f)
		if err != nil {
			t.Fatal(err)
		}
		var w []string
		for _, t := range want {
			w = append(w, t.ID)
		}
		if !slices.Equal(ids(got), w) {
			t.Errorf("%s: got %v, want %v", name, ids(got), w)
		}
	}
	check("newest first", TaskFilter{}, tasks[3], tasks[2], tasks[1], tasks[0])
	check("limit", TaskFilter{Limit: 2}, tasks[3], tasks[2])
	check("admission", TaskFilter{Finished: ptr(false), Order: TasksAdmissionOrder}, tasks[1], tasks[2], tasks[0])
	check("status", TaskFilter{States: []TaskState{TaskStateFailed}}, tasks[3])
	check("phase", TaskFilter{Phases: []TaskPhase{TaskPhasePending}, Order: TasksOldestFirst}, tasks[0], tasks[1], tasks[2])
	check("ids", TaskFilter{IDs: []string{tasks[0].ID, tasks[2].ID}, Order: TasksOldestFirst}, tasks[0], tasks[2])

	counts, err := s.CountTasksByStatus(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if counts[TaskStatePending] != 3 || counts[TaskStateFailed] != 1 {
		t.Fatalf("counts %v", counts)
	}
	phases, err := s.CountLiveTasksByPhase(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if len(phases) != 1 || phases[TaskPhasePending] != 3 {
		t.Fatalf("live phases %v", phases)
	}
}

func TestListFinishedTasksBefore_OnlyOldSettledTasks(t *testing.T) {
	ctx := context.Background()
	clock := &fakeClock{t: time.Date(2025, 1, 1, 0, 0, 0, 0, time.UTC)}
	s := newTestStore(t, Options{Now: clock.Now})
	finish := func(task *Task) {
		task.Status.Phase = TaskPhaseSucceeded
		task.Status.ObservedGeneration = task.Generation
		if err := s.UpdateTaskStatus(ctx, task); err != nil {
			t.Fatal(err)
		}
	}
	old := mustCreateTask(t, s, newTask("old"))
	finish(old)
	oldButAnswered := mustCreateTask(t, s, newTask("old, answered since"))
	finish(oldButAnswered)
	if _, err := s.UpdateTaskSpec(ctx, oldButAnswered.ID, func(t *Task) error { t.Spec.DesiredRuns = 2; return nil }); err != nil {
		t.Fatal(err)
	}
	mustCreateTask(t, s, newTask("old but still pending"))
	clock.Advance(8 * 24 * time.Hour)
	recent := mustCreateTask(t, s, newTask("recent"))
	finish(recent)

	got, err := s.ListFinishedTasksBefore(ctx, clock.Now().Add(-7*24*time.Hour), 10)
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != 1 || got[0].ID != old.ID {
		t.Fatalf("got %d tasks (%v), want only %s", len(got), got, old.ID)
	}
}

func TestDeleteSettledTask_RemovesEverythingAboutIt(t *testing.T) {
	ctx := context.Background()
	s := newTestStore(t)
	task := mustCreateTask(t, s, newTask("p"))
	other := mustCreateTask(t, s, newTask("other"))
	diff, _, err := s.CreateDiff(ctx, &Diff{TaskID: task.ID, RunNumber: 1, Patch: []byte("x")})
	if err != nil {
		t.Fatal(err)
	}
	name := "claude-parallel-" + task.ID + "-r1"
	must := func(err error) {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
	}
	must(s.UpsertContainer(ctx, &Container{Name: name, TaskID: task.ID, Run: 1, State: "exited"}))
	must(s.UpsertExecutionLog(ctx, &ExecutionLog{TaskID: task.ID, Run: 1, Path: "/logs/run-1.log"}))
	must(s.RecordEvent(ctx, EventKindTask, task.ID, "Created", "created"))
	must(s.RecordEvent(ctx, EventKindDiff, diff.ID, "Captured", "captured"))
	must(s.RecordEvent(ctx, EventKindContainer, name, "Started", "started"))
	must(s.RecordEvent(ctx, EventKindTask, other.ID, "Created", "created"))

	diff.Status.ObservedGeneration = diff.Generation // settled: no decision in flight
	must(s.UpdateDiffStatus(ctx, diff))
	must(s.DeleteSettledTask(ctx, task))
	if _, err := s.GetTask(ctx, task.ID); !errors.Is(err, ErrNotFound) {
		t.Fatalf("task still there: %v", err)
	}
	if _, err := s.GetDiff(ctx, diff.ID); !errors.Is(err, ErrNotFound) {
		t.Fatalf("diff still there: %v", err)
	}
	if _, err := s.GetContainerByName(ctx, name); !errors.Is(err, ErrNotFound) {
		t.Fatalf("container row still there: %v", err)
	}
	if _, err := s.GetExecutionLog(ctx, task.ID, 1); !errors.Is(err, ErrNotFound) {
		t.Fatalf("log row still there: %v", err)
	}
	events, _ := s.ListEvents(ctx, "", "", 0)
	if len(events) != 1 || events[0].ObjectID != other.ID {
		t.Fatalf("events left: %+v, want only the other task's", events)
	}
	if err := s.DeleteSettledTask(ctx, task); !errors.Is(err, ErrNotFound) {
		t.Fatalf("second delete: err = %v, want ErrNotFound", err)
	}
}

// Retention's delete never removes what a front end accepted after the task
// was read: a spec change to the task, or a decision on one of its diffs not
// yet carried out, makes it a conflict that deletes nothing.
func TestDeleteSettledTask_RefusesWhatChangedSinceRead(t *testing.T) {
	ctx := context.Background()
	s := newTestStore(t)

	revised := mustCreateTask(t, s, newTask("revised after the read"))
	read, err := s.GetTask(ctx, revised.ID)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := s.UpdateTaskSpec(ctx, revised.ID, func(t *Task) error {
		t.Spec.DesiredRuns, t.Spec.FollowUp, t.Spec.FollowUpKind = 2, "again", FollowUpRevision
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	if err := s.DeleteSettledTask(ctx, read); !errors.Is(err, ErrConflict) {
		t.Fatalf("delete of a task revised since the read: %v, want ErrConflict", err)
	}
	if _, err := s.GetTask(ctx, revised.ID); err != nil {
		t.Fatalf("revised task: %v", err)
	}

	applying := mustCreateTask(t, s, newTask("a diff to apply"))
	diff, _, err := s.CreateDiff(ctx, &Diff{TaskID: applying.ID, RunNumber: 1, Patch: []byte("p")})
	if err != nil {
		t.Fatal(err)
	}
	diff.Status.ObservedGeneration = diff.Generation
	if err := s.UpdateDiffStatus(ctx, diff); err != nil {
		t.Fatal(err)
	}
	read, err = s.GetTask(ctx, applying.ID)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := s.UpdateDiffSpec(ctx, diff.ID, func(d *Diff) error {
		d.Spec.Desired = DiffDesiredApplied
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	if err := s.DeleteSettledTask(ctx, read); !errors.Is(err, ErrConflict) {
		t.Fatalf("delete of a task whose diff is to be applied: %v, want ErrConflict", err)
	}
	if _, err := s.GetDiff(ctx, diff.ID); err != nil {
		t.Fatalf("diff to apply: %v", err)
	}

	settled := mustCreateTask(t, s, newTask("settled"))
	if err := s.DeleteSettledTask(ctx, settled); err != nil {
		t.Fatalf("delete of a settled task: %v", err)
	}
	if err := s.DeleteSettledTask(ctx, settled); !errors.Is(err, ErrNotFound) {
		t.Fatalf("second delete: %v, want ErrNotFound", err)
	}
}

// A status write carries its timeline: the events are committed with the
// status, and a write refused as a conflict records none.
func TestUpdateTaskStatus_TimelineCommitsWithTheStatus(t *testing.T) {
	ctx := context.Background()
	s := newTestStore(t)
	task := mustCreateTask(t, s, newTask("timeline"))
	stale := *task
	task.Status.Phase = TaskPhasePreparing
	if err := s.UpdateTaskStatus(ctx, task, TimelineEntry{Reason: "Preparing", Message: "admitted for run 1"}, TimelineEntry{Reason: "Note", Message: "second line"}); err != nil {
		t.Fatal(err)
	}
	stale.Status.Phase = TaskPhaseFailed
	if err := s.UpdateTaskStatus(ctx, &stale, TimelineEntry{Reason: "Failed", Message: "from a stale read"}); !errors.Is(err, ErrConflict) {
		t.Fatalf("stale write: %v, want ErrConflict", err)
	}
	reasons := eventReasons(t, s, EventKindTask, task.ID)
	if !slices.Equal(reasons, []string{"Preparing", "Note"}) {
		t.Fatalf("events %v, want the two written with the status and none from the refused write", reasons)
	}
}

func TestTasksByID_RepeatsAndMissing(t *testing.T) {
	ctx := context.Background()
	s := newTestStore(t)
	a := mustCreateTask(t, s, newTask("a"))
	b := mustCreateTask(t, s, newTask("b"))
	got, err := s.TasksByID(ctx, []string{b.ID, a.ID, b.ID, "task-000000000000"})
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != 2 || got[a.ID].Spec.Prompt != "a" || got[b.ID].Spec.Prompt != "b" || got["task-000000000000"] != nil {
		t.Fatalf("TasksByID = %v", got)
	}
	if none, err := s.TasksByID(ctx, nil); err != nil || len(none) != 0 {
		t.Fatalf("no ids: %v, %v", none, err)
	}
}
