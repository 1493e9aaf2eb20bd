package controllers

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"go.uber.org/zap/zapcore"
	"go.uber.org/zap/zaptest"

	"github.com/claude-parallel/claude-parallel/config"
	"github.com/claude-parallel/claude-parallel/controllers/engine"
	"github.com/claude-parallel/claude-parallel/controllers/engine/enginetest"
	"github.com/claude-parallel/claude-parallel/models"
	"github.com/claude-parallel/claude-parallel/test/testutil"
)

// TestMain makes Docker available for the tests that need it (and says so
// loudly, or fails under CI=true, when it cannot).
func TestMain(m *testing.M) { enginetest.Main(m) }

// dockerEnv is a running System on the real Docker engine with the shell
// profile, a fresh store and a real git repository.
type dockerEnv struct {
	t     *testing.T
	ctx   context.Context
	cfg   *config.Config
	store *models.Store
	eng   *engine.Engine
	s     *System
	repo  string
}

// testIntervals makes everything periodic fast enough for tests.
func testIntervals(c *config.Config) {
	c.Intervals.Resync = config.D(2 * time.Second)
	c.Intervals.ContainerGC = config.D(2 * time.Second)
	c.Intervals.LeaseDuration = config.D(3 * time.Second)
	c.Intervals.LeaseRenew = config.D(time.Second)
	c.Intervals.WakePoll = config.D(100 * time.Millisecond)
	c.Intervals.ReconcileTimeout = config.D(time.Minute)
	shell := c.Profiles["shell"]
	shell.Resources = config.Resources{MemoryBytes: 64 << 20, NanoCPUs: 500_000_000, Pids: 64}
	c.Profiles["shell"] = shell
	c.DefaultAgent = "shell"
}

// newDockerEnv starts a System; everything it created in Docker is removed
// when the test ends.
func newDockerEnv(t *testing.T, tune ...func(*config.Config)) *dockerEnv {
	t.Helper()
	eng := enginetest.New(t)
	ctx, cancel := context.WithCancel(context.Background())
	home := t.TempDir()
	testutil.UnmountBelowAtEnd(t, home) // copy-on-write workspaces are mounts
	cfg := config.Default()
	cfg.Home = home
	cfg.DBPath = filepath.Join(home, "data", "claude-parallel.db")
	cfg.Log.Dir = filepath.Join(home, "logs")
	cfg.MaxParallel = 4
	cfg.AllowedRoots = []string{os.TempDir()} // the test repositories are made under t.TempDir()
	testIntervals(cfg)
	for _, f := range tune {
		f(cfg)
	}
	store, err := models.Open(ctx, cfg.DBPath, models.Options{})
	if err != nil {
		t.Fatalf("open store: %v", err)
	}
	s, err := NewSystem(Deps{Config: cfg, Store: store, Engine: eng,
		Logger: zaptest.NewLogger(t, zaptest.Level(zapcore.InfoLevel))})
	if err != nil {
		t.Fatalf("new system: %v", err)
	}
	s.tasks.stopGrace = time.Second
	done := make(chan error, 1)
	go func() { done <- s.Run(ctx) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("system run: %v", err)
		}
		enginetest.RemoveAll(t, eng, engine.StoreLabels(store.InstallationID()))
		_ = store.Close()
	})
	env := &dockerEnv{t: t, ctx: ctx, cfg: cfg, store: store, eng: eng, s: s,
		repo: testutil.NewRepo(t, t.TempDir(), map[string]string{"README.md": "hello\n"})}
	return env
}

// submit writes a task intent and wakes the controllers, as a front end does.
func (e *dockerEnv) submit(prompt string, mutate ...func(*models.Task)) *models.Task {
	e.t.Helper()
	task := &models.Task{Spec: models.TaskSpec{Prompt: prompt, WorkFolder: e.repo, Agent: "shell"}}
	for _, m := range mutate {
		m(task)
	}
	if _, _, err := e.store.CreateTask(e.ctx, task); err != nil {
		e.t.Fatalf("create task: %v", err)
	}
	e.s.Notify(KindTask, task.ID)
	return task
}

