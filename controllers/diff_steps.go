package controllers

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"time"

	"go.uber.org/zap"

	"github.com/claude-parallel/claude-parallel/config"
	"github.com/claude-parallel/claude-parallel/controllers/engine"
	"github.com/claude-parallel/claude-parallel/controllers/workspace"
	"github.com/claude-parallel/claude-parallel/models"
	"github.com/claude-parallel/claude-parallel/reconciler"
)

// startApply turns an apply request into phase Applying, the durable mark
// of an apply in flight, and asks for the pass that carries it out. It owns
// the move to Applying and clears the outcome of an earlier attempt. It runs
// only for a request not yet answered (models.Diff.Decision): a conflict
// ends the request, so a later pass never applies by itself.
func (r *diffReconciler) startApply(_ context.Context, sc *diffScope) error {
	d, st := sc.diff, &sc.diff.Status
	target := r.targetOf(sc)
	st.Phase = models.DiffPhaseApplying
	st.Reason = diffReasonApplying
	st.Message = fmt.Sprintf("applying to %s (%s mode)", target, d.Spec.ApplyMode)
	st.ConflictFiles = nil
	st.AppliedAt, st.AppliedTo, st.Branch = nil, "", ""
	sc.inFlight = true
	sc.steps = append(sc.steps, StepDiffApplying)
	return nil
}

// applyDiff carries out the apply of a diff in phase Applying, holding its
// target exclusively. It owns the outcome: Applied with AppliedAt, AppliedTo
// and Branch; Conflict with ConflictFiles, the target left as it was; Failed
// with the reason, terminal when the patch or the target is unusable. A
// target that already holds the change — the apply ran before a crash —
// counts as applied.
func (r *diffReconciler) applyDiff(ctx context.Context, sc *diffScope) error {
	d := sc.diff
	target := r.targetOf(sc)
	mode := workspace.ApplyMode(d.Spec.ApplyMode)
	if len(d.Patch) == 0 {
		return r.applyFailed(ctx, sc, target, fmt.Errorf("%w: the diff has no patch", workspace.ErrInvalidSpec))
	}
	res, err := r.runApply(ctx, sc, r.sourceGitDir(sc.task), false)
	key := r.targetKey(sc, res)
	if be := branchExists(err); be != nil {
		markBranchExists(&d.Status, key, be)
		d.Status.Message += applyEndedNote
		return nil
	}
	if err != nil {
		return r.applyFailed(ctx, sc, target, err)
	}
	switch res.Outcome {
	case workspace.Applied, workspace.AlreadyApplied:
		if res.Outcome == workspace.Applied {
			r.step(StepDiffPatched, d.TaskID, d.RunNumber)
		}
		markApplied(&d.Status, res, key, r.now())
		if mode == workspace.Worktree {
			sc.touchedTop = key
		}
	case workspace.Conflict:
		// The request ends here (models.Diff.Decision): nothing applies the
		// diff later by itself, even once the target would take it.
		markConflict(&d.Status, key, res)
		d.Status.Message += applyEndedNote
	default:
		return fmt.Errorf("apply to %s: unknown outcome %q", target, res.Outcome)
	}
	return nil
}

// applyFailed records an apply that could not be carried out. A failure the
// spec caused (an unsafe patch, a target that is not a repository, a base the
// target lacks) is terminal: the phase is Failed until the spec changes.
// Anything else is retried with backoff, the diff Failed with reason
// ApplyError meanwhile. A cancelled pass changes nothing: the diff stays
// Applying and the next leader applies it.
func (r *diffReconciler) applyFailed(ctx context.Context, sc *diffScope, target string, err error) error {
	if ctx.Err() != nil {
		return fmt.Errorf("apply to %s: %w", target, err)
	}
	st := &sc.diff.Status
	reason, terminal := classifyApplyError(err)
	st.Phase, st.Reason = models.DiffPhaseFailed, reason
	st.ConflictFiles = nil
	st.Message = fmt.Sprintf("apply to %s failed: %v", target, err)
	if terminal {
		return reconciler.Terminal(fmt.Errorf("apply to %s: %w", target, err))
	}
	st.Message += "; retrying"
	return fmt.Errorf("apply to %s: %w", target, err)
}

// errWorkspaceGone is an apply or dry run in branch mode whose task's
// workspace, which holds the run's commit, was removed.
var errWorkspaceGone = errors.New("the task's workspace is gone; branch mode needs the run's commit from it")

