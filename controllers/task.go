package controllers

import (
	"context"
	"errors"
	"fmt"
	"reflect"
	"strings"
	"time"
	"unicode/utf8"

	"go.uber.org/zap"

	"github.com/claude-parallel/claude-parallel/models"
	"github.com/claude-parallel/claude-parallel/reconciler"
)

// The task reconciler carries a task from its intent (phase Pending) through
//
//	Pending → Preparing → Running → Collecting → Succeeded | Failed | TimedOut | Cancelled
//
// and, when a revision or an answer asks for another run of a task whose run
// ended (models.Task.WantsFollowUp), back to Pending for that run. Each pass
// reads the task and the world, runs the steps of the task's phase
// (task_steps.go), and writes the status once, in a deferred block, only if
// it changed. Every step is idempotent and its
// side effects live where a restarted controller finds them again — the
// workspace marker on disk, the container's deterministic name and labels in
// Docker, the diff row keyed by task and run — so a crash between any two
// steps ends in adoption, never in a second container.

const (
	// conflictRequeue is how soon a pass whose status write lost a race runs
	// again on fresh data. The status has one writer (this controller); a
	// front end's spec change (cancel, answer, revision) moves the row too.
	conflictRequeue = 50 * time.Millisecond
	// supersedeRequeue is how soon a collecting run whose older diffs the
	// diff controller has been asked to supersede looks again.
	supersedeRequeue = 20 * time.Millisecond
	// waitRequeue is the fallback poll for a task waiting for a slot or a
	// dependency; the normal wake-up is an Enqueue when a run ends.
	waitRequeue = 5 * time.Second
)

// Reasons written to TaskStatus.Reason (CamelCase, for machines; Message is
// the sentence for people).
const (
	ReasonWaitingForSlot   = "WaitingForSlot"
	ReasonWaitingForDeps   = "WaitingForDependencies"
	ReasonDependencyFailed = "DependencyFailed"
	ReasonInvalidSpec      = "InvalidSpec"
	ReasonPrepareFailed    = "PrepareFailed"
	ReasonImageNotFound    = "ImageNotFound"
	ReasonRefused          = "Refused"
	ReasonNameTaken        = "ContainerNameTaken"
	ReasonStartFailed      = "StartFailed"
	ReasonVanished         = "ContainerVanished"
	ReasonPaused           = "ContainerPaused"
	ReasonTimedOut         = "TimedOut"
	ReasonOOMKilled        = "OOMKilled"
	ReasonDaemonRestart    = "DockerDaemonRestart"
	ReasonExitCode         = "ExitCode"
	// ReasonAgentError: the agent exited non-zero and said why in its final
	// result (Claude Code's "API Error: 401 …", "… ECONNREFUSED", …).
	ReasonAgentError       = "AgentError"
	ReasonCancelled        = "Cancelled"
	ReasonCompleted        = "Completed"
	ReasonNoChanges        = "NoChanges"
	ReasonPatchTooLarge    = "PatchTooLarge"
	ReasonWorkspaceMissing = "WorkspaceMissing"
	ReasonFollowUp         = "FollowUpRequested"
	ReasonRetrying         = "RetryingAfterError"
	ReasonUncapturable     = "UncapturableWorkTree"
)

// retryNoteTimeout bounds the status write that tells of a pass which ran out
// of its own time (see noteRetry).
const retryNoteTimeout = 10 * time.Second

// taskReconciler is the task controller's Reconciler; keys are task ids. It
// depends on taskDeps (taskdeps.go), not on System.
type taskReconciler struct{ deps *taskDeps }

// taskScope is what the steps of one pass share.
type taskScope struct {
	task   *models.Task      // steps change task.Status only
	before models.TaskStatus // status as read, to detect a change
	result reconciler.Result

	// release gives back an admission reservation once the status is written.
	release func()
	// events are recorded, and steps reported, only after the status write
	// that made them true succeeded.
	events []taskEvent
	steps  []Step
}

type taskEvent struct{ reason, message string }

func (sc *taskScope) event(reason, message string) {
	sc.events = append(sc.events, taskEvent{reason, message})
}

