package e2e

// The real Claude Code CLI as the MCP client of the real claude-parallel
// binary, over stdio and over streamable HTTP with a token. The model is
// test/fakeanthropic, scripted to call the tools the way a model would; it
// logs each tool result as Claude Code handed it to the model. Everything
// runs in a network namespace that has only loopback, so Claude Code can
// reach nothing but the fake API and the server.

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"runtime"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/claude-parallel/claude-parallel/test/fakeanthropic"
	"github.com/claude-parallel/claude-parallel/test/testutil"
)

// ccServerName is the name the server gets in Claude Code's MCP config, so
// its tools are mcp__claude-parallel__<tool>.
const ccServerName = "claude-parallel"

const envNetnsChild = "CP_E2E_NETNS_CHILD"

// ccMaxResultChars bounds every tool result the model receives (Claude
// Code replaces results above 25,000 tokens by an error).
const ccMaxResultChars = 60_000

// TestClaudeCodeClient runs the whole test binary again, for this test only,
// inside a new network namespace with only loopback up (unshare -n), and
// passes if that run passes.
func TestClaudeCodeClient(t *testing.T) {
	if os.Getenv(envNetnsChild) == "1" {
		claudeCodeClientInNetns(t)
		return
	}
	flowRequireDocker(t)
	if runtime.GOOS != "linux" {
		testutil.SkipOrFailInCI(t, "needs Linux network namespaces")
	}
	if err := exec.Command("unshare", "-n", "true").Run(); err != nil {
		testutil.SkipOrFailInCI(t, "needs unshare -n (root or CAP_SYS_ADMIN): %v", err)
	}
	claude := ensureClaudeCode(t)
	bin := flowBinary(t)

	ctx, cancel := context.WithTimeout(context.Background(), 12*time.Minute)
	defer cancel()
	args := []string{"-n", "--", "sh", "-c", `ip link set lo up && exec "$@"`, "sh",
		os.Args[0], "-test.run=^TestClaudeCodeClient$", "-test.v", "-test.count=1", "-test.timeout=11m"}
	cmd := exec.CommandContext(ctx, "unshare", args...)
	cmd.Env = append(os.Environ(), envNetnsChild+"=1", "CP_E2E_BINARY="+bin, "CP_E2E_CLAUDE="+claude)
	out, err := cmd.CombinedOutput()
	t.Logf("run in a loopback-only network namespace:\n%s", out)
	if err != nil {
		t.Fatalf("the namespaced run failed: %v", err)
	}
	if !bytes.Contains(out, []byte("--- PASS: TestClaudeCodeClient")) {
		t.Fatalf("the namespaced run did not pass the test")
	}
}

// ensureClaudeCode installs the pinned Claude Code CLI once per machine
// (hack/ensure-claude-code.sh, which needs npm only when it is not cached
// yet) and returns its binary.
func ensureClaudeCode(t *testing.T) string {
	t.Helper()
	script, err := filepath.Abs(filepath.Join("..", "..", "hack", "ensure-claude-code.sh"))
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Minute)
	defer cancel()
	var stderr bytes.Buffer
	cmd := exec.CommandContext(ctx, "bash", script)
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		testutil.SkipOrFailInCI(t, "cannot install Claude Code (no npm, or the npm registry unreachable): %v\n%s", err, stderr.String())
	}
	return strings.TrimSpace(string(out))
}

// claudeCodeClientInNetns is the test proper, inside the namespace.
func claudeCodeClientInNetns(t *testing.T) {
	if err := exec.Command("sh", "-c", "ip -o link show up | grep -v ' lo:'").Run(); err == nil {
		t.Fatal("the namespace has a network interface other than loopback")
	}
	claude := os.Getenv("CP_E2E_CLAUDE")
	if claude == "" {
		t.Fatal("CP_E2E_CLAUDE not set")
	}
	t.Run("stdio", func(t *testing.T) {
		fi := newFlowInstall(t)
		cc := newCCRun(t, fi, claude)
		cc.mcpConfig(map[string]any{"type": "stdio", "command": flowBinary(t), "args": []string{"serve"}, "env": cc.serverEnv()})
		cc.runAllTools()
	})
	t.Run("http", func(t *testing.T) {
		fi := newFlowInstall(t)
		cc := newCCRun(t, fi, claude)
		url := cc.startHTTPServer("cc-e2e-token")
		cc.mcpConfig(map[string]any{"type": "http", "url": url, "headers": map[string]string{"Authorization": "Bearer cc-e2e-token"}})
		cc.runAllTools()
	})
	t.Run("http without the token", func(t *testing.T) {
		fi := newFlowInstall(t)
		cc := newCCRun(t, fi, claude)
		url := cc.startHTTPServer("cc-e2e-token")
		cc.mcpConfig(map[string]any{"type": "http", "url": url})
		cc.runWithoutToken()
	})
}

