package workspace

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/claude-parallel/claude-parallel/test/testutil"
)

// largeFilesPerDir is how many files newLargeSource puts in each folder,
// the shape of the repository the issue measured (1,000 folders x 100).
const largeFilesPerDir = 100

// largeFileContent is the content of one file of newLargeSource.
func largeFileContent(p string) string { return "file " + p + "\nline two\nline three\n" }

// newLargeSource is a committed work folder of n small files in folders of
// largeFilesPerDir, made fast: git fast-import packs the contents into one
// commit (git add would write a loose object per file, several times slower).
// With workTree the files are also written, directly, by a few goroutines
// meanwhile, and the index is then read from that commit and refreshed;
// without, only the repository exists (enough for a checkout of HEAD), which
// spares a test the slowest part on a loaded machine.
func newLargeSource(tb testing.TB, n int, workTree bool) string {
	tb.Helper()
	top := filepath.Join(tb.TempDir(), "large")
	testGit(tb, filepath.Dir(top), "init", "--quiet", top)
	if workTree {
		writeFile(tb, filepath.Join(top, ".gitignore"), "*.log\nbuild/\n", 0o644)
	}

	paths := make([]string, n)
	for i := range paths {
		paths[i] = fmt.Sprintf("d%04d/f%03d.txt", i/largeFilesPerDir, i%largeFilesPerDir)
	}
	var wg sync.WaitGroup
	errs := make(chan error, 4)
	for w := range 4 {
		if !workTree {
			break
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := w * largeFilesPerDir; i < n; i += 4 * largeFilesPerDir {
				dir := filepath.Join(top, filepath.Dir(paths[i]))
				if err := os.Mkdir(dir, 0o755); err != nil {
					errs <- err
					return
				}
				for j := i; j < min(n, i+largeFilesPerDir); j++ {
					if err := os.WriteFile(filepath.Join(top, paths[j]), []byte(largeFileContent(paths[j])), 0o644); err != nil {
						errs <- err
						return
					}
				}
			}
		}()
	}

	cmd := exec.Command("git", "-C", top, "fast-import", "--quiet")
	cmd.Env = testutil.GitEnv(testutil.FixedDates...)
	in, err := cmd.StdinPipe()
	if err != nil {
		tb.Fatal(err)
	}
	var stderr safeBuffer
	cmd.Stderr = &stderr
	if err := cmd.Start(); err != nil {
		tb.Fatal(err)
	}
	bw := bufio.NewWriterSize(in, 1<<20)
	fmt.Fprintf(bw, "commit refs/heads/main\ncommitter t <t@example.com> 1700000000 +0000\ndata 5\nlarge\n")
	gi := "*.log\nbuild/\n"
	fmt.Fprintf(bw, "M 100644 inline .gitignore\ndata %d\n%s\n", len(gi), gi)
	for _, p := range paths {
		c := largeFileContent(p)
		fmt.Fprintf(bw, "M 100644 inline %s\ndata %d\n%s\n", p, len(c), c)
	}
	if err := bw.Flush(); err != nil {
		tb.Fatal(err)
	}
	in.Close()
	if err := cmd.Wait(); err != nil {
		tb.Fatalf("fast-import: %v: %s", err, stderr.String())
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		tb.Fatal(err)
	}
	testGit(tb, top, "symbolic-ref", "HEAD", "refs/heads/main")
	if workTree {
		testGit(tb, top, "reset", "--quiet")
	}
	return top
}

// safeBuffer collects a process's stderr.
type safeBuffer struct {
	mu sync.Mutex
	b  []byte
}

func (s *safeBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.b = append(s.b, p...)
	return len(p), nil
}

func (s *safeBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return string(s.b)
}

// newLargeCommit is a repository whose HEAD holds n files (n a multiple of
// largeFilesPerDir) in folders of largeFilesPerDir, with no work tree: the
// folders are one and the same tree, so git stores largeFilesPerDir blobs and
// two trees whatever n is. A checkout still writes n files and a capture still
// looks at n paths, but making it takes a second where fast-import of n
// distinct files takes minutes on a loaded machine.
func newLargeCommit(tb testing.TB, n int) string {
	tb.Helper()
	top := filepath.Join(tb.TempDir(), "large")
	testGit(tb, filepath.Dir(top), "init", "--quiet", top)
	var blobs strings.Builder
	gi := "*.log\nbuild/\n"
	fmt.Fprintf(&blobs, "blob\nmark :%d\ndata %d\n%s\n", largeFilesPerDir+1, len(gi), gi)
	for i := range largeFilesPerDir {
		p := fmt.Sprintf("f%03d.txt", i)
		fmt.Fprintf(&blobs, "blob\nmark :%d\ndata %d\n%s\n", i+1, len(largeFileContent(p)), largeFileContent(p))
	}
	gitStdin(tb, top, []byte(blobs.String()), "fast-import", "--quiet", "--export-marks="+filepath.Join(top, ".git", "marks"))
	marks := strings.Fields(testutil.ReadFile(tb, filepath.Join(top, ".git", "marks")))
	var dir, root strings.Builder
	for i := 0; i+1 < len(marks); i += 2 {
		if m := marks[i]; m == fmt.Sprintf(":%d", largeFilesPerDir+1) {
			fmt.Fprintf(&root, "100644 blob %s\t.gitignore\n", marks[i+1])
		} else {
			var k int
			fmt.Sscanf(m, ":%d", &k)
			fmt.Fprintf(&dir, "100644 blob %s\tf%03d.txt\n", marks[i+1], k-1)
		}
	}
	sub := gitStdin(tb, top, []byte(dir.String()), "mktree")
	for d := range n / largeFilesPerDir {
		fmt.Fprintf(&root, "040000 tree %s\td%04d\n", sub, d)
	}
	tree := gitStdin(tb, top, []byte(root.String()), "mktree")
	commit := gitStdin(tb, top, nil, "commit-tree", "-m", "large", tree)
	testGit(tb, top, "update-ref", "HEAD", commit)
	return top
}

