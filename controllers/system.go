// Package controllers holds claude-parallel's domain reconcilers — task,
// container, diff, retention — and System, which runs them under the leader
// lease of package reconciler.
//
// Every reconciler is level-triggered: it gets a key, reads the store and the
// real world (Docker through ContainerRuntime, git through Workspaces and
// DiffCapturer) and moves the object one step towards its spec. Events — a
// front-end write (Notify), a Docker event, another process's commit — are
// only hints that put a key on a queue.
package controllers

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"go.uber.org/zap"

	"github.com/claude-parallel/claude-parallel/config"
	"github.com/claude-parallel/claude-parallel/controllers/engine"
	"github.com/claude-parallel/claude-parallel/models"
	"github.com/claude-parallel/claude-parallel/reconciler"
)

// Names of the leader lease, the controllers and the Notify kinds.
const (
	// LeaseName is the leader lease every process on one database competes for.
	LeaseName = models.LeaderLease

	// KindTask and KindDiff are the kinds front ends pass to Notify.
	KindTask = "task"
	KindDiff = "diff"

	taskControllerName      = "task"
	containerControllerName = "container"
)

// Deps is what a System is built from.
type Deps struct {
	Config *config.Config
	Store  *models.Store
	Engine *engine.Engine
	Logger *zap.Logger
	// Holder is this process's identity in the leader lease; "" means
	// hostname:pid:random.
	Holder string
	// Registerer, when not nil, receives the controllers' Prometheus metrics.
	Registerer prometheus.Registerer
	// AfterStep, when not nil, is called synchronously after each durable step
	// of a task run (see Step). It exists for fault injection: the crash tests
	// kill the process from it at a precise point.
	AfterStep func(step Step, taskID string, run int)
}

// Step names a point in a task run's life at which the process may die; a
// restarted controller must carry the task on from there without a second
// container, a lost line of output or a wrong final state.
type Step string

// Task run steps, in the order they happen.
const (
	StepAdmitted           Step = "admitted"            // phase Preparing written: a slot is reserved
	StepWorkspaceReady     Step = "workspace-ready"     // workspace prepared, no container yet
	StepContainerCreated   Step = "container-created"   // container created (or adopted), not started
	StepContainerStarted   Step = "container-started"   // container started, Running not yet recorded
	StepRunningRecorded    Step = "running-recorded"    // phase Running written
	StepExited             Step = "exited"              // exit observed and output drained, not yet recorded
	StepCollectingRecorded Step = "collecting-recorded" // exit code written, phase Collecting
	StepDiffRecorded       Step = "diff-recorded"       // diff row stored, final phase not yet written
	StepFinishedRecorded   Step = "finished-recorded"   // final phase written
)

// Steps lists every Step in order.
func Steps() []Step {
	return []Step{StepAdmitted, StepWorkspaceReady, StepContainerCreated, StepContainerStarted,
		StepRunningRecorded, StepExited, StepCollectingRecorded, StepDiffRecorded, StepFinishedRecorded}
}

// SystemStatus is a point-in-time view of the controllers, for system_status.
type SystemStatus struct {
	IsLeader    bool
	Holder      string
	LeaderSince time.Time // zero when not leading
	Controllers []reconciler.Stats
	// ContainersManaged counts running containers owned by a live task run;
	// ContainersAdopted those found running with no owning task. Both are as
	// of the container controller's last look (leader only).
	ContainersManaged int
	ContainersAdopted int
	// LogFollowers counts container output streams being copied to log files.
	LogFollowers int
}

// Registration points for controllers and leader-only jobs written in other
// files of this package (controllers/diff.go, controllers/retention.go), so
// that system.go does not depend on them at compile time. Such a file appends
// a factory in its init():
//
//	func init() {
//		extraControllers = append(extraControllers, func(s *System) (controllerSpec, error) {
//			r := &diffReconciler{s: s}
//			return controllerSpec{Name: "diff", Kinds: []string{KindDiff}, Reconciler: r,
//				ListKeys: s.store.ListLiveDiffIDs}, nil
//		})
//	}
//
// A factory may use every field of System (cfg, store, log, paths, storeID,
// the ports, Notify); it must not start goroutines: System runs the
// controller and the runnables only while this process holds the lease.
var (
	extraControllers []controllerFactory
	extraRunnables   []runnableFactory
)