// classifyApplyError tells a failure the diff's spec or content caused — not
// retried until the spec changes — from one of the moment, and names it.
func classifyApplyError(err error) (reason string, terminal bool) {
	switch {
	case errors.Is(err, workspace.ErrOutsideAllowedRoots):
		return diffReasonOutsideRoots, true
	case errors.Is(err, workspace.ErrUnsafePatch):
		return diffReasonUnsafePatch, true
	case errors.Is(err, workspace.ErrNotGitWorkTree):
		return diffReasonInvalidTarget, true
	case errors.Is(err, workspace.ErrBaseNotInTarget):
		return diffReasonBaseNotInTarget, true
	case errors.Is(err, workspace.ErrInvalidRef), errors.Is(err, workspace.ErrInvalidSpec):
		return diffReasonInvalidDiff, true
	case errors.Is(err, errWorkspaceGone):
		return diffReasonWorkspaceGone, true
	case errors.Is(err, workspace.ErrBranchExists):
		return diffReasonBranchExists, true
	default:
		return diffReasonApplyError, false
	}
}

// markApplied records a successful apply (or a target found already holding
// the change) to the repository at appliedTo.
func markApplied(st *models.DiffStatus, res workspace.ApplyResult, appliedTo string, now time.Time) {
	at := now.UTC()
	st.Phase = models.DiffPhaseApplied
	st.ConflictFiles = nil
	st.AppliedAt, st.AppliedTo, st.Branch = &at, appliedTo, res.Branch
	where := appliedTo
	if res.Branch != "" {
		where += " as branch " + res.Branch
	}
	if res.Outcome == workspace.AlreadyApplied {
		st.Reason = diffReasonAlreadyApplied
		st.Message = fmt.Sprintf("applied to %s (the target already held the change)", where)
		return
	}
	st.Reason = diffReasonApplied
	st.Message = "applied to " + where
	if res.Message != "" {
		st.Message += " (" + res.Message + ")"
	}
}

// markConflict records that the diff does not apply to the repository at
// top, naming the files.
func markConflict(st *models.DiffStatus, top string, res workspace.ApplyResult) {
	st.Phase, st.Reason = models.DiffPhaseConflict, diffReasonConflict
	st.ConflictFiles = models.JSONList[string](res.Files)
	st.Message = conflictMessage(top, res.Files, res.Message)
}

// branchExists returns the branch clash err carries, or nil.
func branchExists(err error) *workspace.BranchExistsError {
	var be *workspace.BranchExistsError
	if errors.As(err, &be) {
		return be
	}
	return nil
}

// markBranchExists records that branch mode cannot create the diff's branch
// in the repository at top because the name is taken. It is a conflict with
// the target like any other — it ends an apply request and a re-check clears
// it once the branch is gone — but it names the branch, not the diff's files,
// which are not what clashes.
func markBranchExists(st *models.DiffStatus, top string, be *workspace.BranchExistsError) {
	st.Phase, st.Reason = models.DiffPhaseConflict, diffReasonBranchExists
	st.ConflictFiles = nil
	if be.CheckedOut {
		st.Message = fmt.Sprintf("branch %s is checked out in %s; switch to another branch there, "+
			"or apply in worktree mode", be.Branch, top)
		return
	}
	st.Message = fmt.Sprintf("branch %s already exists in %s at %s; delete or rename it there "+
		"(git branch -m %s <new name>), or apply in worktree mode", be.Branch, top, shortID(be.At), be.Branch)
}

// applyEndedNote ends the message of a conflict met by an apply request.
const applyEndedNote = "; not applied: the apply request ended; resolve the conflict and ask again to apply, or revise or reject the diff"

// maxNamedConflicts bounds the files a conflict message lists; ConflictFiles
// holds them all.
const maxNamedConflicts = 10

// conflictMessage is the sentence for a conflict: the target, the files (the
// first few) and why, as the apply put it.
func conflictMessage(top string, files []string, why string) string {
	var b strings.Builder
	fmt.Fprintf(&b, "does not apply to %s", top)
	if len(files) > 0 {
		named := files
		if len(named) > maxNamedConflicts {
			named = named[:maxNamedConflicts]
		}
		fmt.Fprintf(&b, "; conflicting files: %s", strings.Join(named, ", "))
		if more := len(files) - len(named); more > 0 {
			fmt.Fprintf(&b, " and %d more", more)
		}
	}
	if why != "" {
		fmt.Fprintf(&b, " (%s)", why)
	}
	return b.String()
}

