package controllers

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/claude-parallel/claude-parallel/config"
	"github.com/claude-parallel/claude-parallel/controllers/workspace"
	"github.com/claude-parallel/claude-parallel/models"
	"github.com/claude-parallel/claude-parallel/reconciler"
	"github.com/claude-parallel/claude-parallel/test/testutil"
)

// The tests below play issue 9's attacks on allowed_roots: a folder accepted
// inside a root is swapped, before the controllers use it, for a symlink to
// a repository outside every root. Each must end in the reason
// wantOutsideReason with nothing outside read or written.

// wantOutsideReason is the reason a refused use ends in (spelt out rather
// than ReasonOutsideAllowedRoots so the tests also build on the code before
// the fix, where they must fail).
const wantOutsideReason = "OutsideAllowedRoots"

// rootsLayout is an allowed root and, beside it (outside it), a tree the
// tests must never read or write.
type rootsLayout struct {
	root, outside string
	canary        string
}

func newRootsLayout(t *testing.T) rootsLayout {
	t.Helper()
	base := t.TempDir()
	l := rootsLayout{root: filepath.Join(base, "root"), outside: filepath.Join(base, "outside"),
		canary: "CANARY-" + models.NewTaskID()}
	for _, d := range []string{l.root, l.outside} {
		if err := os.MkdirAll(d, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	return l
}

// outsideClone makes outside/<name>, a clone of repo (so a branch or a
// patch meant for repo would apply to it), holding the canary committed,
// modified in README.md and untracked.
func (l rootsLayout) outsideClone(t *testing.T, repo, name string) string {
	t.Helper()
	dst := filepath.Join(l.outside, name)
	testutil.Git(t, l.outside, "clone", "--quiet", "--no-local", "--", repo, dst)
	testutil.WriteFile(t, filepath.Join(dst, "committed-canary.txt"), l.canary+"\n")
	testutil.Git(t, dst, "add", "committed-canary.txt")
	testutil.Git(t, dst, "commit", "--quiet", "-m", "canary")
	testutil.WriteFile(t, filepath.Join(dst, "README.md"), "hello\n"+l.canary+"\n")
	testutil.WriteFile(t, filepath.Join(dst, "untracked-canary.txt"), l.canary+"\n")
	return dst
}

// swapToSymlink does `mv dir dir.real; ln -s target dir`.
func swapToSymlink(t *testing.T, dir, target string) {
	t.Helper()
	if err := os.Rename(dir, dir+".real"); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink(target, dir); err != nil {
		t.Fatal(err)
	}
}

// treeHash hashes every entry below dir, .git included: names, modes,
// contents and symlink targets.
func treeHash(t testing.TB, dir string) string {
	t.Helper()
	h := sha256.New()
	err := filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		fi, err := d.Info()
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(dir, p)
		fmt.Fprintf(h, "%q %v %d\n", rel, fi.Mode(), fi.ModTime().UnixNano())
		switch {
		case fi.Mode()&fs.ModeSymlink != 0:
			target, err := os.Readlink(p)
			if err != nil {
				return err
			}
			fmt.Fprintf(h, "-> %q\n", target)
		case fi.Mode().IsRegular():
			b, err := os.ReadFile(p)
			if err != nil {
				return err
			}
			h.Write(b)
		}
		return nil
	})
	if err != nil {
		t.Fatalf("hash %s: %v", dir, err)
	}
	return hex.EncodeToString(h.Sum(nil))
}

// filesContaining lists the regular files below dir whose content holds s.
func filesContaining(t testing.TB, dir, s string) []string {
	t.Helper()
	var found []string
	err := filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			if os.IsNotExist(err) {
				return nil // removed while walking (a workspace being cleaned up)
			}
			return err
		}
		if !d.Type().IsRegular() {
			return nil
		}
		b, err := os.ReadFile(p)
		if err == nil && bytes.Contains(b, []byte(s)) {
			found = append(found, p)
		}
		return nil
	})
	if err != nil && !os.IsNotExist(err) {
		t.Fatalf("walk %s: %v", dir, err)
	}
	return found
}