// wait polls the task until cond holds.
func (e *dockerEnv) wait(id string, timeout time.Duration, cond func(*models.Task) bool) *models.Task {
	e.t.Helper()
	t, ok := testutil.Poll(e.t, timeout, 50*time.Millisecond, func() (*models.Task, error) {
		return e.store.GetTask(e.ctx, id)
	}, cond)
	if !ok {
		e.t.Fatalf("task %s: condition not met within %v; status %+v", id, timeout, t.Status)
	}
	return t
}

func (e *dockerEnv) inspect(ref string) engine.ContainerInfo {
	e.t.Helper()
	ctx, cancel := context.WithTimeout(e.ctx, 10*time.Second)
	defer cancel()
	info, err := e.eng.Inspect(ctx, ref)
	if err != nil {
		e.t.Fatalf("inspect %s: %v", ref, err)
	}
	return info
}

// checkHardened asserts what DESIGN §5 promises of every task container.
func (e *dockerEnv) checkHardened(info engine.ContainerInfo, workspacePath string) {
	e.t.Helper()
	uid, _, _ := strings.Cut(info.User, ":")
	if info.User == "" || uid == "0" || uid == "root" {
		e.t.Errorf("%s runs as %q", info.Name, info.User)
	}
	if !slices.Equal(info.CapDrop, []string{"ALL"}) || len(info.CapAdd) != 0 || info.Privileged {
		e.t.Errorf("%s capabilities: drop %v add %v privileged %v", info.Name, info.CapDrop, info.CapAdd, info.Privileged)
	}
	if !slices.Contains(info.SecurityOpt, "no-new-privileges") {
		e.t.Errorf("%s security options %v", info.Name, info.SecurityOpt)
	}
	if info.MemoryBytes <= 0 || info.NanoCPUs <= 0 || info.PidsLimit <= 0 || info.MemorySwap != info.MemoryBytes {
		e.t.Errorf("%s limits: memory %d swap %d cpus %d pids %d", info.Name, info.MemoryBytes, info.MemorySwap, info.NanoCPUs, info.PidsLimit)
	}
	if info.NetworkMode != "none" {
		e.t.Errorf("%s network %q", info.Name, info.NetworkMode)
	}
	var binds []string
	for _, m := range info.Mounts {
		if m.Type != "bind" || !strings.HasPrefix(m.Source, workspacePath+string(os.PathSeparator)) {
			e.t.Errorf("%s has a mount that is not its own: %+v", info.Name, m)
		}
		binds = append(binds, m.Target)
	}
	slices.Sort(binds)
	if !slices.Equal(binds, []string{agentHome, "/workspace"}) {
		e.t.Errorf("%s mounts %v", info.Name, binds)
	}
}