// recheck tells whether a diff awaiting a decision would still apply to its
// target, by a dry run of the apply sharing the target's lock. It owns the
// moves between Pending and Conflict, ConflictFiles, and Failed for a patch
// that can never be applied safely, and stamps the target's fingerprint
// the target watch compares (targetwatch.go). It runs on every pass of such
// a diff: passes come after each apply to the same repository and on every
// hint. A front end's decision written meanwhile ends the stamp and the dry
// run alike (untilSpecChanges): the pass carrying out the decision waits for
// this one, and an apply asked for right after a run finished meets the
// first re-check of its diff, which looks at the target with git.
func (r *diffReconciler) recheck(ctx context.Context, sc *diffScope) error {
	st := &sc.diff.Status
	target := r.targetOf(sc)
	dctx, stop := r.untilSpecChanges(ctx, sc.diff, sc.changed)
	r.stampTargetFingerprint(dctx, sc)
	// A diff captured or applied wrongly once is not dry run: it would not
	// tell more.
	failed := st.Phase == models.DiffPhaseFailed
	var (
		res workspace.ApplyResult
		top string
		err error
	)
	switch {
	case failed:
	case dctx.Err() != nil:
		// Ended during the stamp: no git process is started for nothing.
		err = context.Cause(dctx)
	default:
		res, top, err = r.dryRun(dctx, sc)
	}
	stop()
	if errors.Is(context.Cause(dctx), errSpecChanged) && ctx.Err() == nil {
		// A front end decided meanwhile (apply, reject, another target):
		// the verdict would answer a spec the diff no longer has, and the
		// pass that carries out the new one waits for this one to end. It
		// follows at once; this pass observes nothing and writes nothing,
		// not even the fingerprint stamped for the verdict it gave up.
		st.TargetFingerprint = sc.before.TargetFingerprint
		sc.inFlight = true
		return nil
	}
	if failed {
		return nil
	}
	if be := branchExists(err); be != nil {
		markBranchExists(st, top, be)
		if sc.diff.ApplyAnswered() {
			st.Message += applyEndedNote
		}
		return nil
	}
	if err != nil {
		return r.recheckFailed(ctx, sc, target, err)
	}
	switch res.Outcome {
	case workspace.Applied:
		st.Phase, st.Reason = models.DiffPhasePending, diffReasonApplies
		st.Message = "applies to " + top
		if sc.diff.ApplyAnswered() {
			st.Message += "; the apply asked earlier met a conflict and was not carried out: ask again to apply it"
		}
		st.ConflictFiles = nil
	case workspace.AlreadyApplied:
		st.Phase, st.Reason = models.DiffPhasePending, diffReasonAlreadyInTarget
		st.Message = top + " already holds this change"
		st.ConflictFiles = nil
	case workspace.Conflict:
		markConflict(st, top, res)
		if sc.diff.ApplyAnswered() {
			st.Message += applyEndedNote
		}
	default:
		return fmt.Errorf("check against %s: unknown outcome %q", target, res.Outcome)
	}
	return nil
}

// errSpecChanged ends a re-check whose diff's spec changed while it ran.
var errSpecChanged = errors.New("the diff's spec changed during the check")

// untilSpecChanges returns a context for a re-check of d that also ends,
// with cause errSpecChanged, once d's spec is no longer the one read: an
// apply asked for just after a run finished would otherwise wait for the
// dry run of the new diff, a git process, before its own pass may start (a
// key is never reconciled twice at once). It wakes on the store's change
// notification and reads only d's generation. changed is the notification
// taken before d was read, so a spec written between that read and this
// call — the pass reads the diff, then looks at supersession and the
// target, then checks — wakes it at once too: taken here, it would miss
// that write and let the check run to its end while the apply waits. stop
// releases it.
func (r *diffReconciler) untilSpecChanges(ctx context.Context, d *models.Diff, changed <-chan struct{}) (context.Context, func()) {
	cctx, cancel := context.WithCancelCause(ctx)
	if changed == nil {
		changed = r.store.Changed()
	}
	done := make(chan struct{})
	go func() {
		for {
			select {
			case <-done:
				return
			case <-cctx.Done():
				return
			case <-changed:
			}
			changed = r.store.Changed()
			cur, err := r.store.ListDiffs(cctx, models.DiffFilter{IDs: []string{d.ID}})
			if err == nil && (len(cur) == 0 || cur[0].Generation != d.Generation) {
				cancel(errSpecChanged)
				return
			}
		}
	}()
	return cctx, func() {
		close(done)
		cancel(nil)
	}
}

