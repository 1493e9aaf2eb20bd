package workspace

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/claude-parallel/claude-parallel/test/testutil"
)

// canaryKit is a script that records being run, and the configuration that would
// make git run it in as many ways as git offers.
type canaryKit struct {
	dir    string // where runs leave their marks
	script string
}

func newCanaryKit(t *testing.T) canaryKit {
	t.Helper()
	base := t.TempDir()
	k := canaryKit{dir: filepath.Join(base, "marks"), script: filepath.Join(base, "canary.sh")}
	if err := os.Mkdir(k.dir, 0o777); err != nil {
		t.Fatal(err)
	}
	writeFile(t, k.script, "#!/bin/sh\ntouch \""+k.dir+"/$$\"\ncat\n", 0o755)
	hooks := filepath.Join(base, "hooks")
	for _, h := range []string{"pre-commit", "post-commit", "post-checkout", "reference-transaction",
		"pre-auto-gc", "post-index-change", "fsmonitor-watchman", "post-applypatch", "pre-applypatch"} {
		writeFile(t, filepath.Join(hooks, h), "#!/bin/sh\ntouch \""+k.dir+"/hook-"+h+"\"\n", 0o755)
	}
	return k
}

// config is a hostile git config: every key that runs a program points at the canary.
func (k canaryKit) config() string {
	s := k.script
	return "[core]\n\tfsmonitor = " + s + "\n\thooksPath = " + filepath.Join(filepath.Dir(s), "hooks") +
		"\n\tpager = " + s + "\n\tsshCommand = " + s + "\n\teditor = " + s + "\n\taskPass = " + s +
		"\n\talternateRefsCommand = " + s +
		"\n[diff]\n\texternal = " + s +
		"\n[diff \"evil\"]\n\tcommand = " + s + "\n\ttextconv = " + s +
		"\n[filter \"evil\"]\n\tclean = " + s + "\n\tsmudge = " + s + "\n\tprocess = " + s + "\n\trequired = true" +
		"\n[merge \"evil\"]\n\tdriver = " + s +
		"\n[credential]\n\thelper = " + s +
		"\n[uploadpack]\n\tpackObjectsHook = " + s + "\n"
}

const evilAttributes = "* filter=evil diff=evil merge=evil\n"

func (k canaryKit) assertSilent(t *testing.T) {
	t.Helper()
	entries, err := os.ReadDir(k.dir)
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range entries {
		t.Errorf("a configured command ran on the host: %s", e.Name())
	}
}

func TestCaptureDiff_ExcludesGitDirsHonoursIgnoreAndRunsNothing(t *testing.T) {
	ctx := testCtx(t)
	kit := newCanaryKit(t)
	ws := prepareWS(t, newSourceRepo(t), true)
	w := ws.WorkDir

	// The agent makes work/ a repository with a hostile config, nests another one,
	// and adds git-directory look-alikes.
	testGit(t, w, "init", "--quiet")
	writeFile(t, filepath.Join(w, ".git", "config"), kit.config(), 0o644)
	writeFile(t, filepath.Join(w, ".git", "hooks", "x"), "payload\n", 0o755)
	writeFile(t, filepath.Join(w, ".gitattributes"), evilAttributes, 0o644)
	testGit(t, w, "init", "--quiet", "sub")
	writeFile(t, filepath.Join(w, "sub", ".git", "config"), kit.config(), 0o644)
	writeFile(t, filepath.Join(w, "sub", "file.txt"), "in a nested repository\n", 0o644)
	writeFile(t, filepath.Join(w, ".GIT", "config"), kit.config(), 0o644)
	writeFile(t, filepath.Join(w, "deep", "er", ".git"), "gitdir: /etc\n", 0o644)
	writeFile(t, filepath.Join(w, "deep", "er", "Git~1", "x"), "8.3 name\n", 0o644)
	writeFile(t, filepath.Join(w, "deep", "er", "real.txt"), "kept\n", 0o644)
	// Ignore rules: the base .gitignore ignores *.log and build/; the agent adds *.tmp.
	writeFile(t, filepath.Join(w, ".gitignore"), "*.log\nbuild/\n*.tmp\n", 0o644)
	writeFile(t, filepath.Join(w, "x.tmp"), "ignored\n", 0o644)
	writeFile(t, filepath.Join(w, "debug.log"), "ignored\n", 0o644)
	writeFile(t, filepath.Join(w, "build", "out"), "ignored\n", 0o644)
	if err := os.MkdirAll(filepath.Join(w, "empty", "nested"), 0o755); err != nil {
		t.Fatal(err)
	}

	for run := 1; run <= 2; run++ {
		d, err := CaptureDiff(ctx, ws, CaptureOptions{RunNumber: run})
		if err != nil {
			t.Fatalf("CaptureDiff: %v", err)
		}
		var paths []string
		for _, f := range d.Files {
			paths = append(paths, f.Path)
		}
		sort.Strings(paths)
		want := []string{".gitattributes", ".gitignore", "deep/er/real.txt", "sub/file.txt"}
		if strings.Join(paths, ",") != strings.Join(want, ",") {
			t.Fatalf("captured %v, want %v", paths, want)
		}
		tree := testGit(t, ws.GitDir, "--git-dir="+ws.GitDir, "ls-tree", "-r", "--name-only", d.ResultCommit)
		for _, p := range strings.Split(tree, "\n") {
			if hasGitComponent(p) {
				t.Errorf("result tree holds %s", p)
			}
		}
		if err := CheckPatch(d.Patch); err != nil {
			t.Fatalf("CheckPatch: %v", err)
		}
	}
	kit.assertSilent(t)
}

