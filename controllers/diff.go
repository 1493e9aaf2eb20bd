package controllers

import (
	"context"
	"errors"
	"fmt"
	"reflect"
	"time"

	"go.uber.org/zap"

	"github.com/claude-parallel/claude-parallel/config"
	"github.com/claude-parallel/claude-parallel/config/redact"
	"github.com/claude-parallel/claude-parallel/controllers/engine"
	"github.com/claude-parallel/claude-parallel/models"
	"github.com/claude-parallel/claude-parallel/reconciler"
)

// The diff reconciler carries out what a front end decided about a captured
// diff (models.DiffSpec.Desired) and keeps every diff still awaiting a
// decision honest about whether it would apply to its target:
//
//	desired pending:  Pending ⇄ Conflict        (a dry run against the target on every pass)
//	desired applied:  → Applying → Applied | Conflict | Failed
//	desired rejected: → Rejected, then the run's container and the task's workspace go
//
// A Conflict met by an apply ends that apply request (models.Diff.Decision):
// the diff is waiting for a decision again, its passes only re-check it
// (Pending ⇄ Conflict), and only a new request — a new generation — applies
// it. Nothing applies a change the user was told was not applied.
//
// Superseded (written by the task controller when a newer run of the task
// produced a diff), Rejected and Applied are final whatever is desired later:
// nothing un-applies a change or revives a rejected one.
//
// An apply takes two passes: the first writes phase Applying, the second
// patches the target. Applying keeps the diff in the store's live set
// (models.Store.ListLiveDiffIDs), so a process that dies in the middle of an
// apply is followed by a pass that applies again, and workspace.Apply
// recognises a target that already holds the change (reverse check) and
// reports it applied: a crash never applies a change twice or loses one.
//
// Applies to one target repository are serialised by workspace.Apply and
// the dry runs share its lock, so no pass sees a target that another is
// half-way through writing. After a worktree apply every other diff awaiting a
// decision for the same repository is enqueued; its own pass re-runs the dry
// run and moves it to Conflict (naming the files) or back to Pending, so an
// agent learns that its change no longer applies before it tries.

// Names of the diff controller and of the retention job.
const (
	diffControllerName = "diff"
	retentionName      = "retention"
)

// Diff steps reported to Deps.AfterStep, the fault-injection hook: the crash
// tests kill the process at these points and check that a restarted
// controller ends with the change applied exactly once.
const (
	// StepDiffApplying: phase Applying is written, the target not yet touched.
	StepDiffApplying Step = "diff-applying"
	// StepDiffPatched: the apply has written the target, its outcome is not yet
	// recorded. It is reported while the target's lock is held, so a hook sees
	// the target as the apply left it.
	StepDiffPatched Step = "diff-patched"
)

// Reasons written to DiffStatus.Reason (CamelCase, for machines; Message is
// the sentence for people).
const (
	diffReasonApplying          = "Applying"
	diffReasonApplied           = "Applied"
	diffReasonAlreadyApplied    = "AlreadyApplied"
	diffReasonConflict          = "Conflict"
	diffReasonBranchExists      = "BranchExists"
	diffReasonApplies           = "Applies"
	diffReasonAlreadyInTarget   = "AlreadyInTarget"
	diffReasonUnsafePatch       = "UnsafePatch"
	diffReasonInvalidTarget     = "InvalidTarget"
	diffReasonBaseNotInTarget   = "BaseNotInTarget"
	diffReasonInvalidDiff       = "InvalidDiff"
	diffReasonTargetUnavailable = "TargetUnavailable"
	diffReasonWorkspaceGone     = "WorkspaceGone"
	diffReasonApplyError        = "ApplyError"
	diffReasonRejected          = "Rejected"
	diffReasonOutsideRoots      = ReasonOutsideAllowedRoots
)

// diffContainers is what the diff reconciler needs of the container engine:
// removing the container of a rejected run.
type diffContainers interface {
	Inspect(ctx context.Context, idOrName string) (engine.ContainerInfo, error)
	Remove(ctx context.Context, id string, force bool) error
}

