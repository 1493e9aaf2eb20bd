package workspace

import (
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"

	"github.com/claude-parallel/claude-parallel/test/testutil"
)

// agentDiff prepares a workspace of src, lets edit change it and captures the diff.
func agentDiff(t *testing.T, src string, edit func(work string)) (*Workspace, *Diff) {
	t.Helper()
	ws := prepareWS(t, src, true)
	edit(ws.WorkDir)
	return ws, capture(t, ws, 1)
}

func replaceLine(t *testing.T, path, old, new string) {
	t.Helper()
	s := testutil.ReadFile(t, path)
	if !strings.Contains(s, old) {
		t.Fatalf("%s lacks %q", path, old)
	}
	fi, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	writeFile(t, path, strings.Replace(s, old, new, 1), fi.Mode().Perm())
}

func TestApply_OverlappingDiffsConflictDisjointOnesApply(t *testing.T) {
	ctx := testCtx(t)
	src := newSourceRepo(t)
	_, first := agentDiff(t, src, func(w string) { replaceLine(t, filepath.Join(w, "a.txt"), "a line 5\n", "first agent\n") })
	_, overlapping := agentDiff(t, src, func(w string) {
		replaceLine(t, filepath.Join(w, "a.txt"), "a line 5\n", "second agent\n")
		replaceLine(t, filepath.Join(w, "b.txt"), "b line 1\n", "second agent\n")
	})
	_, disjoint := agentDiff(t, src, func(w string) { replaceLine(t, filepath.Join(w, "b.txt"), "b line 18\n", "third agent\n") })

	// Before anything is applied, all three would apply.
	for _, d := range []*Diff{first, overlapping, disjoint} {
		if res, err := CheckApplies(ctx, src, d.Patch); err != nil || res.Outcome != Applied {
			t.Fatalf("CheckApplies before = %+v, %v", res, err)
		}
	}
	before := snapshotTree(t, src)
	if res, err := CheckApplies(ctx, src, first.Patch); err != nil || res.Outcome != Applied {
		t.Fatalf("dry run = %+v, %v", res, err)
	}
	if diff := diffTrees(before, snapshotTree(t, src)); diff != "" {
		t.Fatalf("CheckApplies wrote to the target:\n%s", diff)
	}

	if res, err := Apply(ctx, ApplySpec{Target: src, Patch: first.Patch}); err != nil || res.Outcome != Applied {
		t.Fatalf("apply first = %+v, %v", res, err)
	}
	// Re-check the pending ones, twice: the answer does not change.
	for range 2 {
		res, err := CheckApplies(ctx, src, overlapping.Patch)
		if err != nil || res.Outcome != Conflict || strings.Join(res.Files, ",") != "a.txt" {
			t.Fatalf("CheckApplies overlapping = %+v, %v; want conflict on a.txt", res, err)
		}
		if res, err := CheckApplies(ctx, src, disjoint.Patch); err != nil || res.Outcome != Applied {
			t.Fatalf("CheckApplies disjoint = %+v, %v", res, err)
		}
		if res, err := CheckApplies(ctx, src, first.Patch); err != nil || res.Outcome != AlreadyApplied {
			t.Fatalf("CheckApplies applied = %+v, %v", res, err)
		}
	}

	// Applying the overlapping diff leaves the target exactly as it was, including
	// b.txt, whose hunk alone would have applied.
	before = snapshotTree(t, src)
	res, err := Apply(ctx, ApplySpec{Target: src, Patch: overlapping.Patch})
	if err != nil || res.Outcome != Conflict || strings.Join(res.Files, ",") != "a.txt" || res.Message == "" {
		t.Fatalf("apply overlapping = %+v, %v", res, err)
	}
	if diff := diffTrees(before, snapshotTree(t, src)); diff != "" {
		t.Fatalf("a conflicting apply changed the target:\n%s", diff)
	}

	for i, want := range []ApplyOutcome{Applied, AlreadyApplied} {
		if res, err := Apply(ctx, ApplySpec{Target: src, Patch: disjoint.Patch}); err != nil || res.Outcome != want {
			t.Fatalf("apply disjoint #%d = %+v, %v", i+1, res, err)
		}
	}
	got := testutil.ReadFile(t, filepath.Join(src, "b.txt"))
	if !strings.Contains(got, "third agent\n") || strings.Contains(got, "second agent") {
		t.Fatalf("b.txt = %q", got)
	}
	if res, err := Apply(ctx, ApplySpec{Target: src, Patch: first.Patch}); err != nil || res.Outcome != AlreadyApplied {
		t.Fatalf("apply first again = %+v, %v", res, err)
	}
}

