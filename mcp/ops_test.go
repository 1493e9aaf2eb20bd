package mcp

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/claude-parallel/claude-parallel/config/logging"
	"github.com/claude-parallel/claude-parallel/mcp/service"
	"github.com/claude-parallel/claude-parallel/models"
)

func TestTaskWorker_StoresTheIntent(t *testing.T) {
	e := newTestEnv(t)
	res := e.startTask(map[string]any{
		"taskDescription": "say hi", "priority": "high", "baseRef": "v1", "includeUncommitted": false,
		"containerConfig": map[string]any{"memory": "1g", "cpus": "1.5", "timeout": 600000},
		"workFolder":      e.repo + "/", // cleaned by resolution
	})
	if !res.Created || res.Status != "pending" || service.PhaseOf(res.Status, res.Phase) != "Pending" || !models.IsTaskID(res.TaskID) {
		t.Fatalf("result: %+v", res)
	}
	task, err := e.store.GetTask(context.Background(), res.TaskID)
	if err != nil {
		t.Fatal(err)
	}
	s := task.Spec
	if s.WorkFolder != e.repo || s.Agent != "shell" || s.Priority != models.PriorityHigh || s.BaseRef != "v1" ||
		s.IncludeUncommitted || s.MemoryBytes != 1<<30 || s.NanoCPUs != 1_500_000_000 || s.TimeoutSeconds != 600 ||
		s.Description != "say hi" || s.ReturnMode != "full" || s.DesiredRuns != 1 || s.DesiredState != models.TaskDesiredRun {
		t.Errorf("stored spec: %+v", s)
	}
	if len(e.notified) != 1 || e.notified[0] != "task:"+res.TaskID {
		t.Errorf("notified %v", e.notified)
	}
}

func TestTaskWorker_DefaultsAndSymlinkedFolder(t *testing.T) {
	e := newTestEnv(t)
	link := filepath.Join(e.root, "link-to-repo")
	if err := os.Symlink(e.repo, link); err != nil {
		t.Fatal(err)
	}
	res := ok[service.TaskWorkerResult](e, "task_worker", map[string]any{"task": "x", "workFolder": link})
	task, _ := e.store.GetTask(context.Background(), res.TaskID)
	if task.Spec.WorkFolder != e.repo || task.Spec.Agent != e.cfg.DefaultAgent || !task.Spec.IncludeUncommitted ||
		task.Spec.Priority != models.PriorityMedium {
		t.Errorf("spec %+v", task.Spec)
	}
}

func TestTaskWorker_ParentTaskIDIsIdempotent(t *testing.T) {
	e := newTestEnv(t)
	first := e.startTask(map[string]any{"parentTaskId": "plan-7/step-3"})
	second := e.startTask(map[string]any{"parentTaskId": "plan-7/step-3", "task": "something else"})
	if second.TaskID != first.TaskID || second.Created || !strings.Contains(second.Message, "already exists") {
		t.Fatalf("first %+v second %+v", first, second)
	}
	tasks, _ := e.store.ListTasks(context.Background(), models.TaskFilter{})
	if len(tasks) != 1 {
		t.Fatalf("%d tasks", len(tasks))
	}
}

func TestTaskWorker_ConcurrentParentTaskIDYieldsOneTask(t *testing.T) {
	e := newTestEnv(t)
	const n = 8
	ids := make([]string, n)
	var wg sync.WaitGroup
	for i := range n {
		wg.Go(func() {
			r, err := DecodeTaskWorker(map[string]any{"task": "x", "workFolder": e.repo, "parentTaskId": "same"}, e.cfg)
			if err != nil {
				t.Error(err)
				return
			}
			res, err := e.fe.StartTask(context.Background(), r)
			if err != nil {
				t.Error(err)
				return
			}
			ids[i] = res.TaskID
		})
	}
	wg.Wait()
	for _, id := range ids {
		if id != ids[0] {
			t.Fatalf("ids differ: %v", ids)
		}
	}
}

func TestTaskWorker_DependsOnExistingTasks(t *testing.T) {
	e := newTestEnv(t)
	a := e.startTask(nil)
	b := e.startTask(map[string]any{"dependsOn": []string{a.TaskID, a.TaskID}})
	task, _ := e.store.GetTask(context.Background(), b.TaskID)
	if len(task.Spec.DependsOn) != 1 || task.Spec.DependsOn[0] != a.TaskID {
		t.Errorf("depends on %v", task.Spec.DependsOn)
	}
}