func TestCaptureDiff_IsDeterministic(t *testing.T) {
	ctx := testCtx(t)
	ws := prepareWS(t, newSourceRepo(t), true)
	writeFile(t, filepath.Join(ws.WorkDir, "a.txt"), "rewritten\n", 0o644)
	writeFile(t, filepath.Join(ws.WorkDir, "n", "new.txt"), "new\n", 0o755)

	first := capture(t, ws, 1)
	reopened, err := Open(filepath.Dir(ws.Dir), ws.TaskID)
	if err != nil {
		t.Fatal(err)
	}
	second := capture(t, reopened, 1)
	if first.ResultCommit != second.ResultCommit || string(first.Patch) != string(second.Patch) {
		t.Fatalf("captures differ: %s vs %s", first.ResultCommit, second.ResultCommit)
	}
	sum := sha256.Sum256(first.Patch)
	if first.SHA256 != hex.EncodeToString(sum[:]) || first.Size != int64(len(first.Patch)) {
		t.Fatalf("sha256/size %s/%d do not describe the patch", first.SHA256, first.Size)
	}
	if first.Additions != 2 || first.Deletions != 20 {
		t.Errorf("totals +%d -%d, want +2 -20", first.Additions, first.Deletions)
	}
	// Another run with the same tree keeps its own ref and the same patch.
	third := capture(t, ws, 2)
	if third.Ref != RunRef(2) || string(third.Patch) != string(first.Patch) {
		t.Fatalf("run 2: ref %s", third.Ref)
	}
	// The agent reverts everything: no change.
	if err := os.RemoveAll(filepath.Join(ws.WorkDir, "n")); err != nil {
		t.Fatal(err)
	}
	writeFile(t, filepath.Join(ws.WorkDir, "a.txt"), testutil.Lines("a line", 20), 0o644)
	if _, err := CaptureDiff(ctx, ws, CaptureOptions{RunNumber: 3}); !errors.Is(err, ErrNoChanges) {
		t.Fatalf("reverted tree: %v, want ErrNoChanges", err)
	}
	if _, err := CaptureDiff(ctx, ws, CaptureOptions{RunNumber: 0}); !errors.Is(err, ErrInvalidSpec) {
		t.Fatalf("run 0: %v", err)
	}
}

func TestCaptureDiff_SymlinkOutOfTheTreeIsRecordedNotFollowed(t *testing.T) {
	ctx := testCtx(t)
	src := newSourceRepo(t)
	ws := prepareWS(t, src, true)
	outside := t.TempDir()
	// In the container this would be a link to /etc and a write through it; here the
	// write lands in a directory of the test.
	if err := os.Symlink(outside, filepath.Join(ws.WorkDir, "etc")); err != nil {
		t.Fatal(err)
	}
	writeFile(t, filepath.Join(ws.WorkDir, "etc", "passwd"), "root::0:0::/:/bin/sh\n", 0o644)

	d := capture(t, ws, 1)
	if len(d.Files) != 1 || d.Files[0].Path != "etc" || d.Files[0].NewMode != "120000" {
		t.Fatalf("files %+v, want only the symlink", d.Files)
	}
	var unsafe *UnsafePatchError
	if err := CheckPatch(d.Patch); !errors.As(err, &unsafe) || unsafe.Path != "etc" {
		t.Fatalf("CheckPatch = %v, want unsafe etc", err)
	}
	target := cloneRepo(t, src)
	before := snapshotTree(t, target)
	for _, mode := range []ApplyMode{Worktree, Branch} {
		_, err := Apply(ctx, ApplySpec{Target: target, Patch: d.Patch, Mode: mode, Branch: BranchName(ws.TaskID),
			BaseCommit: d.BaseCommit, ResultCommit: d.ResultCommit, SourceGitDir: ws.GitDir})
		if !errors.Is(err, ErrUnsafePatch) {
			t.Fatalf("%s apply = %v, want ErrUnsafePatch", mode, err)
		}
	}
	if diff := diffTrees(before, snapshotTree(t, target)); diff != "" {
		t.Fatalf("target changed:\n%s", diff)
	}
	if out := testGit(t, target, "branch", "--list", "claude-parallel/*"); out != "" {
		t.Fatalf("branch created: %s", out)
	}
}

// An agent can leave a FIFO where git reads its rules (.gitignore,
// .gitattributes): a capture would block in git for good. It is refused at
// once, naming the path; other FIFOs are simply not captured, and once the
// rule file is a file again the capture works.
func TestCaptureDiff_RefusesARuleFileGitWouldBlockOn(t *testing.T) {
	ws := prepareWS(t, newSourceRepo(t), true)
	writeFile(t, filepath.Join(ws.WorkDir, "dir", "new.txt"), "new\n", 0o644)
	if err := syscall.Mkfifo(filepath.Join(ws.WorkDir, "dir", "pipe"), 0o644); err != nil {
		t.Fatal(err)
	}
	for _, rule := range []string{"dir/.gitignore", ".gitattributes"} {
		p := filepath.Join(ws.WorkDir, filepath.FromSlash(rule))
		if err := syscall.Mkfifo(p, 0o644); err != nil {
			t.Fatal(err)
		}
		ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
		_, err := CaptureDiff(ctx, ws, CaptureOptions{RunNumber: 1})
		cancel()
		if !errors.Is(err, ErrUncapturable) || !strings.Contains(err.Error(), rule+" is a named pipe (FIFO)") {
			t.Fatalf("capture with a FIFO at %s: %v, want ErrUncapturable naming it", rule, err)
		}
		if err := os.Remove(p); err != nil {
			t.Fatal(err)
		}
	}
	d := capture(t, ws, 1)
	if len(d.Files) != 1 || d.Files[0].Path != "dir/new.txt" {
		t.Fatalf("capture once the FIFOs are gone: %+v, want dir/new.txt only (a FIFO is no content)", d.Files)
	}
}
