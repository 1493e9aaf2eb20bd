package workspace

import (
	"io/fs"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/claude-parallel/claude-parallel/test/testutil"
)

// backdate moves every file's mtime under dir an hour back and brings the
// capture index's stat data up to date, so no entry is racily clean (written
// in the same second as the index), as in any workspace older than a second.
func backdate(t *testing.T, ws *Workspace) {
	t.Helper()
	old := time.Now().Add(-time.Hour)
	err := filepath.WalkDir(ws.WorkDir, func(p string, d fs.DirEntry, err error) error {
		if err != nil || d.Type()&fs.ModeSymlink != 0 {
			return err
		}
		return os.Chtimes(p, old, old)
	})
	if err != nil {
		t.Fatal(err)
	}
	if err := ws.refresh(testCtx(t)); err != nil {
		t.Fatal(err)
	}
}

// A capture leaves the capture index as it found it, holding base's tree: it
// stages in a temporary index linked to it, so the 24 MB a large repository's
// index weighs are neither reset to base (read back and written again) nor
// replaced by the staged index at every capture. Before, each capture renamed
// its staged index over the kept one, and the next had to reset it.
func TestCaptureDiff_KeepsTheCaptureIndexAtBase(t *testing.T) {
	ctx := testCtx(t)
	for _, snapshot := range []bool{false, true} {
		ws := prepareWS(t, newSourceRepo(t), snapshot)
		backdate(t, ws)
		idx := filepath.Join(ws.GitDir, captureIndex)
		baseTree := treeOf(ctx, ws.git(), ws.BaseCommit)
		st, err := readIndexState(idx, len(baseTree)/2)
		if err != nil || st.tree != baseTree || st.racy != 0 {
			t.Fatalf("snapshot %v: capture index %+v, %v; want tree %s and nothing racy", snapshot, st, err, baseTree)
		}
		before, err := os.Stat(idx)
		if err != nil {
			t.Fatal(err)
		}
		for run, content := range []string{"run 1\n", "run 2\n"} {
			writeFile(t, filepath.Join(ws.WorkDir, "a.txt"), content, 0o644)
			writeFile(t, filepath.Join(ws.WorkDir, "new.txt"), content, 0o644)
			d := capture(t, ws, run+1)
			if got := capturedPaths(d); len(got) != 2 || got[0] != "added new.txt" || got[1] != "modified a.txt" {
				t.Fatalf("snapshot %v run %d captured %v", snapshot, run+1, got)
			}
			after, err := os.Stat(idx)
			if err != nil {
				t.Fatal(err)
			}
			if !os.SameFile(before, after) || !after.ModTime().Equal(before.ModTime()) {
				t.Fatalf("snapshot %v run %d: the capture index was written again", snapshot, run+1)
			}
		}
		if tmp, _ := filepath.Glob(idx + ".tmp-*"); len(tmp) != 0 {
			t.Fatalf("temporary indexes left: %v", tmp)
		}
	}
}

// A capture index holding another tree than base (kept by a capture before
// this scheme, or a copy-on-write base's when the source changed since) is
// reset to base once, keeping its stat data, and kept that way; the capture
// is the same as from a fresh index.
func TestCaptureDiff_ResetsAnIndexNotAtBase(t *testing.T) {
	ctx := testCtx(t)
	ws := prepareWS(t, newSourceRepo(t), false)
	backdate(t, ws)
	writeFile(t, filepath.Join(ws.WorkDir, "a.txt"), "run 1\n", 0o644)
	first := capture(t, ws, 1)
	idx := filepath.Join(ws.GitDir, captureIndex)
	// The index the old scheme kept: the capture's result, with stat data.
	g := ws.git().with("GIT_INDEX_FILE=" + idx)
	if _, err := g.run(ctx, nil, "read-tree", "-m", "-i", "--end-of-options", first.ResultCommit); err != nil {
		t.Fatal(err)
	}
	if _, err := g.run(ctx, nil, "update-index", "-q", "--refresh"); err != nil && exitCode(err) != 1 {
		t.Fatal(err)
	}
	baseTree := treeOf(ctx, ws.git(), ws.BaseCommit)
	if st, err := readIndexState(idx, len(baseTree)/2); err != nil || st.tree == baseTree || st.tree == "" {
		t.Fatalf("set-up: index %+v, %v; want the result's tree", st, err)
	}
	writeFile(t, filepath.Join(ws.WorkDir, "b.txt"), "run 2\n", 0o644)
	d := capture(t, ws, 2)
	if got := capturedPaths(d); len(got) != 2 || got[0] != "modified a.txt" || got[1] != "modified b.txt" {
		t.Fatalf("run 2 captured %v", got)
	}
	if st, err := readIndexState(idx, len(baseTree)/2); err != nil || st.tree != baseTree {
		t.Fatalf("after run 2: index %+v, %v; want base's tree %s kept", st, err, baseTree)
	}
}

// readIndexState reads what git writes: index versions 2, 3 (an entry with
// extended flags) and 4, a cache-tree whose root is valid or not, entries
// written in the same second as the index (racily clean).
func TestReadIndexState(t *testing.T) {
	repo := newSourceRepo(t)
	tree := testGit(t, repo, "rev-parse", "HEAD^{tree}")
	idx := filepath.Join(repo, ".git", "index")
	git := func(args ...string) { testutil.GitRunner{Env: []string{"GIT_INDEX_FILE=" + idx}}.Run(t, repo, args...) }
	check := func(what, wantTree string, wantEntries int) {
		t.Helper()
		st, err := readIndexState(idx, len(tree)/2)
		if err != nil || st.tree != wantTree || st.entries != wantEntries {
			t.Fatalf("%s: %+v, %v; want tree %q, %d entries", what, st, err, wantTree, wantEntries)
		}
	}
	git("read-tree", "HEAD")
	check("version 2", tree, 6)
	git("update-index", "--skip-worktree", "a.txt")
	check("version 3, the flag change invalidates the root", "", 6)
	git("write-tree")
	check("version 3", tree, 6)
	git("update-index", "--no-skip-worktree", "a.txt")
	git("update-index", "--index-version", "4")
	git("write-tree")
	check("version 4", tree, 6)
	writeFile(t, filepath.Join(repo, "more.txt"), "more\n", 0o644)
	git("update-index", "--add", "more.txt")
	check("root invalid", "", 7)
	git("write-tree")
	st, err := readIndexState(idx, len(tree)/2)
	if err != nil || st.tree == "" || st.tree == tree {
		t.Fatalf("after write-tree: %+v, %v", st, err)
	}

	// Racily clean: an entry's recorded mtime is not older than the index.
	git("update-index", "--index-version", "2")
	now := time.Now()
	if err := os.Chtimes(filepath.Join(repo, "more.txt"), now, now); err != nil {
		t.Fatal(err)
	}
	git("update-index", "--add", "more.txt")
	if err := os.Chtimes(idx, now, now); err != nil {
		t.Fatal(err)
	}
	if st, err := readIndexState(idx, len(tree)/2); err != nil || st.racy != 1 {
		t.Fatalf("racy entry not seen: %+v, %v; want 1", st, err)
	}
	later := now.Add(time.Hour)
	if err := os.Chtimes(idx, later, later); err != nil {
		t.Fatal(err)
	}
	if st, err := readIndexState(idx, len(tree)/2); err != nil || st.racy != 0 {
		t.Fatalf("index newer than every entry: %+v, %v; want nothing racy", st, err)
	}
}