// TestApply_ThreeWayMergesNearbyLocalEdit: a local edit inside the patch's context
// lines defeats a plain apply; a three-way merge with the base blob resolves it.
func TestApply_ThreeWayMergesNearbyLocalEdit(t *testing.T) {
	ctx := testCtx(t)
	src := newSourceRepo(t)
	ws, d := agentDiff(t, src, func(w string) { replaceLine(t, filepath.Join(w, "a.txt"), "a line 10\n", "agent line 10\n") })
	target := cloneRepo(t, src)
	replaceLine(t, filepath.Join(target, "a.txt"), "a line 8\n", "local line 8\n")

	spec := ApplySpec{Target: target, Patch: d.Patch, SourceGitDir: ws.GitDir}
	spec.DryRun = true
	before := snapshotTree(t, target)
	if res, err := Apply(ctx, spec); err != nil || res.Outcome != Applied {
		t.Fatalf("dry run = %+v, %v", res, err)
	}
	if diff := diffTrees(before, snapshotTree(t, target)); diff != "" {
		t.Fatalf("dry run wrote:\n%s", diff)
	}
	spec.DryRun = false
	for i, want := range []ApplyOutcome{Applied, AlreadyApplied} {
		if res, err := Apply(ctx, spec); err != nil || res.Outcome != want {
			t.Fatalf("apply #%d = %+v, %v", i+1, res, err)
		}
	}
	got := testutil.ReadFile(t, filepath.Join(target, "a.txt"))
	if !strings.Contains(got, "local line 8\n") || !strings.Contains(got, "agent line 10\n") {
		t.Fatalf("a.txt lost an edit:\n%s", got)
	}
	// The index and HEAD are untouched: the change is an unstaged edit.
	if st := testGit(t, target, "status", "--porcelain"); st != " M a.txt" {
		t.Fatalf("status %q", st)
	}
}

func TestApply_ConflictNamesEveryOverlappingFileAndWritesNothing(t *testing.T) {
	ctx := testCtx(t)
	src := newSourceRepo(t)
	ws, d := agentDiff(t, src, func(w string) {
		replaceLine(t, filepath.Join(w, "a.txt"), "a line 3\n", "agent\n")
		replaceLine(t, filepath.Join(w, "b.txt"), "b line 3\n", "agent\n")
		writeFile(t, filepath.Join(w, "dir", "c.txt"), "agent\n", 0o644)
		writeFile(t, filepath.Join(w, "added.txt"), "agent\n", 0o644)
	})
	target := cloneRepo(t, src)
	replaceLine(t, filepath.Join(target, "b.txt"), "b line 3\n", "local\n")
	writeFile(t, filepath.Join(target, "added.txt"), "local\n", 0o644)
	before := snapshotTree(t, target)
	res, err := Apply(ctx, ApplySpec{Target: target, Patch: d.Patch, SourceGitDir: ws.GitDir})
	if err != nil || res.Outcome != Conflict || strings.Join(res.Files, ",") != "added.txt,b.txt" {
		t.Fatalf("apply = %+v, %v; want conflict on added.txt and b.txt", res, err)
	}
	if diff := diffTrees(before, snapshotTree(t, target)); diff != "" {
		t.Fatalf("target changed:\n%s", diff)
	}
}

