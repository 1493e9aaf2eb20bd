package workspace

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/claude-parallel/claude-parallel/test/testutil"
)

// dirtySource is a work folder with an uncommitted edit, an untracked file, an
// ignored file and directory, and a tracked file that matches an ignore pattern.
func dirtySource(t *testing.T) string {
	t.Helper()
	src := newSourceRepo(t)
	writeFile(t, filepath.Join(src, "kept.log"), "tracked although ignored\n", 0o644)
	testGit(t, src, "add", "-f", "kept.log")
	testGit(t, src, "commit", "--quiet", "-m", "track a log")
	writeFile(t, filepath.Join(src, "a.txt"), "uncommitted first line\n"+testutil.Lines("a line", 20), 0o644)
	writeFile(t, filepath.Join(src, "untracked.txt"), "untracked\n", 0o644)
	writeFile(t, filepath.Join(src, "secret.log"), "ignored\n", 0o644)
	writeFile(t, filepath.Join(src, "build", "out.o"), "ignored dir\n", 0o644)
	writeFile(t, filepath.Join(src, ".git", "info", "exclude"), "local-only.txt\n", 0o644)
	writeFile(t, filepath.Join(src, "local-only.txt"), "excluded via info/exclude\n", 0o644)
	if err := os.Remove(filepath.Join(src, "b.txt")); err != nil { // deleted, not committed
		t.Fatal(err)
	}
	return src
}

func TestPrepare_SnapshotsUncommittedAndUntrackedButNotIgnored(t *testing.T) {
	ctx := testCtx(t)
	src := dirtySource(t)
	head := testGit(t, src, "rev-parse", "HEAD")
	ws := prepareWS(t, src, true)

	got := snapshotTree(t, ws.WorkDir)
	for _, p := range []string{"a.txt", "untracked.txt", "kept.log", "dir/c.txt", ".gitignore"} {
		if _, ok := got[p]; !ok {
			t.Errorf("snapshot lacks %s", p)
		}
	}
	for _, p := range []string{"secret.log", "build/out.o", "local-only.txt", "b.txt"} {
		if _, ok := got[p]; ok {
			t.Errorf("snapshot has %s", p)
		}
	}
	if !strings.HasPrefix(got["a.txt"].data, "uncommitted first line\n") {
		t.Errorf("a.txt lacks the uncommitted edit")
	}
	assertNoFile(t, filepath.Join(ws.WorkDir, ".git"))
	if ws.SourceHead != head || ws.BaseCommit == head {
		t.Fatalf("SourceHead %s BaseCommit %s, HEAD %s", ws.SourceHead, ws.BaseCommit, head)
	}
	if parent := testGit(t, ws.GitDir, "--git-dir="+ws.GitDir, "rev-parse", ws.BaseCommit+"^"); parent != head {
		t.Errorf("base parent %s, want HEAD %s", parent, head)
	}
	if _, err := CaptureDiff(ctx, ws, CaptureOptions{RunNumber: 1}); !errors.Is(err, ErrNoChanges) {
		t.Fatalf("capture of an untouched snapshot: %v, want ErrNoChanges", err)
	}

	// The agent edits; the diff applies back onto the unchanged work folder.
	writeFile(t, filepath.Join(ws.WorkDir, "a.txt"), "uncommitted first line\n"+testutil.Lines("a line", 20)+"agent line\n", 0o644)
	writeFile(t, filepath.Join(ws.WorkDir, "untracked.txt"), "untracked, edited by the agent\n", 0o644)
	d := capture(t, ws, 1)
	if len(d.Files) != 2 {
		t.Fatalf("files %+v, want a.txt and untracked.txt only", d.Files)
	}
	res, err := Apply(ctx, ApplySpec{Target: src, Patch: d.Patch, SourceGitDir: ws.GitDir})
	if err != nil || res.Outcome != Applied {
		t.Fatalf("apply onto the work folder = %+v, %v", res, err)
	}
	if testutil.ReadFile(t, filepath.Join(src, "a.txt")) != testutil.ReadFile(t, filepath.Join(ws.WorkDir, "a.txt")) ||
		testutil.ReadFile(t, filepath.Join(src, "untracked.txt")) != "untracked, edited by the agent\n" {
		t.Fatal("work folder does not hold the agent's edits")
	}
	if testutil.ReadFile(t, filepath.Join(src, "secret.log")) != "ignored\n" {
		t.Fatal("ignored file changed")
	}
}

