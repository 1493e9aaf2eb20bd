// Package e2e holds end-to-end tests of claude-parallel against the real
// Docker engine and real git repositories.
//
// The lifecycle tests run the real controllers in a child process
// (testdata/controllerd, built once by TestMain) on a database file the test
// shares, kill it with SIGKILL at each step of a task run, start it again,
// and check the world: every task ends in the right state, Docker never holds
// a second container for one task run, and the run's log file has every
// output line exactly once.
package e2e

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"slices"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/claude-parallel/claude-parallel/config"
	"github.com/claude-parallel/claude-parallel/controllers"
	"github.com/claude-parallel/claude-parallel/controllers/engine"
	"github.com/claude-parallel/claude-parallel/controllers/engine/enginetest"
	"github.com/claude-parallel/claude-parallel/models"
	"github.com/claude-parallel/claude-parallel/test/testutil"
)

// controllerd is the path of the built test binary.
var controllerd string

func TestMain(m *testing.M) {
	os.Exit(runTests(m))
}

func runTests(m *testing.M) int {
	if os.Getenv(envNetnsChild) == "1" {
		// TestClaudeCodeClient's run inside its network namespace: its
		// parent prepared what it needs.
		return m.Run()
	}
	if err := enginetest.Prepare(); err != nil {
		if testutil.InCI() {
			fmt.Fprintf(os.Stderr, "FAIL: CI=true and no Docker engine could be made available: %v\n", err)
			return 1
		}
		fmt.Fprintf(os.Stderr, "Docker is not available, end-to-end tests will be skipped: %v\n", err)
		return m.Run()
	}
	dir, err := os.MkdirTemp("", "claude-parallel-e2e-")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	defer os.RemoveAll(dir)
	controllerd = filepath.Join(dir, "controllerd")
	build := exec.Command("go", "build", "-o", controllerd, "./testdata/controllerd")
	build.Dir = packageDir()
	build.Stdout, build.Stderr = os.Stderr, os.Stderr
	if err := build.Run(); err != nil {
		fmt.Fprintln(os.Stderr, "build controllerd:", err)
		return 1
	}
	return m.Run()
}

// packageDir is this test package's directory.
func packageDir() string {
	_, file, _, _ := runtime.Caller(0)
	return filepath.Dir(file)
}

const (
	leaseDuration = 2 * time.Second
	// countLines is how many numbered lines the test agent prints.
	countLines = 40
)

// countScript prints line-1 … line-N a little apart, then changes a file, so
// a kill can land while output is flowing and the run leaves a diff.
func countScript(n int, gap string) string {
	return fmt.Sprintf(`i=1; while [ $i -le %d ]; do echo line-$i; i=$((i+1)); sleep %s; done; echo done > result.txt`, n, gap)
}

// install is one claude-parallel installation (home, database) shared by the
// test and its child processes.
type install struct {
	t     *testing.T
	home  string
	repo  string
	store *models.Store
	eng   *engine.Engine
	dsn   string // the PostgreSQL store's, "" for the SQLite file under home
}

func newInstall(t *testing.T) *install { return newInstallOn(t, models.DriverSQLite) }

// newInstallOn is newInstall with the store on driver: the SQLite file under
// home, or a fresh PostgreSQL database (testutil.PostgresDSN) that the
// child processes get through CLAUDE_PARALLEL_DB_DSN.
func newInstallOn(t *testing.T, driver string) *install {
	t.Helper()
	eng := enginetest.New(t)
	home := t.TempDir()
	testutil.UnmountBelowAtEnd(t, home) // copy-on-write workspaces are mounts
	target, dsn := filepath.Join(home, "data", "claude-parallel.db"), ""
	if driver == models.DriverPostgres {
		dsn = testutil.PostgresDSN(t)
		target = dsn
	}
	store, err := models.OpenDriver(context.Background(), driver, target, models.Options{})
	if err != nil {
		t.Fatalf("open store: %v", err)
	}
	in := &install{t: t, home: home, repo: newRepo(t), store: store, eng: eng, dsn: dsn}
	t.Cleanup(func() {
		enginetest.RemoveAll(t, eng, engine.StoreLabels(store.InstallationID()))
		_ = store.Close()
	})
	return in
}

