package e2e

// End-to-end flows through the MCP front end: the real claude-parallel
// binary (stdio and streamable HTTP), the real Docker engine with the shell
// agent's image, real git repositories, and the go-sdk as an independent
// client. Each test gets its own installation (home, database, store id).

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	sdk "github.com/modelcontextprotocol/go-sdk/mcp"

	"github.com/claude-parallel/claude-parallel/mcp"
	"github.com/claude-parallel/claude-parallel/mcp/service"
	"github.com/claude-parallel/claude-parallel/models"
	"github.com/claude-parallel/claude-parallel/test/testutil"
)

const flowShellImage = "claude-parallel/shell:latest"

var flowBuild struct {
	once sync.Once
	path string
	err  error
}

// flowBinary builds the claude-parallel binary once per test run.
func flowBinary(t testing.TB) string {
	if p := os.Getenv("CP_E2E_BINARY"); p != "" {
		return p // a binary built elsewhere (e.g. by make build)
	}
	t.Helper()
	flowBuild.once.Do(func() {
		dir, err := os.MkdirTemp("", "cp-e2e-bin-")
		if err != nil {
			flowBuild.err = err
			return
		}
		flowBuild.path = filepath.Join(dir, "claude-parallel")
		out, err := exec.Command("go", "build", "-o", flowBuild.path, "github.com/claude-parallel/claude-parallel/cmd/claude-parallel").CombinedOutput()
		if err != nil {
			flowBuild.err = fmt.Errorf("go build: %v\n%s", err, out)
		}
	})
	if flowBuild.err != nil {
		t.Fatal(flowBuild.err)
	}
	return flowBuild.path
}

