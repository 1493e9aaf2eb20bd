package e2e

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"go.uber.org/zap"

	"github.com/claude-parallel/claude-parallel/config"
	"github.com/claude-parallel/claude-parallel/controllers"
	"github.com/claude-parallel/claude-parallel/controllers/engine"
	"github.com/claude-parallel/claude-parallel/controllers/engine/enginetest"
	"github.com/claude-parallel/claude-parallel/models"
	"github.com/claude-parallel/claude-parallel/test/testutil"
)

// BenchmarkTaskStart measures, in one invocation, the time from writing a
// task intent to its container running under the controllers, against the
// floor: creating and starting the same hardened container directly with the
// Docker client. "Running" is Docker's own StartedAt on both sides. Each of
// three runs (a fresh store, controllers and repository each) prints the
// medians and their ratio, one task at a time (each sample on an idle system,
// alternating with a floor sample so both see the same machine load) and
// twenty at once; the last lines give the median of the three runs' ratios,
// the figure the start target is judged by, and the machine's load average.
//
// The intent is written the way the MCP front end writes it, snapshot of the
// work folder included (its default), and the controllers are woken the way
// the front end wakes them (Notify, in the same process). A checkout of HEAD
// (includeUncommitted false) is measured too. Beside the times, each run
// counts the Docker API calls made between a task's intent and its
// container's StartedAt (the floor makes two: create and start), a figure
// that machine load does not move, and prints where a start's time goes: the
// median time after the intent write at which the Preparing status was on
// disk, the container's create was called and answered, the workspace was
// ready, the start was called and the container ran (and the same for the
// floor's create and start).
//
// CP_BENCH_START_RUNS and CP_BENCH_START_ROUNDS change the number of runs (3)
// and of one-task samples a run (15).
//
//	go test -run '^$' -bench TaskStart -benchtime 1x ./test/e2e/
func BenchmarkTaskStart(b *testing.B) {
	enginetest.New(b) // Docker is there, and the test image
	calls := &apiCalls{}
	eng, err := engine.NewObserved("", calls.observe)
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { _ = eng.Close() })
	runs, rounds := envInt(b, "CP_BENCH_START_RUNS", 3), envInt(b, "CP_BENCH_START_ROUNDS", 15)
	for range b.N {
		version, api, err := eng.Ping(context.Background())
		if err != nil {
			b.Fatal(err)
		}
		fmt.Printf("start  | %d CPUs, Docker %s (API %s); intent→running = task intent written until Docker's StartedAt of its container; "+
			"floor = docker create+start of the same container with the client; %d runs of %d one-task samples, load average %s\n",
			runtime.NumCPU(), version, api, runs, rounds, testutil.LoadAverage())
		ratios := map[string][]float64{}
		for run := range runs {
			env := newBenchEnv(b, eng)
			env.calls = calls
			var snapshot, checkout, floor []time.Duration
			var snapCalls, checkoutCalls []int
			snapSteps, checkoutSteps, floorSteps := stepSamples{}, stepSamples{}, stepSamples{}
			for i := range rounds {
				// Interleaved, so every side sees the same engine load.
				d, c, st := env.viaControllersTraced(b, 1, true)
				snapshot, snapCalls = append(snapshot, d...), append(snapCalls, c...)
				snapSteps.add(st...)
				d, st = env.directTraced(b, 1, i)
				floor = append(floor, d...)
				floorSteps.add(st...)
				d, c, st = env.viaControllersTraced(b, 1, false)
				checkout, checkoutCalls = append(checkout, d...), append(checkoutCalls, c...)
				checkoutSteps.add(st...)
			}
			tag := fmt.Sprintf("run %d/%d: ", run+1, runs)
			ratios["1"] = append(ratios["1"], report(tag+"one task, snapshot of the work folder (default)", snapshot, floor))
			fmt.Printf("start  | %s  Docker API calls intent→StartedAt, median: %d snapshot, %d checkout (floor: 2, create and start)\n",
				tag, medianInt(snapCalls), medianInt(checkoutCalls))
			ratios["1-checkout"] = append(ratios["1-checkout"], report(tag+"one task, checkout of HEAD", checkout, floor))
			fmt.Printf("start  | %s  steps, median ms after the intent write (snapshot): %s\n", tag, snapSteps)
			fmt.Printf("start  | %s  steps, median ms after the intent write (checkout): %s\n", tag, checkoutSteps)
			fmt.Printf("start  | %s  steps, median ms after the floor's create call:    %s\n", tag, floorSteps)
			ours := env.viaControllers(b, 20, true)
			floor = env.direct(b, 20, rounds)
			ratios["20"] = append(ratios["20"], report(tag+"20 tasks at once, snapshot (default)", ours, floor))
			env.stop()
			fmt.Printf("start  | %s  load average %s\n", tag, testutil.LoadAverage())
		}
		for _, m := range []struct{ metric, what string }{
			{"1", "one task, snapshot (default)"}, {"1-checkout", "one task, checkout of HEAD"}, {"20", "20 tasks at once, snapshot"},
		} {
			rs := ratios[m.metric]
			fmt.Printf("start  | median of %d runs: %-34s ratio %.3f (runs: %s; target ≤ 1.05)\n", len(rs), m.what, medianFloat(rs), fmtRatios(rs))
			b.ReportMetric(medianFloat(rs), "ratio-"+m.metric)
		}
	}
}

