package service

import (
	"context"
	"os"
	"path/filepath"
	"slices"
	"testing"

	"github.com/claude-parallel/claude-parallel/test/testutil"
)

// The file-system discovery either agrees with git about a folder's work
// tree and git directories, or leaves the answer to git; and it answers by
// itself for the plain layouts task_worker meets every time.
func TestFastRepoDirs_AgreesWithGitOrDeclines(t *testing.T) {
	root, err := filepath.EvalSymlinks(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	plain := filepath.Join(root, "plain")
	testutil.NewRepo(t, plain, map[string]string{"sub/deep/f.txt": "x\n", "README.md": "hi\n"})
	nested := filepath.Join(plain, "sub", "inner")
	testutil.NewRepo(t, nested, map[string]string{"g.txt": "y\n"})
	linked := filepath.Join(root, "linked")
	testutil.Git(t, plain, "worktree", "add", "-q", linked)
	moved := filepath.Join(root, "moved")
	testutil.NewRepo(t, moved, map[string]string{"a": "a\n"})
	testutil.Git(t, moved, "config", "core.worktree", filepath.Join(root, "elsewhere"))
	if err := os.MkdirAll(filepath.Join(root, "elsewhere"), 0o755); err != nil {
		t.Fatal(err)
	}
	bare := filepath.Join(root, "bare.git")
	testutil.Git(t, root, "init", "-q", "--bare", bare)
	notRepo := filepath.Join(root, "not-a-repo")
	if err := os.MkdirAll(notRepo, 0o755); err != nil {
		t.Fatal(err)
	}

	for _, c := range []struct {
		dir      string
		wantFast bool
	}{
		{plain, true},
		{filepath.Join(plain, "sub", "deep"), true},
		{nested, true},
		{filepath.Join(plain, ".git"), false},
		{linked, false},
		{moved, false},
		{bare, false},
		{notRepo, false},
	} {
		top, dirs, fast := fastRepoDirs(c.dir)
		if fast != c.wantFast {
			t.Errorf("%s: fast %v, want %v", c.dir, fast, c.wantFast)
		}
		if !fast {
			continue
		}
		gitTop, err := gitTopLevel(context.Background(), c.dir)
		if err != nil {
			t.Fatalf("%s: git: %v", c.dir, err)
		}
		gitDirs, err := gitDirs(context.Background(), c.dir)
		if err != nil {
			t.Fatalf("%s: git: %v", c.dir, err)
		}
		if top != gitTop || !slices.Equal(dirs, gitDirs) {
			t.Errorf("%s: fast says %s %v, git says %s %v", c.dir, top, dirs, gitTop, gitDirs)
		}
	}
}
