package service

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/claude-parallel/claude-parallel/models"
)

// StartTask validates what DecodeTaskWorker could not (the work folder, the
// base ref, the dependencies) and stores the task intent. With a
// parentTaskId that is already known, the existing task is returned and
// nothing is written.
func (f *Frontend) StartTask(ctx context.Context, req *TaskWorkerRequest) (*TaskWorkerResult, error) {
	if err := req.Check(f.cfg()); err != nil {
		return nil, err
	}
	cfg := f.cfg()
	var probs InputErrors
	folder, ierr := resolveRepoDir(ctx, "workFolder", req.WorkFolder, cfg.AllowedRoots)
	if ierr != nil {
		probs = append(probs, ierr)
	} else if req.BaseRef != "" {
		if ierr := checkRefExists(ctx, "baseRef", folder, req.BaseRef); ierr != nil {
			probs = append(probs, ierr)
		}
	}
	missing, err := f.missingTasks(ctx, req.DependsOn)
	if err != nil {
		return nil, err
	}
	for _, id := range missing {
		i := slices.Index(req.DependsOn, id)
		probs = append(probs, &InputError{Arg: fmt.Sprintf("dependsOn[%d]", i),
			Problem: fmt.Sprintf("no task %s exists", id), Accepted: "ids of existing tasks", Kind: ErrNotFound})
	}
	if err := inputErr(probs); err != nil {
		return nil, err
	}

	task := &models.Task{Spec: models.TaskSpec{
		Prompt:             req.Prompt,
		Description:        req.Description,
		WorkFolder:         folder,
		BaseRef:            req.BaseRef,
		IncludeUncommitted: req.IncludeUncommitted,
		Agent:              req.Agent,
		MemoryBytes:        req.MemoryBytes,
		NanoCPUs:           req.NanoCPUs,
		TimeoutSeconds:     int64((req.Timeout + time.Second - 1) / time.Second),
		Priority:           req.Priority,
		DependsOn:          req.DependsOn,
		ParentTaskID:       req.ParentTaskID,
		ReturnMode:         req.ReturnMode,
	}}
	t, created, err := f.d.Store.CreateTask(ctx, task)
	if err != nil {
		return nil, fmt.Errorf("store task: %w", err)
	}
	res := &TaskWorkerResult{TaskID: t.ID, Status: string(t.Status.State), Phase: string(t.Status.Phase),
		Created: created, WorkFolder: t.Spec.WorkFolder, Agent: t.Spec.Agent}
	if created {
		// The intent is committed (and fsync'd); the controllers learn of
		// it once the reply is out (or at their next resync, should no
		// reply be written).
		id := t.ID
		afterReply(ctx, func() { f.notify("task", id) })
	} else {
		res.Message = fmt.Sprintf("a task with parentTaskId %s already exists; it is returned instead of a new one", Quote(req.ParentTaskID))
	}
	return res, nil
}

// missingTasks returns the ids among ids that name no task.
func (f *Frontend) missingTasks(ctx context.Context, ids []string) ([]string, error) {
	if len(ids) == 0 {
		return nil, nil
	}
	found, err := f.d.Store.TasksByID(ctx, ids)
	if err != nil {
		return nil, fmt.Errorf("look up tasks: %w", err)
	}
	var missing []string
	for _, id := range ids {
		if found[id] == nil {
			missing = append(missing, id)
		}
	}
	return missing, nil
}

// eventsShown is how many timeline entries a task view carries.
const eventsShown = 20

// WorkStatus returns one task in full, or the newest tasks with counts.
func (f *Frontend) WorkStatus(ctx context.Context, req *WorkStatusRequest) (*WorkStatusResult, error) {
	if err := req.Check(); err != nil {
		return nil, err
	}
	counts, total, err := f.taskCounts(ctx)
	if err != nil {
		return nil, err
	}
	res := &WorkStatusResult{Counts: counts, Total: total, Filter: string(req.Status)}
	if req.TaskID != "" {
		res.Task, err = f.taskDetail(ctx, req.TaskID)
		return res, err
	}
	// One row more than the page tells whether another page follows.
	filter := models.TaskFilter{Limit: req.Limit + 1, Paged: true, After: req.After}
	if req.Status != "" {
		filter.States = []models.TaskState{req.Status}
	}
	tasks, err := f.d.Store.ListTasks(ctx, filter)
	if err != nil {
		return nil, fmt.Errorf("list tasks: %w", err)
	}
	if len(tasks) > req.Limit {
		tasks = tasks[:req.Limit]
		last := tasks[len(tasks)-1]
		res.NextCursor = models.Cursor{Time: last.StartTime, ID: last.ID}.String()
	}
	res.Tasks = make([]TaskSummary, 0, len(tasks))
	for i := range tasks {
		res.Tasks = append(res.Tasks, newTaskSummary(&tasks[i]))
	}
	return res, nil
}

