package e2e

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	sdk "github.com/modelcontextprotocol/go-sdk/mcp"

	"github.com/claude-parallel/claude-parallel/mcp"
	"github.com/claude-parallel/claude-parallel/mcp/service"
	"github.com/claude-parallel/claude-parallel/models"
	"github.com/claude-parallel/claude-parallel/test/testutil"
)

// ensureProgram makes a Debian program available through its hack/ script
// (installed once per machine, reused after), or skips outside CI.
func ensureProgram(t *testing.T, program, script string) string {
	t.Helper()
	if p, err := exec.LookPath(program); err == nil {
		return p
	}
	out, err := exec.Command("bash", filepath.Join(packageDir(), "..", "..", "hack", script)).CombinedOutput()
	if err != nil {
		testutil.SkipOrFailInCI(t, "%s is not available and hack/%s failed: %v\n%s", program, script, err, out)
	}
	p, err := exec.LookPath(program)
	if err != nil {
		testutil.SkipOrFailInCI(t, "%s still not on PATH after hack/%s", program, script)
	}
	return p
}

// supervisor is a supervisord of the test's own: its configuration, socket
// and logs in a temporary directory, never the system's.
type supervisor struct {
	t    *testing.T
	conf string
	cmd  *exec.Cmd
}

// shippedProgram returns the [program:claude-parallel] section of
// hack/supervisord-claude-parallel.conf with the keys the test must set
// (paths, user, environment) left out, so the shipped settings are the ones
// exercised.
func shippedProgram(t *testing.T) []string {
	t.Helper()
	raw, err := os.ReadFile(filepath.Join(packageDir(), "..", "..", "hack", "supervisord-claude-parallel.conf"))
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	in := false
	for _, line := range strings.Split(string(raw), "\n") {
		line = strings.TrimSpace(line)
		if strings.HasPrefix(line, "[") {
			in = line == "[program:claude-parallel]"
			continue
		}
		if !in || line == "" || strings.HasPrefix(line, ";") {
			continue
		}
		key, _, _ := strings.Cut(line, "=")
		switch key {
		case "command", "environment", "directory", "user", "stdout_logfile", "stderr_logfile":
			continue
		}
		out = append(out, line)
	}
	if len(out) < 5 {
		t.Fatalf("hack/supervisord-claude-parallel.conf: program section not found or nearly empty: %v", out)
	}
	return out
}

func startSupervisor(t *testing.T, command string, env []string) *supervisor {
	t.Helper()
	bin := ensureProgram(t, "supervisord", "ensure-supervisor.sh")
	// Short: a unix socket path holds at most 108 bytes.
	dir, err := os.MkdirTemp("", "cpsv")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = os.RemoveAll(dir) })
	var envs []string
	for _, kv := range env {
		k, v, _ := strings.Cut(kv, "=")
		if strings.ContainsAny(v, `"%,`) {
			continue // not needed by the server, and awkward to quote for supervisord
		}
		envs = append(envs, fmt.Sprintf(`%s="%s"`, k, v))
	}
	conf := filepath.Join(dir, "supervisord.conf")
	text := fmt.Sprintf(`[unix_http_server]
file=%[1]s/supervisor.sock
chmod=0700

[supervisord]
nodaemon=true
logfile=%[1]s/supervisord.log
pidfile=%[1]s/supervisord.pid
childlogdir=%[1]s

[rpcinterface:supervisor]
supervisor.rpcinterface_factory = supervisor.rpcinterface:make_main_rpcinterface

[supervisorctl]
serverurl=unix://%[1]s/supervisor.sock

[program:claude-parallel]
command=%[2]s
environment=%[3]s
directory=%[1]s
stdout_logfile=%[1]s/server.out.log
stderr_logfile=%[1]s/server.err.log
%[4]s
`, dir, command, strings.Join(envs, ","), strings.Join(shippedProgram(t), "\n"))
	if err := os.WriteFile(conf, []byte(text), 0o600); err != nil {
		t.Fatal(err)
	}
	s := &supervisor{t: t, conf: conf, cmd: exec.Command(bin, "-c", conf)}
	s.cmd.Stdout, s.cmd.Stderr = io.Discard, io.Discard
	if err := s.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		_ = exec.Command("supervisorctl", "-c", conf, "shutdown").Run()
		done := make(chan struct{})
		go func() { _ = s.cmd.Wait(); close(done) }()
		select {
		case <-done:
		case <-time.After(60 * time.Second):
			_ = s.cmd.Process.Kill()
			<-done
		}
	})
	return s
}