// newRepo makes a repository with README.md in one commit.
func newRepo(t testing.TB) string {
	t.Helper()
	return testutil.NewRepo(t, t.TempDir(), map[string]string{"README.md": "hello\n"})
}

// child is one controllerd process.
type child struct {
	name string
	cmd  *exec.Cmd
	log  string // its stderr (zap JSON)
	done chan error
}

// start runs controllerd on the installation; env adds to its environment.
func (in *install) start(name string, env ...string) *child {
	in.t.Helper()
	logPath := filepath.Join(in.home, name+".log")
	f, err := os.OpenFile(logPath, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		in.t.Fatal(err)
	}
	cmd := exec.Command(controllerd, "-home", in.home, "-holder", name, "-lease", leaseDuration.String(), "-renew", "500ms")
	cmd.Env = append(os.Environ(), env...)
	if in.dsn != "" {
		cmd.Env = append(cmd.Env, config.EnvDBDSN+"="+in.dsn)
	}
	cmd.Stdout, cmd.Stderr = f, f
	if err := cmd.Start(); err != nil {
		in.t.Fatalf("start controllerd: %v", err)
	}
	c := &child{name: name, cmd: cmd, log: logPath, done: make(chan error, 1)}
	go func() {
		c.done <- cmd.Wait()
		f.Close()
	}()
	in.t.Cleanup(func() { c.stop(in.t) })
	return c
}

// stop ends the child with SIGTERM (it drains and releases the lease).
func (c *child) stop(t *testing.T) {
	if c.cmd.ProcessState != nil {
		return
	}
	_ = c.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-c.done:
	case <-time.After(30 * time.Second):
		_ = c.cmd.Process.Kill()
		<-c.done
		t.Errorf("controllerd %s did not stop on SIGTERM", c.name)
	}
}

// kill ends the child with SIGKILL, as a crash would.
func (c *child) kill() {
	_ = c.cmd.Process.Kill()
	<-c.done
}

// waitKilled waits for a child that is to SIGKILL itself at a step.
func (c *child) waitKilled(t *testing.T, timeout time.Duration) {
	t.Helper()
	select {
	case err := <-c.done:
		var ee *exec.ExitError
		if !errors.As(err, &ee) || ee.ProcessState.Sys().(syscall.WaitStatus).Signal() != syscall.SIGKILL {
			t.Fatalf("controllerd ended with %v, want it killed at its crash point; log:\n%s", err, tail(c.log))
		}
	case <-time.After(timeout):
		t.Fatalf("controllerd never reached its crash point; log:\n%s", tail(c.log))
	}
}

func tail(path string) string {
	b, _ := os.ReadFile(path)
	lines := strings.Split(string(b), "\n")
	if len(lines) > 30 {
		lines = lines[len(lines)-30:]
	}
	return strings.Join(lines, "\n")
}

func (in *install) submit(prompt string) *models.Task {
	in.t.Helper()
	t := &models.Task{Spec: models.TaskSpec{Prompt: prompt, WorkFolder: in.repo, Agent: "shell"}}
	if _, _, err := in.store.CreateTask(context.Background(), t); err != nil {
		in.t.Fatalf("create task: %v", err)
	}
	return t
}

func (in *install) wait(id string, timeout time.Duration, cond func(*models.Task) bool) *models.Task {
	in.t.Helper()
	return waitUntil(in.t, id, timeout, in.store.GetTask, cond, func(t *models.Task) any { return t.Status })
}