// noteRetry puts the error of a failed pass on the status of a task that is
// still starting (Pending or Preparing), where nothing else would tell anyone
// why it does not move on: the pass is retried with backoff, and the next one
// that gets further replaces the line. It reports whether it did. Later
// phases keep their reasons (Collecting carries TimedOut or OOMKilled to the
// outcome); terminal errors and passes cancelled by a shutdown or a lost
// lease are not retried here, so they write nothing.
func (sc *taskScope) noteRetry(err error) bool {
	st := &sc.task.Status
	if reconciler.IsTerminal(err) || errors.Is(err, context.Canceled) || st.Finished ||
		st.Phase != models.TaskPhasePending && st.Phase != models.TaskPhasePreparing {
		return false
	}
	msg := fmt.Sprintf("%v; retrying", err)
	if st.Reason != ReasonRetrying || st.Message != msg {
		if sc.before.Reason != ReasonRetrying {
			sc.event(ReasonRetrying, msg) // once per streak, not per attempt
		}
		st.Reason, st.Message = ReasonRetrying, msg
	}
	return true
}

// requeueAfter asks for another pass within d, keeping the sooner request.
func (sc *taskScope) requeueAfter(d time.Duration) {
	if d <= 0 {
		d = time.Millisecond
	}
	if sc.result.RequeueAfter == 0 || d < sc.result.RequeueAfter {
		sc.result.RequeueAfter = d
	}
}

// Reconcile moves one task one step towards its spec.
func (r *taskReconciler) Reconcile(ctx context.Context, req reconciler.Request) (res reconciler.Result, reterr error) {
	s := r.deps
	task, err := s.store.GetTask(ctx, req.Key)
	if errors.Is(err, models.ErrNotFound) {
		return res, nil
	}
	if err != nil {
		return res, fmt.Errorf("reconcile task %s: %w", req.Key, err)
	}
	if task.Settled() {
		return res, nil
	}

	sc := &taskScope{task: task, before: task.Status, release: func() {}}
	log := s.log.With(zap.String("task", task.ID), zap.Int("run", task.Status.RunNumber))
	defer func() {
		defer sc.release()
		wctx := ctx
		if reterr != nil && sc.noteRetry(reterr) && errors.Is(ctx.Err(), context.DeadlineExceeded) {
			// The pass ran out of time (git blocked, Docker not answering);
			// the line saying so still needs its write. A pass cancelled
			// because the lease was lost never gets here.
			var cancel context.CancelFunc
			wctx, cancel = context.WithTimeout(context.WithoutCancel(ctx), retryNoteTimeout)
			defer cancel()
		}
		werr := r.writeStatus(wctx, sc, reterr == nil)
		switch {
		case werr == nil:
			res = sc.result
		case errors.Is(werr, models.ErrConflict) && reterr == nil:
			// A front end changed the spec in between; decide again on
			// fresh data rather than overwrite it.
			log.Debug("task status write conflicted, requeueing", zap.Error(werr))
			res = reconciler.Result{RequeueAfter: conflictRequeue}
		case errors.Is(werr, models.ErrNotFound) && reterr == nil:
			res = reconciler.Result{}
		default:
			reterr = errors.Join(reterr, werr)
		}
	}()
	return res, r.reconcilePhase(ctx, sc)
}

// reconcilePhase runs the steps of the task's phase.
func (r *taskReconciler) reconcilePhase(ctx context.Context, sc *taskScope) error {
	t := sc.task
	if t.Status.Finished {
		return r.reconcileFollowUp(ctx, sc)
	}
	if t.Spec.DesiredState == models.TaskDesiredCancel {
		done, err := r.reconcileCancel(ctx, sc)
		if done || err != nil {
			return err
		}
	}
	if done, err := r.guardDisk(ctx, sc); done || err != nil {
		return err
	}
	switch t.Status.Phase {
	case models.TaskPhasePending:
		return r.reconcilePending(ctx, sc)
	case models.TaskPhasePreparing:
		return r.reconcilePreparing(ctx, sc)
	case models.TaskPhaseRunning:
		return r.reconcileRunning(ctx, sc)
	case models.TaskPhaseCollecting:
		return r.reconcileCollecting(ctx, sc)
	default:
		// Written by a newer binary, or by hand: retrying cannot help.
		return reconciler.Terminal(fmt.Errorf("task %s: unknown phase %q", t.ID, t.Status.Phase))
	}
}

