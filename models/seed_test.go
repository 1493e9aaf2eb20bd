package models

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	"gorm.io/gorm"
)

// seedFinishedTasks inserts n finished, settled tasks (history) with raw
// multi-row INSERTs in one transaction: fast enough to seed 100,000 rows in
// about a second.
func seedFinishedTasks(tb testing.TB, s *Store, n int) {
	tb.Helper()
	const cols = "id, generation, resource_version, start_time, created_at, updated_at, prompt, work_folder, agent, " +
		"priority, priority_rank, desired_state, desired_runs, phase, status, finished, end_time, observed_generation, run_number"
	const perRow = 19
	const batch = 500
	base := time.Date(2024, 1, 1, 0, 0, 0, 0, time.UTC)
	row := "(" + strings.TrimSuffix(strings.Repeat("?,", perRow), ",") + ")"
	err := s.write(context.Background(), func(tx *gorm.DB) error {
		for start := 0; start < n; start += batch {
			end := min(start+batch, n)
			rows := make([]string, 0, end-start)
			args := make([]any, 0, (end-start)*perRow)
			for i := start; i < end; i++ {
				at := base.Add(time.Duration(i) * time.Second).Format(timeFormat)
				phase, state := TaskPhaseSucceeded, TaskStateCompleted
				if i%5 == 0 {
					phase, state = TaskPhaseFailed, TaskStateFailed
				}
				rows = append(rows, row)
				args = append(args, fmt.Sprintf("task-%012x", 0x800000000000+i), 1, 3, at, at, at,
					"seeded history", "/repo", "shell", PriorityMedium, 1, TaskDesiredRun, 1,
					phase, state, true, at, 1, 1)
			}
			if err := tx.Exec("INSERT INTO background_tasks ("+cols+") VALUES "+strings.Join(rows, ","), args...).Error; err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		tb.Fatalf("seed %d finished tasks: %v", n, err)
	}
}

// seedLiveTasks creates n unfinished tasks through the store.
func seedLiveTasks(tb testing.TB, s *Store, n int) []*Task {
	tb.Helper()
	out := make([]*Task, 0, n)
	for i := range n {
		out = append(out, mustCreateTask(tb, s, newTask(fmt.Sprintf("live %d", i))))
	}
	return out
}
