package reconciler

import (
	"context"
	"errors"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"
	"go.uber.org/zap/zaptest/observer"
)

func newManager(t *testing.T, opts ManagerOptions) *Manager {
	t.Helper()
	m, err := NewManager(opts)
	if err != nil {
		t.Fatalf("NewManager: %v", err)
	}
	return m
}

// terms records leadership terms across managers, as seen by a leader-only
// runnable, to check that two never overlap.
type terms struct {
	mu        sync.Mutex
	active    int
	maxActive int
	started   map[string]time.Time
	stopped   map[string]time.Time
}

func newTerms() *terms {
	return &terms{started: map[string]time.Time{}, stopped: map[string]time.Time{}}
}

func (tr *terms) runnable(holder string) func(ctx context.Context) error {
	return func(ctx context.Context) error {
		tr.mu.Lock()
		tr.active++
		tr.maxActive = max(tr.maxActive, tr.active)
		tr.started[holder] = time.Now()
		tr.mu.Unlock()
		<-ctx.Done()
		tr.mu.Lock()
		tr.active--
		tr.stopped[holder] = time.Now()
		tr.mu.Unlock()
		return nil
	}
}

func (tr *terms) get(holder string) (started, stopped time.Time, maxActive int) {
	tr.mu.Lock()
	defer tr.mu.Unlock()
	return tr.started[holder], tr.stopped[holder], tr.maxActive
}

// leaderSetup is one "process": a Manager with a lease, one controller listing
// the key "k", and a runnable recording its terms.
func leaderSetup(t *testing.T, holder string, lease *fakeLease, tr *terms, calls *callLog, ttl, renew time.Duration) *Manager {
	t.Helper()
	c := newController(t, "task", ReconcilerFunc(func(ctx context.Context, req Request) (Result, error) {
		calls.record(holder)
		return Result{}, nil
	}), Options{ListKeys: func(context.Context) ([]string, error) { return []string{"k"}, nil }, ResyncInterval: 20 * time.Millisecond})
	m := newManager(t, ManagerOptions{Lease: lease, Holder: holder, LeaseDuration: ttl, RenewInterval: renew})
	if err := m.Add(c, "task"); err != nil {
		t.Fatal(err)
	}
	if err := m.AddRunnable("terms", tr.runnable(holder)); err != nil {
		t.Fatal(err)
	}
	return m
}

func TestManager_NotifyEnqueuesOnTheControllersOfThatKind(t *testing.T) {
	tasks, diffs := newCallLog(), newCallLog()
	tc := newController(t, "task", ReconcilerFunc(func(ctx context.Context, req Request) (Result, error) {
		tasks.record(req.Key)
		return Result{}, nil
	}), Options{})
	dc := newController(t, "diff", ReconcilerFunc(func(ctx context.Context, req Request) (Result, error) {
		diffs.record(req.Key)
		return Result{}, nil
	}), Options{})
	m := newManager(t, ManagerOptions{})
	if err := m.Add(tc, "task"); err != nil {
		t.Fatal(err)
	}
	if err := m.Add(dc, "diff", "task"); err != nil { // diffs also care about task changes
		t.Fatal(err)
	}
	startManager(t, m)
	eventually(t, 5*time.Second, "controllers running", func() bool { return tc.Stats().Running && dc.Stats().Running })
	if !m.IsLeader() {
		t.Error("a manager without a lease store does not lead")
	}

	m.Notify("task", "task-000000000001")
	m.Notify("diff", "diff-000000000001")
	eventually(t, 5*time.Second, "notified keys reconciled", func() bool {
		return tasks.count("task-000000000001") == 1 && diffs.count("task-000000000001") == 1 &&
			diffs.count("diff-000000000001") == 1
	})
	if tasks.count("diff-000000000001") != 0 {
		t.Error("the task controller got a diff key")
	}
}

func TestManager_ChangeInDataVersionResyncsEveryController(t *testing.T) {
	calls := newCallLog()
	live := &keySet{}
	changes := &fakeChanges{}
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

	// Polls of an unchanged version must not list anything.
	time.Sleep(100 * time.Millisecond)
	if got := c.Stats().Resyncs; got != 1 {
		t.Fatalf("%d resyncs with an unchanged data version, want 1", got)
	}

	// Another process inserts a task: nothing calls Notify here.
	live.add("task-00000000000a")
	changes.bump()
	eventually(t, 5*time.Second, "key written by another process reconciled", func() bool {
		return calls.count("task-00000000000a") == 1
	})
}

