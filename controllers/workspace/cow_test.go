package workspace

import (
	"bytes"
	"context"
	"errors"
	"os"
	"path/filepath"
	"syscall"
	"testing"

	"github.com/claude-parallel/claude-parallel/test/testutil"
)

// cowRoot is a workspace root whose overlay mounts are undone before the
// test's temporary folders are deleted (cleanups run last first).
func cowRoot(t *testing.T) string {
	t.Helper()
	root := filepath.Join(t.TempDir(), "workspaces")
	if ok, why := CopyOnWriteAvailable(root); !ok {
		testutil.SkipOrFailInCI(t, "overlay mounts unavailable: %s", why)
	}
	t.Cleanup(func() {
		if err := UnmountAll(root); err != nil {
			t.Errorf("UnmountAll: %v", err)
		}
	})
	return root
}

func prepareIn(t *testing.T, root, src string, snapshot, cow bool) *Workspace {
	t.Helper()
	return prepareWithin(t, testCtx(t), root, src, snapshot, cow)
}

// prepareWithin is prepareIn with its own deadline, for trees that take
// minutes to write on a loaded machine.
func prepareWithin(t *testing.T, ctx context.Context, root, src string, snapshot, cow bool) *Workspace {
	t.Helper()
	ws, err := Prepare(ctx, PrepareSpec{
		TaskID: nextTaskID(), WorkFolder: src, IncludeUncommitted: snapshot,
		Root: root, UID: -1, GID: -1, CopyOnWrite: cow,
	})
	if err != nil {
		t.Fatalf("Prepare (copy-on-write %v): %v", cow, err)
	}
	if mounted, err := isMountPoint(ws.WorkDir); err != nil || mounted != cow {
		t.Fatalf("work/ mounted = %v (%v), want %v", mounted, err, cow)
	}
	return ws
}

// The overlay workspace holds the same tree as a copy, and every kind of
// change captured through it gives the same patch, byte for byte.
func TestCopyOnWrite_SamePatchAsCopy(t *testing.T) {
	mutations := []struct {
		name string
		do   func(t *testing.T, work string)
	}{
		{"modify", func(t *testing.T, w string) { writeFile(t, filepath.Join(w, "a.txt"), "changed\n", 0o644) }},
		{"delete", func(t *testing.T, w string) { mustDo(t, os.Remove(filepath.Join(w, "b.txt"))) }},
		{"rename", func(t *testing.T, w string) {
			mustDo(t, os.Rename(filepath.Join(w, "dir", "c.txt"), filepath.Join(w, "dir", "d.txt")))
		}},
		{"mode", func(t *testing.T, w string) { mustDo(t, os.Chmod(filepath.Join(w, "a.txt"), 0o755)) }},
		{"new file", func(t *testing.T, w string) { writeFile(t, filepath.Join(w, "new", "x.txt"), "x\n", 0o755) }},
		{"ignored and new", func(t *testing.T, w string) {
			writeFile(t, filepath.Join(w, "x.log"), "ignored\n", 0o644)
			writeFile(t, filepath.Join(w, "build", "out"), "ignored\n", 0o644)
			writeFile(t, filepath.Join(w, "kept.txt"), "kept\n", 0o644)
		}},
		{"symlink", func(t *testing.T, w string) { mustDo(t, os.Symlink("a.txt", filepath.Join(w, "link"))) }},
		{"file to folder", func(t *testing.T, w string) {
			mustDo(t, os.Remove(filepath.Join(w, "a.txt")))
			writeFile(t, filepath.Join(w, "a.txt", "inner"), "in\n", 0o644)
		}},
		{"folder renamed", func(t *testing.T, w string) {
			mustDo(t, os.Rename(filepath.Join(w, "dir"), filepath.Join(w, "moved")))
		}},
		{"folder removed", func(t *testing.T, w string) { mustDo(t, os.RemoveAll(filepath.Join(w, "dir"))) }},
		{"binary", func(t *testing.T, w string) { writeFile(t, filepath.Join(w, "bin.dat"), "\x00\x00new\xff", 0o644) }},
	}
	for _, snapshot := range []bool{true, false} {
		src := newSourceRepo(t)
		if snapshot {
			// Uncommitted changes of each kind in the source.
			writeFile(t, filepath.Join(src, "b.txt"), "uncommitted\n", 0o644)
			writeFile(t, filepath.Join(src, "untracked.txt"), "untracked\n", 0o644)
			mustDo(t, os.Remove(filepath.Join(src, "bin.dat")))
		}
		copyRoot, cr := filepath.Join(t.TempDir(), "workspaces"), cowRoot(t)
		for _, m := range mutations {
			t.Run(m.name, func(t *testing.T) {
				plain := prepareIn(t, copyRoot, src, snapshot, false)
				cow := prepareIn(t, cr, src, snapshot, true)
				if d := diffTrees(snapshotTree(t, plain.WorkDir), snapshotTree(t, cow.WorkDir)); d != "" {
					t.Fatalf("prepared trees differ (snapshot %v):\n%s", snapshot, d)
				}
				m.do(t, plain.WorkDir)
				m.do(t, cow.WorkDir)
				want, errW := CaptureDiff(testCtx(t), plain, CaptureOptions{RunNumber: 1})
				got, errG := CaptureDiff(testCtx(t), cow, CaptureOptions{RunNumber: 1})
				if errW != nil || errG != nil {
					t.Fatalf("capture: copy %v, overlay %v", errW, errG)
				}
				if !bytes.Equal(want.Patch, got.Patch) {
					t.Fatalf("snapshot %v: patches differ\ncopy:\n%s\noverlay:\n%s", snapshot, want.Patch, got.Patch)
				}
				if len(got.Files) == 0 {
					t.Fatal("no change captured")
				}
			})
		}
		if entries, _ := os.ReadDir(basesDir(cr)); len(entries) != 2 { // the base and its lock
			t.Errorf("snapshot %v: %d entries in the bases folder, want one base and its lock", snapshot, len(entries))
		}
	}
}

