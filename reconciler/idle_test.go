package reconciler

import (
	"context"
	"sync/atomic"
	"testing"
	"time"
)

// stretchedIdle waits until a pass counter has reached n, i.e. an idle loop
// starting at 1ms has stretched its wait to 2^(n-1) ms, and returns the count.
func stretchedIdle(t *testing.T, passes *atomic.Int64, n int64) int64 {
	t.Helper()
	eventually(t, 30*time.Second, "idle passes stretching", func() bool { return passes.Load() >= n })
	return passes.Load()
}

// quietFor asserts that no pass happens for d: the loop's wait is longer
// than d, so only a wake-up could run one (machine load only delays passes).
func quietFor(t *testing.T, passes *atomic.Int64, d time.Duration) int64 {
	t.Helper()
	before := passes.Load()
	time.Sleep(d)
	if got := passes.Load(); got != before {
		t.Fatalf("%d passes while the stretched wait lasted, want none", got-before)
	}
	return before
}

func TestIdleLoop_StretchesWhileIdleAndComesBackOnActivity(t *testing.T) {
	var passes atomic.Int64
	var act activity
	busy := atomic.Bool{}
	stop := runInBackground(t, "idle loop", func(ctx context.Context) error {
		idleLoop(ctx, time.Millisecond, time.Hour, &act, func(context.Context) bool {
			passes.Add(1)
			return !busy.Load()
		})
		return nil
	})
	defer stop()

	// Twelve idle passes: the wait is now 2^11 ms, about 2 s.
	stretchedIdle(t, &passes, 12)
	n := quietFor(t, &passes, 300*time.Millisecond)

	// A change brings the configured interval back: passes follow at once.
	busy.Store(true)
	act.signal()
	eventually(t, 10*time.Second, "passes after the signal", func() bool { return passes.Load() >= n+5 })

	// Idle again: it stretches again.
	busy.Store(false)
	stretchedIdle(t, &passes, passes.Load()+12)
	quietFor(t, &passes, 300*time.Millisecond)
}

func TestController_IdleResyncStretchesAndAnEnqueueBringsItBack(t *testing.T) {
	var lists atomic.Int64
	var live atomic.Bool
	c := newController(t, "idle", ReconcilerFunc(func(ctx context.Context, req Request) (Result, error) {
		return Result{}, nil
	}), Options{ListKeys: func(context.Context) ([]string, error) {
		lists.Add(1)
		if live.Load() {
			return []string{"k"}, nil
		}
		return nil, nil
	}, ResyncInterval: time.Millisecond, IdleResyncMax: time.Hour})
	stop := startController(t, c)
	defer stop()

	stretchedIdle(t, &lists, 12)
	n := quietFor(t, &lists, 300*time.Millisecond)

	// A hint (a write by a front end) ends the stretched wait; with a live
	// key listed, resyncs keep the configured interval.
	live.Store(true)
	c.Enqueue("k")
	eventually(t, 10*time.Second, "resyncs after the hint", func() bool { return lists.Load() >= n+5 })
}

func TestManager_IdlePeriodicComesBackOnNotifyAndResyncAll(t *testing.T) {
	var passes atomic.Int64
	m := newManager(t, ManagerOptions{})
	if err := m.AddIdlePeriodic("gc", time.Millisecond, time.Hour, func(context.Context) (bool, error) {
		passes.Add(1)
		return true, nil
	}); err != nil {
		t.Fatal(err)
	}
	stop := startManager(t, m)
	defer stop()

	stretchedIdle(t, &passes, 12)
	n := quietFor(t, &passes, 300*time.Millisecond)
	m.Notify("task", "t1") // no controller of that kind: the job still hears it
	eventually(t, 10*time.Second, "a pass after Notify", func() bool { return passes.Load() > n })

	stretchedIdle(t, &passes, passes.Load()+12)
	n = quietFor(t, &passes, 300*time.Millisecond)
	if err := m.ResyncAll(context.Background()); err != nil {
		t.Fatal(err)
	}
	eventually(t, 10*time.Second, "a pass after ResyncAll", func() bool { return passes.Load() > n })
}

// A long lease, renewed rarely, must not slow a takeover: a candidate
// tries again every CampaignInterval, not every RenewInterval.
func TestManager_CandidateRetriesEveryCampaignIntervalNotEveryRenewal(t *testing.T) {
	lease := newFakeLease()
	lease.steal("other", time.Hour)
	tr, calls := &terms{}, newCallLog()
	m := leaderSetup(t, "b", lease, tr, calls, time.Hour, 20*time.Minute)
	stop := startManager(t, m)
	defer stop()
	eventually(t, 10*time.Second, "first try refused", func() bool {
		granted, err := lease.TryAcquireLease(context.Background(), "", "probe", time.Hour)
		return err == nil && !granted && !m.IsLeader() && lease.tries("b") > 0
	})
	if err := lease.ReleaseLease(context.Background(), "", "other"); err != nil {
		t.Fatal(err)
	}
	eventually(t, 20*time.Second, "b leads once the lease is free", m.IsLeader)
}
