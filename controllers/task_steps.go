package controllers

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"slices"
	"time"

	"go.uber.org/zap"

	"github.com/claude-parallel/claude-parallel/config"
	"github.com/claude-parallel/claude-parallel/controllers/engine"
	"github.com/claude-parallel/claude-parallel/controllers/workspace"
	"github.com/claude-parallel/claude-parallel/models"
)

// fail ends the run as Failed with a reason and a sentence.
func (sc *taskScope) fail(reason, message string) {
	st := &sc.task.Status
	st.Phase, st.Reason, st.Message = models.TaskPhaseFailed, reason, message
}

// reconcileFollowUp starts the run a revision or an answer asked for after a
// run that ended, succeeded or not (models.Task.WantsFollowUp). It owns the
// move from the finished phase back to Pending and clears
// the finished run's per-run fields; the workspace and the diff id stay,
// since the next run continues them (its agent session is read from the
// earlier runs' rows when its container is built).
func (r *taskReconciler) reconcileFollowUp(_ context.Context, sc *taskScope) error {
	t := sc.task
	if !t.WantsFollowUp() {
		return nil
	}
	kind := string(t.Spec.FollowUpKind)
	if kind == "" {
		kind = "follow-up"
	}
	st := &t.Status
	st.Phase = models.TaskPhasePending
	st.Reason = ReasonFollowUp
	st.Message = fmt.Sprintf("run %d requested (%s)", nextRunNumber(t), kind)
	st.ExitCode, st.RunStartedAt, st.EndTime = nil, nil, nil
	st.ContainerID, st.ContainerName = "", ""
	st.PendingQuestion = ""
	return nil
}

// reconcileCancel carries out a cancel request. It owns the move to Cancelled
// of a run whose container never ran; for a started run it stops the
// container and reports not done, so the Running and Collecting steps end the
// run as Cancelled keeping what it left behind.
func (r *taskReconciler) reconcileCancel(ctx context.Context, sc *taskScope) (done bool, err error) {
	s, t := r.deps, sc.task
	st := &t.Status
	cancel := func() {
		st.Phase, st.Reason, st.Message = models.TaskPhaseCancelled, ReasonCancelled, cancelMessage(t.Spec.CancelReason)
	}
	switch st.Phase {
	case models.TaskPhasePending:
		cancel()
		return true, nil
	case models.TaskPhasePreparing, models.TaskPhaseRunning:
		ref := containerRef(t)
		info, err := s.rt.Inspect(ctx, ref)
		if errors.Is(err, engine.ErrNotFound) {
			cancel()
			return true, nil
		}
		if err != nil {
			return false, fmt.Errorf("cancel: %w", err)
		}
		if info.Running() {
			s.log.Info("stopping container of cancelled task", zap.String("task", t.ID), zap.String("container", info.Name))
			if err := s.rt.Stop(ctx, info.ID, s.stopGrace); err != nil && !errors.Is(err, engine.ErrNotFound) {
				return false, fmt.Errorf("cancel: %w", err)
			}
		}
		if st.Phase == models.TaskPhasePreparing {
			// The container was never recorded as running: nothing of the run
			// is worth collecting.
			cancel()
			return true, nil
		}
		return false, nil
	default:
		return false, nil
	}
}

