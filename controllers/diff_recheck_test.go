package controllers

import (
	"context"
	"errors"
	"fmt"
	"path/filepath"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/claude-parallel/claude-parallel/controllers/workspace"
	"github.com/claude-parallel/claude-parallel/models"
	"github.com/claude-parallel/claude-parallel/test/testutil"
)

// heldDryRuns is the host's workspaces with every dry run held, once started,
// until its context ends or release is closed: a re-check caught in the
// middle.
type heldDryRuns struct {
	hostWorkspaces
	started chan struct{}
	release chan struct{}
}

func (h heldDryRuns) Apply(ctx context.Context, spec workspace.ApplySpec) (workspace.ApplyResult, error) {
	if !spec.DryRun {
		return h.hostWorkspaces.Apply(ctx, spec)
	}
	select {
	case h.started <- struct{}{}:
	default:
	}
	select {
	case <-ctx.Done():
		// As a git process killed by its context ends.
		return workspace.ApplyResult{}, fmt.Errorf("check patch: %w", context.Cause(ctx))
	case <-h.release:
		return h.hostWorkspaces.Apply(ctx, spec)
	}
}

// An apply asked for while the first re-check of a new diff is running (an
// agent applying the moment its task finished) ends that re-check instead
// of waiting for its dry run: the pass records nothing of it, asks for the
// next pass at once, and that pass applies the diff.
func TestDiffReconcile_ApplyAskedDuringRecheckEndsTheDryRun(t *testing.T) {
	e := newDiffTestEnv(t)
	repo := e.newRepo(dtBaseFiles())
	d := e.newDiff(repo, func(work string) { dtWrite(t, filepath.Join(work, "added.txt"), "added\n") })
	held := heldDryRuns{started: make(chan struct{}, 1), release: make(chan struct{})}
	e.r.workspaces = held
	before := e.diff(d.ID).Status

	type passResult struct{ err error }
	done := make(chan passResult, 1)
	go func() {
		_, err := e.reconcile(d.ID)
		done <- passResult{err}
	}()
	<-held.started
	e.decide(d.ID, dtApplyIn(models.ApplyModeWorktree))

	var pass passResult
	select {
	case pass = <-done:
	case <-time.After(30 * time.Second): // a hang guard, not a timing: the held dry run never ends by itself
		close(held.release)
		<-done
		t.Fatal("the re-check kept running its dry run after the apply was asked for")
	}
	if pass.err != nil {
		t.Fatalf("the interrupted re-check failed: %v", pass.err)
	}
	got := e.diff(d.ID)
	if got.Status.Phase != before.Phase || got.Status.Reason != before.Reason || got.Status.Message != before.Message ||
		got.Status.ObservedGeneration == got.Generation {
		t.Fatalf("the interrupted re-check recorded %+v (before %+v), generation %d", got.Status, before, got.Generation)
	}
	e.mu.Lock()
	requeued := slices.Contains(e.queue, d.ID)
	e.mu.Unlock()
	if !requeued {
		t.Fatal("the interrupted re-check did not ask for the next pass")
	}

	close(held.release)
	e.settle()
	st := e.diff(d.ID).Status
	if st.Phase != models.DiffPhaseApplied {
		t.Fatalf("after the next passes: phase %s (%s), want Applied", st.Phase, st.Message)
	}
	if got := testutil.ReadFile(t, filepath.Join(repo, "added.txt")); got != "added\n" {
		t.Fatalf("added.txt is %q", got)
	}
}

// decidedWhileLooking is heldDryRuns whose look at the target for the
// fingerprint (the step of a re-check before its dry run) first runs
// decideNow, once: a front end's decision written after the pass read the
// diff and before its dry run started.
type decidedWhileLooking struct {
	heldDryRuns
	decideNow func()
	once      *sync.Once
}

func (w decidedWhileLooking) OpenWorkFolder(ctx context.Context, folder string, roots workspace.Roots) (*workspace.WorkFolder, error) {
	w.once.Do(w.decideNow)
	return w.heldDryRuns.OpenWorkFolder(ctx, folder, roots)
}

// An apply asked for after a re-check read its diff but before the dry run
// began — while the pass looked at the target for its fingerprint, a git
// process of its own — ends the re-check as surely as one asked for during
// the dry run: the watch for the decision covers the whole re-check and
// counts every write since the diff was read. Before, a decision written in
// that window was missed and the apply waited for the whole dry run.
func TestDiffReconcile_ApplyAskedBeforeTheDryRunEndsTheRecheck(t *testing.T) {
	e := newDiffTestEnv(t)
	repo := e.newRepo(dtBaseFiles())
	d := e.newDiff(repo, func(work string) { dtWrite(t, filepath.Join(work, "added.txt"), "added\n") })
	held := heldDryRuns{started: make(chan struct{}, 1), release: make(chan struct{})}
	e.r.workspaces = decidedWhileLooking{heldDryRuns: held, once: &sync.Once{},
		decideNow: func() { e.decide(d.ID, dtApplyIn(models.ApplyModeWorktree)) }}

	done := make(chan error, 1)
	go func() {
		_, err := e.reconcile(d.ID)
		done <- err
	}()
	var err error
	select {
	case err = <-done:
	case <-time.After(30 * time.Second): // a hang guard, not a timing: the held dry run never ends by itself
		close(held.release)
		<-done
		t.Fatal("the re-check ran its dry run to the end after the apply was asked for")
	}
	if err != nil {
		t.Fatalf("the interrupted re-check failed: %v", err)
	}
	got := e.diff(d.ID)
	if got.Status.ObservedGeneration == got.Generation || got.Status.Phase != models.DiffPhasePending {
		t.Fatalf("the interrupted re-check recorded %+v, generation %d", got.Status, got.Generation)
	}
	close(held.release)
	e.r.workspaces = hostWorkspaces{}
	e.settle(d.ID)
	if st := e.diff(d.ID).Status; st.Phase != models.DiffPhaseApplied {
		t.Fatalf("after the next passes: phase %s (%s), want Applied", st.Phase, st.Message)
	}
	if got := testutil.ReadFile(t, filepath.Join(repo, "added.txt")); got != "added\n" {
		t.Fatalf("added.txt is %q", got)
	}
}

// untilSpecChanges given the notification taken before the diff was read
// ends at once for a spec written between that read and its start.
func TestUntilSpecChanges_SeesAWriteMadeBeforeItStarted(t *testing.T) {
	e := newDiffTestEnv(t)
	repo := e.newRepo(dtBaseFiles())
	id := e.newDiff(repo, func(work string) { dtWrite(t, filepath.Join(work, "added.txt"), "added\n") }).ID
	changed := e.store.Changed()
	d := e.diff(id)
	e.decide(id, dtApplyIn(models.ApplyModeWorktree))
	ctx, stop := e.r.untilSpecChanges(e.ctx, d, changed)
	defer stop()
	select {
	case <-ctx.Done():
	case <-time.After(30 * time.Second): // a hang guard, not a timing
		t.Fatal("the watch missed the spec written before it started")
	}
	if cause := context.Cause(ctx); !errors.Is(cause, errSpecChanged) {
		t.Fatalf("ended by %v, want errSpecChanged", cause)
	}
}
