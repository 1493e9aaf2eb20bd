package e2e

import (
	"context"
	"fmt"
	"math/rand/v2"
	"testing"
	"time"

	"github.com/claude-parallel/claude-parallel/models"
	"github.com/claude-parallel/claude-parallel/test/testutil"
)

// chaosDuration is how long the chaos lasts: CP_STRESS_SECONDS (make soak sets
// 120), else 15 seconds, 5 with -short.
func chaosDuration(t *testing.T) time.Duration {
	return testutil.StressDuration(t, 15*time.Second, 5*time.Second)
}

// TestChaos_KillsAndRestartsLoseNothing runs two controller processes on one
// database while tasks keep arriving, and at random moments kills one of them
// with SIGKILL, stops one with SIGTERM, or kills both at once, starting each
// again at once. When the chaos ends, every task must have succeeded exactly
// once: one container in Docker, one diff, its whole output in its log file
// once and in order. The seed is logged; CP_CHAOS_SEED replays a run.
//
// It runs once per store driver (subtests sqlite and postgres): on
// PostgreSQL the processes share a database of the tests' server.
func TestChaos_KillsAndRestartsLoseNothing(t *testing.T) {
	t.Parallel()
	for _, driver := range testutil.StoreDrivers {
		t.Run(driver, func(t *testing.T) { chaosKillsAndRestarts(t, driver) })
	}
}

func chaosKillsAndRestarts(t *testing.T, driver string) {
	seed := testutil.Seed(t, "CP_CHAOS_SEED")
	rng := rand.New(rand.NewPCG(seed, 0))

	in := newInstallOn(t, driver)
	c := &chaos{t: t, in: in, rng: rng}
	c.procs = []*child{c.start(0), c.start(1)}
	type submitted struct {
		task  *models.Task
		lines int
	}
	var tasks []submitted
	c.run(chaosDuration(t), func() {
		if rng.IntN(3) != 0 {
			n := 20 + rng.IntN(40)
			tasks = append(tasks, submitted{in.submit(countScript(n, "0.05")), n})
		}
	})
	t.Logf("%d tasks; %d single kills, %d clean stops, %d double kills", len(tasks), c.kills, c.stops, c.both)
	if len(tasks) == 0 {
		t.Fatal("the chaos submitted no task")
	}
	var diffs []string
	for _, s := range tasks {
		got := in.wait(s.task.ID, 3*time.Minute, finished)
		in.checkRun(got, s.lines)
		diffs = append(diffs, got.Status.DiffID)
	}

	// Every diff applied as a branch while the chaos goes on: each ends
	// Applied once, its branch at the run's commit.
	c.kills, c.stops, c.both = 0, 0, 0
	pending := diffs
	c.run(chaosDuration(t)/2, func() {
		for range min(len(pending), 1+rng.IntN(4)) {
			in.applyIntent(pending[0], models.ApplyModeBranch)
			pending = pending[1:]
		}
	})
	for _, id := range pending {
		in.applyIntent(id, models.ApplyModeBranch)
	}
	t.Logf("%d applies; %d single kills, %d clean stops, %d double kills", len(diffs), c.kills, c.stops, c.both)
	for _, id := range diffs {
		d := in.waitDiff(id, 3*time.Minute, func(d *models.Diff) bool { return d.Status.Phase == models.DiffPhaseApplied })
		branch := "claude-parallel/" + d.TaskID
		if d.Status.Branch != branch {
			t.Errorf("diff %s applied as branch %q, want %q", id, d.Status.Branch, branch)
		}
		if tip := testutil.Git(t, in.repo, "rev-parse", "refs/heads/"+branch); tip != d.ResultCommit {
			t.Errorf("branch %s at %s, want the run's commit %s", branch, tip, d.ResultCommit)
		}
	}
}

// chaos kills and restarts an installation's controller processes.
type chaos struct {
	t     *testing.T
	in    *install
	rng   *rand.Rand
	procs []*child
	gen   int

	kills, stops, both int
}

func (c *chaos) start(slot int) *child {
	c.gen++
	return c.in.start(fmt.Sprintf("p%d-gen%d", slot, c.gen))
}

// run calls act, waits a random moment, then kills or stops one process or
// kills both, restarting them at once, until d has passed.
func (c *chaos) run(d time.Duration, act func()) {
	end := time.Now().Add(d)
	for time.Now().Before(end) {
		act()
		time.Sleep(time.Duration(200+c.rng.IntN(800)) * time.Millisecond)
		switch i := c.rng.IntN(len(c.procs)); c.rng.IntN(4) {
		case 0, 1:
			c.procs[i].kill()
			c.procs[i] = c.start(i)
			c.kills++
		case 2:
			c.procs[i].stop(c.t)
			c.procs[i] = c.start(i)
			c.stops++
		default:
			for j := range c.procs {
				c.procs[j].kill()
			}
			for j := range c.procs {
				c.procs[j] = c.start(j)
			}
			c.both++
		}
	}
}

// applyIntent writes the intent to apply a diff, as a front end does.
func (in *install) applyIntent(id string, mode models.ApplyMode) {
	in.t.Helper()
	if _, err := in.store.UpdateDiffSpec(context.Background(), id, func(d *models.Diff) error {
		d.Spec.Desired, d.Spec.ApplyMode = models.DiffDesiredApplied, mode
		return nil
	}); err != nil {
		in.t.Fatalf("apply intent for %s: %v", id, err)
	}
}

func (in *install) waitDiff(id string, timeout time.Duration, cond func(*models.Diff) bool) *models.Diff {
	in.t.Helper()
	return waitUntil(in.t, id, timeout, in.store.GetDiff, cond, func(d *models.Diff) any { return d.Status })
}