func TestApply_RefusesHostilePatchesAndWritesNothingOutside(t *testing.T) {
	ctx := testCtx(t)
	src := newSourceRepo(t)
	outside := t.TempDir()
	cases := map[string]string{
		"dotdot":          newFilePatch("../escaped", "x"),
		"absolute":        "--- /dev/null\n+++ " + outside + "/escaped\n@@ -0,0 +1 @@\n+x\n",
		"git hooks":       newFilePatch(".git/hooks/pre-commit", "#!/bin/sh"),
		"symlink to /etc": symlinkPatch("etc", "/etc") + newFilePatch("etc/escaped", "x"),
		"symlink outside": symlinkPatch("out", outside),
	}
	for name, p := range cases {
		t.Run(name, func(t *testing.T) {
			target := cloneRepo(t, src)
			before := snapshotTree(t, target)
			for _, mode := range []ApplyMode{Worktree, Branch} {
				_, err := Apply(ctx, ApplySpec{Target: target, Patch: []byte(p), Mode: mode, Branch: "claude-parallel/x",
					BaseCommit: strings.Repeat("a", 40), ResultCommit: strings.Repeat("b", 40), SourceGitDir: "/nonexistent"})
				if !errors.Is(err, ErrUnsafePatch) {
					t.Fatalf("%s: %v, want ErrUnsafePatch", mode, err)
				}
			}
			if _, err := CheckApplies(ctx, target, []byte(p)); !errors.Is(err, ErrUnsafePatch) {
				t.Fatalf("CheckApplies: %v", err)
			}
			if diff := diffTrees(before, snapshotTree(t, target)); diff != "" {
				t.Fatalf("target changed:\n%s", diff)
			}
			assertNoFile(t, filepath.Join(target, ".git", "hooks", "pre-commit"))
		})
	}
	entries, _ := os.ReadDir(outside)
	if len(entries) != 0 {
		t.Fatalf("something was written outside: %v", entries)
	}
	assertNoFile(t, filepath.Join(filepath.Dir(src), "escaped"))
}

// TestApply_WriteBeneathExistingSymlinkIsRefused: the target itself has a symlink
// to a directory outside; a safe-looking patch writing beneath it must not follow it.
func TestApply_WriteBeneathExistingSymlinkIsRefused(t *testing.T) {
	ctx := testCtx(t)
	src := newSourceRepo(t)
	outside := t.TempDir()
	if err := os.Symlink(outside, filepath.Join(src, "linkdir")); err != nil {
		t.Fatal(err)
	}
	testGit(t, src, "add", "linkdir")
	testGit(t, src, "commit", "--quiet", "-m", "link")
	patch := newFilePatch("linkdir/planted", "x")
	if err := CheckPatch([]byte(patch)); err != nil {
		t.Fatalf("CheckPatch cannot know the target: %v", err)
	}
	for range 2 {
		_, err := Apply(ctx, ApplySpec{Target: src, Patch: []byte(patch)})
		var unsafe *UnsafePatchError
		if !errors.As(err, &unsafe) || unsafe.Path != "linkdir/planted" {
			t.Fatalf("apply = %v, want unsafe linkdir/planted", err)
		}
	}
	entries, _ := os.ReadDir(outside)
	if len(entries) != 0 {
		t.Fatalf("written through the symlink: %v", entries)
	}
}