func TestPrepare_CommittedBaseRefChecksOutThatCommit(t *testing.T) {
	src := newSourceRepo(t)
	first := testGit(t, src, "rev-parse", "HEAD")
	writeFile(t, filepath.Join(src, "later.txt"), "later\n", 0o644)
	testGit(t, src, "add", "later.txt")
	testGit(t, src, "commit", "--quiet", "-m", "later")
	writeFile(t, filepath.Join(src, "a.txt"), "dirty\n", 0o644)

	for _, tc := range []struct {
		ref, want string
	}{{"", testGit(t, src, "rev-parse", "HEAD")}, {"main~1", first}, {first, first}} {
		ws, err := Prepare(testCtx(t), PrepareSpec{TaskID: nextTaskID(), WorkFolder: filepath.Join(src, "dir"),
			BaseRef: tc.ref, Root: t.TempDir(), UID: -1, GID: -1})
		if err != nil {
			t.Fatalf("Prepare(%q): %v", tc.ref, err)
		}
		if ws.BaseCommit != tc.want || ws.Subdir != "dir" {
			t.Errorf("Prepare(%q): base %s subdir %q, want %s dir", tc.ref, ws.BaseCommit, ws.Subdir, tc.want)
		}
		got := snapshotTree(t, ws.WorkDir)
		if got["a.txt"].data != testutil.Lines("a line", 20) {
			t.Errorf("Prepare(%q): a.txt has uncommitted content", tc.ref)
		}
		if _, ok := got["later.txt"]; ok != (tc.want != first) {
			t.Errorf("Prepare(%q): later.txt present=%v", tc.ref, ok)
		}
		if got["dir/c.txt"].data != "c\n" {
			t.Errorf("Prepare(%q): the whole repository is not checked out", tc.ref)
		}
	}
}

func TestPrepare_RefusesBadInput(t *testing.T) {
	src := newSourceRepo(t)
	writeFile(t, filepath.Join(src, "second.txt"), "2\n", 0o644)
	testGit(t, src, "add", "second.txt")
	testGit(t, src, "commit", "--quiet", "-m", "second")
	root := t.TempDir()
	cases := []struct {
		name string
		spec PrepareSpec
		want error
	}{
		{"bad task id", PrepareSpec{TaskID: "../x", WorkFolder: src, Root: root}, ErrInvalidSpec},
		{"relative root", PrepareSpec{TaskID: nextTaskID(), WorkFolder: src, Root: "rel"}, ErrInvalidSpec},
		{"option as ref", PrepareSpec{TaskID: nextTaskID(), WorkFolder: src, Root: root, BaseRef: "--output=/tmp/x"}, ErrInvalidRef},
		{"range as ref", PrepareSpec{TaskID: nextTaskID(), WorkFolder: src, Root: root, BaseRef: "HEAD..main"}, ErrInvalidRef},
		{"unknown ref", PrepareSpec{TaskID: nextTaskID(), WorkFolder: src, Root: root, BaseRef: "nope"}, ErrInvalidRef},
		{"snapshot off HEAD", PrepareSpec{TaskID: nextTaskID(), WorkFolder: src, Root: root, BaseRef: "main~1", IncludeUncommitted: true}, ErrInvalidSpec},
		{"not a repository", PrepareSpec{TaskID: nextTaskID(), WorkFolder: t.TempDir(), Root: root}, ErrNotGitWorkTree},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			tc.spec.UID, tc.spec.GID = -1, -1
			if _, err := Prepare(testCtx(t), tc.spec); !errors.Is(err, tc.want) {
				t.Fatalf("Prepare = %v, want %v", err, tc.want)
			}
		})
	}
	entries, _ := os.ReadDir(root)
	if len(entries) != 0 {
		t.Errorf("failed prepares left %d entries in the root", len(entries))
	}
}