// A later task on the same source sees what changed there since the base was
// written (edits, new, deleted, a file become a folder), from its upper layer.
func TestCopyOnWrite_LaterTaskSeesSourceChanges(t *testing.T) {
	src := newSourceRepo(t)
	root := cowRoot(t)
	first := prepareIn(t, root, src, true, true)
	if first.BaseCommit != testGit(t, src, "rev-parse", "HEAD") {
		t.Fatalf("clean source: base %s is not HEAD", first.BaseCommit)
	}
	writeFile(t, filepath.Join(src, "a.txt"), "edited later\n", 0o644)
	writeFile(t, filepath.Join(src, "fresh", "new.txt"), "new\n", 0o755)
	mustDo(t, os.Remove(filepath.Join(src, "b.txt")))
	mustDo(t, os.Remove(filepath.Join(src, "dir", "c.txt")))
	writeFile(t, filepath.Join(src, "dir", "c.txt", "now.txt"), "a folder now\n", 0o644)
	writeFile(t, filepath.Join(src, "skip.log"), "ignored\n", 0o644)

	later := prepareIn(t, root, src, true, true)
	if later.Overlay != first.Overlay {
		t.Fatalf("later task on base %q, first on %q", later.Overlay, first.Overlay)
	}
	plain := prepareIn(t, filepath.Join(t.TempDir(), "workspaces"), src, true, false)
	if d := diffTrees(snapshotTree(t, plain.WorkDir), snapshotTree(t, later.WorkDir)); d != "" {
		t.Fatalf("later overlay task differs from a copy:\n%s", d)
	}
	g := later.git()
	if treeOf(testCtx(t), g, later.BaseCommit) != treeOf(testCtx(t), plain.git(), plain.BaseCommit) {
		t.Fatal("base trees differ")
	}
	// The first task's tree is as the base was.
	if _, err := os.Stat(filepath.Join(first.WorkDir, "b.txt")); err != nil {
		t.Fatalf("first task lost b.txt: %v", err)
	}
	if _, err := CaptureDiff(testCtx(t), later, CaptureOptions{RunNumber: 1}); !errors.Is(err, ErrNoChanges) {
		t.Fatalf("capture of an untouched later task: %v, want ErrNoChanges", err)
	}
	if _, err := CaptureDiff(testCtx(t), first, CaptureOptions{RunNumber: 1}); !errors.Is(err, ErrNoChanges) {
		t.Fatalf("capture of an untouched first task: %v, want ErrNoChanges", err)
	}
}

