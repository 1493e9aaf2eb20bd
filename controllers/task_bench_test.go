package controllers

import (
	"context"
	"fmt"
	"slices"
	"testing"
	"time"

	"github.com/claude-parallel/claude-parallel/models"
	"github.com/claude-parallel/claude-parallel/reconciler"
)

// BenchmarkIdleReconcile measures one resync pass of the task controller
// — list the live tasks, reconcile each — with ten live tasks waiting for a
// dependency, first over a store with no history, then over one with 100,000
// finished tasks. The pass must not grow with history: the live-task query
// reads a partial index the size of the live set.
//
//	go test -run '^$' -bench IdleReconcile -benchtime 1x ./controllers/
func BenchmarkIdleReconcile(b *testing.B) {
	for range b.N {
		empty := idlePassCost(b, 0)
		full := idlePassCost(b, 100_000)
		b.ReportMetric(float64(empty.Microseconds()), "µs/pass-0-history")
		b.ReportMetric(float64(full.Microseconds()), "µs/pass-100k-history")
		b.ReportMetric(float64(full)/float64(empty), "ratio")
		fmt.Printf("idle task reconcile pass (10 live tasks): %v with no history, %v with 100,000 finished tasks (ratio %.2f)\n",
			empty, full, float64(full)/float64(empty))
	}
}

// idlePassCost returns the median duration of one pass over a store holding
// `finished` finished tasks and ten live ones.
func idlePassCost(b *testing.B, finished int) time.Duration {
	b.Helper()
	h := newHarness(b)
	ctx := context.Background()
	if finished > 0 {
		insertFinishedTasks(b, h.store, finished)
	}
	blocker := h.createTask("blocker") // never runs: keeps the others waiting
	for range 10 {
		h.createTask("waiting", func(t *models.Task) { t.Spec.DependsOn = []string{blocker.ID} })
	}
	r := &taskReconciler{s: h.s}
	pass := func() time.Duration {
		start := time.Now()
		ids, err := h.store.ListLiveTaskIDs(ctx)
		if err != nil {
			b.Fatal(err)
		}
		for _, id := range ids {
			if id == blocker.ID {
				continue
			}
			if _, err := r.Reconcile(ctx, reconciler.Request{Key: id}); err != nil {
				b.Fatal(err)
			}
		}
		return time.Since(start)
	}
	pass() // the waiting tasks record why they wait; later passes write nothing
	var samples []time.Duration
	for range 21 {
		samples = append(samples, pass())
	}
	slices.Sort(samples)
	return samples[len(samples)/2]
}

// insertFinishedTasks writes n finished tasks in one transaction.
func insertFinishedTasks(b *testing.B, store *models.Store, n int) {
	b.Helper()
	now := time.Now().UTC()
	const batch = 500
	rows := make([]models.Task, 0, batch)
	flush := func() {
		if err := store.DB().CreateInBatches(rows, batch).Error; err != nil {
			b.Fatalf("insert history: %v", err)
		}
		rows = rows[:0]
	}
	for i := range n {
		end := now.Add(-time.Duration(n-i) * time.Second)
		t := models.Task{ID: models.NewTaskID(), Generation: 1, ResourceVersion: 3, StartTime: end, CreatedAt: end, UpdatedAt: end}
		t.Spec = models.TaskSpec{Prompt: "history", WorkFolder: "/repo", Agent: "shell", Priority: models.PriorityMedium,
			PriorityRank: 1, DesiredState: models.TaskDesiredRun, DesiredRuns: 1}
		t.Status = models.TaskStatus{Phase: models.TaskPhaseSucceeded, State: models.TaskStateCompleted, Finished: true,
			RunNumber: 1, EndTime: &end, ObservedGeneration: 1, Reason: ReasonNoChanges, Message: "no changes"}
		rows = append(rows, t)
		if len(rows) == batch {
			flush()
		}
	}
	if len(rows) > 0 {
		flush()
	}
}