// writeStatus is the pass's single status write: only when something changed,
// with the observed generation bumped only after a successful pass. The
// pass's events are committed with it, in one transaction; then it reports
// its steps and wakes whoever the transition concerns.
func (r *taskReconciler) writeStatus(ctx context.Context, sc *taskScope, passOK bool) error {
	s, t := r.deps, sc.task
	if passOK && observesGeneration(t) {
		t.Status.ObservedGeneration = t.Generation
	}
	redactTaskWrite(s.config().Redactor(), &t.Status, sc.events)
	if reflect.DeepEqual(sc.before, t.Status) {
		return nil
	}
	from, to := sc.before.Phase, t.Status.Phase
	if from != to && !hasEvent(sc.events, string(to)) {
		sc.event(string(to), phaseEventMessage(t))
	}
	timeline := make([]models.TimelineEntry, 0, len(sc.events))
	for _, e := range sc.events {
		timeline = append(timeline, models.TimelineEntry{Reason: e.reason, Message: e.message})
	}
	if err := s.store.UpdateTaskStatus(ctx, t, timeline...); err != nil {
		return fmt.Errorf("write status: %w", err)
	}
	for _, st := range sc.steps {
		s.step(st, t.ID, t.Status.RunNumber)
	}
	if from != to {
		s.log.Info("task phase changed", zap.String("task", t.ID), zap.Int("run", t.Status.RunNumber),
			zap.String("from", string(from)), zap.String("to", string(to)),
			zap.String("reason", t.Status.Reason), zap.String("message", t.Status.Message))
		// Carry on with the next phase at once instead of waiting for a
		// resync; the queue runs it after this pass returns.
		if !t.Settled() {
			s.notify(KindTask, t.ID)
		}
		if holdsSlot(from) && !holdsSlot(to) || to.Terminal() {
			s.wakePending(ctx)
		}
	}
	return nil
}

func hasEvent(events []taskEvent, reason string) bool {
	for _, e := range events {
		if e.reason == reason {
			return true
		}
	}
	return false
}

// phaseEventMessage is the timeline sentence for entering t's phase.
func phaseEventMessage(t *models.Task) string {
	st := t.Status
	switch st.Phase {
	case models.TaskPhasePreparing:
		return fmt.Sprintf("admitted for run %d", st.RunNumber)
	case models.TaskPhaseRunning:
		return fmt.Sprintf("run %d running in container %s", st.RunNumber, st.ContainerName)
	case models.TaskPhaseCollecting:
		code := -1
		if st.ExitCode != nil {
			code = *st.ExitCode
		}
		return fmt.Sprintf("run %d exited with code %d; collecting its changes", st.RunNumber, code)
	}
	if st.Message != "" {
		return st.Message
	}
	return string(st.Phase)
}

// holdsSlot reports whether a task in phase p counts against max_parallel.
func holdsSlot(p models.TaskPhase) bool {
	return p == models.TaskPhasePreparing || p == models.TaskPhaseRunning
}

// observesGeneration reports whether a successful pass may record the task's
// generation as observed. While a requested run has not been started it may
// not: the unobserved generation is what keeps a finished task in the live
// set (models.Store.ListLiveTaskIDs), so a follow-up asked for during a run
// is started after it even if the process dies in between.
func observesGeneration(t *models.Task) bool {
	if t.Spec.DesiredRuns <= t.Status.RunNumber || t.Spec.DesiredState == models.TaskDesiredCancel {
		return true
	}
	// A run that ended and cannot be followed up (none ever started) voids
	// the request; record it as seen.
	return t.Status.Finished && !t.WantsFollowUp()
}

// nextRunNumber is the number of the run a pending task starts when admitted:
// 1 for the first run, then the newest run asked for (intermediate requests
// superseded by a later one are not run one by one).
func nextRunNumber(t *models.Task) int {
	if t.Status.RunNumber == 0 {
		return 1
	}
	return max(t.Spec.DesiredRuns, t.Status.RunNumber+1)
}

// taskTimeout is how long a run may last: the task's own timeout capped by
// max_task_timeout, else default_task_timeout.
func (s *taskDeps) taskTimeout(t *models.Task) time.Duration {
	d := s.config().DefaultTaskTimeout.Duration
	if t.Spec.TimeoutSeconds > 0 {
		d = time.Duration(t.Spec.TimeoutSeconds) * time.Second
	}
	if ceiling := s.config().MaxTaskTimeout.Duration; ceiling > 0 && d > ceiling {
		d = ceiling
	}
	return d
}

