package models

import (
	"context"
	"fmt"
	"testing"
)

// WorkFolders answers each existing task's folder, repeats and missing ids
// included, across more ids than one query binds.
func TestWorkFolders_ExistingTasksAcrossChunks(t *testing.T) {
	ctx := context.Background()
	s := newTestStore(t)
	a := newTask("a")
	a.Spec.WorkFolder = "/repos/a"
	a = mustCreateTask(t, s, a)
	b := newTask("b")
	b.Spec.WorkFolder = "/repos/b"
	b = mustCreateTask(t, s, b)
	ids := []string{b.ID, a.ID, b.ID}
	for i := range 600 { // missing ones, sorting around a and b, over a chunk of 500
		ids = append(ids, fmt.Sprintf("task-%012x", i))
	}
	got, err := s.WorkFolders(ctx, ids)
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != 2 || got[a.ID] != "/repos/a" || got[b.ID] != "/repos/b" {
		t.Fatalf("WorkFolders = %v", got)
	}
	if none, err := s.WorkFolders(ctx, nil); err != nil || len(none) != 0 {
		t.Fatalf("no ids: %v, %v", none, err)
	}
}
