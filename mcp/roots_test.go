package mcp

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/claude-parallel/claude-parallel/mcp/service"
	"github.com/claude-parallel/claude-parallel/models"
)

// A work folder inside the allowed root whose .git is a file pointing at a
// repository outside the roots is refused at admission: the task would see
// (and its diffs would write) that outside repository.
func TestTaskWorker_RefusesGitFileOutsideRoots(t *testing.T) {
	e := newTestEnv(t)
	outside := filepath.Join(e.dir, "outside", "repo")
	gitInit(t, outside)
	victim := filepath.Join(e.root, "victim")
	if err := os.MkdirAll(victim, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(victim, ".git"), []byte("gitdir: "+filepath.Join(outside, ".git")+"\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	r, err := DecodeTaskWorker(map[string]any{"task": "x", "workFolder": victim, "agent": "shell"}, e.cfg)
	if err != nil {
		t.Fatal(err)
	}
	_, err = e.fe.StartTask(context.Background(), r)
	var probs service.InputErrors
	if !errors.As(err, &probs) || !strings.Contains(err.Error(), filepath.Join(outside, ".git")) ||
		!strings.Contains(err.Error(), "outside the allowed roots") {
		t.Fatalf("StartTask: %v; want a refusal naming the git directory outside the roots", err)
	}
	if tasks, _ := e.store.ListTasks(context.Background(), models.TaskFilter{}); len(tasks) != 0 {
		t.Fatalf("%d tasks stored", len(tasks))
	}
}

// apply_changes with no targetWorkspace checks the task's folder as it is
// now: swapped for a symlink to a repository outside the roots, it is
// refused like an explicit target would be, and no apply intent is written.
func TestApplyChanges_DefaultTargetSwappedOutsideIsRefused(t *testing.T) {
	e := newTestEnv(t)
	task := e.startTask(nil)
	d := e.finishRun(task.TaskID, 1, models.TaskPhaseSucceeded, "out.txt")
	outside := filepath.Join(e.dir, "outside", "repo")
	gitInit(t, outside)
	if err := os.Rename(e.repo, e.repo+".real"); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink(outside, e.repo); err != nil {
		t.Fatal(err)
	}
	_, err := e.fe.ApplyChanges(context.Background(), &service.ApplyRequest{DiffID: d.ID, Mode: models.ApplyModeWorktree, Confirm: true}, 0, nil)
	var ierr *service.InputError
	if !errors.As(err, &ierr) || !strings.Contains(err.Error(), "outside the allowed roots") || !strings.Contains(err.Error(), "default target") {
		t.Fatalf("ApplyChanges: %v; want a refusal of the default target", err)
	}
	if got, _ := e.store.GetDiff(context.Background(), d.ID); got.Spec.Desired == models.DiffDesiredApplied {
		t.Fatalf("an apply intent was written: %+v", got.Spec)
	}
}

// A run's log file replaced by a symlink to a file outside the log
// directory is not followed: view_container_logs shows nothing of it.
func TestViewContainerLogs_DoesNotFollowAPlantedSymlink(t *testing.T) {
	e := newTestEnv(t)
	task := e.startTask(nil)
	e.finishRun(task.TaskID, 1, models.TaskPhaseSucceeded)
	secret := filepath.Join(e.dir, "secret.txt")
	if err := os.WriteFile(secret, []byte("2026-01-01T00:00:00.000000000Z CANARY-secret\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	logPath := filepath.Join(e.cfg.Paths().TaskLogDir, task.TaskID, "run-1.log")
	if err := os.MkdirAll(filepath.Dir(logPath), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink(secret, logPath); err != nil {
		t.Fatal(err)
	}
	res, err := e.fe.ViewLogs(context.Background(), &service.LogsRequest{Identifier: task.TaskID, MaxChars: 1 << 20})
	if err == nil && strings.Contains(strings.Join(res.Lines, "\n"), "CANARY") {
		t.Fatalf("the log read followed the symlink: %q", res.Lines)
	}
}