func TestWorkStatus_OneTaskAndList(t *testing.T) {
	e := newTestEnv(t)
	a := e.startTask(map[string]any{"taskDescription": "first"})
	b := e.startTask(nil)
	e.finishRun(b.TaskID, 1, models.TaskPhaseSucceeded, "out.txt")
	if err := e.store.RecordEvent(context.Background(), models.EventKindTask, b.TaskID, "Started", "container started"); err != nil {
		t.Fatal(err)
	}

	one := ok[service.WorkStatusResult](e, "work_status", map[string]any{"taskId": b.TaskID})
	if one.Task == nil || one.Task.Status != "completed" || one.Task.DiffID == "" || one.Task.FilesChanged == nil ||
		*one.Task.FilesChanged != 1 || one.Task.ExitCode == nil || len(one.Task.Events) != 1 || !one.Task.Finished {
		t.Fatalf("one: %+v", one.Task)
	}
	all := ok[service.WorkStatusResult](e, "work_status", map[string]any{})
	if len(all.Tasks) != 2 || all.Total != 2 || all.Counts["completed"] != 1 || all.Counts["pending"] != 1 {
		t.Fatalf("all: %+v", all)
	}
	pending := ok[service.WorkStatusResult](e, "work_status", map[string]any{"status": "pending", "limit": 5})
	if len(pending.Tasks) != 1 || pending.Tasks[0].TaskID != a.TaskID || pending.Tasks[0].Description != "first" {
		t.Fatalf("pending: %+v", pending.Tasks)
	}
}

func TestCancelTask(t *testing.T) {
	e := newTestEnv(t)
	a := e.startTask(nil)
	res := ok[service.CancelResult](e, "cancel_task", map[string]any{"taskId": a.TaskID, "reason": "not needed"})
	if !res.CancelRequested {
		t.Fatalf("%+v", res)
	}
	task, _ := e.store.GetTask(context.Background(), a.TaskID)
	if task.Spec.DesiredState != models.TaskDesiredCancel || task.Spec.CancelReason != "not needed" {
		t.Fatalf("spec %+v", task.Spec)
	}
	gen := task.Generation
	again := ok[service.CancelResult](e, "cancel_task", map[string]any{"taskId": a.TaskID})
	task, _ = e.store.GetTask(context.Background(), a.TaskID)
	if !again.CancelRequested || task.Generation != gen {
		t.Fatalf("second cancel wrote: %+v gen %d→%d", again, gen, task.Generation)
	}

	done := e.startTask(nil)
	e.finishRun(done.TaskID, 1, models.TaskPhaseSucceeded)
	res = ok[service.CancelResult](e, "cancel_task", map[string]any{"taskId": done.TaskID})
	if res.CancelRequested || !strings.Contains(res.Message, "already finished") {
		t.Fatalf("finished task: %+v", res)
	}
}

func TestReviewChanges(t *testing.T) {
	e := newTestEnv(t)
	a := e.startTask(map[string]any{"taskDescription": "add out.txt"})
	d := e.finishRun(a.TaskID, 1, models.TaskPhaseSucceeded, "out.txt", "b.txt")

	byDiff := ok[service.ReviewResult](e, "review_changes", map[string]any{"diffId": d.ID})
	if byDiff.Diff == nil || byDiff.Diff.FilesChanged != 2 || len(byDiff.Diff.Files) != 2 ||
		!strings.Contains(byDiff.Diff.Patch, "+++ b/out.txt") || byDiff.Diff.WorkFolder != e.repo {
		t.Fatalf("by diff: %+v", byDiff.Diff)
	}
	byTask := ok[service.ReviewResult](e, "review_changes", map[string]any{"taskId": a.TaskID, "showContent": false})
	if byTask.Diff == nil || byTask.Diff.DiffID != d.ID || byTask.Diff.Patch != "" {
		t.Fatalf("by task: %+v", byTask.Diff)
	}
	list := ok[service.ReviewResult](e, "review_changes", nil)
	if len(list.Pending) != 1 || list.Pending[0].DiffID != d.ID || list.Pending[0].Patch != "" {
		t.Fatalf("pending: %+v", list)
	}
	detailed := ok[service.ReviewResult](e, "review_changes", map[string]any{"format": "detailed"})
	if detailed.Pending[0].Patch == "" {
		t.Fatalf("detailed list has no patch")
	}
	if err := e.store.RecordEvent(context.Background(), models.EventKindDiff, d.ID, "DiffCaptured", "2 files"); err != nil {
		t.Fatal(err)
	}
	one := e.call("review_changes", map[string]any{"diffId": d.ID, "format": "detailed"})
	if text := resultText(one); !strings.Contains(text, "DiffCaptured: 2 files") || !strings.Contains(text, "Base abc, result def") {
		t.Fatalf("detailed diff:\n%s", text)
	}
	// An apply that met a conflict leaves the diff waiting for a decision
	// (revise or reject); one whose rejection is on its way is decided.
	conflicted := e.finishRun(e.startTask(nil).TaskID, 1, models.TaskPhaseSucceeded, "c.txt")
	rejecting := e.finishRun(e.startTask(nil).TaskID, 1, models.TaskPhaseSucceeded, "r.txt")
	e.setDiff(conflicted.ID, models.DiffDesiredApplied, models.DiffPhaseConflict)
	e.setDiff(rejecting.ID, models.DiffDesiredRejected, models.DiffPhasePending)
	list = ok[service.ReviewResult](e, "review_changes", nil)
	if len(list.Pending) != 2 || list.Pending[0].DiffID != d.ID ||
		list.Pending[1].DiffID != conflicted.ID || list.Pending[1].Status != "conflict" {
		t.Fatalf("waiting for a decision: %+v", list)
	}
	if text := resultText(e.call("review_changes", nil)); !strings.Contains(text, "2 diff(s) waiting for a decision") {
		t.Fatalf("list text:\n%s", text)
	}
	// system_status counts by state: the diff being rejected is still pending.
	if st := ok[service.SystemStatusResult](e, "system_status", nil); st.PendingDiffs != 3 {
		t.Fatalf("system_status pendingDiffs %d, want 3 (two pending, one conflict)", st.PendingDiffs)
	}

	other := e.startTask(nil)
	msg := e.fails("review_changes", map[string]any{"taskId": other.TaskID})
	if !strings.Contains(msg, "taskId: task "+other.TaskID+" has no diff") {
		t.Errorf("no-diff message: %s", msg)
	}
	msg = e.fails("review_changes", map[string]any{"taskId": other.TaskID, "diffId": d.ID})
	if !strings.Contains(msg, "belongs to task") {
		t.Errorf("mismatch message: %s", msg)
	}
}

