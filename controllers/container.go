package controllers

import (
	"context"
	"errors"
	"fmt"
	"path/filepath"
	"sync"
	"time"

	"go.uber.org/zap"

	"github.com/claude-parallel/claude-parallel/config"
	"github.com/claude-parallel/claude-parallel/controllers/engine"
	"github.com/claude-parallel/claude-parallel/controllers/logfollow"
	"github.com/claude-parallel/claude-parallel/models"
	"github.com/claude-parallel/claude-parallel/reconciler"
)

// The container controller keeps Docker and the store's container registry in
// step, for this installation's containers only (label claude-parallel.store
// equal to the store's installation id; a container without it, or with
// another id, is never touched). Keys are container names. It runs on
// start-up and every intervals.container_gc over every labelled container and
// registry row, and at once for each Docker event:
//
//   - a running container that no live task run owns is adopted: registered
//     (adopted = true), put on the task's timeline, and its output followed
//     into a log file, so it is visible and its logs readable;
//   - a stopped container that no live run needs is removed once it has been
//     stopped for retention.stopped_container_max_age;
//   - a container that is gone has its registry row deleted and its task
//     enqueued: a task still Running on it is failed ("container vanished")
//     by the task controller.
//
// Deciding is a pure function (decideContainer); Reconcile only applies it.

// containerGCName is the container controller's periodic pass over every
// container Docker or the registry knows (containerReconciler.resync).
const containerGCName = "container-gc"

// containerAction is what the controller does with one container.
type containerAction int

const (
	containerKeep   containerAction = iota // owned by a live run, or not yet old enough: record it only
	containerAdopt                         // running and owned by no live run: register as adopted, follow its output
	containerRemove                        // stopped long enough and needed by no live run
)

func (a containerAction) String() string {
	switch a {
	case containerAdopt:
		return "adopt"
	case containerRemove:
		return "remove"
	default:
		return "keep"
	}
}

// containerFacts is what decideContainer needs to know about a container.
type containerFacts struct {
	Run        int
	Running    bool // running, paused or restarting
	FinishedAt time.Time
	CreatedAt  time.Time
}

// ownerFacts is what decideContainer needs to know about the task named by a
// container's labels.
type ownerFacts struct {
	Exists    bool
	Phase     models.TaskPhase
	RunNumber int
}

// ownsRun reports whether the task's live run is the container's run.
func (o ownerFacts) ownsRun(run int) bool {
	if !o.Exists || o.RunNumber != run {
		return false
	}
	switch o.Phase {
	case models.TaskPhasePreparing, models.TaskPhaseRunning, models.TaskPhaseCollecting:
		return true
	}
	return false
}

// decideContainer decides the fate of one of this store's containers. A
// container is removed only when it is not running, no live run needs it,
// and it stopped (or, never started, was created) at least maxAge ago.
func decideContainer(c containerFacts, owner ownerFacts, now time.Time, maxAge time.Duration) containerAction {
	owned := owner.ownsRun(c.Run)
	switch {
	case c.Running && owned:
		return containerKeep
	case c.Running:
		return containerAdopt
	case owned:
		return containerKeep
	}
	ref := c.FinishedAt
	if ref.IsZero() {
		ref = c.CreatedAt
	}
	if !ref.IsZero() && now.Sub(ref) >= maxAge {
		return containerRemove
	}
	return containerKeep
}

// containerEngine is what the container controller needs of Docker.
type containerEngine interface {
	Inspect(ctx context.Context, idOrName string) (engine.ContainerInfo, error)
	Remove(ctx context.Context, id string, force bool) error
	List(ctx context.Context, labels map[string]string, all bool) ([]engine.ContainerInfo, error)
}

// containerDeps is what the container controller depends on; setup
// (setup.go) fills it in.
type containerDeps struct {
	store   *models.Store
	rt      containerEngine
	storeID string // installation id: containers of another are never touched
	paths   config.Paths
	log     *zap.Logger
	now     func() time.Time
	// config is the configuration in force, read on every pass
	// (retention.stopped_container_max_age, intervals.container_gc, profiles).
	config func() *config.Config
	// notify enqueues a key: KindTask for a task that must look at its
	// container, kindContainer for this controller.
	notify func(kind, id string)
	// followers copy an adopted container's output into a log file.
	followers *logfollow.Set
	// logPath is where a task run's output goes (logs.go).
	logPath func(taskID string, run int) string
}

// containerReconciler is the container controller's Reconciler; keys are
// container names.
type containerReconciler struct {
	containerDeps
	// seen is what the last passes saw running, for SystemStatus.
	seen containerCounts
}