func TestManager_OnlyTheLeaseHolderRunsControllers(t *testing.T) {
	lease, tr := newFakeLease(), newTerms()
	callsA, callsB := newCallLog(), newCallLog()
	a := leaderSetup(t, "a", lease, tr, callsA, 3*time.Second, 100*time.Millisecond)
	b := leaderSetup(t, "b", lease, tr, callsB, 3*time.Second, 100*time.Millisecond)
	startManager(t, a)
	startManager(t, b)

	eventually(t, 5*time.Second, "a leader", func() bool { return a.IsLeader() || b.IsLeader() })
	leader, follower, leaderCalls, followerCalls := a, b, callsA, callsB
	if b.IsLeader() {
		leader, follower, leaderCalls, followerCalls = b, a, callsB, callsA
	}
	// Let resyncs (every 20ms) run for a while on the leader.
	eventually(t, 5*time.Second, "leader reconciles", func() bool { return leaderCalls.total() >= 10 })
	if follower.IsLeader() {
		t.Error("both managers claim to lead")
	}
	if n := followerCalls.total(); n != 0 {
		t.Errorf("the follower reconciled %d times", n)
	}
	if s := follower.Status(); s.Leader || s.Controllers[0].Running {
		t.Errorf("follower status = %+v, want not leading and its controller stopped", s)
	}
	if s := leader.Status(); !s.Leader || s.LeaderSince.IsZero() || !s.Controllers[0].Running {
		t.Errorf("leader status = %+v", s)
	}
	if _, _, maxActive := tr.get(""); maxActive != 1 {
		t.Errorf("%d leadership terms overlapped", maxActive)
	}
}

func TestManager_LeaderCutOffFromTheStoreStepsDownAndTheOtherTakesOver(t *testing.T) {
	// Step down 400ms (default 2/3 ttl) after the last renewal, 200ms before expiry.
	const ttl, renew = 600 * time.Millisecond, 100 * time.Millisecond
	lease, tr := newFakeLease(), newTerms()
	a := leaderSetup(t, "a", lease, tr, newCallLog(), ttl, renew)
	b := leaderSetup(t, "b", lease, tr, newCallLog(), ttl, renew)
	startManager(t, a)
	eventually(t, 5*time.Second, "a leads", a.IsLeader)
	startManager(t, b)

	lease.setFailing("a", true) // a can no longer reach the database
	cutOff := time.Now()
	eventually(t, 10*time.Second, "b takes over", func() bool {
		started, _, _ := tr.get("b")
		return b.IsLeader() && !started.IsZero()
	})
	tookOver := time.Since(cutOff)

	aStarted, aStopped, _ := tr.get("a")
	bStarted, _, maxActive := tr.get("b")
	if aStopped.IsZero() || aStopped.Before(aStarted) {
		t.Fatal("a's leader-only work did not stop")
	}
	if a.IsLeader() {
		t.Error("a still claims to lead")
	}
	if !aStopped.Before(bStarted) || maxActive != 1 {
		t.Errorf("terms overlapped: a stopped at %s, b started at %s (max %d at once)",
			aStopped.Format(time.StampMilli), bStarted.Format(time.StampMilli), maxActive)
	}
	// The lease expires at most ttl after the cut-off; b retries every renew.
	// The slack only absorbs scheduling delays on a loaded machine.
	if limit := ttl + renew + time.Second; tookOver > limit {
		t.Errorf("b took over %s after a was cut off, want within %s", tookOver, limit)
	}
	if got := a.Status().Controllers[0].Running; got {
		t.Error("a's controller still runs")
	}
}

func TestManager_StepsDownAtOnceWhenTheLeaseIsTakenOver(t *testing.T) {
	lease, tr := newFakeLease(), newTerms()
	a := leaderSetup(t, "a", lease, tr, newCallLog(), 3*time.Second, 50*time.Millisecond)
	startManager(t, a)
	eventually(t, 5*time.Second, "a leads", a.IsLeader)

	lease.steal("intruder", time.Hour)
	eventually(t, 5*time.Second, "a steps down", func() bool {
		_, stopped, _ := tr.get("a")
		return !a.IsLeader() && !stopped.IsZero()
	})
	if got := lease.currentHolder(); got != "intruder" {
		t.Errorf("lease holder = %q after a stepped down, want the intruder kept (a must not release it)", got)
	}
}

