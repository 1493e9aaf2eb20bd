package models

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/claude-parallel/claude-parallel/test/testutil"
)

func newPostgresStore(t *testing.T, opts Options) (*Store, string) {
	t.Helper()
	dsn := testutil.PostgresDSN(t)
	s, err := OpenPostgres(context.Background(), dsn, opts)
	if err != nil {
		t.Fatalf("open postgres store: %v", err)
	}
	t.Cleanup(func() { _ = s.Close() })
	return s, dsn
}

// The DSN's password never appears in what the store reports or in its
// errors.
func TestPostgres_PathHidesThePassword(t *testing.T) {
	_, dsn := newPostgresStore(t, Options{})
	withPassword := dsn + " password=hunter2-secret"
	s, err := OpenPostgres(context.Background(), withPassword, Options{})
	if err != nil {
		// trust authentication ignores the password; either way it must not leak
		if strings.Contains(err.Error(), "hunter2") {
			t.Fatalf("error quotes the password: %v", err)
		}
		t.Fatalf("open: %v", err)
	}
	defer s.Close()
	if strings.Contains(s.Path(), "hunter2") || !strings.HasPrefix(s.Path(), "postgres://") {
		t.Fatalf("Path() = %q", s.Path())
	}
	if _, err := OpenPostgres(context.Background(), "host=/nonexistent-dir port=1 password=hunter2-secret connect_timeout=2", Options{}); err == nil || strings.Contains(err.Error(), "hunter2") {
		t.Fatalf("open on a missing server: %v", err)
	}
	// A store's Path, or a DSN given as db_path, is no SQLite file name.
	if _, err := Open(context.Background(), s.Path(), Options{}); !errors.Is(err, ErrInvalid) {
		t.Fatalf("Open(%q): %v, want ErrInvalid", s.Path(), err)
	}
	if _, err := Open(context.Background(), "postgres://cp:hunter2-secret@db/cp", Options{}); !errors.Is(err, ErrInvalid) || strings.Contains(err.Error(), "hunter2") {
		t.Fatalf("Open of a DSN: %v", err)
	}
	if _, err := OpenDriver(context.Background(), "mysql", "x", Options{}); !errors.Is(err, ErrInvalid) {
		t.Fatalf("unknown driver: %v", err)
	}
}

// SQLite's file tools have a clear answer on PostgreSQL, and QuickCheck reads
// every table.
func TestPostgres_FileToolsAndQuickCheck(t *testing.T) {
	ctx := context.Background()
	s, _ := newPostgresStore(t, Options{})
	mustCreateTask(t, s, newTask("p"))
	if _, err := s.Backup(ctx, t.TempDir()+"/b.db"); !errors.Is(err, ErrInvalid) || !strings.Contains(err.Error(), "pg_dump") {
		t.Fatalf("backup on postgres: %v", err)
	}
	if err := s.QuickCheck(ctx); err != nil {
		t.Fatalf("quick check: %v", err)
	}
	if s.Driver() != DriverPostgres {
		t.Fatalf("driver %q", s.Driver())
	}
}

// Leases are judged by the database's clock: a holder whose machine clock
// is an hour fast (a skewed replica) neither keeps a lease past its time
// nor steals one early, because its own clock is never asked.
func TestPostgres_LeaseJudgedByTheDatabaseClock(t *testing.T) {
	ctx := context.Background()
	a, dsn := newPostgresStore(t, Options{})
	b, err := OpenPostgres(ctx, dsn, Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	if ok, err := a.TryAcquireLease(ctx, LeaderLease, "a-holder", time.Minute); err != nil || !ok {
		t.Fatalf("a acquires: %v %v", ok, err)
	}
	if ok, err := b.TryAcquireLease(ctx, LeaderLease, "b-holder", time.Minute); err != nil || ok {
		t.Fatalf("b took a held lease: %v %v", ok, err)
	}
	l, err := a.GetLease(ctx, LeaderLease)
	if err != nil {
		t.Fatal(err)
	}
	var dbNow time.Time
	if err := a.DB().Raw(`SELECT now()`).Scan(&dbNow).Error; err != nil {
		t.Fatal(err)
	}
	if d := l.RenewedAt.Sub(dbNow); d > time.Minute || d < -time.Minute {
		t.Fatalf("renewed_at %v is not the database's clock %v", l.RenewedAt, dbNow)
	}
	// Make the lease short, then wait it out by the database's clock: b
	// takes it, and a's fenced writes are refused.
	if err := a.DB().Exec(`UPDATE leases SET duration_ms = 1 WHERE name = ?`, LeaderLease).Error; err != nil {
		t.Fatal(err)
	}
	time.Sleep(20 * time.Millisecond)
	if ok, err := b.TryAcquireLease(ctx, LeaderLease, "b-holder", time.Minute); err != nil || !ok {
		t.Fatalf("b did not take an expired lease: %v %v", ok, err)
	}
	_, _, err = a.CreateTask(a.FenceContext(ctx, LeaderLease, "a-holder"), newTask("late"))
	if !errors.Is(err, ErrLeaseLost) {
		t.Fatalf("fenced write of the old holder: %v, want ErrLeaseLost", err)
	}
}

// A write by another store wakes Changed's waiters through LISTEN/NOTIFY,
// without anyone polling DataVersion; this store's own writes do not.
func TestPostgres_NotifyWakesOtherStores(t *testing.T) {
	ctx := context.Background()
	a, dsn := newPostgresStore(t, Options{})
	b, err := OpenPostgres(ctx, dsn, Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	v0, _ := a.DataVersion(ctx)
	woke := a.Changed()
	mustCreateTask(t, b, newTask("from b"))
	select {
	case <-woke:
	case <-time.After(30 * time.Second):
		t.Fatal("a was not woken by b's write")
	}
	if v, _ := a.DataVersion(ctx); v == v0 {
		t.Fatal("DataVersion did not move after b's write")
	}
	vb, _ := b.DataVersion(ctx)
	mustCreateTask(t, b, newTask("own"))
	// a's write reaches b; b's own write above must not have counted: wait
	// for a's to arrive, then the count is exactly one more.
	mustCreateTask(t, a, newTask("from a"))
	deadline := time.Now().Add(30 * time.Second)
	for {
		v, _ := b.DataVersion(ctx)
		if v != vb {
			if v != vb+1 {
				t.Fatalf("b's version moved by %d, want 1 (its own write counted)", v-vb)
			}
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("b never heard a's write")
		}
		time.Sleep(10 * time.Millisecond)
	}
}
