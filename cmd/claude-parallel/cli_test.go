package main

import (
	"bytes"
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/spf13/cobra"

	"github.com/claude-parallel/claude-parallel/config"
	"github.com/claude-parallel/claude-parallel/mcp/service"
	"github.com/claude-parallel/claude-parallel/models"
	"github.com/claude-parallel/claude-parallel/test/testutil"
)

// frontEndRoot is the root command with the task, diff and status commands.
// Until root.go registers them itself, they are added here; they then read
// their settings from the environment (isolate sets it), not from --home.
func frontEndRoot(stdout, stderr *bytes.Buffer) *cobra.Command {
	root := newRootCommand(stdout, stderr)
	if cmd, _, err := root.Find([]string{"task"}); err != nil || cmd == root {
		opts := &globalOptions{}
		root.AddCommand(newTaskCommand(opts), newDiffCommand(opts), newStatusCommand(opts))
	}
	return root
}

func runFrontEnd(t *testing.T, args ...string) result {
	t.Helper()
	var stdout, stderr bytes.Buffer
	root := frontEndRoot(&stdout, &stderr)
	root.SetArgs(args)
	root.SetIn(strings.NewReader(""))
	err := root.ExecuteContext(context.Background())
	code := exitOK
	if err != nil {
		stderr.WriteString("claude-parallel: " + err.Error() + "\n")
		code = exitError
		var ue usageError
		if ok := asUsage(err, &ue); ok {
			code = exitUsage
		}
	}
	return result{code, stdout.String(), stderr.String()}
}

func asUsage(err error, target *usageError) bool {
	for err != nil {
		if ue, ok := err.(usageError); ok {
			*target = ue
			return true
		}
		u, ok := err.(interface{ Unwrap() error })
		if !ok {
			return false
		}
		err = u.Unwrap()
	}
	return false
}

// cliRepo makes a git repository inside the isolated home (the default
// allowed root is $HOME) and returns its path.
func cliRepo(t *testing.T, home string) string {
	t.Helper()
	return testutil.NewRepo(t, filepath.Join(home, "src", "app"), map[string]string{"README.md": "hi\n"})
}

// isolateNoDocker is isolate with a Docker host that does not answer, so
// nothing a test starts can reach a real engine.
func isolateNoDocker(t *testing.T) string {
	dir := isolate(t)
	t.Setenv("DOCKER_HOST", "unix://"+filepath.Join(dir, "no-docker.sock"))
	return dir
}

func openTestStore(t *testing.T, home string) *models.Store {
	t.Helper()
	s, err := models.Open(context.Background(), filepath.Join(home, "cp-home", "data", config.DBFileName), models.Options{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = s.Close() })
	return s
}

// startShellTask starts a shell task on repo through the CLI and returns its id.
func startShellTask(t *testing.T, repo string) string {
	t.Helper()
	r := runFrontEnd(t, "task", "start", "--repo", repo, "--agent", "shell", "--prompt", "x", "--json")
	var started service.TaskWorkerResult
	if err := json.Unmarshal([]byte(r.stdout), &started); err != nil {
		t.Fatalf("%s %s", r.stdout, r.stderr)
	}
	return started.TaskID
}

