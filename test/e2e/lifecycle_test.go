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

	"github.com/claude-parallel/claude-parallel/controllers"
	"github.com/claude-parallel/claude-parallel/controllers/engine"
	"github.com/claude-parallel/claude-parallel/controllers/engine/enginetest"
	"github.com/claude-parallel/claude-parallel/models"
)

// controllerd is the path of the built test binary.
var controllerd string

func TestMain(m *testing.M) {
	os.Exit(runTests(m))
}

func runTests(m *testing.M) int {
	if err := enginetest.Prepare(); err != nil {
		if os.Getenv("CI") == "true" {
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
}

func newInstall(t *testing.T) *install {
	t.Helper()
	eng := enginetest.New(t)
	home := t.TempDir()
	store, err := models.Open(context.Background(), filepath.Join(home, "data", "claude-parallel.db"), models.Options{})
	if err != nil {
		t.Fatalf("open store: %v", err)
	}
	in := &install{t: t, home: home, repo: newRepo(t), store: store, eng: eng}
	t.Cleanup(func() {
		enginetest.RemoveAll(t, eng, engine.StoreLabels(store.InstallationID()))
		_ = store.Close()
	})
	return in
}

func newRepo(t testing.TB) string {
	t.Helper()
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, "README.md"), []byte("hello\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	for _, args := range [][]string{{"init", "-q", "-b", "main"}, {"add", "-A"}, {"commit", "-q", "-m", "initial"}} {
		cmd := exec.Command("git", args...)
		cmd.Dir = dir
		cmd.Env = append(os.Environ(), "GIT_CONFIG_GLOBAL=/dev/null", "GIT_CONFIG_NOSYSTEM=1",
			"GIT_AUTHOR_NAME=t", "GIT_AUTHOR_EMAIL=t@example.com", "GIT_COMMITTER_NAME=t", "GIT_COMMITTER_EMAIL=t@example.com")
		if out, err := cmd.CombinedOutput(); err != nil {
			t.Fatalf("git %v: %v\n%s", args, err, out)
		}
	}
	return dir
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
	deadline := time.Now().Add(timeout)
	for {
		t, err := in.store.GetTask(context.Background(), id)
		if err != nil {
			in.t.Fatalf("get task: %v", err)
		}
		if cond(t) {
			return t
		}
		if time.Now().After(deadline) {
			in.t.Fatalf("task %s: condition not met within %v; status %+v", id, timeout, t.Status)
		}
		time.Sleep(50 * time.Millisecond)
	}
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
	bLog := readFile(t, b.log)
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

func readFile(t *testing.T, path string) string {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

// TestDockerRestart_LosesNoTask restarts the Docker daemon while tasks run.
// Without live-restore the daemon's restart kills the containers; every task
// must still end in a final state that says what happened, and work
// submitted afterwards must run. It stops the machine's Docker daemon, so it
// runs only when CP_DOCKER_RESTART_TEST=1 (and nothing else uses Docker).
func TestDockerRestart_LosesNoTask(t *testing.T) {
	if os.Getenv("CP_DOCKER_RESTART_TEST") != "1" {
		t.Skip("restarts the Docker daemon; set CP_DOCKER_RESTART_TEST=1 to run it")
	}
	in := newInstall(t)
	in.start("A")
	var tasks []*models.Task
	for range 3 {
		tasks = append(tasks, in.submit(countScript(200, "0.05")))
	}
	for _, task := range tasks {
		in.wait(task.ID, 60*time.Second, func(t *models.Task) bool { return t.Status.Phase == models.TaskPhaseRunning })
	}
	restartDocker(t)
	for _, task := range tasks {
		got := in.wait(task.ID, 120*time.Second, finished)
		if got.Status.Reason == "" || got.Status.Message == "" {
			t.Errorf("task %s ended without a reason: %+v", task.ID, got.Status)
		}
		t.Logf("task %s: %s %s (%s)", task.ID, got.Status.Phase, got.Status.Reason, got.Status.Message)
	}
	after := in.submit(countScript(5, "0.01"))
	got := in.wait(after.ID, 60*time.Second, finished)
	in.checkRun(got, 5)
}

var restartMu sync.Mutex

// restartDocker stops dockerd with SIGTERM and starts it again with
// hack/ensure-docker.sh.
func restartDocker(t *testing.T) {
	t.Helper()
	restartMu.Lock()
	defer restartMu.Unlock()
	b, err := os.ReadFile("/var/run/docker.pid")
	if err != nil {
		t.Skipf("cannot find dockerd's pid: %v", err)
	}
	var pid int
	if _, err := fmt.Sscan(strings.TrimSpace(string(b)), &pid); err != nil {
		t.Fatalf("docker.pid: %v", err)
	}
	if err := syscall.Kill(pid, syscall.SIGTERM); err != nil {
		t.Fatalf("stop dockerd: %v", err)
	}
	for syscall.Kill(pid, 0) == nil {
		time.Sleep(100 * time.Millisecond)
	}
	script := filepath.Join(packageDir(), "..", "..", "hack", "ensure-docker.sh")
	cmd := exec.Command("bash", script)
	cmd.Stdout, cmd.Stderr = os.Stderr, os.Stderr
	if err := cmd.Run(); err != nil {
		t.Fatalf("restart docker: %v", err)
	}
}
