package reconciler

import (
	"context"
	"errors"
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

// Until a hint has arrived, the watch might be on a file system whose writes
// inotify does not report, so the store is polled every 25 × WakePoll; once
// one has, the poll beside the hints is only a fallback and slows down to
// provenHintPoll. Without hints the other process's write is still found.
func TestManager_SlowFallbackPollOnlyOnceHintsProved(t *testing.T) {
	calls := newCallLog()
	live := &keySet{}
	changes := &hintedChanges{hints: make(chan struct{}, 1)}
	c := newController(t, "task", ReconcilerFunc(func(ctx context.Context, req Request) (Result, error) {
		calls.record(req.Key)
		return Result{}, nil
	}), Options{ListKeys: live.list, ResyncInterval: time.Hour})
	m := newManager(t, ManagerOptions{Changes: changes, WakePoll: 4 * time.Millisecond}) // unproven: a look every 100ms
	if err := m.Add(c); err != nil {
		t.Fatal(err)
	}
	startManager(t, m)
	eventually(t, 5*time.Second, "initial resync", func() bool { return c.Stats().Resyncs == 1 })

	// No hint yet: the poll finds a write nobody hinted.
	live.add("task-00000000000d")
	changes.bump()
	eventually(t, 10*time.Second, "unhinted write found by the poll before any hint", func() bool {
		return calls.count("task-00000000000d") == 1
	})
	eventually(t, 10*time.Second, "several polls before any hint", func() bool { return m.WakeUps()[WakeChangePoll] >= 3 })

	// One hint proves the watch; after its looks, no poll for a while.
	changes.hints <- struct{}{}
	eventually(t, 10*time.Second, "the looks after the hint", func() bool {
		return m.WakeUps()[WakeHintLook] >= uint64(len(hintLooks)-1)
	})
	polls := m.WakeUps()[WakeChangePoll]
	time.Sleep(time.Second) // ten unproven poll intervals
	if got := m.WakeUps()[WakeChangePoll]; got != polls {
		t.Fatalf("%d polls in a second after the hints proved to work, want none (the fallback is every %s)", got-polls, provenHintPoll)
	}
	// Hinted writes are still found at once.
	live.add("task-00000000000e")
	changes.bump()
	changes.hints <- struct{}{}
	eventually(t, 5*time.Second, "hinted write after proof reconciled", func() bool {
		return calls.count("task-00000000000e") == 1
	})
}

// failingHints offers commit hints but cannot set them up (no inotify).
type failingHints struct{ fakeChanges }

func (*failingHints) CommitHints(context.Context) (<-chan struct{}, error) {
	return nil, errors.New("inotify unavailable")
}

// Where the hints cannot be set up, or the store offers none, the watcher
// polls every WakePoll and another process's write is still picked up.
func TestManager_PollsWhereHintsUnavailable(t *testing.T) {
	for name, changes := range map[string]interface {
		ChangeSource
		bump()
	}{"watch fails": &failingHints{}, "no hints": &fakeChanges{}} {
		t.Run(name, func(t *testing.T) {
			calls := newCallLog()
			live := &keySet{}
			c := newController(t, "task", ReconcilerFunc(func(ctx context.Context, req Request) (Result, error) {
				calls.record(req.Key)
				return Result{}, nil
			}), Options{ListKeys: live.list, ResyncInterval: time.Hour})
			m := newManager(t, ManagerOptions{Changes: changes, WakePoll: 10 * time.Millisecond})
			if err := m.Add(c); err != nil {
				t.Fatal(err)
			}
			startManager(t, m)
			eventually(t, 5*time.Second, "initial resync", func() bool { return c.Stats().Resyncs == 1 })
			live.add("task-00000000000f")
			changes.bump()
			eventually(t, 5*time.Second, "polled write reconciled", func() bool {
				return calls.count("task-00000000000f") == 1
			})
			if m.WakeUps()[WakeCommitHint] != 0 || m.WakeUps()[WakeChangePoll] == 0 {
				t.Fatalf("wake-ups %v: want polls and no hints", m.WakeUps())
			}
		})
	}
}