// Reconcile brings the registry row of one container in line with Docker and
// adopts or removes the container as decideContainer says.
func (r *containerReconciler) Reconcile(ctx context.Context, req reconciler.Request) (reconciler.Result, error) {
	name := req.Key
	info, err := r.rt.Inspect(ctx, name)
	if errors.Is(err, engine.ErrNotFound) {
		return reconciler.Result{}, r.reconcileGone(ctx, name)
	}
	if err != nil {
		return reconciler.Result{}, fmt.Errorf("inspect container %s: %w", name, err)
	}
	storeID, taskID, run, ok := engine.Owner(info.Labels)
	if !ok || storeID != r.storeID {
		return reconciler.Result{}, nil // not ours: never touched
	}
	task, err := r.store.GetTask(ctx, taskID)
	if err != nil && !errors.Is(err, models.ErrNotFound) {
		return reconciler.Result{}, fmt.Errorf("container %s: %w", name, err)
	}
	if errors.Is(err, models.ErrNotFound) {
		task = nil
	}
	owner := ownerFacts{}
	if task != nil {
		owner = ownerFacts{Exists: true, Phase: task.Status.Phase, RunNumber: task.Status.RunNumber}
	}
	facts := containerFacts{Run: run, Running: info.Running(), FinishedAt: info.FinishedAt, CreatedAt: info.CreatedAt}
	now := r.now()
	maxAge := r.config().Retention.StoppedContainerMaxAge.Duration
	row, err := r.store.GetContainerByName(ctx, name)
	if errors.Is(err, models.ErrNotFound) {
		row, err = nil, nil
	}
	if err != nil {
		return reconciler.Result{}, fmt.Errorf("container %s: %w", name, err)
	}
	log := r.log.With(zap.String("container", name), zap.String("task", taskID), zap.Int("run", run))

	switch decideContainer(facts, owner, now, maxAge) {
	case containerAdopt:
		if row == nil || !row.Adopted {
			log.Info("adopting running container no task run owns")
			r.event(ctx, name, "ContainerAdopted",
				fmt.Sprintf("adopted running container %s of %s run %d, which no live task run owns", name, taskID, run))
		}
		r.seen.observe(name, true, true)
		r.record(ctx, row, containerRow(info, taskID, run, true), now)
		r.followers.Ensure(r.adoptedFollowTarget(info, task, taskID, run))
		return reconciler.Result{}, nil

	case containerRemove:
		log.Info("removing stopped container", zap.Time("finishedAt", info.FinishedAt), zap.Duration("maxAge", maxAge))
		if err := r.rt.Remove(ctx, info.ID, false); err != nil && !errors.Is(err, engine.ErrNotFound) {
			return reconciler.Result{}, fmt.Errorf("remove container %s: %w", name, err)
		}
		if row != nil {
			if err := r.store.DeleteContainer(ctx, name); err != nil && !errors.Is(err, models.ErrNotFound) {
				return reconciler.Result{}, fmt.Errorf("container %s: %w", name, err)
			}
		}
		r.seen.forget(name)
		r.followers.Forget(taskID, run)
		r.event(ctx, name, "ContainerRemoved", fmt.Sprintf("removed container %s, stopped for more than %s", name, maxAge))
		return reconciler.Result{}, nil

	default: // containerKeep
		adopted := row != nil && row.Adopted && facts.Running && !owner.ownsRun(run)
		r.seen.observe(name, facts.Running, adopted)
		r.record(ctx, row, containerRow(info, taskID, run, adopted), now)
		if task != nil && task.Status.Phase == models.TaskPhaseRunning && !facts.Running {
			// The container of a running task has stopped: the task may have
			// missed the event (the controller was down).
			r.notify(KindTask, taskID)
		}
		if !facts.Running && !owner.ownsRun(run) {
			// Come back when it is old enough to be removed.
			ref := info.FinishedAt
			if ref.IsZero() {
				ref = info.CreatedAt
			}
			if wait := ref.Add(maxAge).Sub(now); wait > 0 {
				return reconciler.Result{RequeueAfter: wait + time.Second}, nil
			}
		}
		return reconciler.Result{}, nil
	}
}

// reconcileGone handles a container Docker no longer has: its registry row
// goes and its task is told.
func (r *containerReconciler) reconcileGone(ctx context.Context, name string) error {
	r.seen.forget(name)
	row, err := r.store.GetContainerByName(ctx, name)
	if errors.Is(err, models.ErrNotFound) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("container %s: %w", name, err)
	}
	if err := r.store.DeleteContainer(ctx, name); err != nil && !errors.Is(err, models.ErrNotFound) {
		return fmt.Errorf("container %s: %w", name, err)
	}
	if row.TaskID != "" {
		r.notify(KindTask, row.TaskID)
	}
	return nil
}