func TestApply_BranchModeConflictsWithAnExistingBranch(t *testing.T) {
	ctx := testCtx(t)
	src := newSourceRepo(t)
	testGit(t, src, "commit", "--quiet", "--allow-empty", "-m", "second") // the base has history
	ws, d := agentDiff(t, src, func(w string) { writeFile(t, filepath.Join(w, "n.txt"), "n\n", 0o644) })
	target := cloneRepo(t, src)
	branch := BranchName(ws.TaskID)
	testGit(t, target, "branch", branch)
	spec := ApplySpec{Target: target, Patch: d.Patch, Mode: Branch, Branch: branch,
		BaseCommit: d.BaseCommit, ResultCommit: d.ResultCommit, SourceGitDir: ws.GitDir}
	res, err := Apply(ctx, spec)
	var exists *BranchExistsError
	if !errors.As(err, &exists) || !errors.Is(err, ErrBranchExists) || exists.Branch != branch || exists.CheckedOut ||
		exists.At != testGit(t, target, "rev-parse", "HEAD") || !strings.Contains(err.Error(), "already exists") {
		t.Fatalf("apply = %+v, %v; want a BranchExistsError naming %s", res, err, branch)
	}
	if got := testGit(t, target, "rev-parse", branch); got != testGit(t, target, "rev-parse", "HEAD") {
		t.Fatal("existing branch moved")
	}

	// Checked out (even unborn) branch: refuse rather than move HEAD's branch.
	testGit(t, target, "branch", "-D", branch)
	testGit(t, target, "checkout", "--quiet", "--orphan", branch)
	if res, err := Apply(ctx, spec); !errors.As(err, &exists) || !exists.CheckedOut || exists.Branch != branch {
		t.Fatalf("checked-out branch: %+v, %v", res, err)
	}

	// A target that does not hold the base's history cannot get base + change.
	unrelated := t.TempDir()
	testGit(t, unrelated, "init", "--quiet")
	testGit(t, unrelated, "commit", "--quiet", "--allow-empty", "-m", "other")
	spec.Target = unrelated
	if _, err := Apply(ctx, spec); !errors.Is(err, ErrBaseNotInTarget) {
		t.Fatalf("unrelated target: %v", err)
	}
	// A result that is not a child of the base is refused.
	spec.Target, spec.BaseCommit = target, d.ResultCommit
	if _, err := Apply(ctx, spec); !errors.Is(err, ErrInvalidSpec) {
		t.Fatalf("mismatched base: %v", err)
	}
	spec.BaseCommit, spec.Branch = d.BaseCommit, "-bad"
	if _, err := Apply(ctx, spec); !errors.Is(err, ErrInvalidRef) {
		t.Fatalf("bad branch name: %v", err)
	}
}

// TestApply_CommittedBaseBranchIntoBareRepository: a workspace prepared from a
// commit applies as a branch to a bare clone, whose history has the base.
func TestApply_CommittedBaseBranchIntoBareRepository(t *testing.T) {
	ctx := testCtx(t)
	src := newSourceRepo(t)
	ws := prepareWS(t, src, false)
	writeFile(t, filepath.Join(ws.WorkDir, "n.txt"), "n\n", 0o644)
	d := capture(t, ws, 1)
	bare := filepath.Join(t.TempDir(), "bare.git")
	testGit(t, filepath.Dir(bare), "clone", "--quiet", "--bare", src, bare)
	res, err := Apply(ctx, ApplySpec{Target: bare, Mode: Branch, Branch: BranchName(ws.TaskID),
		BaseCommit: d.BaseCommit, ResultCommit: d.ResultCommit, SourceGitDir: ws.GitDir})
	if err != nil || res.Outcome != Applied {
		t.Fatalf("apply = %+v, %v", res, err)
	}
	if got := testGit(t, bare, "rev-parse", BranchName(ws.TaskID)+"^"); got != testGit(t, src, "rev-parse", "HEAD") {
		t.Fatalf("branch parent %s", got)
	}
}