// controllerFactory builds one extra controller for s.
type controllerFactory func(s *System) (controllerSpec, error)

// controllerSpec describes a controller added through extraControllers.
type controllerSpec struct {
	Name       string   // controller name, in logs, metrics and Status
	Kinds      []string // Notify kinds routed to it, e.g. KindDiff
	Reconciler reconciler.Reconciler
	// ListKeys lists the live keys for the periodic and wake-up resyncs; it
	// should cost in proportion to live objects, not history.
	ListKeys func(ctx context.Context) ([]string, error)
	Resync   time.Duration // 0: config intervals.resync
}

// runnableFactory builds one extra leader-only job for s.
type runnableFactory func(s *System) (runnableSpec, error)

// runnableSpec describes a leader-only job added through extraRunnables.
type runnableSpec struct {
	Name string
	// Every > 0 runs Run at the start of each leadership term and then every
	// Every (jittered); 0 runs it once per term, and it must return when ctx ends.
	Every time.Duration
	Run   func(ctx context.Context) error
}

// System is the controller side of claude-parallel: a reconciler.Manager with
// the task and container controllers (and those registered by other files),
// the Docker event watch, and the log followers.
type System struct {
	cfg     atomic.Pointer[config.Config] // swapped by SetConfig; read through config()
	store   *models.Store
	log     *zap.Logger
	paths   config.Paths
	storeID string // installation id: the claude-parallel.store label
	ports

	afterStep func(Step, string, int)
	now       func() time.Time
	// stopGrace is how long a stopped container gets between SIGTERM and SIGKILL.
	stopGrace time.Duration
	// drainWait bounds how long one reconcile pass waits for a log follower to
	// drain an exited container's output before it requeues instead.
	drainWait time.Duration
	// progressEvery throttles the follower's writes of output progress.
	progressEvery time.Duration

	mgr          *reconciler.Manager
	taskCtl      *reconciler.Controller
	containerCtl *reconciler.Controller

	admission admission
	disk      diskGuard       // verdicts of the workspace size walk (diskguard.go)
	builds    workspaceBuilds // workspaces prepared in the background (preparing.go)
	followers *followerSet
	seen      containerCounts

	runMu  sync.Mutex
	runCtx context.Context // the context Run was called with
}

// NewSystem builds the controllers over deps; nothing runs until Run.
func NewSystem(deps Deps) (*System, error) {
	if deps.Engine == nil {
		return nil, errors.New("new system: no container engine")
	}
	var root string
	if deps.Config != nil {
		root = deps.Config.Paths().WorkspaceDir
	}
	return newSystem(deps, ports{
		rt:         deps.Engine,
		workspaces: newHostWorkspaces(deps.Logger, root),
		diffs:      workspaceDiffs{},
	})
}

