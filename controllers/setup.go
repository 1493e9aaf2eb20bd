package controllers

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"go.uber.org/zap"

	"github.com/claude-parallel/claude-parallel/config"
	"github.com/claude-parallel/claude-parallel/config/redact"
	"github.com/claude-parallel/claude-parallel/controllers/logfollow"
	"github.com/claude-parallel/claude-parallel/reconciler"
)

// setup is the whole wiring of the controller side, in one place: every
// controller and leader-only job the manager runs while this process holds
// the lease, each built with the narrow dependencies it gets, in the order
// the manager starts them. Nothing else adds to the manager, and no file
// registers anything on its own (TestSetup_WiresEverythingTheManagerRuns and
// TestControllers_NoInitNoPackageRegistry hold that).
//
// The components reach each other only through notify (the manager's
// Notify: KindTask, KindDiff, kindContainer), so none holds another.
func (s *System) setup(p ports, afterStep func(Step, string, int), reg prometheus.Registerer) error {
	cfg := s.config()
	iv := cfg.Intervals
	paths, storeID := cfg.Paths(), s.store.InstallationID()
	notify := s.mgr.Notify
	named := func(kind, name string) *zap.Logger { return s.log.With(zap.String(kind, name)) }
	roots := func() []string { return allowedRoots(s.config()) }
	secrets := func() *redact.Redactor { return s.config().Redactor() }
	step := func(st Step, taskID string, run int) {
		if afterStep != nil {
			afterStep(st, taskID, run)
		}
	}

	// The workspace size walk, whose verdicts the task controller acts on
	// (diskguard.go).
	disk := &diskGuard{
		store: s.store, log: named("runnable", workspaceSizeName), now: time.Now, notify: notify,
		limit: func() int64 { return s.config().Limits.WorkspaceMaxBytes },
	}

	// Task: a task intent from Pending to its final phase (task.go,
	// task_steps.go); keys are task ids. Its log followers copy each run's
	// output into its log file and the run's row (controllers/logfollow).
	s.tasks = &taskDeps{
		store: s.store, ports: p, paths: paths, storeID: storeID, log: s.log, config: s.config,
		now: time.Now, notify: notify, step: step, disk: disk,
		stopGrace: 5 * time.Second, drainWait: 20 * time.Second, progressEvery: time.Second,
	}
	s.tasks.followers = logfollow.NewSet(logfollow.Deps{
		Engine: p.rt, Runs: runRecorder{s.store}, Redactor: secrets, Log: s.log,
		ProgressEvery: func() time.Duration { return s.tasks.progressEvery },
	})
	tasks := &taskReconciler{deps: s.tasks}

	// Container: Docker and the container registry in step — adopt, remove,
	// forget (container.go); keys are container names.
	s.containers = &containerReconciler{containerDeps: containerDeps{
		store: s.store, rt: p.rt, storeID: storeID, paths: paths,
		log: named("controller", containerControllerName), now: time.Now, config: s.config,
		notify: notify, followers: s.tasks.followers, logPath: s.tasks.taskLogPath,
	}}

	// Diff: apply, reject and re-check captured diffs (diff.go,
	// diff_steps.go); keys are diff ids.
	s.diffRec = &diffReconciler{
		store: s.store, rt: p.rt, workspaces: p.workspaces, paths: paths, storeID: storeID,
		log: named("controller", diffControllerName), now: time.Now, notify: notify, step: step,
		roots: roots, secrets: secrets,
	}

	// Docker's events, as hints for the task and container controllers
	// (dockerevents.go).
	events := &dockerEvents{
		rt: p.rt, storeID: storeID, log: s.log, notify: notify,
		retryFollowers: s.tasks.followers.RetryNow, resyncContainers: s.containers.resync, resyncAll: s.mgr.ResyncAll,
	}

	// Retention: old tasks, diffs, logs and workspaces go (retention.go).
	retain := &retention{
		store: s.store, workspaces: p.workspaces, paths: paths, batch: retentionBatch,
		log: named("runnable", retentionName), now: time.Now, notify: notify,
		maxAge: func() time.Duration { return s.config().Retention.DataMaxAge.Duration },
	}

	// The target watch (targetwatch.go): a fresh fingerprint memory each
	// term, a look every resync, stretched up to targetWatchIdleFactor times
	// while whole sweeps find every target as its diff's verdict saw it.
	var watch *targetWatch
	var watchTerm context.Context
	lookAtTargets := func(ctx context.Context) (idle bool, err error) {
		if watch == nil || watchTerm != ctx {
			watch = &targetWatch{store: s.store, workspaces: p.workspaces, log: named("runnable", targetWatchName),
				notify: notify, roots: roots, seen: map[string]string{}}
			watchTerm = ctx
		}
		return watch.lookIdle(ctx)
	}

	ctl := controllerOptions(cfg, s.log, reg)
	return errors.Join(
		addController(s.mgr, taskControllerName, tasks, ctl(s.store.ListLiveTaskIDs), KindTask),
		// No ListKeys: the container controller's keys come from Docker, and
		// listing Docker on every store commit (the wake-up resync) would be a
		// waste. Its own periodic pass and the event watch feed it instead.
		addController(s.mgr, containerControllerName, s.containers, ctl(nil), kindContainer),
		addController(s.mgr, diffControllerName, s.diffRec, ctl(s.store.ListLiveDiffIDs), KindDiff),
		// Both stretch their interval while they find nothing to do, and
		// any write or Docker event brings it back (AddIdlePeriodic).
		s.mgr.AddIdlePeriodic(containerGCName, iv.ContainerGC.Duration,
			reconciler.IdleBackoffFactor*iv.ContainerGC.Duration, s.containers.gcPass),
		s.mgr.AddRunnable(dockerEventsName, events.run),
		s.mgr.AddIdlePeriodic(workspaceSizeName, iv.WorkspaceCheck.Duration,
			reconciler.IdleBackoffFactor*iv.WorkspaceCheck.Duration, disk.sizePass),
		s.mgr.AddPeriodic(retentionName, iv.Retention.Duration, retain.run),
		s.mgr.AddIdlePeriodic(targetWatchName, iv.Resync.Duration, targetWatchIdleFactor*iv.Resync.Duration, lookAtTargets),
	)
}

// controllerOptions returns the reconciler options every controller runs
// with, given how it lists its live keys for the periodic and wake-up
// resyncs (nil: it has none).
func controllerOptions(cfg *config.Config, log *zap.Logger, reg prometheus.Registerer) func(listKeys func(context.Context) ([]string, error)) reconciler.Options {
	return func(listKeys func(context.Context) ([]string, error)) reconciler.Options {
		return reconciler.Options{
			Workers:          cfg.Workers,
			ReconcileTimeout: cfg.Intervals.ReconcileTimeout.Duration,
			MaxBackoff:       30 * time.Second,
			Logger:           log,
			ListKeys:         listKeys,
			ResyncInterval:   cfg.Intervals.Resync.Duration,
			// Nothing live: the resync stretches; a hint brings it back.
			IdleResyncMax: reconciler.IdleBackoffFactor * cfg.Intervals.Resync.Duration,
			Registerer:    reg,
		}
	}
}

// addController adds a controller named name over r to mgr; Notify(kind, key)
// for any of kinds enqueues key on it.
func addController(mgr *reconciler.Manager, name string, r reconciler.Reconciler, opts reconciler.Options, kinds ...string) error {
	c, err := reconciler.New(name, r, opts)
	if err != nil {
		return err
	}
	if err := mgr.Add(c, kinds...); err != nil {
		return fmt.Errorf("add controller %s: %w", name, err)
	}
	return nil
}