func TestDocker_TaskLifecycle(t *testing.T) {
	t.Parallel()
	e := newDockerEnv(t)
	ok := e.submit(`echo start; echo hello > hello.txt; i=1; while [ $i -le 50 ]; do echo line-$i; i=$((i+1)); done; echo err >&2`)
	fail := e.submit(`echo oops >&2; exit 3`)
	slow := e.submit(`echo sleeping; sleep 30`, func(t *models.Task) { t.Spec.TimeoutSeconds = 2 })
	cancel := e.submit(`sleep 30`)
	// A FIFO where git reads its rules: git would block capturing this run.
	fifo := e.submit(`echo x > new.txt; mkfifo .gitignore`)

	running := e.wait(cancel.ID, 30*time.Second, phaseIs(models.TaskPhaseRunning))
	e.checkHardened(e.inspect(running.Status.ContainerID), running.Status.WorkspacePath)
	if _, err := e.store.UpdateTaskSpec(e.ctx, cancel.ID, func(t *models.Task) error {
		t.Spec.DesiredState, t.Spec.CancelReason = models.TaskDesiredCancel, "changed my mind"
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	e.s.Notify(KindTask, cancel.ID)

	got := e.wait(ok.ID, 30*time.Second, finished)
	if got.Status.State != models.TaskStateCompleted || got.Status.DiffID == "" {
		t.Fatalf("ok task: %+v", got.Status)
	}
	if b, err := os.ReadFile(filepath.Join(got.Status.WorkspacePath, "work", "hello.txt")); err != nil || string(b) != "hello\n" {
		t.Errorf("workspace file: %q, %v", b, err)
	}
	logText, err := os.ReadFile(e.s.tasks.taskLogPath(ok.ID, 1))
	if err != nil {
		t.Fatal(err)
	}
	// stdout keeps its order; Docker reads stderr on its own, so the one
	// stderr line may sit anywhere in time order.
	lines := stripStamps(string(logText))
	if i := slices.Index(lines, "err"); i >= 0 {
		lines = slices.Delete(lines, i, i+1)
	} else {
		t.Errorf("stderr line missing from the log")
	}
	want := []string{"start"}
	for i := 1; i <= 50; i++ {
		want = append(want, fmt.Sprint("line-", i))
	}
	if !slices.Equal(lines, want) {
		t.Errorf("log lines = %q", lines)
	}
	e.checkHardened(e.inspect(got.Status.ContainerID), got.Status.WorkspacePath)

	got = e.wait(fail.ID, 30*time.Second, finished)
	if got.Status.State != models.TaskStateFailed || got.Status.Message != "exited with code 3" || *got.Status.ExitCode != 3 {
		t.Errorf("failing task: %+v", got.Status)
	}
	got = e.wait(fifo.ID, 60*time.Second, finished)
	if got.Status.State != models.TaskStateFailed || got.Status.Reason != ReasonUncapturable ||
		!strings.Contains(got.Status.Message, ".gitignore is a named pipe (FIFO)") {
		t.Errorf("task leaving a FIFO .gitignore: %+v", got.Status)
	}

	got = e.wait(slow.ID, 30*time.Second, finished)
	if got.Status.State != models.TaskStateTimedOut || got.Status.Message != "timed out after 2s" {
		t.Errorf("slow task: %+v", got.Status)
	}
	if info := e.inspect(got.Status.ContainerID); info.Running() {
		t.Errorf("timed-out container still running")
	}

	got = e.wait(cancel.ID, 30*time.Second, finished)
	if got.Status.State != models.TaskStateCancelled || got.Status.Message != "cancelled: changed my mind" {
		t.Errorf("cancelled task: %+v", got.Status)
	}
	if info := e.inspect(got.Status.ContainerID); info.Running() {
		t.Errorf("cancelled container still running")
	}
	if st := e.s.Status(); !st.IsLeader {
		t.Errorf("status %+v", st)
	}
}

func TestDocker_MaxParallelNeverExceeded(t *testing.T) {
	t.Parallel()
	const limit, tasks = 3, 20
	e := newDockerEnv(t, func(c *config.Config) { c.MaxParallel = limit })
	var ids []string
	for i := range tasks {
		ids = append(ids, e.submit(fmt.Sprintf("echo task %d; sleep 0.5", i)).ID)
	}
	var mu sync.Mutex
	peak, samples := 0, 0
	stop := make(chan struct{})
	watched := make(chan struct{})
	go func() {
		defer close(watched)
		tick := time.NewTicker(100 * time.Millisecond)
		defer tick.Stop()
		for {
			select {
			case <-stop:
				return
			case <-tick.C:
			}
			list, err := e.eng.List(e.ctx, engine.StoreLabels(e.store.InstallationID()), false)
			if err != nil {
				continue
			}
			mu.Lock()
			peak = max(peak, len(list))
			samples++
			mu.Unlock()
		}
	}()
	for _, id := range ids {
		got := e.wait(id, 90*time.Second, finished)
		if got.Status.Phase != models.TaskPhaseSucceeded {
			t.Errorf("task %s: %+v", id, got.Status)
		}
	}
	close(stop)
	<-watched
	mu.Lock()
	defer mu.Unlock()
	if peak > limit {
		t.Fatalf("%d containers ran at once, max_parallel is %d", peak, limit)
	}
	if peak < 2 || samples < 10 {
		t.Fatalf("peak %d over %d samples: the tasks did not run in parallel", peak, samples)
	}
	t.Logf("peak %d running containers over %d samples", peak, samples)
}

func TestDocker_PrioritiesAndDependencies(t *testing.T) {
	t.Parallel()
	e := newDockerEnv(t, func(c *config.Config) { c.MaxParallel = 1 })
	blocker := e.submit(`sleep 1`)
	e.wait(blocker.ID, 30*time.Second, phaseIs(models.TaskPhaseRunning))
	low := e.submit(`true`, func(t *models.Task) { t.Spec.Priority = models.PriorityLow })
	high := e.submit(`true`, func(t *models.Task) { t.Spec.Priority = models.PriorityHigh })
	a := e.submit(`exit 1`, func(t *models.Task) { t.Spec.Priority = models.PriorityLow })
	b := e.submit(`true`, func(t *models.Task) { t.Spec.DependsOn = []string{a.ID}; t.Spec.Priority = models.PriorityHigh })

	gotLow := e.wait(low.ID, 60*time.Second, finished)
	gotHigh := e.wait(high.ID, 60*time.Second, finished)
	if !gotHigh.Status.RunStartedAt.Before(*gotLow.Status.RunStartedAt) {
		t.Errorf("low started at %v, before high at %v", gotLow.Status.RunStartedAt, gotHigh.Status.RunStartedAt)
	}
	gotB := e.wait(b.ID, 60*time.Second, finished)
	gotA := e.wait(a.ID, 60*time.Second, finished)
	if gotA.Status.State != models.TaskStateFailed {
		t.Fatalf("a: %+v", gotA.Status)
	}
	if gotB.Status.State != models.TaskStateFailed || gotB.Status.Message != fmt.Sprintf("dependency %s failed", a.ID) ||
		gotB.Status.ContainerID != "" {
		t.Errorf("b: %+v", gotB.Status)
	}
	// A dependent starts only after its dependency completed.
	c := e.submit(`true`)
	d := e.submit(`true`, func(t *models.Task) { t.Spec.DependsOn = []string{c.ID}; t.Spec.Priority = models.PriorityHigh })
	gotD := e.wait(d.ID, 60*time.Second, finished)
	gotC := e.wait(c.ID, 60*time.Second, finished)
	if gotD.Status.State != models.TaskStateCompleted || gotD.Status.RunStartedAt.Before(*gotC.Status.EndTime) {
		t.Errorf("d ran before its dependency completed: c ended %v, d started %v", gotC.Status.EndTime, gotD.Status.RunStartedAt)
	}
}

func TestDocker_OutsideInterferenceNoticed(t *testing.T) {
	t.Parallel()
	e := newDockerEnv(t)
	killed := e.submit(`sleep 60`)
	removed := e.submit(`sleep 60`)
	k := e.wait(killed.ID, 30*time.Second, phaseIs(models.TaskPhaseRunning))
	r := e.wait(removed.ID, 30*time.Second, phaseIs(models.TaskPhaseRunning))

	if err := e.eng.Kill(e.ctx, k.Status.ContainerID, "SIGKILL"); err != nil {
		t.Fatal(err)
	}
	if err := e.eng.Remove(e.ctx, r.Status.ContainerID, true); err != nil {
		t.Fatal(err)
	}
	at := time.Now()
	within := e.cfg.Intervals.Resync.Duration + 2*time.Second
	gotK := e.wait(killed.ID, within, finished)
	gotR := e.wait(removed.ID, within, finished)
	t.Logf("both noticed within %v", time.Since(at))
	if gotK.Status.State != models.TaskStateFailed || gotK.Status.Message != "exited with code 137" {
		t.Errorf("killed: %+v", gotK.Status)
	}
	if gotR.Status.State != models.TaskStateFailed || gotR.Status.Reason != ReasonVanished {
		t.Errorf("removed: %+v", gotR.Status)
	}
}

func TestDocker_AdoptsOrphanAndRemovesOldStopped(t *testing.T) {
	t.Parallel()
	eng := enginetest.New(t)
	// The orphan must carry the store's id, so open the store first.
	home := t.TempDir()
	dbPath := filepath.Join(home, "data", "claude-parallel.db")
	pre, err := models.Open(context.Background(), dbPath, models.Options{})
	if err != nil {
		t.Fatal(err)
	}
	storeID := pre.InstallationID()
	_ = pre.Close()
	ctx := context.Background()
	orphanTask := models.NewTaskID()
	spec := engine.RunSpec{
		Name: engine.ContainerName(orphanTask, 1), Image: enginetest.ShellImage,
		Cmd: []string{"sh", "-c", "echo orphan output; sleep 60"}, Labels: engine.Labels(storeID, orphanTask, 1),
		User: "10001:10001", MemoryBytes: 64 << 20, NanoCPUs: 500_000_000, PidsLimit: 64,
	}
	t.Cleanup(func() { enginetest.RemoveAll(t, eng, engine.StoreLabels(storeID)) })
	id, err := eng.Create(ctx, spec)
	if err != nil {
		t.Fatal(err)
	}
	if err := eng.Start(ctx, id); err != nil {
		t.Fatal(err)
	}
	stoppedTask := models.NewTaskID()
	spec2 := spec
	spec2.Name, spec2.Labels, spec2.Cmd = engine.ContainerName(stoppedTask, 1), engine.Labels(storeID, stoppedTask, 1), []string{"true"}
	id2, err := eng.Create(ctx, spec2)
	if err != nil {
		t.Fatal(err)
	}
	if err := eng.Start(ctx, id2); err != nil {
		t.Fatal(err)
	}
	enginetest.WaitFor(t, eng, id2, 20*time.Second, func(c engine.ContainerInfo) bool { return c.Finished() })

	e := newDockerEnv(t, func(c *config.Config) {
		c.Home, c.DBPath, c.Log.Dir = home, dbPath, filepath.Join(home, "logs")
		c.Retention.StoppedContainerMaxAge = config.D(time.Second)
	})
	deadline := time.Now().Add(15 * time.Second)
	for {
		row, err := e.store.GetContainerByName(e.ctx, spec.Name)
		_, gone := e.eng.Inspect(e.ctx, id2)
		logText, _ := os.ReadFile(filepath.Join(e.s.tasks.paths.TaskLogDir, "adopted", spec.Name+".log"))
		if err == nil && row.Adopted && errors.Is(gone, engine.ErrNotFound) &&
			slices.Equal(stripStamps(string(logText)), []string{"orphan output"}) {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("orphan row %+v (%v), stopped container gone: %v, adopted log %q", row, err, gone, logText)
		}
		time.Sleep(100 * time.Millisecond)
	}
	if info := e.inspect(id); !info.Running() {
		t.Errorf("the adopted container was stopped")
	}
	if st := e.s.Status(); st.ContainersAdopted != 1 {
		t.Errorf("status %+v, want one adopted container", st)
	}
}

// taskResyncs is how many full listings the task controller has made.
func (e *dockerEnv) taskResyncs() uint64 {
	for _, c := range e.s.Status().Controllers {
		if c.Name == taskControllerName {
			return c.Resyncs
		}
	}
	e.t.Fatal("no task controller in the status")
	return 0
}

// The process's own writes — a running task's output progress, lease
// renewals, status writes — do not set off the cross-process wake-up (a full
// resync of every controller); a write by another store on the same database
// does, within a few polls.
func TestDocker_OnlyOthersWritesResync(t *testing.T) {
	t.Parallel()
	e := newDockerEnv(t, func(c *config.Config) {
		c.Intervals.Resync = config.D(time.Hour) // no periodic resync in the window
		c.Intervals.LeaseRenew = config.D(200 * time.Millisecond)
		c.Intervals.WakePoll = config.D(50 * time.Millisecond)
	})
	task := e.submit(`for i in $(seq 25); do echo line $i; sleep 0.1; done`)
	e.wait(task.ID, 30*time.Second, phaseIs(models.TaskPhaseRunning))
	before := e.taskResyncs()
	done := e.wait(task.ID, 30*time.Second, finished)
	if done.Status.State != models.TaskStateCompleted {
		t.Fatalf("task: %+v", done.Status)
	}
	time.Sleep(500 * time.Millisecond) // a few lease renewals more
	if after := e.taskResyncs(); after != before {
		t.Errorf("%d full resyncs while only this process wrote (output progress, renewals, statuses), want 0", after-before)
	}

	other, err := models.Open(e.ctx, e.cfg.DBPath, models.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer other.Close()
	before = e.taskResyncs()
	if err := other.RecordEvent(e.ctx, models.EventKindTask, task.ID, "Poke", "a write by another store"); err != nil {
		t.Fatal(err)
	}
	if _, ok := testutil.Poll(t, 5*time.Second, 20*time.Millisecond, func() (uint64, error) { return e.taskResyncs(), nil },
		func(n uint64) bool { return n > before }); !ok {
		t.Fatal("a write by another store did not wake the controllers")
	}
}
