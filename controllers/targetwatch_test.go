package controllers

import (
	"context"
	"fmt"
	"path/filepath"
	"slices"
	"strings"
	"sync/atomic"
	"testing"

	"go.uber.org/zap/zaptest"

	"github.com/claude-parallel/claude-parallel/controllers/workspace"
	"github.com/claude-parallel/claude-parallel/models"
	"github.com/claude-parallel/claude-parallel/test/testutil"
)

// newTargetWatchForTest watches e's store and sends its hints to e's queue,
// where settle picks them up as the diff controller's queue would.
func newTargetWatchForTest(e *dtEnv) *targetWatch {
	return &targetWatch{store: e.store, workspaces: hostWorkspaces{}, log: zaptest.NewLogger(e.t), notify: e.r.notify, seen: map[string]string{}}
}

// look runs one look of w and returns the diffs it asked to re-check.
func (e *dtEnv) look(w *targetWatch) []string {
	e.t.Helper()
	e.mu.Lock()
	before := len(e.queue)
	e.mu.Unlock()
	if _, err := w.look(e.ctx); err != nil {
		e.t.Fatalf("look: %v", err)
	}
	e.mu.Lock()
	defer e.mu.Unlock()
	return slices.Clone(e.queue[before:])
}

// A target edited by hand moves a pending diff to Conflict and back without
// any apply, and only the diffs whose files changed are re-checked.
func TestTargetWatch_HandEditsReachPendingDiffs(t *testing.T) {
	e := newDiffTestEnv(t)
	repo := e.newRepo(dtBaseFiles())
	a := e.newDiff(repo, dtEditLine(t, "a.txt", 3, "A's line"))
	b := e.newDiff(repo, dtEditLine(t, "b.txt", 10, "B's line"))
	e.settle(a.ID, b.ID)
	w := newTargetWatchForTest(e)

	// The verdicts were reached on the targets as they are (their
	// fingerprints are stored with them): a new watch, as after a restart,
	// asks for nothing, and neither does the next look.
	for look := range 2 {
		if got := e.look(w); len(got) != 0 {
			t.Fatalf("look %d without a change asked for %v", look, got)
		}
	}

	// The user edits the line A changes: only A is re-checked, and conflicts.
	p := filepath.Join(repo, "a.txt")
	original := testutil.ReadFile(t, p)
	dtWrite(t, p, testutil.ReplaceLine(original, 3, "the user's line"))
	if got := e.look(w); !slices.Equal(got, []string{a.ID}) {
		t.Fatalf("after editing a.txt the watch asked for %v, want only %s", got, a.ID)
	}
	e.settle()
	if st := e.diff(a.ID).Status; st.Phase != models.DiffPhaseConflict || !slices.Equal([]string(st.ConflictFiles), []string{"a.txt"}) {
		t.Fatalf("A after the hand edit: phase %s files %v (%s), want Conflict on a.txt", st.Phase, st.ConflictFiles, st.Message)
	}
	if st := e.diff(b.ID).Status; st.Phase != models.DiffPhasePending {
		t.Fatalf("B: phase %s (%s), want Pending", st.Phase, st.Message)
	}

	// Undone by hand: A applies again.
	dtWrite(t, p, original)
	if got := e.look(w); !slices.Equal(got, []string{a.ID}) {
		t.Fatalf("after undoing the edit the watch asked for %v, want %s", got, a.ID)
	}
	e.settle()
	if st := e.diff(a.ID).Status; st.Phase != models.DiffPhasePending || len(st.ConflictFiles) != 0 {
		t.Fatalf("A after the edit was undone: phase %s files %v (%s), want Pending", st.Phase, st.ConflictFiles, st.Message)
	}

	// A commit moves HEAD: every diff on the repository is re-checked.
	dtWrite(t, filepath.Join(repo, "other.txt"), "unrelated\n")
	testutil.Git(t, repo, "add", "other.txt")
	testutil.Git(t, repo, "commit", "--quiet", "-m", "unrelated")
	if got := e.look(w); len(got) != 2 {
		t.Fatalf("after a commit the watch asked for %v, want both diffs", got)
	}
	e.settle()

	// A decided diff is no longer watched.
	e.decide(b.ID, func(s *models.DiffSpec) { s.Desired, s.RejectReason = models.DiffDesiredRejected, "no" })
	e.settle(b.ID)
	dtWrite(t, filepath.Join(repo, "b.txt"), "rewritten\n")
	if got := e.look(w); len(got) != 0 {
		t.Fatalf("the watch asked for %v after B was rejected", got)
	}
}