// ccRun is one Claude Code session against one installation.
type ccRun struct {
	t      *testing.T
	fi     *flowInstall
	claude string
	api    *fakeanthropic.Server
	apiURL string
	dir    string // Claude Code's home and working directory
	config string // --mcp-config file
}

func newCCRun(t *testing.T, fi *flowInstall, claude string) *ccRun {
	dir := filepath.Join(fi.dir, "claude")
	if err := os.MkdirAll(filepath.Join(dir, "work"), 0o755); err != nil {
		t.Fatal(err)
	}
	cc := &ccRun{t: t, fi: fi, claude: claude, dir: dir, config: filepath.Join(dir, "mcp.json")}
	cc.api = fakeanthropic.New(cc.model)
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv := &http.Server{Handler: cc.api, ReadHeaderTimeout: 10 * time.Second}
	go func() { _ = srv.Serve(l) }()
	t.Cleanup(func() { _ = srv.Close() })
	cc.apiURL = "http://" + l.Addr().String()
	return cc
}

// serverEnv is the environment of a stdio server Claude Code starts.
func (cc *ccRun) serverEnv() map[string]string {
	env := map[string]string{}
	for _, kv := range cc.fi.env {
		k, v, _ := strings.Cut(kv, "=")
		switch k {
		case "PATH", "HOME", "CLAUDE_PARALLEL_HOME", "CLAUDE_PARALLEL_CONFIG", "DOCKER_HOST", "TMPDIR":
			env[k] = v
		}
	}
	return env
}

func (cc *ccRun) mcpConfig(server map[string]any) {
	b, err := json.Marshal(map[string]any{"mcpServers": map[string]any{ccServerName: server}})
	if err != nil {
		cc.t.Fatal(err)
	}
	if err := os.WriteFile(cc.config, b, 0o600); err != nil {
		cc.t.Fatal(err)
	}
}

// startHTTPServer starts `claude-parallel serve --http` with a token and
// returns its endpoint.
func (cc *ccRun) startHTTPServer(token string) string {
	t := cc.t
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := l.Addr().String()
	l.Close()
	cmd := exec.Command(flowBinary(t), "serve", "--http", addr)
	cmd.Env = append(cc.fi.env, "CLAUDE_PARALLEL_TOKEN="+token)
	stderr := &testutil.LockedBuffer{}
	cmd.Stderr = stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		_ = cmd.Process.Signal(syscall.SIGTERM)
		_, _ = cmd.Process.Wait()
		if t.Failed() {
			t.Logf("http server log:\n%s", stderr)
		}
	})
	deadline := time.Now().Add(30 * time.Second)
	for !strings.Contains(stderr.String(), "mcp server ready") {
		if time.Now().After(deadline) {
			t.Fatalf("http server not ready:\n%s", stderr)
		}
		time.Sleep(50 * time.Millisecond)
	}
	return "http://" + addr + "/mcp"
}

// ccResult is what one `claude -p` run left behind.
type ccResult struct {
	events []map[string]any // the stream-json output
	debug  string           // Claude Code's debug log
	stderr string
}