// playDiffController applies or conflicts diffs whose spec asks for it, as
// the diff controller would, until the test ends (it is stopped and waited
// for before the store closes).
func playDiffController(t *testing.T, s *models.Store, outcome models.DiffPhase) {
	playDiffControllerSeq(t, s, outcome)
}

// playDiffControllerSeq answers the n-th apply request with outcomes[n], the
// last one for every request after.
func playDiffControllerSeq(t *testing.T, s *models.Store, outcomes ...models.DiffPhase) {
	answered := 0
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	t.Cleanup(func() { cancel(); <-done })
	go func() {
		defer close(done)
		for ctx.Err() == nil {
			ds, err := s.ListDiffs(ctx, models.DiffFilter{Desired: []models.DiffDesired{models.DiffDesiredApplied}})
			if err != nil && ctx.Err() == nil {
				t.Errorf("play diff controller: %v", err)
			}
			for _, d := range ds {
				if d.Status.ObservedGeneration == d.Generation {
					continue
				}
				outcome := outcomes[min(answered, len(outcomes)-1)]
				answered++
				d.Status.Phase = outcome
				d.Status.ObservedGeneration = d.Generation
				switch outcome {
				case models.DiffPhaseApplied:
					d.Status.AppliedTo = "/applied/here"
					if d.Spec.ApplyMode == models.ApplyModeBranch {
						d.Status.Branch = "claude-parallel/" + d.TaskID
					}
				case models.DiffPhaseConflict:
					d.Status.ConflictFiles = []string{"out.txt"}
					d.Status.Message = "out.txt changed in the target"
				}
				if err := s.UpdateDiffStatus(ctx, &d); err != nil && ctx.Err() == nil {
					t.Errorf("play diff controller: %v", err)
				}
			}
			time.Sleep(20 * time.Millisecond)
		}
	}()
}

func TestApplyChanges_WaitsForTheOutcome(t *testing.T) {
	for _, tc := range []struct {
		name    string
		outcome models.DiffPhase
		mode    string
		want    string
	}{
		{"applied worktree", models.DiffPhaseApplied, "worktree", service.OutcomeApplied},
		{"applied branch", models.DiffPhaseApplied, "branch", service.OutcomeApplied},
		{"conflict", models.DiffPhaseConflict, "worktree", service.OutcomeConflict},
		{"failed", models.DiffPhaseFailed, "worktree", service.OutcomeFailed},
	} {
		t.Run(tc.name, func(t *testing.T) {
			e := newTestEnv(t)
			a := e.startTask(nil)
			d := e.finishRun(a.TaskID, 1, models.TaskPhaseSucceeded, "out.txt")
			playDiffController(t, e.store, tc.outcome)

			res := ok[service.ApplyResult](e, "apply_changes", map[string]any{"diffId": d.ID, "mode": tc.mode})
			if res.Outcome != tc.want {
				t.Fatalf("outcome %+v", res)
			}
			if tc.mode == "branch" && res.Branch != "claude-parallel/"+a.TaskID {
				t.Errorf("branch %q", res.Branch)
			}
			if tc.outcome == models.DiffPhaseConflict && (len(res.ConflictFiles) != 1 || !strings.Contains(res.Message, "out.txt changed")) {
				t.Errorf("conflict %+v", res)
			}
			stored, _ := e.store.GetDiff(context.Background(), d.ID)
			if stored.Spec.Desired != models.DiffDesiredApplied || string(stored.Spec.ApplyMode) != tc.mode || stored.Spec.TargetWorkspace != "" {
				t.Errorf("spec %+v", stored.Spec)
			}
			if tc.outcome == models.DiffPhaseApplied {
				// Applying again with the same arguments answers from the status.
				gen := stored.Generation
				again := ok[service.ApplyResult](e, "apply_changes", map[string]any{"diffId": d.ID, "mode": tc.mode})
				stored, _ = e.store.GetDiff(context.Background(), d.ID)
				if again.Outcome != service.OutcomeApplied || stored.Generation != gen {
					t.Errorf("second apply: %+v, generation %d→%d", again, gen, stored.Generation)
				}
				other := map[string]string{"branch": "worktree", "worktree": "branch"}[tc.mode]
				msg := e.fails("apply_changes", map[string]any{"diffId": d.ID, "mode": other})
				if !strings.Contains(msg, "diffId: diff "+d.ID+" was already applied") {
					t.Errorf("other mode: %s", msg)
				}
				msg = e.fails("reject_changes", map[string]any{"diffId": d.ID})
				if !strings.Contains(msg, "already applied") {
					t.Errorf("reject applied: %s", msg)
				}
			}
		})
	}
}