func TestPrepare_IsIdempotentAndRedoesAfterACrash(t *testing.T) {
	ctx := testCtx(t)
	src := dirtySource(t)
	root := t.TempDir()
	spec := PrepareSpec{TaskID: nextTaskID(), WorkFolder: src, IncludeUncommitted: true, Root: root, UID: -1, GID: -1}

	// A crash mid-prepare leaves a staging directory; the next call starts over.
	staging := filepath.Join(root, ".prepare-"+spec.TaskID)
	writeFile(t, filepath.Join(staging, "work", "half-copied.txt"), "junk\n", 0o644)
	ws, err := Prepare(ctx, spec)
	if err != nil {
		t.Fatal(err)
	}
	assertNoFile(t, staging)
	assertNoFile(t, filepath.Join(ws.WorkDir, "half-copied.txt"))

	// Ready: a second call returns it unchanged even though the source moved on.
	writeFile(t, filepath.Join(ws.WorkDir, "agent.txt"), "work in progress\n", 0o644)
	writeFile(t, filepath.Join(src, "after.txt"), "after\n", 0o644)
	again, err := Prepare(ctx, spec)
	if err != nil {
		t.Fatal(err)
	}
	if again.BaseCommit != ws.BaseCommit || !again.Created.Equal(ws.Created) || again.WorkDir != ws.WorkDir {
		t.Fatalf("second Prepare = %+v, want %+v", again, ws)
	}
	if _, err := os.Stat(filepath.Join(ws.WorkDir, "agent.txt")); err != nil {
		t.Fatal("second Prepare rebuilt a ready workspace")
	}
	opened, err := Open(root, spec.TaskID)
	if err != nil || opened.BaseCommit != ws.BaseCommit || opened.GitDir != ws.GitDir {
		t.Fatalf("Open = %+v, %v", opened, err)
	}

	// A workspace directory without its marker is not ready and is rebuilt.
	if err := os.Remove(filepath.Join(ws.Dir, markerName)); err != nil {
		t.Fatal(err)
	}
	if _, err := Open(root, spec.TaskID); !errors.Is(err, ErrNotFound) {
		t.Fatalf("Open without marker = %v, want ErrNotFound", err)
	}
	rebuilt, err := Prepare(ctx, spec)
	if err != nil {
		t.Fatal(err)
	}
	assertNoFile(t, filepath.Join(rebuilt.WorkDir, "agent.txt"))
	if _, err := os.Stat(filepath.Join(rebuilt.WorkDir, "after.txt")); err != nil {
		t.Error("rebuilt workspace is not a fresh snapshot")
	}
}

func TestPrepare_HandsTreeToContainerUser(t *testing.T) {
	if os.Geteuid() != 0 {
		testutil.SkipOrFailInCI(t, "needs root to chown (CI runs as root)")
	}
	src := newSourceRepo(t)
	ws, err := Prepare(testCtx(t), PrepareSpec{TaskID: nextTaskID(), WorkFolder: src, IncludeUncommitted: true,
		Root: t.TempDir(), UID: 10001, GID: 10001})
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range []string{ws.WorkDir, filepath.Join(ws.WorkDir, "a.txt"), filepath.Join(ws.WorkDir, "dir"), ws.HomeDir} {
		fi, err := os.Lstat(p)
		if err != nil {
			t.Fatal(err)
		}
		if st := fi.Sys().(*syscall.Stat_t); st.Uid != 10001 || st.Gid != 10001 {
			t.Errorf("%s owned by %d:%d", p, st.Uid, st.Gid)
		}
	}
	// Files the container user creates are captured as usual.
	writeFile(t, filepath.Join(ws.WorkDir, "x.txt"), "x\n", 0o644)
	if err := os.Lchown(filepath.Join(ws.WorkDir, "x.txt"), 10001, 10001); err != nil {
		t.Fatal(err)
	}
	if d := capture(t, ws, 1); len(d.Files) != 1 || d.Files[0].Path != "x.txt" {
		t.Fatalf("files %+v", d.Files)
	}
}