// waitUntil polls get(id) until cond holds and fails the test, showing
// status of the last value, when timeout passes first.
func waitUntil[T any](t *testing.T, id string, timeout time.Duration, get func(context.Context, string) (T, error),
	cond func(T) bool, status func(T) any) T {
	t.Helper()
	v, ok := testutil.Poll(t, timeout, 50*time.Millisecond, func() (T, error) { return get(context.Background(), id) }, cond)
	if !ok {
		t.Fatalf("%s: condition not met within %v; status %+v", id, timeout, status(v))
	}
	return v
}

func finished(t *models.Task) bool { return t.Status.Finished }

// checkRun asserts the end state of a task run that printed countLines
// numbered lines and changed a file: succeeded with one diff, one container
// in Docker, and a log file holding every line once, in order.
func (in *install) checkRun(task *models.Task, n int) {
	in.t.Helper()
	ctx := context.Background()
	if task.Status.Phase != models.TaskPhaseSucceeded || task.Status.DiffID == "" || task.Status.RunNumber != 1 {
		in.t.Errorf("task %s: %+v", task.ID, task.Status)
	}
	if diffs, err := in.store.ListDiffs(ctx, models.DiffFilter{TaskID: task.ID}); err != nil || len(diffs) != 1 {
		in.t.Errorf("task %s: %d diffs (%v), want 1", task.ID, len(diffs), err)
	}
	list, err := in.eng.List(ctx, map[string]string{engine.LabelStore: in.store.InstallationID(), engine.LabelTaskID: task.ID}, true)
	if err != nil {
		in.t.Fatal(err)
	}
	if len(list) != 1 {
		var names []string
		for _, c := range list {
			names = append(names, c.Name)
		}
		in.t.Errorf("task %s: %d containers %v, want exactly 1", task.ID, len(list), names)
	}
	checkLog(in.t, filepath.Join(in.home, "logs", "tasks", task.ID, "run-1.log"), n)
	el, err := in.store.GetExecutionLog(ctx, task.ID, 1)
	if err != nil || !el.Complete {
		in.t.Errorf("execution log %+v, %v: want complete", el, err)
	}
}

// checkLog asserts the log file holds line-1 … line-n exactly once each, in
// order, every line stamped by Docker.
func checkLog(t *testing.T, path string, n int) {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatalf("open log: %v", err)
	}
	defer f.Close()
	var got []string
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		_, text, ok := engine.ParseLogLine(sc.Text())
		if !ok {
			t.Errorf("log line without a Docker stamp: %q", sc.Text())
			continue
		}
		got = append(got, text)
	}
	want := make([]string, 0, n)
	for i := 1; i <= n; i++ {
		want = append(want, fmt.Sprint("line-", i))
	}
	if !slices.Equal(got, want) {
		t.Errorf("log %s has %d lines, want line-1…line-%d once each:\n%q", path, len(got), n, got)
	}
}

// TestCrash_KillAtEveryStep kills the controllers at each step of a task run
// and restarts them.
func TestCrash_KillAtEveryStep(t *testing.T) {
	for _, step := range controllers.Steps() {
		t.Run(string(step), func(t *testing.T) {
			t.Parallel()
			in := newInstall(t)
			task := in.submit(countScript(countLines, "0.05"))
			first := in.start("first", "CP_CRASH_AT="+string(step))
			first.waitKilled(t, 60*time.Second)
			in.start("second")
			got := in.wait(task.ID, 90*time.Second, finished)
			in.checkRun(got, countLines)
		})
	}
}

// TestCrash_KillWhileOutputFlows kills the controllers repeatedly while a
// container prints, so the log follower is cut at arbitrary points.
func TestCrash_KillWhileOutputFlows(t *testing.T) {
	t.Parallel()
	in := newInstall(t)
	const n = 120
	task := in.submit(countScript(n, "0.04"))
	c := in.start("gen0")
	in.wait(task.ID, 60*time.Second, func(t *models.Task) bool { return t.Status.Phase == models.TaskPhaseRunning })
	for i := 1; i <= 3; i++ {
		time.Sleep(700 * time.Millisecond)
		c.kill()
		c = in.start(fmt.Sprint("gen", i))
	}
	got := in.wait(task.ID, 90*time.Second, finished)
	in.checkRun(got, n)
}

