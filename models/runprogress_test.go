package models

import (
	"context"
	"path/filepath"
	"testing"
	"time"
)

// The progress of a run lives on its execution_logs row and is read with the
// task: a task's reads show its current run's row, the row's writer never
// moves the task's resource version, and the newest session of an earlier run
// is what a follow-up resumes.
func TestRunProgress_ReadWithTheTaskAndWrittenApart(t *testing.T) {
	ctx := context.Background()
	s := newTestStore(t)
	task := mustCreateTask(t, s, newTask("p"))
	task.Status.Phase, task.Status.RunNumber = TaskPhaseRunning, 2
	if err := s.UpdateTaskStatus(ctx, task); err != nil {
		t.Fatal(err)
	}
	rv := task.ResourceVersion
	at := time.Date(2026, 1, 2, 3, 4, 5, 6000, time.UTC) // microseconds: what PostgreSQL keeps
	for _, l := range []ExecutionLog{
		{TaskID: task.ID, Run: 1, Path: "/l/1", Progress: RunProgress{SessionID: "s-1", NumTurns: 4, ResultText: "old"}},
		{TaskID: task.ID, Run: 2, Path: "/l/2", LastLogTime: &at, Progress: RunProgress{NumTurns: 2, CostUSD: 0.5, LastMessage: "now"}},
	} {
		if err := s.UpsertExecutionLog(ctx, &l); err != nil {
			t.Fatal(err)
		}
	}
	got, err := s.GetTask(ctx, task.ID)
	if err != nil {
		t.Fatal(err)
	}
	if got.ResourceVersion != rv {
		t.Errorf("run rows moved the task: resource version %d → %d", rv, got.ResourceVersion)
	}
	p := got.Progress
	if p.NumTurns != 2 || p.CostUSD != 0.5 || p.LastMessage != "now" || p.ResultText != "" || p.SessionID != "" ||
		p.LastOutputAt == nil || !p.LastOutputAt.Equal(at) {
		t.Errorf("progress of run 2 %+v", p)
	}
	list, err := s.ListTasks(ctx, TaskFilter{IDs: []string{task.ID}})
	if err != nil || len(list) != 1 || list[0].Progress.LastMessage != "now" {
		t.Errorf("listed progress %+v, %v", list, err)
	}
	for before, want := range map[int]string{1: "", 2: "s-1", 3: "s-1"} {
		if id, err := s.LastSessionID(ctx, task.ID, before); err != nil || id != want {
			t.Errorf("LastSessionID before run %d = %q, %v; want %q", before, id, err, want)
		}
	}
}

// A version-1 database kept the progress on the task row; opening it with this
// binary copies it onto the current run's row, so a follow-up still resumes
// the agent's session after the upgrade.
func TestOpen_MovesVersion1ProgressToTheRunRow(t *testing.T) {
	ctx := context.Background()
	path := filepath.Join(t.TempDir(), "cp.db")
	s, err := Open(ctx, path, Options{})
	if err != nil {
		t.Fatal(err)
	}
	task := mustCreateTask(t, s, newTask("p"))
	task.Status.Phase, task.Status.RunNumber = TaskPhaseSucceeded, 1
	if err := s.UpdateTaskStatus(ctx, task); err != nil {
		t.Fatal(err)
	}
	if err := s.UpsertExecutionLog(ctx, &ExecutionLog{TaskID: task.ID, Run: 1, Path: "/l/1"}); err != nil {
		t.Fatal(err)
	}
	for _, ddl := range []string{
		`ALTER TABLE background_tasks ADD COLUMN session_id text NOT NULL DEFAULT ''`,
		`ALTER TABLE background_tasks ADD COLUMN num_turns integer NOT NULL DEFAULT 0`,
		`ALTER TABLE background_tasks ADD COLUMN cost_usd real NOT NULL DEFAULT 0`,
		`ALTER TABLE background_tasks ADD COLUMN last_message text NOT NULL DEFAULT ''`,
		`ALTER TABLE background_tasks ADD COLUMN result_text text NOT NULL DEFAULT ''`,
		`UPDATE background_tasks SET session_id = 'sess-old', num_turns = 7, cost_usd = 1.5, last_message = 'm', result_text = 'r'`,
		`UPDATE meta SET value = '1' WHERE key = 'schema_version'`,
	} {
		if err := s.DB().Exec(ddl).Error; err != nil {
			t.Fatalf("%s: %v", ddl, err)
		}
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	s, err = Open(ctx, path, Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	got, err := s.GetTask(ctx, task.ID)
	if err != nil {
		t.Fatal(err)
	}
	want := RunProgress{SessionID: "sess-old", NumTurns: 7, CostUSD: 1.5, LastMessage: "m", ResultText: "r"}
	if got.Progress.RunProgress != want {
		t.Errorf("progress after the upgrade %+v, want %+v", got.Progress.RunProgress, want)
	}
	if id, err := s.LastSessionID(ctx, task.ID, 2); err != nil || id != "sess-old" {
		t.Errorf("session to resume %q, %v", id, err)
	}
}
