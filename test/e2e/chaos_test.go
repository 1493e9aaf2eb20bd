package e2e

import (
	"fmt"
	"math/rand/v2"
	"os"
	"strconv"
	"testing"
	"time"

	"github.com/claude-parallel/claude-parallel/models"
)

// chaosDuration is how long the chaos lasts: CP_STRESS_SECONDS (make soak sets
// 120), else 15 seconds, 5 with -short.
func chaosDuration(t *testing.T) time.Duration {
	t.Helper()
	if v := os.Getenv("CP_STRESS_SECONDS"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n <= 0 {
			t.Fatalf("CP_STRESS_SECONDS=%q: want a positive number of seconds", v)
		}
		return time.Duration(n) * time.Second
	}
	if testing.Short() {
		return 5 * time.Second
	}
	return 15 * time.Second
}

// TestChaos_KillsAndRestartsLoseNothing runs two controller processes on one
// database while tasks keep arriving, and at random moments kills one of them
// with SIGKILL, stops one with SIGTERM, or kills both at once, starting each
// again at once. When the chaos ends, every task must have succeeded exactly
// once: one container in Docker, one diff, its whole output in its log file
// once and in order. The seed is logged; CP_CHAOS_SEED replays a run.
func TestChaos_KillsAndRestartsLoseNothing(t *testing.T) {
	t.Parallel()
	seed := uint64(time.Now().UnixNano())
	if v := os.Getenv("CP_CHAOS_SEED"); v != "" {
		var err error
		if seed, err = strconv.ParseUint(v, 10, 64); err != nil {
			t.Fatalf("CP_CHAOS_SEED=%q: %v", v, err)
		}
	}
	t.Logf("seed %d (CP_CHAOS_SEED=%d replays it)", seed, seed)
	rng := rand.New(rand.NewPCG(seed, 0))

	in := newInstall(t)
	gen := 0
	start := func(slot int) *child {
		gen++
		return in.start(fmt.Sprintf("p%d-gen%d", slot, gen))
	}
	procs := []*child{start(0), start(1)}
	type submitted struct {
		task  *models.Task
		lines int
	}
	var tasks []submitted
	var kills, stops, both int
	end := time.Now().Add(chaosDuration(t))
	for time.Now().Before(end) {
		if rng.IntN(3) != 0 {
			n := 20 + rng.IntN(40)
			tasks = append(tasks, submitted{in.submit(countScript(n, "0.05")), n})
		}
		time.Sleep(time.Duration(200+rng.IntN(800)) * time.Millisecond)
		switch i := rng.IntN(len(procs)); rng.IntN(4) {
		case 0, 1:
			procs[i].kill()
			procs[i] = start(i)
			kills++
		case 2:
			procs[i].stop(t)
			procs[i] = start(i)
			stops++
		default:
			for j := range procs {
				procs[j].kill()
			}
			for j := range procs {
				procs[j] = start(j)
			}
			both++
		}
	}
	t.Logf("%d tasks; %d single kills, %d clean stops, %d double kills", len(tasks), kills, stops, both)
	if len(tasks) == 0 {
		t.Fatal("the chaos submitted no task")
	}
	for _, s := range tasks {
		got := in.wait(s.task.ID, 3*time.Minute, finished)
		in.checkRun(got, s.lines)
	}
}