// recheckFailed records a dry run that could not be made. An unsafe patch
// fails the diff for good (it could never be applied); a target that cannot
// be inspected just now leaves the phase as it is, with the reason, until the
// next pass; anything else is retried with backoff.
func (r *diffReconciler) recheckFailed(ctx context.Context, sc *diffScope, target string, err error) error {
	if ctx.Err() != nil {
		return fmt.Errorf("check against %s: %w", target, err)
	}
	st := &sc.diff.Status
	reason, terminal := classifyApplyError(err)
	switch {
	case reason == diffReasonUnsafePatch:
		st.Phase, st.Reason = models.DiffPhaseFailed, reason
		st.ConflictFiles = nil
		st.Message = fmt.Sprintf("the patch is unsafe and will not be applied: %v", err)
		return reconciler.Terminal(fmt.Errorf("check against %s: %w", target, err))
	case reason == diffReasonWorkspaceGone:
		st.Reason = reason
		st.Message = fmt.Sprintf("cannot check whether the diff applies to %s: %v", target, err)
		return nil
	case terminal:
		st.Reason = diffReasonTargetUnavailable
		if reason == diffReasonOutsideRoots {
			st.Reason = reason
		}
		st.Message = fmt.Sprintf("cannot check whether the diff applies to %s: %v", target, err)
		return nil
	default:
		return fmt.Errorf("check against %s: %w", target, err)
	}
}

// dryRun decides what applying the diff would do now, without writing, and
// returns the outcome and the key of the target (its top for worktree mode).
// It reads the run's base from the task's workspace when there is one, so
// the verdict is the one the real apply would reach.
func (r *diffReconciler) dryRun(ctx context.Context, sc *diffScope) (workspace.ApplyResult, string, error) {
	res, err := r.runApply(ctx, sc, r.sourceGitDir(sc.task), true)
	return res, r.targetKey(sc, res), err
}

// runApply applies the diff to its target (or, with dryRun, works out what
// applying it would do). workspace.Apply serialises the applies to one
// repository, and lets dry runs share its lock, once it has opened and
// checked the target: a key taken here would cost another look at the
// target. src is the git dir of the task's workspace, "" when it is gone.
func (r *diffReconciler) runApply(ctx context.Context, sc *diffScope, src string, dryRun bool) (workspace.ApplyResult, error) {
	d := sc.diff
	if src == "" && workspace.ApplyMode(d.Spec.ApplyMode) == workspace.Branch {
		return workspace.ApplyResult{}, errWorkspaceGone
	}
	return r.workspaces.Apply(ctx, workspace.ApplySpec{
		Target:       r.targetOf(sc),
		Patch:        d.Patch,
		Mode:         workspace.ApplyMode(d.Spec.ApplyMode),
		Branch:       workspace.BranchName(d.TaskID),
		BaseCommit:   d.BaseCommit,
		ResultCommit: d.ResultCommit,
		SourceGitDir: src,
		DryRun:       dryRun,
		AllowedRoots: r.allowedRoots(),
	})
}

// settleInterruptedApply decides a diff left in Applying whose apply intent
// was withdrawn meanwhile (only a client other than the MCP front end could
// do that): if the target already holds the change the apply happened before
// a crash, and the diff is Applied whatever is desired now; otherwise it never
// happened, the phase goes back to Pending and the new intent is carried out.
func (r *diffReconciler) settleInterruptedApply(ctx context.Context, sc *diffScope) (done bool, err error) {
	st := &sc.diff.Status
	res, top, err := r.dryRun(ctx, sc)
	if err != nil {
		if _, terminal := classifyApplyError(err); !terminal || ctx.Err() != nil {
			// Whether the apply happened cannot be told just now: the diff
			// stays Applying and the pass is retried.
			return true, fmt.Errorf("check interrupted apply: %w", err)
		}
		// The target or the diff cannot be used at all, so whether the
		// apply happened can never be told; the withdrawn intent wins.
	}
	if err == nil && res.Outcome == workspace.AlreadyApplied {
		markApplied(st, res, top, r.now())
		if sc.diff.Spec.ApplyMode == models.ApplyModeWorktree {
			sc.touchedTop = top
		}
		return true, nil
	}
	st.Phase, st.Reason, st.Message = models.DiffPhasePending, "", ""
	return false, nil
}