// A mount left by a process that died is adopted, a missing one (after a
// reboot) is made again by Open, and removing the workspaces unmounts them
// and deletes their base with the last one.
func TestCopyOnWrite_AdoptRemountRemove(t *testing.T) {
	src := newSourceRepo(t)
	root := cowRoot(t)
	a := prepareIn(t, root, src, false, true)
	b := prepareIn(t, root, src, false, true)
	writeFile(t, filepath.Join(a.WorkDir, "a.txt"), "kept across a remount\n", 0o644)

	if _, err := Open(root, a.TaskID); err != nil { // mounted: adopted
		t.Fatal(err)
	}
	mustDo(t, unmount(a.WorkDir))
	if mounted, _ := isMountPoint(a.WorkDir); mounted {
		t.Fatal("still mounted")
	}
	again, err := Open(root, a.TaskID)
	if err != nil {
		t.Fatal(err)
	}
	if got, _ := os.ReadFile(filepath.Join(again.WorkDir, "a.txt")); string(got) != "kept across a remount\n" {
		t.Fatalf("after a remount a.txt = %q", got)
	}
	if d := capture(t, again, 1); len(d.Files) != 1 {
		t.Fatalf("captured %d files after a remount, want 1", len(d.Files))
	}

	// A half-built workspace with its overlay mounted (killed before its
	// marker): the next Begin of that task unmounts and rebuilds it.
	mustDo(t, os.Remove(filepath.Join(b.Dir, markerName)))
	rebuilt, err := Prepare(testCtx(t), PrepareSpec{TaskID: b.TaskID, WorkFolder: src, Root: root, UID: -1, GID: -1, CopyOnWrite: true})
	if err != nil {
		t.Fatalf("Prepare over a mounted leftover: %v", err)
	}

	base := filepath.Join(basesDir(root), a.Overlay)
	mustDo(t, again.Remove())
	if mounted, _ := isMountPoint(again.WorkDir); mounted {
		t.Fatal("removed workspace still mounted")
	}
	if _, err := os.Stat(base); err != nil {
		t.Fatalf("base removed while a workspace uses it: %v", err)
	}
	mustDo(t, (&Workspace{TaskID: rebuilt.TaskID, Dir: rebuilt.Dir}).Remove()) // as retention does
	if _, err := os.Stat(base); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("base kept after its last workspace went: %v", err)
	}
	if _, err := os.Stat(a.Dir); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("workspace kept: %v", err)
	}
}

// A base left unreferenced (a crash between removing a workspace and its
// base) is deleted by SweepBases; one in use is not.
func TestCopyOnWrite_SweepBases(t *testing.T) {
	src := newSourceRepo(t)
	root := cowRoot(t)
	a := prepareIn(t, root, src, false, true)
	b := prepareIn(t, root, src, true, true)
	mustDo(t, unmountWork(b.Dir))
	mustDo(t, removeTree(b.Dir)) // the base reference went with it
	mustDo(t, SweepBases(root))
	if _, err := os.Stat(filepath.Join(basesDir(root), b.Overlay)); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("orphan base kept: %v", err)
	}
	if _, err := os.Stat(filepath.Join(basesDir(root), a.Overlay)); err != nil {
		t.Fatalf("base in use removed: %v", err)
	}
}

// The container's user writes the merged tree: files of the base (copied up
// with their owner) and new ones.
func TestCopyOnWrite_HandedOver(t *testing.T) {
	if os.Geteuid() != 0 {
		testutil.SkipOrFailInCI(t, "needs root to hand a tree over")
	}
	src := newSourceRepo(t)
	root := cowRoot(t)
	ws, err := Prepare(testCtx(t), PrepareSpec{TaskID: nextTaskID(), WorkFolder: src, IncludeUncommitted: true,
		Root: root, UID: 10001, GID: 10001, CopyOnWrite: true})
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range []string{ws.WorkDir, filepath.Join(ws.WorkDir, "dir"), filepath.Join(ws.WorkDir, "a.txt"), ws.HomeDir} {
		var st syscall.Stat_t
		mustDo(t, syscall.Lstat(p, &st))
		if st.Uid != 10001 || st.Gid != 10001 {
			t.Errorf("%s owned by %d:%d, want 10001", p, st.Uid, st.Gid)
		}
	}
	writeFile(t, filepath.Join(ws.WorkDir, "a.txt"), "by the agent\n", 0o644)
	if d := capture(t, ws, 1); len(d.Files) != 1 {
		t.Fatalf("captured %d files, want 1", len(d.Files))
	}
	mustDo(t, ws.Remove())
}

func mustDo(t *testing.T, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}

