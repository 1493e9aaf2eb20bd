package main

import (
	"context"
	"regexp"
	"strings"
	"testing"

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

func TestForPeople_DropsToolHintsKeepsFacts(t *testing.T) {
	in := "## Task task-0123456789ab: completed\n\n- diff: **diff-0123456789ab** (1 file(s) changed) → `review_changes` diffId=\"diff-0123456789ab\"\n\n" +
		"Answer with `answer_worker_question` taskId=\"task-0123456789ab\".\n\nMore follow: call again with cursor `abc`.\n"
	got := forPeople(in)
	want := "## Task task-0123456789ab: completed\n\n- diff: **diff-0123456789ab** (1 file(s) changed)\n"
	if got != want {
		t.Fatalf("forPeople:\n%q\nwant\n%q", got, want)
	}
}
