package workspace

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/claude-parallel/claude-parallel/test/testutil"
)

// BenchmarkLargeRepository measures a workspace's snapshot and capture on
// repositories of 10,000, 100,000 and 300,000 small distinct files (folders of
// 100; CP_BENCH_LARGE_FILES=n,n,... picks other sizes) against the physical
// floor measured in the same run on the same tree: `cp -a` of the work folder
// for writing a workspace, `git status` + `git diff` for finding what changed.
// It prints one line per measure with its ratio; the targets (issue 13) are
// ≤ 1.5 x cp -a + 1 s for the first snapshot of a base, ≤ 2 x git status + 1 s
// for a later one, and ≤ 2 x (status + diff) + 0.5 s for a capture.
//
//	go test -run '^$' -bench LargeRepository -benchtime 1x -timeout 60m ./controllers/workspace/
func BenchmarkLargeRepository(b *testing.B) {
	sizes := []int{10_000, 100_000, 300_000}
	if env := os.Getenv("CP_BENCH_LARGE_FILES"); env != "" {
		sizes = nil
		for _, f := range strings.Split(env, ",") {
			n, err := strconv.Atoi(strings.TrimSpace(f))
			if err != nil || n < largeFilesPerDir {
				b.Fatalf("CP_BENCH_LARGE_FILES=%q: want sizes of at least %d", env, largeFilesPerDir)
			}
			sizes = append(sizes, n)
		}
	}
	ctx := context.Background()
	for range b.N {
		for _, n := range sizes {
			benchLargeRepository(b, ctx, n)
		}
	}
}

func benchLargeRepository(b *testing.B, ctx context.Context, n int) {
	start := time.Now()
	src := newLargeSource(b, n, true)
	fmt.Printf("large  | %7d files | repository made in %.1fs\n", n, time.Since(start).Seconds())
	root := filepath.Join(filepath.Dir(src), "workspaces")
	var seq int
	prepare := func(snapshot bool) (*Workspace, time.Duration) {
		seq++
		t0 := time.Now()
		ws, err := Prepare(ctx, PrepareSpec{TaskID: fmt.Sprintf("task-%012x", seq), WorkFolder: src,
			IncludeUncommitted: snapshot, Root: root, UID: -1, GID: -1})
		if err != nil {
			b.Fatal(err)
		}
		return ws, time.Since(t0)
	}
	captureOne := func(ws *Workspace, run int) time.Duration {
		p := filepath.Join(ws.WorkDir, "d0001", "f001.txt")
		if err := os.WriteFile(p, []byte(largeFileContent("d0001/f001.txt")+"one more line "+strconv.Itoa(run)+"\n"), 0o644); err != nil {
			b.Fatal(err)
		}
		t0 := time.Now()
		d, err := CaptureDiff(ctx, ws, CaptureOptions{RunNumber: run})
		if err != nil {
			b.Fatal(err)
		}
		if len(d.Files) != 1 {
			b.Fatalf("captured %d files, want 1", len(d.Files))
		}
		return time.Since(t0)
	}

	// The floors, on the source, before and after the workspaces (the load of
	// this machine moves); each ratio takes the smaller of the two.
	floors := func() (cp, status, diff time.Duration) {
		dst := filepath.Join(filepath.Dir(src), "cp-a")
		cp = timeCmd(b, "", "cp", "-a", src, dst)
		if err := os.RemoveAll(dst); err != nil {
			b.Fatal(err)
		}
		status = timeGit(b, src, "status", "--porcelain")
		diff = timeGit(b, src, "diff")
		return cp, status, diff
	}
	cp1, st1, df1 := floors()

	snap1, tSnap1 := prepare(true)
	snap2, tSnap2 := prepare(true)
	co, tCheckout := prepare(false)
	tCapSnap := captureOne(snap1, 1)
	tCapSnap2 := captureOne(snap1, 2)
	tCapCheckout := captureOne(co, 1)
	for _, ws := range []*Workspace{snap1, snap2, co} {
		if err := ws.Remove(); err != nil {
			b.Fatal(err)
		}
	}

	cp2, st2, df2 := floors()
	cp, status, diff := min(cp1, cp2), min(st1, st2), min(df1, df2)
	fmt.Printf("large  | %7d files | floors: cp -a %.2fs, git status %.2fs, git diff %.2fs (best of two, before and after)\n",
		n, cp.Seconds(), status.Seconds(), diff.Seconds())
	line := func(what, metric string, took, floor time.Duration, floorName string, targetK, targetPlus float64) {
		ratio := took.Seconds() / floor.Seconds()
		target := targetK*floor.Seconds() + targetPlus
		verdict := "within target"
		if took.Seconds() > target {
			verdict = "OVER target"
		}
		fmt.Printf("large  | %7d files | %-34s %7.2fs | %-22s %6.2fs | ratio %5.2f | target ≤ %.1fx+%.1fs = %.2fs: %s\n",
			n, what, took.Seconds(), floorName, floor.Seconds(), ratio, targetK, targetPlus, target, verdict)
		b.ReportMetric(ratio, fmt.Sprintf("ratio-%s-%dk", metric, n/1000))
	}
	line("snapshot, first task on the base", "snapshot", tSnap1, cp, "cp -a", 1.5, 1)
	line("snapshot, second task on the base", "snapshot2", tSnap2, status, "git status", 2, 1)
	line("checkout of HEAD", "checkout", tCheckout, cp, "cp -a", 1.5, 1)
	line("capture, one line changed (snapshot)", "capture", tCapSnap, status+diff, "git status + git diff", 2, 0.5)
	line("capture again (a revision)", "capture2", tCapSnap2, status+diff, "git status + git diff", 2, 0.5)
	line("capture, one line changed (checkout)", "capture-checkout", tCapCheckout, status+diff, "git status + git diff", 2, 0.5)
}

// timeGit times one plain git command in dir, as a user would run it.
func timeGit(b *testing.B, dir string, args ...string) time.Duration {
	return timeCmd(b, dir, "git", args...)
}

func timeCmd(b *testing.B, dir, name string, args ...string) time.Duration {
	b.Helper()
	cmd := exec.Command(name, args...)
	cmd.Dir = dir
	cmd.Env = testutil.GitEnv()
	t0 := time.Now()
	if out, err := cmd.CombinedOutput(); err != nil {
		b.Fatalf("%s %v: %v: %s", name, args, err, out)
	}
	return time.Since(t0)
}
