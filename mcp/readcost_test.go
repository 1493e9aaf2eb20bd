package mcp

import (
	"context"
	"fmt"
	"github.com/claude-parallel/claude-parallel/test/testutil"
	"regexp"
	"strings"
	"sync"
	"testing"

	"gorm.io/gorm"

	"github.com/claude-parallel/claude-parallel/mcp/service"
	"github.com/claude-parallel/claude-parallel/models"
)

// sqlLog captures every statement run through the store's connection pool.
type sqlLog struct {
	mu   sync.Mutex
	on   bool
	stmt []string
}

func captureSQL(t *testing.T, s *models.Store) *sqlLog {
	t.Helper()
	l := &sqlLog{}
	record := func(db *gorm.DB) {
		l.mu.Lock()
		defer l.mu.Unlock()
		if l.on && db.Statement.SQL.Len() > 0 {
			l.stmt = append(l.stmt, db.Dialector.Explain(db.Statement.SQL.String(), db.Statement.Vars...))
		}
	}
	cb := s.DB().Callback()
	if err := cb.Query().After("gorm:query").Register("test:capture_query", record); err != nil {
		t.Fatal(err)
	}
	if err := cb.Row().After("gorm:row").Register("test:capture_row", record); err != nil {
		t.Fatal(err)
	}
	return l
}

// during returns the statements run by fn.
func (l *sqlLog) during(fn func()) []string {
	l.mu.Lock()
	l.on, l.stmt = true, nil
	l.mu.Unlock()
	fn()
	l.mu.Lock()
	defer l.mu.Unlock()
	l.on = false
	return l.stmt
}

// historyScan matches a plan line that reads all of a table growing with
// history, through the table or through any of its indexes. A SEARCH (a
// range or a key of an index) is what a read of one task or one page does.
var historyScan = regexp.MustCompile(`^SCAN (background_tasks|git_diffs|events)\b`)

// liveIndex matches the partial indexes, which hold the live rows only.
var liveIndex = regexp.MustCompile(`USING (COVERING )?INDEX idx_(background_tasks_live|git_diffs_live|git_diffs_awaiting)\b`)

// readsHistory tells whether a statement's plan reads rows in proportion
// to the history: a scan of a history table, unless of a partial index of
// live rows, or in an index's order under a LIMIT (it stops after the page).
func readsHistory(sql string, plan []string) bool {
	sorts := false
	for _, line := range plan {
		// A sort of the right part only (ties of the index order) stops
		// with the LIMIT too.
		sorts = sorts || strings.Contains(line, "TEMP B-TREE FOR ORDER BY")
	}
	limited := strings.Contains(sql, " LIMIT ") && !sorts
	for _, line := range plan {
		if historyScan.MatchString(line) && !liveIndex.MatchString(line) &&
			!(limited && strings.Contains(line, "USING INDEX")) {
			return true
		}
	}
	return false
}

// Reading one task, a page of tasks, the pending diffs or the system status
// issues no statement that reads over all tasks, diffs or events: each is
// answered by key or index range, so its cost does not grow with history.
func TestReads_NoQueryOverTheHistory(t *testing.T) {
	e := newTestEnv(t)
	ctx := context.Background()
	var ids []string
	for i := range 30 {
		a := e.startTask(map[string]any{"taskDescription": fmt.Sprintf("t%d", i)})
		if i%3 == 0 {
			e.finishRun(a.TaskID, 1, models.TaskPhaseSucceeded, "f.txt")
		}
		ids = append(ids, a.TaskID)
	}
	if err := e.store.RecordEvent(ctx, models.EventKindTask, ids[0], "Started", "x"); err != nil {
		t.Fatal(err)
	}
	log := captureSQL(t, e.store)
	for _, c := range []struct {
		tool string
		args map[string]any
	}{
		{"work_status", map[string]any{"taskId": ids[0]}},
		{"work_status", map[string]any{"limit": 5}},
		{"work_status", map[string]any{"status": "completed", "limit": 5}},
		{"review_changes", map[string]any{}},
		{"review_changes", map[string]any{"taskId": ids[0]}},
		{"system_status", map[string]any{}},
	} {
		stmts := log.during(func() { e.call(c.tool, c.args) })
		if len(stmts) == 0 {
			t.Fatalf("%s %v: no statement captured", c.tool, c.args)
		}
		for _, sql := range stmts {
			if plan := explainSQL(t, e.store, sql); readsHistory(sql, plan) {
				t.Errorf("%s %v runs %s\n    plan: %s", c.tool, c.args, sql, strings.Join(plan, " | "))
			}
		}
	}
}

func explainSQL(t *testing.T, s *models.Store, sql string) []string {
	t.Helper()
	return testutil.QueryPlan(t, s.DB(), sql)
}

// work_status and review_changes page through their lists with nextCursor:
// every task and pending diff once, in order, whatever arrives meanwhile.
func TestListsPageWithCursor(t *testing.T) {
	e := newTestEnv(t)
	var diffs []string
	for range service.MaxPendingDiffsShown + 3 {
		a := e.startTask(nil)
		diffs = append(diffs, e.finishRun(a.TaskID, 1, models.TaskPhaseSucceeded, "f.txt").ID)
	}

	var seen []string
	args := map[string]any{"limit": 20}
	for {
		page := ok[service.WorkStatusResult](e, "work_status", args)
		for _, ts := range page.Tasks {
			seen = append(seen, ts.TaskID)
		}
		e.startTask(nil) // newer than every page
		if page.NextCursor == "" {
			break
		}
		args = map[string]any{"limit": 20, "cursor": page.NextCursor}
	}
	if len(seen) != len(diffs) {
		t.Fatalf("paged %d tasks, want %d", len(seen), len(diffs))
	}

	// Pages end at service.MaxPendingDiffsShown diffs or at the size bound of a
	// reply, whichever comes first.
	var got []string
	rargs := map[string]any{"showContent": false}
	for pages := 0; ; pages++ {
		page := ok[service.ReviewResult](e, "review_changes", rargs)
		if len(page.Pending) == 0 || len(page.Pending) > service.MaxPendingDiffsShown || pages > len(diffs) {
			t.Fatalf("page %d: %d diffs", pages, len(page.Pending))
		}
		for _, v := range page.Pending {
			got = append(got, v.DiffID)
		}
		if page.NextCursor == "" {
			break
		}
		rargs = map[string]any{"cursor": page.NextCursor, "showContent": false}
	}
	if strings.Join(got, ",") != strings.Join(diffs, ",") {
		t.Fatalf("pending pages %v, want oldest first %v", got, diffs)
	}
	if msg := e.fails("work_status", map[string]any{"cursor": "bogus!"}); !strings.Contains(msg, "cursor") {
		t.Errorf("bad cursor: %s", msg)
	}
}
