package workspace

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/claude-parallel/claude-parallel/test/testutil"
)

// changeKind is one way an agent can change a work tree.
type changeKind struct {
	name   string
	mutate func(t *testing.T, work string)
	// check inspects the captured per-file statistics.
	check func(t *testing.T, files []FileChange)
	// limit forces the patch over the size limit.
	limit int64
}

func fileByPath(t *testing.T, files []FileChange, p string) FileChange {
	t.Helper()
	for _, f := range files {
		if f.Path == p {
			return f
		}
	}
	t.Fatalf("no %s among %+v", p, files)
	return FileChange{}
}

var changeKinds = []changeKind{
	{
		name: "text edit",
		mutate: func(t *testing.T, w string) {
			writeFile(t, filepath.Join(w, "a.txt"), strings.Replace(testutil.Lines("a line", 20), "a line 7\n", "a line seven\n", 1), 0o644)
		},
		check: func(t *testing.T, files []FileChange) {
			f := fileByPath(t, files, "a.txt")
			if f.Status != StatusModified || f.Additions != 1 || f.Deletions != 1 || f.Binary {
				t.Errorf("a.txt: %+v", f)
			}
		},
	},
	{
		name:   "new file",
		mutate: func(t *testing.T, w string) { writeFile(t, filepath.Join(w, "new.txt"), "fresh\nfile\n", 0o644) },
		check: func(t *testing.T, files []FileChange) {
			f := fileByPath(t, files, "new.txt")
			if f.Status != StatusAdded || f.Additions != 2 || f.NewMode != "100644" || f.OldMode != "" {
				t.Errorf("new.txt: %+v", f)
			}
		},
	},
	{
		name: "deletion",
		mutate: func(t *testing.T, w string) {
			if err := os.Remove(filepath.Join(w, "b.txt")); err != nil {
				t.Fatal(err)
			}
		},
		check: func(t *testing.T, files []FileChange) {
			f := fileByPath(t, files, "b.txt")
			if f.Status != StatusDeleted || f.Deletions != 20 || f.NewMode != "" {
				t.Errorf("b.txt: %+v", f)
			}
		},
	},
	{
		name: "rename",
		mutate: func(t *testing.T, w string) {
			if err := os.Rename(filepath.Join(w, "b.txt"), filepath.Join(w, "dir", "renamed.txt")); err != nil {
				t.Fatal(err)
			}
		},
		check: func(t *testing.T, files []FileChange) {
			f := fileByPath(t, files, "dir/renamed.txt")
			if f.Status != StatusRenamed || f.OldPath != "b.txt" || len(files) != 1 {
				t.Errorf("rename: %+v", files)
			}
		},
	},
	{
		name: "binary file",
		mutate: func(t *testing.T, w string) {
			writeFile(t, filepath.Join(w, "bin.dat"), "\x00\x01\x02changed\x00\xfe\xfd", 0o644)
			writeFile(t, filepath.Join(w, "image.bin"), string([]byte{0x89, 'P', 'N', 'G', 0, 0, 0, 13, 0xff}), 0o644)
		},
		check: func(t *testing.T, files []FileChange) {
			for _, p := range []string{"bin.dat", "image.bin"} {
				if f := fileByPath(t, files, p); !f.Binary || f.Additions != 0 {
					t.Errorf("%s: %+v", p, f)
				}
			}
		},
	},
	{
		name: "mode change",
		mutate: func(t *testing.T, w string) {
			if err := os.Chmod(filepath.Join(w, "script.sh"), 0o755); err != nil {
				t.Fatal(err)
			}
		},
		check: func(t *testing.T, files []FileChange) {
			f := fileByPath(t, files, "script.sh")
			if f.Status != StatusModeChanged || f.OldMode != "100644" || f.NewMode != "100755" {
				t.Errorf("script.sh: %+v", f)
			}
		},
	},
	{
		name: "file in a new folder",
		mutate: func(t *testing.T, w string) {
			writeFile(t, filepath.Join(w, "deep", "new", "folder", "f.go"), "package f\n", 0o644)
		},
		check: func(t *testing.T, files []FileChange) {
			if f := fileByPath(t, files, "deep/new/folder/f.go"); f.Status != StatusAdded {
				t.Errorf("f.go: %+v", f)
			}
		},
	},
	{
		name: "symlink inside the tree",
		mutate: func(t *testing.T, w string) {
			if err := os.Symlink("a.txt", filepath.Join(w, "link-to-a")); err != nil {
				t.Fatal(err)
			}
			if err := os.Symlink("../a.txt", filepath.Join(w, "dir", "up-link")); err != nil {
				t.Fatal(err)
			}
		},
		check: func(t *testing.T, files []FileChange) {
			for _, p := range []string{"link-to-a", "dir/up-link"} {
				if f := fileByPath(t, files, p); f.Status != StatusAdded || f.NewMode != "120000" {
					t.Errorf("%s: %+v", p, f)
				}
			}
		},
	},
	{
		name: "huge file over the limit",
		mutate: func(t *testing.T, w string) {
			writeFile(t, filepath.Join(w, "huge.txt"), strings.Repeat("0123456789abcdef\n", 8192), 0o644)
		},
		limit: 32 << 10,
	},
}

