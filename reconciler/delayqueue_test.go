package reconciler

import (
	"testing"
	"time"
)

// The delaying queue hands a key out once its delay has passed, keeps the
// earlier of two times for one key, and holds no timer while nothing waits
// (client-go's woke every 10 seconds regardless).
func TestTimerQueue_AddAfterWithoutHeartbeat(t *testing.T) {
	q := newTimerQueue()
	defer q.ShutDown()

	q.AddAfter("late", time.Hour)
	q.AddAfter("soon", 20*time.Millisecond)
	q.AddAfter("late", 40*time.Millisecond) // earlier than the hour: kept
	q.AddAfter("late", 2*time.Hour)         // later: ignored
	start := time.Now()
	for _, want := range []string{"soon", "late"} {
		got, shutdown := q.Get()
		if shutdown || got != want {
			t.Fatalf("Get = %q, %v; want %q", got, shutdown, want)
		}
		q.Done(got)
	}
	if waited := time.Since(start); waited < 40*time.Millisecond {
		t.Fatalf("keys handed out after %s, before their delay", waited)
	}
	q.mu.Lock()
	waiting, due := len(q.waiting.items), q.due
	q.mu.Unlock()
	if waiting != 0 || !due.IsZero() {
		t.Fatalf("after every key was handed out: %d waiting, timer due %v; want none and no timer", waiting, due)
	}
	if q.Len() != 0 {
		t.Fatalf("queue holds %d keys, want 0", q.Len())
	}

	// A zero delay adds at once; a key still waiting at ShutDown, or one
	// asked for after it, is never added.
	q.AddAfter("now", 0)
	if got, _ := q.Get(); got != "now" {
		t.Fatalf("Get = %q, want now", got)
	}
	q.Done("now")
	q.AddAfter("waiting-at-shutdown", time.Millisecond)
	q.ShutDown()
	q.AddAfter("after-shutdown", time.Millisecond)
	time.Sleep(10 * time.Millisecond)
	if _, shutdown := q.Get(); !shutdown {
		t.Fatal("Get after ShutDown did not report shutdown")
	}
}
