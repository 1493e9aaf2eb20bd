package workspace

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"testing"
	"time"

	"github.com/claude-parallel/claude-parallel/test/testutil"
)

// BenchmarkHeavyRepositories measures snapshot, capture and apply (issue 13,
// item 6) on a repository holding 1 GB of binaries (100 files of 10 MB that
// do not compress) and on one with a deep history (100,000 commits over
// 1,024 files), each against `git status` and `git diff` on the same
// repository. CP_BENCH_HEAVY=binaries or history runs one of them.
//
//	go test -run '^$' -bench HeavyRepositories -benchtime 1x -timeout 60m ./controllers/workspace/
func BenchmarkHeavyRepositories(b *testing.B) {
	ctx := context.Background()
	for range b.N {
		for _, kind := range []string{"binaries", "history"} {
			if env := os.Getenv("CP_BENCH_HEAVY"); env != "" && env != kind {
				continue
			}
			start := time.Now()
			var src string
			if kind == "binaries" {
				src = newBinarySource(b, 100, 10<<20)
			} else {
				src = newHistorySource(b, 100_000, 1_024)
			}
			fmt.Printf("heavy  | %-8s | repository made in %.1fs\n", kind, time.Since(start).Seconds())
			benchHeavy(b, ctx, kind, src)
		}
	}
}

func benchHeavy(b *testing.B, ctx context.Context, kind, src string) {
	root := filepath.Join(filepath.Dir(src), "workspaces")
	cowRoot := filepath.Join(filepath.Dir(src), "cow-workspaces")
	cow, why := CopyOnWriteAvailable(cowRoot)
	if !cow {
		fmt.Printf("heavy  | %-8s | copy-on-write unavailable (%s): copy path only\n", kind, why)
	}
	b.Cleanup(func() { _ = UnmountAll(cowRoot) })
	var seq int
	prepare := func(copyOnWrite bool) (*Workspace, time.Duration) {
		seq++
		r := root
		if copyOnWrite {
			r = cowRoot
		}
		t0 := time.Now()
		ws, err := Prepare(ctx, PrepareSpec{TaskID: fmt.Sprintf("task-%012x", seq), WorkFolder: src,
			IncludeUncommitted: true, Root: r, UID: -1, GID: -1, CopyOnWrite: copyOnWrite})
		if err != nil {
			b.Fatal(err)
		}
		return ws, time.Since(t0)
	}
	status := timeGit(b, src, "status", "--porcelain")
	diff := timeGit(b, src, "diff")
	cpDst := filepath.Join(filepath.Dir(src), "cp-a")
	cp := timeCmd(b, "", "cp", "-a", src, cpDst)
	if err := os.RemoveAll(cpDst); err != nil {
		b.Fatal(err)
	}
	fmt.Printf("heavy  | %-8s | floors: cp -a %.2fs, git status %.2fs, git diff %.2fs\n", kind, cp.Seconds(), status.Seconds(), diff.Seconds())
	size := fmt.Sprintf("%-8s", kind)

	copied, t := prepare(false)
	ratioLine(b, "heavy", size, "copy: snapshot", kind+"-snapshot", t, cp, "cp -a", 1.5, 1)
	ws := copied
	if cow {
		c1, t := prepare(true)
		ratioLine(b, "heavy", size, "cow: snapshot, first task (base)", kind+"-cow-snapshot", t, cp, "cp -a", 1.5, 1)
		c2, t := prepare(true)
		ratioLine(b, "heavy", size, "cow: snapshot, later task", kind+"-cow-snapshot2", t, status, "git status", 2, 1)
		ws = c2
		defer c1.Remove()
		defer c2.Remove()
	}
	defer copied.Remove()

	// The agent edits a small text file and rewrites a 1 MB part of the tree.
	writeFile(b, filepath.Join(ws.WorkDir, "notes.txt"), "notes\nchanged by the agent\n", 0o644)
	chunk := make([]byte, 1<<20)
	rng := rand.NewChaCha8([32]byte{9})
	_, _ = rng.Read(chunk)
	writeFile(b, filepath.Join(ws.WorkDir, "agent.bin"), string(chunk), 0o644)
	t0 := time.Now()
	d, err := CaptureDiff(ctx, ws, CaptureOptions{RunNumber: 1})
	if err != nil {
		b.Fatal(err)
	}
	ratioLine(b, "heavy", size, "capture (text + 1 MB binary)", kind+"-capture", time.Since(t0), status+diff, "git status + git diff", 2, 0.5)
	t0 = time.Now()
	res, err := Apply(ctx, ApplySpec{Target: src, Patch: d.Patch, BaseCommit: d.BaseCommit, ResultCommit: d.ResultCommit, SourceGitDir: ws.GitDir})
	if err != nil || res.Outcome != Applied {
		b.Fatalf("apply: %v %+v", err, res)
	}
	ratioLine(b, "heavy", size, "apply to the work folder", kind+"-apply", time.Since(t0), status+diff, "git status + git diff", 2, 0.5)
}