// finishedTaskWithDiff stores a succeeded task on repo whose run appended a
// line to README.md, with its pending diff, as the task controller would
// have left them.
func (h *harness) finishedTaskWithDiff(repo string) (*models.Task, *models.Diff) {
	h.t.Helper()
	task := h.createTask("edit", func(t *models.Task) { t.Spec.WorkFolder = repo })
	ws, err := workspace.Prepare(h.ctx, workspace.PrepareSpec{
		TaskID: task.ID, WorkFolder: repo, Root: h.s.tasks.paths.WorkspaceDir, UID: -1, GID: -1,
	})
	if err != nil {
		h.t.Fatalf("prepare workspace: %v", err)
	}
	testutil.WriteFile(h.t, filepath.Join(ws.WorkDir, "README.md"), "hello\nfrom the task\n")
	d, err := workspaceDiffs{}.CaptureDiff(h.ctx, ws, 1, 0)
	if err != nil {
		h.t.Fatalf("capture diff: %v", err)
	}
	d.TaskID, d.RunNumber = task.ID, 1
	stored, _, err := h.store.CreateDiff(h.ctx, d)
	if err != nil {
		h.t.Fatalf("create diff: %v", err)
	}
	task = h.task(task.ID)
	task.Status.Phase = models.TaskPhaseSucceeded
	task.Status.RunNumber = 1
	task.Status.WorkspacePath = ws.Dir
	task.Status.BaseCommit = ws.BaseCommit
	task.Status.DiffID = stored.ID
	if err := h.store.UpdateTaskStatus(h.ctx, task); err != nil {
		h.t.Fatalf("finish task: %v", err)
	}
	return task, stored
}

// settleDiff runs diff passes until the diff's apply has an outcome.
func (h *harness) settleDiff(id string) *models.Diff {
	h.t.Helper()
	r := h.s.diffRec
	for i := 0; ; i++ {
		if _, err := r.Reconcile(h.ctx, reconciler.Request{Key: id}); err != nil && !reconciler.IsTerminal(err) {
			h.t.Logf("pass %d: %v", i, err)
		}
		d, err := h.store.GetDiff(h.ctx, id)
		if err != nil {
			h.t.Fatal(err)
		}
		switch d.Status.Phase {
		case models.DiffPhaseApplied, models.DiffPhaseFailed, models.DiffPhaseConflict:
			return d
		}
		if i == 20 {
			h.t.Fatalf("diff %s has no outcome after %d passes: %+v", id, i, d.Status)
		}
	}
}

// TestDiffApply_DefaultTargetSwappedOutsideIsRefused: a task on ROOT/repo
// finishes; then `mv repo repo.real; ln -s /outside/repo repo`; applying its
// diff with no target (the task's folder) must not write to /outside/repo,
// in either mode: the diff fails with reason OutsideAllowedRoots naming the
// folder.
func TestDiffApply_DefaultTargetSwappedOutsideIsRefused(t *testing.T) {
	for _, mode := range []models.ApplyMode{models.ApplyModeWorktree, models.ApplyModeBranch} {
		t.Run(string(mode), func(t *testing.T) {
			l := newRootsLayout(t)
			h := newHarness(t, func(c *config.Config) { c.AllowedRoots = []string{l.root} })
			repo := testutil.NewRepo(t, filepath.Join(l.root, "repo"), map[string]string{"README.md": "hello\n"})
			outside := l.outsideClone(t, repo, "repo")
			testutil.Git(t, outside, "checkout", "--quiet", "--", "README.md") // so a worktree patch would apply
			_, d := h.finishedTaskWithDiff(repo)
			before := treeHash(t, l.outside)

			swapToSymlink(t, repo, outside)
			if _, err := h.store.UpdateDiffSpec(h.ctx, d.ID, func(cur *models.Diff) error {
				cur.Spec.Desired, cur.Spec.ApplyMode = models.DiffDesiredApplied, mode
				return nil
			}); err != nil {
				t.Fatal(err)
			}
			got := h.settleDiff(d.ID)
			if got.Status.Phase != models.DiffPhaseFailed || got.Status.Reason != wantOutsideReason ||
				!strings.Contains(got.Status.Message, repo) {
				t.Errorf("diff after the swap: phase %s reason %s message %q; want Failed, OutsideAllowedRoots naming %s",
					got.Status.Phase, got.Status.Reason, got.Status.Message, repo)
			}
			if after := treeHash(t, l.outside); after != before {
				t.Errorf("the apply changed the tree outside the allowed roots")
			}
		})
	}
}