// captureKind is what capturing a run's changes gave.
type captureKind int

const (
	captureDiff      captureKind = iota // a diff was stored
	captureNone                         // the work tree equals the base
	captureTooLarge                     // the patch exceeded max_patch_bytes; its commit is kept
	captureNoWorkdir                    // the workspace was gone
	captureRefused                      // the work tree cannot be captured (workspace.ErrUncapturable)
)

// outcomeInput is everything the final phase of a run depends on.
type outcomeInput struct {
	Cancelled    bool
	CancelReason string
	Reason       string // carried from Running: ReasonTimedOut, ReasonOOMKilled or ReasonDaemonRestart
	Message      string // carried with Reason
	ExitCode     int
	Capture      captureKind
	CaptureText  string // summary of the diff, or why there is none
	Question     string // the agent's final question (stream-json profiles), if any
	// AgentResult is the agent's final result text (stream-json profiles):
	// on a failed run, the agent's own account of what went wrong.
	AgentResult string
}

// outcome is the final status of a run.
type outcome struct {
	Phase           models.TaskPhase
	Reason, Message string
	PendingQuestion string
}

// runOutcome decides how a run ends. A cancelled or timed-out run keeps that
// phase whatever its exit code; otherwise the exit code decides, and a run
// that succeeded says what it left behind. Only a successful run with no
// change may leave a question for the user (the store then shows needs_input).
func runOutcome(in outcomeInput) outcome {
	switch {
	case in.Cancelled:
		return outcome{Phase: models.TaskPhaseCancelled, Reason: ReasonCancelled, Message: cancelMessage(in.CancelReason)}
	case in.Reason == ReasonTimedOut:
		return outcome{Phase: models.TaskPhaseTimedOut, Reason: ReasonTimedOut, Message: in.Message}
	case in.Reason == ReasonOOMKilled:
		return outcome{Phase: models.TaskPhaseFailed, Reason: ReasonOOMKilled, Message: in.Message}
	case in.Reason == ReasonDaemonRestart:
		// Not retried: the run was cut half-way, it may have changed files
		// and spent money, and a rerun on that half-changed workspace is not
		// what the user asked for. They decide, with the partial diff and
		// log in hand.
		return outcome{Phase: models.TaskPhaseFailed, Reason: ReasonDaemonRestart, Message: in.Message}
	case in.ExitCode != 0 && strings.TrimSpace(in.AgentResult) != "":
		return outcome{Phase: models.TaskPhaseFailed, Reason: ReasonAgentError,
			Message: fmt.Sprintf("exited with code %d: %s", in.ExitCode, clipTo(strings.TrimSpace(in.AgentResult), maxReasonText))}
	case in.ExitCode != 0:
		return outcome{Phase: models.TaskPhaseFailed, Reason: ReasonExitCode,
			Message: fmt.Sprintf("exited with code %d", in.ExitCode)}
	}
	switch in.Capture {
	case captureTooLarge:
		return outcome{Phase: models.TaskPhaseSucceeded, Reason: ReasonPatchTooLarge, Message: in.CaptureText}
	case captureNoWorkdir:
		return outcome{Phase: models.TaskPhaseFailed, Reason: ReasonWorkspaceMissing, Message: in.CaptureText}
	case captureRefused:
		return outcome{Phase: models.TaskPhaseFailed, Reason: ReasonUncapturable, Message: in.CaptureText}
	case captureNone:
		return outcome{Phase: models.TaskPhaseSucceeded, Reason: ReasonNoChanges, Message: "no changes",
			PendingQuestion: in.Question}
	default:
		return outcome{Phase: models.TaskPhaseSucceeded, Reason: ReasonCompleted, Message: in.CaptureText}
	}
}

// maxReasonText bounds the agent's words quoted in a status message, which
// lists show; the whole result stays in the task's result text and log.
const maxReasonText = 1000

// clipTo bounds s to n bytes without splitting a UTF-8 sequence.
func clipTo(s string, n int) string {
	if len(s) <= n {
		return s
	}
	for n > 0 && !utf8.RuneStart(s[n]) {
		n--
	}
	return s[:n] + "…"
}

func cancelMessage(reason string) string {
	if reason == "" {
		return "cancelled"
	}
	return "cancelled: " + reason
}