// record upserts the registry row when the observation differs from it, or
// to refresh last_seen_at about once per GC interval: writing every pass
// would wake every process on the database for nothing.
func (r *containerReconciler) record(ctx context.Context, old *models.Container, c models.Container, now time.Time) {
	if old != nil && !containerRowChanged(*old, c) && now.Sub(old.LastSeenAt) < r.config().Intervals.ContainerGC.Duration/2 {
		return
	}
	if err := r.store.UpsertContainer(ctx, &c); err != nil {
		r.log.Warn("record container failed", zap.String("container", c.Name), zap.Error(err))
	}
}

func containerRowChanged(a, b models.Container) bool {
	return a.DockerID != b.DockerID || a.TaskID != b.TaskID || a.Run != b.Run || a.State != b.State ||
		a.Image != b.Image || a.Adopted != b.Adopted || !equalIntPtr(a.ExitCode, b.ExitCode) ||
		!equalTimePtr(a.StartedAt, b.StartedAt) || !equalTimePtr(a.FinishedAt, b.FinishedAt)
}

func equalIntPtr(a, b *int) bool {
	if a == nil || b == nil {
		return a == b
	}
	return *a == *b
}

func equalTimePtr(a, b *time.Time) bool {
	if a == nil || b == nil {
		return a == b
	}
	return a.Equal(*b)
}

// event records a line on the container's timeline; it is for people, so a
// failure is only logged.
func (r *containerReconciler) event(ctx context.Context, name, reason, message string) {
	if err := r.store.RecordEvent(ctx, models.EventKindContainer, name, reason, message); err != nil {
		r.log.Warn("record container event failed", zap.String("container", name), zap.Error(err))
	}
}

// adoptedFollowTarget says where an adopted container's output goes: its
// task run's log when the task exists, else logs/tasks/adopted/<name>.log.
func (r *containerReconciler) adoptedFollowTarget(info engine.ContainerInfo, task *models.Task, taskID string, run int) logfollow.Target {
	if task != nil {
		profile, _ := r.config().Profile(task.Spec.Agent)
		return logfollow.Target{TaskID: taskID, Run: run, ContainerID: info.ID, Path: r.logPath(taskID, run),
			TrackTask: true, StreamJSON: profile.OutputFormat == "stream-json"}
	}
	return logfollow.Target{TaskID: taskID, Run: run, ContainerID: info.ID,
		Path: filepath.Join(r.paths.TaskLogDir, "adopted", info.Name+".log")}
}

// resyncContainers enqueues every container of this store that Docker or the
// registry knows, and every running task whose container Docker no longer
// has. It is the container controller's periodic pass and runs after each
// Docker reconnect.
func (r *containerReconciler) resync(ctx context.Context) error {
	_, err := r.gcPass(ctx)
	return err
}

// gcPass is resync as the periodic container GC runs it: idle when Docker
// holds no container of this store, the registry no row and no task runs,
// so the job stretches its interval while there is nothing to compare
// (a stopped container waiting to age out keeps it at its interval).
func (r *containerReconciler) gcPass(ctx context.Context) (idle bool, err error) {
	list, err := r.rt.List(ctx, engine.StoreLabels(r.storeID), true)
	if err != nil {
		return false, fmt.Errorf("container resync: %w", err)
	}
	rows, err := r.store.ListContainers(ctx, models.ContainerFilter{})
	if err != nil {
		return false, fmt.Errorf("container resync: %w", err)
	}
	inDocker := make(map[string]bool, len(list))
	for _, c := range list {
		inDocker[c.Name] = true
		r.notify(kindContainer, c.Name)
	}
	for _, row := range rows {
		if !inDocker[row.Name] {
			r.notify(kindContainer, row.Name)
		}
	}
	notFinished := false
	running, err := r.store.ListTasks(ctx, models.TaskFilter{
		Phases: []models.TaskPhase{models.TaskPhaseRunning}, Finished: &notFinished,
	})
	if err != nil {
		return false, fmt.Errorf("container resync: %w", err)
	}
	for _, t := range running {
		if !inDocker[t.Status.ContainerName] {
			r.notify(KindTask, t.ID)
		}
	}
	return len(list) == 0 && len(rows) == 0 && len(running) == 0, nil
}

// containerCounts tracks which of this store's containers run, and which of
// those are adopted, as the container controller last saw them.
type containerCounts struct {
	mu      sync.Mutex
	running map[string]bool // name → adopted
}

func (c *containerCounts) observe(name string, running, adopted bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if !running {
		delete(c.running, name)
		return
	}
	if c.running == nil {
		c.running = map[string]bool{}
	}
	c.running[name] = adopted
}

func (c *containerCounts) forget(name string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	delete(c.running, name)
}

func (c *containerCounts) reset() {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.running = nil
}

func (c *containerCounts) counts() (managed, adopted int) {
	c.mu.Lock()
	defer c.mu.Unlock()
	for _, a := range c.running {
		if a {
			adopted++
		} else {
			managed++
		}
	}
	return managed, adopted
}