// newBinarySource is a committed work folder of files of size random bytes
// each, and a small text file; fast-import packs them as they are written.
func newBinarySource(tb testing.TB, files, size int) string {
	tb.Helper()
	top := filepath.Join(tb.TempDir(), "binaries")
	testGit(tb, filepath.Dir(top), "init", "--quiet", top)
	cmd, bw := startFastImport(tb, top)
	fmt.Fprintf(bw, "commit refs/heads/main\ncommitter t <t@example.com> 1700000000 +0000\ndata 8\nbinaries\n")
	notes := "notes\n"
	fmt.Fprintf(bw, "M 100644 inline notes.txt\ndata %d\n%s\n", len(notes), notes)
	writeFile(tb, filepath.Join(top, "notes.txt"), notes, 0o644)
	rng := rand.NewChaCha8([32]byte{1})
	buf := make([]byte, size)
	for i := range files {
		_, _ = rng.Read(buf)
		p := fmt.Sprintf("assets/%02d/blob%03d.bin", i/10, i)
		writeFile(tb, filepath.Join(top, p), string(buf), 0o644)
		fmt.Fprintf(bw, "M 100644 inline %s\ndata %d\n", p, size)
		bw.Write(buf)
		bw.WriteString("\n")
	}
	finishFastImport(tb, cmd, bw)
	testGit(tb, top, "symbolic-ref", "HEAD", "refs/heads/main")
	testGit(tb, top, "reset", "--quiet")
	return top
}

// newHistorySource is a work folder whose HEAD has commits commits, each
// changing one of files small files, in folders of 32 (so that a commit
// stores small trees: one flat folder of 1,000 made fast-import write 100,000
// trees of 1,000 entries, minutes on a loaded machine).
func newHistorySource(tb testing.TB, commits, files int) string {
	tb.Helper()
	top := filepath.Join(tb.TempDir(), "history")
	testGit(tb, filepath.Dir(top), "init", "--quiet", top)
	cmd, bw := startFastImport(tb, top)
	for c := range commits {
		msg := "commit " + strconv.Itoa(c)
		fmt.Fprintf(bw, "commit refs/heads/main\ncommitter t <t@example.com> %d +0000\ndata %d\n%s\n", 1700000000+c, len(msg), msg)
		if c == 0 {
			for f := range files {
				content := fmt.Sprintf("file %d\n", f)
				fmt.Fprintf(bw, "M 100644 inline %s\ndata %d\n%s\n", historyPath(f), len(content), content)
			}
			notes := "notes\n"
			fmt.Fprintf(bw, "M 100644 inline notes.txt\ndata %d\n%s\n", len(notes), notes)
			continue
		}
		content := fmt.Sprintf("file %d\nchanged by commit %d\n", c%files, c)
		fmt.Fprintf(bw, "M 100644 inline %s\ndata %d\n%s\n", historyPath(c%files), len(content), content)
	}
	finishFastImport(tb, cmd, bw)
	testGit(tb, top, "symbolic-ref", "HEAD", "refs/heads/main")
	testGit(tb, top, "reset", "--quiet", "--hard")
	return top
}

// fastImport is a running git fast-import and its input.
type fastImport struct {
	cmd *exec.Cmd
	in  io.WriteCloser
}

func historyPath(f int) string { return fmt.Sprintf("src/d%02d/f%04d.txt", f/32, f) }

func startFastImport(tb testing.TB, top string) (*fastImport, *bufio.Writer) {
	tb.Helper()
	cmd := exec.Command("git", "-C", top, "fast-import", "--quiet")
	cmd.Env = testutil.GitEnv(testutil.FixedDates...)
	in, err := cmd.StdinPipe()
	if err != nil {
		tb.Fatal(err)
	}
	cmd.Stderr = os.Stderr
	if err := cmd.Start(); err != nil {
		tb.Fatal(err)
	}
	return &fastImport{cmd, in}, bufio.NewWriterSize(in, 1<<20)
}

func finishFastImport(tb testing.TB, fi *fastImport, bw *bufio.Writer) {
	tb.Helper()
	if err := bw.Flush(); err != nil {
		tb.Fatal(err)
	}
	fi.in.Close()
	if err := fi.cmd.Wait(); err != nil {
		tb.Fatalf("fast-import: %v", err)
	}
}