// claudeP runs `claude -p prompt` with the MCP config and returns its output.
func (cc *ccRun) claudeP(prompt string) ccResult {
	t := cc.t
	debugFile := filepath.Join(cc.dir, fmt.Sprintf("debug-%d.log", time.Now().UnixNano()))
	ctx, cancel := context.WithTimeout(context.Background(), 8*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, cc.claude, "-p", prompt,
		"--output-format", "stream-json", "--verbose",
		"--mcp-config", cc.config, "--strict-mcp-config",
		"--allowedTools", "mcp__"+ccServerName,
		"--model", "claude-sonnet-4-5",
		"--debug-file", debugFile)
	cmd.Dir = filepath.Join(cc.dir, "work")
	cmd.Env = []string{
		"PATH=" + os.Getenv("PATH"),
		"HOME=" + cc.dir,
		"ANTHROPIC_BASE_URL=" + cc.apiURL,
		"ANTHROPIC_API_KEY=sk-ant-fake-e2e-key",
		"DISABLE_AUTOUPDATER=1",
		"DISABLE_TELEMETRY=1",
		"DISABLE_ERROR_REPORTING=1",
		"CLAUDE_CODE_DISABLE_NONESSENTIAL_TRAFFIC=1",
		// MCP tools offered to the model directly, not deferred behind
		// ToolSearch, so the scripted model can call them at once.
		"ENABLE_TOOL_SEARCH=false",
	}
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	err := cmd.Run()
	debug, _ := os.ReadFile(debugFile)
	res := ccResult{debug: string(debug), stderr: stderr.String()}
	sc := bufio.NewScanner(&stdout)
	sc.Buffer(make([]byte, 1<<20), 64<<20)
	for sc.Scan() {
		var ev map[string]any
		if json.Unmarshal(sc.Bytes(), &ev) == nil {
			res.events = append(res.events, ev)
		}
	}
	if err != nil {
		t.Fatalf("claude -p: %v\nstderr:\n%s\nstdout:\n%s\ndebug:\n%s", err, stderr.String(), stdout.String(), ccTail(res.debug, 6000))
	}
	return res
}

func ccTail(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return "…" + s[len(s)-n:]
}

// mcpStatus is the status Claude Code reports for the server in its init
// event ("connected", "failed", "needs-auth", ...).
func (r ccResult) mcpStatus() string {
	for _, ev := range r.events {
		if ev["type"] != "system" || ev["subtype"] != "init" {
			continue
		}
		servers, _ := ev["mcp_servers"].([]any)
		for _, s := range servers {
			m, _ := s.(map[string]any)
			if m["name"] == ccServerName {
				return fmt.Sprint(m["status"])
			}
		}
	}
	return "(not listed)"
}

func (r ccResult) final() map[string]any {
	for i := len(r.events) - 1; i >= 0; i-- {
		if r.events[i]["type"] == "result" {
			return r.events[i]
		}
	}
	return nil
}

// mcpTroubles are what Claude Code logs when the connection to a server
// misbehaves.
var mcpTroubles = regexp.MustCompile(`(?i)unknown token|connection dropped|closed unexpectedly|with errors|transport error|failed to connect|connection failed|connection error|SSE stream disconnected|session not found|MCP error -32|needs auth|\[ERROR\]|failed after`)

// checkNoMCPTrouble fails on any line of Claude Code's debug output and MCP
// logs that reports trouble with the server, except the server's own log
// (which Claude Code relays as "Server stderr") and the error result the
// script provokes on purpose (expected).
func (cc *ccRun) checkNoMCPTrouble(r ccResult, expected string) {
	t := cc.t
	ok := func(line string) bool {
		return strings.Contains(line, "Server stderr:") || (expected != "" && strings.Contains(line, expected))
	}
	for _, line := range strings.Split(r.debug+"\n"+r.stderr, "\n") {
		if strings.Contains(line, ccServerName) && mcpTroubles.MatchString(line) && !ok(line) {
			t.Errorf("Claude Code logged an MCP problem: %s", ccTail(line, 2000))
		}
	}
	// Claude Code's own MCP log files, when it writes them.
	_ = filepath.WalkDir(cc.dir, func(path string, d os.DirEntry, err error) error {
		if err != nil || d.IsDir() || !strings.Contains(path, "mcp-logs-"+ccServerName) {
			return nil
		}
		b, _ := os.ReadFile(path)
		for _, line := range strings.Split(string(b), "\n") {
			if mcpTroubles.MatchString(line) && !ok(line) {
				t.Errorf("%s: %s", filepath.Base(path), ccTail(line, 2000))
			}
		}
		return nil
	})
}

var (
	taskIDRe = regexp.MustCompile(`task-[0-9a-f]{12}`)
	diffIDRe = regexp.MustCompile(`diff-[0-9a-f]{12}`)
)

// ccStep is one scripted tool call: its tool and its input, computed from
// the results so far.
type ccStep struct {
	tool  string
	input func(results []fakeanthropic.ToolResult) map[string]any
}

func tool(name string) string { return "mcp__" + ccServerName + "__" + name }

// firstID is the first id re finds in a result, other than those in not.
func firstID(re *regexp.Regexp, res fakeanthropic.ToolResult, not ...string) string {
	for _, id := range re.FindAllString(res.Text, -1) {
		if !slices.Contains(not, id) {
			return id
		}
	}
	return "(no id in: " + ccTail(res.Text, 200) + ")"
}