func TestRemove_DeletesForeignAndReadOnlyFiles(t *testing.T) {
	src := newSourceRepo(t)
	ws := prepareWS(t, src, true)
	ro := filepath.Join(ws.WorkDir, "ro")
	writeFile(t, filepath.Join(ro, "inner", "f.txt"), "x\n", 0o444)
	if err := os.Chmod(filepath.Join(ro, "inner"), 0o500); err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(ro, 0o000); err != nil {
		t.Fatal(err)
	}
	if os.Geteuid() == 0 {
		if err := os.Lchown(filepath.Join(ws.WorkDir, "a.txt"), 12345, 12345); err != nil {
			t.Fatal(err)
		}
	}
	outside := filepath.Join(t.TempDir(), "outside.txt")
	writeFile(t, outside, "keep\n", 0o644)
	if err := os.Symlink(filepath.Dir(outside), filepath.Join(ws.WorkDir, "escape")); err != nil {
		t.Fatal(err)
	}
	for range 2 {
		if err := ws.Remove(); err != nil {
			t.Fatalf("Remove: %v", err)
		}
	}
	assertNoFile(t, ws.Dir)
	if testutil.ReadFile(t, outside) != "keep\n" {
		t.Fatal("Remove followed a symlink out of the workspace")
	}
	if _, err := Open(filepath.Dir(ws.Dir), ws.TaskID); !errors.Is(err, ErrNotFound) {
		t.Fatalf("Open after Remove = %v", err)
	}
}

func TestWorkFolderInfo(t *testing.T) {
	ctx := testCtx(t)
	src := newSourceRepo(t)
	top, head, err := WorkFolderInfo(ctx, filepath.Join(src, "dir"))
	if err != nil || top != src || head != testGit(t, src, "rev-parse", "HEAD") {
		t.Fatalf("WorkFolderInfo = %q %q %v", top, head, err)
	}
	if _, _, err := WorkFolderInfo(ctx, t.TempDir()); !errors.Is(err, ErrNotGitWorkTree) {
		t.Fatalf("plain dir: %v", err)
	}
	if _, _, err := WorkFolderInfo(ctx, filepath.Join(src, ".git")); !errors.Is(err, ErrNotGitWorkTree) {
		t.Fatalf("git dir: %v", err)
	}
	empty := t.TempDir()
	testGit(t, empty, "init", "--quiet")
	if top, head, err := WorkFolderInfo(ctx, empty); err != nil || top != empty || head != "" {
		t.Fatalf("unborn repo = %q %q %v", top, head, err)
	}

	// As root: a work tree whose repository belongs to another user is refused.
	if os.Geteuid() == 0 {
		foreign := newSourceRepo(t)
		if err := os.Lchown(foreign, 65534, 65534); err != nil {
			t.Fatal(err)
		}
		if _, _, err := WorkFolderInfo(ctx, foreign); !errors.Is(err, ErrNotGitWorkTree) {
			t.Fatalf("foreign git dir: %v", err)
		}
	}

	// A core.worktree pointing elsewhere must not turn another directory into the
	// "top" of this work folder.
	elsewhere := t.TempDir()
	testGit(t, src, "config", "core.worktree", elsewhere)
	if _, _, err := WorkFolderInfo(ctx, src); !errors.Is(err, ErrNotGitWorkTree) {
		t.Fatalf("redirected work tree: %v", err)
	}
}

func TestPrepare_EmptyRepositoryWithoutCommits(t *testing.T) {
	src := t.TempDir()
	testGit(t, src, "init", "--quiet")
	writeFile(t, filepath.Join(src, "first.txt"), "first\n", 0o644)
	ws := prepareWS(t, src, true)
	if ws.SourceHead != "" || ws.BaseCommit == "" {
		t.Fatalf("ws %+v", ws)
	}
	writeFile(t, filepath.Join(ws.WorkDir, "second.txt"), "second\n", 0o644)
	d := capture(t, ws, 1)
	if len(d.Files) != 1 || d.Files[0].Path != "second.txt" {
		t.Fatalf("files %+v", d.Files)
	}
}

