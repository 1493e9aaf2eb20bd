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
//
// CP_BENCH_LARGE_SOURCE=dir copies dir/large-<n> (a repository made by the
// same generator) instead of generating one, when it is there.
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
	src := largeSourceFor(b, n)
	fmt.Printf("large  | %7d files | repository made in %.1fs\n", n, time.Since(start).Seconds())
	root := filepath.Join(filepath.Dir(src), "workspaces")
	cowRoot := filepath.Join(filepath.Dir(src), "cow-workspaces")
	cow, why := CopyOnWriteAvailable(cowRoot)
	if !cow {
		fmt.Printf("large  | %7d files | copy-on-write unavailable (%s): copy path only\n", n, why)
	}
	b.Cleanup(func() { _ = UnmountAll(cowRoot) })
	var seq int
	prepare := func(snapshot, copyOnWrite bool) (*Workspace, time.Duration) {
		seq++
		r := root
		if copyOnWrite {
			r = cowRoot
		}
		t0 := time.Now()
		ws, err := Prepare(ctx, PrepareSpec{TaskID: fmt.Sprintf("task-%012x", seq), WorkFolder: src,
			IncludeUncommitted: snapshot, Root: r, UID: -1, GID: -1, CopyOnWrite: copyOnWrite})
		if err != nil {
			b.Fatal(err)
		}
		return ws, time.Since(t0)
	}
	// A capture is also measured against git status + git diff on the tree
	// it captures, before and after it (the better of the two): a
	// copy-on-write tree is an overlay, where git's walk costs more than on
	// the source's file system.
	type captured struct{ took, wsFloor time.Duration }
	captureOne := func(ws *Workspace, run int) captured {
		p := filepath.Join(ws.WorkDir, "d0001", "f001.txt")
		if err := os.WriteFile(p, []byte(largeFileContent("d0001/f001.txt")+"one more line "+strconv.Itoa(run)+"\n"), 0o644); err != nil {
			b.Fatal(err)
		}
		before := workspaceFloor(b, ws)
		t0 := time.Now()
		d, err := CaptureDiff(ctx, ws, CaptureOptions{RunNumber: run})
		if err != nil {
			b.Fatal(err)
		}
		took := time.Since(t0)
		if len(d.Files) != 1 {
			b.Fatalf("captured %d files, want 1", len(d.Files))
		}
		return captured{took, min(before, workspaceFloor(b, ws))}
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

	type measure struct {
		what, metric string
		took         time.Duration
		floor        int           // 0 cp -a, 1 git status, 2 status + diff
		wsFloor      time.Duration // a capture's: status + diff on the workspace
	}
	var ms []measure
	var all []*Workspace
	add := func(what, metric string, took time.Duration, floor int) {
		ms = append(ms, measure{what, metric, took, floor, 0})
	}
	addCapture := func(what, metric string, c captured) {
		ms = append(ms, measure{what, metric, c.took, 2, c.wsFloor})
	}
	snap1, t := prepare(true, false)
	add("copy: snapshot, first task", "snapshot", t, 0)
	snap2, t := prepare(true, false)
	add("copy: snapshot, second task", "snapshot2", t, 1)
	co, t := prepare(false, false)
	add("copy: checkout of HEAD", "checkout", t, 0)
	addCapture("copy: capture, one line (snapshot)", "capture", captureOne(snap1, 1))
	addCapture("copy: capture again (a revision)", "capture2", captureOne(snap1, 2))
	addCapture("copy: capture, one line (checkout)", "capture-checkout", captureOne(co, 1))
	all = append(all, snap1, snap2, co)
	if cow {
		c1, t := prepare(true, true)
		add("cow: snapshot, first task (base)", "cow-snapshot", t, 0)
		c2, t := prepare(true, true)
		add("cow: snapshot, later task", "cow-snapshot2", t, 1)
		// The user edits a file meanwhile: the later task writes only it.
		edited := filepath.Join(src, "d0002", "f002.txt")
		if err := os.WriteFile(edited, []byte("edited in the work folder\n"), 0o644); err != nil {
			b.Fatal(err)
		}
		c3, t := prepare(true, true)
		add("cow: snapshot, later, source edited", "cow-snapshot3", t, 1)
		if err := os.WriteFile(edited, []byte(largeFileContent("d0002/f002.txt")), 0o644); err != nil {
			b.Fatal(err)
		}
		cc1, t := prepare(false, true)
		add("cow: checkout, first task (base)", "cow-checkout", t, 0)
		cc2, t := prepare(false, true)
		add("cow: checkout, later task", "cow-checkout2", t, 1)
		addCapture("cow: capture, one line (snapshot)", "cow-capture", captureOne(c2, 1))
		addCapture("cow: capture again (a revision)", "cow-capture2", captureOne(c2, 2))
		addCapture("cow: capture, one line (checkout)", "cow-capture-checkout", captureOne(cc2, 1))
		all = append(all, c1, c2, c3, cc1, cc2)
	}
	for _, ws := range all {
		if err := ws.Remove(); err != nil {
			b.Fatal(err)
		}
	}

	cp2, st2, df2 := floors()
	cp, status, diff := min(cp1, cp2), min(st1, st2), min(df1, df2)
	fmt.Printf("large  | %7d files | floors: cp -a %.2fs, git status %.2fs, git diff %.2fs (best of two, before and after)\n",
		n, cp.Seconds(), status.Seconds(), diff.Seconds())
	for _, m := range ms {
		switch m.floor {
		case 0:
			ratioLine(b, "large", fmt.Sprintf("%7d files", n), m.what, fmt.Sprintf("%s-%dk", m.metric, n/1000), m.took, cp, "cp -a", 1.5, 1)
		case 1:
			ratioLine(b, "large", fmt.Sprintf("%7d files", n), m.what, fmt.Sprintf("%s-%dk", m.metric, n/1000), m.took, status, "git status", 2, 1)
		default:
			ratioLine(b, "large", fmt.Sprintf("%7d files", n), m.what, fmt.Sprintf("%s-%dk", m.metric, n/1000), m.took, status+diff, "status + diff (source)", 2, 0.5)
			ratioLine(b, "large", fmt.Sprintf("%7d files", n), m.what, fmt.Sprintf("%s-ws-%dk", m.metric, n/1000), m.took, m.wsFloor, "status + diff (its tree)", 2, 0.5)
		}
	}
}

