package models

import (
	"context"
	"errors"
	"fmt"
	"gorm.io/gorm"
	"strings"
	"testing"
	"time"
)

func TestUpsertContainer_CreatesThenOverwritesEveryColumn(t *testing.T) {
	ctx := context.Background()
	s := newTestStore(t)
	started := time.Date(2025, 1, 1, 10, 0, 0, 0, time.FixedZone("X", 3600))
	c := &Container{Name: "claude-parallel-task-aaaaaaaaaaaa-r1", DockerID: "abc", TaskID: "task-aaaaaaaaaaaa", Run: 1,
		State: "exited", ExitCode: ptr(1), Image: "img", StartedAt: &started, Adopted: true}
	if err := s.UpsertContainer(ctx, c); err != nil {
		t.Fatal(err)
	}
	if c.ResourceVersion != 1 || c.LastSeenAt.IsZero() {
		t.Fatalf("after create: rv %d last seen %v", c.ResourceVersion, c.LastSeenAt)
	}
	created := c.CreatedAt

	// A later observation with zero values must clear them.
	if err := s.UpsertContainer(ctx, &Container{Name: c.Name, DockerID: "def", State: "running"}); err != nil {
		t.Fatal(err)
	}
	got, err := s.GetContainerByName(ctx, c.Name)
	if err != nil {
		t.Fatal(err)
	}
	if got.DockerID != "def" || got.State != "running" || got.ExitCode != nil || got.Adopted || got.StartedAt != nil ||
		got.ResourceVersion != 2 || !got.CreatedAt.Equal(created) {
		t.Fatalf("overwrite: %+v", got)
	}

	if err := s.UpsertContainer(ctx, &Container{Name: "claude-parallel-task-bbbbbbbbbbbb-r1", TaskID: "task-bbbbbbbbbbbb", State: "running", Adopted: true}); err != nil {
		t.Fatal(err)
	}
	running, _ := s.ListContainers(ctx, ContainerFilter{States: []string{"running"}})
	adopted, _ := s.ListContainers(ctx, ContainerFilter{Adopted: ptr(true)})
	byTask, _ := s.ListContainers(ctx, ContainerFilter{TaskID: "task-bbbbbbbbbbbb"})
	if len(running) != 2 || len(adopted) != 1 || len(byTask) != 1 {
		t.Fatalf("filters: running %d adopted %d by task %d", len(running), len(adopted), len(byTask))
	}
	if err := s.DeleteContainer(ctx, c.Name); err != nil {
		t.Fatal(err)
	}
	if err := s.DeleteContainer(ctx, c.Name); !errors.Is(err, ErrNotFound) {
		t.Fatalf("second delete: %v", err)
	}
}

func TestExecutionLogs_UpsertGetList(t *testing.T) {
	ctx := context.Background()
	s := newTestStore(t)
	task := mustCreateTask(t, s, newTask("p"))
	if err := s.UpsertExecutionLog(ctx, &ExecutionLog{TaskID: "task-000000000000", Run: 1, Path: "/x"}); !errors.Is(err, ErrNotFound) {
		t.Fatalf("log of a missing task: err = %v, want ErrNotFound", err)
	}
	ts := time.Date(2025, 1, 1, 0, 0, 0, 123456000, time.UTC) // microseconds: PostgreSQL keeps no more
	for run := 1; run <= 2; run++ {
		if err := s.UpsertExecutionLog(ctx, &ExecutionLog{TaskID: task.ID, Run: run, Path: "/logs/run.log", Size: int64(run * 100)}); err != nil {
			t.Fatal(err)
		}
	}
	if err := s.UpsertExecutionLog(ctx, &ExecutionLog{TaskID: task.ID, Run: 1, Path: "/logs/run-1.log", Size: 500, Complete: true, LastLogTime: &ts}); err != nil {
		t.Fatal(err)
	}
	got, err := s.GetExecutionLog(ctx, task.ID, 1)
	if err != nil {
		t.Fatal(err)
	}
	if got.Size != 500 || !got.Complete || got.Path != "/logs/run-1.log" || !got.LastLogTime.Equal(ts) {
		t.Fatalf("log row: %+v", got)
	}
	byRun, _ := s.ListExecutionLogs(ctx, LogFilter{TaskID: task.ID})
	largest, _ := s.ListExecutionLogs(ctx, LogFilter{Order: LogsLargestFirst, Limit: 1})
	if len(byRun) != 2 || byRun[0].Run != 1 || len(largest) != 1 || largest[0].Size != 500 {
		t.Fatalf("lists: %+v / %+v", byRun, largest)
	}
}