// report prints one comparison and returns its ratio of medians.
func report(what string, ours, floor []time.Duration) float64 {
	mo, mf := median(ours), median(floor)
	ratio := float64(mo) / float64(mf)
	fmt.Printf("start  | %-60s | intent→running median %7.1fms | floor median %7.1fms | ratio %.3f (overhead %+5.1f%%)\n",
		what, ms(mo), ms(mf), ratio, 100*(ratio-1))
	return ratio
}

func medianFloat(fs []float64) float64 {
	s := slices.Clone(fs)
	slices.Sort(s)
	return s[len(s)/2]
}

func medianInt(is []int) int {
	if len(is) == 0 {
		return 0
	}
	s := slices.Clone(is)
	slices.Sort(s)
	return s[len(s)/2]
}

func fmtRatios(fs []float64) string {
	parts := make([]string, len(fs))
	for i, f := range fs {
		parts[i] = fmt.Sprintf("%.3f", f)
	}
	return strings.Join(parts, ", ")
}

// envInt is the positive integer in environment variable name, or def.
func envInt(b *testing.B, name string, def int) int {
	v := os.Getenv(name)
	if v == "" {
		return def
	}
	n, err := strconv.Atoi(v)
	if err != nil || n <= 0 {
		b.Fatalf("%s=%q: want a positive integer", name, v)
	}
	return n
}

// apiCalls remembers each Docker API call of the benchmark's engine, its
// operation, when it began and when it was answered, so a sample can count
// the calls made within its interval and say when its create and start ran.
type apiCalls struct {
	mu    sync.Mutex
	calls []apiCall
}

type apiCall struct {
	op         string
	begun, end time.Time
}

func (a *apiCalls) observe(op string, d time.Duration, _ bool) {
	end := time.Now()
	a.mu.Lock()
	defer a.mu.Unlock()
	a.calls = append(a.calls, apiCall{op: op, begun: end.Add(-d), end: end})
}

// between counts the calls begun within [from, to].
func (a *apiCalls) between(from, to time.Time) int {
	a.mu.Lock()
	defer a.mu.Unlock()
	n := 0
	for _, c := range a.calls {
		if !c.begun.Before(from) && !c.begun.After(to) {
			n++
		}
	}
	return n
}

// first is the first call of operation op begun within [from, to].
func (a *apiCalls) first(op string, from, to time.Time) (apiCall, bool) {
	a.mu.Lock()
	defer a.mu.Unlock()
	for _, c := range a.calls {
		if c.op == op && !c.begun.Before(from) && !c.begun.After(to) {
			return c, true
		}
	}
	return apiCall{}, false
}

