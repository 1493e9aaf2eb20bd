package reconciler

import (
	"context"
	"errors"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/claude-parallel/claude-parallel/models"
)

// cuttableLease is the real store as the lease, whose renewals can be made
// to fail as if this process lost the database for a while.
type cuttableLease struct {
	*models.Store
	cut atomic.Bool
}

func (c *cuttableLease) TryAcquireLease(ctx context.Context, name, holder string, ttl time.Duration) (bool, error) {
	if c.cut.Load() {
		return false, errors.New("store unreachable (cut by the test)")
	}
	return c.Store.TryAcquireLease(ctx, name, holder, ttl)
}

// A leader whose work is still running when its lease runs out — a reconcile
// that ignores its context, or a goroutine the scheduler runs late — must not
// write once another process has taken the lease over: the old holder's
// writes end strictly before the new holder's term begins, whatever the
// scheduling delay. The store refuses them (the controllers write under the
// lease's fence), even one made under a context that outlives its
// cancellation.
func TestManager_LateWorkCannotWriteAfterTheLeaseIsTakenOver(t *testing.T) {
	ctx := context.Background()
	s, err := models.Open(ctx, filepath.Join(t.TempDir(), "cp.db"), models.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	const ttl = time.Second
	lease := &cuttableLease{Store: s}
	m := newManager(t, ManagerOptions{Lease: lease, LeaseName: models.LeaderLease, Holder: "a",
		LeaseDuration: ttl, RenewInterval: 100 * time.Millisecond})
	started, release, wrote := make(chan struct{}), make(chan struct{}), make(chan error, 1)
	if err := m.AddRunnable("late", func(ctx context.Context) error {
		close(started)
		<-release // stuck past the end of its term, ignoring ctx
		// Like the task controller's note of a failed attempt, a write
		// that must not be lost to the cancellation it follows.
		wrote <- s.RecordEvent(context.WithoutCancel(ctx), models.EventKindLease, "late", "LateWrite", "written after the lease was lost")
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	stop := startManager(t, m)
	defer stop()
	<-started

	// a loses the database; b takes the lease once it has expired.
	lease.cut.Store(true)
	deadline := time.Now().Add(ttl + 30*time.Second)
	for {
		ok, err := s.TryAcquireLease(ctx, models.LeaderLease, "b", time.Hour)
		if err != nil {
			t.Fatal(err)
		}
		if ok {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("b never got the lease a stopped renewing")
		}
		time.Sleep(10 * time.Millisecond)
	}
	b, err := s.GetLease(ctx, models.LeaderLease)
	if err != nil || b.Holder != "b" {
		t.Fatalf("lease after takeover: %+v, %v", b, err)
	}

	close(release)
	err = <-wrote
	if err == nil || !strings.Contains(err.Error(), "lease lost") {
		t.Fatalf("a's late write after b took the lease over: err = %v, want it refused for the lost lease", err)
	}
	events, err := s.ListEvents(ctx, models.EventKindLease, "late", 0)
	if err != nil {
		t.Fatal(err)
	}
	if len(events) != 0 {
		t.Fatalf("a's late write landed at %s, after b took the lease at %s", events[0].Time, b.AcquiredAt)
	}
	eventually(t, 10*time.Second, "a steps down", func() bool { return !m.IsLeader() })
}