func TestEvents_RecordListPrune(t *testing.T) {
	ctx := context.Background()
	clock := &fakeClock{t: time.Date(2025, 1, 1, 0, 0, 0, 0, time.UTC)}
	s := newTestStore(t, Options{Now: clock.Now})
	for _, reason := range []string{"Created", "Admitted", "Started", "Exited"} {
		if err := s.RecordEvent(ctx, EventKindTask, "task-aaaaaaaaaaaa", reason, reason+" the task"); err != nil {
			t.Fatal(err)
		}
		clock.Advance(time.Hour)
	}
	if err := s.RecordEvent(ctx, EventKindTask, "task-bbbbbbbbbbbb", "Created", strings.Repeat("x", 10000)); err != nil {
		t.Fatal(err)
	}
	last, err := s.ListEvents(ctx, EventKindTask, "task-aaaaaaaaaaaa", 2)
	if err != nil {
		t.Fatal(err)
	}
	if len(last) != 2 || last[0].Reason != "Started" || last[1].Reason != "Exited" {
		t.Fatalf("last two events, oldest first: %+v", last)
	}
	other, _ := s.ListEvents(ctx, "", "task-bbbbbbbbbbbb", 0)
	if len(other) != 1 || len(other[0].Message) > maxEventMessage+len("…") {
		t.Fatalf("long message not cut: %d bytes", len(other[0].Message))
	}
	cutoff := time.Date(2025, 1, 1, 1, 30, 0, 0, time.UTC)
	n, err := s.DeleteEventsBefore(ctx, cutoff, 1)
	if err != nil || n != 1 {
		t.Fatalf("pruned %d (err %v), want 1: the limit", n, err)
	}
	if left, _ := s.ListEvents(ctx, EventKindTask, "task-aaaaaaaaaaaa", 0); len(left) != 3 || left[0].Reason != "Admitted" {
		t.Fatalf("a limited prune must take the oldest first; left %+v", left)
	}
	n, err = s.DeleteEventsBefore(ctx, cutoff, 0)
	if err != nil || n != 1 {
		t.Fatalf("pruned %d (err %v), want the 1 left before the cutoff", n, err)
	}
}

// A writer whose context ends during its own write (a log follower stopped
// with its container) is still this store's writer: its rollback is not taken
// for someone else's write.
func TestDataVersion_OwnWriteWithItsContextEndingIsNotNews(t *testing.T) {
	ctx := context.Background()
	s := newTestStore(t)
	task := mustCreateTask(t, s, newTask("p"))
	v0, err := s.DataVersion(ctx)
	if err != nil {
		t.Fatal(err)
	}
	wctx, cancel := context.WithCancel(ctx)
	err = s.write(wctx, func(tx *gorm.DB) error {
		defer cancel()
		return recordEventTx(tx, s.now(), EventKindTask, task.ID, "Note", "context ends in the transaction")
	})
	if !errors.Is(err, context.Canceled) {
		t.Fatalf("write whose context ended in its transaction: %v, want context.Canceled", err)
	}
	v, err := s.DataVersion(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if v != v0 {
		t.Fatalf("the store took its own write for another's (%d -> %d)", v0, v)
	}
}

// DataVersion moves when another connection or another process commits, and
// stays put while nobody writes.
func TestDataVersion_ChangesOnWritesByOthersOnly(t *testing.T) {
	ctx := context.Background()
	s := newTestStore(t)
	path := childTarget(s)
	version := func() int64 {
		t.Helper()
		v, err := s.DataVersion(ctx)
		if err != nil {
			t.Fatal(err)
		}
		return v
	}
	v0 := version()
	if v := version(); v != v0 {
		t.Fatalf("data_version moved without a write: %d -> %d", v0, v)
	}

	// This store's own writes (through its pool, another connection) are
	// not news: they reach the controllers by their own wake-ups.
	for i := range 3 {
		mustCreateTask(t, s, newTask(fmt.Sprint("same store ", i)))
	}
	v1 := version()
	if v1 != v0 {
		t.Fatalf("data version moved after this store's own writes: %d -> %d", v0, v1)
	}

	// A second Store in this process.
	other, err := openTarget(ctx, path, Options{})
	if err != nil {
		t.Fatal(err)
	}
	mustCreateTask(t, other, newTask("other store"))
	other.Close()
	v2 := version()
	if v2 == v1 {
		t.Fatal("data_version did not move after a write by another store")
	}
	// Another's write followed by one of this store's: still news.
	mustCreateTask(t, s, newTask("same store after"))
	if v := version(); v != v2 {
		t.Fatalf("own write after a read moved the version: %d -> %d", v2, v)
	}
	other, err = openTarget(ctx, path, Options{})
	if err != nil {
		t.Fatal(err)
	}
	mustCreateTask(t, other, newTask("other store again"))
	other.Close()
	mustCreateTask(t, s, newTask("same store masks nothing"))
	if v := version(); v == v2 {
		t.Fatal("a write by another store was hidden by this store's next write")
	}
	v2 = version()

	// Another process.
	out, err := childCommand("write", path).CombinedOutput()
	if err != nil {
		t.Fatalf("child: %v\n%s", err, out)
	}
	if v3 := version(); v3 == v2 {
		t.Fatalf("data_version did not move after a write by another process (%s)", strings.TrimSpace(string(out)))
	}
}