// newSystem is NewSystem with the outside world given, for tests.
func newSystem(deps Deps, p ports) (*System, error) {
	if deps.Config == nil || deps.Store == nil {
		return nil, errors.New("new system: config and store are required")
	}
	if p.rt == nil || p.workspaces == nil || p.diffs == nil {
		return nil, errors.New("new system: container runtime, workspaces and diff capturer are required")
	}
	log := deps.Logger
	if log == nil {
		log = zap.NewNop()
	}
	cfg := deps.Config
	s := &System{
		store:         deps.Store,
		log:           log,
		paths:         cfg.Paths(),
		storeID:       deps.Store.InstallationID(),
		ports:         p,
		afterStep:     deps.AfterStep,
		now:           time.Now,
		stopGrace:     5 * time.Second,
		drainWait:     20 * time.Second,
		progressEvery: time.Second,
	}
	s.cfg.Store(cfg)
	s.followers = newFollowerSet(s)

	iv := cfg.Intervals
	mgr, err := reconciler.NewManager(reconciler.ManagerOptions{
		Logger:           log,
		Lease:            deps.Store,
		LeaseName:        LeaseName,
		Holder:           deps.Holder,
		LeaseDuration:    iv.LeaseDuration.Duration,
		RenewInterval:    iv.LeaseRenew.Duration,
		Changes:          deps.Store,
		WakePoll:         iv.WakePoll.Duration,
		OnStartedLeading: s.startTerm,
		OnStoppedLeading: s.stopTerm,
		Registerer:       deps.Registerer,
	})
	if err != nil {
		return nil, fmt.Errorf("new system: %w", err)
	}
	s.mgr = mgr

	opts := func(listKeys func(context.Context) ([]string, error), resync time.Duration) reconciler.Options {
		if resync <= 0 {
			resync = iv.Resync.Duration
		}
		return reconciler.Options{
			Workers:          cfg.Workers,
			ReconcileTimeout: iv.ReconcileTimeout.Duration,
			MaxBackoff:       30 * time.Second,
			Logger:           log,
			ListKeys:         listKeys,
			ResyncInterval:   resync,
			Registerer:       deps.Registerer,
		}
	}
	if s.taskCtl, err = reconciler.New(taskControllerName, &taskReconciler{s: s}, opts(s.store.ListLiveTaskIDs, 0)); err != nil {
		return nil, fmt.Errorf("new system: %w", err)
	}
	if err := mgr.Add(s.taskCtl, KindTask); err != nil {
		return nil, fmt.Errorf("new system: %w", err)
	}
	// The container controller has no ListKeys: its keys come from Docker, and
	// listing Docker on every store commit (the wake-up resync) would be a
	// waste. Its own periodic pass and the event watch feed it instead.
	if s.containerCtl, err = reconciler.New(containerControllerName, &containerReconciler{s: s}, opts(nil, 0)); err != nil {
		return nil, fmt.Errorf("new system: %w", err)
	}
	if err := mgr.Add(s.containerCtl); err != nil {
		return nil, fmt.Errorf("new system: %w", err)
	}
	if err := mgr.AddPeriodic("container-gc", iv.ContainerGC.Duration, s.resyncContainers); err != nil {
		return nil, fmt.Errorf("new system: %w", err)
	}
	if err := mgr.AddRunnable("docker-events", s.watchDocker); err != nil {
		return nil, fmt.Errorf("new system: %w", err)
	}

	for _, f := range extraControllers {
		spec, err := f(s)
		if err != nil {
			return nil, fmt.Errorf("new system: %w", err)
		}
		c, err := reconciler.New(spec.Name, spec.Reconciler, opts(spec.ListKeys, spec.Resync))
		if err != nil {
			return nil, fmt.Errorf("new system: %w", err)
		}
		if err := mgr.Add(c, spec.Kinds...); err != nil {
			return nil, fmt.Errorf("new system: %w", err)
		}
	}
	for _, f := range extraRunnables {
		spec, err := f(s)
		if err != nil {
			return nil, fmt.Errorf("new system: %w", err)
		}
		if spec.Every > 0 {
			err = mgr.AddPeriodic(spec.Name, spec.Every, spec.Run)
		} else {
			err = mgr.AddRunnable(spec.Name, spec.Run)
		}
		if err != nil {
			return nil, fmt.Errorf("new system: %w", err)
		}
	}
	return s, nil
}

// Run campaigns for the leader lease and runs every controller while this
// process holds it, until ctx is done. Containers keep running when it
// returns; the next leader adopts them.
func (s *System) Run(ctx context.Context) error {
	s.runMu.Lock()
	if s.runCtx != nil {
		s.runMu.Unlock()
		return errors.New("run system: already running")
	}
	s.runCtx = ctx
	s.runMu.Unlock()
	if err := s.mgr.Run(ctx); err != nil {
		return fmt.Errorf("run system: %w", err)
	}
	return nil
}

// LiveConfigKeys are the settings SetConfig applies at once (YAML keys, one
// level into sections, as `config print` shows them). The controllers read
// them on every pass: a reloaded max_parallel admits or holds back the next
// task, a profile or timeout applies to runs that start afterwards (a running
// container keeps what it was created with). Everything else — paths, the
// database, Docker host, workers, intervals, the lease — is built into the
// running controllers and needs a restart.
var LiveConfigKeys = []string{
	"max_parallel", "default_task_timeout", "max_task_timeout", "max_patch_bytes",
	"limits.workspace_max_bytes", "limits.disk_reserve_bytes",
	"retention.data_max_age", "retention.stopped_container_max_age",
	"profiles", "default_agent",
	// Read afresh for every line of output, response and log entry.
	"redact.env", "redact.patterns",
	// Read at every use of a user's folder (roots.go), by the front end as well.
	"allowed_roots",
}