// TestLeader_TakeoverAdoptsRunningContainers runs two controller processes on
// one database: only the lease holder runs containers; killing it hands the
// lease to the other within one lease duration, which carries the running
// tasks on.
func TestLeader_TakeoverAdoptsRunningContainers(t *testing.T) {
	t.Parallel()
	in := newInstall(t)
	ctx := context.Background()
	a := in.start("A")
	// Let A take the lease before B exists, so the roles are known.
	deadline := time.Now().Add(20 * time.Second)
	for {
		holder, _, ok, err := in.store.LeaseHolder(ctx, controllers.LeaseName)
		if err == nil && ok && holder == "A" {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("A never took the lease (holder %q, %v)", holder, err)
		}
		time.Sleep(50 * time.Millisecond)
	}
	b := in.start("B")
	const n = 80
	var tasks []*models.Task
	for range 3 {
		tasks = append(tasks, in.submit(countScript(n, "0.05")))
	}
	for _, task := range tasks {
		in.wait(task.ID, 60*time.Second, func(t *models.Task) bool { return t.Status.Phase == models.TaskPhaseRunning })
	}
	if b.cmd.ProcessState != nil {
		t.Fatal("B died")
	}
	a.kill()
	killedAt := time.Now()
	for {
		holder, _, ok, err := in.store.LeaseHolder(ctx, controllers.LeaseName)
		if err == nil && ok && holder == "B" {
			break
		}
		if time.Since(killedAt) > leaseDuration+2*time.Second {
			t.Fatalf("B did not take over within a lease duration (holder %q)", holder)
		}
		time.Sleep(20 * time.Millisecond)
	}
	takeover := time.Since(killedAt)
	t.Logf("B took over %v after A was killed (lease %v)", takeover, leaseDuration)
	if takeover > leaseDuration+time.Second {
		t.Errorf("takeover took %v, lease duration is %v", takeover, leaseDuration)
	}
	// Until it led, B never acted on a task.
	bLog := testutil.ReadFile(t, b.log)
	before := bLog
	if i := strings.Index(bLog, `"started leading"`); i >= 0 {
		before = bLog[:i]
	}
	for _, marker := range []string{`"task phase changed"`, `"container created"`, `"container started"`} {
		if strings.Contains(before, marker) {
			t.Errorf("B logged %s before it held the lease", marker)
		}
	}
	for _, task := range tasks {
		got := in.wait(task.ID, 90*time.Second, finished)
		in.checkRun(got, n)
	}
}

// TestDockerRestart_LosesNoTask restarts the Docker daemon while tasks run.
//
// With live-restore (hack/ensure-docker.sh starts the daemon with it) the
// containers run on through the restart, and the controllers — which stay up
// — re-follow their output, resubscribe to events and carry every task to
// Succeeded with its whole log, in the same container. When the machine's
// daemon runs without live-restore, the test first checks that path: the
// daemon stops the containers on its way down, and every task must end Failed
// saying a daemon restart stopped it, its log intact up to that point; that
// restart brings the daemon back with live-restore for the second part.
//
// It stops the machine's Docker daemon, so it runs only when
// CP_DOCKER_RESTART_TEST=1 (make test-docker-restart), and first waits for
// other tests' claude-parallel containers to be gone.
func TestDockerRestart_LosesNoTask(t *testing.T) {
	if os.Getenv("CP_DOCKER_RESTART_TEST") != "1" {
		// Not a gap in CI: `make test` runs it on its own right after the
		// other packages (make test-docker-restart sets the variable).
		t.Skip("restarts the Docker daemon; set CP_DOCKER_RESTART_TEST=1 to run it")
	}
	enginetest.New(t) // skips without Docker
	waitForeignContainersGone(t, "", 3*time.Minute)
	// Whatever happens below, leave a Docker engine answering.
	t.Cleanup(func() {
		if err := runEnsureDocker(); err != nil {
			t.Errorf("restore the Docker engine: %v", err)
		}
	})
	if !liveRestoreEnabled(t) {
		skipped := false
		t.Run("WithoutLiveRestore", func(t *testing.T) {
			defer func() { skipped = t.Skipped() }()
			testRestartWithoutLiveRestore(t)
		})
		if skipped {
			testutil.SkipOrFailInCI(t, "the restart without live-restore was skipped; so is the one with it")
		}
		if !liveRestoreEnabled(t) {
			if b, err := os.ReadFile("/etc/docker/daemon.json"); err == nil && strings.Contains(string(b), `"live-restore"`) {
				testutil.SkipOrFailInCI(t, "/etc/docker/daemon.json turns live-restore off; the restart with live-restore cannot be tested:\n%s", b)
			}
			t.Fatal("the daemon restarted by hack/ensure-docker.sh runs without live-restore")
		}
	}
	t.Run("WithLiveRestore", testRestartWithLiveRestore)
}

