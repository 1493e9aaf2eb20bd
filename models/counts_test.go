package models

import (
	"context"
	"maps"
	"testing"

	"gorm.io/gorm"
)

// recountByStatus counts table's rows by status the slow way, to check the
// kept counts against.
func recountByStatus(t testing.TB, s *Store, table string) map[string]int64 {
	t.Helper()
	out, err := countByKey[string](context.Background(), s, func(db *gorm.DB) *gorm.DB {
		return db.Table(table).Select("status, count(*) AS n").Group("status")
	})
	if err != nil {
		t.Fatal(err)
	}
	return out
}

func asStrings[K ~string](m map[K]int64) map[string]int64 {
	out := make(map[string]int64, len(m))
	for k, v := range m {
		out[string(k)] = v
	}
	return out
}

// checkCounts compares what CountTasksByStatus and CountDiffsByStatus say
// with a count of the rows themselves.
func checkCounts(t *testing.T, s *Store, when string) {
	t.Helper()
	ctx := context.Background()
	tasks, err := s.CountTasksByStatus(ctx)
	if err != nil {
		t.Fatal(err)
	}
	diffs, err := s.CountDiffsByStatus(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if want := recountByStatus(t, s, Task{}.TableName()); !maps.Equal(asStrings(tasks), want) {
		t.Errorf("%s: task counts %v, rows say %v", when, tasks, want)
	}
	if want := recountByStatus(t, s, Diff{}.TableName()); !maps.Equal(asStrings(diffs), want) {
		t.Errorf("%s: diff counts %v, rows say %v", when, diffs, want)
	}
}

// The counts follow every kind of write: creation, status writes of this
// store and of a second store on the same file, raw SQL that bypasses the
// store, and deletion.
func TestCounts_FollowEveryStatusWrite(t *testing.T) {
	ctx := context.Background()
	s := newTestStore(t)
	other, err := openAgain(ctx, s, Options{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = other.Close() })

	seedFinishedTasks(t, s, 50)
	checkCounts(t, s, "after seeding")
	live := seedLiveTasks(t, s, 4)
	checkCounts(t, s, "after creating live tasks")

	// A status write by this store, then one by the other store.
	live[0].Status.Phase = TaskPhaseRunning
	if err := s.UpdateTaskStatus(ctx, live[0]); err != nil {
		t.Fatal(err)
	}
	t1, err := other.GetTask(ctx, live[1].ID)
	if err != nil {
		t.Fatal(err)
	}
	t1.Status.Phase, t1.Status.ObservedGeneration = TaskPhaseFailed, t1.Generation
	if err := other.UpdateTaskStatus(ctx, t1); err != nil {
		t.Fatal(err)
	}
	checkCounts(t, s, "after status writes of both stores")
	checkCounts(t, other, "seen from the other store")
	if c, _ := s.CountTasksByStatus(ctx); c[TaskStateRunning] != 1 || c[TaskStatePending] != 2 || c[TaskStateFailed] != 11 {
		t.Errorf("counts %v", c)
	}

	// A status write that keeps the status changes nothing; diffs count too.
	if err := s.UpdateTaskStatus(ctx, live[0]); err != nil {
		t.Fatal(err)
	}
	d, _, err := other.CreateDiff(ctx, newDiff(live[1].ID, 1))
	if err != nil {
		t.Fatal(err)
	}
	d.Status.Phase = DiffPhaseRejected
	if err := s.UpdateDiffStatus(ctx, d); err != nil {
		t.Fatal(err)
	}
	if err := s.DB().Exec(`UPDATE background_tasks SET status = 'cancelled' WHERE id = ?`, live[2].ID).Error; err != nil {
		t.Fatal(err)
	}
	checkCounts(t, s, "after a diff and a raw update")

	if err := s.DeleteDiff(ctx, d.ID); err != nil {
		t.Fatal(err)
	}
	if err := s.DB().Exec(`DELETE FROM background_tasks WHERE id = ?`, live[3].ID).Error; err != nil {
		t.Fatal(err)
	}
	checkCounts(t, s, "after deletions")
	if c, _ := s.CountDiffsByStatus(ctx); len(c) != 0 {
		t.Errorf("no diff is left, counts say %v", c)
	}

	// Deleting a task deletes its diffs by the foreign key's cascade, which
	// the diffs' trigger sees too.
	if _, _, err := s.CreateDiff(ctx, newDiff(live[0].ID, 1)); err != nil {
		t.Fatal(err)
	}
	if err := s.DB().Exec(`DELETE FROM background_tasks WHERE id = ?`, live[0].ID).Error; err != nil {
		t.Fatal(err)
	}
	checkCounts(t, s, "after a cascading deletion")
}

// A database whose counts machinery is missing (made before it existed, or
// a table rebuilt by a migration, which drops its triggers) gets it back with
// counts taken from the rows when opened.
func TestCounts_RebuiltWhenTriggersAreMissing(t *testing.T) {
	ctx := context.Background()
	s := newTestStore(t)
	seedFinishedTasks(t, s, 30)
	seedLiveTasks(t, s, 2)
	live := seedLiveTasks(t, s, 1)
	drop := `DROP TRIGGER ` + countsTrigger("background_tasks", "update")
	if s.Driver() == DriverPostgres {
		drop += ` ON background_tasks` // a trigger's name is per table there
	}
	if err := s.DB().Exec(drop).Error; err != nil {
		t.Fatal(err)
	}
	// Written while no trigger counts status changes.
	if err := s.DB().Exec(`UPDATE background_tasks SET status = 'cancelled' WHERE id = ?`, live[0].ID).Error; err != nil {
		t.Fatal(err)
	}
	target := childTarget(s)
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	s2, err := openTarget(ctx, target, Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer s2.Close()
	checkCounts(t, s2, "after reopening")
	if c, _ := s2.CountTasksByStatus(ctx); c[TaskStatePending] != 2 || c[TaskStateCancelled] != 1 || c[TaskStateFailed] != 6 || c[TaskStateCompleted] != 24 {
		t.Errorf("counts %v", c)
	}
}

// Paging through tasks newest first with a cursor returns every task that
// existed when paging began exactly once and in order, even across equal
// start times and while new tasks arrive between pages.
func TestListTasks_CursorPagesAreStable(t *testing.T) {
	ctx := context.Background()
	s := newTestStore(t)
	seedFinishedTasks(t, s, 40)
	// Ten tasks share one start time: the id decides their order.
	if err := s.DB().Exec(`UPDATE background_tasks SET start_time = (SELECT start_time FROM background_tasks ORDER BY start_time LIMIT 1 OFFSET 15)
		WHERE id IN (SELECT id FROM background_tasks ORDER BY start_time LIMIT 10 OFFSET 15)`).Error; err != nil {
		t.Fatal(err)
	}
	var tie []string
	if err := s.DB().Raw(`SELECT id FROM background_tasks ORDER BY start_time DESC, id DESC`).Scan(&tie).Error; err != nil {
		t.Fatal(err)
	}
	var got []string
	var after *Cursor
	for page := 0; ; page++ {
		ts, err := s.ListTasks(ctx, TaskFilter{Paged: true, After: after, Limit: 7})
		if err != nil {
			t.Fatal(err)
		}
		if len(ts) == 0 {
			break
		}
		for _, task := range ts {
			got = append(got, task.ID)
		}
		last := ts[len(ts)-1]
		c, err := ParseCursor(Cursor{Time: last.StartTime, ID: last.ID}.String())
		if err != nil {
			t.Fatal(err)
		}
		after = &c
		seedLiveTasks(t, s, 1) // newer than every page: it must not show up
		if page > 20 {
			t.Fatal("paging does not end")
		}
	}
	if len(got) != len(tie) {
		t.Fatalf("paged %d tasks, want %d", len(got), len(tie))
	}
	for i := range got {
		if got[i] != tie[i] {
			t.Fatalf("task %d: paged %s, want %s\npaged %v\nwant  %v", i, got[i], tie[i], got, tie)
		}
	}
	if _, err := ParseCursor("not a cursor"); err == nil {
		t.Error("a made-up cursor is accepted")
	}
}
