package reconciler

import (
	"context"
	"sync"
	"time"

	"k8s.io/apimachinery/pkg/util/wait"
)

// IdleBackoffFactor bounds how far a periodic pass that keeps finding
// nothing to do stretches its interval: at most this many times the
// configured one. An idle server then wakes its jobs a few times a minute,
// not dozens, and any change brings the configured interval back at once.
const IdleBackoffFactor = 16

// activity is a broadcast of "something happened" to loops that stretched
// their interval while idle: signal closes the channel that wait handed
// out. It costs a mutex and a nil check when nobody waits.
type activity struct {
	mu sync.Mutex
	ch chan struct{}
}

// wait returns a channel closed by the next signal.
func (a *activity) wait() <-chan struct{} {
	a.mu.Lock()
	defer a.mu.Unlock()
	if a.ch == nil {
		a.ch = make(chan struct{})
	}
	return a.ch
}

func (a *activity) signal() {
	a.mu.Lock()
	defer a.mu.Unlock()
	if a.ch != nil {
		close(a.ch)
		a.ch = nil
	}
}

// idleLoop runs pass at once and then every `every` (plus up to 10% jitter)
// until ctx ends. After a pass that reports idle the next wait doubles, up to
// maxEvery; a pass that found work, or a signal on act while waiting longer
// than every, brings the wait back to every. maxEvery <= every disables the
// stretching.
func idleLoop(ctx context.Context, every, maxEvery time.Duration, act *activity, pass func(context.Context) (idle bool)) {
	cur := every
	timer := time.NewTimer(0)
	defer timer.Stop()
	<-timer.C
	for {
		// Taken before the pass, so a change during it counts.
		woke := act.wait()
		idle := pass(ctx)
		d := every
		if idle {
			d, cur = cur, min(2*cur, max(maxEvery, every))
		} else {
			cur = every
		}
		timer.Reset(wait.Jitter(d, requeueJitter))
		for waiting := true; waiting; {
			select {
			case <-ctx.Done():
				return
			case <-timer.C:
				waiting = false
			case <-woke:
				woke = act.wait()
				cur = every
				if d > every {
					// Stretched: come back within the configured interval.
					if !timer.Stop() {
						<-timer.C
					}
					d = every
					timer.Reset(wait.Jitter(every, requeueJitter))
				}
			}
		}
	}
}