// The later task's comparison runs git on the user's work folder: the
// source's own config (a filter that runs a command) is never read, and a
// symlink that leaves the tree is written as a symlink, not followed.
func TestCopyOnWrite_LaterTaskHostileSource(t *testing.T) {
	src := newSourceRepo(t)
	root := cowRoot(t)
	canary := filepath.Join(t.TempDir(), "canary")
	testGit(t, src, "config", "filter.evil.clean", "touch "+canary+"; cat")
	testGit(t, src, "config", "core.fsmonitor", "touch "+canary)
	first := prepareIn(t, root, src, true, true)
	writeFile(t, filepath.Join(src, ".gitattributes"), "* filter=evil\n", 0o644)
	writeFile(t, filepath.Join(src, "a.txt"), "edited\n", 0o644)
	mustDo(t, os.Symlink("/etc/passwd", filepath.Join(src, "outside")))
	later := prepareIn(t, root, src, true, true)
	if later.Overlay != first.Overlay {
		t.Fatal("later task not on the first one's base")
	}
	if _, err := os.Stat(canary); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("the source's configured command ran: %v", err)
	}
	if target, err := os.Readlink(filepath.Join(later.WorkDir, "outside")); err != nil || target != "/etc/passwd" {
		t.Fatalf("outside: %q, %v; want the symlink itself", target, err)
	}
	plain := prepareIn(t, filepath.Join(t.TempDir(), "workspaces"), src, true, false)
	if d := diffTrees(snapshotTree(t, plain.WorkDir), snapshotTree(t, later.WorkDir)); d != "" {
		t.Fatalf("later overlay task differs from a copy:\n%s", d)
	}
}

// A later task compares the source with its base as git status does: git's
// walk never enters an ignored folder, so what lies there cannot stop it (a
// .gitignore that is a named pipe inside build/, which the capture's own
// walk, used before, refused), and a nested repository is left out, as the
// copy leaves it out (the capture's walk entered it).
func TestCopyOnWrite_LaterTaskComparesAsTheCopyLists(t *testing.T) {
	src := newSourceRepo(t)
	root := cowRoot(t)
	mustDo(t, os.MkdirAll(filepath.Join(src, "build"), 0o755))
	mustDo(t, syscall.Mkfifo(filepath.Join(src, "build", ".gitignore"), 0o644))
	first := prepareIn(t, root, src, true, true)

	writeFile(t, filepath.Join(src, "a.txt"), "edited later\n", 0o644)
	nested := filepath.Join(src, "nested")
	testGit(t, src, "init", "--quiet", nested)
	writeFile(t, filepath.Join(nested, "inner.txt"), "another repository's\n", 0o644)
	writeFile(t, filepath.Join(src, "fresh.txt"), "new\n", 0o644)

	later := prepareIn(t, root, src, true, true)
	if later.Overlay != first.Overlay {
		t.Fatalf("later task on base %q, first on %q", later.Overlay, first.Overlay)
	}
	plain := prepareIn(t, filepath.Join(t.TempDir(), "workspaces"), src, true, false)
	if d := diffTrees(snapshotTree(t, plain.WorkDir), snapshotTree(t, later.WorkDir)); d != "" {
		t.Fatalf("later overlay task differs from a copy:\n%s", d)
	}
	if treeOf(testCtx(t), later.git(), later.BaseCommit) != treeOf(testCtx(t), plain.git(), plain.BaseCommit) {
		t.Fatal("base trees differ")
	}
	if _, err := os.Lstat(filepath.Join(later.WorkDir, "nested", "inner.txt")); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("nested repository's file in the later task: %v", err)
	}
	for _, p := range []string{"a.txt", "fresh.txt"} {
		if _, err := os.Lstat(filepath.Join(later.WorkDir, p)); err != nil {
			t.Fatalf("%s missing from the later task: %v", p, err)
		}
	}
}

// A snapshot base's source index carries the trees of its folders (git's
// cache-tree extension), taken from the capture index: a later task that
// finds one file changed then writes the trees of that file's folders only.
// Git reads the index whole, and the tree it writes from it untouched is the
// base's.
func TestCopyOnWrite_SourceIndexKeepsFolderTrees(t *testing.T) {
	src := newSourceRepo(t)
	writeFile(t, filepath.Join(src, "dir", "deeper", "new.txt"), "untracked\n", 0o644)
	root := cowRoot(t)
	ws := prepareIn(t, root, src, true, true)
	base := filepath.Join(basesDir(root), ws.Overlay)
	file := filepath.Join(base, sourceIndex)
	if cacheTreeExtension(file) == nil {
		t.Fatal("source index without the folders' trees")
	}
	g := ws.git().with("GIT_INDEX_FILE=" + file)
	g.workTree, g.dir = src, src
	tree, err := g.runText(testCtx(t), nil, "write-tree")
	if err != nil {
		t.Fatal(err)
	}
	if want := treeOf(testCtx(t), ws.git(), ws.BaseCommit); tree != want {
		t.Fatalf("tree of the source index %s, base tree %s", tree, want)
	}
	if out, err := g.run(testCtx(t), nil, "ls-files", "-z"); err != nil || len(splitNUL(out)) != 7 {
		t.Fatalf("ls-files: %q, %v", out, err)
	}
}
