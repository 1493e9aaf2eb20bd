package service

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/claude-parallel/claude-parallel/test/testutil"
)

// A work folder checked once is answered from memory while nothing it
// depends on changed, and checked in full again as soon as something did:
// the folder swapped for a symlink out of the allowed roots, the repository
// removed, a work tree configured elsewhere, a repository made between the
// folder and the old top.
func TestResolveRepoDir_RememberedAnswerFollowsTheFileSystem(t *testing.T) {
	ctx := context.Background()
	base, err := filepath.EvalSymlinks(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	root := filepath.Join(base, "root")
	outside := filepath.Join(base, "outside")
	roots := []string{root}
	repo := filepath.Join(root, "repo")
	testutil.NewRepo(t, repo, map[string]string{"sub/deep/f.txt": "x\n"})
	testutil.NewRepo(t, outside, map[string]string{"o.txt": "o\n"})
	deep := filepath.Join(repo, "sub", "deep")

	resolve := func(p string) (string, string) {
		t.Helper()
		real, ierr := resolveRepoDir(ctx, "workFolder", p, roots)
		if ierr != nil {
			return "", ierr.Error()
		}
		return real, ""
	}
	remembered := func(p string) bool {
		_, ok := folderChecks.lookup(p, roots, time.Now())
		return ok
	}

	if real, msg := resolve(deep); real != deep {
		t.Fatalf("first check: %q %s", real, msg)
	}
	if !remembered(deep) {
		t.Fatal("a plain work folder was not remembered")
	}
	if real, msg := resolve(deep); real != deep {
		t.Fatalf("remembered check: %q %s", real, msg)
	}
	if _, ok := folderChecks.lookup(deep, []string{base}, time.Now()); ok {
		t.Fatal("an answer was reused under other allowed roots")
	}
	if _, ok := folderChecks.lookup(deep, roots, time.Now().Add(folderCheckTTL+time.Second)); ok {
		t.Fatal("an answer was reused past its time")
	}

	// A repository made between the folder and the old top: sub's mtime moves.
	testutil.Git(t, filepath.Join(repo, "sub"), "init", "-q")
	if remembered(deep) {
		t.Fatal("remembered across a repository made on the way up")
	}
	if real, msg := resolve(deep); real != deep {
		t.Fatalf("after a nested repository: %q %s", real, msg)
	}
	if err := os.RemoveAll(filepath.Join(repo, "sub", ".git")); err != nil {
		t.Fatal(err)
	}

	// A work tree configured elsewhere, outside the roots: only git can tell.
	if real, msg := resolve(repo); real != repo {
		t.Fatalf("repo: %q %s", real, msg)
	}
	testutil.Git(t, repo, "config", "core.worktree", outside)
	if _, msg := resolve(repo); !strings.Contains(msg, "outside the allowed roots") {
		t.Fatalf("core.worktree outside the roots was accepted from memory: %q", msg)
	}
	testutil.Git(t, repo, "config", "--unset", "core.worktree")
	if real, msg := resolve(repo); real != repo {
		t.Fatalf("repo again: %q %s", real, msg)
	}

	// The folder swapped for a symlink out of the allowed roots.
	link := filepath.Join(root, "link")
	if err := os.Symlink(repo, link); err != nil {
		t.Fatal(err)
	}
	if real, msg := resolve(link); real != repo {
		t.Fatalf("link: %q %s", real, msg)
	}
	if err := os.Remove(link); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink(outside, link); err != nil {
		t.Fatal(err)
	}
	if _, msg := resolve(link); !strings.Contains(msg, "outside the allowed roots") {
		t.Fatalf("a retargeted symlink was accepted from memory: %q", msg)
	}

	// The repository removed.
	if err := os.RemoveAll(filepath.Join(repo, ".git")); err != nil {
		t.Fatal(err)
	}
	if _, msg := resolve(deep); !strings.Contains(msg, "not inside a git work tree") {
		t.Fatalf("a folder whose repository is gone was accepted: %q", msg)
	}
}
