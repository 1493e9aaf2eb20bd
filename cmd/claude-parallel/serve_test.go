package main

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"io"
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

	"github.com/claude-parallel/claude-parallel/config"
	"github.com/claude-parallel/claude-parallel/mcp"
	"github.com/claude-parallel/claude-parallel/mcp/service"
	"github.com/claude-parallel/claude-parallel/models"
	"github.com/claude-parallel/claude-parallel/test/testutil"
)

// binary is the real claude-parallel, built once by TestMain for the tests
// that run it as a subprocess.
var binary string

func TestMain(m *testing.M) {
	dir, err := os.MkdirTemp("", "claude-parallel-bin-")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(2)
	}
	binary = filepath.Join(dir, "claude-parallel")
	build := exec.Command("go", "build", "-o", binary, ".")
	build.Stdout, build.Stderr = os.Stderr, os.Stderr
	if err := build.Run(); err != nil {
		fmt.Fprintln(os.Stderr, "build claude-parallel:", err)
		os.Exit(2)
	}
	code := m.Run()
	_ = os.RemoveAll(dir)
	os.Exit(code)
}

// serverEnv is an isolated installation for subprocess servers: its own
// home and database, a repository in the allowed root, and a Docker host
// that does not answer (these tests are about the front end).
type serverEnv struct {
	dir, home, repo string
	env             []string
}

