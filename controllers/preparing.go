package controllers

import (
	"context"
	"sync"
	"time"

	"github.com/claude-parallel/claude-parallel/controllers/workspace"
)

// Starting a task's first run has two slow parts on the way from the intent to
// a running container: preparing the workspace (a snapshot of the work folder,
// a chain of git processes) and creating the container in Docker. Neither may
// be skipped or reordered carelessly: the snapshot is taken while the task is
// Pending, so a spec that cannot run (not a git work tree, a bad base) fails
// the task before it holds a slot, and the container is created only after the
// Preparing status, which reserves the slot, is on disk.
//
// So the Pending pass does the part of the preparation that checks the spec
// (workspace.Begin) and, when the task is admitted at once, leaves the rest
// running in the background; the Preparing pass then creates the container
// while that rest finishes, and starts it only once the workspace is ready.
// Nothing of this is state a restart needs: a build lost with its process is
// done again by the next Preparing pass (Prepare starts over on a workspace
// without its marker), and a container created meanwhile is adopted by name.

// workspaceBeginner is implemented by Workspaces that can prepare a workspace
// in the background (hostWorkspaces); others are prepared in one go.
type workspaceBeginner interface {
	Begin(ctx context.Context, spec workspace.PrepareSpec) (building, error)
}

// building is a workspace being prepared in the background
// (building).
type building interface {
	// Layout is the workspace's directories, which exist already.
	Layout() *workspace.Workspace
	// Wait returns the ready workspace, or why it could not be prepared, or
	// ctx's error when ctx ends first (the build goes on).
	Wait(ctx context.Context) (*workspace.Workspace, error)
}

func (h hostWorkspaces) Begin(ctx context.Context, spec workspace.PrepareSpec) (building, error) {
	b, err := workspace.Begin(ctx, h.spec(spec))
	if err != nil {
		return nil, err // not a typed nil inside the interface
	}
	return b, nil
}

// workspaceBuilds holds the workspace preparations still running in the
// background, by task id. They run on the leadership term's context, not on
// the pass that began them, and a term ends only after they have stopped, so
// a process that lost the lease writes no workspace afterwards. Each is
// bounded like the pass that would otherwise have prepared the workspace: git
// blocked for good (a FIFO where it reads an ignore file) fails the build at
// that deadline, and the task retries, instead of holding its slot forever.
type workspaceBuilds struct {
	mu     sync.Mutex
	ctx    context.Context // nil: context.Background (tests that drive passes by hand)
	cancel context.CancelFunc
	wg     sync.WaitGroup
	m      map[string]building
}

// start gives the builds of a new term their context.
func (w *workspaceBuilds) start(ctx context.Context) {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.ctx, w.cancel = context.WithCancel(ctx)
}

// stop cancels the term's builds and waits until they have ended.
func (w *workspaceBuilds) stop() {
	w.mu.Lock()
	if w.cancel != nil {
		w.cancel()
	}
	w.mu.Unlock()
	w.wg.Wait()
}

// get returns the build of taskID still in flight, or nil.
func (w *workspaceBuilds) get(taskID string) building {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.m[taskID]
}

// inFlight counts the builds still running.
func (w *workspaceBuilds) inFlight() int {
	w.mu.Lock()
	defer w.mu.Unlock()
	return len(w.m)
}

// begin returns the build of taskID in flight, or begins one with begin on the
// term's context, ending after timeout, and keeps it until it ends. Passes of
// one task never run at once, so two begins for one task do not race.
func (w *workspaceBuilds) begin(taskID string, timeout time.Duration, begin func(context.Context) (building, error)) (building, error) {
	w.mu.Lock()
	if b := w.m[taskID]; b != nil {
		w.mu.Unlock()
		return b, nil
	}
	ctx := w.ctx
	w.mu.Unlock()
	if ctx == nil {
		ctx = context.Background()
	}
	ctx, cancel := context.WithTimeout(ctx, timeout)
	b, err := begin(ctx)
	if err != nil {
		cancel()
		return nil, err
	}
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.m == nil {
		w.m = map[string]building{}
	}
	w.m[taskID] = b
	w.wg.Add(1)
	go func() {
		defer w.wg.Done()
		defer cancel()
		_, _ = b.Wait(context.Background()) // ends with the build, at the latest at its deadline
		w.mu.Lock()
		defer w.mu.Unlock()
		if w.m[taskID] == b {
			delete(w.m, taskID)
		}
	}()
	return b, nil
}