// reconcilePending waits for the task's dependencies and for a free slot. It
// owns the waiting Reason and Message, the move to Failed when a dependency
// can never complete, and admission: the new run's RunNumber and
// ContainerName and the move to Preparing.
func (r *taskReconciler) reconcilePending(ctx context.Context, sc *taskScope) error {
	s, t := r.deps, sc.task
	st := &t.Status
	// Dependencies gate the first run only: a revision continues work that
	// already ran, and its dependencies may since have been cleaned away.
	if st.RunNumber == 0 {
		deps, err := s.loadTasks(ctx, t.Spec.DependsOn)
		if err != nil {
			return fmt.Errorf("check dependencies: %w", err)
		}
		switch verdict, msg := checkDependencies(t.ID, t.Spec.DependsOn, deps); verdict {
		case depsFailed:
			sc.fail(ReasonDependencyFailed, msg)
			return nil
		case depsWaiting:
			st.Reason, st.Message = ReasonWaitingForDeps, msg
			sc.requeueAfter(waitRequeue)
			return nil
		}
	}

	// The first run's workspace is snapshotted as soon as the task may run,
	// before it waits for a slot: DESIGN §4 promises the task sees the work
	// folder as it was when the task was accepted, not as it is when a slot
	// frees minutes later. (A task with dependencies is snapshotted when they
	// have completed, so it can see their applied changes.)
	var build building
	if st.RunNumber == 0 && st.WorkspacePath == "" {
		plan, ok := r.runPlan(sc)
		if !ok {
			return nil
		}
		b, err := r.workspaceBuild(ctx, sc, plan.user, true)
		if err != nil || b == nil {
			return err
		}
		build = b
	}

	admitted, release, err := s.tryAdmit(ctx, t)
	if err != nil {
		return err
	}
	if admitted {
		sc.release = release // given back after the status write, whatever this pass does
	}
	if _, ready := build.(readyBuild); build != nil && (ready || !admitted) {
		// No slot (the snapshot completes while the task waits), or the
		// workspace was prepared in this pass: record it now.
		if ws, err := r.recordPrepared(ctx, sc, build); err != nil || ws == nil {
			return err
		}
	}
	if !admitted {
		st.Reason = ReasonWaitingForSlot
		st.Message = fmt.Sprintf("waiting for a free slot (max_parallel %d)", s.config().MaxParallel)
		sc.requeueAfter(waitRequeue)
		return nil
	}
	// Admitted: a snapshot still being taken goes on in the background, and
	// the Preparing pass creates the container meanwhile (preparing.go).
	run := nextRunNumber(t)
	st.Phase = models.TaskPhasePreparing
	st.RunNumber = run
	st.ContainerName = engine.ContainerName(t.ID, run)
	st.ContainerID = ""
	st.Reason, st.Message = "", ""
	st.ExitCode, st.RunStartedAt = nil, nil
	sc.steps = append(sc.steps, StepAdmitted)
	return nil
}

// workspaceBuild is the one way a run gets its workspace, whichever pass
// asks: the build already in flight for the task, else (when mayBegin and the
// bound on background builds allows) a new one in the background, whose
// spec-dependent checks are done before it returns, else the workspace
// prepared in the pass itself, as a readyBuild. A nil building with a nil
// error means the task was failed: its work folder or base cannot be used.
func (r *taskReconciler) workspaceBuild(ctx context.Context, sc *taskScope, user runAs, mayBegin bool) (building, error) {
	s, t := r.deps, sc.task
	if b := s.builds.get(t.ID); b != nil {
		return b, nil
	}
	// Background builds are bounded like passes are, so a burst of tasks
	// does not start a burst of git processes: past the bound, the pass
	// prepares the workspace itself.
	if mayBegin && s.builds.inFlight() < max(1, s.config().Workers) {
		b, err := s.builds.begin(t.ID, s.config().Intervals.ReconcileTimeout.Duration, func(ctx context.Context) (building, error) {
			return s.workspaces.Begin(ctx, r.prepareSpec(t, user))
		})
		if err != nil {
			return nil, r.prepareFailed(sc, err)
		}
		return b, nil
	}
	ws, err := s.workspaces.Prepare(ctx, r.prepareSpec(t, user))
	if err != nil {
		return nil, r.prepareFailed(sc, err)
	}
	return readyBuild{ws}, nil
}

// readyBuild is a workspace prepared within the pass: a building that has
// already finished.
type readyBuild struct{ ws *workspace.Workspace }

func (b readyBuild) Layout() *workspace.Workspace {
	l := *b.ws
	return &l
}

func (b readyBuild) Wait(context.Context) (*workspace.Workspace, error) { return b.ws, nil }

