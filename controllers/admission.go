package controllers

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"sync"

	"go.uber.org/zap"

	"github.com/claude-parallel/claude-parallel/models"
)

// Admission decides which pending task may start a run: at most
// cfg.MaxParallel runs are active (phase Preparing or Running: a Collecting
// run's container has already exited), and among the pending tasks whose
// dependencies have completed, higher priority goes first, then the oldest.
//
// Only the leader runs the task controller, so a mutex in this process is
// enough to keep concurrent workers from admitting past the limit. A decision
// is only durable once the task's Preparing status is written; until then the
// task is held in reserved, so a second worker deciding in between counts it.

// admission serialises admission decisions.
type admission struct {
	mu       sync.Mutex
	reserved map[string]struct{}
}

// admissionCandidate is a pending task as the admission queue sees it.
type admissionCandidate struct {
	ID       string
	Eligible bool // dependencies completed and no cancel requested
}

// decideAdmission reports whether task self may start now, given the pending
// tasks in admission order (priority, then age) and the number of active runs.
// Tasks that are not eligible do not hold a place in the queue: a task waiting
// for its dependencies must not block the ones behind it.
func decideAdmission(self string, queue []admissionCandidate, active, maxParallel int) bool {
	free := maxParallel - active
	if free <= 0 {
		return false
	}
	ahead := 0
	for _, c := range queue {
		if !c.Eligible {
			continue
		}
		if c.ID == self {
			return ahead < free
		}
		ahead++
	}
	return false
}

// depVerdict is the state of a task's dependencies.
type depVerdict int

const (
	depsReady   depVerdict = iota // every dependency completed
	depsWaiting                   // some dependency has not finished yet
	depsFailed                    // some dependency will never complete
)

// checkDependencies judges a task's dependencies from their current rows
// (absent from deps: not found). It returns the verdict and, when not ready,
// a sentence naming the dependency that decides it.
func checkDependencies(self string, dependsOn []string, deps map[string]*models.Task) (depVerdict, string) {
	var waitingOn []string
	for _, id := range dependsOn {
		if id == self {
			return depsFailed, fmt.Sprintf("dependency %s is the task itself", id)
		}
		d, ok := deps[id]
		if !ok || d == nil {
			return depsFailed, fmt.Sprintf("dependency %s not found", id)
		}
		switch d.Status.State {
		case models.TaskStateCompleted:
		case models.TaskStateFailed, models.TaskStateCancelled, models.TaskStateTimedOut:
			return depsFailed, fmt.Sprintf("dependency %s %s", id, d.Status.State)
		default:
			// pending, running, and needs_input: a dependency that asks a
			// question has not completed its work.
			waitingOn = append(waitingOn, id)
		}
	}
	if len(waitingOn) > 0 {
		return depsWaiting, "waiting for dependencies: " + strings.Join(waitingOn, ", ")
	}
	return depsReady, ""
}

// loadTasks returns the rows of ids that exist, by id.
func (s *taskDeps) loadTasks(ctx context.Context, ids []string) (map[string]*models.Task, error) {
	out, err := s.store.TasksByID(ctx, ids)
	if err != nil {
		return nil, fmt.Errorf("load tasks: %w", err)
	}
	return out, nil
}

// tryAdmit decides, under the admission lock, whether task may start a run
// now. When it may, the task is reserved until release is called, which the
// caller does once the Preparing status is written (or failed to be).
func (s *taskDeps) tryAdmit(ctx context.Context, task *models.Task) (admitted bool, release func(), err error) {
	a := &s.admission
	a.mu.Lock()
	defer a.mu.Unlock()

	notFinished := false
	active, err := s.store.ListTasks(ctx, models.TaskFilter{
		Phases:   []models.TaskPhase{models.TaskPhasePreparing, models.TaskPhaseRunning},
		Finished: &notFinished,
	})
	if err != nil {
		return false, nil, fmt.Errorf("admission: list active tasks: %w", err)
	}
	activeIDs := make(map[string]struct{}, len(active)+len(a.reserved))
	for _, t := range active {
		activeIDs[t.ID] = struct{}{}
	}
	for id := range a.reserved {
		activeIDs[id] = struct{}{}
	}
	if _, ok := activeIDs[task.ID]; ok {
		// Another worker admitted it a moment ago; its pass writes the status.
		return false, nil, nil
	}
	if len(activeIDs) >= s.config().MaxParallel {
		// No free slot, whatever the queue holds: the common answer while
		// many tasks wait, given without reading them all.
		return false, nil, nil
	}

	pending, err := s.store.ListTasks(ctx, models.TaskFilter{
		Phases:   []models.TaskPhase{models.TaskPhasePending},
		Finished: &notFinished,
		Order:    models.TasksAdmissionOrder,
	})
	if err != nil {
		return false, nil, fmt.Errorf("admission: list pending tasks: %w", err)
	}
	var depIDs []string
	for _, t := range pending {
		if t.Status.RunNumber == 0 {
			depIDs = append(depIDs, t.Spec.DependsOn...)
		}
	}
	slices.Sort(depIDs)
	deps, err := s.loadTasks(ctx, slices.Compact(depIDs))
	if err != nil {
		return false, nil, fmt.Errorf("admission: %w", err)
	}
	queue := make([]admissionCandidate, 0, len(pending))
	for _, t := range pending {
		if _, ok := a.reserved[t.ID]; ok {
			continue
		}
		verdict := depsReady
		if t.Status.RunNumber == 0 {
			verdict, _ = checkDependencies(t.ID, t.Spec.DependsOn, deps)
		}
		queue = append(queue, admissionCandidate{
			ID:       t.ID,
			Eligible: verdict == depsReady && t.Spec.DesiredState != models.TaskDesiredCancel,
		})
	}
	if !decideAdmission(task.ID, queue, len(activeIDs), s.config().MaxParallel) {
		return false, nil, nil
	}
	if a.reserved == nil {
		a.reserved = map[string]struct{}{}
	}
	a.reserved[task.ID] = struct{}{}
	var once sync.Once
	return true, func() {
		once.Do(func() {
			a.mu.Lock()
			delete(a.reserved, task.ID)
			a.mu.Unlock()
		})
	}, nil
}

// wakePending enqueues every pending task: a slot was freed or a task
// finished, so one of them may now be admitted or see its dependency done.
func (s *taskDeps) wakePending(ctx context.Context) {
	notFinished := false
	pending, err := s.store.ListTasks(ctx, models.TaskFilter{
		Phases:   []models.TaskPhase{models.TaskPhasePending},
		Finished: &notFinished,
		Order:    models.TasksAdmissionOrder,
	})
	if err != nil {
		s.log.Warn("wake pending tasks failed", zap.Error(err))
		return
	}
	for _, t := range pending {
		s.notify(KindTask, t.ID)
	}
}
