package reconciler

import (
	"context"
	"testing"
	"time"
)

// With commit hints the watcher need not poll: with WakePoll an hour, a
// hinted write is still reconciled, also when the commit becomes visible only
// after the hint (SQLite publishes it a moment after writing its log).
func TestManager_CommitHintWakesWithoutPolling(t *testing.T) {
	calls := newCallLog()
	live := &keySet{}
	changes := &hintedChanges{hints: make(chan struct{}, 1)}
	c := newController(t, "task", ReconcilerFunc(func(ctx context.Context, req Request) (Result, error) {
		calls.record(req.Key)
		return Result{}, nil
	}), Options{ListKeys: live.list, ResyncInterval: time.Hour})
	m := newManager(t, ManagerOptions{Changes: changes, WakePoll: time.Hour})
	if err := m.Add(c); err != nil {
		t.Fatal(err)
	}
	startManager(t, m)
	eventually(t, 5*time.Second, "initial resync", func() bool { return c.Stats().Resyncs == 1 })

	live.add("task-00000000000a")
	changes.bump()
	changes.hints <- struct{}{}
	eventually(t, 5*time.Second, "hinted write reconciled", func() bool {
		return calls.count("task-00000000000a") == 1
	})

	// The hint arrives first; the version moves 20ms later.
	live.add("task-00000000000b")
	changes.hints <- struct{}{}
	time.Sleep(20 * time.Millisecond)
	changes.bump()
	eventually(t, 5*time.Second, "write visible after its hint reconciled", func() bool {
		return calls.count("task-00000000000b") == 1
	})

	// A hint of a write that changed nothing (this process's own) resyncs nothing.
	before := c.Stats().Resyncs
	changes.hints <- struct{}{}
	time.Sleep(300 * time.Millisecond)
	if got := c.Stats().Resyncs; got != before {
		t.Fatalf("a hint without a version move resynced (%d -> %d)", before, got)
	}
}

// PollOnly ignores the hints and polls every WakePoll.
func TestManager_PollOnlyPolls(t *testing.T) {
	calls := newCallLog()
	live := &keySet{}
	changes := &hintedChanges{hints: make(chan struct{}, 1)}
	c := newController(t, "task", ReconcilerFunc(func(ctx context.Context, req Request) (Result, error) {
		calls.record(req.Key)
		return Result{}, nil
	}), Options{ListKeys: live.list, ResyncInterval: time.Hour})
	m := newManager(t, ManagerOptions{Changes: changes, WakePoll: 10 * time.Millisecond, PollOnly: true})
	if err := m.Add(c); err != nil {
		t.Fatal(err)
	}
	startManager(t, m)
	eventually(t, 5*time.Second, "initial resync", func() bool { return c.Stats().Resyncs == 1 })
	live.add("task-00000000000c")
	changes.bump() // no hint
	eventually(t, 5*time.Second, "polled write reconciled", func() bool {
		return calls.count("task-00000000000c") == 1
	})
}
