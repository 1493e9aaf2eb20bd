package e2e

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"runtime"
	"slices"
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

// BenchmarkTaskStart measures, in one run, the time from writing a task
// intent to its container running under the controllers, against the floor:
// creating and starting the same hardened container directly with the Docker
// client. "Running" is Docker's own StartedAt on both sides. It prints the
// medians and their ratio, one task at a time (each sample on an idle system,
// alternating with a floor sample so both see the same machine load) and
// twenty at once.
//
// The intent is written the way the MCP front end writes it, snapshot of the
// work folder included (its default), and the controllers are woken the way
// the front end wakes them (Notify, in the same process). A checkout of HEAD
// (includeUncommitted false) is measured too.
//
//	go test -run '^$' -bench TaskStart -benchtime 1x ./test/e2e/
func BenchmarkTaskStart(b *testing.B) {
	eng := enginetest.New(b)
	for range b.N {
		env := newBenchEnv(b, eng)
		version, api, err := eng.Ping(env.ctx)
		if err != nil {
			b.Fatal(err)
		}
		fmt.Printf("start  | %d CPUs, Docker %s (API %s); intent→running = task intent written until Docker's StartedAt of its container; "+
			"floor = docker create+start of the same container with the client\n", runtime.NumCPU(), version, api)
		const rounds = 15
		var snapshot, checkout, floor []time.Duration
		for i := range rounds {
			// Interleaved, so every side sees the same engine load.
			snapshot = append(snapshot, env.viaControllers(b, 1, true)...)
			floor = append(floor, env.direct(b, 1, i)...)
			checkout = append(checkout, env.viaControllers(b, 1, false)...)
		}
		report(b, "one task, snapshot of the work folder (default)", "1", snapshot, floor)
		report(b, "one task, checkout of HEAD", "1-checkout", checkout, floor)

		ours := env.viaControllers(b, 20, true)
		floor = env.direct(b, 20, rounds)
		report(b, "20 tasks at once, snapshot (default)", "20", ours, floor)
	}
}

func report(b *testing.B, what, metric string, ours, floor []time.Duration) {
	mo, mf := median(ours), median(floor)
	ratio := float64(mo) / float64(mf)
	fmt.Printf("start  | %-48s | intent→running median %7.1fms | floor median %7.1fms | ratio %.3f (overhead %+5.1f%%, target < +10%%)\n",
		what, ms(mo), ms(mf), ratio, 100*(ratio-1))
	b.ReportMetric(ratio, "ratio-"+metric)
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
	sys, err := controllers.NewSystem(controllers.Deps{Config: cfg, Store: store, Engine: eng, Logger: zap.NewNop()})
	if err != nil {
		b.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- sys.Run(ctx) }()
	labels := map[string]string{enginetest.TestLabel: "bench-" + enginetest.RandomHex(4)}
	b.Cleanup(func() {
		cancel()
		<-done
		enginetest.RemoveAll(b, eng, engine.StoreLabels(store.InstallationID()))
		enginetest.RemoveAll(b, eng, labels)
		_ = store.Close()
	})
	env := &benchEnv{ctx: ctx, cfg: cfg, store: store, eng: eng, sys: sys, home: home, repo: newRepo(b), directLabels: labels}
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
	out := make([]time.Duration, n)
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
	return out
}

// direct creates and starts n containers like the controllers' (same image,
// command, user, limits and two bind mounts) at once with the Docker client.
func (e *benchEnv) direct(b *testing.B, n, round int) []time.Duration {
	b.Helper()
	out := make([]time.Duration, n)
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
	return out
}
