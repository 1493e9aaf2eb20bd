package workspace

import (
	"fmt"
	"os"
	"path/filepath"
	"testing"

	"github.com/claude-parallel/claude-parallel/test/testutil"
)

// A snapshot of a work folder of several hundred files in nested folders,
// copied by several workers, is the work folder exactly (modes and symlinks
// included), and a tracked folder the user replaced by a symlink leading out
// of the tree is copied as that symlink, never read through.
func TestPrepare_SnapshotCopiesManyFilesExactlyAndNotThroughSymlinks(t *testing.T) {
	src := newSourceRepo(t)
	for i := range 600 {
		p := filepath.Join(src, fmt.Sprintf("p%02d", i%30), fmt.Sprintf("q%d", i%7), fmt.Sprintf("f%04d", i))
		mode := os.FileMode(0o644)
		if i%11 == 0 {
			mode = 0o755
		}
		writeFile(t, p, fmt.Sprintf("file %d\n", i), mode)
	}
	if err := os.Symlink("../a.txt", filepath.Join(src, "p01", "link")); err != nil {
		t.Fatal(err)
	}
	writeFile(t, filepath.Join(src, "linked", "x.txt"), "tracked\n", 0o644)
	testGit(t, src, "add", "-A")
	testGit(t, src, "commit", "--quiet", "-m", "many files")
	// Uncommitted: the folder becomes a symlink to a folder outside holding
	// a file of the same name; and an untracked file.
	outside := t.TempDir()
	writeFile(t, filepath.Join(outside, "x.txt"), "secret\n", 0o644)
	if err := os.RemoveAll(filepath.Join(src, "linked")); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink(outside, filepath.Join(src, "linked")); err != nil {
		t.Fatal(err)
	}
	writeFile(t, filepath.Join(src, "p05", "untracked.txt"), "untracked\n", 0o644)

	ws := prepareWS(t, src, true)
	want := snapshotTree(t, src)
	if diff := diffTrees(want, snapshotTree(t, ws.WorkDir)); diff != "" {
		t.Fatalf("snapshot differs from the work folder:\n%s", diff)
	}
	if fi, err := os.Lstat(filepath.Join(ws.WorkDir, "linked")); err != nil || fi.Mode()&os.ModeSymlink == 0 {
		t.Fatalf("linked: %v, %v; want the symlink", fi, err)
	}
	// The capture index describes the copy with valid stat data: git finds
	// every file up to date without hashing it again.
	g := ws.git().with("GIT_INDEX_FILE=" + filepath.Join(ws.GitDir, captureIndex))
	if out, err := g.runText(testCtx(t), nil, "diff-files", "--name-only"); err != nil || out != "" {
		t.Fatalf("diff-files on the capture index: %q, %v; want nothing changed", out, err)
	}
	if out, err := g.runText(testCtx(t), nil, "diff-index", "--cached", "--name-only", ws.BaseCommit); err != nil || out != "" {
		t.Fatalf("capture index differs from the base: %q, %v", out, err)
	}
	// The base records the same: the symlink, not the file behind it.
	got := testGit(t, ws.GitDir, "--git-dir="+ws.GitDir, "ls-tree", ws.BaseCommit, "linked")
	if want := "120000 blob"; len(got) < len(want) || got[:len(want)] != want {
		t.Fatalf("base has %q at linked, want a symlink", got)
	}
}

// A snapshot handed over to the container's user (a server running as root)
// changed every copy's owner and ctime after it was copied: the capture index
// still holds their current stat data, so the first capture hashes nothing.
func TestPrepare_SnapshotHandedOverKeepsValidStatData(t *testing.T) {
	if os.Geteuid() != 0 {
		testutil.SkipOrFailInCI(t, "needs root to chown (CI runs as root)")
	}
	ws, err := Prepare(testCtx(t), PrepareSpec{TaskID: nextTaskID(), WorkFolder: newSourceRepo(t), IncludeUncommitted: true,
		Root: t.TempDir(), UID: 10001, GID: 10001})
	if err != nil {
		t.Fatal(err)
	}
	g := ws.git().with("GIT_INDEX_FILE=" + filepath.Join(ws.GitDir, captureIndex))
	if out, err := g.runText(testCtx(t), nil, "diff-files", "--name-only"); err != nil || out != "" {
		t.Fatalf("diff-files on the capture index: %q, %v; want nothing changed", out, err)
	}
}
