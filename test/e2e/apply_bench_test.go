package e2e

import (
	"fmt"
	"slices"
	"testing"
	"time"

	"github.com/claude-parallel/claude-parallel/mcp/service"
)

// BenchmarkApplyChanges is apply_changes and task_worker through the go-sdk
// client against the real binary over stdio: each round runs a task that
// adds a file, then applies its diff to the work folder and times the call
// (intent written, the diff controller's apply, the front end woken by the
// status write). task_worker is timed on the same rounds.
//
//	go test -run '^$' -bench ApplyChanges -benchtime 1x ./test/e2e/
func BenchmarkApplyChanges(b *testing.B) {
	const rounds = 12
	for range b.N {
		fi := newFlowInstall(b)
		s := fi.stdio()
		var apply, worker []time.Duration
		for i := range rounds {
			var started service.TaskWorkerResult
			t0 := time.Now()
			s.call(b, "task_worker", map[string]any{"task": fmt.Sprintf("echo %d > added-%d.txt", i, i), "workFolder": fi.repo, "agent": "shell"}, &started)
			worker = append(worker, time.Since(t0))
			w := s.waitTask(b, started.TaskID)
			if w.DiffID == "" {
				b.Fatalf("task %s made no diff: %+v", started.TaskID, w)
			}
			var res service.ApplyResult
			t0 = time.Now()
			s.call(b, "apply_changes", map[string]any{"diffId": w.DiffID}, &res)
			apply = append(apply, time.Since(t0))
			if res.Outcome != service.OutcomeApplied {
				b.Fatalf("apply: %+v", res)
			}
		}
		slices.Sort(apply)
		slices.Sort(worker)
		fmt.Printf("writes | apply_changes (real server, one added file) | median %s, min %s, max %s over %d applies\n",
			apply[len(apply)/2].Round(100*time.Microsecond), apply[0].Round(100*time.Microsecond), apply[len(apply)-1].Round(100*time.Microsecond), rounds)
		fmt.Printf("writes | task_worker (real server)                   | median %s, min %s, max %s over %d calls\n",
			worker[len(worker)/2].Round(100*time.Microsecond), worker[0].Round(100*time.Microsecond), worker[len(worker)-1].Round(100*time.Microsecond), rounds)
		b.ReportMetric(float64(apply[len(apply)/2])/float64(time.Millisecond), "apply-ms")
		b.ReportMetric(float64(worker[len(worker)/2])/float64(time.Millisecond), "task_worker-ms")
	}
}
