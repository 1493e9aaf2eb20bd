package controllers

import (
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"slices"
	"testing"
	"time"

	"github.com/claude-parallel/claude-parallel/config"
	"github.com/claude-parallel/claude-parallel/models"
	"github.com/claude-parallel/claude-parallel/test/testutil"
)

// swapFuzzDuration is how long tasks keep arriving while folders are
// swapped: CP_STRESS_SECONDS, else 12 seconds, 5 with -short.
func swapFuzzDuration(t *testing.T) time.Duration {
	return testutil.StressDuration(t, 12*time.Second, 5*time.Second)
}

// swapper keeps replacing work folders by symlinks to their outside clones
// (`mv f f.real; ln -s /outside/f f`) and putting them back, each state
// lasting a random moment.
type swapper struct {
	t        *testing.T
	rng      *rand.Rand
	folders  []string
	outsides []string
	stop     chan struct{}
	done     chan struct{}
	swaps    int
}

func (s *swapper) run() {
	defer close(s.done)
	for {
		select {
		case <-s.stop:
			return
		default:
		}
		i := s.rng.IntN(len(s.folders))
		f := s.folders[i]
		if err := os.Rename(f, f+".real"); err != nil {
			s.t.Errorf("swap %s: %v", f, err)
			return
		}
		if err := os.Symlink(s.outsides[i], f); err != nil {
			s.t.Errorf("swap %s: %v", f, err)
			return
		}
		s.swaps++
		time.Sleep(time.Duration(s.rng.IntN(30)) * time.Millisecond)
		if err := os.Remove(f); err != nil {
			s.t.Errorf("swap back %s: %v", f, err)
			return
		}
		if err := os.Rename(f+".real", f); err != nil {
			s.t.Errorf("swap back %s: %v", f, err)
			return
		}
		time.Sleep(time.Duration(s.rng.IntN(30)) * time.Millisecond)
	}
}

// halt stops the swapper and waits until every folder is real again.
func (s *swapper) halt() {
	select {
	case <-s.stop:
	default:
		close(s.stop)
	}
	<-s.done
}

