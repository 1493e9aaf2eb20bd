package e2e

import (
	"context"
	"errors"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/claude-parallel/claude-parallel/config"
	"github.com/claude-parallel/claude-parallel/controllers"
	"github.com/claude-parallel/claude-parallel/controllers/workspace"
	"github.com/claude-parallel/claude-parallel/models"
	"github.com/claude-parallel/claude-parallel/test/testutil"
)

// The kill -9 test runs the controllers in controllerd (built by TestMain),
// which SIGKILLs itself when an apply reaches the step named by CP_CRASH_AT,
// then starts a second controllerd on the same database and checks that the
// diff ends applied exactly once.

// diffTestPaths are the installation's paths, laid out as controllerd lays
// them out under its -home.
func diffTestPaths(home string) config.Paths {
	return (&config.Config{Home: home, DBPath: filepath.Join(home, "data", config.DBFileName)}).Paths()
}

// startControllerd starts controllerd on home; crashAt "" runs it until
// stopped. Its output goes to a file shown if the test fails.
func startControllerd(t *testing.T, home, name string, crashAt controllers.Step) *exec.Cmd {
	t.Helper()
	out, err := os.Create(filepath.Join(home, name+".log"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		_ = out.Close()
		if t.Failed() {
			b, _ := os.ReadFile(out.Name())
			t.Logf("output of %s:\n%s", name, b)
		}
	})
	cmd := exec.Command(controllerd, "-home", home, "-holder", name, "-lease", "2s", "-renew", "500ms")
	cmd.Env = append(os.Environ(), "CP_CRASH_AT="+string(crashAt))
	cmd.Stdout, cmd.Stderr = out, out
	if err := cmd.Start(); err != nil {
		t.Fatalf("start %s: %v", name, err)
	}
	t.Cleanup(func() {
		if cmd.ProcessState == nil {
			_ = cmd.Process.Kill()
			_ = cmd.Wait()
		}
	})
	return cmd
}

// waitExit waits for cmd to end by itself within timeout.
func waitExit(t *testing.T, cmd *exec.Cmd, timeout time.Duration) error {
	t.Helper()
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	select {
	case err := <-done:
		return err
	case <-time.After(timeout):
		_ = cmd.Process.Kill()
		<-done
		t.Fatalf("%s did not end within %s", cmd.Path, timeout)
		return nil
	}
}