// A snapshot stages the copied files without walking work/ (stageCopy); it must
// record the same tree as the full staging captures use, submodule entries
// included.
func TestPrepare_SnapshotStagesWhatACaptureWould(t *testing.T) {
	ctx := testCtx(t)
	src := dirtySource(t)
	sub := testGit(t, src, "rev-parse", "HEAD") // any commit will do as the submodule's
	testGit(t, src, "update-index", "--add", "--cacheinfo", "160000,"+sub+",sub")
	testGit(t, src, "commit", "--quiet", "-m", "a submodule")
	head := testGit(t, src, "rev-parse", "HEAD")

	ws := prepareWS(t, src, true)
	if ws.SourceHead != head || ws.BaseCommit == head {
		t.Fatalf("SourceHead %s BaseCommit %s, HEAD %s", ws.SourceHead, ws.BaseCommit, head)
	}
	g := ws.git()
	if got, err := g.runText(ctx, nil, "ls-tree", ws.BaseCommit, "sub"); err != nil || !strings.HasPrefix(got, "160000 commit "+sub) {
		t.Fatalf("base lacks the submodule entry: %q, %v", got, err)
	}
	full, err := ws.stage(ctx, head)
	if err != nil {
		t.Fatal(err)
	}
	if base := treeOf(ctx, g, ws.BaseCommit); full != base {
		t.Fatalf("full staging of work/ gives tree %s, the snapshot recorded %s", full, base)
	}

	// A clean work folder with a submodule is its HEAD.
	clean := newSourceRepo(t)
	testGit(t, clean, "update-index", "--add", "--cacheinfo", "160000,"+sub+",sub")
	testGit(t, clean, "commit", "--quiet", "-m", "a submodule")
	if ws := prepareWS(t, clean, true); ws.BaseCommit != testGit(t, clean, "rev-parse", "HEAD") {
		t.Fatalf("clean snapshot base %s is not HEAD", ws.BaseCommit)
	}
}

// Begin checks the spec and lays the workspace out before it returns, so a
// container can be created on its directories while the rest is prepared.
func TestBegin_LaysOutFirstAndFinishesInTheBackground(t *testing.T) {
	src := newSourceRepo(t)
	root := t.TempDir()
	spec := PrepareSpec{TaskID: nextTaskID(), WorkFolder: src, IncludeUncommitted: true, Root: root, UID: -1, GID: -1}
	b, err := Begin(testCtx(t), spec)
	if err != nil {
		t.Fatal(err)
	}
	layout := b.Layout()
	for _, d := range []string{layout.WorkDir, layout.HomeDir} {
		if fi, err := os.Stat(d); err != nil || !fi.IsDir() {
			t.Fatalf("%s not there when Begin returned: %v", d, err)
		}
	}
	ws, err := b.Wait(testCtx(t))
	if err != nil {
		t.Fatal(err)
	}
	if ws.WorkDir != layout.WorkDir || ws.BaseCommit == "" || ws.SourceHead != layout.SourceHead {
		t.Fatalf("ready %+v, layout %+v", ws, layout)
	}
	if opened, err := Open(root, spec.TaskID); err != nil || opened.BaseCommit != ws.BaseCommit {
		t.Fatalf("Open = %+v, %v", opened, err)
	}
	// Ready: Begin returns it as it is, finished.
	again, err := Begin(testCtx(t), spec)
	if err != nil {
		t.Fatal(err)
	}
	if ws2, err := again.Wait(testCtx(t)); err != nil || ws2.BaseCommit != ws.BaseCommit || ws2.Created != ws.Created {
		t.Fatalf("second Begin = %+v, %v", ws2, err)
	}

	// A spec that cannot run is refused by Begin itself, leaving nothing.
	bad := PrepareSpec{TaskID: nextTaskID(), WorkFolder: t.TempDir(), Root: root, UID: -1, GID: -1}
	if _, err := Begin(testCtx(t), bad); !errors.Is(err, ErrNotGitWorkTree) {
		t.Fatalf("Begin on a plain folder = %v", err)
	}
	assertNoFile(t, filepath.Join(root, bad.TaskID))
}

