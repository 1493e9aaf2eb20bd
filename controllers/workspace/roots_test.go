package workspace

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io/fs"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/claude-parallel/claude-parallel/test/testutil"
)

// rootsFixture is an allowed root holding a work folder, and outside it a
// clone of that folder holding a canary, which nothing may read or write.
type rootsFixture struct {
	root, src, outside, canary string
}

func newRootsFixture(t *testing.T) rootsFixture {
	t.Helper()
	base := t.TempDir()
	f := rootsFixture{root: filepath.Join(base, "root"), canary: "CANARY-" + strconv.FormatUint(rand.Uint64(), 16)}
	f.src = reproducibleGit.NewRepo(t, filepath.Join(f.root, "src"), map[string]string{
		"a.txt": "a\n", "dir/b.txt": "b\n",
	})
	f.outside = filepath.Join(base, "outside", "src")
	if err := os.MkdirAll(filepath.Dir(f.outside), 0o755); err != nil {
		t.Fatal(err)
	}
	testGit(t, filepath.Dir(f.outside), "clone", "--quiet", "--no-local", "--", f.src, f.outside)
	writeFile(t, filepath.Join(f.outside, "canary.txt"), f.canary+"\n", 0o644)
	testGit(t, f.outside, "add", "canary.txt")
	testGit(t, f.outside, "commit", "--quiet", "-m", "canary")
	writeFile(t, filepath.Join(f.outside, "a.txt"), "a\n"+f.canary+"\n", 0o644)
	writeFile(t, filepath.Join(f.outside, "untracked.txt"), f.canary+"\n", 0o644)
	return f
}

func (f rootsFixture) roots() Roots { return Roots{f.root} }

// swap does `mv src src.real; ln -s outside src`; unswap undoes it.
func (f rootsFixture) swap() error {
	if err := os.Rename(f.src, f.src+".real"); err != nil {
		return err
	}
	return os.Symlink(f.outside, f.src)
}

func (f rootsFixture) unswap() error {
	if err := os.Remove(f.src); err != nil {
		return err
	}
	return os.Rename(f.src+".real", f.src)
}

// hashTree hashes every entry below dir, .git included.
func hashTree(t testing.TB, dir string) string {
	t.Helper()
	h := sha256.New()
	err := filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		fi, err := d.Info()
		if err != nil {
			return err
		}
		fmt.Fprintf(h, "%q %v %d\n", p, fi.Mode(), fi.ModTime().UnixNano())
		switch {
		case fi.Mode()&fs.ModeSymlink != 0:
			target, _ := os.Readlink(p)
			fmt.Fprintf(h, "-> %q\n", target)
		case fi.Mode().IsRegular():
			b, err := os.ReadFile(p)
			if err != nil {
				return err
			}
			h.Write(b)
		}
		return nil
	})
	if err != nil {
		t.Fatalf("hash %s: %v", dir, err)
	}
	return hex.EncodeToString(h.Sum(nil))
}

// holdsCanary reports files below dir containing the canary.
func holdsCanary(t testing.TB, dir, canary string) []string {
	t.Helper()
	var found []string
	_ = filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err == nil && d.Type().IsRegular() {
			if b, err := os.ReadFile(p); err == nil && bytes.Contains(b, []byte(canary)) {
				found = append(found, p)
			}
		}
		return nil
	})
	return found
}

