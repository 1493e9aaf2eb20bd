package logfollow

import (
	"context"
	"io"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/claude-parallel/claude-parallel/config/redact"
	"github.com/claude-parallel/claude-parallel/controllers/engine"
	"github.com/claude-parallel/claude-parallel/models"
	"github.com/claude-parallel/claude-parallel/models/tasklog"
)

// exitedEngine is one container that has exited, with its whole output.
type exitedEngine struct{ out string }

func (e exitedEngine) Inspect(context.Context, string) (engine.ContainerInfo, error) {
	return engine.ContainerInfo{ID: "c1", State: "exited", FinishedAt: time.Now()}, nil
}

func (e exitedEngine) Logs(context.Context, string, time.Time, bool) (io.ReadCloser, error) {
	return io.NopCloser(strings.NewReader(e.out)), nil
}

// rows records what the follower writes through its one store port.
type rows struct {
	mu  sync.Mutex
	all []models.ExecutionLog
}

func (r *rows) RecordRun(_ context.Context, row *models.ExecutionLog) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.all = append(r.all, *row)
	return nil
}

// The follower copies the stream into the run's file in tasklog's format and
// records the run's row, complete, with the agent's progress — through Runs,
// its only way to the store.
func TestFollower_WritesTheRunFileAndRow(t *testing.T) {
	out := "2026-11-27T08:15:04.000000001Z " + `{"type":"system","subtype":"init","session_id":"s-9"}` + "\n" +
		"2026-11-27T08:15:04.000000002Z " + `{"type":"assistant","message":{"content":[{"type":"text","text":"hi"}]}}` + "\n" +
		"2026-11-27T08:15:05Z plain\n"
	rec := &rows{}
	set := NewSet(Deps{
		Engine: exitedEngine{out}, Runs: rec,
		Redactor:      func() *redact.Redactor { return nil },
		ProgressEvery: func() time.Duration { return time.Millisecond },
	})
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	set.Start(ctx)
	defer set.Stop()
	path := tasklog.Path(t.TempDir(), "task-0123456789ab", 1)
	f := set.Ensure(Target{TaskID: "task-0123456789ab", Run: 1, ContainerID: "c1", Path: path, TrackTask: true, StreamJSON: true})
	if !f.Wait(ctx, 10*time.Second) {
		t.Fatal("follower did not drain")
	}
	b, err := os.ReadFile(filepath.Clean(path))
	if err != nil || string(b) != out {
		t.Fatalf("file %q, %v; want the stream as it came", b, err)
	}
	rec.mu.Lock()
	defer rec.mu.Unlock()
	last := rec.all[len(rec.all)-1]
	if !last.Complete || last.Size != int64(len(out)) || last.LastLogTime == nil ||
		last.Progress != (models.RunProgress{SessionID: "s-9", NumTurns: 1, LastMessage: "hi"}) {
		t.Fatalf("run row %+v", last)
	}
}
