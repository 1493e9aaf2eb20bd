package models

import (
	"context"
	"errors"
	"slices"
	"sync"
	"testing"
)

func TestSubscribe_CommittedWritesOnly(t *testing.T) {
	ctx := context.Background()
	s := newTestStore(t)
	var mu sync.Mutex
	var got []Change
	unsubscribe := s.Subscribe(func(c Change) {
		mu.Lock()
		defer mu.Unlock()
		got = append(got, c)
	})

	task := mustCreateTask(t, s, newTask("p"))
	if _, err := s.UpdateTaskSpec(ctx, task.ID, func(*Task) error { return nil }); err != nil { // no change: no notification
		t.Fatal(err)
	}
	if _, err := s.UpdateTaskSpec(ctx, task.ID, func(t *Task) error { t.Spec.DesiredState = TaskDesiredCancel; return nil }); err != nil {
		t.Fatal(err)
	}
	stale := *task
	if err := s.UpdateTaskStatus(ctx, &stale); !errors.Is(err, ErrConflict) { // refused: no notification
		t.Fatalf("err = %v", err)
	}
	fresh, _ := s.GetTask(ctx, task.ID)
	if err := s.UpdateTaskStatus(ctx, fresh); err != nil {
		t.Fatal(err)
	}
	diff, _, err := s.CreateDiff(ctx, newDiff(task.ID, 1))
	if err != nil {
		t.Fatal(err)
	}
	if err := s.UpsertContainer(ctx, &Container{Name: "c1"}); err != nil {
		t.Fatal(err)
	}
	unsubscribe()
	if err := s.DeleteTask(ctx, task.ID); err != nil {
		t.Fatal(err)
	}

	want := []Change{
		{Kind: EventKindTask, ID: task.ID, SpecChanged: true},
		{Kind: EventKindTask, ID: task.ID, SpecChanged: true},
		{Kind: EventKindTask, ID: task.ID},
		{Kind: EventKindDiff, ID: diff.ID, SpecChanged: true},
		{Kind: EventKindContainer, ID: "c1"},
	}
	if !slices.Equal(got, want) {
		t.Fatalf("notifications:\n got %+v\nwant %+v", got, want)
	}
}