const (
	opCreate = "POST /containers/create"
	opStart  = "POST /containers/{id}/start"
)

// stepClock remembers when each task first reached each step of its run
// (Deps.AfterStep).
type stepClock struct {
	mu sync.Mutex
	at map[string]map[controllers.Step]time.Time
}

func (c *stepClock) record(step controllers.Step, taskID string, _ int) {
	now := time.Now()
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.at == nil {
		c.at = map[string]map[controllers.Step]time.Time{}
	}
	if c.at[taskID] == nil {
		c.at[taskID] = map[controllers.Step]time.Time{}
	}
	if _, ok := c.at[taskID][step]; !ok {
		c.at[taskID][step] = now
	}
}

func (c *stepClock) get(taskID string, step controllers.Step) (time.Time, bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	t, ok := c.at[taskID][step]
	return t, ok
}

// stepSample is one start's milestones, as offsets from its beginning, in
// the order they are printed.
type stepSample []stepMark

type stepMark struct {
	name string
	at   time.Duration
}

// stepSamples gathers the milestones of many starts; String prints the median
// of each.
type stepSamples struct {
	names []string
	at    map[string][]time.Duration
}

func (s *stepSamples) add(samples ...stepSample) {
	if s.at == nil {
		s.at = map[string][]time.Duration{}
	}
	for _, sample := range samples {
		for _, m := range sample {
			if _, ok := s.at[m.name]; !ok {
				s.names = append(s.names, m.name)
			}
			s.at[m.name] = append(s.at[m.name], m.at)
		}
	}
}

func (s stepSamples) String() string {
	parts := make([]string, 0, len(s.names))
	for _, n := range s.names {
		parts = append(parts, fmt.Sprintf("%s %.1f", n, ms(median(s.at[n]))))
	}
	return strings.Join(parts, " · ")
}

func ms(d time.Duration) float64 { return float64(d) / float64(time.Millisecond) }

func median(ds []time.Duration) time.Duration {
	s := slices.Clone(ds)
	slices.Sort(s)
	return s[len(s)/2]
}

type benchEnv struct {
	ctx   context.Context
	cfg   *config.Config
	store *models.Store
	eng   *engine.Engine
	sys   *controllers.System
	repo  string
	home  string
	// directLabels mark the floor's containers: another "store", so the
	// controllers never adopt them mid-measurement.
	directLabels map[string]string
	// calls, when set, counts the Docker API calls of eng (see
	// viaControllersCounted).
	calls *apiCalls
	// steps is when each task reached each step of its run.
	steps *stepClock
	// stop ends the controllers and removes the containers (also at the
	// end of the benchmark).
	stop func()
}

func newBenchEnv(b *testing.B, eng *engine.Engine) *benchEnv {
	b.Helper()
	return newBenchEnvOn(b, eng, models.DriverSQLite, "")
}

