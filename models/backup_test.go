package models

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// A backup taken while writers keep adding tasks and diffs holds a
// consistent snapshot: every diff's task is in it, integrity_check passes,
// and a restore into a fresh place brings back every row the backup counted,
// with each diff's patch intact.
func TestBackup_UnderWriteLoadRestoresEverything(t *testing.T) {
	ctx := context.Background()
	s := newSQLiteTestStore(t)
	for i := range 20 {
		task := mustCreateTask(t, s, newTask("before backup"))
		if _, _, err := s.CreateDiff(ctx, newDiff(task.ID, 1)); err != nil {
			t.Fatalf("diff %d: %v", i, err)
		}
	}
	var stop atomic.Bool
	var wg sync.WaitGroup
	var written atomic.Int64
	for range 4 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for !stop.Load() {
				task, _, err := s.CreateTask(ctx, newTask("during backup"))
				if err != nil {
					t.Errorf("write during backup: %v", err)
					return
				}
				if _, _, err := s.CreateDiff(ctx, newDiff(task.ID, 1)); err != nil {
					t.Errorf("write during backup: %v", err)
					return
				}
				written.Add(1)
			}
		}()
	}
	// Let the writers get going, so the backup really runs beside them.
	for written.Load() < 5 {
		time.Sleep(5 * time.Millisecond)
	}
	dest := filepath.Join(t.TempDir(), "backup.db")
	info, err := s.Backup(ctx, dest)
	stop.Store(true)
	wg.Wait()
	if err != nil {
		t.Fatalf("backup: %v", err)
	}
	// Each writer creates a task, then its diff: at most one task per
	// writer can be in the snapshot without its diff.
	if info.Tasks < 25 || info.Diffs > info.Tasks || info.Tasks-info.Diffs > 4 || info.InstallationID != s.InstallationID() {
		t.Fatalf("backup holds %+v (store %s)", info, s.InstallationID())
	}
	if _, err := s.Backup(ctx, dest); !errors.Is(err, os.ErrExist) {
		t.Fatalf("second backup onto the same file: %v, want os.ErrExist", err)
	}

	fresh := filepath.Join(t.TempDir(), "home", "data", "claude-parallel.db")
	got, kept, err := Restore(ctx, dest, fresh, time.Now())
	if err != nil || kept != "" {
		t.Fatalf("restore: %v (kept %q)", err, kept)
	}
	if got.Tasks != info.Tasks || got.Diffs != info.Diffs {
		t.Fatalf("restored %+v, backup had %+v", got, info)
	}
	r, err := Open(ctx, fresh, Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	if r.InstallationID() != s.InstallationID() {
		t.Errorf("installation id %s, want %s", r.InstallationID(), s.InstallationID())
	}
	diffs, err := r.ListDiffs(ctx, DiffFilter{WithPatch: true})
	if err != nil {
		t.Fatal(err)
	}
	if int64(len(diffs)) != info.Diffs {
		t.Fatalf("%d diffs listed, want %d", len(diffs), info.Diffs)
	}
	for _, d := range diffs {
		if string(d.Patch) != string(newDiff("", 1).Patch) {
			t.Fatalf("diff %s patch %q", d.ID, d.Patch)
		}
		if _, err := r.GetTask(ctx, d.TaskID); err != nil {
			t.Fatalf("diff %s: its task: %v", d.ID, err)
		}
	}
	var check string
	if err := r.DB().Raw("PRAGMA integrity_check").Scan(&check).Error; err != nil || check != "ok" {
		t.Fatalf("integrity_check of the restored store: %q, %v", check, err)
	}
}

// Restore refuses while a live holder has the lease, and after the lease
// lapses it goes ahead, keeping the replaced database beside the new one.
// The restored copy starts without a lease.
func TestRestore_RefusedWhileLeaseHeld(t *testing.T) {
	ctx := context.Background()
	clock := &fakeClock{t: time.Now()}
	live := newSQLiteTestStore(t, Options{Now: clock.Now})
	mustCreateTask(t, live, newTask("live store"))
	if ok, err := live.TryAcquireLease(ctx, LeaderLease, "server-1", time.Minute); err != nil || !ok {
		t.Fatalf("acquire: %v %v", ok, err)
	}
	backup := filepath.Join(t.TempDir(), "b.db")
	if _, err := live.Backup(ctx, backup); err != nil {
		t.Fatal(err)
	}
	_, _, err := Restore(ctx, backup, live.Path(), clock.Now())
	if !errors.Is(err, ErrLeaseHeld) {
		t.Fatalf("restore over a led store: %v, want ErrLeaseHeld", err)
	}
	if _, err := os.Stat(live.Path()); err != nil {
		t.Fatalf("refused restore touched the database: %v", err)
	}
	if err := live.ReleaseLease(ctx, LeaderLease, "server-1"); err != nil {
		t.Fatal(err)
	}
	if err := live.Close(); err != nil {
		t.Fatal(err)
	}
	_, kept, err := Restore(ctx, backup, live.Path(), clock.Now())
	if err != nil {
		t.Fatalf("restore after the lease was released: %v", err)
	}
	if _, err := CheckDatabaseFile(ctx, kept); err != nil {
		t.Fatalf("the replaced database was not kept intact at %q: %v", kept, err)
	}
	r, err := Open(ctx, live.Path(), Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	if holder, _, _, err := r.LeaseHolder(ctx, LeaderLease); err != nil || holder != "" {
		t.Fatalf("restored lease holder %q, %v; want none", holder, err)
	}
}

// A damaged backup is refused before anything is replaced.
func TestRestore_ChecksTheFileFirst(t *testing.T) {
	ctx := context.Background()
	s := newSQLiteTestStore(t)
	mustCreateTask(t, s, newTask("keep me"))
	backup := filepath.Join(t.TempDir(), "b.db")
	if _, err := s.Backup(ctx, backup); err != nil {
		t.Fatal(err)
	}
	raw, err := os.ReadFile(backup)
	if err != nil {
		t.Fatal(err)
	}
	// Overwrite the pages after the first (the schema stays readable, the
	// tables do not): integrity_check must notice.
	for i := 4096; i < len(raw); i++ {
		raw[i] = 0x5a
	}
	damaged := filepath.Join(t.TempDir(), "damaged.db")
	if err := os.WriteFile(damaged, raw, 0o600); err != nil {
		t.Fatal(err)
	}
	notSQLite := filepath.Join(t.TempDir(), "notes.txt")
	if err := os.WriteFile(notSQLite, []byte("hello, not a database"), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	before, err := os.ReadFile(s.Path())
	if err != nil {
		t.Fatal(err)
	}
	for _, bad := range []string{damaged, notSQLite, filepath.Join(t.TempDir(), "missing.db")} {
		if _, _, err := Restore(ctx, bad, s.Path(), time.Now()); err == nil {
			t.Fatalf("restore of %s succeeded", bad)
		}
	}
	after, err := os.ReadFile(s.Path())
	if err != nil || string(after) != string(before) {
		t.Fatalf("a refused restore changed the database (%v)", err)
	}
	if m, _ := filepath.Glob(filepath.Join(filepath.Dir(s.Path()), "*.restoring-*")); len(m) != 0 {
		t.Fatalf("left behind: %v", m)
	}
}