// A look fingerprints one page of the diffs awaiting a decision, going on
// from the last page at the next look: the cost of a resync is bounded
// however many diffs were never decided, and a sweep still reaches them all.
func TestTargetWatch_LooksAtOnePagePerResync(t *testing.T) {
	e := newDiffTestEnv(t)
	repo := e.newRepo(dtBaseFiles())
	var ids []string
	for i := range 5 {
		d := e.newDiff(repo, dtEditLine(t, "a.txt", 1+i, "line"))
		ids = append(ids, d.ID)
	}
	// Not settled: no dry run has stored a fingerprint yet, so the watch
	// asks for each diff once.
	w := newTargetWatchForTest(e)
	w.page = 2

	var asked []string
	for look := range 3 {
		got := e.look(w)
		if len(got) > w.page {
			t.Fatalf("look %d asked for %d diffs, more than a page of %d", look, len(got), w.page)
		}
		asked = append(asked, got...)
	}
	slices.Sort(asked)
	want := slices.Sorted(slices.Values(ids))
	if !slices.Equal(asked, want) {
		t.Fatalf("a sweep of three looks asked for %v, want every diff %v", asked, want)
	}
	e.settle()
	// The next sweep sees no change.
	for range 3 {
		if got := e.look(w); len(got) != 0 {
			t.Fatalf("look without a change asked for %v", got)
		}
	}
}

// countingWorkspaces counts the target folders opened (one git process each).
type countingWorkspaces struct {
	hostWorkspaces
	opened atomic.Int64
}

func (c *countingWorkspaces) OpenWorkFolder(ctx context.Context, folder string, roots workspace.Roots) (*workspace.WorkFolder, error) {
	c.opened.Add(1)
	return c.hostWorkspaces.OpenWorkFolder(ctx, folder, roots)
}

// cloneSettledDiff copies diff d and its task n times with SQL (new ids,
// same target, same stored verdict and fingerprint), as a store holding n
// more diffs awaiting a decision on one repository would.
func cloneSettledDiff(t *testing.T, e *dtEnv, d *models.Diff, n int) {
	t.Helper()
	db := e.store.DB()
	clone := func(table string, set map[string]string, srcID string) {
		var cols []string
		if err := db.Raw(`SELECT name FROM pragma_table_info(?)`, table).Scan(&cols).Error; err != nil {
			t.Fatal(err)
		}
		sel := make([]string, len(cols))
		for i, c := range cols {
			sel[i] = c
			if v, ok := set[c]; ok {
				sel[i] = v
			}
		}
		q := `WITH RECURSIVE seq(k) AS (SELECT 1 UNION ALL SELECT k + 1 FROM seq WHERE k < ?)
			INSERT INTO ` + table + ` (` + strings.Join(cols, ", ") + `)
			SELECT ` + strings.Join(sel, ", ") + ` FROM seq, ` + table + ` WHERE id = ?`
		if err := db.Exec(q, n, srcID).Error; err != nil {
			t.Fatalf("clone %s: %v", table, err)
		}
	}
	taskID := `printf('task-%012x', 0x100000000000 + k)`
	clone("background_tasks", map[string]string{"id": taskID, "diff_id": `printf('diff-%012x', 0x100000000000 + k)`}, d.TaskID)
	clone("git_diffs", map[string]string{"id": `printf('diff-%012x', 0x100000000000 + k)`, "task_id": taskID}, d.ID)
}