// flowRequireDocker skips without a Docker engine and the shell image,
// except in CI, where `make test` provides both and their absence is a failure.
func flowRequireDocker(t testing.TB) {
	t.Helper()
	if testing.Short() {
		t.Skip("end-to-end test; -short given")
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	err := exec.CommandContext(ctx, "docker", "image", "inspect", flowShellImage).Run()
	if err == nil {
		return
	}
	testutil.SkipOrFailInCI(t, "needs a Docker engine and %s (make image): %v", flowShellImage, err)
}

// flowInstall is one claude-parallel installation with a work repository.
type flowInstall struct {
	t         testing.TB
	dir, home string
	repo      string
	config    string
	env       []string
}

func newFlowInstall(t testing.TB) *flowInstall {
	t.Helper()
	flowRequireDocker(t)
	dir, err := filepath.EvalSymlinks(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	testutil.UnmountBelowAtEnd(t, dir) // copy-on-write workspaces are mounts
	fi := &flowInstall{t: t, dir: dir, home: filepath.Join(dir, "home"), repo: filepath.Join(dir, "work", "repo"),
		config: filepath.Join(dir, "config.yaml")}
	testutil.NewRepo(t, fi.repo, map[string]string{"README.md": "demo\n"})
	fi.writeConfig("")
	fi.env = append(flowCleanEnv(), "HOME="+dir, "CLAUDE_PARALLEL_HOME="+fi.home, "CLAUDE_PARALLEL_CONFIG="+fi.config)
	t.Cleanup(fi.removeContainers)
	return fi
}

// writeConfig writes the installation's config, extra YAML appended. Its
// short lease and resync let a restarted server take over within seconds.
func (fi *flowInstall) writeConfig(extra string) {
	fi.t.Helper()
	cfg := fmt.Sprintf(`allowed_roots: [%q]
default_agent: shell
intervals:
  lease_duration: 3s
  lease_renew: 1s
  resync: 2s
  wake_poll: 100ms
`, filepath.Join(fi.dir, "work")) + extra
	if err := os.WriteFile(fi.config, []byte(cfg), 0o600); err != nil {
		fi.t.Fatal(err)
	}
}

func flowCleanEnv() []string {
	var out []string
	for _, kv := range os.Environ() {
		switch k, _, _ := strings.Cut(kv, "="); k {
		case "CLAUDE_PARALLEL_CONFIG", "CLAUDE_PARALLEL_HOME", "CLAUDE_PARALLEL_DB_PATH", "CLAUDE_PARALLEL_TOKEN", "HOME", "LOG_LEVEL":
			continue
		}
		out = append(out, kv)
	}
	return out
}

// removeContainers removes every container of this installation's store.
func (fi *flowInstall) removeContainers() {
	id := fi.installationID()
	if id == "" {
		return
	}
	out, _ := exec.Command("docker", "ps", "-aq", "--filter", "label=claude-parallel.store="+id).Output()
	for _, c := range strings.Fields(string(out)) {
		_ = exec.Command("docker", "rm", "-f", c).Run()
	}
}

func (fi *flowInstall) installationID() string {
	path := filepath.Join(fi.home, "data", "claude-parallel.db")
	if _, err := os.Stat(path); err != nil {
		return ""
	}
	store, err := models.Open(context.Background(), path, models.Options{})
	if err != nil {
		return ""
	}
	defer store.Close()
	return store.InstallationID()
}

// containersOf lists the Docker containers (running or not) of a task.
func flowContainersOf(t *testing.T, taskID string) []string {
	t.Helper()
	out, err := exec.Command("docker", "ps", "-aq", "--filter", "label=claude-parallel.task-id="+taskID).Output()
	if err != nil {
		t.Fatalf("docker ps: %v", err)
	}
	return strings.Fields(string(out))
}

type flowServer struct {
	cs     *sdk.ClientSession
	cmd    *exec.Cmd
	stderr *testutil.LockedBuffer
}

func flowClient() *sdk.Client {
	return sdk.NewClient(&sdk.Implementation{Name: "e2e", Version: "1"}, nil)
}

// stdio starts `claude-parallel serve` and connects to it over stdio.
func (fi *flowInstall) stdio() *flowServer {
	fi.t.Helper()
	fs, err := fi.stdioErr(flowBinary(fi.t))
	if err != nil {
		fi.t.Fatal(err)
	}
	return fs
}

// stdioErr is stdio for a goroutine other than the test's: it returns its
// error instead of failing the test.
func (fi *flowInstall) stdioErr(bin string) (*flowServer, error) {
	cmd := exec.Command(bin, "serve")
	cmd.Env = fi.env
	stderr := &testutil.LockedBuffer{}
	cmd.Stderr = stderr
	cs, err := flowClient().Connect(context.Background(), &sdk.CommandTransport{Command: cmd}, nil)
	if err != nil {
		return nil, fmt.Errorf("connect stdio: %w\n%s", err, stderr)
	}
	fi.t.Cleanup(func() { _ = cs.Close() })
	return &flowServer{cs: cs, cmd: cmd, stderr: stderr}, nil
}

// http starts `claude-parallel serve --http` with a token and connects to it.
func (fi *flowInstall) http() *flowServer {
	fi.t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		fi.t.Fatal(err)
	}
	addr := l.Addr().String()
	l.Close()
	cmd := exec.Command(flowBinary(fi.t), "serve", "--http", addr)
	cmd.Env = append(fi.env, "CLAUDE_PARALLEL_TOKEN=e2e-token")
	stderr := &testutil.LockedBuffer{}
	cmd.Stderr = stderr
	if err := cmd.Start(); err != nil {
		fi.t.Fatal(err)
	}
	fi.t.Cleanup(func() {
		_ = cmd.Process.Signal(syscall.SIGTERM)
		_, _ = cmd.Process.Wait()
	})
	deadline := time.Now().Add(30 * time.Second)
	for !strings.Contains(stderr.String(), "mcp server ready") {
		if time.Now().After(deadline) {
			fi.t.Fatalf("http server not ready:\n%s", stderr)
		}
		time.Sleep(50 * time.Millisecond)
	}
	client := &http.Client{Transport: testutil.BearerTransport{Token: "e2e-token"}}
	cs, err := flowClient().Connect(context.Background(), &sdk.StreamableClientTransport{Endpoint: "http://" + addr + mcp.EndpointPath, HTTPClient: client}, nil)
	if err != nil {
		fi.t.Fatalf("connect http: %v\n%s", err, stderr)
	}
	fi.t.Cleanup(func() { _ = cs.Close() })
	return &flowServer{cs: cs, cmd: cmd, stderr: stderr}
}

// call invokes a tool that must succeed and decodes its structured content.
func (s *flowServer) call(t testing.TB, name string, args map[string]any, out any) {
	t.Helper()
	if err := s.callErr(name, args, out); err != nil {
		t.Fatal(err)
	}
}

// callErr calls a tool and decodes its structured result into out. Its error
// (a protocol error, an error result or an undecodable reply) carries the
// server's log; it never fails the test itself, so goroutines may use it.
func (s *flowServer) callErr(name string, args map[string]any, out any) error {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	res, err := s.cs.CallTool(ctx, &sdk.CallToolParams{Name: name, Arguments: args})
	if err != nil {
		return fmt.Errorf("%s: %w\nserver log:\n%s", name, err, s.stderr)
	}
	if res.IsError {
		return fmt.Errorf("%s(%v): error result %v\nserver log:\n%s", name, args, testutil.ToolText(res), s.stderr)
	}
	b, _ := json.Marshal(res.StructuredContent)
	if err := json.Unmarshal(b, out); err != nil {
		return fmt.Errorf("%s: decode: %w", name, err)
	}
	return nil
}

// runTask starts a shell task and waits for it to finish.
func (s *flowServer) runTask(t testing.TB, fi *flowInstall, script string) service.TaskWaitView {
	t.Helper()
	var started service.TaskWorkerResult
	s.call(t, "task_worker", map[string]any{"task": script, "workFolder": fi.repo, "agent": "shell"}, &started)
	return s.waitTask(t, started.TaskID)
}

func (s *flowServer) waitTask(t testing.TB, taskID string) service.TaskWaitView {
	t.Helper()
	deadline := time.Now().Add(3 * time.Minute)
	for {
		var w service.WaitResult
		s.call(t, "wait_for_tasks", map[string]any{"taskIds": []string{taskID}, "timeoutSeconds": 30}, &w)
		if w.AllFinished {
			return w.Tasks[0]
		}
		if time.Now().After(deadline) {
			t.Fatalf("task %s not finished: %+v\nserver log:\n%s", taskID, w.Tasks, s.stderr)
		}
	}
}

func flowReadFile(t *testing.T, path string) string {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("read %s: %v", path, err)
	}
	return string(b)
}