// reconcilePreparing prepares the workspace and creates and starts the run's
// container. It owns WorkspacePath, BaseCommit, ContainerID, RunStartedAt and
// the move to Running, or to Failed when the spec cannot run (unknown
// profile, not a git work folder, missing image, name held by a foreign
// container). Every action is idempotent: the workspace is reused once
// ready, a name conflict adopts the container already created for this run,
// and an adopted container is started only if it never was.
func (r *taskReconciler) reconcilePreparing(ctx context.Context, sc *taskScope) error {
	s, t := r.deps, sc.task
	plan, ok := r.runPlan(sc)
	if !ok {
		return nil
	}
	session, err := r.resumedSession(ctx, t)
	if err != nil {
		return err
	}
	// One path whatever prepared the workspace: the container spec is built
	// once, from the workspace's directories (they exist before a background
	// build ends), and the container is created while the build finishes; it
	// is started only below, once the workspace is ready.
	b, err := r.workspaceBuild(ctx, sc, plan.user, false)
	if err != nil || b == nil {
		return err
	}
	spec, specErr := r.runSpec(t, plan, b.Layout(), session)
	ws, created, err := r.createWhilePreparing(ctx, sc, spec, specErr, b)
	if err != nil || ws == nil {
		return err
	}
	if specErr != nil {
		sc.fail(ReasonInvalidSpec, specErr.Error())
		return nil
	}
	info, err := r.ensureContainer(ctx, sc, plan.profile, ws, spec, created)
	if err != nil || info == nil {
		return err
	}
	st := &t.Status
	started := info.StartedAt
	if started.IsZero() {
		started = s.now()
	}
	started = started.UTC()
	st.Phase = models.TaskPhaseRunning
	st.ContainerID = info.ID
	st.ContainerName = info.Name
	st.RunStartedAt = &started
	st.Reason, st.Message = "", ""
	sc.steps = append(sc.steps, StepRunningRecorded)
	return nil
}

// runPlan is what a run is started with that does not depend on the
// workspace: the agent profile and the identity the container runs as. It is
// looked up once per pass; false means the task was failed (its spec cannot
// run).
type runPlan struct {
	profile config.Profile
	user    runAs
}

func (r *taskReconciler) runPlan(sc *taskScope) (runPlan, bool) {
	t := sc.task
	profile, ok := r.deps.config().Profile(t.Spec.Agent)
	if !ok {
		sc.fail(ReasonInvalidSpec, fmt.Sprintf("unknown agent profile %q", t.Spec.Agent))
		return runPlan{}, false
	}
	user, err := containerUser(profile.User, os.Geteuid(), os.Getegid())
	if err != nil {
		sc.fail(ReasonInvalidSpec, err.Error())
		return runPlan{}, false
	}
	return runPlan{profile: profile, user: user}, true
}

// resumedSession is the agent session the task's current run continues: none
// for a first run, else the newest one an earlier run recorded on its own
// row (written there by that run's log follower, never on the task).
func (r *taskReconciler) resumedSession(ctx context.Context, t *models.Task) (string, error) {
	if t.Status.RunNumber <= 1 {
		return "", nil
	}
	id, err := r.deps.store.LastSessionID(ctx, t.ID, t.Status.RunNumber)
	if err != nil {
		return "", fmt.Errorf("read agent session: %w", err)
	}
	return id, nil
}

// runSpec is the container spec of the task's current run on layout.
func (r *taskReconciler) runSpec(t *models.Task, plan runPlan, layout *workspace.Workspace, session string) (engine.RunSpec, error) {
	spec, err := buildRunSpec(runSpecInput{
		Task: t, Run: t.Status.RunNumber, Profile: plan.profile, Workspace: layout,
		StoreID: r.deps.storeID, User: plan.user.user, SessionID: session, LookupEnv: os.LookupEnv,
	})
	// In copy mode the two mounts become what transferIn and transferOut
	// copy through the engine's API (a remote engine cannot bind a local path).
	if err == nil && r.deps.config().TransferMode() == config.TransferCopy {
		spec.CopyMounts = true
	}
	return spec, err
}

// createResult is the outcome of a container create made ahead of its use.
type createResult struct {
	id  string
	err error
}

// createWhilePreparing creates the run's container while the build b finishes
// (at once for a readyBuild), and returns the ready workspace with the
// create's outcome. Only
// the Docker call runs beside the wait; everything that touches the pass's
// scope happens after both. A nil workspace with a nil error means the task
// was failed.
func (r *taskReconciler) createWhilePreparing(ctx context.Context, sc *taskScope, spec engine.RunSpec, specErr error,
	b building) (*workspace.Workspace, *createResult, error) {
	s, t := r.deps, sc.task
	if specErr != nil {
		// The pass fails the task with specErr once the workspace is ready.
		ws, err := r.recordPrepared(ctx, sc, b)
		return ws, nil, err
	}
	done := make(chan createResult, 1)
	go func() {
		id, err := s.rt.Create(ctx, spec)
		done <- createResult{id, err}
	}()
	ws, err := r.recordPrepared(ctx, sc, b)
	c := <-done
	if ws == nil && err == nil && c.err == nil {
		// The task failed: nothing will start the container just created.
		if rerr := s.rt.Remove(ctx, c.id, true); rerr != nil {
			s.log.Warn("remove container of a failed preparation", zap.String("task", t.ID), zap.Error(rerr))
		}
	}
	return ws, &c, err
}