// With 10,000 diffs awaiting a decision whose verdicts were reached on the
// target as it is, a new watch (a restarted server, a new leader) asks for no
// dry run at all, and each look fingerprints one page with one git process;
// when the target then changes under all of them, a look asks for one page of
// dry runs, not for every diff of history.
func TestTargetWatch_TenThousandPendingDiffsCostAPagePerLook(t *testing.T) {
	e := newDiffTestEnv(t)
	repo := e.newRepo(dtBaseFiles())
	d := e.newDiff(repo, dtEditLine(t, "a.txt", 3, "A's line"))
	e.settle(d.ID)
	d = e.diff(d.ID)
	if d.Status.Phase != models.DiffPhasePending || d.Status.TargetFingerprint == "" {
		t.Fatalf("settled diff: phase %s fingerprint %q (%s), want Pending with a fingerprint", d.Status.Phase, d.Status.TargetFingerprint, d.Status.Message)
	}
	const n = 10_000
	cloneSettledDiff(t, e, d, n-1)

	ws := &countingWorkspaces{}
	w := newTargetWatchForTest(e)
	w.workspaces = ws
	looks := 0
	for {
		before := w.fingerprinted
		got := e.look(w)
		looks++
		if len(got) != 0 {
			t.Fatalf("look %d after a restart asked for %d dry runs, want none: the verdicts were reached on the target as it is", looks, len(got))
		}
		if w.fingerprinted-before > targetWatchPage {
			t.Fatalf("look %d fingerprinted %d diffs, more than a page of %d", looks, w.fingerprinted-before, targetWatchPage)
		}
		if w.after == nil {
			break // the sweep is over
		}
		if looks > n/targetWatchPage+1 {
			t.Fatalf("the sweep did not end after %d looks", looks)
		}
	}
	if w.fingerprinted != n {
		t.Errorf("a sweep fingerprinted %d diffs, want each of the %d once", w.fingerprinted, n)
	}
	if got, pages := ws.opened.Load(), int64((n+targetWatchPage-1)/targetWatchPage); got != pages {
		t.Errorf("a sweep of %d looks opened the target %d times, want once a page (%d)", looks, got, pages)
	}
	if len(w.seen) != 0 {
		t.Errorf("the watch remembers %d fingerprints with nothing to ask for", len(w.seen))
	}

	// The user edits the file every diff touches: each look asks for the
	// dry runs of its page only, and a diff once.
	p := filepath.Join(repo, "a.txt")
	dtWrite(t, p, testutil.ReplaceLine(testutil.ReadFile(t, p), 3, "the user's line"))
	first := e.look(w)
	if len(first) != targetWatchPage {
		t.Fatalf("the first look after the edit asked for %d dry runs, want one page of %d", len(first), targetWatchPage)
	}
	second := e.look(w)
	if len(second) != targetWatchPage || slices.ContainsFunc(second, func(id string) bool { return slices.Contains(first, id) }) {
		t.Fatalf("the second look asked for %d dry runs (some asked before: %v), want the next page", len(second), second)
	}
}

// TestTargetWatch_IdleOnlyAtTheEndOfAQuietSweep: the watch lets its interval
// stretch (AddIdlePeriodic) only after a look that ended a sweep and found
// every target as the stored verdicts saw it; a look that asks for a dry run,
// or one in the middle of a sweep, keeps the configured pace.
func TestTargetWatch_IdleOnlyAtTheEndOfAQuietSweep(t *testing.T) {
	e := newDiffTestEnv(t)
	repo := e.newRepo(dtBaseFiles())
	var ids []string
	for i := range 3 {
		d := e.newDiff(repo, dtEditLine(t, "a.txt", 3, fmt.Sprintf("line %d", i)))
		e.settle(d.ID)
		ids = append(ids, d.ID)
	}
	w := newTargetWatchForTest(e)
	w.page = 2
	idle := func() bool {
		t.Helper()
		got, err := w.lookIdle(e.ctx)
		if err != nil {
			t.Fatal(err)
		}
		return got
	}
	if idle() {
		t.Fatal("a look in the middle of a sweep (a full page) counted as idle")
	}
	if !idle() {
		t.Fatal("the look that ended a sweep with every target unmoved did not count as idle")
	}
	p := filepath.Join(repo, "a.txt")
	dtWrite(t, p, testutil.ReplaceLine(testutil.ReadFile(t, p), 3, "the user's line"))
	if idle() {
		t.Fatal("a look that asked for dry runs counted as idle")
	}
	idle() // the rest of that sweep
	if !idle() && !idle() {
		t.Fatalf("a sweep that only met diffs already asked about never counted as idle (seen %d of %v)", len(w.seen), ids)
	}
}