// testRestartWithLiveRestore: the tasks run on through the restart and
// succeed with every line of output, in the container they started in.
func testRestartWithLiveRestore(t *testing.T) {
	in := newInstall(t)
	ctl := in.start("A")
	// Every run outlives the restart (each line takes a little over 50 ms; a
	// restart with live-restore takes a few seconds): a run that ended while
	// the daemon was down would lose what it printed meanwhile, which Docker
	// drops and no controller can get back (the task's timeline says so).
	lengths := []int{200, 300, 400}
	var tasks []*models.Task
	for _, n := range lengths {
		tasks = append(tasks, in.submit(countScript(n, "0.05")))
	}
	before := make([]engine.ContainerInfo, len(tasks))
	for i, task := range tasks {
		got := in.wait(task.ID, 60*time.Second, func(t *models.Task) bool { return t.Status.Phase == models.TaskPhaseRunning })
		info, err := in.eng.Inspect(context.Background(), got.Status.ContainerID)
		if err != nil {
			t.Fatal(err)
		}
		before[i] = info
	}
	in.waitOutput(tasks, 10)

	restartDocker(t, in.store.InstallationID())

	// Work submitted once the daemon is back runs too.
	after := in.submit(countScript(5, "0.01"))
	for i, task := range tasks {
		got := in.wait(task.ID, 90*time.Second, finished)
		t.Logf("task %s (%d lines): %s %s (%s)", task.ID, lengths[i], got.Status.Phase, got.Status.Reason, got.Status.Message)
		in.checkRun(got, lengths[i])
		// Carried through the restart, not started again.
		info, err := in.eng.Inspect(context.Background(), got.Status.ContainerID)
		if err != nil {
			t.Fatal(err)
		}
		if info.ID != before[i].ID || !info.StartedAt.Equal(before[i].StartedAt) {
			t.Errorf("task %s: container %s started %v, was %s started %v", task.ID,
				info.ID[:12], info.StartedAt, before[i].ID[:12], before[i].StartedAt)
		}
	}
	got := in.wait(after.ID, 60*time.Second, finished)
	in.checkRun(got, 5)
	checkResubscribed(t, ctl)
}

// checkResubscribed asserts the controllers lived through the restart and
// subscribed to Docker's events again once it was back.
func checkResubscribed(t *testing.T, ctl *child) {
	t.Helper()
	if ctl.cmd.ProcessState != nil {
		t.Errorf("controllerd exited during the restart; log:\n%s", tail(ctl.log))
		return
	}
	if n := strings.Count(testutil.ReadFile(t, ctl.log), `"docker events subscribed, resyncing"`); n < 2 {
		t.Errorf("controllerd subscribed to Docker events %d times, want again after the restart; log:\n%s", n, tail(ctl.log))
	}
}