func TestPrepare_RefusesWorkFolderSwappedOutsideRoots(t *testing.T) {
	f := newRootsFixture(t)
	if err := f.swap(); err != nil {
		t.Fatal(err)
	}
	root := filepath.Join(t.TempDir(), "workspaces")
	_, err := Prepare(testCtx(t), PrepareSpec{TaskID: nextTaskID(), WorkFolder: f.src, Root: root, UID: -1, GID: -1,
		IncludeUncommitted: true, AllowedRoots: f.roots()})
	var oe *OutsideRootsError
	if !errors.Is(err, ErrOutsideAllowedRoots) || !errors.As(err, &oe) || oe.Path != f.src {
		t.Fatalf("Prepare of a folder swapped outside: %v; want an OutsideRootsError naming %s", err, f.src)
	}
	if found := holdsCanary(t, root, f.canary); len(found) > 0 {
		t.Fatalf("canary copied: %v", found)
	}
	// A symlink that stays inside the roots is followed.
	if err := f.unswap(); err != nil {
		t.Fatal(err)
	}
	link := filepath.Join(f.root, "link")
	if err := os.Symlink(f.src, link); err != nil {
		t.Fatal(err)
	}
	ws, err := Prepare(testCtx(t), PrepareSpec{TaskID: nextTaskID(), WorkFolder: link, Root: root, UID: -1, GID: -1,
		AllowedRoots: f.roots()})
	if err != nil || ws.SourceTop != f.src {
		t.Fatalf("Prepare through a symlink inside the root: %+v, %v", ws, err)
	}
}

func TestApply_GitFileOutsideRootsIsRefused(t *testing.T) {
	f := newRootsFixture(t)
	ws, d := agentDiff(t, f.src, func(w string) { writeFile(t, filepath.Join(w, "new.txt"), "new\n", 0o644) })
	victim := filepath.Join(f.root, "victim")
	writeFile(t, filepath.Join(victim, ".git"), "gitdir: "+filepath.Join(f.outside, ".git")+"\n", 0o644)
	before := hashTree(t, filepath.Dir(f.outside))
	for _, mode := range []ApplyMode{Worktree, Branch} {
		_, err := Apply(testCtx(t), ApplySpec{Target: victim, Patch: d.Patch, Mode: mode, Branch: "claude-parallel/x",
			BaseCommit: d.BaseCommit, ResultCommit: d.ResultCommit, SourceGitDir: ws.GitDir, AllowedRoots: f.roots()})
		if !errors.Is(err, ErrOutsideAllowedRoots) || !strings.Contains(err.Error(), filepath.Join(f.outside, ".git")) {
			t.Errorf("%s apply to a folder whose .git points outside: %v", mode, err)
		}
	}
	if hashTree(t, filepath.Dir(f.outside)) != before {
		t.Error("the outside repository changed")
	}
}

// TestRoots_SwapRaceNeverLeaves hammers the window between the check and
// the use: one goroutine swaps the folder for a symlink to the outside clone
// and back as fast as it can, while snapshots, dry runs and applies in both
// modes run on it in a loop. Whatever each call answers, nothing outside may
// change and no snapshot may hold the canary.
func TestRoots_SwapRaceNeverLeaves(t *testing.T) {
	f := newRootsFixture(t)
	ctx := testCtx(t)
	wsRoot := filepath.Join(t.TempDir(), "workspaces")
	type change struct {
		ws *Workspace
		d  *Diff
	}
	var changes []change
	for i := range 6 {
		ws, d := agentDiff(t, f.src, func(w string) {
			writeFile(t, filepath.Join(w, fmt.Sprintf("new-%d.txt", i)), "new\n", 0o644)
			writeFile(t, filepath.Join(w, "dir", fmt.Sprintf("deep-%d.txt", i)), "deep\n", 0o644)
		})
		changes = append(changes, change{ws, d})
	}
	before := hashTree(t, filepath.Dir(f.outside))

	var stop atomic.Bool
	var wg sync.WaitGroup
	var swaps int
	wg.Go(func() {
		for !stop.Load() {
			if err := f.swap(); err != nil {
				t.Errorf("swap: %v", err)
				return
			}
			swaps++
			time.Sleep(time.Duration(rand.IntN(15000)) * time.Microsecond)
			if err := f.unswap(); err != nil {
				t.Errorf("unswap: %v", err)
				return
			}
			time.Sleep(time.Duration(rand.IntN(15000)) * time.Microsecond)
		}
	})
	outcomes := map[string]int{}
	end := time.Now().Add(3 * time.Second)
	for i := 0; time.Now().Before(end); i++ {
		c := changes[i%len(changes)]
		var err error
		switch i % 4 {
		case 0:
			_, err = Prepare(ctx, PrepareSpec{TaskID: nextTaskID(), WorkFolder: f.src, Root: wsRoot, UID: -1, GID: -1,
				IncludeUncommitted: i%8 == 0, AllowedRoots: f.roots()})
		case 1:
			_, err = Apply(ctx, ApplySpec{Target: f.src, Patch: c.d.Patch, DryRun: true, AllowedRoots: f.roots()})
		case 2:
			_, err = Apply(ctx, ApplySpec{Target: f.src, Patch: c.d.Patch, SourceGitDir: c.ws.GitDir, AllowedRoots: f.roots()})
		case 3:
			_, err = Apply(ctx, ApplySpec{Target: f.src, Patch: c.d.Patch, Mode: Branch, Branch: fmt.Sprintf("claude-parallel/b%d", i),
				BaseCommit: c.d.BaseCommit, ResultCommit: c.d.ResultCommit, SourceGitDir: c.ws.GitDir, AllowedRoots: f.roots()})
		}
		switch {
		case err == nil:
			outcomes["ok"]++
		case errors.Is(err, ErrOutsideAllowedRoots):
			outcomes["refused"]++
		default:
			outcomes["other"]++ // the folder missing between mv and ln, and the like
			if outcomes["other"] < 5 {
				t.Logf("%v", err)
			}
		}
	}
	stop.Store(true)
	wg.Wait()
	t.Logf("%d swaps; outcomes %v", swaps, outcomes)
	if outcomes["ok"] == 0 || outcomes["refused"] == 0 {
		t.Errorf("the race was not exercised: %v", outcomes)
	}
	if hashTree(t, filepath.Dir(f.outside)) != before {
		t.Error("something outside the allowed roots changed")
	}
	if found := holdsCanary(t, wsRoot, f.canary); len(found) > 0 {
		t.Errorf("the canary reached %v", found)
	}
}