// prepareSpec is what the task's workspace is prepared from.
func (r *taskReconciler) prepareSpec(t *models.Task, user runAs) workspace.PrepareSpec {
	return workspace.PrepareSpec{
		TaskID:             t.ID,
		WorkFolder:         t.Spec.WorkFolder,
		BaseRef:            t.Spec.BaseRef,
		IncludeUncommitted: t.Spec.IncludeUncommitted,
		Root:               r.deps.paths.WorkspaceDir,
		AllowedRoots:       allowedRoots(r.deps.config()),
		UID:                user.uid,
		GID:                user.gid,
	}
}

// recordPrepared waits for the build b and records where the ready workspace
// is and its base commit. A nil workspace with a nil error means the task was
// failed: its work folder or base cannot be used.
func (r *taskReconciler) recordPrepared(ctx context.Context, sc *taskScope, b building) (*workspace.Workspace, error) {
	ws, err := b.Wait(ctx)
	if err != nil {
		return nil, r.prepareFailed(sc, err)
	}
	r.recordWorkspace(sc, ws)
	return ws, nil
}

// prepareFailed fails the task when err says its work folder or base cannot
// be used, and otherwise returns err to retry.
func (r *taskReconciler) prepareFailed(sc *taskScope, err error) error {
	switch {
	case errors.Is(err, workspace.ErrOutsideAllowedRoots):
		sc.fail(ReasonOutsideAllowedRoots, "prepare workspace: "+err.Error())
		return nil
	case errors.Is(err, workspace.ErrNotGitWorkTree), errors.Is(err, workspace.ErrInvalidRef),
		errors.Is(err, workspace.ErrInvalidSpec), errors.Is(err, fs.ErrNotExist), errors.Is(err, fs.ErrPermission):
		sc.fail(ReasonPrepareFailed, "prepare workspace: "+err.Error())
		return nil
	default:
		return fmt.Errorf("prepare workspace: %w", err)
	}
}

// recordWorkspace records where the ready workspace is and its base commit.
func (r *taskReconciler) recordWorkspace(sc *taskScope, ws *workspace.Workspace) {
	t := sc.task
	t.Status.WorkspacePath = ws.Dir
	t.Status.BaseCommit = ws.BaseCommit
	r.deps.step(StepWorkspaceReady, t.ID, t.Status.RunNumber)
}