// TestTaskSnapshot_DependentFolderSwappedOutsideIsRefused: a task waits on
// dependsOn; meanwhile its folder is swapped for a symlink to an outside
// repository. When the dependency completes, the snapshot must be refused
// (reason OutsideAllowedRoots) and nothing of the outside repository may
// reach the task's workspace or log.
func TestTaskSnapshot_DependentFolderSwappedOutsideIsRefused(t *testing.T) {
	for _, uncommitted := range []bool{true, false} {
		t.Run(fmt.Sprintf("uncommitted=%v", uncommitted), func(t *testing.T) {
			l := newRootsLayout(t)
			h := newHarness(t, func(c *config.Config) { c.AllowedRoots = []string{l.root} })
			repo := testutil.NewRepo(t, filepath.Join(l.root, "repo"), map[string]string{"README.md": "hello\n"})
			outside := l.outsideClone(t, repo, "repo")
			a := h.createTask("a", func(t *models.Task) { t.Spec.WorkFolder = repo })
			b := h.createTask("b", func(t *models.Task) {
				t.Spec.WorkFolder, t.Spec.DependsOn, t.Spec.IncludeUncommitted = repo, []string{a.ID}, uncommitted
			})
			if got := h.task(b.ID); got.Status.Phase != models.TaskPhasePending {
				t.Fatalf("b: %+v", got.Status)
			}
			h.reconcile(b.ID)
			if got := h.task(b.ID); got.Status.Reason != ReasonWaitingForDeps {
				t.Fatalf("b should wait for a: %+v", got.Status)
			}

			swapToSymlink(t, repo, outside)
			cur := h.task(a.ID)
			cur.Status.Phase = models.TaskPhaseSucceeded
			if err := h.store.UpdateTaskStatus(h.ctx, cur); err != nil {
				t.Fatal(err)
			}
			got := h.runUntil(b.ID, 30*time.Second, func(t *models.Task) bool {
				return t.Status.Finished || t.Status.Phase == models.TaskPhaseRunning
			})
			h.s.tasks.builds.stop() // a background snapshot, if any, has ended
			if got.Status.Phase != models.TaskPhaseFailed || got.Status.Reason != wantOutsideReason ||
				!strings.Contains(got.Status.Message, repo) {
				t.Errorf("b: phase %s reason %s message %q; want Failed, OutsideAllowedRoots naming %s",
					got.Status.Phase, got.Status.Reason, got.Status.Message, repo)
			}
			for _, dir := range []string{h.s.tasks.paths.WorkspaceDir, h.cfg.Log.Dir, filepath.Dir(h.cfg.DBPath)} {
				if found := filesContaining(t, dir, l.canary); len(found) > 0 {
					t.Errorf("the outside canary reached %v", found)
				}
			}
		})
	}
}