// A work folder's own config cannot name the exclude file git reads: a FIFO
// there would block the snapshot, and a capture (in the workspace repository)
// would never honour it, so the snapshot does not either.
func TestPrepare_IgnoresTheSourcesExcludesFile(t *testing.T) {
	src := dirtySource(t)
	fifo := filepath.Join(t.TempDir(), "excludes")
	if err := syscall.Mkfifo(fifo, 0o644); err != nil {
		t.Fatal(err)
	}
	testGit(t, src, "config", "core.excludesFile", fifo)
	ws := prepareWS(t, src, true) // blocks on the FIFO without the hardening; testCtx ends it
	if _, ok := snapshotTree(t, ws.WorkDir)["untracked.txt"]; !ok {
		t.Fatal("snapshot lacks untracked.txt")
	}

	hides := filepath.Join(t.TempDir(), "excludes")
	writeFile(t, hides, "untracked.txt\n", 0o644)
	testGit(t, src, "config", "core.excludesFile", hides)
	if _, ok := snapshotTree(t, prepareWS(t, src, true).WorkDir)["untracked.txt"]; !ok {
		t.Fatal("the source's core.excludesFile hid untracked.txt from the snapshot")
	}
}

// A FIFO where git reads an ignore file blocks git for good. The build ends at
// its context's deadline with an error that names the git command and how long
// it ran; a waiter whose own deadline comes first is released (after a grace
// for the build to report) while the build goes on; and Prepare, whose build
// and wait share one deadline, reports the git command rather than the wait.
func TestBegin_BlockedGitEndsAtDeadlines(t *testing.T) {
	src := newSourceRepo(t)
	if err := syscall.Mkfifo(filepath.Join(src, "dir", ".gitignore"), 0o644); err != nil {
		t.Fatal(err)
	}
	const buildTimeout = 6 * time.Second
	buildCtx, cancel := context.WithTimeout(context.Background(), buildTimeout)
	defer cancel()
	spec := PrepareSpec{TaskID: nextTaskID(), WorkFolder: src, IncludeUncommitted: true,
		Root: filepath.Join(t.TempDir(), "workspaces"), UID: -1, GID: -1}
	began := time.Now()
	b, err := Begin(buildCtx, spec)
	if err != nil {
		t.Fatalf("Begin reads no ignore file, yet: %v", err)
	}
	waitCtx, cancelWait := context.WithTimeout(context.Background(), 300*time.Millisecond)
	defer cancelWait()
	_, err = b.Wait(waitCtx)
	if !errors.Is(err, context.DeadlineExceeded) || !strings.Contains(err.Error(), "wait for workspace") ||
		time.Since(began) >= buildTimeout {
		t.Fatalf("Wait past its own deadline = %v after %v, want released before the build's deadline", err, time.Since(began))
	}
	_, err = b.Wait(testCtx(t))
	if !errors.Is(err, context.DeadlineExceeded) || !strings.Contains(err.Error(), "git ls-files: no answer after ") {
		t.Fatalf("build blocked on a FIFO = %v, want git ls-files stopped at its deadline", err)
	}
	if _, err := os.Stat(filepath.Join(spec.Root, spec.TaskID)); !errors.Is(err, fs.ErrNotExist) {
		t.Fatalf("a failed build left its workspace: %v", err)
	}

	ctx, cancelPrepare := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancelPrepare()
	spec.TaskID = nextTaskID()
	if _, err := Prepare(ctx, spec); !strings.Contains(fmt.Sprint(err), "git ls-files: no answer after ") {
		t.Fatalf("Prepare blocked on a FIFO = %v, want the git command named", err)
	}
}
