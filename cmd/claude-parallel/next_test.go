package main

import (
	"context"
	"regexp"
	"slices"
	"strings"
	"testing"

	"github.com/claude-parallel/claude-parallel/mcp/service"
	"github.com/claude-parallel/claude-parallel/models"
)

// anyToolCall is an MCP tool named in text (`wait_for_tasks`, review_changes).
var anyToolCall = regexp.MustCompile(`\b(task_worker|work_status|wait_for_tasks|review_changes|apply_changes|reject_changes|request_revision|answer_worker_question|cancel_task|system_status|view_container_logs|list_container_logs)\b`)

// TestCLI_PrintsCommandsNotToolCalls: what the CLI prints for people names
// the claude-parallel commands to run next, never an MCP tool call.
func TestCLI_PrintsCommandsNotToolCalls(t *testing.T) {
	home := isolateNoDocker(t)
	repo := cliRepo(t, home)

	r := runFrontEnd(t, "task", "start", "--repo", repo, "--agent", "shell", "--prompt", "echo hi")
	if r.code != 0 {
		t.Fatalf("start: %d %s", r.code, r.stderr)
	}
	taskID := regexp.MustCompile(`task-[0-9a-f]{12}`).FindString(r.stdout)
	if taskID == "" {
		t.Fatalf("start printed no task id: %s", r.stdout)
	}
	want := "Next:\n  claude-parallel task logs " + taskID + " --follow\n  claude-parallel task show " + taskID + "\n"
	if !strings.Contains(r.stdout, want) || anyToolCall.MatchString(r.stdout) {
		t.Fatalf("start printed:\n%s\nwant the CLI steps %q and no tool call", r.stdout, want)
	}

	store := openTestStore(t, home)
	d, _, err := store.CreateDiff(context.Background(), &models.Diff{TaskID: taskID, RunNumber: 1, FilesChanged: 1, Additions: 1,
		Files: models.JSONList[models.DiffFile]{{Path: "hello.txt", Status: models.FileAdded, Additions: 1}},
		Patch: []byte("diff --git a/hello.txt b/hello.txt\n+hello\n")})
	if err != nil {
		t.Fatal(err)
	}
	r = runFrontEnd(t, "diff", "show", d.ID)
	want = "  claude-parallel diff show " + d.ID + " --patch\n  claude-parallel diff apply " + d.ID + " --wait\n  claude-parallel diff reject " + d.ID + "\n"
	if r.code != 0 || !strings.Contains(r.stdout, want) || anyToolCall.MatchString(r.stdout) || !strings.Contains(r.stdout, "hello.txt") {
		t.Fatalf("diff show printed:\n%s\nwant the CLI steps %q and no tool call", r.stdout, want)
	}
	r = runFrontEnd(t, "diff", "list")
	if r.code != 0 || !strings.Contains(r.stdout, "claude-parallel diff show "+d.ID+" --patch") || anyToolCall.MatchString(r.stdout) {
		t.Fatalf("diff list printed:\n%s", r.stdout)
	}
	r = runFrontEnd(t, "task", "list")
	if r.code != 0 || !strings.Contains(r.stdout, taskID) || anyToolCall.MatchString(r.stdout) {
		t.Fatalf("task list printed:\n%s", r.stdout)
	}
}

// TestCommandsFor_EveryCallTheServiceSuggests: each tool call the service
// may suggest becomes the command that does the same from a terminal, or
// nothing when the CLI has none (never a tool name).
func TestCommandsFor_EveryCallTheServiceSuggests(t *testing.T) {
	call := func(tool string, kv ...any) service.NextCall {
		n := service.NextCall{Tool: tool, Args: map[string]any{}}
		for i := 0; i+1 < len(kv); i += 2 {
			n.Args[kv[i].(string)] = kv[i+1]
		}
		return n
	}
	const task, diff = "task-0123456789ab", "diff-0123456789ab"
	for _, tc := range []struct {
		in   service.NextCall
		want []string
	}{
		{call("wait_for_tasks", "taskIds", []string{task}), []string{"claude-parallel task logs " + task + " --follow", "claude-parallel task show " + task}},
		{call("wait_for_tasks", "taskIds", []string{task, "task-ba9876543210"}), []string{"claude-parallel task logs " + task + " --follow", "claude-parallel task logs task-ba9876543210 --follow"}},
		{call("work_status", "taskId", task), []string{"claude-parallel task show " + task}},
		{call("work_status", "status", "needs_input"), []string{"claude-parallel task list --status needs_input"}},
		{call("work_status", "cursor", "abc"), nil},
		{call("review_changes", "diffId", diff, "showContent", true), []string{"claude-parallel diff show " + diff + " --patch"}},
		{call("review_changes", "diffId", diff, "offset", 20000), []string{"claude-parallel diff show " + diff + " --patch"}},
		{call("review_changes", "taskId", task), []string{"claude-parallel task show " + task}},
		{call("review_changes"), []string{"claude-parallel diff list"}},
		{call("apply_changes", "diffId", diff), []string{"claude-parallel diff apply " + diff + " --wait"}},
		{call("apply_changes", "diffId", diff, "targetWorkspace", "/srv/my repo's", "mode", "branch"),
			[]string{"claude-parallel diff apply " + diff + ` --wait --to '/srv/my repo'\''s' --mode branch`}},
		{call("reject_changes", "diffId", diff), []string{"claude-parallel diff reject " + diff}},
		{call("view_container_logs", "identifier", task, "beforeLine", 10), []string{"claude-parallel task logs " + task}},
		{call("request_revision", "diffId", diff, "feedback", "<what to change>"), nil},
		{call("answer_worker_question", "taskId", task, "answer", "<your answer>"), nil},
	} {
		got := commandsFor([]service.NextCall{tc.in})
		if !slices.Equal(got, tc.want) {
			t.Errorf("%s %v: got %q, want %q", tc.in.Tool, tc.in.Args, got, tc.want)
		}
		for _, c := range got {
			if anyToolCall.MatchString(c) {
				t.Errorf("%s: command %q names a tool", tc.in.Tool, c)
			}
		}
	}
	// The same command suggested twice is printed once.
	two := commandsFor([]service.NextCall{call("work_status", "taskId", task), call("wait_for_tasks", "taskIds", []string{task})})
	if want := []string{"claude-parallel task show " + task, "claude-parallel task logs " + task + " --follow"}; !slices.Equal(two, want) {
		t.Errorf("duplicates: got %q, want %q", two, want)
	}
}