// script is the scripted model's plan: every one of the 12 tools, in the
// order a model would use them.
func (cc *ccRun) script() []ccStep {
	repo := cc.fi.repo
	taskA := func(r []fakeanthropic.ToolResult) string { return firstID(taskIDRe, r[1]) }
	taskB := func(r []fakeanthropic.ToolResult) string { return firstID(taskIDRe, r[2]) }
	diffA := func(r []fakeanthropic.ToolResult) string { return firstID(diffIDRe, r[5]) }
	diffB := func(r []fakeanthropic.ToolResult) string { return firstID(diffIDRe, r[7]) }
	taskC := func(r []fakeanthropic.ToolResult) string { return firstID(taskIDRe, r[12]) }
	return []ccStep{
		/* 0 */ {tool("system_status"), func([]fakeanthropic.ToolResult) map[string]any { return map[string]any{} }},
		/* 1 */ {tool("task_worker"), func([]fakeanthropic.ToolResult) map[string]any {
			return map[string]any{"task": "echo hello-from-claude > hello.txt; echo wrote-hello", "workFolder": repo, "agent": "shell", "taskDescription": "hello"}
		}},
		/* 2 */ {tool("task_worker"), func([]fakeanthropic.ToolResult) map[string]any {
			return map[string]any{"task": "echo unwanted > unwanted.txt", "workFolder": repo, "agent": "shell"}
		}},
		/* 3 */ {tool("wait_for_tasks"), func(r []fakeanthropic.ToolResult) map[string]any {
			return map[string]any{"taskIds": []string{taskA(r), taskB(r)}, "timeoutSeconds": 240}
		}},
		/* 4 */ {tool("work_status"), func(r []fakeanthropic.ToolResult) map[string]any { return map[string]any{"taskId": taskA(r)} }},
		/* 5 */ {tool("review_changes"), func(r []fakeanthropic.ToolResult) map[string]any { return map[string]any{"taskId": taskA(r)} }},
		/* 6 */ {tool("apply_changes"), func(r []fakeanthropic.ToolResult) map[string]any { return map[string]any{"diffId": diffA(r)} }},
		/* 7 */ {tool("review_changes"), func(r []fakeanthropic.ToolResult) map[string]any { return map[string]any{"taskId": taskB(r)} }},
		/* 8 */ {tool("request_revision"), func(r []fakeanthropic.ToolResult) map[string]any {
			return map[string]any{"diffId": diffB(r), "feedback": "echo revised > unwanted.txt"}
		}},
		/* 9 */ {tool("wait_for_tasks"), func(r []fakeanthropic.ToolResult) map[string]any {
			return map[string]any{"taskIds": []string{taskB(r)}, "timeoutSeconds": 240}
		}},
		/* 10 */ {tool("review_changes"), func(r []fakeanthropic.ToolResult) map[string]any { return map[string]any{"taskId": taskB(r)} }},
		/* 11 */ {tool("reject_changes"), func(r []fakeanthropic.ToolResult) map[string]any {
			return map[string]any{"diffId": firstID(diffIDRe, r[10], diffB(r)), "reason": "not wanted"}
		}},
		/* 12 */ {tool("task_worker"), func([]fakeanthropic.ToolResult) map[string]any {
			return map[string]any{"task": "echo started; sleep 300", "workFolder": repo, "agent": "shell"}
		}},
		/* 13 */ {tool("answer_worker_question"), func(r []fakeanthropic.ToolResult) map[string]any {
			return map[string]any{"taskId": taskC(r), "answer": "go on"}
		}},
		/* 14 */ {tool("cancel_task"), func(r []fakeanthropic.ToolResult) map[string]any {
			return map[string]any{"taskId": taskC(r), "reason": "e2e"}
		}},
		/* 15 */ {tool("list_container_logs"), func([]fakeanthropic.ToolResult) map[string]any { return map[string]any{} }},
		/* 16 */ {tool("view_container_logs"), func(r []fakeanthropic.ToolResult) map[string]any { return map[string]any{"identifier": taskA(r)} }},
	}
}

const ccDone = "All twelve tools were used; hello.txt is applied."

// model plays the model: the next step of the script, then a final text.
// Side requests (without the server's tools) get a plain answer.
func (cc *ccRun) model(conv fakeanthropic.Conversation) fakeanthropic.Reply {
	if !conv.HasTool(tool("task_worker")) {
		cc.t.Logf("a request without the server's tools (prompt %q): answered with text", ccTail(conv.LastUser, 100))
		return fakeanthropic.Reply{Text: "ok"}
	}
	steps := cc.script()
	n := len(conv.Results)
	if n >= len(steps) {
		return fakeanthropic.Reply{Text: ccDone}
	}
	return fakeanthropic.Reply{Tool: steps[n].tool, Input: steps[n].input(conv.Results)}
}