// diffReconciler is the diff controller's Reconciler; keys are diff ids. It
// depends on a few narrow things rather than on System, which setup
// (setup.go) fills in and its tests build directly over a real store and
// real git repositories.
type diffReconciler struct {
	store      *models.Store
	rt         diffContainers
	workspaces Workspaces
	paths      config.Paths
	storeID    string
	log        *zap.Logger
	now        func() time.Time
	// notify enqueues a key (KindDiff: a diff of this controller).
	notify func(kind, id string)
	// step reports a durable step to the fault-injection hook.
	step func(step Step, taskID string, run int)
	// roots returns the allowed roots in force; nil (tests of the diff
	// controller alone) checks none.
	roots func() []string
	// secrets returns the redactor in force; a status message quotes git's
	// and Docker's errors, which may quote a secret. nil redacts nothing.
	secrets func() *redact.Redactor
}

// diffScope is what the steps of one pass share.
type diffScope struct {
	diff   *models.Diff      // steps change diff.Status only
	task   *models.Task      // the diff's task, read-only
	before models.DiffStatus // status as read, to detect a change
	result reconciler.Result
	// changed is the store's change notification taken before the diff was
	// read: a write after that read closes it (untilSpecChanges).
	changed <-chan struct{}

	// inFlight marks a pass that started work a later pass finishes (the
	// Applying pass): the generation is not yet observed, and the key is
	// enqueued again right after the status write.
	inFlight bool
	// touchedTop is the top of the repository whose work tree this pass found
	// changed by the diff; the other diffs aimed at it are re-checked.
	touchedTop string
	// events are recorded, and steps reported, only after the status write
	// that made them true succeeded.
	events []diffEvent
	steps  []Step
}

type diffEvent struct{ kind, id, reason, message string }

// taskEvent queues a line for the task's timeline.
func (sc *diffScope) taskEvent(reason, message string) {
	sc.events = append(sc.events, diffEvent{models.EventKindTask, sc.diff.TaskID, reason, message})
}

// Reconcile moves one diff one step towards what was decided about it.
func (r *diffReconciler) Reconcile(ctx context.Context, req reconciler.Request) (res reconciler.Result, reterr error) {
	// Taken before the read: a spec written after it wakes a re-check at
	// once (untilSpecChanges).
	changed := r.store.Changed()
	d, err := r.store.GetDiff(ctx, req.Key)
	if errors.Is(err, models.ErrNotFound) {
		return res, nil
	}
	if err != nil {
		return res, fmt.Errorf("reconcile diff %s: %w", req.Key, err)
	}
	if diffSettled(d) {
		return res, nil
	}
	task, err := r.store.GetTask(ctx, d.TaskID)
	if errors.Is(err, models.ErrNotFound) {
		return res, nil // a diff goes with its task; this one is being deleted
	}
	if err != nil {
		return res, fmt.Errorf("reconcile diff %s: %w", d.ID, err)
	}

	sc := &diffScope{diff: d, task: task, before: d.Status, changed: changed}
	log := r.log.With(zap.String("diff", d.ID), zap.String("task", d.TaskID))
	defer func() {
		werr := r.writeStatus(ctx, sc, reterr)
		switch {
		case werr == nil:
			res = sc.result
		case errors.Is(werr, models.ErrConflict) && reterr == nil:
			// Someone else wrote the diff in between (a spec change,
			// retention): decide again on fresh data.
			log.Debug("diff status write conflicted, requeueing", zap.Error(werr))
			res = reconciler.Result{RequeueAfter: conflictRequeue}
		case errors.Is(werr, models.ErrNotFound):
			res, reterr = reconciler.Result{}, nil
		default:
			reterr = errors.Join(reterr, werr)
		}
	}()
	if err := r.reconcilePhase(ctx, sc); err != nil {
		return res, fmt.Errorf("reconcile diff %s: %w", d.ID, err)
	}
	return res, nil
}

// reconcilePhase picks the steps for the diff's phase and desired outcome.
func (r *diffReconciler) reconcilePhase(ctx context.Context, sc *diffScope) error {
	d := sc.diff
	switch d.Status.Phase {
	case models.DiffPhaseSuperseded, models.DiffPhaseApplied:
		return nil // final whatever is desired now; the pass only observes the generation
	case models.DiffPhaseRejected:
		if d.Spec.Desired == models.DiffDesiredRejected {
			return r.cleanUpRejected(ctx, sc)
		}
		return nil
	case models.DiffPhaseApplying:
		if d.Spec.Desired == models.DiffDesiredApplied {
			err := r.applyDiff(ctx, sc)
			if d.Status.Phase == models.DiffPhaseConflict {
				// Awaiting a decision again: the target watch compares this.
				r.stampTargetFingerprint(ctx, sc)
			}
			return err
		}
		done, err := r.settleInterruptedApply(ctx, sc)
		if done || err != nil {
			return err
		}
	}
	if d.AwaitingDecision() {
		// A diff whose workspace is gone is rejected before it could be
		// superseded: no later run can have used that workspace since.
		if r.rejectOrphan(sc) {
			return nil
		}
		if done, err := r.supersede(ctx, sc); done || err != nil {
			return err
		}
	}
	// Decision, not Spec.Desired: an apply that met a conflict ended its
	// request, so such a diff is only re-checked until a new request comes.
	switch d.Decision() {
	case models.DiffDesiredApplied:
		return r.startApply(ctx, sc)
	case models.DiffDesiredRejected:
		r.reject(sc)
		return r.cleanUpRejected(ctx, sc)
	default:
		return r.recheck(ctx, sc)
	}
}

