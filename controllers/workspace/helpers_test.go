package workspace

import (
	"bytes"
	"context"
	"fmt"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// testGit runs git for test set-up the way a user would, isolated from the machine's
// configuration.
func testGit(t testing.TB, dir string, args ...string) string {
	t.Helper()
	cmd := exec.Command("git", args...)
	cmd.Dir = dir
	cmd.Env = []string{
		"PATH=" + os.Getenv("PATH"),
		"HOME=" + t.TempDir(),
		"GIT_CONFIG_NOSYSTEM=1",
		"GIT_CONFIG_GLOBAL=/dev/null",
		"GIT_AUTHOR_NAME=Test User", "GIT_AUTHOR_EMAIL=test@example.com",
		"GIT_COMMITTER_NAME=Test User", "GIT_COMMITTER_EMAIL=test@example.com",
		"GIT_AUTHOR_DATE=1700000000 +0000", "GIT_COMMITTER_DATE=1700000000 +0000",
	}
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("git %s: %v: %s", strings.Join(args, " "), err, stderr.String())
	}
	return strings.TrimRight(string(out), "\n")
}

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

func readFile(t *testing.T, path string) string {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

func numberedLines(n int, prefix string) string {
	var b strings.Builder
	for i := 1; i <= n; i++ {
		fmt.Fprintf(&b, "%s line %d\n", prefix, i)
	}
	return b.String()
}

// newSourceRepo is a user's work folder with a few committed files of each kind.
func newSourceRepo(t testing.TB) string {
	t.Helper()
	dir := filepath.Join(t.TempDir(), "src")
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	testGit(t, dir, "init", "--quiet", "--initial-branch=main")
	writeFile(t, filepath.Join(dir, "a.txt"), numberedLines(20, "a"), 0o644)
	writeFile(t, filepath.Join(dir, "b.txt"), numberedLines(20, "b"), 0o644)
	writeFile(t, filepath.Join(dir, "bin.dat"), "\x00\x01\x02binary\x00\xff", 0o644)
	writeFile(t, filepath.Join(dir, "script.sh"), "#!/bin/sh\necho hi\n", 0o644)
	writeFile(t, filepath.Join(dir, "dir", "c.txt"), "c\n", 0o644)
	writeFile(t, filepath.Join(dir, ".gitignore"), "*.log\nbuild/\n", 0o644)
	testGit(t, dir, "add", "-A")
	testGit(t, dir, "commit", "--quiet", "-m", "initial")
	return dir
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