// ensureContainer creates the run's container from spec (unless created carries the
// outcome of a create made already), or adopts the one a previous pass created
// before it died, and starts it unless it already ran. A nil result with a nil
// error means the task was failed.
func (r *taskReconciler) ensureContainer(ctx context.Context, sc *taskScope, profile config.Profile,
	ws *workspace.Workspace, spec engine.RunSpec, created *createResult) (*engine.ContainerInfo, error) {
	s, t := r.deps, sc.task
	run := t.Status.RunNumber
	var err error
	log := s.log.With(zap.String("task", t.ID), zap.Int("run", run), zap.String("container", spec.Name))

	var id string
	if created != nil {
		id, err = created.id, created.err
	} else {
		id, err = s.rt.Create(ctx, spec)
	}
	adopted := false
	switch {
	case err == nil:
		log.Info("container created")
	case errors.Is(err, engine.ErrNameConflict):
		adopted = true
	case errors.Is(err, engine.ErrImageNotFound):
		sc.fail(ReasonImageNotFound, fmt.Sprintf("image %s is not present on the Docker engine; build it first (see hack/images)", profile.Image))
		return nil, nil
	case errors.Is(err, engine.ErrRefused):
		sc.fail(ReasonRefused, err.Error())
		return nil, nil
	default:
		return nil, fmt.Errorf("create container: %w", err)
	}

	info := engine.ContainerInfo{ID: id, Name: spec.Name, Image: spec.Image, State: engine.StateCreated, Labels: spec.Labels}
	if adopted {
		if info, err = s.rt.Inspect(ctx, id); err != nil {
			return nil, fmt.Errorf("inspect existing container: %w", err)
		}
		if !ownsContainer(info.Labels, s.storeID, t.ID, run) {
			sc.fail(ReasonNameTaken, fmt.Sprintf("container name %s is held by a container this installation does not own", spec.Name))
			return nil, nil
		}
		log.Info("adopted container created before a restart", zap.String("state", info.State))
		sc.event("ContainerAdopted", fmt.Sprintf("adopted container %s (%s) created before a restart", info.Name, info.State))
	}
	s.step(StepContainerCreated, t.ID, run)

	if info.State == engine.StateCreated {
		if err := r.transferIn(ctx, sc, ws, info, spec, adopted); err != nil {
			return nil, err
		}
		if err := s.rt.Start(ctx, info.ID); err != nil {
			// A start the engine refuses for good (the command does not exist
			// in the image) leaves its reason on the container.
			if ii, ierr := s.rt.Inspect(ctx, info.ID); ierr == nil && ii.Error != "" && !ii.Running() {
				sc.fail(ReasonStartFailed, "start container: "+ii.Error)
				return nil, nil
			}
			return nil, fmt.Errorf("start container: %w", err)
		}
		info.State = engine.StateRunning
		info.StartedAt = s.now()
		log.Info("container started")
	}
	s.step(StepContainerStarted, t.ID, run)
	s.recordContainer(ctx, info, t.ID, run, false)
	return &info, nil
}

// reconcileRunning watches the run's container until it exits. It owns
// ExitCode, the TimedOut or OOMKilled reason carried to Collecting, the
// container stop at the deadline, and the move to Collecting (or to Failed
// when the container vanished). The log follower it keeps alive owns the
// run's execution_logs row (output time, the agent's progress); the task's
// status is never written by it.
func (r *taskReconciler) reconcileRunning(ctx context.Context, sc *taskScope) error {
	s, t := r.deps, sc.task
	st := &t.Status
	info, err := s.rt.Inspect(ctx, containerRef(t))
	if errors.Is(err, engine.ErrNotFound) {
		if t.Spec.DesiredState == models.TaskDesiredCancel {
			st.Phase, st.Reason, st.Message = models.TaskPhaseCancelled, ReasonCancelled, cancelMessage(t.Spec.CancelReason)
			return nil
		}
		sc.fail(ReasonVanished, "container vanished")
		return nil
	}
	if err != nil {
		return fmt.Errorf("inspect container: %w", err)
	}
	if info.State == engine.StateCreated {
		// Recorded as running yet never started (the engine lost the start):
		// start it now rather than wait for a deadline.
		if err := s.rt.Start(ctx, info.ID); err != nil {
			return fmt.Errorf("start container: %w", err)
		}
		sc.requeueAfter(time.Second)
		return nil
	}
	timeout := s.taskTimeout(t)
	deadline := runStart(t, info).Add(timeout)
	follower := s.followers.Ensure(s.taskFollowTarget(t, info))

	if !info.Finished() {
		sc.notePaused(info, deadline)
		now := s.now()
		if now.Before(deadline) {
			sc.requeueAfter(min(deadline.Sub(now), s.config().Intervals.Resync.Duration))
			return nil
		}
		s.log.Info("task deadline passed, stopping container", zap.String("task", t.ID),
			zap.Int("run", st.RunNumber), zap.Duration("timeout", timeout))
		if err := s.rt.Stop(ctx, info.ID, s.stopGrace); err != nil && !errors.Is(err, engine.ErrNotFound) {
			return fmt.Errorf("stop container at deadline: %w", err)
		}
		sc.event("DeadlineExceeded", fmt.Sprintf("stopped container %s after %s", info.Name, timeout))
		if info, err = s.rt.Inspect(ctx, info.ID); err != nil {
			return fmt.Errorf("inspect stopped container: %w", err)
		}
		if !info.Finished() {
			sc.requeueAfter(time.Second)
			return nil
		}
	}

	// The container has exited. Its output must all be in the log file before
	// the run is recorded as over.
	if follower != nil && !follower.Wait(ctx, s.drainWait) {
		sc.requeueAfter(500 * time.Millisecond)
		return nil
	}
	s.step(StepExited, t.ID, st.RunNumber)

	daemon := s.daemonStateAtExit(ctx, info)
	if daemon == engine.DaemonAway {
		sc.event("EndedWhileDockerAway", fmt.Sprintf("run %d ended while the Docker daemon was down; "+
			"Docker drops what a container prints while it is down, so the end of the output may be missing from the log", st.RunNumber))
	}
	code := info.ExitCode
	st.ExitCode = &code
	st.Phase = models.TaskPhaseCollecting
	st.Reason, st.Message = exitReason(info, deadline, timeout, daemon)
	sc.steps = append(sc.steps, StepCollectingRecorded)
	s.recordContainer(ctx, info, t.ID, st.RunNumber, false)
	return nil
}