func (f *Frontend) taskCounts(ctx context.Context) (map[string]int64, int64, error) {
	byState, err := f.d.Store.CountTasksByStatus(ctx)
	if err != nil {
		return nil, 0, fmt.Errorf("count tasks: %w", err)
	}
	counts := make(map[string]int64, len(models.TaskStates()))
	var total int64
	for _, s := range models.TaskStates() {
		counts[string(s)] = byState[s]
		total += byState[s]
	}
	return counts, total, nil
}

// taskDetail is one task with its diff size and recent timeline.
func (f *Frontend) taskDetail(ctx context.Context, id string) (*TaskView, error) {
	t, err := f.getTask(ctx, "taskId", id)
	if err != nil {
		return nil, err
	}
	v := newTaskView(t)
	if t.Status.DiffID != "" {
		// One column by key: the diff's row (its per-file list) would be most
		// of this read's work.
		n, err := f.d.Store.DiffFilesChanged(ctx, t.Status.DiffID)
		switch {
		case err == nil:
			v.FilesChanged = &n
		case !errors.Is(err, models.ErrNotFound):
			return nil, fmt.Errorf("read diff of task %s: %w", id, err)
		}
	}
	events, err := f.d.Store.ListEvents(ctx, models.EventKindTask, id, eventsShown)
	if err != nil {
		return nil, fmt.Errorf("read events of task %s: %w", id, err)
	}
	for _, e := range events {
		v.Events = append(v.Events, EventView{Time: e.Time, Reason: e.Reason, Message: e.Message})
	}
	return v, nil
}

// CancelTask asks for a task to be stopped. A finished task is left alone.
func (f *Frontend) CancelTask(ctx context.Context, req *CancelRequest) (*CancelResult, error) {
	if err := req.Check(); err != nil {
		return nil, err
	}
	t, err := f.getTask(ctx, "taskId", req.TaskID)
	if err != nil {
		return nil, err
	}
	res := &CancelResult{TaskID: t.ID}
	switch {
	case t.Finished() && t.Spec.DesiredState != models.TaskDesiredCancel:
		res.Message = fmt.Sprintf("task already finished with status %s; nothing to cancel", t.Status.State)
	case t.Spec.DesiredState == models.TaskDesiredCancel:
		res.CancelRequested = true
		res.Message = "cancellation was already requested"
	default:
		t, err = f.d.Store.UpdateTaskSpec(ctx, t.ID, func(cur *models.Task) error {
			cur.Spec.DesiredState = models.TaskDesiredCancel
			cur.Spec.CancelReason = req.Reason
			return nil
		})
		if err != nil {
			return nil, fmt.Errorf("request cancellation: %w", err)
		}
		f.notify("task", t.ID)
		res.CancelRequested = true
		res.Message = "cancellation requested; the task ends as cancelled"
	}
	res.Status, res.Phase = string(t.Status.State), string(t.Status.Phase)
	return res, nil
}

// followUp is a revision or an answer: one more run of a task, carrying text.
type followUp struct {
	kind   models.FollowUpKind
	text   string
	diffID string // the diff revised; "" for an answer
	check  func(t *models.Task) *InputError
}

// requestRun adds a run to a finished task. The checks run again inside
// the update, so two racing calls cannot both add a run.
func (f *Frontend) requestRun(ctx context.Context, taskID string, fu followUp) (*models.Task, error) {
	t, err := f.d.Store.UpdateTaskSpec(ctx, taskID, func(cur *models.Task) error {
		if ierr := fu.check(cur); ierr != nil {
			return ierr
		}
		cur.Spec.DesiredRuns = cur.Status.RunNumber + 1
		cur.Spec.FollowUp = fu.text
		cur.Spec.FollowUpKind = fu.kind
		cur.Spec.RevisionOfDiff = fu.diffID
		return nil
	})
	if err != nil {
		if ie := asInputError(err); ie != nil {
			return nil, ie // the check refused inside the transaction
		}
		if errors.Is(err, models.ErrNotFound) {
			return nil, &InputError{Arg: "taskId", Problem: fmt.Sprintf("no task %s exists", taskID), Accepted: "the id of an existing task", Kind: ErrNotFound}
		}
		return nil, fmt.Errorf("request a new run of task %s: %w", taskID, err)
	}
	f.notify("task", t.ID)
	return t, nil
}

