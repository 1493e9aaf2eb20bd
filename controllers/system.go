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

	// kindContainer routes Notify to the container controller; only the
	// controllers use it.
	kindContainer = "container"

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

// System is the controller side of claude-parallel: a reconciler.Manager
// running what setup (setup.go) wires — the task, container and diff
// controllers and the leader-only jobs — and the log followers.
type System struct {
	cfg   atomic.Pointer[config.Config] // swapped by SetConfig; read through config()
	store *models.Store
	log   *zap.Logger
	mgr   *reconciler.Manager

	// What setup built that the System itself touches: the task controller's
	// workspace builds and log followers live and die with a leadership term,
	// the container controller's counts go into Status. Tests drive passes of
	// each controller by hand.
	tasks      *taskDeps
	containers *containerReconciler
	diffRec    *diffReconciler

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
		workspaces: newHostWorkspaces(deps.Logger, root, deps.Config != nil && deps.Config.TransferMode() == config.TransferCopy),
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
	s := &System{store: deps.Store, log: log}
	s.cfg.Store(cfg)

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
		PollOnly:         !iv.WakeWatch,
		OnStartedLeading: s.startTerm,
		OnStoppedLeading: s.stopTerm,
		Registerer:       deps.Registerer,
	})
	if err != nil {
		return nil, fmt.Errorf("new system: %w", err)
	}
	s.mgr = mgr

	if err := s.setup(p, deps.AfterStep, deps.Registerer); err != nil {
		return nil, fmt.Errorf("new system: %w", err)
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
		go s.tasks.wakePending(ctx)
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
	managed, adopted := s.containers.seen.counts()
	return SystemStatus{
		IsLeader:          ms.Leader,
		Holder:            ms.Holder,
		LeaderSince:       ms.LeaderSince,
		Controllers:       ms.Controllers,
		ContainersManaged: managed,
		ContainersAdopted: adopted,
		LogFollowers:      s.tasks.followers.Active(),
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
	s.tasks.builds.start(ctx)
	s.tasks.followers.Start(ctx)
}

// stopTerm runs after every controller of the term has stopped: the followers
// and the workspace builds stop too, so a process that lost the lease writes
// nothing more.
func (s *System) stopTerm() {
	s.tasks.builds.stop()
	s.tasks.followers.Stop()
	s.containers.seen.reset()
}