// seedAppliedIntent makes a repository, a finished task whose run changed
// several files in several ways, its captured diff, and the intent to apply
// it to the repository's working tree. It returns the repository, the diff
// and the files as the agent left them ("" for a deleted file).
func diffSeedApplyIntent(t *testing.T, ctx context.Context, paths config.Paths, store *models.Store) (string, *models.Diff, map[string]string) {
	t.Helper()
	repo := testutil.NewRepo(t, filepath.Join(t.TempDir(), "repo"), map[string]string{
		"a.txt": testutil.Lines("a", 60),
		"b.txt": testutil.Lines("b", 10),
		"c.txt": "to be deleted\n",
	})
	repo, err := filepath.EvalSymlinks(repo)
	if err != nil {
		t.Fatal(err)
	}

	task, _, err := store.CreateTask(ctx, &models.Task{Spec: models.TaskSpec{Prompt: "edit", WorkFolder: repo, Agent: "shell"}})
	if err != nil {
		t.Fatal(err)
	}
	ws, err := workspace.Prepare(ctx, workspace.PrepareSpec{TaskID: task.ID, WorkFolder: repo,
		Root: paths.WorkspaceDir, UID: -1, GID: -1})
	if err != nil {
		t.Fatal(err)
	}
	a := strings.SplitAfter(testutil.Lines("a", 60), "\n")
	a[4], a[29], a[54] = "a five, edited\n", "a thirty, edited\n", "a fifty-five, edited\n"
	want := map[string]string{
		"a.txt":          strings.Join(a, ""),
		"b.txt":          testutil.Lines("b", 10) + "appended once\n",
		"c.txt":          "",
		"sub/dir/new.go": "package dir\n",
	}
	for p, c := range want {
		if c == "" {
			if err := os.Remove(filepath.Join(ws.WorkDir, p)); err != nil {
				t.Fatal(err)
			}
			continue
		}
		testutil.WriteFile(t, filepath.Join(ws.WorkDir, p), c)
	}
	captured, err := workspace.CaptureDiff(ctx, ws, workspace.CaptureOptions{RunNumber: 1})
	if err != nil {
		t.Fatal(err)
	}
	d := &models.Diff{TaskID: task.ID, RunNumber: 1, BaseCommit: captured.BaseCommit,
		ResultCommit: captured.ResultCommit, FilesChanged: len(captured.Files),
		Additions: captured.Additions, Deletions: captured.Deletions, Patch: captured.Patch}
	if _, _, err := store.CreateDiff(ctx, d); err != nil {
		t.Fatal(err)
	}
	task.Status.Phase, task.Status.RunNumber = models.TaskPhaseSucceeded, 1
	task.Status.WorkspacePath, task.Status.BaseCommit, task.Status.DiffID = ws.Dir, ws.BaseCommit, d.ID
	task.Status.ObservedGeneration = task.Generation
	if err := store.UpdateTaskStatus(ctx, task); err != nil {
		t.Fatal(err)
	}
	if _, err := store.UpdateDiffSpec(ctx, d.ID, func(cur *models.Diff) error {
		cur.Spec.Desired, cur.Spec.ApplyMode = models.DiffDesiredApplied, models.ApplyModeWorktree
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	return repo, d, want
}

// waitForDiff polls the diff until cond holds or timeout passes.
func diffWaitFor(t *testing.T, ctx context.Context, store *models.Store, id string, timeout time.Duration, cond func(*models.Diff) bool) *models.Diff {
	t.Helper()
	d, ok := testutil.Poll(t, timeout, 50*time.Millisecond, func() (*models.Diff, error) {
		return store.GetDiff(ctx, id)
	}, cond)
	if !ok {
		t.Fatalf("diff %s: timed out in phase %s (%s)", id, d.Status.Phase, d.Status.Message)
	}
	return d
}

func TestDiffApply_KillDuringApplyThenRestart(t *testing.T) {
	if controllerd == "" {
		testutil.SkipOrFailInCI(t, "controllerd was not built (no Docker engine); see TestMain")
	}
	cases := []struct {
		stopAt controllers.Step
		// patchedBeforeKill: the target already held the change when the
		// first process died.
		patchedBeforeKill bool
		wantReason        string
	}{
		{controllers.StepDiffApplying, false, "Applied"},
		{controllers.StepDiffPatched, true, "AlreadyApplied"},
	}
	for _, c := range cases {
		t.Run(string(c.stopAt), func(t *testing.T) {
			ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
			defer cancel()
			home := t.TempDir()
			testutil.UnmountBelowAtEnd(t, home) // copy-on-write workspaces are mounts
			paths := diffTestPaths(home)
			store, err := models.Open(ctx, paths.DBPath, models.Options{})
			if err != nil {
				t.Fatal(err)
			}
			defer store.Close()
			repo, d, want := diffSeedApplyIntent(t, ctx, paths, store)

			// First life: SIGKILLed at the step.
			first := startControllerd(t, home, "first", c.stopAt)
			err = waitExit(t, first, 60*time.Second)
			if ws, ok := first.ProcessState.Sys().(syscall.WaitStatus); !ok || !ws.Signaled() || ws.Signal() != syscall.SIGKILL {
				t.Fatalf("the first controllerd ended with %v, want it killed at step %s", err, c.stopAt)
			}

			mid, err := store.GetDiff(ctx, d.ID)
			if err != nil {
				t.Fatal(err)
			}
			if mid.Status.Phase != models.DiffPhaseApplying {
				t.Fatalf("after the kill: phase %s, want Applying", mid.Status.Phase)
			}
			_, revErr := testutil.GitErr(repo, d.Patch, "apply", "--reverse", "--check", "-")
			if held := revErr == nil; held != c.patchedBeforeKill {
				t.Fatalf("after the kill at %s: target holds the change = %v, want %v", c.stopAt, held, c.patchedBeforeKill)
			}

			// Second life: takes the lease over and finishes the apply.
			second := startControllerd(t, home, "second", "")
			got := diffWaitFor(t, ctx, store, d.ID, 60*time.Second, func(d *models.Diff) bool {
				return d.Status.Phase != models.DiffPhaseApplying && d.Status.Phase != models.DiffPhasePending
			})
			if err := second.Process.Signal(syscall.SIGTERM); err != nil {
				t.Fatal(err)
			}
			if err := waitExit(t, second, 30*time.Second); err != nil {
				t.Errorf("second process did not stop cleanly: %v", err)
			}

			st := got.Status
			if st.Phase != models.DiffPhaseApplied || st.Reason != c.wantReason || st.ObservedGeneration != got.Generation {
				t.Fatalf("final status %+v, want Applied (%s) with the generation observed", st, c.wantReason)
			}
			for p, content := range want {
				b, err := os.ReadFile(filepath.Join(repo, p))
				switch {
				case content == "" && !errors.Is(err, fs.ErrNotExist):
					t.Errorf("%s should be deleted: %v", p, err)
				case content != "" && string(b) != content:
					t.Errorf("%s = %q, want %q", p, b, content)
				}
			}
			if b, _ := os.ReadFile(filepath.Join(repo, "b.txt")); strings.Count(string(b), "appended once") != 1 {
				t.Errorf("b.txt holds the appended line %d times", strings.Count(string(b), "appended once"))
			}
			if _, err := testutil.GitErr(repo, d.Patch, "apply", "--reverse", "--check", "-"); err != nil {
				t.Errorf("the reverse of the patch does not apply: %v", err)
			}
			_ = filepath.WalkDir(repo, func(p string, de fs.DirEntry, err error) error {
				if err == nil && (strings.HasSuffix(p, ".rej") || strings.HasSuffix(p, ".orig")) {
					t.Errorf("the apply left %s", p)
				}
				return nil
			})
			status := strings.Split(testutil.Git(t, repo, "status", "--porcelain", "--untracked-files=all"), "\n")
			slices.Sort(status)
			if wantStatus := []string{" D c.txt", " M a.txt", " M b.txt", "?? sub/dir/new.go"}; !slices.Equal(status, wantStatus) {
				t.Errorf("git status %q, want %q", status, wantStatus)
			}
			if head := testutil.Git(t, repo, "log", "--format=%s"); head != "initial" {
				t.Errorf("history changed: %q", head)
			}
			evs, err := store.ListEvents(ctx, models.EventKindDiff, d.ID, 0)
			if err != nil {
				t.Fatal(err)
			}
			applied := 0
			for _, e := range evs {
				if e.Reason == string(models.DiffPhaseApplied) {
					applied++
				}
			}
			if applied != 1 {
				t.Errorf("%d Applied events, want 1: %+v", applied, evs)
			}
		})
	}
}