// notePaused shows a run whose container was paused (docker pause) in its
// reason, which nothing else would tell: the task stays running and makes no
// progress. The deadline still applies and a cancel still stops it (Docker
// stops a paused container). It owns Reason and Message while Running, and
// clears its own line once the container runs again.
func (sc *taskScope) notePaused(info engine.ContainerInfo, deadline time.Time) {
	st := &sc.task.Status
	switch {
	case info.State == engine.StatePaused:
		msg := fmt.Sprintf("container %s is paused: the run makes no progress until `docker unpause %s`; "+
			"its deadline (%s) still applies, and cancel_task ends it", info.Name, info.Name, deadline.UTC().Format(time.RFC3339))
		if st.Reason != ReasonPaused {
			sc.event(ReasonPaused, msg)
		}
		st.Reason, st.Message = ReasonPaused, msg
	case st.Reason == ReasonPaused:
		sc.event("ContainerUnpaused", fmt.Sprintf("container %s runs again", info.Name))
		st.Reason, st.Message = "", ""
	}
}

// exitReason tells a run stopped at its deadline, killed for memory or
// stopped by the Docker daemon going down apart from one that ended by
// itself. Docker's finish time is the durable witness of the first, so that
// answer is the same when it is computed again after a restart of this
// process; the daemon's state comes from what this process saw of it (see
// daemonStateAtExit), so a run that outlived both is reported by its exit code.
func exitReason(info engine.ContainerInfo, deadline time.Time, timeout time.Duration, daemon engine.DaemonState) (reason, message string) {
	finished := info.FinishedAt
	switch {
	case !finished.IsZero() && !finished.Before(deadline):
		return ReasonTimedOut, fmt.Sprintf("timed out after %s", timeout)
	case info.OOMKilled:
		return ReasonOOMKilled, fmt.Sprintf("killed for exceeding its memory limit (exit code %d)", info.ExitCode)
	case daemon == engine.DaemonStopping && info.ExitCode != 0:
		// Exit 0 is kept: the run finished as the daemon went down.
		return ReasonDaemonRestart, fmt.Sprintf("container stopped by a Docker daemon restart (exit %d); "+
			"its output and any changes so far are kept; submit the task again to rerun it "+
			"(a daemon with live-restore keeps runs alive through restarts)", info.ExitCode)
	default:
		return "", ""
	}
}

// daemonStateAtExit tells what the Docker daemon was doing when the run's
// container ended: the outages the event watch saw say it for an end noticed
// after the daemon came back; for a failed run noticed at once, the daemon may
// be shutting down right now, still serving the connection the end was read
// over but refusing new ones, which one probe tells.
func (s *taskDeps) daemonStateAtExit(ctx context.Context, info engine.ContainerInfo) engine.DaemonState {
	state := engine.DaemonStateAt(s.rt.Outages(), info.FinishedAt)
	if state == engine.DaemonUp && info.ExitCode != 0 && !info.FinishedAt.IsZero() &&
		s.now().Sub(info.FinishedAt) < engine.DaemonShutdownWindow && s.rt.RefusesConnections(ctx) {
		state = engine.DaemonStopping
	}
	return state
}