// reject records the rejection. It owns the move to Rejected; Applied and
// Superseded diffs never get here (they are final).
func (r *diffReconciler) reject(sc *diffScope) {
	d, st := sc.diff, &sc.diff.Status
	st.Phase, st.Reason = models.DiffPhaseRejected, diffReasonRejected
	st.Message = "rejected"
	if d.Spec.RejectReason != "" {
		st.Message = "rejected: " + d.Spec.RejectReason
	}
	st.ConflictFiles = nil
}

// cleanUpRejected removes what a rejected diff leaves behind: the stopped
// container of its run and, once nothing else of the task needs it, the
// task's workspace. It owns no status field. It is idempotent; until it
// succeeds the generation stays unobserved, so the next pass tries again.
func (r *diffReconciler) cleanUpRejected(ctx context.Context, sc *diffScope) error {
	if err := r.removeRunContainer(ctx, sc); err != nil {
		return err
	}
	ok, err := r.workspaceDisposable(ctx, sc)
	if err != nil || !ok {
		return err
	}
	dir := workspaceDirOf(r.paths, sc.task)
	if _, err := os.Lstat(dir); errors.Is(err, fs.ErrNotExist) {
		return nil
	}
	if err := r.workspaces.Remove(sc.task.ID, dir); err != nil {
		return fmt.Errorf("remove workspace of rejected diff: %w", err)
	}
	r.log.Info("removed workspace of rejected diff", zap.String("diff", sc.diff.ID),
		zap.String("task", sc.task.ID), zap.String("workspace", dir))
	sc.taskEvent("WorkspaceRemoved", fmt.Sprintf("removed workspace %s: diff %s was rejected", dir, sc.diff.ID))
	return nil
}

// removeRunContainer removes the container of the rejected diff's run if it
// is still there, stopped and this installation's.
func (r *diffReconciler) removeRunContainer(ctx context.Context, sc *diffScope) error {
	d := sc.diff
	name := engine.ContainerName(d.TaskID, d.RunNumber)
	info, err := r.rt.Inspect(ctx, name)
	if errors.Is(err, engine.ErrNotFound) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("inspect container %s: %w", name, err)
	}
	if !ownsContainer(info.Labels, r.storeID, d.TaskID, d.RunNumber) || info.Running() {
		// Not ours to remove, or (never for a captured run) still running:
		// the container controller decides about it.
		return nil
	}
	if err := r.rt.Remove(ctx, info.ID, false); err != nil && !errors.Is(err, engine.ErrNotFound) {
		return fmt.Errorf("remove container %s: %w", name, err)
	}
	r.log.Info("removed container of rejected diff", zap.String("diff", d.ID), zap.String("container", name))
	sc.taskEvent("ContainerRemoved", fmt.Sprintf("removed container %s: diff %s was rejected", name, d.ID))
	return nil
}

// workspaceDisposable reports whether a rejected diff's task no longer needs
// its workspace: the task is finished, no newer run is asked for, the diff is
// of its newest run, and no other diff of the task awaits a decision or an
// apply (branch mode and three-way merges read the workspace).
func (r *diffReconciler) workspaceDisposable(ctx context.Context, sc *diffScope) (bool, error) {
	t, d := sc.task, sc.diff
	if !t.Finished() || d.RunNumber < t.Status.RunNumber {
		return false, nil
	}
	others, err := r.store.ListDiffs(ctx, models.DiffFilter{TaskID: t.ID})
	if err != nil {
		return false, fmt.Errorf("list diffs of task %s: %w", t.ID, err)
	}
	for i := range others {
		if o := &others[i]; o.ID != d.ID && diffNeedsWorkspace(o) {
			return false, nil
		}
	}
	return true, nil
}

