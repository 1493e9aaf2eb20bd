package controllers

import (
	"path/filepath"
	"slices"
	"testing"

	"go.uber.org/zap/zaptest"

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

	// The first look of a term re-checks everything; the next sees no change.
	if got := e.look(w); !slices.Equal(got, []string{a.ID, b.ID}) && !slices.Equal(got, []string{b.ID, a.ID}) {
		t.Fatalf("first look asked for %v, want both diffs", got)
	}
	e.settle()
	if got := e.look(w); len(got) != 0 {
		t.Fatalf("look without a change asked for %v", got)
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
	e.settle(ids...)
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