// reconcileCollecting captures what the run left in its workspace and ends
// the run. It owns DiffID, PendingQuestion, and the final Phase, Reason and
// Message; the task's older diffs still awaiting review are handed to the
// diff controller, which supersedes them.
func (r *taskReconciler) reconcileCollecting(ctx context.Context, sc *taskScope) error {
	s, t := r.deps, sc.task
	st := &t.Status
	run := st.RunNumber
	s.followers.Forget(t.ID, run)

	in := outcomeInput{
		Cancelled:    t.Spec.DesiredState == models.TaskDesiredCancel,
		CancelReason: t.Spec.CancelReason,
		Reason:       st.Reason,
		Message:      st.Message,
		ExitCode:     -1,
	}
	if st.ExitCode != nil {
		in.ExitCode = *st.ExitCode
	}
	ws, err := s.workspaces.Open(s.paths.WorkspaceDir, t.ID)
	switch {
	case errors.Is(err, workspace.ErrNotFound):
		in.Capture, in.CaptureText = captureNoWorkdir, "the workspace is gone; the run's changes cannot be collected"
		st.DiffID = ""
	case err != nil:
		return fmt.Errorf("open workspace: %w", err)
	default:
		if capture, err := r.transferOut(ctx, sc, ws, &in); err != nil || !capture {
			if err != nil {
				return err
			}
			break
		}
		older, err := r.captureDiff(ctx, sc, ws, &in)
		if err != nil {
			return err
		}
		if len(older) > 0 {
			// The older diffs this run's result replaces are superseded by
			// the diff controller, their status's only writer; the run ends
			// once they are, so whoever sees it ended sees them superseded.
			for _, id := range older {
				s.notify(KindDiff, id)
			}
			sc.requeueAfter(supersedeRequeue)
			return nil
		}
	}
	s.step(StepDiffRecorded, t.ID, run)

	if profile, ok := s.config().Profile(t.Spec.Agent); ok && profile.OutputFormat == "stream-json" {
		// The run's own row holds what the agent said; its follower, the
		// row's only writer, drained before the run left Running.
		el, err := s.store.GetExecutionLog(ctx, t.ID, run)
		switch {
		case err == nil:
			in.Question = questionFrom(el.Progress.ResultText, el.Progress.LastMessage)
			in.AgentResult = el.Progress.ResultText
		case !errors.Is(err, models.ErrNotFound):
			return fmt.Errorf("read progress of run %d: %w", run, err)
		}
	}
	o := runOutcome(in)
	st.Phase, st.Reason, st.Message, st.PendingQuestion = o.Phase, o.Reason, o.Message, o.PendingQuestion
	sc.steps = append(sc.steps, StepFinishedRecorded)
	return nil
}

// captureDiff stores the run's diff (once per run, however often it is
// called), points DiffID at it and supersedes the older diffs of the task
// that still await a decision. A pass retried after its status write failed
// finds the run's diff stored and does not capture it again.
func (r *taskReconciler) captureDiff(ctx context.Context, sc *taskScope, ws *workspace.Workspace, in *outcomeInput) (older []string, err error) {
	s, t := r.deps, sc.task
	st := &t.Status
	run := st.RunNumber
	diffs, err := s.store.ListDiffs(ctx, models.DiffFilter{TaskID: t.ID})
	if err != nil {
		return nil, fmt.Errorf("list diffs of task %s: %w", t.ID, err)
	}
	if i := slices.IndexFunc(diffs, func(d models.Diff) bool { return d.RunNumber == run }); i >= 0 {
		st.DiffID = diffs[i].ID
		in.Capture, in.CaptureText = captureDiff, diffSummary(&diffs[i])
		return olderAwaiting(diffs, run), nil
	}
	d, err := s.diffs.CaptureDiff(ctx, ws, run, s.config().MaxPatchBytes)
	switch {
	case errors.Is(err, workspace.ErrNoChanges):
		in.Capture = captureNone
		st.DiffID = ""
	case errors.Is(err, workspace.ErrPatchTooLarge):
		in.Capture, in.CaptureText = captureTooLarge, tooLargeMessage(t, ws, run, err)
		st.DiffID = ""
	case errors.Is(err, workspace.ErrUncapturable):
		// Retrying cannot help: the run fails, saying what to remove; a
		// revision continues the session on the same workspace.
		in.Capture, in.CaptureText = captureRefused, err.Error()
		st.DiffID = ""
	case err != nil:
		return nil, fmt.Errorf("capture diff: %w", err)
	default:
		d.TaskID, d.RunNumber = t.ID, run
		stored, created, err := s.store.CreateDiff(ctx, d)
		if err != nil {
			return nil, fmt.Errorf("store diff: %w", err)
		}
		st.DiffID = stored.ID
		in.Capture, in.CaptureText = captureDiff, diffSummary(stored)
		if created {
			sc.event("DiffCaptured", fmt.Sprintf("run %d: %s (%s)", run, in.CaptureText, stored.ID))
			s.notify(KindDiff, stored.ID)
		}
	}
	return olderAwaiting(diffs, run), nil
}