// diffSettled reports whether a diff needs no pass at all: its phase is
// final, or a failure the spec caused, and its current spec was observed. A
// failure that may heal by itself (diffReasonApplyError) is never settled, so
// every hint retries it even when no spec change is pending.
func diffSettled(d *models.Diff) bool {
	if d.Generation != d.Status.ObservedGeneration {
		return false
	}
	switch d.Status.Phase {
	case models.DiffPhaseApplied, models.DiffPhaseRejected, models.DiffPhaseSuperseded:
		return true
	case models.DiffPhaseFailed:
		return d.Status.Reason != diffReasonApplyError
	}
	return false
}

// writeStatus is the pass's single status write: only when something
// changed, with the generation observed only when the pass settled the spec
// (succeeded or failed terminally, and started nothing a later pass must
// finish). The pass's events are committed with the status, in one
// transaction, so a status is never stored without the lines that explain it
// (a shutdown between two writes used to lose them). Then it reports its
// steps, continues an apply it started and enqueues the diffs whose target it
// changed.
func (r *diffReconciler) writeStatus(ctx context.Context, sc *diffScope, passErr error) error {
	d := sc.diff
	if (passErr == nil || reconciler.IsTerminal(passErr)) && !sc.inFlight {
		d.Status.ObservedGeneration = d.Generation
	}
	from, to := sc.before.Phase, d.Status.Phase
	if r.secrets != nil {
		redactDiffWrite(r.secrets(), &d.Status, sc.events)
	}
	if from != to {
		sc.events = append([]diffEvent{{models.EventKindDiff, d.ID, string(to), d.Status.Message}}, sc.events...)
	}
	if err := r.commitStatus(ctx, sc); err != nil {
		return err
	}
	if from != to {
		r.log.Info("diff phase changed", zap.String("diff", d.ID), zap.String("task", d.TaskID),
			zap.String("from", string(from)), zap.String("to", string(to)),
			zap.String("reason", d.Status.Reason), zap.String("message", d.Status.Message))
	}
	for _, st := range sc.steps {
		r.step(st, d.TaskID, d.RunNumber)
	}
	if sc.inFlight {
		r.notify(KindDiff, d.ID)
	}
	if sc.touchedTop != "" {
		if err := r.requeueTargetPeers(ctx, d, sc.touchedTop); err != nil {
			// The peers are re-checked on their next pass anyway; this only
			// makes it happen at once.
			r.log.Warn("enqueue diffs of the same target failed", zap.String("diff", d.ID),
				zap.String("target", sc.touchedTop), zap.Error(err))
		}
	}
	return nil
}

// commitStatus writes the diff's status with the pass's events when the
// status changed. Events of a pass that changed nothing are recorded on their
// own: there is no status for them to ride with.
func (r *diffReconciler) commitStatus(ctx context.Context, sc *diffScope) error {
	d := sc.diff
	timeline := make([]models.TimelineEntry, 0, len(sc.events))
	for _, e := range sc.events {
		timeline = append(timeline, models.TimelineEntry{Reason: e.reason, Message: e.message, Kind: e.kind, ObjectID: e.id})
	}
	if !reflect.DeepEqual(sc.before, d.Status) {
		if err := r.store.UpdateDiffStatus(ctx, d, timeline...); err != nil {
			return fmt.Errorf("write status: %w", err)
		}
		return nil
	}
	for _, e := range sc.events {
		if err := r.store.RecordEvent(ctx, e.kind, e.id, e.reason, e.message); err != nil {
			// The timeline is for people; losing a line must not fail the pass.
			r.log.Warn("record diff event failed", zap.String("diff", d.ID), zap.Error(err))
		}
	}
	return nil
}
