package reconciler

import (
	"context"
	"errors"
	"sync"
	"testing"
	"time"
)

// eventually polls cond until it holds or the (generous) timeout passes. Tests
// wait for states, never for fixed sleeps, so a loaded 2-core machine only makes
// them slower, not flaky.
func eventually(t *testing.T, timeout time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %s waiting for: %s", timeout, what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// runInBackground runs run until the test ends; what names it in failures.
// The returned stop cancels it and waits for run to return.
func runInBackground(t *testing.T, what string, run func(context.Context) error) (stop func()) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- run(ctx) }()
	var once sync.Once
	stop = func() {
		once.Do(func() {
			cancel()
			select {
			case err := <-done:
				if err != nil {
					t.Errorf("%s Run: %v", what, err)
				}
			case <-time.After(10 * time.Second):
				t.Errorf("%s did not stop within 10s of cancel", what)
			}
		})
	}
	t.Cleanup(stop)
	return stop
}

// startController runs c until the test ends and waits until it accepts keys.
// The returned stop cancels it and waits for Run to return.
func startController(t *testing.T, c *Controller) (stop func()) {
	t.Helper()
	stop = runInBackground(t, "controller "+c.Name(), c.Run)
	eventually(t, 5*time.Second, "controller running", func() bool { return c.Stats().Running })
	return stop
}

// startManager runs m until the test ends. stop cancels it and waits for Run.
func startManager(t *testing.T, m *Manager) (stop func()) {
	t.Helper()
	return runInBackground(t, "manager "+m.Holder(), m.Run)
}

func newController(t *testing.T, name string, r Reconciler, opts Options) *Controller {
	t.Helper()
	c, err := New(name, r, opts)
	if err != nil {
		t.Fatalf("New(%s): %v", name, err)
	}
	return c
}

// callLog records reconcile passes per key, safe for concurrent workers.
type callLog struct {
	mu    sync.Mutex
	calls map[string][]time.Time
}

func newCallLog() *callLog { return &callLog{calls: map[string][]time.Time{}} }

func (l *callLog) record(key string) int {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.calls[key] = append(l.calls[key], time.Now())
	return len(l.calls[key])
}

func (l *callLog) count(key string) int {
	l.mu.Lock()
	defer l.mu.Unlock()
	return len(l.calls[key])
}

func (l *callLog) times(key string) []time.Time {
	l.mu.Lock()
	defer l.mu.Unlock()
	return append([]time.Time(nil), l.calls[key]...)
}

func (l *callLog) total() int {
	l.mu.Lock()
	defer l.mu.Unlock()
	n := 0
	for _, ts := range l.calls {
		n += len(ts)
	}
	return n
}

// fakeLease is an in-memory LeaseStore with the semantics the SQLite one must
// have (acquire when free, expired or already ours; release only our own), plus
// injectable failures per holder to play a process cut off from the database.
type fakeLease struct {
	mu      sync.Mutex
	holder  string
	expires time.Time
	failing map[string]bool
	count   map[string]int // tries by holder
}

var errStoreDown = errors.New("database is locked")

func newFakeLease() *fakeLease {
	return &fakeLease{failing: map[string]bool{}, count: map[string]int{}}
}

// tries is how many times holder asked for the lease.
func (f *fakeLease) tries(holder string) int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.count[holder]
}

func (f *fakeLease) TryAcquireLease(_ context.Context, _, holder string, ttl time.Duration) (bool, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.count[holder]++
	if f.failing[holder] {
		return false, errStoreDown
	}
	now := time.Now()
	if f.holder == "" || f.holder == holder || now.After(f.expires) {
		f.holder, f.expires = holder, now.Add(ttl)
		return true, nil
	}
	return false, nil
}

func (f *fakeLease) ReleaseLease(_ context.Context, _, holder string) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.failing[holder] {
		return errStoreDown
	}
	if f.holder == holder {
		f.holder, f.expires = "", time.Time{}
	}
	return nil
}

func (f *fakeLease) setFailing(holder string, failing bool) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.failing[holder] = failing
}

// steal hands the lease to someone else, as if this process had been too slow.
func (f *fakeLease) steal(holder string, ttl time.Duration) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.holder, f.expires = holder, time.Now().Add(ttl)
}

func (f *fakeLease) currentHolder() string {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.holder
}

// fakeChanges is a ChangeSource whose version the test moves, standing in for
// another process committing to the shared database.
type fakeChanges struct {
	mu      sync.Mutex
	version int64
	err     error
}

func (f *fakeChanges) DataVersion(context.Context) (int64, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.version, f.err
}

func (f *fakeChanges) bump() {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.version++
}

// keySet is a stand-in for the live objects in the store.
type keySet struct {
	mu   sync.Mutex
	keys []string
}

func (s *keySet) add(k string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.keys = append(s.keys, k)
}

func (s *keySet) list(context.Context) ([]string, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]string(nil), s.keys...), nil
}

// hintedChanges is a fakeChanges that also announces writes, as
// models.Store does with inotify.
type hintedChanges struct {
	fakeChanges
	hints chan struct{}
}

func (h *hintedChanges) CommitHints(ctx context.Context) (<-chan struct{}, error) {
	out := make(chan struct{}, 1)
	go func() {
		defer close(out)
		for {
			select {
			case <-ctx.Done():
				return
			case <-h.hints:
				select {
				case out <- struct{}{}:
				default:
				}
			}
		}
	}()
	return out, nil
}