func newServerEnv(t *testing.T) *serverEnv {
	t.Helper()
	dir, err := filepath.EvalSymlinks(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	testutil.UnmountBelowAtEnd(t, dir) // copy-on-write workspaces are mounts
	e := &serverEnv{dir: dir, home: filepath.Join(dir, "cp-home")}
	e.repo = cliRepo(t, dir)
	e.env = append(cleanEnv(),
		"HOME="+dir,
		config.EnvHome+"="+e.home,
		"DOCKER_HOST=unix://"+filepath.Join(dir, "no-docker.sock"),
	)
	return e
}

// cleanEnv is the test's environment without claude-parallel's variables.
func cleanEnv() []string {
	var out []string
	for _, kv := range os.Environ() {
		k, _, _ := strings.Cut(kv, "=")
		switch k {
		case config.EnvConfig, config.EnvHome, config.EnvDBPath, config.EnvLogLevel, config.EnvToken, "DOCKER_HOST", "HOME":
			continue
		}
		out = append(out, kv)
	}
	return out
}

func (e *serverEnv) command(args ...string) *exec.Cmd {
	cmd := exec.Command(binary, args...)
	cmd.Env = e.env
	return cmd
}

// connectStdio starts `claude-parallel serve` and connects the go-sdk client.
func (e *serverEnv) connectStdio(t *testing.T) *sdk.ClientSession {
	t.Helper()
	cmd := e.command("serve")
	cmd.Stderr = &testutil.LockedBuffer{}
	cs, err := sdk.NewClient(&sdk.Implementation{Name: "subprocess-test", Version: "1"}, nil).
		Connect(context.Background(), &sdk.CommandTransport{Command: cmd}, nil)
	if err != nil {
		t.Fatalf("connect: %v\nstderr: %s", err, cmd.Stderr)
	}
	t.Cleanup(func() { _ = cs.Close() })
	return cs
}

func call(t *testing.T, cs *sdk.ClientSession, name string, args map[string]any, out any) {
	t.Helper()
	res, err := cs.CallTool(context.Background(), &sdk.CallToolParams{Name: name, Arguments: args})
	if err != nil {
		t.Fatalf("%s: %v", name, err)
	}
	if res.IsError {
		t.Fatalf("%s: error result %v", name, res.Content)
	}
	b, _ := json.Marshal(res.StructuredContent)
	if err := json.Unmarshal(b, out); err != nil {
		t.Fatalf("%s: %v", name, err)
	}
}

func TestServe_StdioSubprocess(t *testing.T) {
	e := newServerEnv(t)
	cs := e.connectStdio(t)
	tools, err := cs.ListTools(context.Background(), nil)
	if err != nil || len(tools.Tools) != 12 {
		t.Fatalf("tools: %v %v", tools, err)
	}
	var st service.SystemStatusResult
	call(t, cs, "system_status", nil, &st)
	if st.Docker.Reachable || st.Docker.Error == "" || st.Paths.Home != e.home {
		t.Fatalf("system_status with Docker unreachable: %+v", st)
	}
	var started service.TaskWorkerResult
	call(t, cs, "task_worker", map[string]any{"task": "echo hi", "workFolder": e.repo, "agent": "shell"}, &started)
	var ws service.WorkStatusResult
	call(t, cs, "work_status", map[string]any{"taskId": started.TaskID}, &ws)
	// The controllers may already be preparing it; Docker is unreachable, so it goes no further.
	if ws.Task == nil || ws.Task.TaskID != started.TaskID || ws.Task.Finished || ws.Task.WorkFolder != e.repo {
		t.Fatalf("work_status: %+v", ws.Task)
	}
}

// Two stdio servers started at once on one database both answer, and the
// same parentTaskId sent through both yields one task.
func TestServe_TwoStdioServersOneDatabase(t *testing.T) {
	e := newServerEnv(t)
	sessions := make([]*sdk.ClientSession, 2)
	var wg sync.WaitGroup
	for i := range sessions {
		wg.Go(func() { sessions[i] = e.connectStdio(t) })
	}
	wg.Wait()
	ids := make([]string, 2)
	for i, cs := range sessions {
		wg.Go(func() {
			var res service.TaskWorkerResult
			call(t, cs, "task_worker", map[string]any{"task": "echo hi", "workFolder": e.repo, "agent": "shell", "parentTaskId": "shared-intent"}, &res)
			ids[i] = res.TaskID
		})
	}
	wg.Wait()
	if ids[0] == "" || ids[0] != ids[1] {
		t.Fatalf("task ids %v", ids)
	}
	store, err := models.Open(context.Background(), filepath.Join(e.home, "data", config.DBFileName), models.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer store.Close()
	tasks, _ := store.ListTasks(context.Background(), models.TaskFilter{})
	if len(tasks) != 1 {
		t.Fatalf("%d tasks in the store", len(tasks))
	}
}

// Nothing but JSON-RPC reaches stdout, and SIGTERM ends the server cleanly.
func TestServe_StdoutIsProtocolOnlyAndSIGTERMStops(t *testing.T) {
	e := newServerEnv(t)
	cmd := e.command("serve")
	stdin, _ := cmd.StdinPipe()
	stdout, _ := cmd.StdoutPipe()
	var stderr testutil.LockedBuffer
	cmd.Stderr = &stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	lines := make(chan string, 16)
	go func() {
		sc := bufio.NewScanner(stdout)
		sc.Buffer(make([]byte, 1<<20), 1<<24)
		for sc.Scan() {
			lines <- sc.Text()
		}
		close(lines)
	}()
	fmt.Fprintln(stdin, `{"jsonrpc":"2.0","id":1,"method":"initialize","params":{"protocolVersion":"2025-06-18","capabilities":{},"clientInfo":{"name":"raw","version":"1"}}}`)
	fmt.Fprintln(stdin, `{"jsonrpc":"2.0","method":"notifications/initialized"}`)
	fmt.Fprintln(stdin, `{"jsonrpc":"2.0","id":2,"method":"tools/call","params":{"name":"work_status","arguments":{"taskId":"bogus"}}}`)
	got := 0
	for got < 2 {
		select {
		case l, ok := <-lines:
			if !ok {
				t.Fatalf("stdout closed early; stderr: %s", stderr.String())
			}
			var msg map[string]any
			if err := json.Unmarshal([]byte(l), &msg); err != nil || msg["jsonrpc"] != "2.0" {
				t.Fatalf("non-protocol output on stdout: %q", l)
			}
			got++
		case <-time.After(20 * time.Second):
			t.Fatalf("no answer; stderr: %s", stderr.String())
		}
	}
	if err := cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	waitExit(t, cmd, 30*time.Second)
	for l := range lines {
		t.Errorf("output after SIGTERM: %q", l)
	}
	if !strings.Contains(stderr.String(), "mcp server stopped") {
		t.Errorf("no clean stop logged: %s", stderr.String())
	}
}

func waitExit(t *testing.T, cmd *exec.Cmd, d time.Duration) {
	t.Helper()
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("server exited with %v", err)
		}
	case <-time.After(d):
		_ = cmd.Process.Kill()
		t.Fatalf("server did not stop within %s", d)
	}
}

func freePort(t *testing.T) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().String()
}

// startHTTP runs `serve --http addr` and waits until it accepts connections.
func (e *serverEnv) startHTTP(t *testing.T, addr string, extraEnv ...string) *exec.Cmd {
	t.Helper()
	cmd := e.command("serve", "--http", addr)
	cmd.Env = append(cmd.Env, extraEnv...)
	var stderr testutil.LockedBuffer
	cmd.Stderr = &stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		_ = cmd.Process.Signal(syscall.SIGTERM)
		_, _ = cmd.Process.Wait()
	})
	deadline := time.Now().Add(30 * time.Second)
	for time.Now().Before(deadline) {
		if c, err := net.Dial("tcp", addr); err == nil {
			c.Close()
			return cmd
		}
		time.Sleep(50 * time.Millisecond)
	}
	t.Fatalf("server did not listen on %s; stderr: %s", addr, stderr.String())
	return nil
}