// The whole flow over each transport: a task, its diff reviewed, applied
// to the working tree (content checked on disk), then a second one applied
// as a branch, a third rejected, a fourth cancelled while it runs and a
// fifth revised.
func TestMCPFlow_Stdio(t *testing.T) {
	fi := newFlowInstall(t)
	flowWholeFlow(t, fi, fi.stdio())
}

func TestMCPFlow_HTTP(t *testing.T) {
	fi := newFlowInstall(t)
	flowWholeFlow(t, fi, fi.http())
}

func flowWholeFlow(t *testing.T, fi *flowInstall, s *flowServer) {
	t.Run("apply to the working tree", func(t *testing.T) {
		done := s.runTask(t, fi, "echo hello > hello.txt")
		if done.Status != "completed" || done.DiffID == "" {
			t.Fatalf("task ended %+v", done)
		}
		var review service.ReviewResult
		s.call(t, "review_changes", map[string]any{"diffId": done.DiffID}, &review)
		if review.Diff == nil || review.Diff.FilesChanged != 1 || review.Diff.Files[0].Path != "hello.txt" ||
			!strings.Contains(review.Diff.Patch, "+hello") {
			t.Fatalf("review %+v", review.Diff)
		}
		var applied service.ApplyResult
		s.call(t, "apply_changes", map[string]any{"diffId": done.DiffID}, &applied)
		if applied.Outcome != service.OutcomeApplied {
			t.Fatalf("apply %+v", applied)
		}
		if got := flowReadFile(t, filepath.Join(fi.repo, "hello.txt")); got != "hello\n" {
			t.Fatalf("hello.txt = %q", got)
		}
		// Applying again changes nothing.
		s.call(t, "apply_changes", map[string]any{"diffId": done.DiffID}, &applied)
		if applied.Outcome != service.OutcomeApplied {
			t.Fatalf("second apply %+v", applied)
		}
	})

	t.Run("apply as a branch", func(t *testing.T) {
		done := s.runTask(t, fi, "echo branched > branch.txt")
		var applied service.ApplyResult
		s.call(t, "apply_changes", map[string]any{"diffId": done.DiffID, "mode": "branch"}, &applied)
		branch := "claude-parallel/" + done.TaskID
		if applied.Outcome != service.OutcomeApplied || applied.Branch != branch {
			t.Fatalf("apply %+v", applied)
		}
		if got := testutil.Git(t, fi.repo, "show", branch+":branch.txt"); got != "branched" {
			t.Fatalf("branch content %q", got)
		}
		if _, err := os.Stat(filepath.Join(fi.repo, "branch.txt")); err == nil {
			t.Fatalf("branch mode touched the working tree")
		}
	})

	t.Run("reject", func(t *testing.T) {
		done := s.runTask(t, fi, "echo unwanted > unwanted.txt")
		var rejected service.RejectResult
		s.call(t, "reject_changes", map[string]any{"diffId": done.DiffID, "reason": "not wanted"}, &rejected)
		deadline := time.Now().Add(time.Minute)
		for {
			var review service.ReviewResult
			s.call(t, "review_changes", map[string]any{"diffId": done.DiffID, "showContent": false}, &review)
			if review.Diff.Status == "rejected" {
				break
			}
			if time.Now().After(deadline) {
				t.Fatalf("diff still %s", review.Diff.Status)
			}
			time.Sleep(200 * time.Millisecond)
		}
		if _, err := os.Stat(filepath.Join(fi.repo, "unwanted.txt")); err == nil {
			t.Fatalf("a rejected change reached the repository")
		}
	})

	t.Run("cancel a running task", func(t *testing.T) {
		var started service.TaskWorkerResult
		s.call(t, "task_worker", map[string]any{"task": "echo started; sleep 300", "workFolder": fi.repo, "agent": "shell"}, &started)
		deadline := time.Now().Add(2 * time.Minute)
		for {
			var ws service.WorkStatusResult
			s.call(t, "work_status", map[string]any{"taskId": started.TaskID}, &ws)
			if service.PhaseOf(ws.Task.Status, ws.Task.Phase) == "Running" {
				break
			}
			if time.Now().After(deadline) || ws.Task.Finished {
				t.Fatalf("task never ran: %+v\n%s", ws.Task, s.stderr)
			}
			time.Sleep(200 * time.Millisecond)
		}
		var cancelled service.CancelResult
		s.call(t, "cancel_task", map[string]any{"taskId": started.TaskID, "reason": "e2e"}, &cancelled)
		done := s.waitTask(t, started.TaskID)
		if done.Status != "cancelled" {
			t.Fatalf("cancelled task ended %+v", done)
		}
		out, _ := exec.Command("docker", "ps", "-q", "--filter", "label=claude-parallel.task-id="+started.TaskID).Output()
		if strings.TrimSpace(string(out)) != "" {
			t.Fatalf("container still running after cancel")
		}
	})

	t.Run("revise", func(t *testing.T) {
		first := s.runTask(t, fi, "echo one > revised.txt")
		var fu service.FollowUpResult
		s.call(t, "request_revision", map[string]any{"diffId": first.DiffID, "feedback": "echo two > revised.txt"}, &fu)
		if fu.Run != 2 {
			t.Fatalf("revision %+v", fu)
		}
		second := s.waitTask(t, first.TaskID)
		if second.Status != "completed" || second.DiffID == "" || second.DiffID == first.DiffID {
			t.Fatalf("revised task %+v (first diff %s)", second, first.DiffID)
		}
		var review service.ReviewResult
		s.call(t, "review_changes", map[string]any{"taskId": first.TaskID}, &review)
		if !strings.Contains(review.Diff.Patch, "+two") {
			t.Fatalf("revised patch:\n%s", review.Diff.Patch)
		}
		var old service.ReviewResult
		s.call(t, "review_changes", map[string]any{"diffId": first.DiffID, "showContent": false}, &old)
		if old.Diff.Status != "superseded" {
			t.Errorf("first diff is %s, want superseded", old.Diff.Status)
		}
	})
}

