package e2e

import (
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/claude-parallel/claude-parallel/mcp/service"
	"github.com/claude-parallel/claude-parallel/test/testutil"
)

// The lifecycle rules the front end and the controllers share, through the
// real server, the real Docker engine and a real repository:
//   - an apply that meets a conflict ends that request: once the user undoes
//     the clashing edit the diff is re-checked (pending) but never applied
//     by itself; a new apply_changes applies it;
//   - a task whose dependency failed is finished, so waiting for it returns;
//   - request_revision on the diff of a failed run runs.
func TestMCPFlow_LifecycleRules(t *testing.T) {
	fi := newFlowInstall(t)
	s := pdServe(t, fi)
	readme := filepath.Join(fi.repo, "README.md")

	t.Run("conflict ends the apply request", func(t *testing.T) {
		done := s.runTask(t, fi, "echo agent > README.md")
		if done.Status != "completed" || done.DiffID == "" {
			t.Fatalf("task: %+v", done)
		}
		testutil.WriteFile(t, readme, "the user's edit\n")
		res := s.pdApply(t, done.DiffID)
		if res.Outcome != service.OutcomeConflict || !strings.Contains(res.Message, "NOT applied") {
			t.Fatalf("apply over the user's edit: %+v, want conflict", res)
		}
		// The user discards the edit; the target watch re-checks the diff
		// (it now applies) and must not apply it.
		testutil.Git(t, fi.repo, "checkout", "--", "README.md")
		d := s.pdAwaitStatus(t, done.DiffID, "pending", 60*time.Second)
		if d.Desired != "pending" {
			t.Errorf("after the conflict: desired %s, want pending (waiting for a decision)", d.Desired)
		}
		if got := flowReadFile(t, readme); got != "demo\n" {
			t.Fatalf("README.md is %q: the diff was applied with no new request", got)
		}
		again := s.pdApply(t, done.DiffID)
		if again.Outcome != service.OutcomeApplied || flowReadFile(t, readme) != "agent\n" {
			t.Fatalf("a new apply request: %+v, README %q", again, flowReadFile(t, readme))
		}
		testutil.Git(t, fi.repo, "checkout", "--", "README.md")
	})

	t.Run("failed dependency and revision of a failed run", func(t *testing.T) {
		failed := s.runTask(t, fi, "echo half > half.txt; exit 3")
		if failed.Status != "failed" || failed.DiffID == "" {
			t.Fatalf("failing task: %+v, want failed with a diff", failed)
		}
		var dep service.TaskWorkerResult
		s.call(t, "task_worker", map[string]any{"task": "echo never", "workFolder": fi.repo, "agent": "shell",
			"dependsOn": []string{failed.TaskID}}, &dep)
		// waitTask fails the test if the wait never ends (it used to hang).
		w := s.waitTask(t, dep.TaskID)
		if w.Status != "failed" || w.Reason != "DependencyFailed" || !w.Finished {
			t.Errorf("dependent task: %+v, want finished, failed with DependencyFailed", w)
		}

		var rev service.FollowUpResult
		s.call(t, "request_revision", map[string]any{"diffId": failed.DiffID, "feedback": "echo done > done.txt"}, &rev)
		if rev.Run != 2 {
			t.Fatalf("revision: %+v", rev)
		}
		second := s.waitTask(t, failed.TaskID)
		if second.Status != "completed" || second.DiffID == "" || second.DiffID == failed.DiffID {
			t.Fatalf("revision of the failed run: %+v, want run 2 completed with a new diff", second)
		}
		var review service.ReviewResult
		s.call(t, "review_changes", map[string]any{"diffId": second.DiffID, "showContent": false}, &review)
		if review.Diff == nil || review.Diff.RunNumber != 2 || review.Diff.FilesChanged != 2 {
			t.Errorf("run 2's diff: %+v, want half.txt and done.txt", review.Diff)
		}
	})
}