func TestApplyChanges_BoundedWaitAndPreview(t *testing.T) {
	e := newTestEnv(t)
	e.setDeps(func(d *service.Deps) { d.ApplyWait = 100 * time.Millisecond })
	a := e.startTask(nil)
	d := e.finishRun(a.TaskID, 1, models.TaskPhaseSucceeded, "out.txt")

	preview := ok[service.ApplyResult](e, "apply_changes", map[string]any{"diffId": d.ID, "confirm": false, "targetWorkspace": e.repo})
	stored, _ := e.store.GetDiff(context.Background(), d.ID)
	if preview.Outcome != service.OutcomePreview || stored.Spec.Desired != models.DiffDesiredPending || preview.Target != e.repo {
		t.Fatalf("preview %+v, desired %s", preview, stored.Spec.Desired)
	}

	var reports []string
	res, err := e.fe.ApplyChanges(context.Background(), &service.ApplyRequest{DiffID: d.ID, Mode: models.ApplyModeWorktree, Confirm: true},
		100*time.Millisecond, func(_, _ float64, msg string) { reports = append(reports, msg) })
	if err != nil {
		t.Fatal(err)
	}
	if res.Outcome != service.OutcomeInProgress || !strings.Contains(res.Message, "still pending") || len(reports) == 0 {
		t.Fatalf("%+v reports %v", res, reports)
	}
	if len(e.notified) == 0 || e.notified[len(e.notified)-1] != "diff:"+d.ID {
		t.Errorf("notified %v", e.notified)
	}
}

func TestRejectChanges(t *testing.T) {
	e := newTestEnv(t)
	a := e.startTask(nil)
	d := e.finishRun(a.TaskID, 1, models.TaskPhaseSucceeded, "out.txt")
	res := ok[service.RejectResult](e, "reject_changes", map[string]any{"diffId": d.ID, "reason": "wrong file"})
	stored, _ := e.store.GetDiff(context.Background(), d.ID)
	if stored.Spec.Desired != models.DiffDesiredRejected || stored.Spec.RejectReason != "wrong file" || res.Reason != "wrong file" {
		t.Fatalf("%+v %+v", res, stored.Spec)
	}
	again := ok[service.RejectResult](e, "reject_changes", map[string]any{"diffId": d.ID})
	if !strings.Contains(again.Message, "already rejected") {
		t.Errorf("again: %+v", again)
	}
	msg := e.fails("apply_changes", map[string]any{"diffId": d.ID})
	if !strings.Contains(msg, "diffId: diff "+d.ID+" was rejected") {
		t.Errorf("apply rejected: %s", msg)
	}
	msg = e.fails("request_revision", map[string]any{"diffId": d.ID, "feedback": "x"})
	if !strings.Contains(msg, "was rejected") {
		t.Errorf("revise rejected: %s", msg)
	}
}

func TestRequestRevision(t *testing.T) {
	e := newTestEnv(t)
	a := e.startTask(map[string]any{"agent": "claude"})
	d := e.finishRun(a.TaskID, 1, models.TaskPhaseSucceeded, "out.txt")
	res := ok[service.FollowUpResult](e, "request_revision", map[string]any{"diffId": d.ID, "feedback": "use bye", "additionalContext": "see README"})
	task, _ := e.store.GetTask(context.Background(), a.TaskID)
	s := task.Spec
	if res.Run != 2 || s.DesiredRuns != 2 || s.FollowUpKind != models.FollowUpRevision || s.RevisionOfDiff != d.ID ||
		!strings.HasPrefix(s.FollowUp, "use bye\n\nAdditional context:\nsee README") || !strings.Contains(s.FollowUp, "Keep the parts") {
		t.Fatalf("res %+v spec %+v", res, s)
	}
	msg := e.fails("request_revision", map[string]any{"diffId": d.ID, "feedback": "again"})
	if !strings.Contains(msg, "already has run 2 requested") {
		t.Errorf("double revision: %s", msg)
	}
	// The new run supersedes the diff; revising the old one is refused.
	d2 := e.finishRun(a.TaskID, 2, models.TaskPhaseSucceeded, "out2.txt")
	msg = e.fails("request_revision", map[string]any{"diffId": d.ID, "feedback": "x"})
	if !strings.Contains(msg, "superseded by "+d2.ID) {
		t.Errorf("old diff: %s", msg)
	}
	ok[service.FollowUpResult](e, "request_revision", map[string]any{"diffId": d2.ID, "feedback": "x", "preserveCorrectParts": false})
	task, _ = e.store.GetTask(context.Background(), a.TaskID)
	if task.Spec.DesiredRuns != 3 || strings.Contains(task.Spec.FollowUp, "Keep the parts") {
		t.Errorf("spec %+v", task.Spec)
	}
}

