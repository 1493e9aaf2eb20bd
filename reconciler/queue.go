package reconciler

import (
	"time"

	"k8s.io/client-go/util/workqueue"
)

// workQueue is one leadership term's queue. A client-go work queue cannot be
// restarted once shut down, and shutting it down is the only way to wake workers
// blocked in Get, so every Controller.Run builds a fresh one; the per-key backoff
// state starts over with it, which is what a new leader wants anyway.
//
// The queue holds each key at most once, and a key that is being reconciled is
// not handed to a second worker: an Add during the pass marks it dirty and it is
// handed out again after Done. That is the "never one key on two workers"
// guarantee the controllers rely on.
type workQueue struct {
	workqueue.TypedRateLimitingInterface[string]
	limiter workqueue.TypedRateLimiter[string]
}

func newWorkQueue(base, maxDelay time.Duration) *workQueue {
	limiter := workqueue.NewTypedItemExponentialFailureRateLimiter[string](base, maxDelay)
	return &workQueue{
		// No Name: a named queue registers with client-go's global metrics
		// provider; this package exports its own metrics per controller.
		// The delaying part is timerQueue (delayqueue.go): no heartbeat.
		TypedRateLimitingInterface: workqueue.NewTypedRateLimitingQueueWithConfig(limiter,
			workqueue.TypedRateLimitingQueueConfig[string]{DelayingQueue: newTimerQueue()}),
		limiter: limiter,
	}
}

// retryWithBackoff is AddRateLimited that also returns the delay it chose, so the
// failure can be logged with when the next attempt comes.
func (q *workQueue) retryWithBackoff(key string) time.Duration {
	delay := q.limiter.When(key)
	q.AddAfter(key, delay)
	return delay
}