// newBenchEnvOn is newBenchEnv with the store on driver (dsn for postgres).
func newBenchEnvOn(b *testing.B, eng *engine.Engine, driver, dsn string) *benchEnv {
	b.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	home := b.TempDir()
	testutil.UnmountBelowAtEnd(b, home) // copy-on-write workspaces are mounts
	cfg := config.Default()
	cfg.Home = home
	cfg.DBPath = filepath.Join(home, "data", config.DBFileName)
	cfg.Log.Dir = filepath.Join(home, "logs")
	cfg.MaxParallel = 25
	cfg.DefaultAgent = "shell"
	// The benchmark's repositories are made under the temporary directory
	// (the default root, the user's home, refuses them), as controllerd's.
	cfg.AllowedRoots = []string{os.TempDir()}
	shell := cfg.Profiles["shell"]
	shell.Resources = config.Resources{MemoryBytes: 64 << 20, NanoCPUs: 500_000_000, Pids: 64}
	cfg.Profiles["shell"] = shell
	target := cfg.DBPath
	if driver == models.DriverPostgres {
		target = dsn
	}
	store, err := models.OpenDriver(ctx, driver, target, models.Options{})
	if err != nil {
		b.Fatal(err)
	}
	steps := &stepClock{}
	sys, err := controllers.NewSystem(controllers.Deps{Config: cfg, Store: store, Engine: eng, Logger: zap.NewNop(), AfterStep: steps.record})
	if err != nil {
		b.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- sys.Run(ctx) }()
	labels := map[string]string{enginetest.TestLabel: "bench-" + enginetest.RandomHex(4)}
	stop := sync.OnceFunc(func() {
		cancel()
		<-done
		enginetest.RemoveAll(b, eng, engine.StoreLabels(store.InstallationID()))
		enginetest.RemoveAll(b, eng, labels)
		_ = store.Close()
	})
	b.Cleanup(stop)
	env := &benchEnv{ctx: ctx, cfg: cfg, store: store, eng: eng, sys: sys, home: home, repo: newRepo(b), directLabels: labels, stop: stop, steps: steps}
	// Wait until this process leads, so the first sample does not include
	// the lease campaign.
	for !sys.Status().IsLeader {
		time.Sleep(10 * time.Millisecond)
	}
	return env
}

// viaControllers writes n task intents at once and returns, for each, the
// time from its write to Docker's start of its container. It returns once the
// tasks have finished, so the next sample starts on an idle system.
func (e *benchEnv) viaControllers(b *testing.B, n int, snapshot bool) []time.Duration {
	b.Helper()
	d, _ := e.viaControllersCounted(b, n, snapshot)
	return d
}

// viaControllersCounted is viaControllers that also returns, for each task,
// how many Docker API calls began between its intent and its container's
// StartedAt (all zero without e.calls).
func (e *benchEnv) viaControllersCounted(b *testing.B, n int, snapshot bool) ([]time.Duration, []int) {
	b.Helper()
	d, c, _ := e.viaControllersTraced(b, n, snapshot)
	return d, c
}

// viaControllersTraced is viaControllersCounted that also returns each start's
// milestones (see BenchmarkTaskStart).
func (e *benchEnv) viaControllersTraced(b *testing.B, n int, snapshot bool) ([]time.Duration, []int, []stepSample) {
	b.Helper()
	starts := make([]time.Time, n)
	ids := make([]string, n)
	for i := range n {
		task := &models.Task{Spec: models.TaskSpec{Prompt: "sleep 1", WorkFolder: e.repo, Agent: "shell",
			IncludeUncommitted: snapshot}}
		starts[i] = time.Now()
		if _, _, err := e.store.CreateTask(e.ctx, task); err != nil {
			b.Fatal(err)
		}
		e.sys.Notify(controllers.KindTask, task.ID)
		ids[i] = task.ID
	}
	out, calls, samples := make([]time.Duration, n), make([]int, n), make([]stepSample, n)
	for i, id := range ids {
		deadline := time.Now().Add(2 * time.Minute)
		for {
			t, err := e.store.GetTask(e.ctx, id)
			if err != nil {
				b.Fatal(err)
			}
			if t.Status.ContainerID != "" {
				info, err := e.eng.Inspect(e.ctx, t.Status.ContainerID)
				if err != nil {
					b.Fatal(err)
				}
				out[i] = info.StartedAt.Sub(starts[i])
				if e.calls != nil {
					calls[i] = e.calls.between(starts[i], info.StartedAt)
				}
				samples[i] = e.milestones(id, starts[i], info.StartedAt)
				break
			}
			if time.Now().After(deadline) || t.Status.Finished {
				b.Fatalf("task %s never ran: %+v", id, t.Status)
			}
			// The end of the interval is Docker's StartedAt, so how often this
			// looks does not change the figure; looking often would (each look
			// is a query in this process, which takes CPU from the engine's
			// start on a small machine, and the floor has no onlooker).
			time.Sleep(100 * time.Millisecond)
		}
	}
	for _, id := range ids {
		deadline := time.Now().Add(2 * time.Minute)
		for {
			t, err := e.store.GetTask(e.ctx, id)
			if err != nil {
				b.Fatal(err)
			}
			if t.Status.Finished {
				break
			}
			if time.Now().After(deadline) {
				b.Fatalf("task %s never finished: %+v", id, t.Status)
			}
			time.Sleep(100 * time.Millisecond)
		}
	}
	return out, calls, samples
}