// A script agent runs the feedback: nothing is added it would execute.
func TestRequestRevision_ScriptAgentGetsTheFeedbackVerbatim(t *testing.T) {
	e := newTestEnv(t)
	a := e.startTask(map[string]any{"agent": "shell"})
	d := e.finishRun(a.TaskID, 1, models.TaskPhaseSucceeded, "out.txt")
	ok[service.FollowUpResult](e, "request_revision", map[string]any{"diffId": d.ID, "feedback": "echo bye > out.txt", "additionalContext": "echo more >> out.txt"})
	task, _ := e.store.GetTask(context.Background(), a.TaskID)
	if task.Spec.FollowUp != "echo bye > out.txt\necho more >> out.txt" {
		t.Errorf("follow-up %q", task.Spec.FollowUp)
	}
}

func TestRequestRevision_RunningTaskRefused(t *testing.T) {
	e := newTestEnv(t)
	a := e.startTask(nil)
	d := e.finishRun(a.TaskID, 1, models.TaskPhaseSucceeded, "out.txt")
	task, _ := e.store.GetTask(context.Background(), a.TaskID)
	task.Status.Phase = models.TaskPhaseRunning
	if err := e.store.UpdateTaskStatus(context.Background(), task); err != nil {
		t.Fatal(err)
	}
	msg := e.fails("request_revision", map[string]any{"diffId": d.ID, "feedback": "x"})
	if !strings.Contains(msg, "is still running") {
		t.Errorf("%s", msg)
	}
}

func TestAnswerWorkerQuestion(t *testing.T) {
	e := newTestEnv(t)
	a := e.startTask(nil)
	msg := e.fails("answer_worker_question", map[string]any{"taskId": a.TaskID, "answer": "yes"})
	if !strings.Contains(msg, "taskId: task "+a.TaskID+" is still pending") {
		t.Errorf("pending: %s", msg)
	}
	e.finishRun(a.TaskID, 1, models.TaskPhaseSucceeded)
	msg = e.fails("answer_worker_question", map[string]any{"taskId": a.TaskID, "answer": "yes"})
	if !strings.Contains(msg, "is not waiting for an answer (status completed)") {
		t.Errorf("completed: %s", msg)
	}
	task, _ := e.store.GetTask(context.Background(), a.TaskID)
	task.Status.PendingQuestion = "Which database?"
	if err := e.store.UpdateTaskStatus(context.Background(), task); err != nil {
		t.Fatal(err)
	}
	st := ok[service.WorkStatusResult](e, "work_status", map[string]any{"taskId": a.TaskID})
	if st.Task.Status != "needs_input" || st.Task.PendingQuestion != "Which database?" {
		t.Fatalf("status %+v", st.Task)
	}
	res := ok[service.FollowUpResult](e, "answer_worker_question", map[string]any{"taskId": a.TaskID, "answer": "the production one"})
	task, _ = e.store.GetTask(context.Background(), a.TaskID)
	if res.Run != 2 || task.Spec.FollowUp != "the production one" || task.Spec.FollowUpKind != models.FollowUpAnswer {
		t.Fatalf("%+v %+v", res, task.Spec)
	}
}

func TestWaitForTasks(t *testing.T) {
	e := newTestEnv(t)
	a, b := e.startTask(nil), e.startTask(nil)
	peek := ok[service.WaitResult](e, "wait_for_tasks", map[string]any{"taskIds": []string{a.TaskID, b.TaskID}, "timeoutSeconds": 0})
	if peek.AllFinished || !peek.TimedOut || len(peek.Tasks) != 2 {
		t.Fatalf("peek %+v", peek)
	}
	// The wait runs beside the test, which finishes the tasks (finishRun may
	// fail the test, so it stays on the test's goroutine).
	type waited struct {
		res *service.WaitResult
		err error
	}
	var reports []string
	out := make(chan waited, 1)
	go func() {
		res, err := e.fe.WaitForTasks(context.Background(), &service.WaitRequest{TaskIDs: []string{a.TaskID, b.TaskID}, Timeout: 10 * time.Second},
			func(_, _ float64, msg string) { reports = append(reports, msg) })
		out <- waited{res, err}
	}()
	time.Sleep(50 * time.Millisecond)
	e.finishRun(a.TaskID, 1, models.TaskPhaseSucceeded, "x")
	time.Sleep(50 * time.Millisecond)
	e.finishRun(b.TaskID, 1, models.TaskPhaseFailed)
	w := <-out
	res, err := w.res, w.err
	if err != nil {
		t.Fatal(err)
	}
	if !res.AllFinished || res.TimedOut || res.Tasks[0].DiffID == "" || res.Tasks[1].Status != "failed" {
		t.Fatalf("%+v", res)
	}
	if len(reports) < 2 || reports[len(reports)-1] != "2 of 2 tasks finished" {
		t.Errorf("reports %v", reports)
	}
}