// testRestartWithoutLiveRestore: the daemon stops the containers on its way
// down; every task ends Failed with a reason saying so, nothing is retried
// behind the user's back, and the log holds the output up to the stop.
func testRestartWithoutLiveRestore(t *testing.T) {
	in := newInstall(t)
	ctl := in.start("A")
	var tasks []*models.Task
	for range 2 {
		tasks = append(tasks, in.submit(countScript(1000, "0.05")))
	}
	for _, task := range tasks {
		in.wait(task.ID, 60*time.Second, func(t *models.Task) bool { return t.Status.Phase == models.TaskPhaseRunning })
	}
	in.waitOutput(tasks, 10)

	restartDocker(t, in.store.InstallationID())

	ctx := context.Background()
	for _, task := range tasks {
		got := in.wait(task.ID, 90*time.Second, finished)
		st := got.Status
		t.Logf("task %s: %s %s (%s)", task.ID, st.Phase, st.Reason, st.Message)
		if st.Phase != models.TaskPhaseFailed || st.Reason != controllers.ReasonDaemonRestart || st.RunNumber != 1 ||
			!strings.HasPrefix(st.Message, "container stopped by a Docker daemon restart (exit ") {
			t.Errorf("task %s: %+v, want Failed by a daemon restart", task.ID, st)
		}
		list, err := in.eng.List(ctx, map[string]string{engine.LabelStore: in.store.InstallationID(), engine.LabelTaskID: task.ID}, true)
		if err != nil {
			t.Fatal(err)
		}
		if len(list) != 1 {
			t.Errorf("task %s: %d containers, want exactly 1", task.ID, len(list))
		}
		n := checkLogPrefix(t, filepath.Join(in.home, "logs", "tasks", task.ID, "run-1.log"))
		if n < 10 || n >= 1000 {
			t.Errorf("task %s: log holds %d lines, want those printed before the stop", task.ID, n)
		}
		if el, err := in.store.GetExecutionLog(ctx, task.ID, 1); err != nil || !el.Complete {
			t.Errorf("execution log %+v, %v: want complete", el, err)
		}
	}
	after := in.submit(countScript(5, "0.01"))
	got := in.wait(after.ID, 60*time.Second, finished)
	in.checkRun(got, 5)
	checkResubscribed(t, ctl)
}

// waitOutput waits until every task's log file holds at least n lines, so a
// restart cuts output that is flowing.
func (in *install) waitOutput(tasks []*models.Task, n int) {
	in.t.Helper()
	deadline := time.Now().Add(60 * time.Second)
	for _, task := range tasks {
		path := filepath.Join(in.home, "logs", "tasks", task.ID, "run-1.log")
		for {
			b, _ := os.ReadFile(path)
			if strings.Count(string(b), "\n") >= n {
				break
			}
			if time.Now().After(deadline) {
				in.t.Fatalf("task %s printed fewer than %d lines in time", task.ID, n)
			}
			time.Sleep(50 * time.Millisecond)
		}
	}
}

// checkLogPrefix asserts the log file holds line-1 … line-k for some k, each
// once and in order, and returns k.
func checkLogPrefix(t *testing.T, path string) int {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("read log: %v", err)
	}
	k := 0
	for _, l := range strings.Split(strings.TrimSuffix(string(b), "\n"), "\n") {
		_, text, ok := engine.ParseLogLine(l)
		if !ok || text != fmt.Sprint("line-", k+1) {
			t.Errorf("log %s: line %d is %q, want line-%d", path, k+1, l, k+1)
			return k
		}
		k++
	}
	return k
}

// liveRestoreEnabled asks the daemon whether it keeps containers running
// while it is down.
func liveRestoreEnabled(t *testing.T) bool {
	t.Helper()
	out, err := exec.Command("docker", "info", "--format", "{{.LiveRestoreEnabled}}").Output()
	if err != nil {
		t.Fatalf("docker info: %v", err)
	}
	return strings.TrimSpace(string(out)) == "true"
}

