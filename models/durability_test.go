package models

import (
	"context"
	"path/filepath"
	"sync"
	"testing"

	"gorm.io/gorm"
)

// syncLevels records PRAGMA synchronous inside every write transaction of
// the test (0 off, 1 NORMAL, 2 FULL).
func syncLevels(t *testing.T) func() []int {
	t.Helper()
	var mu sync.Mutex
	var seen []int
	writeTxHook = func(tx *gorm.DB) {
		var level int
		if err := tx.Raw("PRAGMA synchronous").Scan(&level).Error; err != nil {
			t.Errorf("read synchronous: %v", err)
		}
		mu.Lock()
		seen = append(seen, level)
		mu.Unlock()
	}
	t.Cleanup(func() { writeTxHook = nil })
	return func() []int {
		mu.Lock()
		defer mu.Unlock()
		out := append([]int(nil), seen...)
		seen = nil
		return out
	}
}

// Progress of a run whose output still flows commits without waiting for
// fsync, so it does not hold the write lock a task_worker insert waits for;
// the intent, and the row saying the output is complete, still commit with
// synchronous=FULL, and every write lands.
func TestWriteRelaxed_OnlyProgressSkipsTheFsync(t *testing.T) {
	ctx := context.Background()
	// A file of SQLite's own (synchronous is SQLite's), in both passes.
	s, err := Open(ctx, filepath.Join(t.TempDir(), "relaxed.db"), Options{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = s.Close() })
	levels := syncLevels(t)

	task := mustCreateTask(t, s, newTask("p"))
	if got := levels(); len(got) != 1 || got[0] != 2 {
		t.Fatalf("task insert committed with synchronous %v, want FULL (2)", got)
	}
	for size := int64(1); size <= 3; size++ {
		if err := s.UpsertExecutionLog(ctx, &ExecutionLog{TaskID: task.ID, Run: 1, Path: "/logs/run-1.log", Size: size}); err != nil {
			t.Fatal(err)
		}
	}
	if got := levels(); len(got) != 3 || got[0] != 1 || got[1] != 1 || got[2] != 1 {
		t.Fatalf("progress writes committed with synchronous %v, want NORMAL (1) each", got)
	}
	if err := s.UpsertExecutionLog(ctx, &ExecutionLog{TaskID: task.ID, Run: 1, Path: "/logs/run-1.log", Size: 4, Complete: true}); err != nil {
		t.Fatal(err)
	}
	if got := levels(); len(got) != 1 || got[0] != 2 {
		t.Fatalf("complete log committed with synchronous %v, want FULL (2)", got)
	}
	if _, err := s.UpdateTaskSpec(ctx, task.ID, func(t *Task) error { t.Spec.DesiredState = TaskDesiredCancel; return nil }); err != nil {
		t.Fatal(err)
	}
	if got := levels(); len(got) != 1 || got[0] != 2 {
		t.Fatalf("cancel committed with synchronous %v, want FULL (2)", got)
	}
	l, err := s.GetExecutionLog(ctx, task.ID, 1)
	if err != nil || l.Size != 4 || !l.Complete {
		t.Fatalf("stored log %+v, %v", l, err)
	}
	// The relaxed connection is closed with the store, like the pool.
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	if s.relaxedSQL == nil || s.relaxedSQL.Ping() == nil {
		t.Fatal("relaxed connection not opened, or still open after Close")
	}
}