func TestViewAndListContainerLogs(t *testing.T) {
	e := newTestEnv(t)
	a := e.startTask(nil)
	e.finishRun(a.TaskID, 1, models.TaskPhaseSucceeded)
	dir := filepath.Join(e.cfg.Paths().TaskLogDir, a.TaskID)
	if err := os.MkdirAll(dir, 0o700); err != nil {
		t.Fatal(err)
	}
	var b strings.Builder
	for i := 1; i <= 30; i++ {
		fmt.Fprintf(&b, "2024-05-01T10:00:%02d.123456789Z line %d\n", i, i)
	}
	b.WriteString("no timestamp here\n")
	path := filepath.Join(dir, "run-1.log")
	if err := os.WriteFile(path, []byte(b.String()), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := e.store.UpsertExecutionLog(context.Background(), &models.ExecutionLog{TaskID: a.TaskID, Run: 1, Path: path, Size: int64(b.Len()), Complete: true}); err != nil {
		t.Fatal(err)
	}
	if err := e.store.UpsertContainer(context.Background(), &models.Container{Name: models.ContainerName(a.TaskID, 1), DockerID: "0123456789abcdef0123", TaskID: a.TaskID, Run: 1, State: "exited"}); err != nil {
		t.Fatal(err)
	}

	all := ok[service.LogsResult](e, "view_container_logs", map[string]any{"identifier": a.TaskID})
	if all.TotalLines != 31 || len(all.Lines) != 31 || all.Lines[0] != "line 1" || all.Lines[30] != "no timestamp here" || !all.Complete || all.Truncated {
		t.Fatalf("all: %+v", all)
	}
	tail := ok[service.LogsResult](e, "view_container_logs", map[string]any{"identifier": models.ContainerName(a.TaskID, 1), "tail": 3, "filter": "line"})
	if len(tail.Lines) != 3 || tail.Lines[2] != "line 30" || tail.MatchedLines != 30 || !tail.Truncated {
		t.Fatalf("tail: %+v", tail)
	}
	byID := ok[service.LogsResult](e, "view_container_logs", map[string]any{"identifier": "0123456789ab", "filter": "line 2"})
	if byID.MatchedLines != 11 || byID.Run != 1 { // line 2, 20..29
		t.Fatalf("by docker id: %+v", byID)
	}
	list := ok[service.ListLogsResult](e, "list_container_logs", map[string]any{"sortBy": "size", "limit": 5})
	// The container is the run's usual one, which the task and run name.
	if len(list.Logs) != 1 || list.Logs[0].TaskID != a.TaskID || list.Logs[0].Run != 1 || list.Logs[0].ContainerName != "" {
		t.Fatalf("list: %+v", list)
	}
	fresh := e.startTask(nil)
	none := ok[service.LogsResult](e, "view_container_logs", map[string]any{"identifier": fresh.TaskID})
	if none.Exists || none.Run != 0 {
		t.Fatalf("no run: %+v", none)
	}

	// A run still printing: its row's size lags (written at most once a
	// second); the list says how large the file is now.
	if err := e.store.UpsertExecutionLog(context.Background(), &models.ExecutionLog{TaskID: a.TaskID, Run: 1, Path: path, Size: 3, Complete: false}); err != nil {
		t.Fatal(err)
	}
	list = ok[service.ListLogsResult](e, "list_container_logs", map[string]any{})
	if len(list.Logs) != 1 || list.Logs[0].Size != int64(b.Len()) {
		t.Fatalf("list of a running log: %+v, want size %d", list.Logs, b.Len())
	}
}

type fakeEngine struct{ err error }

func (f *fakeEngine) Ping(context.Context) (string, string, error) { return "20.10.24", "1.41", f.err }

type fakeRuntime struct{}

func (fakeRuntime) RuntimeStatus(context.Context) service.RuntimeSnapshot {
	return service.RuntimeSnapshot{IsLeader: true, Holder: "me", Controllers: []service.ControllerStats{{Name: "task", Running: true, Reconciles: 3}}}
}

func TestSystemStatus(t *testing.T) {
	e := newTestEnv(t)
	a := e.startTask(nil)
	e.finishRun(a.TaskID, 1, models.TaskPhaseSucceeded, "x")
	if _, err := e.store.TryAcquireLease(context.Background(), models.LeaderLease, "host:1:abc", time.Minute); err != nil {
		t.Fatal(err)
	}
	if err := e.store.UpsertContainer(context.Background(), &models.Container{Name: "claude-parallel-x", State: "running", Adopted: true}); err != nil {
		t.Fatal(err)
	}
	engine := &fakeEngine{}
	e.setDeps(func(d *service.Deps) { d.Engine, d.Runtime = engine, fakeRuntime{} })
	res := ok[service.SystemStatusResult](e, "system_status", nil)
	if !res.Docker.Reachable || res.Docker.APIVersion != "1.41" || !res.Leader.Active || res.Leader.Holder != "host:1:abc" ||
		res.Tasks["completed"] != 1 || res.PendingDiffs != 1 || res.Containers != (service.ContainerCounts{Managed: 1, Running: 1, Adopted: 1}) ||
		!res.ThisProcess.IsLeader || len(res.ThisProcess.Controllers) != 1 || res.Paths.Database != e.store.Path() ||
		res.InstallationID == "" || len(res.AllowedRoots) != 1 {
		t.Fatalf("%+v", res)
	}
	engine.err = fmt.Errorf("ping docker engine at unix:///nope: connection refused")
	if again := ok[service.SystemStatusResult](e, "system_status", nil); !again.Docker.Reachable {
		t.Fatalf("the engine's answer is not reused within its time to live: %+v", again.Docker)
	}
	e.setDeps(func(*service.Deps) {}) // a new service has no cached answer: as if it expired
	down := e.call("system_status", map[string]any{})
	if down.IsError || !strings.Contains(resultText(down), "Docker: **unreachable**") {
		t.Fatalf("docker down: %s", resultText(down))
	}
}

func TestGuard_PanicBecomesErrorResult(t *testing.T) {
	e := newTestEnv(t)
	e.setDeps(func(d *service.Deps) { d.Store = nil }) // every store access panics
	res := e.call("work_status", map[string]any{})
	if !res.IsError || !strings.Contains(resultText(res), "internal error in work_status") {
		t.Fatalf("%+v", res)
	}
	if e.logs.FilterMessage("tool handler panicked").Len() != 1 {
		t.Errorf("panic not logged")
	}
}

func TestGuard_LogsArgumentNamesNeverValues(t *testing.T) {
	e := newTestEnv(t)
	secret := "do-not-log-this-prompt"
	e.startTask(map[string]any{"task": secret})
	e.fails("task_worker", map[string]any{"task": secret, "workFolder": "relative/" + secret})
	calls := e.logs.FilterMessage(logging.ToolCallMessage).All()
	if len(calls) != 2 {
		t.Fatalf("%d tool call lines", len(calls))
	}
	for _, c := range calls {
		fields := fmt.Sprint(c.ContextMap())
		if strings.Contains(fields, secret) {
			t.Errorf("value logged: %s", fields)
		}
		if !strings.Contains(fields, "workFolder") || !strings.Contains(fields, "task_worker") {
			t.Errorf("names missing: %s", fields)
		}
	}
	if calls[1].ContextMap()["result"] != "error_result" {
		t.Errorf("bad input not marked: %v", calls[1].ContextMap())
	}
}

// setDiff writes a diff's desired outcome and phase as a front end and the
// diff controller would: the controller's pass observed the spec.
func (e *testEnv) setDiff(id string, desired models.DiffDesired, phase models.DiffPhase) {
	e.t.Helper()
	ctx := context.Background()
	d, err := e.store.UpdateDiffSpec(ctx, id, func(d *models.Diff) error {
		d.Spec.Desired = desired
		return nil
	})
	if err != nil {
		e.t.Fatal(err)
	}
	d.Status.Phase = phase
	d.Status.ObservedGeneration = d.Generation
	if err := e.store.UpdateDiffStatus(ctx, d); err != nil {
		e.t.Fatal(err)
	}
}

// A task that failed before its first run (its dependency failed) can never
// run: it is finished, and a wait for it returns at once (it used to show
// finished false, and `task start --depends-on <failed> --wait` hung).
func TestWaitForTasks_TaskThatCannotRunIsFinished(t *testing.T) {
	e := newTestEnv(t)
	dep := e.startTask(nil)
	e.finishRun(dep.TaskID, 1, models.TaskPhaseFailed)
	a := e.startTask(map[string]any{"dependsOn": []string{dep.TaskID}})
	task, _ := e.store.GetTask(context.Background(), a.TaskID)
	task.Status.Phase, task.Status.Reason = models.TaskPhaseFailed, "DependencyFailed"
	task.Status.Message = "dependency " + dep.TaskID + " failed"
	task.Status.ObservedGeneration = task.Generation
	if err := e.store.UpdateTaskStatus(context.Background(), task); err != nil {
		t.Fatal(err)
	}

	st := ok[service.WorkStatusResult](e, "work_status", map[string]any{"taskId": a.TaskID})
	if !st.Task.Finished || st.Task.Status != "failed" || st.Task.RunNumber != 0 {
		t.Errorf("work_status: %+v, want finished", st.Task)
	}
	res, err := e.fe.WaitForTasks(context.Background(), &service.WaitRequest{TaskIDs: []string{a.TaskID}, Timeout: 5 * time.Second}, nil)
	if err != nil {
		t.Fatal(err)
	}
	if !res.AllFinished || res.TimedOut || !res.Tasks[0].Finished || res.Tasks[0].Reason != "DependencyFailed" {
		t.Fatalf("wait: %+v, want it to return at once with the task finished", res)
	}
	// It has nothing to revise or answer.
	msg := e.fails("answer_worker_question", map[string]any{"taskId": a.TaskID, "answer": "x"})
	if !strings.Contains(msg, "ended before any run started") {
		t.Errorf("answer on a task that never ran: %s", msg)
	}
}

// A failed run that changed files keeps its diff; a revision of it is
// accepted, and the task counts as unfinished until the new run ends — the
// rule the task controller follows to start that run.
func TestRequestRevision_OfAFailedRun(t *testing.T) {
	e := newTestEnv(t)
	a := e.startTask(nil)
	d := e.finishRun(a.TaskID, 1, models.TaskPhaseFailed, "partial.txt")
	res := ok[service.FollowUpResult](e, "request_revision", map[string]any{"diffId": d.ID, "feedback": "finish it"})
	task, _ := e.store.GetTask(context.Background(), a.TaskID)
	if res.Run != 2 || task.Spec.DesiredRuns != 2 || !task.WantsFollowUp() {
		t.Fatalf("res %+v spec %+v: the controller would not start the run", res, task.Spec)
	}
	w := ok[service.WaitResult](e, "wait_for_tasks", map[string]any{"taskIds": []string{a.TaskID}, "timeoutSeconds": 0})
	if w.AllFinished || w.Tasks[0].Finished {
		t.Errorf("a failed task with a revision asked shows finished: %+v", w.Tasks[0])
	}
	e.finishRun(a.TaskID, 2, models.TaskPhaseSucceeded, "done.txt")
	w = ok[service.WaitResult](e, "wait_for_tasks", map[string]any{"taskIds": []string{a.TaskID}, "timeoutSeconds": 0})
	if !w.AllFinished {
		t.Errorf("after run 2: %+v", w.Tasks[0])
	}
}

// An apply that met a conflict ends that request: the diff waits for a
// decision again, and only a new apply_changes (same arguments included)
// applies it — as a new generation the diff controller carries out.
func TestApplyChanges_ConflictEndsTheRequest(t *testing.T) {
	e := newTestEnv(t)
	a := e.startTask(nil)
	d := e.finishRun(a.TaskID, 1, models.TaskPhaseSucceeded, "out.txt")
	playDiffControllerSeq(t, e.store, models.DiffPhaseConflict, models.DiffPhaseApplied)

	res := ok[service.ApplyResult](e, "apply_changes", map[string]any{"diffId": d.ID})
	if res.Outcome != service.OutcomeConflict || !strings.Contains(res.Message, "NOT applied") || !strings.Contains(res.Message, "apply_changes again") {
		t.Fatalf("first apply: %+v", res)
	}
	list := ok[service.ReviewResult](e, "review_changes", nil)
	if len(list.Pending) != 1 || list.Pending[0].DiffID != d.ID || list.Pending[0].Desired != "pending" {
		t.Fatalf("after the conflict the diff is not waiting for a decision: %+v", list)
	}
	before, _ := e.store.GetDiff(context.Background(), d.ID)
	again := ok[service.ApplyResult](e, "apply_changes", map[string]any{"diffId": d.ID})
	after, _ := e.store.GetDiff(context.Background(), d.ID)
	if again.Outcome != service.OutcomeApplied || after.Generation <= before.Generation || after.Spec.Desired != models.DiffDesiredApplied {
		t.Fatalf("second apply: %+v, generation %d→%d: want a new request carried out", again, before.Generation, after.Generation)
	}
}

// A run whose change was too large to keep has no diff; asking for it says
// so and passes on where the result is (the task's message).
func TestReviewChanges_PatchTooLargeSaysWhereTheResultIs(t *testing.T) {
	e := newTestEnv(t)
	a := e.startTask(nil)
	e.finishRun(a.TaskID, 1, models.TaskPhaseSucceeded)
	task, _ := e.store.GetTask(context.Background(), a.TaskID)
	task.Status.Reason = "PatchTooLarge"
	task.Status.Message = "no diff was kept: patch too large; its files under /ws/work"
	if err := e.store.UpdateTaskStatus(context.Background(), task); err != nil {
		t.Fatal(err)
	}
	msg := e.fails("review_changes", map[string]any{"taskId": a.TaskID})
	if !strings.Contains(msg, "has no diff (status completed, reason PatchTooLarge): no diff was kept") || !strings.Contains(msg, "/ws/work") {
		t.Errorf("no-diff message: %s", msg)
	}
}

// wait_for_tasks takes at most MaxWaitTasks ids: its description says so (a
// model reads it before calling), and a longer list is refused naming it.
func TestWaitForTasks_LimitIsDocumented(t *testing.T) {
	e := newTestEnv(t)
	tool, _ := WaitForTasksTool(e.fe)
	limit := fmt.Sprintf("at most %d task ids", service.MaxWaitTasks)
	if !strings.Contains(tool.Description, limit) {
		t.Errorf("wait_for_tasks description does not state its limit (%q):\n%s", limit, tool.Description)
	}
	ids := make([]any, service.MaxWaitTasks+1)
	for i := range ids {
		ids[i] = fmt.Sprintf("task-%012x", i)
	}
	if msg := e.fails("wait_for_tasks", map[string]any{"taskIds": ids}); !strings.Contains(msg, limit) {
		t.Errorf("refusal of %d ids: %s", len(ids), msg)
	}
	readme, err := os.ReadFile("../README.md")
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(string(readme), fmt.Sprintf("at most %d task ids per call", service.MaxWaitTasks)) {
		t.Errorf("README does not state wait_for_tasks's limit of %d ids", service.MaxWaitTasks)
	}
}