// readyForFollowUp explains why a task cannot take another run now, or
// returns nil. The rule is models.Task.FollowUpBlock, the one the task
// controller follows; arg names the argument the caller identified it by.
func readyForFollowUp(t *models.Task, arg string) *InputError {
	switch t.FollowUpBlock() {
	case models.FollowUpCancelled:
		return &InputError{Arg: arg, Problem: fmt.Sprintf("task %s was cancelled", t.ID), Accepted: "a task that was not cancelled; start a new one with task_worker"}
	case models.FollowUpRunning:
		return &InputError{Arg: arg, Problem: fmt.Sprintf("task %s is still %s", t.ID, t.Status.State),
			Accepted: "a task whose run has finished; wait for it with wait_for_tasks"}
	case models.FollowUpNeverRan:
		return &InputError{Arg: arg, Problem: fmt.Sprintf("task %s ended before any run started (%s)", t.ID, firstNonEmpty(t.Status.Message, t.Status.Reason, string(t.Status.State))),
			Accepted: "a task that ran; start a new one with task_worker"}
	case models.FollowUpRequested:
		return &InputError{Arg: arg, Problem: fmt.Sprintf("task %s already has run %d requested and not finished", t.ID, t.Spec.DesiredRuns),
			Accepted: "a task whose last run has finished; wait for it with wait_for_tasks"}
	}
	return nil
}

// RequestRevision asks the agent to revise a diff: the task gets one more
// run, continuing from its workspace, with the feedback as its prompt. The
// diff stays as it is until the new run's diff supersedes it.
func (f *Frontend) RequestRevision(ctx context.Context, req *RevisionRequest) (*FollowUpResult, error) {
	if err := req.Check(); err != nil {
		return nil, err
	}
	d, err := f.getDiff(ctx, "diffId", req.DiffID)
	if err != nil {
		return nil, err
	}
	check := func(t *models.Task) *InputError {
		if ierr := revisableDiff(d, t); ierr != nil {
			return ierr
		}
		return readyForFollowUp(t, "diffId")
	}
	t, err := f.d.Store.GetTask(ctx, d.TaskID)
	if err != nil {
		return nil, fmt.Errorf("read task %s of diff %s: %w", d.TaskID, d.ID, err)
	}
	if ierr := check(t); ierr != nil {
		return nil, ierr
	}
	conversational := f.cfg().Profiles[t.Spec.Agent].OutputFormat == "stream-json"
	t, err = f.requestRun(ctx, t.ID, followUp{kind: models.FollowUpRevision, text: revisionText(req, conversational), diffID: d.ID, check: check})
	if err != nil {
		return nil, err
	}
	return &FollowUpResult{TaskID: t.ID, DiffID: d.ID, Run: t.Spec.DesiredRuns, Status: string(t.Status.State),
		Message: "revision requested; its diff will supersede this one"}, nil
}

// revisableDiff explains why diff d of task t cannot be revised, or returns nil.
func revisableDiff(d *models.Diff, t *models.Task) *InputError {
	bad := func(problem, accepted string) *InputError {
		return &InputError{Arg: "diffId", Problem: problem, Accepted: accepted}
	}
	switch {
	case d.Status.State == models.DiffStateSuperseded || (t.Status.DiffID != "" && t.Status.DiffID != d.ID):
		return bad(fmt.Sprintf("diff %s was superseded by %s, the diff of a newer run", d.ID, firstNonEmpty(t.Status.DiffID, "a newer diff")),
			"the newest diff of the task")
	case d.Spec.Desired == models.DiffDesiredRejected || d.Status.State == models.DiffStateRejected:
		return bad(fmt.Sprintf("diff %s was rejected", d.ID), "a pending diff; start a new task with task_worker instead")
	case d.Decision() == models.DiffDesiredApplied:
		return bad(fmt.Sprintf("diff %s was applied (or is being applied)", d.ID), "a pending diff; start a new task for further changes")
	}
	return nil
}