func TestServe_HTTPSubprocess(t *testing.T) {
	e := newServerEnv(t)
	addr := freePort(t)
	e.startHTTP(t, addr, config.EnvToken+"=the-token")
	endpoint := "http://" + addr + mcp.EndpointPath

	post := func(auth, origin string) int {
		req, _ := http.NewRequest(http.MethodPost, endpoint, strings.NewReader(`{"jsonrpc":"2.0","id":1,"method":"ping"}`))
		req.Header.Set("Content-Type", "application/json")
		if auth != "" {
			req.Header.Set("Authorization", auth)
		}
		if origin != "" {
			req.Header.Set("Origin", origin)
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		_, _ = io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		return resp.StatusCode
	}
	if got := post("", ""); got != http.StatusUnauthorized {
		t.Errorf("no token: %d", got)
	}
	if got := post("Bearer wrong", ""); got != http.StatusUnauthorized {
		t.Errorf("wrong token: %d", got)
	}
	if got := post("Bearer the-token", "https://evil.example"); got != http.StatusForbidden {
		t.Errorf("foreign origin: %d", got)
	}

	client := &http.Client{Transport: testutil.BearerTransport{Token: "the-token"}}
	cs, err := sdk.NewClient(&sdk.Implementation{Name: "http-test", Version: "1"}, nil).
		Connect(context.Background(), &sdk.StreamableClientTransport{Endpoint: endpoint, HTTPClient: client}, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer cs.Close()
	tools, err := cs.ListTools(context.Background(), nil)
	if err != nil || len(tools.Tools) != 12 {
		t.Fatalf("tools %v %v", tools, err)
	}
	var started service.TaskWorkerResult
	call(t, cs, "task_worker", map[string]any{"task": "echo hi", "workFolder": e.repo, "agent": "shell"}, &started)
	var ws service.WorkStatusResult
	call(t, cs, "work_status", map[string]any{"taskId": started.TaskID}, &ws)
	if ws.Task == nil || ws.Task.TaskID != started.TaskID {
		t.Fatalf("work_status %+v", ws)
	}
}

func TestServe_RefusesAllInterfacesWithoutToken(t *testing.T) {
	e := newServerEnv(t)
	cmd := e.command("serve", "--http", "0.0.0.0:0")
	out, err := cmd.CombinedOutput()
	if err == nil || !strings.Contains(string(out), "refusing to listen on 0.0.0.0:0 without a bearer token") ||
		!strings.Contains(string(out), config.EnvToken) {
		t.Fatalf("err %v output %s", err, out)
	}
	// Refused before anything was created.
	if _, err := os.Stat(filepath.Join(e.home, "data")); err == nil {
		t.Errorf("the refused server created its database")
	}
}

func TestServe_SIGHUPReloadsConfig(t *testing.T) {
	e := newServerEnv(t)
	cfgFile := filepath.Join(e.dir, "config.yaml")
	write := func(level string, more ...string) {
		text := "log:\n  level: " + level + "\nallowed_roots: [" + e.dir + "]\n" + strings.Join(more, "")
		if err := os.WriteFile(cfgFile, []byte(text), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	write("info")
	addr := freePort(t)
	cmd := e.command("--config", cfgFile, "serve", "--http", addr)
	var stderr testutil.LockedBuffer
	cmd.Stderr = &stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	defer func() { _ = cmd.Process.Kill(); _, _ = cmd.Process.Wait() }()
	waitFor(t, func() bool { return strings.Contains(stderr.String(), readyMessage) }, "ready", &stderr)

	write("debug")
	if err := cmd.Process.Signal(syscall.SIGHUP); err != nil {
		t.Fatal(err)
	}
	waitFor(t, func() bool { return strings.Contains(stderr.String(), "config reloaded") }, "reload", &stderr)
	if !strings.Contains(stderr.String(), `"applied": ["log.level"]`) {
		t.Errorf("reload did not report the level change: %s", stderr.String())
	}
	// max_parallel applies at once (the controllers' next pass); workers
	// needs a restart.
	write("debug", "max_parallel: 7\n", "workers: 9\n")
	if err := cmd.Process.Signal(syscall.SIGHUP); err != nil {
		t.Fatal(err)
	}
	waitFor(t, func() bool { return strings.Count(stderr.String(), "config reloaded") == 2 }, "second reload", &stderr)
	if !strings.Contains(stderr.String(), `"applied": ["max_parallel"], "need_restart": ["workers"]`) {
		t.Errorf("reload did not apply max_parallel and keep workers for a restart: %s", stderr.String())
	}
	// A broken file is refused and the server keeps running.
	if err := os.WriteFile(cfgFile, []byte("max_parallel: -1\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	_ = cmd.Process.Signal(syscall.SIGHUP)
	waitFor(t, func() bool { return strings.Contains(stderr.String(), "config reload failed") }, "refused reload", &stderr)
	if err := cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	waitExit(t, cmd, 30*time.Second)
}

func waitFor(t *testing.T, cond func() bool, what string, stderr *testutil.LockedBuffer) {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s; stderr:\n%s", what, stderr.String())
		}
		time.Sleep(50 * time.Millisecond)
	}
}
