package controllers

import (
	"context"
	"sync"
	"time"

	"github.com/claude-parallel/claude-parallel/controllers/engine"
)

// A first run's container can be created as soon as the run is admitted: its
// spec needs only the workspace's directories, which exist once the snapshot
// has begun. So the Pending pass that admits the task begins the create in
// the background, beside the write of the Preparing status and the rest of
// the snapshot, and the Preparing pass takes its outcome (createWhilePreparing)
// instead of creating the container itself: the create is off the path from
// the intent to the start when the snapshot is quick (a checkout).
//
// Nothing of this is state a restart needs. The container may exist before
// the Preparing status is on disk; a process that dies then, or a status
// write that conflicts, leaves a created container under the run's
// deterministic name, which the next Preparing pass meets as a name conflict
// and adopts, as after any crash between create and start.

// createsAhead holds the creates begun ahead of their Preparing pass, by
// container name, for one leadership term.
type createsAhead struct {
	mu     sync.Mutex
	ctx    context.Context // nil: context.Background (tests that drive passes by hand)
	cancel context.CancelFunc
	wg     sync.WaitGroup
	m      map[string]*aheadCreate
}

// aheadCreate is one create in flight or done; res is valid once done closes.
type aheadCreate struct {
	done  chan struct{}
	res   createResult
	begun time.Time
}

// aheadKeep is how long a create's outcome waits to be taken: a run whose
// Preparing pass never comes (its task was cancelled meanwhile) leaves only
// its created container, which the container controller removes in time.
const aheadKeep = time.Minute

// start gives the creates of a new term their context.
func (c *createsAhead) start(ctx context.Context) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.ctx, c.cancel = context.WithCancel(ctx)
	c.m = nil
}

// stop cancels the term's creates and waits until they have ended.
func (c *createsAhead) stop() {
	c.mu.Lock()
	if c.cancel != nil {
		c.cancel()
	}
	c.mu.Unlock()
	c.wg.Wait()
	c.mu.Lock()
	c.m = nil
	c.mu.Unlock()
}

// begin creates the container of spec in the background with create, unless
// a create of that name is in flight or waiting to be taken already.
func (c *createsAhead) begin(spec engine.RunSpec, timeout time.Duration, create func(context.Context, engine.RunSpec) (string, error)) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.m[spec.Name] != nil {
		return
	}
	ctx := c.ctx
	if ctx == nil {
		ctx = context.Background()
	}
	if c.m == nil {
		c.m = map[string]*aheadCreate{}
	}
	now := time.Now()
	for name, a := range c.m {
		if a.finished() && now.Sub(a.begun) > aheadKeep {
			delete(c.m, name) // never taken
		}
	}
	a := &aheadCreate{done: make(chan struct{}), begun: now}
	c.m[spec.Name] = a
	c.wg.Add(1)
	go func() {
		defer c.wg.Done()
		defer close(a.done)
		cctx, cancel := context.WithTimeout(ctx, timeout)
		defer cancel()
		a.res.id, a.res.err = create(cctx, spec)
	}()
}

// take removes and returns the create of name begun ahead, or nil.
func (c *createsAhead) take(name string) *aheadCreate {
	c.mu.Lock()
	defer c.mu.Unlock()
	a := c.m[name]
	delete(c.m, name)
	return a
}

// wait returns the create's outcome, or ctx's error when ctx ends first.
func (a *aheadCreate) wait(ctx context.Context) createResult {
	select {
	case <-a.done:
		return a.res
	case <-ctx.Done():
		return createResult{err: ctx.Err()}
	}
}

func (a *aheadCreate) finished() bool {
	select {
	case <-a.done:
		return true
	default:
		return false
	}
}