// TestApply_AsRootWritesAsTheTargetOwner: files and refs created in a user's
// repository belong to that user, not to root.
func TestApply_AsRootWritesAsTheTargetOwner(t *testing.T) {
	if os.Geteuid() != 0 {
		testutil.SkipOrFailInCI(t, "needs root (CI runs as root)")
	}
	ctx := testCtx(t)
	src := newSourceRepo(t)
	ws, d := agentDiff(t, src, func(w string) {
		writeFile(t, filepath.Join(w, "newdir", "n.txt"), "n\n", 0o644)
		replaceLine(t, filepath.Join(w, "a.txt"), "a line 2\n", "agent\n")
	})
	const uid = 65534
	target := cloneRepo(t, src)
	for p := target; p != "/"; p = filepath.Dir(p) {
		if strings.HasPrefix(p, os.TempDir()+"/") {
			if err := os.Chmod(p, 0o755); err != nil { // let the user reach its repository
				t.Fatal(err)
			}
		}
	}
	if err := chownTree(target, uid, uid); err != nil {
		t.Fatal(err)
	}
	if res, err := Apply(ctx, ApplySpec{Target: target, Patch: d.Patch, SourceGitDir: ws.GitDir}); err != nil || res.Outcome != Applied {
		t.Fatalf("worktree apply = %+v, %v", res, err)
	}
	branch := BranchName(ws.TaskID)
	if res, err := Apply(ctx, ApplySpec{Target: target, Mode: Branch, Branch: branch, BaseCommit: d.BaseCommit,
		ResultCommit: d.ResultCommit, SourceGitDir: ws.GitDir}); err != nil || res.Outcome != Applied {
		t.Fatalf("branch apply = %+v, %v", res, err)
	}
	err := filepath.Walk(target, func(p string, fi os.FileInfo, err error) error {
		if err != nil {
			return err
		}
		if st := fi.Sys().(*syscall.Stat_t); st.Uid != uid {
			t.Errorf("%s owned by uid %d", p, st.Uid)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
}

// TestApply_FinishesAnApplyInterruptedPartWay: a crash in the middle of git apply
// leaves some files written and others not; the retry completes the rest and the
// target ends exactly as the agent left its tree.
func TestApply_FinishesAnApplyInterruptedPartWay(t *testing.T) {
	ctx := testCtx(t)
	src := newSourceRepo(t)
	ws, d := agentDiff(t, src, func(w string) {
		replaceLine(t, filepath.Join(w, "a.txt"), "a line 4\n", "agent\n")
		writeFile(t, filepath.Join(w, "added.txt"), "agent\n", 0o644)
		replaceLine(t, filepath.Join(w, "b.txt"), "b line 4\n", "agent\n")
		if err := os.Remove(filepath.Join(w, "dir", "c.txt")); err != nil {
			t.Fatal(err)
		}
	})
	files, err := checkPatch(d.Patch, nil)
	if err != nil || len(files) != 4 {
		t.Fatalf("files %d, %v", len(files), err)
	}
	want := snapshotTree(t, ws.WorkDir)
	for cut := 1; cut < len(files); cut++ {
		target := cloneRepo(t, src)
		// The first `cut` files were written before the crash.
		if _, err := testutil.GitErr(target, joinSegments(d.Patch, files[:cut]), "apply"); err != nil {
			t.Fatalf("partial apply: %v", err)
		}
		for i, outcome := range []ApplyOutcome{Applied, AlreadyApplied} {
			res, err := Apply(ctx, ApplySpec{Target: target, Patch: d.Patch, SourceGitDir: ws.GitDir})
			if err != nil || res.Outcome != outcome || len(res.Files) != 4 {
				t.Fatalf("cut %d: apply #%d = %+v, %v; want %s", cut, i+1, res, err, outcome)
			}
		}
		if diff := diffTrees(want, snapshotTree(t, target)); diff != "" {
			t.Fatalf("cut %d: target differs:\n%s", cut, diff)
		}
	}
}

// TestApply_ParallelAppliesNeverLeaveTheTargetHalfApplied: diffs of several tasks
// applied at once to one work folder: the disjoint ones all apply, of the ones
// editing the same line exactly one does, and every file is either untouched or
// fully changed by one diff.
func TestApply_ParallelAppliesNeverLeaveTheTargetHalfApplied(t *testing.T) {
	ctx := testCtx(t)
	src := newSourceRepo(t)
	type job struct {
		d       *Diff
		ws      *Workspace
		overlap bool
	}
	var jobs []job
	for i := range 3 {
		ws, d := agentDiff(t, src, func(w string) {
			replaceLine(t, filepath.Join(w, "a.txt"), "a line 10\n", fmt.Sprintf("agent %d\n", i))
			replaceLine(t, filepath.Join(w, "b.txt"), "b line 10\n", fmt.Sprintf("agent %d\n", i))
		})
		jobs = append(jobs, job{d, ws, true})
	}
	for i := range 3 {
		ws, d := agentDiff(t, src, func(w string) {
			writeFile(t, filepath.Join(w, fmt.Sprintf("task%d", i), "out.txt"), "output\n", 0o644)
		})
		jobs = append(jobs, job{d, ws, false})
	}
	results := make([]ApplyResult, len(jobs))
	errs := make([]error, len(jobs))
	var wg sync.WaitGroup
	for i, j := range jobs {
		wg.Go(func() {
			results[i], errs[i] = Apply(ctx, ApplySpec{Target: src, Patch: j.d.Patch, SourceGitDir: j.ws.GitDir})
		})
	}
	wg.Wait()
	applied := 0
	for i, j := range jobs {
		if errs[i] != nil {
			t.Fatalf("apply %d: %v", i, errs[i])
		}
		switch {
		case !j.overlap && results[i].Outcome != Applied:
			t.Errorf("disjoint diff %d: %+v", i, results[i])
		case j.overlap && results[i].Outcome == Applied:
			applied++
		case j.overlap && (results[i].Outcome != Conflict || strings.Join(results[i].Files, ",") != "a.txt,b.txt"):
			t.Errorf("overlapping diff %d: %+v", i, results[i])
		}
	}
	if applied != 1 {
		t.Fatalf("%d overlapping diffs applied, want exactly 1", applied)
	}
	a, b := testutil.ReadFile(t, filepath.Join(src, "a.txt")), testutil.ReadFile(t, filepath.Join(src, "b.txt"))
	for i := range 3 {
		if strings.Contains(a, fmt.Sprintf("agent %d\n", i)) != strings.Contains(b, fmt.Sprintf("agent %d\n", i)) {
			t.Fatalf("half-applied diff %d:\n%s\n%s", i, a, b)
		}
	}
}

// TestSweepSharedScratch_RemovesOnlyThoseOfEndedProcesses: the per-process
// scratch repository outlives its process; the next process's first apply
// removes those whose process ended (procid), and no other folder.
func TestSweepSharedScratch_RemovesOnlyThoseOfEndedProcesses(t *testing.T) {
	if dir := os.Getenv("CP_TEST_SHARED_SCRATCH_IN"); dir != "" {
		// The child: make a shared scratch, as a server's first apply does, and end.
		if _, err := newSharedScratch(dir); err != nil {
			t.Fatal(err)
		}
		return
	}
	tmp := t.TempDir()
	child := exec.Command(os.Args[0], "-test.run=^TestSweepSharedScratch_RemovesOnlyThoseOfEndedProcesses$")
	child.Env = append(os.Environ(), "CP_TEST_SHARED_SCRATCH_IN="+tmp)
	if out, err := child.CombinedOutput(); err != nil {
		t.Fatalf("child: %v: %s", err, out)
	}
	ended, _ := filepath.Glob(filepath.Join(tmp, sharedScratchPrefix+"*"))
	if len(ended) != 1 {
		t.Fatalf("the child left %d shared scratch folders, want 1: %v", len(ended), ended)
	}
	unowned := filepath.Join(tmp, sharedScratchPrefix+"in-the-making")
	other := filepath.Join(tmp, "claude-parallel-apply-789")
	for _, d := range []string{unowned, other} {
		if err := os.MkdirAll(filepath.Join(d, "git", "objects"), 0o700); err != nil {
			t.Fatal(err)
		}
	}
	mine, err := newSharedScratch(tmp) // sweeps first
	if err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(ended[0]); !os.IsNotExist(err) {
		t.Errorf("the scratch of an ended process is still there: %v", err)
	}
	for _, d := range []string{unowned, other, mine.dir} {
		if _, err := os.Stat(d); err != nil {
			t.Errorf("%s was removed: %v", d, err)
		}
	}
	sweepSharedScratch(tmp)
	if _, err := os.Stat(filepath.Join(mine.gitDir, "HEAD")); err != nil {
		t.Errorf("a sweep removed the scratch of a running process: %v", err)
	}
}
