package controllers

import (
	"context"

	"github.com/claude-parallel/claude-parallel/config/redact"
	"github.com/claude-parallel/claude-parallel/controllers/engine"
	"github.com/claude-parallel/claude-parallel/controllers/logfollow"
	"github.com/claude-parallel/claude-parallel/models"
	"github.com/claude-parallel/claude-parallel/models/tasklog"
)

// Log following lives in controllers/logfollow; this file is the task
// controller's side of it: which run to follow and where its output goes,
// and the store port the followers write their run rows through.

// taskLogPath is where a task run's output goes.
func (s *taskDeps) taskLogPath(taskID string, run int) string {
	return tasklog.Path(s.paths.TaskLogDir, taskID, run)
}

// taskFollowTarget is the follow target of a task's current run.
func (s *taskDeps) taskFollowTarget(t *models.Task, info engine.ContainerInfo) logfollow.Target {
	profile, _ := s.config().Profile(t.Spec.Agent)
	return logfollow.Target{
		TaskID:      t.ID,
		Run:         t.Status.RunNumber,
		ContainerID: info.ID,
		Path:        s.taskLogPath(t.ID, t.Status.RunNumber),
		TrackTask:   true,
		StreamJSON:  profile.OutputFormat == "stream-json",
	}
}

// runRecorder is the followers' port to the store: the run's own row, and
// nothing else (setup gives it to logfollow.NewSet). The followers reach the
// engine only to read logs.
type runRecorder struct{ store *models.Store }

func (r runRecorder) RecordRun(ctx context.Context, row *models.ExecutionLog) error {
	return r.store.UpsertExecutionLog(ctx, row)
}

// shortID is the 12-character form people see of a container id or a commit.
func shortID(id string) string {
	if len(id) > 12 {
		return id[:12]
	}
	return id
}

// redactTaskWrite hides secrets in the texts of a task status and its
// timeline before they are written: the output fields are redacted as the
// follower stores them already, and this catches an error text (Docker's,
// git's) that quotes one, and a row written by an older version.
func redactTaskWrite(r *redact.Redactor, st *models.TaskStatus, events []taskEvent) {
	redactEach(r, &st.Message, &st.PendingQuestion)
	for i := range events {
		events[i].message = r.String(events[i].message)
	}
}

// redactDiffWrite is redactTaskWrite for a diff's status and its timeline
// lines: the texts that quote git or the target (never the patch, which is
// applied as made).
func redactDiffWrite(r *redact.Redactor, st *models.DiffStatus, events []diffEvent) {
	redactEach(r, &st.Message)
	for i := range events {
		events[i].message = r.String(events[i].message)
	}
}

func redactEach(r *redact.Redactor, texts ...*string) {
	for _, p := range texts {
		*p = r.String(*p)
	}
}