func TestManager_RunReturnsPromptlyOnCancelAndReleasesTheLease(t *testing.T) {
	const ttl = time.Minute // far longer than the test: only a release lets b in
	lease, tr := newFakeLease(), newTerms()
	a := leaderSetup(t, "a", lease, tr, newCallLog(), ttl, 50*time.Millisecond)
	b := leaderSetup(t, "b", lease, tr, newCallLog(), ttl, 50*time.Millisecond)
	stopA := startManager(t, a)
	eventually(t, 5*time.Second, "a leads", a.IsLeader)
	startManager(t, b)

	start := time.Now()
	stopA() // fails the test if Run does not return within 10s
	if took := time.Since(start); took > 5*time.Second {
		t.Errorf("Run took %s to return", took)
	}
	if _, stopped, _ := tr.get("a"); stopped.IsZero() {
		t.Error("a's leader-only work still runs after Run returned")
	}
	if a.Status().Controllers[0].Running {
		t.Error("a's controller still runs after Run returned")
	}
	eventually(t, 10*time.Second, "b takes the released lease long before it would expire", b.IsLeader)
}

func TestManager_PeriodicRunsOnlyWhileLeadingAndSurvivesPanics(t *testing.T) {
	core, logs := observer.New(zapcore.ErrorLevel)
	var runs atomic.Int32
	lease := newFakeLease()
	lease.steal("other", time.Hour)
	m := newManager(t, ManagerOptions{Lease: lease, Holder: "a", LeaseDuration: 600 * time.Millisecond,
		RenewInterval: 50 * time.Millisecond, Logger: zap.New(core)})
	err := m.AddPeriodic("gc", 10*time.Millisecond, func(ctx context.Context) error {
		if runs.Add(1) == 1 {
			panic("gc bug")
		}
		return errors.New("docker unavailable")
	})
	if err != nil {
		t.Fatal(err)
	}
	startManager(t, m)

	time.Sleep(150 * time.Millisecond)
	if n := runs.Load(); n != 0 {
		t.Fatalf("periodic job ran %d times while another process leads", n)
	}
	lease.steal("", 0) // the other leader released it
	eventually(t, 5*time.Second, "periodic job runs again after a panic", func() bool { return runs.Load() >= 3 })
	if n := logs.FilterMessage("recovered from panic").Len(); n != 1 {
		t.Errorf("logged %d panics, want 1", n)
	}
}

func TestManager_RejectsInconsistentLeaseTimings(t *testing.T) {
	_, err := NewManager(ManagerOptions{Lease: newFakeLease(), LeaseDuration: time.Second, RenewInterval: 2 * time.Second})
	if err == nil {
		t.Error("NewManager accepted a renew interval longer than the lease")
	}
}

func TestNewHolderIdentity_IsUniquePerCall(t *testing.T) {
	a, b := NewHolderIdentity(), NewHolderIdentity()
	if a == b || a == "" {
		t.Errorf("holder identities %q and %q", a, b)
	}
}

func TestGoSafe_RecoversAndLogsAPanic(t *testing.T) {
	core, logs := observer.New(zapcore.ErrorLevel)
	var wg sync.WaitGroup
	GoSafe(&wg, zap.New(core), "event stream", func() { panic("lost connection") })
	wg.Wait()
	entries := logs.FilterMessage("recovered from panic").All()
	if len(entries) != 1 || entries[0].ContextMap()["in"] != "event stream" || entries[0].ContextMap()["stack"] == "" {
		t.Errorf("panic log = %+v", entries)
	}
}

// Status names the leader-only jobs as well as the controllers, so that what
// a process runs can be read (and checked against its wiring) in one place.
func TestManager_StatusNamesRunnables(t *testing.T) {
	m := newManager(t, ManagerOptions{})
	noop := func(context.Context) error { return nil }
	if err := m.AddRunnable("watch", noop); err != nil {
		t.Fatal(err)
	}
	if err := m.AddPeriodic("gc", time.Minute, noop); err != nil {
		t.Fatal(err)
	}
	if got := m.Status().Runnables; len(got) != 2 || got[0] != "watch" || got[1] != "gc" {
		t.Fatalf("runnables %q, want [watch gc]", got)
	}
}