// tooLargeMessage tells the user of a run whose change was too large to keep
// as a diff that no diff exists, and how to reach the result anyway: the
// workspace's files, and the result commit (kept under the run's hidden ref
// in the workspace's git dir), which one git command brings into their
// repository as a branch.
func tooLargeMessage(t *models.Task, ws *workspace.Workspace, run int, err error) string {
	return fmt.Sprintf("no diff was kept: %v. The result is in the task's workspace until retention removes it: "+
		"its files under %s; its commit as a branch with `git -C %s fetch %s %s:%s`",
		err, ws.WorkDir, t.Spec.WorkFolder, ws.GitDir, workspace.RunRef(run), workspace.BranchName(t.ID))
}

// olderAwaiting lists the task's diffs (as listed) of runs before run that
// still await a decision: the newest run's result (a diff against the same
// base, or no change at all) replaces them. The diff controller decides and
// writes Superseded (supersedingRun); the task controller only asks it to
// look.
func olderAwaiting(diffs []models.Diff, run int) []string {
	var ids []string
	for i := range diffs {
		if d := &diffs[i]; d.AwaitingDecision() && d.RunNumber < run {
			ids = append(ids, d.ID)
		}
	}
	return ids
}

func diffSummary(d *models.Diff) string {
	files := "files"
	if d.FilesChanged == 1 {
		files = "file"
	}
	return fmt.Sprintf("%d %s changed, +%d -%d", d.FilesChanged, files, d.Additions, d.Deletions)
}

// containerRef names the run's container for Docker: its id once known, else
// its deterministic name.
func containerRef(t *models.Task) string {
	if t.Status.ContainerID != "" {
		return t.Status.ContainerID
	}
	if t.Status.ContainerName != "" {
		return t.Status.ContainerName
	}
	return engine.ContainerName(t.ID, t.Status.RunNumber)
}

// runStart is when the run's clock started: as recorded, else as Docker says.
func runStart(t *models.Task, info engine.ContainerInfo) time.Time {
	if t.Status.RunStartedAt != nil {
		return *t.Status.RunStartedAt
	}
	if !info.StartedAt.IsZero() {
		return info.StartedAt
	}
	return time.Now()
}

// ownsContainer reports whether labels mark a container of this store's task run.
func ownsContainer(labels map[string]string, storeID, taskID string, run int) bool {
	s, id, n, ok := engine.Owner(labels)
	return ok && s == storeID && id == taskID && n == run
}

// recordContainer writes the registry row of a task's container. The row is
// an observation the container controller repairs on its next pass, so a
// failure here is logged, not fatal.
func (s *taskDeps) recordContainer(ctx context.Context, info engine.ContainerInfo, taskID string, run int, adopted bool) {
	c := containerRow(info, taskID, run, adopted)
	if err := s.store.UpsertContainer(ctx, &c); err != nil {
		s.log.Warn("record container failed", zap.String("container", info.Name), zap.Error(err))
	}
}

func containerRow(info engine.ContainerInfo, taskID string, run int, adopted bool) models.Container {
	c := models.Container{
		Name:     info.Name,
		DockerID: info.ID,
		TaskID:   taskID,
		Run:      run,
		State:    info.State,
		Image:    info.Image,
		Adopted:  adopted,
	}
	timePtr := func(t time.Time) *time.Time {
		if t.IsZero() {
			return nil
		}
		u := t.UTC()
		return &u
	}
	c.DockerCreatedAt = timePtr(info.CreatedAt)
	c.StartedAt = timePtr(info.StartedAt)
	c.FinishedAt = timePtr(info.FinishedAt)
	if info.Finished() {
		code := info.ExitCode
		c.ExitCode = &code
	}
	return c
}