// runEnsureDocker starts a Docker daemon if none answers, giving up after two
// minutes so a stuck start fails the test instead of hanging it past its
// timeout (which would skip the cleanups that restore the engine).
func runEnsureDocker() error {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	script := filepath.Join(packageDir(), "..", "..", "hack", "ensure-docker.sh")
	cmd := exec.CommandContext(ctx, "bash", script)
	cmd.Env = append(os.Environ(), "ENSURE_DOCKER_TIMEOUT=60")
	cmd.Stdout, cmd.Stderr = os.Stderr, os.Stderr
	cmd.WaitDelay = 5 * time.Second
	if err := cmd.Run(); err != nil {
		return fmt.Errorf("hack/ensure-docker.sh: %w", err)
	}
	return nil
}

var restartMu sync.Mutex

// restartDocker stops dockerd with SIGTERM and starts it again with
// hack/ensure-docker.sh. Other tests may be using the daemon (go test runs
// packages in parallel, and people share machines): it first waits for every
// claude-parallel container but those of ownStore to be gone, and skips the
// test if they are not within a few minutes.
func restartDocker(t *testing.T, ownStore string) {
	t.Helper()
	restartMu.Lock()
	defer restartMu.Unlock()
	waitForeignContainersGone(t, ownStore, 2*time.Minute)
	b, err := os.ReadFile("/var/run/docker.pid")
	if err != nil {
		testutil.SkipOrFailInCI(t, "cannot find dockerd's pid (hack/ensure-docker.sh starts it with one): %v", err)
	}
	var pid int
	if _, err := fmt.Sscan(strings.TrimSpace(string(b)), &pid); err != nil {
		t.Fatalf("docker.pid: %v", err)
	}
	start := time.Now()
	if err := syscall.Kill(pid, syscall.SIGTERM); err != nil {
		t.Fatalf("stop dockerd: %v", err)
	}
	// Without live-restore the daemon stops each container first (its stop
	// timeout is 10 s); with it, it is gone within a second or two.
	for syscall.Kill(pid, 0) == nil {
		if time.Since(start) > 90*time.Second {
			t.Fatalf("dockerd (pid %d) still running 90s after SIGTERM", pid)
		}
		time.Sleep(50 * time.Millisecond)
	}
	stopped := time.Since(start)
	if err := runEnsureDocker(); err != nil {
		t.Fatalf("restart docker: %v", err)
	}
	t.Logf("dockerd restarted: stopped in %v, answering again %v after SIGTERM", stopped.Round(time.Millisecond),
		time.Since(start).Round(time.Millisecond))
}

// waitForeignContainersGone waits until Docker holds no claude-parallel
// container of another store that is running, being created, or stopped
// within the last two minutes (an older stopped one is a leftover, and a
// daemon restart cannot harm it).
func waitForeignContainersGone(t *testing.T, ownStore string, timeout time.Duration) {
	t.Helper()
	eng := enginetest.New(t)
	ctx := context.Background()
	deadline := time.Now().Add(timeout)
	for {
		var busy []string
		for _, label := range []string{engine.LabelManaged, enginetest.TestLabel} {
			list, err := eng.List(ctx, map[string]string{label: ""}, true)
			if err != nil {
				t.Fatalf("list containers: %v", err)
			}
			for _, c := range list {
				if c.Labels[engine.LabelStore] == ownStore && ownStore != "" {
					continue
				}
				if c.State == engine.StateExited || c.State == "dead" {
					info, err := eng.Inspect(ctx, c.ID)
					if err != nil || time.Since(info.FinishedAt) > 2*time.Minute {
						continue
					}
				}
				busy = append(busy, c.Name+" ("+c.State+")")
			}
		}
		if len(busy) == 0 {
			return
		}
		if time.Now().After(deadline) {
			// In CI this test runs alone after every other package, so a
			// busy engine there means a test leaked a running container.
			testutil.SkipOrFailInCI(t, "other tests' containers still use Docker after %v, not restarting it: %v", timeout, busy)
		}
		t.Logf("waiting for other tests' containers before restarting dockerd: %v", busy)
		time.Sleep(5 * time.Second)
	}
}