// diffNeedsWorkspace reports whether a diff may still read its task's
// workspace: it awaits a decision, is being applied, or its apply may be
// retried.
func diffNeedsWorkspace(d *models.Diff) bool {
	if d.Spec.Desired == models.DiffDesiredRejected {
		return false
	}
	switch d.Status.Phase {
	case models.DiffPhasePending, models.DiffPhaseConflict, models.DiffPhaseApplying:
		return true
	case models.DiffPhaseFailed:
		return d.Spec.Desired == models.DiffDesiredApplied
	}
	return false
}

// requeueTargetPeers enqueues every other diff awaiting a decision whose
// target lies in the repository at top, so their passes re-check them
// against the changed work tree.
func (r *diffReconciler) requeueTargetPeers(ctx context.Context, self *models.Diff, top string) error {
	return eachAwaitingPage(ctx, r.store, func(peers []awaitingDiff) {
		for _, p := range peers {
			if p.diff.ID != self.ID && p.target != "" && inRepository(canonicalPath(p.target), top) {
				r.notify(KindDiff, p.diff.ID)
			}
		}
	})
}

// awaitingDiff is a diff awaiting a decision with the folder it would be
// applied to.
type awaitingDiff struct {
	diff   *models.Diff
	target string // its spec's target, else its task's work folder ("" if the task is gone)
}

// awaitingWithTargets lists the diffs filter selects with the folder each
// would be applied to: one query for the diffs, one for the tasks of those
// that have no target of their own.
func awaitingWithTargets(ctx context.Context, store *models.Store, filter models.DiffFilter) ([]awaitingDiff, error) {
	diffs, err := store.ListDiffs(ctx, filter)
	if err != nil {
		return nil, fmt.Errorf("list diffs awaiting a decision: %w", err)
	}
	var taskIDs []string
	for _, d := range diffs {
		if d.Spec.TargetWorkspace == "" {
			taskIDs = append(taskIDs, d.TaskID)
		}
	}
	folders, err := store.WorkFolders(ctx, taskIDs)
	if err != nil {
		return nil, fmt.Errorf("list tasks of diffs awaiting a decision: %w", err)
	}
	out := make([]awaitingDiff, len(diffs))
	for i := range diffs {
		out[i] = awaitingDiff{diff: &diffs[i], target: targetFor(&diffs[i], folders[diffs[i].TaskID])}
	}
	return out, nil
}

// targetOf is where the diff goes (see diffTarget).
func (r *diffReconciler) targetOf(sc *diffScope) string { return diffTarget(sc.diff, sc.task) }

// diffTarget is where d goes: its spec's target, else its task's own work
// folder ("" when the task is gone).
func diffTarget(d *models.Diff, task *models.Task) string {
	folder := ""
	if task != nil {
		folder = task.Spec.WorkFolder
	}
	return targetFor(d, folder)
}

// targetFor is diffTarget given the task's work folder alone ("" when the
// task is gone).
func targetFor(d *models.Diff, workFolder string) string {
	if t := d.Spec.TargetWorkspace; t != "" {
		return t
	}
	return workFolder
}

// targetKey names the repository an apply of the diff writes, as its status
// records it and for finding the diffs aimed at it: the top of its work tree
// for worktree mode (two folders of one repository are one target), as the
// apply res found it when it opened the target, else the resolved folder
// (branch mode, which touches refs only, or an apply that failed before it
// found the top).
func (r *diffReconciler) targetKey(sc *diffScope, res workspace.ApplyResult) string {
	if res.Top != "" && workspace.ApplyMode(sc.diff.Spec.ApplyMode) != workspace.Branch {
		return res.Top
	}
	return canonicalPath(r.targetOf(sc))
}

// allowedRoots is the roots in force (nil: no check, see diffReconciler.roots).
func (r *diffReconciler) allowedRoots() workspace.Roots {
	if r.roots == nil {
		return nil
	}
	return append(workspace.Roots{}, r.roots()...)
}

// sourceGitDir is the git dir of the task's workspace, or "" when the
// workspace is gone.
func (r *diffReconciler) sourceGitDir(t *models.Task) string {
	dir := workspaceDirOf(r.paths, t)
	ws, err := r.workspaces.Open(filepath.Dir(dir), t.ID)
	if err != nil {
		return ""
	}
	return ws.GitDir
}

