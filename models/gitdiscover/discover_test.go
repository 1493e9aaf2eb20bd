package gitdiscover

import (
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/claude-parallel/claude-parallel/test/testutil"
)

// gitSays is git's own discovery for dir: the top of the work tree and the
// git directory, or ok false when git finds no work tree there.
func gitSays(t *testing.T, dir string) (top, gitDir string, ok bool) {
	t.Helper()
	cmd := exec.Command("git", "-c", "safe.directory=*", "rev-parse", "--path-format=absolute",
		"--show-toplevel", "--absolute-git-dir")
	cmd.Dir = dir
	cmd.Env = append(os.Environ(), "GIT_CONFIG_NOSYSTEM=1", "GIT_CONFIG_GLOBAL=/dev/null")
	out, err := cmd.Output()
	if err != nil {
		return "", "", false
	}
	lines := strings.Split(strings.TrimSpace(string(out)), "\n")
	if len(lines) != 2 {
		return "", "", false
	}
	return lines[0], lines[1], true
}

// PlainRepo either agrees with git about a folder's work tree and git
// directory, or leaves the answer to git; it answers by itself for the
// plain layouts task_worker and apply_changes meet every time, and declines
// the layouts where git's answer depends on more than a .git directory: a
// config that makes the repository bare (also by a bare key alone) or moves
// its work tree, a HEAD git would not take (git then looks further up), a
// linked worktree, a git directory itself.
func TestPlainRepo_AgreesWithGitOrDeclines(t *testing.T) {
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
	// A bare key with no value means true to git.
	bareKey := filepath.Join(root, "bare-key")
	testutil.NewRepo(t, bareKey, map[string]string{"a": "a\n"})
	appendFile(t, filepath.Join(bareKey, ".git", "config"), "[core]\n\tbare\n")
	// A .git whose HEAD git does not take, inside a plain repository: git
	// passes it by and answers the outer repository.
	badHead := filepath.Join(plain, "bad-head")
	testutil.NewRepo(t, badHead, map[string]string{"a": "a\n"})
	if err := os.WriteFile(filepath.Join(badHead, ".git", "HEAD"), []byte("garbage\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	// core.bare spelt out as false is plain.
	bareFalse := filepath.Join(root, "bare-false")
	testutil.NewRepo(t, bareFalse, map[string]string{"a": "a\n"})
	appendFile(t, filepath.Join(bareFalse, ".git", "config"), "[core]\n\tbare=false\n")

	for _, c := range []struct {
		dir      string
		wantFast bool
	}{
		{plain, true},
		{filepath.Join(plain, "sub", "deep"), true},
		{nested, true},
		{bareFalse, true},
		{filepath.Join(plain, ".git"), false},
		{linked, false},
		{moved, false},
		{bare, false},
		{notRepo, false},
		{bareKey, false},
		{badHead, false},
	} {
		top, gd, fast := PlainRepo(c.dir)
		if fast != c.wantFast {
			t.Errorf("%s: fast %v, want %v", c.dir, fast, c.wantFast)
		}
		if !fast {
			continue
		}
		gitTop, gitDir, ok := gitSays(t, c.dir)
		if !ok || top != gitTop || gd != gitDir {
			t.Errorf("%s: fast says %s %s, git says %s %s (ok %v)", c.dir, top, gd, gitTop, gitDir, ok)
		}
	}
}

func appendFile(t *testing.T, p, text string) {
	t.Helper()
	f, err := os.OpenFile(p, os.O_APPEND|os.O_WRONLY, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if _, err := f.WriteString(text); err != nil {
		t.Fatal(err)
	}
}

// Head reads HEAD as git resolves it — a branch as a loose ref or a line of
// packed-refs, a detached HEAD, an unborn branch ("") — or leaves it to git
// for what only git can resolve: a symbolic branch ref, another refs
// backend, a HEAD naming something outside refs/.
func TestHead_AgreesWithGitOrDeclines(t *testing.T) {
	root, err := filepath.EvalSymlinks(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	repo := func(name string) string {
		dir := filepath.Join(root, name)
		testutil.NewRepo(t, dir, map[string]string{"a.txt": "a\n"})
		return dir
	}
	loose := repo("loose")
	packed := repo("packed")
	testutil.Git(t, packed, "pack-refs", "--all")
	if _, err := os.Stat(filepath.Join(packed, ".git", "refs", "heads", currentBranch(t, packed))); err == nil {
		t.Fatal("the branch is still a loose ref after pack-refs: the case would not read packed-refs")
	}
	detached := repo("detached")
	testutil.Git(t, detached, "checkout", "-q", "--detach")
	unborn := filepath.Join(root, "unborn")
	testutil.Git(t, root, "init", "-q", unborn)
	unbornPacked := repo("unborn-packed")
	testutil.Git(t, unbornPacked, "pack-refs", "--all")
	testutil.Git(t, unbornPacked, "checkout", "-q", "--orphan", "fresh")
	symbolic := repo("symbolic")
	testutil.Git(t, symbolic, "symbolic-ref", "refs/heads/alias", "refs/heads/"+currentBranch(t, symbolic))
	testutil.Git(t, symbolic, "symbolic-ref", "HEAD", "refs/heads/alias")
	reftable := repo("reftable")
	appendFile(t, filepath.Join(reftable, ".git", "config"), "[extensions]\n\trefStorage = reftable\n")
	outside := repo("outside")
	if err := os.WriteFile(filepath.Join(outside, ".git", "HEAD"), []byte("ref: refs/../../config\n"), 0o644); err != nil {
		t.Fatal(err)
	}

	for _, c := range []struct {
		dir    string
		wantOK bool
	}{
		{loose, true},
		{packed, true},
		{detached, true},
		{unborn, true},
		{unbornPacked, true},
		{symbolic, false},
		{reftable, false},
		{outside, false},
	} {
		oid, ok := Head(filepath.Join(c.dir, ".git"))
		if ok != c.wantOK {
			t.Errorf("%s: ok %v, want %v", c.dir, ok, c.wantOK)
			continue
		}
		if !ok {
			continue
		}
		if want := gitHead(t, c.dir); oid != want {
			t.Errorf("%s: Head says %q, git says %q", c.dir, oid, want)
		}
	}
}

// gitHead is git's HEAD commit of the repository at dir, "" when unborn.
func gitHead(t *testing.T, dir string) string {
	t.Helper()
	cmd := exec.Command("git", "rev-parse", "--verify", "--quiet", "HEAD^{commit}")
	cmd.Dir = dir
	out, err := cmd.Output()
	if err != nil {
		var ee *exec.ExitError
		if errors.As(err, &ee) && ee.ExitCode() == 1 {
			return ""
		}
		t.Fatalf("git rev-parse in %s: %v", dir, err)
	}
	return strings.TrimSpace(string(out))
}

func currentBranch(t *testing.T, dir string) string {
	t.Helper()
	return strings.TrimSpace(testutil.Git(t, dir, "symbolic-ref", "--short", "HEAD"))
}
