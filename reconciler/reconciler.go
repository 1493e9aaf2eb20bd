// Package reconciler is the generic machinery under claude-parallel's controllers:
// a level-triggered reconcile contract (a key in, a result and an error out), a
// controller that runs a Reconciler over a de-duplicating, rate-limited work queue,
// and a Manager that runs controllers only while this process holds the leader lease
// and wakes them when the store changes.
//
// It knows nothing about tasks, diffs or Docker: the store and the domain plug in
// through the small interfaces declared here (LeaseStore, ChangeSource, ListKeys).
package reconciler

import (
	"context"
	"time"
)

// Request names the object to reconcile. It carries only a key, never a snapshot
// of the object or the event that caused it: the reconciler reads the current state
// itself, so a burst of hints for one key collapses into one pass.
type Request struct {
	Key string
}

// Result tells the controller when to look at the key again when nothing failed.
type Result struct {
	// RequeueAfter > 0 reconciles the key again after about this long (plus up to
	// 10% jitter, so that keys requeued together do not stay in lock-step). Use it
	// for polling state that raises no event, such as a deadline.
	RequeueAfter time.Duration
}

// Reconciler moves the object named by req one step towards its spec.
//
// Return a plain error for a failure that may heal (the key is retried with
// per-key exponential backoff), Terminal(err) for one that cannot heal without a
// spec change (not retried), and Result.RequeueAfter to be called again later.
// The Result is ignored when the error is not nil. ctx ends when the per-reconcile
// timeout passes or the controller stops.
type Reconciler interface {
	Reconcile(ctx context.Context, req Request) (Result, error)
}

// ReconcilerFunc adapts a function to the Reconciler interface.
type ReconcilerFunc func(ctx context.Context, req Request) (Result, error)

// Reconcile calls f.
func (f ReconcilerFunc) Reconcile(ctx context.Context, req Request) (Result, error) {
	return f(ctx, req)
}