// workspaceDirOf is where a task's workspace is: as the task controller
// recorded it, else where it would be made. A recorded path is trusted only
// if its last element is the task id, so a damaged row can never point a
// removal at some other directory.
func workspaceDirOf(paths config.Paths, t *models.Task) string {
	if p := t.Status.WorkspacePath; p != "" && filepath.IsAbs(p) && filepath.Base(p) == t.ID && models.IsTaskID(t.ID) {
		return filepath.Clean(p)
	}
	return filepath.Join(paths.WorkspaceDir, t.ID)
}

// canonicalPath resolves p to an absolute path without symlinks where it can,
// so two spellings of one folder compare equal.
func canonicalPath(p string) string {
	abs, err := filepath.Abs(p)
	if err != nil {
		return filepath.Clean(p)
	}
	if real, err := filepath.EvalSymlinks(abs); err == nil {
		return real
	}
	return abs
}

// inRepository reports whether folder is top or lies under it. A folder of a
// repository nested under top matches too; its diffs are merely re-checked
// for nothing.
func inRepository(folder, top string) bool {
	rel, err := filepath.Rel(top, folder)
	return err == nil && rel != ".." && !strings.HasPrefix(rel, ".."+string(filepath.Separator)) && !filepath.IsAbs(rel)
}

// supersede ends a diff still awaiting a decision once a newer run of its
// task has left its result (supersedingRun). The newest result replaces the
// older ones: they were all taken against the same base. It owns the move to
// Superseded; the task controller only enqueues the older diffs while it
// collects a run, and ends the run once they are superseded.
func (r *diffReconciler) supersede(ctx context.Context, sc *diffScope) (bool, error) {
	d := sc.diff
	newer, err := r.store.ListDiffs(ctx, models.DiffFilter{TaskID: d.TaskID})
	if err != nil {
		return false, fmt.Errorf("list diffs of task %s: %w", d.TaskID, err)
	}
	by := supersedingRun(d, sc.task, newer, func() bool { return r.sourceGitDir(sc.task) != "" })
	if by == 0 {
		return false, nil
	}
	st := &d.Status
	st.Phase, st.Reason = models.DiffPhaseSuperseded, "Superseded"
	st.Message = fmt.Sprintf("superseded by run %d", by)
	st.ConflictFiles = nil
	return true, nil
}

// supersedingRun is the newest run of task whose result replaces d, or 0
// when none does yet: a later run that left a diff, or a later run whose
// container has exited and whose changes are being collected from its
// workspace (or were: a run that changed nothing leaves no diff). A run that
// failed before its container ran, or whose workspace was gone when it was
// collected, left no result and replaces nothing. hasWorkspace tells whether
// the task's workspace is there.
func supersedingRun(d *models.Diff, task *models.Task, diffs []models.Diff, hasWorkspace func() bool) int {
	by := 0
	for i := range diffs {
		if diffs[i].RunNumber > d.RunNumber {
			by = max(by, diffs[i].RunNumber)
		}
	}
	st := task.Status
	if st.RunNumber > by && st.RunNumber > d.RunNumber && st.ExitCode != nil {
		switch {
		case st.Phase == models.TaskPhaseCollecting && hasWorkspace(),
			st.Finished && st.Reason != ReasonWorkspaceMissing:
			by = st.RunNumber
		}
	}
	return by
}

// rejectOrphan rejects a diff that awaits a decision nobody is making while
// its task's workspace is gone: without it the diff can never be applied as
// a branch nor revised (the original server rejected such diffs too).
// Retention notices these and enqueues them; the decision, like every diff
// status, is this controller's. A pass answering a spec change (a preview,
// a new apply mode) is not such a pass: its dry run reports WorkspaceGone
// and leaves the choice to the caller. It reports whether it rejected d.
func (r *diffReconciler) rejectOrphan(sc *diffScope) bool {
	d := sc.diff
	if d.Generation != d.Status.ObservedGeneration {
		return false
	}
	dir := workspaceDirOf(r.paths, sc.task)
	if _, err := os.Lstat(dir); !errors.Is(err, fs.ErrNotExist) {
		return false // there, or unreadable: not known to be gone
	}
	st := &d.Status
	st.Phase, st.Reason, st.Message, st.ConflictFiles = models.DiffPhaseRejected, diffReasonWorkspaceGone, workspaceGoneMessage, nil
	r.log.Info("rejected diff whose workspace is gone", zap.String("diff", d.ID),
		zap.String("task", d.TaskID), zap.String("workspace", dir))
	return true
}