func TestCLI_TaskStartListShowCancel(t *testing.T) {
	home := isolateNoDocker(t)
	repo := cliRepo(t, home)
	t.Chdir(repo)

	r := runFrontEnd(t, "task", "start", "--agent", "shell", "--prompt", "echo hi", "--priority", "high", "--json")
	if r.code != 0 {
		t.Fatalf("start: %d %s", r.code, r.stderr)
	}
	var started service.TaskWorkerResult
	if err := json.Unmarshal([]byte(r.stdout), &started); err != nil || !models.IsTaskID(started.TaskID) || started.WorkFolder != repo {
		t.Fatalf("start output %q: %v", r.stdout, err)
	}

	r = runFrontEnd(t, "task", "list")
	if r.code != 0 || !strings.Contains(r.stdout, started.TaskID) || !strings.Contains(r.stdout, "pending 1") {
		t.Fatalf("list: %d %s %s", r.code, r.stdout, r.stderr)
	}
	r = runFrontEnd(t, "task", "show", started.TaskID)
	if r.code != 0 || !strings.Contains(r.stdout, "## Task "+started.TaskID+": pending") || !strings.Contains(r.stdout, "priority high") {
		t.Fatalf("show: %d %s %s", r.code, r.stdout, r.stderr)
	}
	r = runFrontEnd(t, "task", "cancel", started.TaskID, "--reason", "changed my mind", "--json")
	var cancelled service.CancelResult
	if r.code != 0 || json.Unmarshal([]byte(r.stdout), &cancelled) != nil || !cancelled.CancelRequested {
		t.Fatalf("cancel: %d %s %s", r.code, r.stdout, r.stderr)
	}
	r = runFrontEnd(t, "status", "--json")
	var st service.SystemStatusResult
	if r.code != 0 || json.Unmarshal([]byte(r.stdout), &st) != nil || st.Docker.Reachable || st.Tasks["pending"] != 1 {
		t.Fatalf("status: %d %s %s", r.code, r.stdout, r.stderr)
	}
	r = runFrontEnd(t, "status")
	if r.code != 0 || !strings.Contains(r.stdout, "Docker: **unreachable**") {
		t.Fatalf("status text: %s", r.stdout)
	}
}

func TestCLI_BadInputNamesTheFlag(t *testing.T) {
	home := isolateNoDocker(t)
	repo := cliRepo(t, home)
	plain := filepath.Join(home, "plain")
	if err := os.MkdirAll(plain, 0o755); err != nil {
		t.Fatal(err)
	}
	cases := []struct {
		args []string
		want string
	}{
		{[]string{"task", "start", "--repo", plain, "--prompt", "x"}, "--repo: "},
		{[]string{"task", "start", "--repo", "/etc", "--prompt", "x"}, "is outside the allowed roots"},
		{[]string{"task", "start", "--repo", repo}, "--prompt: is empty"},
		{[]string{"task", "start", "--repo", repo, "--prompt", "x", "--base-ref", "--output=/tmp/x"}, "--base-ref: "},
		{[]string{"task", "start", "--repo", repo, "--prompt", "x", "--memory", "100g"}, "--memory: "},
		{[]string{"task", "start", "--repo", repo, "--prompt", "x", "--timeout", "9h"}, "--timeout: "},
		{[]string{"task", "start", "--repo", repo, "--prompt", "x", "--agent", "nope"}, "--agent: "},
		{[]string{"task", "start", "--repo", repo, "--prompt", "x", "--priority", "urgent"}, "--priority: "},
		{[]string{"task", "start", "--repo", repo, "--prompt", "x", "--depends-on", "task-000000000000"}, "--depends-on[0]: no task"},
		{[]string{"task", "show", "task-1"}, "TASK_ID: \"task-1\" is not a task id"},
		{[]string{"task", "show", "task-000000000000"}, "TASK_ID: no task task-000000000000 exists"},
		{[]string{"task", "list", "--status", "done"}, "--status: "},
		{[]string{"task", "logs", "../etc"}, "TASK_ID: "},
		{[]string{"diff", "show", "diff-x"}, "DIFF_ID: "},
		{[]string{"diff", "apply", "diff-000000000000"}, "DIFF_ID: no diff"},
		{[]string{"diff", "apply", "diff-000000000000", "--mode", "merge"}, "--mode: "},
		{[]string{"diff", "apply", "diff-000000000000", "--to", plain}, "--to: "},
		{[]string{"diff", "reject", "nope"}, "DIFF_ID: "},
	}
	for _, tc := range cases {
		r := runFrontEnd(t, tc.args...)
		if r.code == 0 || !strings.Contains(r.stderr, tc.want) {
			t.Errorf("%v: exit %d, stderr %q, want %q", tc.args, r.code, r.stderr, tc.want)
		}
		if r.stdout != "" {
			t.Errorf("%v: stdout on failure: %q", tc.args, r.stdout)
		}
	}
}