// pid is the server's pid as supervisord reports it (0 while not running).
func (s *supervisor) pid() int {
	out, err := exec.Command("supervisorctl", "-c", s.conf, "pid", "claude-parallel").Output()
	if err != nil {
		return 0
	}
	n, err := strconv.Atoi(strings.TrimSpace(string(out)))
	if err != nil {
		return 0
	}
	return n
}

func (s *supervisor) serverLog() string {
	b, _ := os.ReadFile(filepath.Join(filepath.Dir(s.conf), "server.err.log"))
	return tailString(string(b), 40)
}

func tailString(s string, n int) string {
	lines := strings.Split(s, "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}

func httpGet(url, token string) (int, string, error) {
	req, err := http.NewRequest(http.MethodGet, url, nil)
	if err != nil {
		return 0, "", err
	}
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return 0, "", err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b), err
}

func waitHTTP(t testing.TB, what, url string, want int, timeout time.Duration, diag func() string) string {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for {
		code, body, err := httpGet(url, "")
		if err == nil && code == want {
			return body
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s: %s answered %d %q (%v), want %d\n%s", what, url, code, body, err, want, diag())
		}
		time.Sleep(100 * time.Millisecond)
	}
}

func freeAddr(t testing.TB) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().String()
}

// TestService_SupervisordPrometheusBackup runs the server as people run it
// continuously, with the real programs from Debian's packages:
//  1. supervisord (the shipped program section) runs `serve --http`; the
//     server is killed with SIGKILL while three tasks run; supervisord
//     restarts it, and every task finishes once: one container, one diff,
//     its whole output once.
//  2. A Prometheus server scrapes /metrics (with the bearer token) and its
//     query API returns every series the operators' guide names.
//  3. `backup` while the server runs and intents arrive, `restore` into a
//     fresh home: every task and diff is there, integrity_check says ok;
//     `restore` onto the live home is refused.
func TestService_SupervisordPrometheusBackup(t *testing.T) {
	fi := newFlowInstall(t)
	bin := flowBinary(t)
	const token = "service-token"
	addr := freeAddr(t)
	env := slices.Concat(fi.env, []string{"CLAUDE_PARALLEL_TOKEN=" + token, "LOG_LEVEL=info"})
	sv := startSupervisor(t, bin+" serve --http "+addr, env)
	base := "http://" + addr
	waitHTTP(t, "ready under supervisord", base+"/readyz", http.StatusOK, 60*time.Second, sv.serverLog)
	first := sv.pid()
	if first == 0 {
		t.Fatalf("supervisorctl reports no pid\n%s", sv.serverLog())
	}

	// 1. kill -9 while tasks run.
	store, err := models.Open(context.Background(), filepath.Join(fi.home, "data", "claude-parallel.db"), models.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer store.Close()
	const lines = 30
	var ids []string
	for range 3 {
		cmd := exec.Command(bin, "task", "start", "--repo", fi.repo, "--agent", "shell", "--prompt", countScript(lines, "0.1"), "--json")
		cmd.Env = env
		out, err := cmd.Output()
		if err != nil {
			t.Fatalf("task start: %v\n%s", err, out)
		}
		var res service.TaskWorkerResult
		if err := json.Unmarshal(out, &res); err != nil {
			t.Fatalf("task start output %q: %v", out, err)
		}
		ids = append(ids, res.TaskID)
	}
	for _, id := range ids {
		waitUntil(t, id, 90*time.Second, store.GetTask, func(task *models.Task) bool {
			return task.Status.Phase == models.TaskPhaseRunning || task.Status.Finished
		}, func(task *models.Task) any { return task.Status })
	}
	if err := exec.Command("kill", "-9", strconv.Itoa(first)).Run(); err != nil {
		t.Fatalf("kill -9 %d: %v", first, err)
	}
	deadline := time.Now().Add(60 * time.Second)
	for p := sv.pid(); p == 0 || p == first; p = sv.pid() {
		if time.Now().After(deadline) {
			t.Fatalf("supervisord did not restart the server (pid %d)\n%s", p, sv.serverLog())
		}
		time.Sleep(100 * time.Millisecond)
	}
	waitHTTP(t, "ready after the restart", base+"/readyz", http.StatusOK, 60*time.Second, sv.serverLog)
	home := filepath.Join(fi.home, "logs", "tasks")
	for _, id := range ids {
		task := waitUntil(t, id, 120*time.Second, store.GetTask, finished, func(task *models.Task) any { return task.Status })
		if task.Status.Phase != models.TaskPhaseSucceeded || task.Status.RunNumber != 1 || task.Status.DiffID == "" {
			t.Errorf("task %s after the server's kill -9: %+v", id, task.Status)
		}
		if diffs, err := store.ListDiffs(context.Background(), models.DiffFilter{TaskID: id}); err != nil || len(diffs) != 1 {
			t.Errorf("task %s: %d diffs (%v), want 1", id, len(diffs), err)
		}
		if c := flowContainersOf(t, id); len(c) != 1 {
			t.Errorf("task %s: containers %v, want exactly 1", id, c)
		}
		checkLog(t, filepath.Join(home, id, "run-1.log"), lines)
	}

	// 2. Prometheus. Tool calls first, so the tool series exist: one that
	// runs a task (a container create in this process), one error result.
	httpClient := &http.Client{Transport: testutil.BearerTransport{Token: token}}
	cs, err := flowClient().Connect(context.Background(), &sdk.StreamableClientTransport{Endpoint: base + mcp.EndpointPath, HTTPClient: httpClient}, nil)
	if err != nil {
		t.Fatalf("connect: %v", err)
	}
	defer cs.Close()
	res, err := cs.CallTool(context.Background(), &sdk.CallToolParams{Name: "task_worker",
		Arguments: map[string]any{"task": "echo metrics > metrics.txt", "workFolder": fi.repo, "agent": "shell"}})
	if err != nil || res.IsError {
		t.Fatalf("task_worker: %v %s", err, testutil.ToolText(res))
	}
	var started service.TaskWorkerResult
	b, _ := json.Marshal(res.StructuredContent)
	_ = json.Unmarshal(b, &started)
	res, err = cs.CallTool(context.Background(), &sdk.CallToolParams{Name: "wait_for_tasks",
		Arguments: map[string]any{"taskIds": []string{started.TaskID}, "timeoutSeconds": 120}})
	if err != nil || res.IsError {
		t.Fatalf("wait_for_tasks: %v %s", err, testutil.ToolText(res))
	}
	res, err = cs.CallTool(context.Background(), &sdk.CallToolParams{Name: "review_changes",
		Arguments: map[string]any{"diffId": "not-a-diff-id"}})
	if err != nil || !res.IsError {
		t.Fatalf("review_changes with a bad id: %v, want an error result", err)
	}
	prom := startPrometheus(t, addr, token)
	for _, q := range []string{
		`claude_parallel_controller_reconciles_total{controller="task"}`,
		`claude_parallel_controller_queue_depth{controller="diff"}`,
		`claude_parallel_tasks{phase="Succeeded"} >= 4`,
		`claude_parallel_diffs{status="pending"} >= 4`,
		`claude_parallel_containers_running`,
		`claude_parallel_admission_queue_depth`,
		`claude_parallel_admission_oldest_wait_seconds`,
		`claude_parallel_docker_api_duration_seconds_count{operation="POST /containers/create",outcome="ok"} >= 1`,
		`claude_parallel_docker_api_duration_seconds_count{operation="POST /containers/{id}/start"}`,
		`claude_parallel_mcp_tool_duration_seconds_count{tool="task_worker",outcome="ok"} >= 1`,
		`claude_parallel_mcp_tool_errors_total{tool="review_changes",outcome="error_result"} >= 1`,
		`claude_parallel_store_write_duration_seconds_count > 0`,
		`claude_parallel_store_busy_retries_total`,
		`claude_parallel_lease_holder == 1`,
		`claude_parallel_leader == 1`,
	} {
		prom.await(t, q)
	}

	// 3. Backup while the server runs and intents arrive from the CLI.
	backup := filepath.Join(fi.dir, "backup.db")
	load := make(chan error, 1)
	go func() {
		for range 3 {
			cmd := exec.Command(bin, "task", "start", "--repo", fi.repo, "--agent", "shell", "--prompt", "true")
			cmd.Env = env
			if out, err := cmd.CombinedOutput(); err != nil {
				load <- fmt.Errorf("task start: %v\n%s", err, out)
				return
			}
		}
		load <- nil
	}()
	cmd := exec.Command(bin, "backup", backup)
	cmd.Env = env
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("backup: %v\n%s", err, out)
	}
	if err := <-load; err != nil {
		t.Fatal(err)
	}
	fresh := filepath.Join(fi.dir, "restored-home")
	cmd = exec.Command(bin, "restore", backup)
	cmd.Env = slices.Concat(fi.env, []string{"CLAUDE_PARALLEL_HOME=" + fresh})
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("restore into a fresh home: %v\n%s", err, out)
	}
	restored := filepath.Join(fresh, "data", "claude-parallel.db")
	for _, q := range []string{"SELECT id, status FROM background_tasks ORDER BY id;", "SELECT id, task_id, status, patch_sha256 FROM git_diffs ORDER BY id;"} {
		if a, b := sqlite3Out(t, backup, q), sqlite3Out(t, restored, q); a != b || a == "" {
			t.Errorf("%s\nbackup:\n%s\nrestored:\n%s", q, a, b)
		}
	}
	for _, id := range append(ids, started.TaskID) {
		if !strings.Contains(sqlite3Out(t, restored, "SELECT task_id FROM git_diffs;"), id) {
			t.Errorf("the diff of task %s is not in the restored database", id)
		}
	}
	if got := sqlite3Out(t, restored, "PRAGMA integrity_check;"); got != "ok" {
		t.Errorf("integrity_check of the restored database: %s", got)
	}
	cmd = exec.Command(bin, "restore", backup)
	cmd.Env = env
	if out, err := cmd.CombinedOutput(); err == nil || !strings.Contains(string(out), "leader lease") {
		t.Errorf("restore onto the home of a running server: %v\n%s", err, out)
	}
}