// TestDocker_SwapFuzzNeverLeavesAllowedRoots runs tasks (real containers of
// the shell profile, some waiting on dependsOn) and applies of their diffs
// (worktree and branch mode, to the task's own folder or to another one)
// while a goroutine keeps swapping the work folders, which are also the
// targets, between real directories and symlinks to outside clones holding
// a canary. Afterwards the outside trees must be byte for byte what they were
// and the canary must appear nowhere in the installation (logs, workspaces,
// database). Every refusal must be an outcome, never a hang. The seed is
// logged; CP_SWAP_SEED replays a run's decisions.
func TestDocker_SwapFuzzNeverLeavesAllowedRoots(t *testing.T) {
	t.Parallel()
	seed := testutil.Seed(t, "CP_SWAP_SEED")
	rng := rand.New(rand.NewPCG(seed, 0))

	l := newRootsLayout(t)
	e := newDockerEnv(t, func(c *config.Config) { c.AllowedRoots = []string{l.root} })
	// Three folders sharing history (so a branch of one applies to another)
	// and, outside the root, a clone of each holding the canary.
	origin := testutil.NewRepo(t, filepath.Join(l.root, "f0"), map[string]string{"README.md": "hello\n"})
	folders, outsides := []string{origin}, []string{l.outsideClone(t, origin, "f0")}
	for i := 1; i < 3; i++ {
		f := filepath.Join(l.root, fmt.Sprintf("f%d", i))
		testutil.Git(t, l.root, "clone", "--quiet", "--no-local", "--", origin, f)
		folders = append(folders, f)
		outsides = append(outsides, l.outsideClone(t, f, fmt.Sprintf("f%d", i)))
	}
	before := treeHash(t, l.outside)

	sw := &swapper{t: t, rng: rand.New(rand.NewPCG(seed, 1)), folders: folders, outsides: outsides,
		stop: make(chan struct{}), done: make(chan struct{})}
	go sw.run()
	t.Cleanup(sw.halt)

	var (
		tasks   []*models.Task
		applied = map[string]bool{} // diff ids with an apply intent
	)
	applyFinished := func() {
		for _, task := range tasks {
			got, err := e.store.GetTask(e.ctx, task.ID)
			if err != nil {
				t.Fatal(err)
			}
			if !got.Status.Finished || got.Status.DiffID == "" || applied[got.Status.DiffID] {
				continue
			}
			mode := []models.ApplyMode{models.ApplyModeWorktree, models.ApplyModeBranch}[rng.IntN(2)]
			target := ""
			if rng.IntN(3) == 0 {
				target = folders[rng.IntN(len(folders))]
			}
			if _, err := e.store.UpdateDiffSpec(e.ctx, got.Status.DiffID, func(d *models.Diff) error {
				d.Spec.Desired, d.Spec.ApplyMode, d.Spec.TargetWorkspace = models.DiffDesiredApplied, mode, target
				return nil
			}); err != nil {
				t.Fatal(err)
			}
			e.s.Notify(KindDiff, got.Status.DiffID)
			applied[got.Status.DiffID] = true
		}
	}
	end := time.Now().Add(swapFuzzDuration(t))
	for k := 0; time.Now().Before(end); k++ {
		folder := folders[rng.IntN(len(folders))]
		uncommitted := rng.IntN(2) == 0
		var deps []string
		if len(tasks) > 0 && rng.IntN(3) == 0 {
			deps = []string{tasks[len(tasks)-1].ID}
		}
		// The run prints what it sees of the folder; a snapshot of an
		// outside clone would print the canary.
		script := fmt.Sprintf(`cat README.md *.txt 2>/dev/null; echo task-%d > out-%d.txt`, k, k)
		tasks = append(tasks, e.submit(script, func(t *models.Task) {
			t.Spec.WorkFolder, t.Spec.IncludeUncommitted, t.Spec.DependsOn = folder, uncommitted, deps
		}))
		applyFinished()
		time.Sleep(time.Duration(100+rng.IntN(400)) * time.Millisecond)
	}
	// Tasks finish and their diffs are applied while the swapping goes on.
	for _, task := range tasks {
		e.wait(task.ID, 3*time.Minute, finished)
	}
	applyFinished()
	// The last applies (most of them: runs end after the submissions) and
	// the dry runs they cause meet the swapping too.
	time.Sleep(3 * time.Second)
	sw.halt()

	var succeeded, refusedTasks, appliedDiffs, refusedDiffs int
	for _, task := range tasks {
		got := e.wait(task.ID, time.Minute, finished)
		switch {
		case got.Status.Phase == models.TaskPhaseSucceeded:
			succeeded++
			if log, err := os.ReadFile(e.s.tasks.taskLogPath(got.ID, got.Status.RunNumber)); err != nil || !slices.Contains(stripStamps(string(log)), "hello") {
				t.Errorf("task %s succeeded but its log does not show README.md: %q, %v", got.ID, log, err)
			}
		case got.Status.Reason == wantOutsideReason:
			refusedTasks++
		case got.Status.Reason == ReasonPrepareFailed, got.Status.Reason == ReasonDependencyFailed:
			// The folder was missing for a moment (between mv and ln).
		default:
			t.Errorf("task %s: phase %s reason %s: %s", got.ID, got.Status.Phase, got.Status.Reason, got.Status.Message)
		}
	}
	for id := range applied {
		d, ok := testutil.Poll(t, 2*time.Minute, 50*time.Millisecond, func() (*models.Diff, error) {
			return e.store.GetDiff(e.ctx, id)
		}, func(d *models.Diff) bool {
			switch d.Status.Phase {
			case models.DiffPhaseApplied, models.DiffPhaseConflict:
				return true
			case models.DiffPhaseFailed:
				return d.Status.Reason != diffReasonApplyError // retried until it settles
			}
			return false
		})
		if !ok {
			t.Errorf("diff %s has no outcome: %+v", id, d.Status)
			continue
		}
		switch {
		case d.Status.Phase == models.DiffPhaseApplied:
			appliedDiffs++
		case d.Status.Reason == wantOutsideReason:
			refusedDiffs++
		}
	}
	t.Logf("%d swaps; %d tasks: %d succeeded, %d refused; %d applies: %d applied, %d refused",
		sw.swaps, len(tasks), succeeded, refusedTasks, len(applied), appliedDiffs, refusedDiffs)
	if succeeded == 0 || appliedDiffs == 0 {
		t.Errorf("the fuzz ran nothing through: %d tasks succeeded, %d diffs applied", succeeded, appliedDiffs)
	}
	if refusedTasks+refusedDiffs == 0 {
		// Without a refusal no use met a swapped folder, and the checks
		// below would pass without having tested anything.
		t.Errorf("no task or apply met a swapped folder in %d swaps", sw.swaps)
	}

	if after := treeHash(t, l.outside); after != before {
		t.Errorf("something outside the allowed roots changed")
	}
	if found := filesContaining(t, e.cfg.Home, l.canary); len(found) > 0 {
		t.Errorf("the outside canary reached %v", found)
	}
}