// A server running as root writes a worktree apply as the target's owner
// would: what it creates belongs to the owner, and a folder the owner does
// not own is not written into.
func TestApply_AsRootWritesAsTheTargetsOwner(t *testing.T) {
	if os.Geteuid() != 0 {
		testutil.SkipOrFailInCI(t, "needs root to chown (CI runs as root)")
	}
	const uid = 12345
	f := newRootsFixture(t)
	_, d := agentDiff(t, f.src, func(w string) {
		writeFile(t, filepath.Join(w, "a.txt"), "a\nchanged\n", 0o644)
		writeFile(t, filepath.Join(w, "newdir", "n.txt"), "n\n", 0o644)
	})
	if err := filepath.WalkDir(f.src, func(p string, _ fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		return os.Lchown(p, uid, uid)
	}); err != nil {
		t.Fatal(err)
	}
	res, err := Apply(testCtx(t), ApplySpec{Target: f.src, Patch: d.Patch, AllowedRoots: f.roots()})
	if err != nil || res.Outcome != Applied {
		t.Fatalf("Apply: %+v, %v", res, err)
	}
	for _, p := range []string{"a.txt", "newdir", "newdir/n.txt"} {
		fi, err := os.Lstat(filepath.Join(f.src, p))
		if err != nil {
			t.Fatal(err)
		}
		if st := fi.Sys().(*syscall.Stat_t); st.Uid != uid || st.Gid != uid {
			t.Errorf("%s is owned by %d:%d, want the target's owner %d", p, st.Uid, st.Gid, uid)
		}
	}
	// A folder of the target owned by someone else is not written into.
	_, d2 := agentDiff(t, f.src, func(w string) { writeFile(t, filepath.Join(w, "dir", "b.txt"), "b\nchanged\n", 0o644) })
	if err := os.Lchown(filepath.Join(f.src, "dir"), 0, 0); err != nil {
		t.Fatal(err)
	}
	if _, err := Apply(testCtx(t), ApplySpec{Target: f.src, Patch: d2.Patch, AllowedRoots: f.roots()}); err == nil ||
		!strings.Contains(err.Error(), "not owned by the repository's owner") {
		t.Fatalf("apply into a folder owned by root: %v", err)
	}
	if got := testutil.ReadFile(t, filepath.Join(f.src, "dir", "b.txt")); got != "b\n" {
		t.Errorf("dir/b.txt = %q, want it untouched", got)
	}
}