// revisionText is the prompt of a revision run. A conversational agent
// (one speaking stream-json, such as claude) gets the feedback framed in
// prose; a script agent (output format text, such as shell) runs its prompt,
// so it gets the feedback and the extra context as they are, one after the
// other, and nothing it would try to execute.
func revisionText(req *RevisionRequest, conversational bool) string {
	if !conversational {
		if req.AdditionalContext == "" {
			return req.Feedback
		}
		return req.Feedback + "\n" + req.AdditionalContext
	}
	var b strings.Builder
	b.WriteString(req.Feedback)
	if req.AdditionalContext != "" {
		b.WriteString("\n\nAdditional context:\n")
		b.WriteString(req.AdditionalContext)
	}
	if req.PreserveCorrectParts {
		b.WriteString("\n\nKeep the parts of your previous change that are correct; change only what this feedback asks for.")
	}
	return b.String()
}

// AnswerQuestion answers the question a task's agent asked: the task gets
// one more run, continuing its session with the answer.
func (f *Frontend) AnswerQuestion(ctx context.Context, req *AnswerRequest) (*FollowUpResult, error) {
	if err := req.Check(); err != nil {
		return nil, err
	}
	t, err := f.getTask(ctx, "taskId", req.TaskID)
	if err != nil {
		return nil, err
	}
	check := func(t *models.Task) *InputError {
		if ierr := readyForFollowUp(t, "taskId"); ierr != nil {
			return ierr
		}
		if t.Status.State != models.TaskStateNeedsInput {
			return &InputError{Arg: "taskId", Problem: fmt.Sprintf("task %s is not waiting for an answer (status %s)", t.ID, t.Status.State),
				Accepted: "a task whose status is needs_input"}
		}
		return nil
	}
	if ierr := check(t); ierr != nil {
		return nil, ierr
	}
	t, err = f.requestRun(ctx, t.ID, followUp{kind: models.FollowUpAnswer, text: req.Answer, check: check})
	if err != nil {
		return nil, err
	}
	return &FollowUpResult{TaskID: t.ID, Run: t.Spec.DesiredRuns, Status: string(t.Status.State),
		Message: "answer sent; the agent continues with it"}, nil
}

// WaitForTasks waits until every task has finished (or needs input) or the
// bound passes, reporting progress whenever a task finishes and every few
// seconds in between.
func (f *Frontend) WaitForTasks(ctx context.Context, req *WaitRequest, progress ProgressFunc) (*WaitResult, error) {
	if err := req.Check(); err != nil {
		return nil, err
	}
	if progress == nil {
		progress = noProgress
	}
	missing, err := f.missingTasks(ctx, req.TaskIDs)
	if err != nil {
		return nil, err
	}
	var probs InputErrors
	for _, id := range missing {
		probs = append(probs, &InputError{Arg: fmt.Sprintf("taskIds[%d]", slices.Index(req.TaskIDs, id)),
			Problem: fmt.Sprintf("no task %s exists", id), Accepted: "ids of existing tasks", Kind: ErrNotFound})
	}
	if err := inputErr(probs); err != nil {
		return nil, err
	}

	start := time.Now()
	res := &WaitResult{}
	lastDone, lastReport := -1, time.Time{}
	timedOut, err := f.pollUntil(ctx, req.Timeout, func() (bool, error) {
		views, done, err := f.waitViews(ctx, req.TaskIDs)
		if err != nil {
			return false, err
		}
		res.Tasks = views
		if done != lastDone || time.Since(lastReport) >= progressHeartbeat {
			elapsed := time.Since(start).Seconds()
			progress(elapsed, req.Timeout.Seconds(), fmt.Sprintf("%d of %d tasks finished", done, len(views)))
			lastDone, lastReport = done, time.Now()
		}
		return done == len(views), nil
	})
	if err != nil {
		return nil, err
	}
	res.WaitedSeconds = time.Since(start).Round(time.Millisecond).Seconds()
	res.TimedOut = timedOut
	res.AllFinished = !timedOut
	return res, nil
}

// progressHeartbeat is how often a wait reports progress when nothing
// changed, so a client that resets its timeout on progress keeps waiting.
const progressHeartbeat = 5 * time.Second

func (f *Frontend) waitViews(ctx context.Context, ids []string) ([]TaskWaitView, int, error) {
	tasks, err := f.d.Store.TasksByID(ctx, ids)
	if err != nil {
		return nil, 0, fmt.Errorf("read tasks: %w", err)
	}
	views := make([]TaskWaitView, 0, len(ids))
	done := 0
	for _, id := range ids {
		t := tasks[id]
		if t == nil {
			// Deleted while waiting (retention): it will not finish any more.
			views = append(views, TaskWaitView{TaskID: id, Status: "deleted", Finished: true, Message: "the task no longer exists"})
			done++
			continue
		}
		v := newTaskWaitView(t)
		if v.Finished {
			done++
		}
		views = append(views, v)
	}
	return views, done, nil
}
