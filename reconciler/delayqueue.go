package reconciler

import (
	"container/heap"
	"sync"
	"time"

	"k8s.io/client-go/util/workqueue"
)

// timerQueue is a workqueue.TypedDelayingInterface whose AddAfter sleeps on
// one timer set to the earliest waiting key, and on nothing while none
// waits. client-go's own delaying queue also wakes every 10 seconds
// (a heartbeat in its waiting loop) whether or not anything waits: three
// controllers made 18 wake-ups a minute of an idle server that way. The keys
// themselves live in client-go's plain queue (dedupe, one worker per key,
// dirty while processing), which starts no goroutine.
type timerQueue struct {
	*workqueue.Typed[string]

	mu      sync.Mutex
	waiting waitHeap
	timer   *time.Timer // nil until the first AddAfter
	due     time.Time   // when timer fires; zero while it is stopped
	stopped bool
}

func newTimerQueue() *timerQueue {
	return &timerQueue{Typed: workqueue.NewTyped[string]()}
}

// AddAfter adds key once d has passed (at once when d <= 0). A key waiting
// already keeps the earlier of its two times.
func (q *timerQueue) AddAfter(key string, d time.Duration) {
	if q.ShuttingDown() {
		return
	}
	if d <= 0 {
		q.Add(key)
		return
	}
	at := time.Now().Add(d)
	q.mu.Lock()
	defer q.mu.Unlock()
	if q.stopped {
		return
	}
	if i, ok := q.waiting.index[key]; ok {
		if at.Before(q.waiting.items[i].at) {
			q.waiting.items[i].at = at
			heap.Fix(&q.waiting, i)
		}
	} else {
		heap.Push(&q.waiting, waitEntry{key: key, at: at})
	}
	q.armLocked()
}

// armLocked sets the timer to the earliest waiting key, if it is not set
// for that time already.
func (q *timerQueue) armLocked() {
	if len(q.waiting.items) == 0 {
		if q.timer != nil {
			q.timer.Stop()
		}
		q.due = time.Time{}
		return
	}
	next := q.waiting.items[0].at
	if !q.due.IsZero() && q.due.Equal(next) {
		return
	}
	q.due = next
	d := time.Until(next)
	if q.timer == nil {
		q.timer = time.AfterFunc(d, q.fire)
		return
	}
	q.timer.Reset(d) // Go 1.23+ timers: Reset on a fired or stopped AfterFunc timer is fine
}

// fire moves every key whose time has come into the queue.
func (q *timerQueue) fire() {
	q.mu.Lock()
	if q.stopped {
		q.mu.Unlock()
		return
	}
	now := time.Now()
	var ready []string
	for len(q.waiting.items) > 0 && !q.waiting.items[0].at.After(now) {
		ready = append(ready, heap.Pop(&q.waiting).(waitEntry).key)
	}
	q.due = time.Time{}
	q.armLocked()
	q.mu.Unlock()
	for _, k := range ready {
		q.Add(k)
	}
}

// ShutDown stops the timer and the queue; keys still waiting are dropped,
// as client-go's queue drops them.
func (q *timerQueue) ShutDown() {
	q.mu.Lock()
	q.stopped = true
	if q.timer != nil {
		q.timer.Stop()
	}
	q.mu.Unlock()
	q.Typed.ShutDown()
}

// ShutDownWithDrain is ShutDown after the keys being processed are done.
func (q *timerQueue) ShutDownWithDrain() {
	q.mu.Lock()
	q.stopped = true
	if q.timer != nil {
		q.timer.Stop()
	}
	q.mu.Unlock()
	q.Typed.ShutDownWithDrain()
}

// waitEntry is a key and when it becomes ready.
type waitEntry struct {
	key string
	at  time.Time
}

// waitHeap orders waiting keys by time, and finds a key's place by name.
type waitHeap struct {
	items []waitEntry
	index map[string]int
}

func (h *waitHeap) Len() int           { return len(h.items) }
func (h *waitHeap) Less(i, j int) bool { return h.items[i].at.Before(h.items[j].at) }
func (h *waitHeap) Swap(i, j int) {
	h.items[i], h.items[j] = h.items[j], h.items[i]
	h.index[h.items[i].key] = i
	h.index[h.items[j].key] = j
}

func (h *waitHeap) Push(x any) {
	if h.index == nil {
		h.index = map[string]int{}
	}
	e := x.(waitEntry)
	h.index[e.key] = len(h.items)
	h.items = append(h.items, e)
}

func (h *waitHeap) Pop() any {
	last := len(h.items) - 1
	e := h.items[last]
	h.items = h.items[:last]
	delete(h.index, e.key)
	return e
}