// TestTaskSnapshot_GitFileOutsideRootsIsRefused: a folder inside the root
// whose .git is a file pointing at a repository outside the roots is
// refused when the task is snapshotted: the outside repository's commit
// never reaches the workspace.
func TestTaskSnapshot_GitFileOutsideRootsIsRefused(t *testing.T) {
	l := newRootsLayout(t)
	h := newHarness(t, func(c *config.Config) { c.AllowedRoots = []string{l.root} })
	src := testutil.NewRepo(t, filepath.Join(l.root, "src"), map[string]string{"README.md": "hello\n"})
	outside := l.outsideClone(t, src, "repo")
	victim := filepath.Join(l.root, "victim")
	testutil.WriteFile(t, filepath.Join(victim, ".git"), "gitdir: "+filepath.Join(outside, ".git")+"\n")
	task := h.createTask("x", func(t *models.Task) { t.Spec.WorkFolder = victim })
	got := h.runUntil(task.ID, 30*time.Second, func(t *models.Task) bool {
		return t.Status.Finished || t.Status.Phase == models.TaskPhaseRunning
	})
	h.s.tasks.builds.stop()
	if got.Status.Phase != models.TaskPhaseFailed || got.Status.Reason != wantOutsideReason ||
		!strings.Contains(got.Status.Message, filepath.Join(outside, ".git")) {
		t.Errorf("task: phase %s reason %s message %q; want Failed, OutsideAllowedRoots naming the git directory",
			got.Status.Phase, got.Status.Reason, got.Status.Message)
	}
	if found := filesContaining(t, h.s.tasks.paths.WorkspaceDir, l.canary); len(found) > 0 {
		t.Errorf("the outside canary reached %v", found)
	}
}

// allowed_roots reloaded (SIGHUP swaps the configuration) applies to the
// next use: a folder accepted under the old roots is refused when it is
// snapshotted after they no longer contain it.
func TestTaskSnapshot_ReloadedRootsApplyAtOnce(t *testing.T) {
	l := newRootsLayout(t)
	h := newHarness(t, func(c *config.Config) { c.AllowedRoots = []string{l.root} })
	repo := testutil.NewRepo(t, filepath.Join(l.root, "repo"), map[string]string{"README.md": "hello\n"})
	task := h.createTask("x", func(t *models.Task) { t.Spec.WorkFolder = repo })
	next := h.cfg.Clone()
	next.AllowedRoots = []string{l.outside}
	h.s.SetConfig(next)
	got := h.runUntil(task.ID, 30*time.Second, func(t *models.Task) bool {
		return t.Status.Finished || t.Status.Phase == models.TaskPhaseRunning
	})
	h.s.tasks.builds.stop()
	if got.Status.Phase != models.TaskPhaseFailed || got.Status.Reason != wantOutsideReason {
		t.Errorf("task after the roots were narrowed: phase %s reason %s: %s", got.Status.Phase, got.Status.Reason, got.Status.Message)
	}
}

// The target watch looks at a target through a handle checked against the
// roots: a default target swapped for a symlink outside is fingerprinted as
// refused, and what happens to the outside files it leads to is not looked
// at (an edit there moves nothing).
func TestTargetWatch_SwappedTargetIsNotLookedInto(t *testing.T) {
	l := newRootsLayout(t)
	h := newHarness(t, func(c *config.Config) { c.AllowedRoots = []string{l.root} })
	repo := testutil.NewRepo(t, filepath.Join(l.root, "repo"), map[string]string{"README.md": "hello\n"})
	outside := l.outsideClone(t, repo, "repo")
	_, d := h.finishedTaskWithDiff(repo)
	w := &targetWatch{store: h.store, workspaces: hostWorkspaces{}, log: h.s.log, roots: h.s.diffRec.roots, seen: map[string]string{}}
	var notified []string
	w.notify = func(_, id string) { notified = append(notified, id) }

	swapToSymlink(t, repo, outside)
	if _, err := w.look(h.ctx); err != nil {
		t.Fatal(err)
	}
	if len(notified) != 1 || notified[0] != d.ID {
		t.Fatalf("first look notified %v, want %s", notified, d.ID)
	}
	later := time.Now().Add(time.Hour)
	testutil.WriteFile(t, filepath.Join(outside, "README.md"), "edited outside\n")
	if err := os.Chtimes(filepath.Join(outside, "README.md"), later, later); err != nil {
		t.Fatal(err)
	}
	if _, err := w.look(h.ctx); err != nil {
		t.Fatal(err)
	}
	if len(notified) != 1 {
		t.Errorf("an edit outside the roots moved the fingerprint: notified %v", notified)
	}
}
