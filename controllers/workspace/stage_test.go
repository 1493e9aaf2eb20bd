package workspace

import (
	"context"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"syscall"
	"testing"
	"time"
)

// blockingRepository makes dir look like a repository to git (objects/ and
// refs/ in dir/.git) whose HEAD is a FIFO: git, asking whether dir is an
// embedded repository or which commit a submodule there is at, opens HEAD and
// waits for a writer for ever.
func blockingRepository(t *testing.T, dir string) {
	t.Helper()
	for _, d := range []string{"objects", "refs"} {
		if err := os.MkdirAll(filepath.Join(dir, ".git", d), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	if err := syscall.Mkfifo(filepath.Join(dir, ".git", "HEAD"), 0o644); err != nil {
		t.Fatal(err)
	}
}

func capturedPaths(d *Diff) []string {
	var paths []string
	for _, f := range d.Files {
		paths = append(paths, string(f.Status)+" "+f.Path)
	}
	sort.Strings(paths)
	return paths
}

// The agent nests repositories whose HEAD is a FIFO: in a new folder, and
// where base had a file. Git is never asked about them (it would block), and
// their files are captured with the ignore rules applied, as elsewhere.
func TestCaptureDiff_NestedRepositoriesAreWalkedNotAskedAbout(t *testing.T) {
	ws := prepareWS(t, newSourceRepo(t), true)
	w := ws.WorkDir
	blockingRepository(t, filepath.Join(w, "sub"))
	writeFile(t, filepath.Join(w, "sub", "file.txt"), "in a nested repository\n", 0o644)
	writeFile(t, filepath.Join(w, "sub", ".gitignore"), "*.o\n", 0o644)
	writeFile(t, filepath.Join(w, "sub", "x.o"), "ignored by sub/.gitignore\n", 0o644)
	writeFile(t, filepath.Join(w, "sub", "debug.log"), "ignored by the top .gitignore\n", 0o644)
	writeFile(t, filepath.Join(w, "sub", "deeper", "y.txt"), "deeper\n", 0o644)
	// Its name needs escaping in a gitignore pattern.
	blockingRepository(t, filepath.Join(w, "odd [1]*?! #\\"))
	writeFile(t, filepath.Join(w, "odd [1]*?! #\\", "f.txt"), "oddly placed\n", 0o644)
	// A tracked file becomes such a directory.
	if err := os.Remove(filepath.Join(w, "dir", "c.txt")); err != nil {
		t.Fatal(err)
	}
	blockingRepository(t, filepath.Join(w, "dir", "c.txt"))
	writeFile(t, filepath.Join(w, "dir", "c.txt", "inner.txt"), "inner\n", 0o644)
	// And an ignored directory holds one: still ignored.
	blockingRepository(t, filepath.Join(w, "build", "lib"))
	writeFile(t, filepath.Join(w, "build", "lib", "z.txt"), "ignored\n", 0o644)

	limit := maxExcludeArgBytes
	t.Cleanup(func() { maxExcludeArgBytes = limit })
	for run := 1; run <= 3; run++ {
		if run == 3 {
			// Too many nested repositories to name to git: the whole tree is
			// walked the slow way, with the same outcome.
			maxExcludeArgBytes = 0
		}
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		d, err := CaptureDiff(ctx, ws, CaptureOptions{RunNumber: run})
		cancel()
		if err != nil {
			t.Fatalf("run %d: CaptureDiff: %v", run, err)
		}
		want := []string{"added dir/c.txt/inner.txt", "added sub/.gitignore", "added sub/deeper/y.txt",
			"added sub/file.txt", "deleted dir/c.txt", `added odd [1]*?! #\/f.txt`}
		sort.Strings(want)
		if got := capturedPaths(d); strings.Join(got, ",") != strings.Join(want, ",") {
			t.Fatalf("run %d: captured %v, want %v", run, got, want)
		}
	}
}

// A submodule entry of base is kept as base has it, whatever its directory
// holds (here a repository whose HEAD would block git) or if it is gone.
func TestCaptureDiff_KeepsSubmoduleEntriesWithoutLookingIntoThem(t *testing.T) {
	src := newSourceRepo(t)
	sub := testGit(t, src, "rev-parse", "HEAD") // any commit will do as the submodule's
	testGit(t, src, "update-index", "--add", "--cacheinfo", "160000,"+sub+",mod")
	testGit(t, src, "update-index", "--add", "--cacheinfo", "160000,"+sub+",gone/mod")
	testGit(t, src, "commit", "--quiet", "-m", "submodules")
	for _, snapshot := range []bool{false, true} {
		ws := prepareWS(t, src, snapshot)
		w := ws.WorkDir
		blockingRepository(t, filepath.Join(w, "mod"))
		writeFile(t, filepath.Join(w, "mod", "x.txt"), "the submodule's business\n", 0o644)
		_ = os.RemoveAll(filepath.Join(w, "gone"))
		writeFile(t, filepath.Join(w, "a.txt"), "changed\n", 0o644)

		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		d, err := CaptureDiff(ctx, ws, CaptureOptions{RunNumber: 1})
		cancel()
		if err != nil {
			t.Fatalf("snapshot=%v: CaptureDiff: %v", snapshot, err)
		}
		if got := capturedPaths(d); strings.Join(got, ",") != "modified a.txt" {
			t.Fatalf("snapshot=%v: captured %v, want a.txt only", snapshot, got)
		}
		for _, p := range []string{"mod", "gone/mod"} {
			if got := testGit(t, ws.GitDir, "--git-dir="+ws.GitDir, "ls-tree", d.ResultCommit, p); !strings.HasPrefix(got, "160000 commit "+sub) {
				t.Errorf("snapshot=%v: result has %q at %s, want the submodule entry", snapshot, got, p)
			}
		}
	}
}

// Tracked files stay tracked in ignored places, changes to them are
// captured, and a revision's capture starts again from base: a file the
// previous run added and the agent now ignores is left out.
func TestCaptureDiff_TrackedIgnoredFilesAndRevisions(t *testing.T) {
	src := newSourceRepo(t)
	writeFile(t, filepath.Join(src, "build", "keep.txt"), "tracked in an ignored folder\n", 0o644)
	writeFile(t, filepath.Join(src, "kept.log"), "tracked, matches *.log\n", 0o644)
	testGit(t, src, "add", "--force", "build/keep.txt", "kept.log")
	testGit(t, src, "commit", "--quiet", "-m", "tracked but ignored")
	ws := prepareWS(t, src, false)
	w := ws.WorkDir
	writeFile(t, filepath.Join(w, "build", "keep.txt"), "changed\n", 0o644)
	writeFile(t, filepath.Join(w, "build", "new.txt"), "ignored\n", 0o644)
	if err := os.Remove(filepath.Join(w, "kept.log")); err != nil {
		t.Fatal(err)
	}
	writeFile(t, filepath.Join(w, "later.txt"), "added by run 1\n", 0o644)
	want := "added later.txt,deleted kept.log,modified build/keep.txt"
	if got := capturedPaths(capture(t, ws, 1)); strings.Join(got, ",") != want {
		t.Fatalf("run 1 captured %v, want %s", got, want)
	}
	// Run 2 (a revision): the agent ignores later.txt, restores kept.log.
	writeFile(t, filepath.Join(w, ".gitignore"), "*.log\nbuild/\nlater.txt\n", 0o644)
	writeFile(t, filepath.Join(w, "kept.log"), "tracked, matches *.log\n", 0o644)
	want = "modified .gitignore,modified build/keep.txt"
	if got := capturedPaths(capture(t, ws, 2)); strings.Join(got, ",") != want {
		t.Fatalf("run 2 captured %v, want %s", got, want)
	}
}

// A revision's capture starts from the index the previous capture kept, whose
// entries for what that run changed no longer match the work tree when the
// agent changed them again: the index is still reset to base with its stat
// data kept (read-tree -m refused such an index without -i, and the plain read
// that followed made every file be hashed again).
func TestCaptureDiff_RevisionKeepsTheIndexStatData(t *testing.T) {
	ctx := testCtx(t)
	ws := prepareWS(t, newSourceRepo(t), false)
	writeFile(t, filepath.Join(ws.WorkDir, "a.txt"), "run 1\n", 0o644)
	capture(t, ws, 1)
	writeFile(t, filepath.Join(ws.WorkDir, "a.txt"), "run 2\n", 0o644)

	tmp := filepath.Join(t.TempDir(), "index")
	b, err := os.ReadFile(filepath.Join(ws.GitDir, captureIndex))
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(tmp, b, 0o644); err != nil {
		t.Fatal(err)
	}
	kept, err := resetIndexToBase(ctx, ws.git().with("GIT_INDEX_FILE="+tmp), ws.BaseCommit)
	if err != nil || !kept {
		t.Fatalf("resetIndexToBase = %v, %v; want the stat data kept", kept, err)
	}
	if d := capture(t, ws, 2); len(d.Files) != 1 || d.Files[0].Path != "a.txt" {
		t.Fatalf("run 2 captured %+v, want a.txt", d.Files)
	}
}