func TestCLI_DiffShowApplyReject(t *testing.T) {
	home := isolateNoDocker(t)
	taskID := startShellTask(t, cliRepo(t, home))
	store := openTestStore(t, home)
	ctx := context.Background()
	d, _, err := store.CreateDiff(ctx, &models.Diff{TaskID: taskID, RunNumber: 1, FilesChanged: 1, Additions: 1,
		Files: models.JSONList[models.DiffFile]{{Path: "hello.txt", Status: models.FileAdded, Additions: 1}},
		Patch: []byte("diff --git a/hello.txt b/hello.txt\n+hello\n")})
	if err != nil {
		t.Fatal(err)
	}

	r := runFrontEnd(t, "diff", "list")
	if r.code != 0 || !strings.Contains(r.stdout, d.ID) {
		t.Fatalf("list: %s %s", r.stdout, r.stderr)
	}
	r = runFrontEnd(t, "diff", "show", d.ID)
	if r.code != 0 || !strings.Contains(r.stdout, "hello.txt") || strings.Contains(r.stdout, "+hello") {
		t.Fatalf("show: %s %s", r.stdout, r.stderr)
	}
	r = runFrontEnd(t, "diff", "show", d.ID, "--patch")
	if r.code != 0 || !strings.Contains(r.stdout, "+hello") {
		t.Fatalf("show --patch: %s %s", r.stdout, r.stderr)
	}
	// Without --wait the intent is written and the command returns.
	r = runFrontEnd(t, "diff", "apply", d.ID, "--mode", "branch", "--json")
	var applied service.ApplyResult
	if r.code != 0 || json.Unmarshal([]byte(r.stdout), &applied) != nil || applied.Outcome != service.OutcomeInProgress {
		t.Fatalf("apply: %d %s %s", r.code, r.stdout, r.stderr)
	}
	stored, _ := store.GetDiff(ctx, d.ID)
	if stored.Spec.Desired != models.DiffDesiredApplied || stored.Spec.ApplyMode != models.ApplyModeBranch {
		t.Fatalf("spec %+v", stored.Spec)
	}
	// A second diff, rejected.
	d2, _, _ := store.CreateDiff(ctx, &models.Diff{TaskID: taskID, RunNumber: 2, Patch: []byte("x")})
	r = runFrontEnd(t, "diff", "reject", d2.ID, "--reason", "no")
	stored, _ = store.GetDiff(ctx, d2.ID)
	if r.code != 0 || stored.Spec.Desired != models.DiffDesiredRejected || stored.Spec.RejectReason != "no" {
		t.Fatalf("reject: %d %s %s %+v", r.code, r.stdout, r.stderr, stored.Spec)
	}
}

func TestCLI_TaskLogs(t *testing.T) {
	home := isolateNoDocker(t)
	taskID := startShellTask(t, cliRepo(t, home))
	store := openTestStore(t, home)
	ctx := context.Background()
	task, _ := store.GetTask(ctx, taskID)
	task.Status.Phase, task.Status.RunNumber = models.TaskPhaseSucceeded, 1
	if err := store.UpdateTaskStatus(ctx, task); err != nil {
		t.Fatal(err)
	}
	dir := filepath.Join(home, "cp-home", "logs", "tasks", taskID)
	if err := os.MkdirAll(dir, 0o700); err != nil {
		t.Fatal(err)
	}
	logFile := filepath.Join(dir, "run-1.log")
	if err := os.WriteFile(logFile, []byte("2024-05-01T10:00:00.000000001Z hello\n2024-05-01T10:00:01.000000001Z world\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := store.UpsertExecutionLog(ctx, &models.ExecutionLog{TaskID: taskID, Run: 1, Path: logFile, Complete: true}); err != nil {
		t.Fatal(err)
	}
	r := runFrontEnd(t, "task", "logs", taskID)
	if r.code != 0 || r.stdout != "hello\nworld\n" {
		t.Fatalf("logs: %d %q %s", r.code, r.stdout, r.stderr)
	}
	r = runFrontEnd(t, "task", "logs", taskID, "--follow", "--filter", "wor")
	if r.code != 0 || r.stdout != "world\n" {
		t.Fatalf("follow: %d %q %s", r.code, r.stdout, r.stderr)
	}
	r = runFrontEnd(t, "task", "logs", taskID, "--tail", "1", "--json")
	var logs service.LogsResult
	if r.code != 0 || json.Unmarshal([]byte(r.stdout), &logs) != nil || len(logs.Lines) != 1 || logs.Lines[0] != "world" {
		t.Fatalf("json: %s %s", r.stdout, r.stderr)
	}
}
