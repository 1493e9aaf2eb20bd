package mcp

import (
	"bytes"
	"context"
	"encoding/json"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/mark3labs/mcp-go/mcp"
	"github.com/mark3labs/mcp-go/server"
	"go.uber.org/zap"
	"go.uber.org/zap/zaptest/observer"

	"github.com/claude-parallel/claude-parallel/config"
	"github.com/claude-parallel/claude-parallel/mcp/service"
	"github.com/claude-parallel/claude-parallel/models"
	"github.com/claude-parallel/claude-parallel/test/testutil"
)

// testEnv is a real store in a temporary home, an allowed root holding a git
// repository, and around it the folders bad inputs point at.
type testEnv struct {
	t        testing.TB
	dir      string // everything lives below
	home     string
	root     string // the one allowed root
	repo     string // git repository inside root
	cfg      *config.Config
	store    *models.Store
	fe       *service.Frontend
	feDeps   service.Deps // what fe was built with; setDeps changes it
	logs     *observer.ObservedLogs
	mu       sync.Mutex
	notified []string
}

func (e *testEnv) Notify(kind, id string) {
	e.mu.Lock()
	defer e.mu.Unlock()
	e.notified = append(e.notified, kind+":"+id)
}

func newTestEnv(t testing.TB) *testEnv {
	t.Helper()
	dir, err := filepath.EvalSymlinks(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	e := &testEnv{t: t, dir: dir, home: filepath.Join(dir, "home"), root: filepath.Join(dir, "work")}
	e.repo = filepath.Join(e.root, "repo")
	gitInit(t, e.repo)

	cfg := config.Default()
	cfg.Home = e.home
	cfg.DBPath = filepath.Join(e.home, "data", config.DBFileName)
	cfg.Log.Dir = filepath.Join(e.home, "logs")
	cfg.AllowedRoots = []string{e.root}
	if err := cfg.Validate(); err != nil {
		t.Fatal(err)
	}
	e.cfg = cfg

	e.store, err = models.Open(context.Background(), cfg.DBPath, models.Options{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = e.store.Close() })

	core, logs := observer.New(zap.DebugLevel)
	e.logs = logs
	e.feDeps = service.Deps{Config: service.StaticConfig(cfg), Store: e.store, Notifier: e, Logger: zap.New(core),
		PollInterval: 10 * time.Millisecond, ApplyWait: 10 * time.Second}
	e.fe = service.NewFrontend(e.feDeps)
	return e
}

// setDeps changes what the service of e is built with and builds it anew;
// every tool call builds its handler from e.fe, so the next call sees it.
func (e *testEnv) setDeps(change func(d *service.Deps)) {
	change(&e.feDeps)
	e.fe = service.NewFrontend(e.feDeps)
}

// gitInit makes a repository with one commit at dir.
func gitInit(t testing.TB, dir string) {
	t.Helper()
	testutil.NewRepo(t, dir, map[string]string{"README.md": "hello\n"})
	testutil.Git(t, dir, "tag", "v1")
}

// handler returns the guarded handler of the named tool.
func (e *testEnv) handler(name string) server.ToolHandlerFunc {
	e.t.Helper()
	for _, newTool := range toolConstructors {
		tool, h := newTool(e.fe)
		if tool.Name == name {
			return guardTool(e.fe.Logger(), e.fe.ToolObserver())(h)
		}
	}
	e.t.Fatalf("no tool %s", name)
	return nil
}

// call invokes a tool with arguments given as a Go value (marshalled to the
// raw JSON a transport would carry) or as a raw JSON string.
func (e *testEnv) call(name string, args any) *mcp.CallToolResult {
	e.t.Helper()
	var raw []byte
	switch a := args.(type) {
	case string:
		raw = []byte(a)
	default:
		var err error
		if raw, err = json.Marshal(a); err != nil {
			e.t.Fatal(err)
		}
	}
	req := mcp.CallToolRequest{}
	req.Params.Name = name
	req.Params.RawArguments = raw
	_ = json.Unmarshal(raw, &req.Params.Arguments)
	res, err := e.handler(name)(context.Background(), req)
	if err != nil {
		e.t.Fatalf("%s: infrastructure error: %v", name, err)
	}
	if res == nil {
		e.t.Fatalf("%s: nil result", name)
	}
	return res
}

// ok calls a tool that must succeed and decodes its structured content.
func ok[T any](e *testEnv, name string, args any) T {
	e.t.Helper()
	res := e.call(name, args)
	if res.IsError {
		e.t.Fatalf("%s(%v): error result: %s", name, args, resultText(res))
	}
	var out T
	b, err := json.Marshal(res.StructuredContent)
	if err != nil {
		e.t.Fatal(err)
	}
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&out); err != nil {
		e.t.Fatalf("%s: decode structured content: %v\n%s", name, err, b)
	}
	if resultText(res) == "" {
		e.t.Fatalf("%s: no markdown text", name)
	}
	return out
}

// fails calls a tool that must answer with an error result and returns its text.
func (e *testEnv) fails(name string, args any) string {
	e.t.Helper()
	res := e.call(name, args)
	if !res.IsError {
		e.t.Fatalf("%s(%v): succeeded, want an error result: %s", name, args, resultText(res))
	}
	return resultText(res)
}

func resultText(res *mcp.CallToolResult) string {
	var b strings.Builder
	for _, c := range res.Content {
		if tc, ok := c.(mcp.TextContent); ok {
			b.WriteString(tc.Text)
		}
	}
	return b.String()
}

// startTask creates a task through the tool.
func (e *testEnv) startTask(extra map[string]any) service.TaskWorkerResult {
	e.t.Helper()
	args := map[string]any{"task": "echo hi > out.txt", "workFolder": e.repo, "agent": "shell"}
	for k, v := range extra {
		args[k] = v
	}
	return ok[service.TaskWorkerResult](e, "task_worker", args)
}

// finishRun plays the task controller: the task's run n ends in phase,
// with a diff when files is not empty.
func (e *testEnv) finishRun(taskID string, run int, phase models.TaskPhase, files ...string) *models.Diff {
	e.t.Helper()
	ctx := context.Background()
	task, err := e.store.GetTask(ctx, taskID)
	if err != nil {
		e.t.Fatal(err)
	}
	var d *models.Diff
	if len(files) > 0 {
		d = &models.Diff{TaskID: taskID, RunNumber: run, BaseCommit: "abc", ResultCommit: "def",
			FilesChanged: len(files), Additions: len(files), Patch: []byte(fakePatch(files))}
		for _, f := range files {
			d.Files = append(d.Files, models.DiffFile{Path: f, Status: models.FileAdded, Additions: 1})
		}
		if d, _, err = e.store.CreateDiff(ctx, d); err != nil {
			e.t.Fatal(err)
		}
		task.Status.DiffID = d.ID
	}
	exit := 0
	task.Status.Phase = phase
	task.Status.RunNumber = run
	task.Status.ExitCode = &exit
	task.Status.ObservedGeneration = task.Generation
	task.Status.ContainerName = models.ContainerName(taskID, run)
	if err := e.store.UpdateTaskStatus(ctx, task); err != nil {
		e.t.Fatal(err)
	}
	return d
}

func fakePatch(files []string) string {
	var b strings.Builder
	for _, f := range files {
		b.WriteString("diff --git a/" + f + " b/" + f + "\nnew file mode 100644\n--- /dev/null\n+++ b/" + f + "\n@@ -0,0 +1 @@\n+hi\n")
	}
	return b.String()
}
