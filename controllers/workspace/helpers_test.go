package workspace

import (
	"context"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/claude-parallel/claude-parallel/test/testutil"
)

// testGit runs git for test set-up the way a user would, isolated from the machine's
// configuration, with fixed dates so that commit ids are reproducible.
func testGit(t testing.TB, dir string, args ...string) string {
	t.Helper()
	return reproducibleGit.Run(t, dir, args...)
}

var reproducibleGit = testutil.GitRunner{Env: testutil.FixedDates}

func writeFile(t testing.TB, path, content string, perm fs.FileMode) {
	t.Helper()
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, []byte(content), perm); err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(path, perm); err != nil {
		t.Fatal(err)
	}
}

// newSourceRepo is a user's work folder with a few committed files of each kind.
func newSourceRepo(t testing.TB) string {
	t.Helper()
	return reproducibleGit.NewRepo(t, filepath.Join(t.TempDir(), "src"), map[string]string{
		"a.txt":      testutil.Lines("a line", 20),
		"b.txt":      testutil.Lines("b line", 20),
		"bin.dat":    "\x00\x01\x02binary\x00\xff",
		"script.sh":  "#!/bin/sh\necho hi\n",
		"dir/c.txt":  "c\n",
		".gitignore": "*.log\nbuild/\n",
	})
}

func cloneRepo(t *testing.T, src string) string {
	t.Helper()
	dst := filepath.Join(t.TempDir(), "clone")
	testGit(t, filepath.Dir(dst), "clone", "--quiet", "--no-hardlinks", src, dst)
	return dst
}

func testCtx(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	t.Cleanup(cancel)
	return ctx
}

var taskSeq int

func nextTaskID() string {
	taskSeq++
	return fmt.Sprintf("task-%012x", taskSeq)
}

func prepareWS(t *testing.T, src string, includeUncommitted bool) *Workspace {
	t.Helper()
	ws, err := Prepare(testCtx(t), PrepareSpec{
		TaskID: nextTaskID(), WorkFolder: src, IncludeUncommitted: includeUncommitted,
		Root: filepath.Join(t.TempDir(), "workspaces"), UID: -1, GID: -1,
	})
	if err != nil {
		t.Fatalf("Prepare: %v", err)
	}
	return ws
}

func capture(t *testing.T, ws *Workspace, run int) *Diff {
	t.Helper()
	d, err := CaptureDiff(testCtx(t), ws, CaptureOptions{RunNumber: run})
	if err != nil {
		t.Fatalf("CaptureDiff: %v", err)
	}
	return d
}

type treeEntry struct{ mode, data string }

// snapshotTree describes every file and symlink below dir, skipping .git.
func snapshotTree(t *testing.T, dir string) map[string]treeEntry {
	t.Helper()
	out := map[string]treeEntry{}
	err := filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if d.Name() == ".git" {
			return filepath.SkipDir
		}
		rel, _ := filepath.Rel(dir, p)
		fi, err := os.Lstat(p)
		if err != nil {
			return err
		}
		switch {
		case fi.Mode()&fs.ModeSymlink != 0:
			target, err := os.Readlink(p)
			if err != nil {
				return err
			}
			out[rel] = treeEntry{"120000", target}
		case fi.Mode().IsRegular():
			b, err := os.ReadFile(p)
			if err != nil {
				return err
			}
			mode := "100644"
			if fi.Mode()&0o111 != 0 {
				mode = "100755"
			}
			out[rel] = treeEntry{mode, string(b)}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return out
}

func diffTrees(want, got map[string]treeEntry) string {
	var b strings.Builder
	for p, w := range want {
		g, ok := got[p]
		switch {
		case !ok:
			fmt.Fprintf(&b, "missing %s\n", p)
		case g.mode != w.mode:
			fmt.Fprintf(&b, "%s: mode %s, want %s\n", p, g.mode, w.mode)
		case g.data != w.data:
			fmt.Fprintf(&b, "%s: content differs (%d bytes, want %d)\n", p, len(g.data), len(w.data))
		}
	}
	for p := range got {
		if _, ok := want[p]; !ok {
			fmt.Fprintf(&b, "unexpected %s\n", p)
		}
	}
	return b.String()
}

func assertNoFile(t *testing.T, path string) {
	t.Helper()
	if _, err := os.Lstat(path); err == nil {
		t.Errorf("%s exists; it must not", path)
	}
}