// SetConfig swaps in a reloaded configuration. The caller is expected to
// change only LiveConfigKeys in it; the rest is not looked at again. Pending
// tasks are woken, so a larger max_parallel admits them at once.
func (s *System) SetConfig(cfg *config.Config) {
	s.cfg.Store(cfg)
	s.runMu.Lock()
	ctx := s.runCtx
	s.runMu.Unlock()
	if ctx != nil && s.mgr.IsLeader() {
		go s.wakePending(ctx)
	}
}

// config is the configuration in force.
func (s *System) config() *config.Config { return s.cfg.Load() }

// Notify is the in-process wake-up after a front-end write: kind KindTask or
// KindDiff, id the object's id. It never blocks and does nothing unless this
// process leads (the leader sees other processes' writes by itself).
func (s *System) Notify(kind, id string) { s.mgr.Notify(kind, id) }

// Status reports leadership, the controllers' counters and container counts.
func (s *System) Status() SystemStatus {
	ms := s.mgr.Status()
	managed, adopted := s.seen.counts()
	return SystemStatus{
		IsLeader:          ms.Leader,
		Holder:            ms.Holder,
		LeaderSince:       ms.LeaderSince,
		Controllers:       ms.Controllers,
		ContainersManaged: managed,
		ContainersAdopted: adopted,
		LogFollowers:      s.followers.active(),
	}
}

// startTerm runs when this process becomes leader, before any controller.
func (s *System) startTerm() {
	s.runMu.Lock()
	ctx := s.runCtx
	s.runMu.Unlock()
	if ctx == nil {
		ctx = context.Background()
	}
	// Log followers write to the store like the controllers: only while
	// this term's lease holds (see models.Store.FenceContext).
	ctx = s.store.FenceContext(ctx, LeaseName, s.mgr.Holder())
	s.builds.start(ctx)
	s.followers.start(ctx)
}

// stopTerm runs after every controller of the term has stopped: the followers
// and the workspace builds stop too, so a process that lost the lease writes
// nothing more.
func (s *System) stopTerm() {
	s.builds.stop()
	s.followers.stop()
	s.seen.reset()
}

// step reports a durable step to the fault-injection hook.
func (s *System) step(step Step, taskID string, run int) {
	if s.afterStep != nil {
		s.afterStep(step, taskID, run)
	}
}

// watchDocker follows the labelled container events of this store for the
// whole term: each one enqueues its task and its container; every
// (re)subscription is followed by a full resync, since events missed while
// disconnected are lost.
func (s *System) watchDocker(ctx context.Context) error {
	s.rt.Watch(ctx, engine.StoreLabels(s.storeID), func(ev engine.Event) {
		if _, taskID, _, ok := engine.Owner(ev.Attributes); ok && taskEventActions[ev.Action] {
			s.taskCtl.Enqueue(taskID)
		}
		if ev.Name != "" {
			s.containerCtl.Enqueue(ev.Name)
		}
	}, func() {
		s.log.Info("docker events subscribed, resyncing")
		// Docker answers again: followers cut by the outage resume now.
		s.followers.retryNow()
		if err := s.resyncContainers(ctx); err != nil && ctx.Err() == nil {
			s.log.Warn("container resync after docker reconnect failed", zap.Error(err))
		}
		if err := s.mgr.ResyncAll(ctx); err != nil && ctx.Err() == nil {
			s.log.Warn("resync after docker reconnect failed", zap.Error(err))
		}
	})
	return nil
}

// taskEventActions are the container events after which the owning task may
// have to act (its container ended, vanished or came back).
var taskEventActions = map[string]bool{
	"die": true, "destroy": true, "oom": true, "stop": true, "kill": true,
	"start": true, "restart": true, "pause": true, "unpause": true,
}
