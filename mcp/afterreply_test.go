package mcp

import (
	"bytes"
	"context"
	"io"
	"slices"
	"testing"
	"time"

	sdk "github.com/modelcontextprotocol/go-sdk/mcp"

	"github.com/claude-parallel/claude-parallel/mcp/service"
)

// replyLog is the server's stdout in a test: it notes in the environment's
// notification list when a reply naming a new task is written, so the list
// shows the order of the reply and the controllers' wake-up.
type replyLog struct {
	w io.Writer
	e *testEnv
}

func (r *replyLog) Write(p []byte) (int, error) {
	n, err := r.w.Write(p)
	if bytes.Contains(p, []byte(`"created":true`)) {
		r.e.mu.Lock()
		r.e.notified = append(r.e.notified, "reply")
		r.e.mu.Unlock()
	}
	return n, err
}

// Over stdio, task_worker wakes the controllers for its new task after its
// reply is written, not before: their first steps (a status write, git
// commands) competed for the CPU with the reply. The task is still
// committed before the reply, and they still hear of it.
func TestTaskWorker_StdioWakesTheControllersAfterTheReply(t *testing.T) {
	e := newTestEnv(t)
	clientR, serverW := io.Pipe()
	serverR, clientW := io.Pipe()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() {
		done <- NewStdioServer(NewServer(e.deps()), e.fe.Logger()).Listen(ctx, serverR, &replyLog{w: serverW, e: e})
	}()
	cs, err := newSDKClient(nil).Connect(context.Background(), &sdk.IOTransport{Reader: clientR, Writer: clientW}, nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		_ = cs.Close()
		cancel()
		_ = serverW.Close()
		_ = serverR.Close()
		<-done
	})

	var started service.TaskWorkerResult
	callSDK(t, cs, "task_worker", map[string]any{"task": "echo hi", "workFolder": e.repo, "agent": "shell"}, &started)
	if _, err := e.store.GetTask(context.Background(), started.TaskID); err != nil {
		t.Fatalf("task %s not stored when the reply came: %v", started.TaskID, err)
	}
	want := "task:" + started.TaskID
	deadline := time.Now().Add(30 * time.Second)
	for {
		e.mu.Lock()
		log := slices.Clone(e.notified)
		e.mu.Unlock()
		if i := slices.Index(log, want); i >= 0 {
			if r := slices.Index(log, "reply"); r < 0 || r > i {
				t.Fatalf("controllers woken before the reply was written: %v", log)
			}
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("controllers never woken for %s: %v", started.TaskID, log)
		}
		time.Sleep(time.Millisecond)
	}
}