// Killing the server mid-flow loses nothing: a new server finds the task
// (adopting its container, never starting a second one) and its diff, and
// the client finishes the flow.
func TestMCPFlow_ServerKilledMidFlow(t *testing.T) {
	fi := newFlowInstall(t)
	first := fi.stdio()
	var started service.TaskWorkerResult
	first.call(t, "task_worker", map[string]any{"task": "sleep 4; echo survived > survived.txt", "workFolder": fi.repo, "agent": "shell"}, &started)
	deadline := time.Now().Add(2 * time.Minute)
	for len(flowContainersOf(t, started.TaskID)) == 0 {
		if time.Now().After(deadline) {
			t.Fatalf("no container started:\n%s", first.stderr)
		}
		time.Sleep(100 * time.Millisecond)
	}
	if err := first.cmd.Process.Signal(syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	_, _ = first.cmd.Process.Wait()

	second := fi.stdio()
	done := second.waitTask(t, started.TaskID)
	if done.Status != "completed" || done.DiffID == "" {
		t.Fatalf("after restart: %+v\n%s", done, second.stderr)
	}
	var applied service.ApplyResult
	second.call(t, "apply_changes", map[string]any{"diffId": done.DiffID}, &applied)
	if applied.Outcome != service.OutcomeApplied || flowReadFile(t, filepath.Join(fi.repo, "survived.txt")) != "survived\n" {
		t.Fatalf("apply after restart: %+v", applied)
	}
	if n := len(flowContainersOf(t, started.TaskID)); n > 1 {
		t.Fatalf("%d containers for one task run", n)
	}
}

// Two stdio servers on one database, started at once by two clients that
// send the same intent: one task, one container.
func TestMCPFlow_TwoServersOneIntent(t *testing.T) {
	fi := newFlowInstall(t)
	bin := flowBinary(t)
	servers := make([]*flowServer, 2)
	errs := make([]error, 2)
	var wg sync.WaitGroup
	for i := range servers {
		wg.Go(func() { servers[i], errs[i] = fi.stdioErr(bin) })
	}
	wg.Wait()
	if err := errors.Join(errs...); err != nil {
		t.Fatal(err)
	}
	ids := make([]string, 2)
	for i, s := range servers {
		wg.Go(func() {
			var res service.TaskWorkerResult
			errs[i] = s.callErr("task_worker", map[string]any{"task": "echo once > once.txt", "workFolder": fi.repo, "agent": "shell",
				"parentTaskId": "the-same-intent"}, &res)
			ids[i] = res.TaskID
		})
	}
	wg.Wait()
	if err := errors.Join(errs...); err != nil {
		t.Fatal(err)
	}
	if ids[0] != ids[1] || ids[0] == "" {
		t.Fatalf("two tasks for one intent: %v", ids)
	}
	done := servers[1].waitTask(t, ids[0])
	if done.Status != "completed" {
		t.Fatalf("task %+v", done)
	}
	if n := len(flowContainersOf(t, ids[0])); n != 1 {
		t.Fatalf("%d containers for one intent", n)
	}
}

// The CLI runs the same flow without a server: `task start --wait` runs the
// controllers in its own process, then `diff apply --wait` applies.
func TestMCPFlow_CLIWithoutServer(t *testing.T) {
	fi := newFlowInstall(t)
	bin := flowBinary(t)
	if help, _ := exec.Command(bin, "--help").Output(); !strings.Contains(string(help), "\n  task ") {
		t.Fatalf("the task command is not registered in cmd/claude-parallel/root.go:\n%s", help)
	}
	run := func(args ...string) string {
		cmd := exec.Command(bin, args...)
		cmd.Env = fi.env
		var stdout, stderr bytes.Buffer
		cmd.Stdout, cmd.Stderr = &stdout, &stderr
		if err := cmd.Run(); err != nil {
			t.Fatalf("%v: %v\n%s\n%s", args, err, stdout.String(), stderr.String())
		}
		return stdout.String()
	}
	var task service.WorkStatusResult
	if err := json.Unmarshal([]byte(run("task", "start", "--repo", fi.repo, "--prompt", "echo cli > cli.txt", "--wait", "--json")), &task); err != nil {
		t.Fatal(err)
	}
	if task.Task == nil || task.Task.Status != "completed" || task.Task.DiffID == "" {
		t.Fatalf("task %+v", task.Task)
	}
	var applied service.ApplyResult
	if err := json.Unmarshal([]byte(run("diff", "apply", task.Task.DiffID, "--wait", "--json")), &applied); err != nil {
		t.Fatal(err)
	}
	if applied.Outcome != service.OutcomeApplied || flowReadFile(t, filepath.Join(fi.repo, "cli.txt")) != "cli\n" {
		t.Fatalf("apply %+v", applied)
	}
}
