package workspace

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/claude-parallel/claude-parallel/test/testutil"
)

// commitEvilAttributes commits attributes that select the evil filter, diff and
// merge drivers; clones inherit them.
func commitEvilAttributes(t *testing.T, repo string) {
	t.Helper()
	writeFile(t, filepath.Join(repo, ".gitattributes"), evilAttributes, 0o644)
	testGit(t, repo, "add", ".gitattributes")
	testGit(t, repo, "commit", "--quiet", "-m", "attributes")
}

// makeConfigHostile points every command hook of repo's own configuration at the
// canary.
func makeConfigHostile(t *testing.T, repo string, kit canaryKit) {
	t.Helper()
	f, err := os.OpenFile(filepath.Join(repo, ".git", "config"), os.O_APPEND|os.O_WRONLY, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if _, err := f.WriteString(kit.config()); err != nil {
		t.Fatal(err)
	}
}

// TestCanaryKit_FiresUnderPlainGit proves the kit would catch a command: plain git
// in such a repository runs it for each kind of call the package makes.
func TestCanaryKit_FiresUnderPlainGit(t *testing.T) {
	kit := newCanaryKit(t)
	repo := newSourceRepo(t)
	commitEvilAttributes(t, repo)
	makeConfigHostile(t, repo, kit)
	writeFile(t, filepath.Join(repo, "a.txt"), "changed\n", 0o644)
	for _, args := range [][]string{
		{"add", "a.txt"}, {"apply", "-"}, {"update-ref", "refs/heads/x", "HEAD"}, {"ls-files", "-o"}, {"diff", "HEAD~1"},
	} {
		// May fail: the canary is no real filter.
		_, _ = testutil.GitErr(repo, []byte(newFilePatch("planted.txt", "x")), args...)
		entries, _ := os.ReadDir(kit.dir)
		if len(entries) == 0 {
			t.Errorf("git %v did not fire the canary; the hostile tests would prove nothing", args)
		}
		for _, e := range entries {
			os.Remove(filepath.Join(kit.dir, e.Name()))
		}
	}
}

// TestHostileRepositories_RunNothingOnTheHost: a source work folder and apply targets
// whose .git/config sets core.fsmonitor, core.hooksPath, pagers, diff, merge and
// filter drivers to a command: preparing, capturing, and applying in both modes —
// directly, by three-way merge, and as a conflict — never runs it.
func TestHostileRepositories_RunNothingOnTheHost(t *testing.T) {
	ctx := testCtx(t)
	kit := newCanaryKit(t)
	src := newSourceRepo(t)
	commitEvilAttributes(t, src)
	makeConfigHostile(t, src, kit)
	writeFile(t, filepath.Join(src, "b.txt"), "uncommitted\n"+testutil.Lines("b line", 20), 0o644)
	if _, _, err := WorkFolderInfo(ctx, src); err != nil {
		t.Fatal(err)
	}

	for run := 1; run <= 2; run++ {
		ws := prepareWS(t, src, run == 1)
		replaceLine(t, filepath.Join(ws.WorkDir, "a.txt"), "a line 10\n", "agent\n")
		writeFile(t, filepath.Join(ws.WorkDir, "new.txt"), "new\n", 0o644)
		d := capture(t, ws, 1)

		// Directly onto a clean clone, then again (already applied).
		target := cloneRepo(t, src)
		makeConfigHostile(t, target, kit)
		if run == 1 {
			writeFile(t, filepath.Join(target, "b.txt"), testutil.ReadFile(t, filepath.Join(src, "b.txt")), 0o644)
		}
		for _, want := range []ApplyOutcome{Applied, AlreadyApplied} {
			res, err := Apply(ctx, ApplySpec{Target: target, Patch: d.Patch, SourceGitDir: ws.GitDir})
			if err != nil || res.Outcome != want {
				t.Fatalf("worktree apply = %+v, %v; want %s", res, err, want)
			}
		}
		// By three-way merge, and as a conflict.
		merge := cloneRepo(t, src)
		makeConfigHostile(t, merge, kit)
		replaceLine(t, filepath.Join(merge, "a.txt"), "a line 8\n", "local\n")
		if run == 1 {
			writeFile(t, filepath.Join(merge, "b.txt"), testutil.ReadFile(t, filepath.Join(src, "b.txt")), 0o644)
		}
		if res, err := Apply(ctx, ApplySpec{Target: merge, Patch: d.Patch, SourceGitDir: ws.GitDir}); err != nil || res.Outcome != Applied {
			t.Fatalf("three-way apply = %+v, %v", res, err)
		}
		replaceLine(t, filepath.Join(merge, "a.txt"), "agent\n", "clash\n")
		if err := os.Remove(filepath.Join(merge, "new.txt")); err != nil {
			t.Fatal(err)
		}
		if res, err := CheckApplies(ctx, merge, d.Patch); err != nil || res.Outcome != Conflict {
			t.Fatalf("conflicting check = %+v, %v", res, err)
		}
		// As a branch.
		res, err := Apply(ctx, ApplySpec{Target: target, Patch: d.Patch, Mode: Branch, Branch: BranchName(ws.TaskID),
			BaseCommit: d.BaseCommit, ResultCommit: d.ResultCommit, SourceGitDir: ws.GitDir})
		if err != nil || res.Outcome != Applied {
			t.Fatalf("branch apply = %+v, %v", res, err)
		}
	}
	kit.assertSilent(t)
	if strings.Contains(testutil.ReadFile(t, filepath.Join(src, ".git", "config")), "claude-parallel") {
		t.Error("the source config was modified")
	}
}