// TestCaptureDiff_LargeRepository checks out a repository of 100,000 files
// and captures an agent's small change twice (a revision), in a copied
// workspace and in a copy-on-write one (the second task on a base, whose
// tree was not written again). Checking each path against the ignore rules
// made a capture quadratic: it never ended at this size. No time is asserted
// (the machine may be loaded); each capture has testCtx's two minutes.
func TestCaptureDiff_LargeRepository(t *testing.T) {
	const n = 100_000
	start := time.Now()
	src := newLargeCommit(t, n)
	t.Logf("repository of %d files made in %v", n, time.Since(start))
	// Writing 100,000 files took over two minutes (testCtx) at a load
	// average of 30 on two cores.
	ctx, cancel := context.WithTimeout(context.Background(), 15*time.Minute)
	defer cancel()
	t.Run("copy", func(t *testing.T) {
		start := time.Now()
		ws := prepareWithin(t, ctx, filepath.Join(t.TempDir(), "workspaces"), src, false, false)
		t.Logf("checked out in %v", time.Since(start))
		largeCaptureRuns(t, ws)
	})
	t.Run("copy-on-write", func(t *testing.T) {
		root := cowRoot(t)
		start := time.Now()
		first := prepareWithin(t, ctx, root, src, false, true)
		t.Logf("first task (base checked out) in %v", time.Since(start))
		start = time.Now()
		ws := prepareWithin(t, ctx, root, src, false, true)
		t.Logf("second task on the base in %v", time.Since(start))
		if ws.Overlay != first.Overlay {
			t.Fatalf("second task on base %q, first on %q", ws.Overlay, first.Overlay)
		}
		largeCaptureRuns(t, ws)
		// The first task's tree is the base's still.
		if _, err := CaptureDiff(testCtx(t), first, CaptureOptions{RunNumber: 1}); !errors.Is(err, ErrNoChanges) {
			t.Fatalf("first task captured %v, want ErrNoChanges", err)
		}
	})
}

func largeCaptureRuns(t *testing.T, ws *Workspace) {
	t.Helper()
	w := ws.WorkDir
	if entries, err := os.ReadDir(filepath.Join(w, "d0999")); err != nil || len(entries) != largeFilesPerDir {
		t.Fatalf("checkout: %d files in d0999, %v", len(entries), err)
	}
	writeFile(t, filepath.Join(w, "d0500", "f050.txt"), largeFileContent("f050.txt")+"one more line\n", 0o644)
	writeFile(t, filepath.Join(w, "d0007", "new.txt"), "new\n", 0o644)
	writeFile(t, filepath.Join(w, "d0008", "out.log"), "ignored\n", 0o644)
	if err := os.Remove(filepath.Join(w, "d0009", "f009.txt")); err != nil {
		t.Fatal(err)
	}
	start := time.Now()
	d := capture(t, ws, 1)
	t.Logf("captured in %v", time.Since(start))
	want := "added d0007/new.txt,deleted d0009/f009.txt,modified d0500/f050.txt"
	if got := strings.Join(capturedPaths(d), ","); got != want {
		t.Fatalf("run 1 captured %s, want %s", got, want)
	}
	if d.Additions != 2 || d.Deletions != 3 {
		t.Errorf("run 1: +%d -%d, want +2 -3", d.Additions, d.Deletions)
	}
	// A revision: one more file changes, the new one goes again.
	writeFile(t, filepath.Join(w, "d0999", "f099.txt"), "rewritten\n", 0o644)
	if err := os.Remove(filepath.Join(w, "d0007", "new.txt")); err != nil {
		t.Fatal(err)
	}
	d = capture(t, ws, 2)
	want = "deleted d0009/f009.txt,modified d0500/f050.txt,modified d0999/f099.txt"
	if got := strings.Join(capturedPaths(d), ","); got != want {
		t.Fatalf("run 2 captured %s, want %s", got, want)
	}
}

// gitStdin is testGit with standard input.
func gitStdin(tb testing.TB, dir string, stdin []byte, args ...string) string {
	tb.Helper()
	if stdin == nil {
		stdin = []byte{}
	}
	out, err := reproducibleGit.Err(dir, stdin, args...)
	if err != nil {
		tb.Fatal(err)
	}
	return out
}