// TestChangeKinds_CaptureAndApplyBothModes captures each kind of change and applies
// it to fresh clones of the source in both modes: the result must be exactly what the
// agent left, and a second apply must be recognised as done.
func TestChangeKinds_CaptureAndApplyBothModes(t *testing.T) {
	for _, kind := range changeKinds {
		t.Run(kind.name, func(t *testing.T) {
			ctx := testCtx(t)
			src := newSourceRepo(t)
			ws := prepareWS(t, src, true)
			kind.mutate(t, ws.WorkDir)
			want := snapshotTree(t, ws.WorkDir)

			opts := CaptureOptions{RunNumber: 1, MaxPatchBytes: kind.limit}
			d, err := CaptureDiff(ctx, ws, opts)
			if kind.limit > 0 {
				if !errors.Is(err, ErrPatchTooLarge) || d == nil || d.Patch != nil || d.Size <= kind.limit {
					t.Fatalf("CaptureDiff over the limit = %+v, %v; want ErrPatchTooLarge with sizes", d, err)
				}
				if !strings.Contains(err.Error(), "limit") {
					t.Errorf("error %q does not give the limit", err)
				}
			} else if err != nil {
				t.Fatalf("CaptureDiff: %v", err)
			} else {
				kind.check(t, d.Files)
				if err := CheckPatch(d.Patch); err != nil {
					t.Fatalf("CheckPatch of a captured diff: %v", err)
				}
			}
			// The commit is kept either way, under the run's hidden ref.
			if got := testGit(t, ws.GitDir, "--git-dir="+ws.GitDir, "rev-parse", d.Ref); got != d.ResultCommit {
				t.Fatalf("%s = %s, want %s", d.Ref, got, d.ResultCommit)
			}
			again, err := CaptureDiff(ctx, ws, opts)
			if (err == nil) != (kind.limit == 0) || again.ResultCommit != d.ResultCommit || again.SHA256 != d.SHA256 || string(again.Patch) != string(d.Patch) {
				t.Fatalf("second capture differs: %s/%s vs %s/%s", again.ResultCommit, again.SHA256, d.ResultCommit, d.SHA256)
			}

			if d.Patch != nil {
				target := cloneRepo(t, src)
				for i, wantOutcome := range []ApplyOutcome{Applied, AlreadyApplied} {
					res, err := Apply(ctx, ApplySpec{Target: target, Patch: d.Patch, Mode: Worktree,
						BaseCommit: d.BaseCommit, ResultCommit: d.ResultCommit, SourceGitDir: ws.GitDir})
					if err != nil || res.Outcome != wantOutcome {
						t.Fatalf("worktree apply #%d = %+v, %v; want %s", i+1, res, err, wantOutcome)
					}
					if diff := diffTrees(want, snapshotTree(t, target)); diff != "" {
						t.Fatalf("worktree apply #%d: target differs from the agent's tree:\n%s", i+1, diff)
					}
				}
			}

			target := cloneRepo(t, src)
			head := testGit(t, target, "rev-parse", "HEAD")
			before := snapshotTree(t, target)
			branch := BranchName(ws.TaskID)
			for i, wantOutcome := range []ApplyOutcome{Applied, AlreadyApplied} {
				res, err := Apply(ctx, ApplySpec{Target: target, Patch: d.Patch, Mode: Branch, Branch: branch,
					BaseCommit: d.BaseCommit, ResultCommit: d.ResultCommit, SourceGitDir: ws.GitDir})
				if err != nil || res.Outcome != wantOutcome || res.Branch != branch {
					t.Fatalf("branch apply #%d = %+v, %v; want %s", i+1, res, err, wantOutcome)
				}
			}
			gotTree := testGit(t, target, "ls-tree", "-r", "--full-tree", "refs/heads/"+branch)
			wantTree := testGit(t, ws.GitDir, "--git-dir="+ws.GitDir, "ls-tree", "-r", "--full-tree", d.ResultCommit)
			if gotTree != wantTree {
				t.Fatalf("branch tree:\n%s\nwant:\n%s", gotTree, wantTree)
			}
			if got := testGit(t, target, "rev-parse", "HEAD"); got != head {
				t.Errorf("HEAD moved to %s", got)
			}
			if got := testGit(t, target, "symbolic-ref", "HEAD"); got != "refs/heads/main" {
				t.Errorf("current branch is %s", got)
			}
			if diff := diffTrees(before, snapshotTree(t, target)); diff != "" {
				t.Errorf("branch mode touched the working tree:\n%s", diff)
			}
			if st := testGit(t, target, "status", "--porcelain"); st != "" {
				t.Errorf("branch mode left status %q", st)
			}
			testGit(t, target, "fsck", "--no-progress", "--connectivity-only")
		})
	}
}
