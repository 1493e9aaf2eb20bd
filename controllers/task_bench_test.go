package controllers

import (
	"context"
	"fmt"
	"slices"
	"testing"
	"time"

	"go.uber.org/zap"

	"github.com/claude-parallel/claude-parallel/models"
	"github.com/claude-parallel/claude-parallel/reconciler"
)

// BenchmarkIdleReconcile measures one resync pass of the task controller
// — list the live tasks, reconcile each — with ten live tasks waiting for a
// dependency, over stores holding no history, 1,000 and 100,000 finished
// tasks. The pass must not grow with history: the live-task query reads a
// partial index the size of the live set. The three stores' passes are
// measured in interleaved rounds, so drift in machine load hits all alike.
//
//	go test -run '^$' -bench IdleReconcile -benchtime 1x ./controllers/
func BenchmarkIdleReconcile(b *testing.B) {
	sizes := []int{0, 1_000, 100_000}
	for range b.N {
		passes := make([]func() time.Duration, len(sizes))
		for i, n := range sizes {
			passes[i] = idlePass(b, n)
			passes[i]() // the waiting tasks record why they wait; later passes write nothing
		}
		samples := make([][]time.Duration, len(sizes))
		for range 21 {
			for i, pass := range passes {
				samples[i] = append(samples[i], pass())
			}
		}
		med := make([]time.Duration, len(sizes))
		for i := range sizes {
			slices.Sort(samples[i])
			med[i] = samples[i][len(samples[i])/2]
		}
		ratio := float64(med[2]) / float64(med[1])
		fmt.Printf("reconcile | idle task resync pass (10 live tasks) | %v with no history | %v with 1,000 finished tasks | "+
			"%v with 100,000 | ratio 100k/1k %.2f (target: does not grow with history)\n",
			med[0].Round(time.Microsecond), med[1].Round(time.Microsecond), med[2].Round(time.Microsecond), ratio)
		b.ReportMetric(float64(med[0].Microseconds()), "µs/pass-0-history")
		b.ReportMetric(float64(med[1].Microseconds()), "µs/pass-1k-history")
		b.ReportMetric(float64(med[2].Microseconds()), "µs/pass-100k-history")
		b.ReportMetric(ratio, "ratio-100k/1k")
	}
}

// idlePass returns one resync pass over a store holding `finished` finished
// tasks and ten live ones, which wait for an eleventh that never runs.
func idlePass(b *testing.B, finished int) func() time.Duration {
	b.Helper()
	h := newHarness(b)
	h.s.log = zap.NewNop() // the benchmark prints its figures; nothing else
	ctx := context.Background()
	if finished > 0 {
		insertFinishedTasks(b, h.store, finished)
	}
	blocker := h.createTask("blocker") // never runs: keeps the others waiting
	for range 10 {
		h.createTask("waiting", func(t *models.Task) { t.Spec.DependsOn = []string{blocker.ID} })
	}
	r := &taskReconciler{deps: h.s.tasks}
	return func() time.Duration {
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
