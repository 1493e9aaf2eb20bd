package models

import (
	"context"
	"github.com/claude-parallel/claude-parallel/test/testutil"
	"regexp"
	"strings"
	"testing"
	"time"

	"gorm.io/gorm"
)

// bareScan matches a plan line that reads a whole table ("SCAN git_diffs"),
// as opposed to "SCAN t USING [COVERING] INDEX i", which reads an index.
var bareScan = regexp.MustCompile(`^SCAN (background_tasks|git_diffs)$`)

// Every query a reconcile pass runs must be answered from an index, so its
// cost follows the live objects rather than the history.
func TestQueryPlans_ReconcileQueriesUseIndexes(t *testing.T) {
	ctx := context.Background()
	s := newSQLiteTestStore(t)
	seedFinishedTasks(t, s, 2000)
	live := seedLiveTasks(t, s, 5)
	for _, task := range live {
		if _, _, err := s.CreateDiff(ctx, newDiff(task.ID, 1)); err != nil {
			t.Fatal(err)
		}
	}

	var ids []string
	var tasks []Task
	var diffs []Diff
	var counts []struct {
		Phase TaskPhase
		N     int64
	}
	cases := []struct {
		name      string
		query     func(tx *gorm.DB) *gorm.DB
		wantIndex string
	}{
		{"live tasks", func(tx *gorm.DB) *gorm.DB { return liveTaskIDsQuery(tx).Pluck("id", &ids) }, "idx_background_tasks_live"},
		{"admission queue", func(tx *gorm.DB) *gorm.DB {
			return taskListQuery(tx, TaskFilter{Finished: ptr(false), Phases: []TaskPhase{TaskPhasePending}, Order: TasksAdmissionOrder}).Find(&tasks)
		}, "idx_background_tasks_admission"},
		{"live tasks by phase", func(tx *gorm.DB) *gorm.DB { return liveByPhaseQuery(tx).Scan(&counts) }, "idx_background_tasks_admission"},
		{"retention", func(tx *gorm.DB) *gorm.DB { return finishedBeforeQuery(tx, time.Now(), 100).Find(&tasks) }, "idx_background_tasks_retention"},
		{"tasks by status", func(tx *gorm.DB) *gorm.DB {
			return taskListQuery(tx, TaskFilter{States: []TaskState{TaskStateRunning}, Limit: 10}).Find(&tasks)
		}, "idx_background_tasks_status"},
		{"tasks by id", func(tx *gorm.DB) *gorm.DB {
			return taskListQuery(tx, TaskFilter{IDs: []string{live[0].ID, live[1].ID}}).Find(&tasks)
		}, ""},
		{"live diffs", func(tx *gorm.DB) *gorm.DB { return liveDiffIDsQuery(tx).Pluck("id", &ids) }, "idx_git_diffs_live"},
		{"pending diffs of a target", func(tx *gorm.DB) *gorm.DB {
			return diffListQuery(tx, DiffFilter{TargetWorkspace: "/repo", States: []DiffState{DiffStatePending}}).Find(&diffs)
		}, "idx_git_diffs_target"},
		{"diffs of a task", func(tx *gorm.DB) *gorm.DB { return diffListQuery(tx, DiffFilter{TaskID: live[0].ID}).Find(&diffs) }, "idx_git_diffs_task_run"},
		{"tasks page", func(tx *gorm.DB) *gorm.DB {
			return taskListQuery(tx, TaskFilter{Paged: true, After: &Cursor{Time: time.Now(), ID: "task-x"}, Limit: 20}).Find(&tasks)
		}, "idx_background_tasks_start_time"},
		{"tasks by status page", func(tx *gorm.DB) *gorm.DB {
			return taskListQuery(tx, TaskFilter{States: []TaskState{TaskStateCompleted}, Paged: true, After: &Cursor{Time: time.Now(), ID: "task-x"}, Limit: 20}).Find(&tasks)
		}, "idx_background_tasks_status"},
		{"pending diffs page", func(tx *gorm.DB) *gorm.DB {
			return diffListQuery(tx, DiffFilter{Awaiting: true, Order: DiffsOldestFirst, Paged: true,
				After: &Cursor{Time: time.Now(), ID: "diff-x"}, Limit: 50}).Find(&diffs)
		}, "idx_git_diffs_awaiting"},
		{"files changed of a diff", func(tx *gorm.DB) *gorm.DB {
			var n []int
			return diffFilesChangedQuery(tx, "diff-x").Pluck("files_changed", &n)
		}, ""},
		{"task counts", func(tx *gorm.DB) *gorm.DB { return countsQuery(tx, Task{}.TableName()).Scan(&counts) }, ""},
		{"diffs to retain", func(tx *gorm.DB) *gorm.DB {
			return diffListQuery(tx, DiffFilter{States: []DiffState{DiffStateRejected}, UpdatedBefore: time.Now()}).Find(&diffs)
		}, ""},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			sql := s.DB().ToSQL(c.query)
			plan := explain(t, s, sql)
			joined := strings.Join(plan, " | ")
			t.Logf("%s\n    plan: %s", sql, joined)
			if !strings.Contains(joined, "USING INDEX") && !strings.Contains(joined, "USING COVERING INDEX") &&
				!strings.Contains(joined, "USING PRIMARY KEY") {
				t.Errorf("plan uses no index: %s", joined)
			}
			for _, line := range plan {
				if bareScan.MatchString(line) {
					t.Errorf("plan scans a whole table: %s", joined)
				}
			}
			if strings.Contains(c.name, "page") && strings.Contains(joined, "TEMP B-TREE FOR ORDER BY") {
				t.Errorf("a page sorts every match: %s", joined)
			}
			if c.wantIndex != "" && !strings.Contains(joined, c.wantIndex) {
				t.Errorf("plan does not use %s: %s", c.wantIndex, joined)
			}
		})
	}
}

func explain(t *testing.T, s *Store, sql string) []string {
	t.Helper()
	return testutil.QueryPlan(t, s.DB(), sql)
}
