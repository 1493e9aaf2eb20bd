package models

import (
	"context"
	"fmt"
	"slices"
	"sync"
)

// writeQueue serialises this process's write transactions. SQLite takes one
// writer at a time anyway; queueing here (context-aware) is fairer and
// cheaper than every goroutine polling the lock through the busy handler's
// sleeps. Writes made for a caller waiting on a reply (a front end's intent,
// a lease renewal: anything not made under a controller's lease fence) go
// before the controllers' queued status writes: a task_worker insert then
// waits for at most the one write in flight, not for every status write the
// controllers queued meanwhile (ten starting tasks queue several each).
// Within each class the order is first come, first served. The zero value is
// an empty queue.
type writeQueue struct {
	mu      sync.Mutex
	busy    bool
	waiting [2][]chan struct{} // by class: prompt, then background
}

const (
	writePrompt     = 0
	writeBackground = 1
)

// writeClass is the queue a write of ctx waits in: background for a write
// under a controller's lease fence (see FenceContext), prompt otherwise.
func writeClass(ctx context.Context) int {
	if _, fenced := ctx.Value(leaseFenceKey{}).(leaseFence); fenced {
		return writeBackground
	}
	return writePrompt
}

// acquire waits for the slot, or for ctx to end.
func (q *writeQueue) acquire(ctx context.Context, class int) error {
	q.mu.Lock()
	if !q.busy {
		q.busy = true
		q.mu.Unlock()
		return nil
	}
	turn := make(chan struct{})
	q.waiting[class] = append(q.waiting[class], turn)
	q.mu.Unlock()
	select {
	case <-turn:
		return nil
	case <-ctx.Done():
		q.mu.Lock()
		if i := slices.Index(q.waiting[class], turn); i >= 0 {
			q.waiting[class] = slices.Delete(q.waiting[class], i, i+1)
			q.mu.Unlock()
		} else {
			// Handed the slot as ctx ended: pass it on.
			q.mu.Unlock()
			q.release()
		}
		return fmt.Errorf("wait for write slot: %w", context.Cause(ctx))
	}
}

// release hands the slot to the first prompt waiter, else the first
// background one, else frees it.
func (q *writeQueue) release() {
	q.mu.Lock()
	defer q.mu.Unlock()
	for class := range q.waiting {
		if w := q.waiting[class]; len(w) > 0 {
			turn := w[0]
			q.waiting[class] = w[1:]
			close(turn) // busy stays set: the slot passes straight on
			return
		}
	}
	q.busy = false
}