// milestones is what is known of the start of task id, begun at begun and
// running at running.
func (e *benchEnv) milestones(id string, begun, running time.Time) stepSample {
	var sample stepSample
	mark := func(name string, t time.Time, ok bool) {
		if ok {
			sample = append(sample, stepMark{name, t.Sub(begun)})
		}
	}
	step := func(name string, st controllers.Step) {
		t, ok := e.steps.get(id, st)
		mark(name, t, ok)
	}
	step("Preparing written", controllers.StepAdmitted)
	if e.calls != nil {
		c, ok := e.calls.first(opCreate, begun, running)
		mark("create called", c.begun, ok)
		mark("create answered", c.end, ok)
	}
	step("workspace ready", controllers.StepWorkspaceReady)
	if e.calls != nil {
		c, ok := e.calls.first(opStart, begun, running)
		mark("start called", c.begun, ok)
	}
	mark("running", running, true)
	return sample
}

// direct creates and starts n containers like the controllers' (same image,
// command, user, limits and two bind mounts) at once with the Docker client.
func (e *benchEnv) direct(b *testing.B, n, round int) []time.Duration {
	b.Helper()
	d, _ := e.directTraced(b, n, round)
	return d
}

// directTraced is direct that also returns each start's milestones.
func (e *benchEnv) directTraced(b *testing.B, n, round int) ([]time.Duration, []stepSample) {
	b.Helper()
	out, samples := make([]time.Duration, n), make([]stepSample, n)
	ids := make([]string, n)
	var wg sync.WaitGroup
	for i := range n {
		dir := filepath.Join(e.home, "direct", fmt.Sprint(round, "-", i))
		for _, d := range []string{"work", "home"} {
			if err := os.MkdirAll(filepath.Join(dir, d), 0o755); err != nil {
				b.Fatal(err)
			}
		}
		taskID := models.NewTaskID()
		spec := engine.RunSpec{
			Name: engine.ContainerName(taskID, 1), Image: enginetest.ShellImage, Cmd: []string{"sh", "-c", "sleep 1"},
			Env: []string{"HOME=/home/agent"}, Labels: enginetest.Merge(engine.Labels("bench-direct", taskID, 1), e.directLabels),
			User: "10001:10001", WorkDir: "/workspace", Network: "none",
			MemoryBytes: 64 << 20, NanoCPUs: 500_000_000, PidsLimit: 64,
			Mounts: []engine.Mount{{Source: filepath.Join(dir, "work"), Target: "/workspace"}, {Source: filepath.Join(dir, "home"), Target: "/home/agent"}},
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			start := time.Now()
			id, err := e.eng.Create(e.ctx, spec)
			created := time.Now()
			if err == nil {
				err = e.eng.Start(e.ctx, id)
			}
			if err != nil {
				b.Error(err)
				return
			}
			info, err := e.eng.Inspect(e.ctx, id)
			if err != nil {
				b.Error(err)
				return
			}
			out[i] = info.StartedAt.Sub(start)
			samples[i] = stepSample{{"create answered", created.Sub(start)}, {"running", out[i]}}
			ids[i] = id
		}()
	}
	wg.Wait()
	// Let them end, so the next sample starts on an idle system.
	for _, id := range ids {
		if id != "" {
			enginetest.WaitFor(b, e.eng, id, time.Minute, func(c engine.ContainerInfo) bool { return c.Finished() })
		}
	}
	return out, samples
}