func sqlite3Out(t *testing.T, db, q string) string {
	t.Helper()
	out, err := exec.Command("sqlite3", db, q).CombinedOutput()
	if err != nil {
		t.Fatalf("sqlite3 %s %q: %v\n%s", db, q, err, out)
	}
	return strings.TrimSpace(string(out))
}

// prometheus is a Prometheus server of the test's own: its configuration and
// data in a temporary directory, listening on a loopback port.
type prometheus struct {
	base string
	log  *testutil.LockedBuffer
}

func startPrometheus(t *testing.T, target, token string) *prometheus {
	t.Helper()
	bin := ensureProgram(t, "prometheus", "ensure-prometheus.sh")
	dir := t.TempDir()
	conf := filepath.Join(dir, "prometheus.yml")
	text := fmt.Sprintf(`global:
  scrape_interval: 1s
  evaluation_interval: 1s
scrape_configs:
  - job_name: claude-parallel
    scrape_interval: 1s
    scrape_timeout: 1s
    authorization:
      credentials: %q
    static_configs:
      - targets: [%q]
`, token, target)
	if err := os.WriteFile(conf, []byte(text), 0o600); err != nil {
		t.Fatal(err)
	}
	addr := freeAddr(t)
	cmd := exec.Command(bin, "--config.file="+conf, "--storage.tsdb.path="+filepath.Join(dir, "data"),
		"--web.listen-address="+addr, "--log.level=warn")
	p := &prometheus{base: "http://" + addr, log: &testutil.LockedBuffer{}}
	cmd.Stdout, cmd.Stderr = p.log, p.log
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		_ = cmd.Process.Signal(os.Interrupt)
		done := make(chan struct{})
		go func() { _ = cmd.Wait(); close(done) }()
		select {
		case <-done:
		case <-time.After(30 * time.Second):
			_ = cmd.Process.Kill()
			<-done
		}
	})
	waitHTTP(t, "prometheus ready", p.base+"/-/ready", http.StatusOK, 60*time.Second, p.log.String)
	return p
}

// await polls the query API until the query returns at least one series.
func (p *prometheus) await(t *testing.T, query string) {
	t.Helper()
	deadline := time.Now().Add(60 * time.Second)
	var last string
	for time.Now().Before(deadline) {
		code, body, err := httpGet(p.base+"/api/v1/query?query="+url.QueryEscape(query), "")
		if err == nil && code == http.StatusOK {
			var r struct {
				Status string `json:"status"`
				Data   struct {
					Result []json.RawMessage `json:"result"`
				} `json:"data"`
			}
			if json.Unmarshal([]byte(body), &r) == nil && r.Status == "success" && len(r.Data.Result) > 0 {
				return
			}
		}
		last = fmt.Sprintf("%d %s %v", code, body, err)
		time.Sleep(500 * time.Millisecond)
	}
	_, targets, _ := httpGet(p.base+"/api/v1/targets", "")
	t.Errorf("prometheus query %s returned nothing within 60s: %s\ntargets: %s", query, last, targets)
}