// ratioLine prints one measure against its floor and the target, and reports
// the ratio as a benchmark metric.
func ratioLine(b *testing.B, bench, size, what, metric string, took, floor time.Duration, floorName string, targetK, targetPlus float64) {
	ratio := took.Seconds() / floor.Seconds()
	target := targetK*floor.Seconds() + targetPlus
	verdict := "within target"
	if took.Seconds() > target {
		verdict = "OVER target"
	}
	fmt.Printf("%-6s | %s | %-38s %7.2fs | %-22s %6.2fs | ratio %6.2f | target ≤ %.1fx+%.1fs = %.2fs: %s\n",
		bench, size, what, took.Seconds(), floorName, floor.Seconds(), ratio, targetK, targetPlus, target, verdict)
	b.ReportMetric(ratio, "ratio-"+metric)
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

// workspaceFloor times git status + git diff on a workspace's tree as a user
// there would run them: its git dir, work tree, and an index of its own
// (seeded from the capture index, brought up to date once, untimed).
func workspaceFloor(b *testing.B, ws *Workspace) time.Duration {
	b.Helper()
	idx := filepath.Join(ws.GitDir, "bench-floor.index")
	env := testutil.GitEnv("GIT_DIR="+ws.GitDir, "GIT_WORK_TREE="+ws.WorkDir, "GIT_INDEX_FILE="+idx)
	git := func(args ...string) time.Duration {
		cmd := exec.Command("git", args...)
		cmd.Dir = ws.WorkDir
		cmd.Env = env
		t0 := time.Now()
		if out, err := cmd.CombinedOutput(); err != nil && !(len(args) > 0 && args[0] == "update-index") {
			b.Fatalf("git %v: %v: %s", args, err, out)
		}
		return time.Since(t0)
	}
	if _, err := os.Stat(idx); err != nil {
		c, err := os.ReadFile(filepath.Join(ws.GitDir, captureIndex))
		if err != nil {
			b.Fatal(err)
		}
		if err := os.WriteFile(idx, c, 0o644); err != nil {
			b.Fatal(err)
		}
		git("update-index", "-q", "--refresh")
	}
	return git("status", "--porcelain") + git("diff")
}

// largeSourceFor is a new source repository of n files, or a copy (cp -a)
// of <CP_BENCH_LARGE_SOURCE>/large-<n> when there is one, made by the same
// generator earlier: generating 300,000 files takes minutes.
func largeSourceFor(b *testing.B, n int) string {
	ready := filepath.Join(os.Getenv("CP_BENCH_LARGE_SOURCE"), fmt.Sprintf("large-%d", n))
	if os.Getenv("CP_BENCH_LARGE_SOURCE") == "" {
		return newLargeSource(b, n, true)
	}
	if _, err := os.Stat(filepath.Join(ready, ".git")); err != nil {
		return newLargeSource(b, n, true)
	}
	src := filepath.Join(b.TempDir(), "large")
	timeCmd(b, "", "cp", "-a", ready, src)
	// The copy's files have other inodes and ctimes than its index says.
	timeCmd(b, src, "git", "update-index", "-q", "--refresh")
	return src
}