// runAllTools drives the whole script through Claude Code and checks what
// the model received, what Claude Code logged and the repository.
func (cc *ccRun) runAllTools() {
	t := cc.t
	r := cc.claudeP("Use claude-parallel to write hello.txt in the repository, and try every one of its tools.")
	if s := r.mcpStatus(); s != "connected" {
		t.Fatalf("Claude Code's MCP status for the server: %s\ndebug:\n%s", s, ccTail(r.debug, 6000))
	}
	final := r.final()
	if final == nil || final["is_error"] == true || final["result"] != ccDone {
		t.Fatalf("claude -p ended %v", final)
	}
	results := cc.api.ToolResults()
	steps := cc.script()
	if len(results) != len(steps) {
		t.Fatalf("the model received %d tool results, want %d", len(results), len(steps))
	}
	// The one error result of the script: a question to a task that asked
	// none (its first line, as Claude Code logs it).
	refused, _, _ := strings.Cut(results[13].Text, "\n")
	cc.checkNoMCPTrouble(r, refused)
	for i, res := range results {
		t.Logf("step %d %s: %d characters", i, res.Name, len(res.Text))
		if res.Name != steps[i].tool {
			t.Errorf("step %d: result of %s, want %s", i, res.Name, steps[i].tool)
		}
		if len(res.Text) > ccMaxResultChars {
			t.Errorf("step %d %s: %d characters, above %d", i, res.Name, len(res.Text), ccMaxResultChars)
		}
		// Only the question to a task that asked none is refused.
		if res.IsError != (i == 13) {
			t.Errorf("step %d %s: is_error=%v: %s", i, res.Name, res.IsError, ccTail(res.Text, 2000))
		}
	}
	want := map[int][]string{
		1:  {"task-"},
		3:  {"completed"},
		5:  {"hello.txt", "hello-from-claude"},
		6:  {"applied"},
		8:  {"2"},
		10: {"revised"},
		11: {"reject"},
		13: {"still"},
		14: {"cancel"},
		16: {"wrote-hello"},
	}
	for i, words := range want {
		for _, w := range words {
			if i < len(results) && !strings.Contains(strings.ToLower(results[i].Text), strings.ToLower(w)) {
				t.Errorf("step %d %s: the model did not see %q in:\n%s", i, results[i].Name, w, ccTail(results[i].Text, 3000))
			}
		}
	}
	if got := flowReadFile(t, filepath.Join(cc.fi.repo, "hello.txt")); got != "hello-from-claude\n" {
		t.Errorf("hello.txt = %q", got)
	}
	if _, err := os.Stat(filepath.Join(cc.fi.repo, "unwanted.txt")); err == nil {
		t.Errorf("the rejected change reached the repository")
	}
	if errs := cc.api.Errors(); len(errs) > 0 {
		t.Errorf("the fake API could not read requests: %v", errs)
	}
}

// runWithoutToken: Claude Code configured without the token does not
// connect, ends instead of hanging, and (given a plain bearer challenge and
// no OAuth metadata) reports the server as failed or needing auth.
func (cc *ccRun) runWithoutToken() {
	t := cc.t
	r := cc.claudeP("Say hello.")
	s := r.mcpStatus()
	t.Logf("Claude Code's status for a server it has no token for: %s", s)
	if s == "connected" {
		t.Fatalf("connected without the token")
	}
	// Claude Code tries OAuth on any 401: discovery finds nothing (404),
	// its dynamic client registration at /register gets a 404 too, and the
	// error it reports carries that answer's body, which says how to pass
	// the token.
	var failure string
	for _, line := range strings.Split(r.debug, "\n") {
		if strings.Contains(line, `"`+ccServerName+`"`) && strings.Contains(line, "Connection failed") {
			failure = line
		}
	}
	t.Logf("Claude Code's error: %s", failure)
	// (Claude Code's log redacts what follows "Authorization:".)
	if !strings.Contains(failure, "needs a bearer token") || !strings.Contains(failure, "CLAUDE_PARALLEL_TOKEN") {
		t.Errorf("the error Claude Code reports does not say how to pass the token: %q\ndebug:\n%s", failure, ccTail(r.debug, 6000))
	}
}
