package e2e

// Ten tasks on one repository at once, through the real binary over MCP:
// the disjoint changes all apply, the overlapping ones are marked conflict
// (with the file named) by the diff controller before anyone tries to apply
// them, and the target repository is never left half-applied.

import (
	"context"
	"encoding/json"
	"fmt"
	"io/fs"
	"maps"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	sdk "github.com/modelcontextprotocol/go-sdk/mcp"

	"github.com/claude-parallel/claude-parallel/mcp/service"
	"github.com/claude-parallel/claude-parallel/test/testutil"
)

// pdTree is a work tree as path → content; a path absent is a file absent.
type pdTree map[string]string

// pdTask is one task of the test: its shell script and the effect the script
// has on the tree, so the test knows exactly what every apply must leave.
type pdTask struct {
	name   string
	script string
	effect func(pdTree)
	// touched are the paths the diff changes (both sides of a rename).
	touched []string

	taskID, diffID string
}

const pdSharedLines = 40

// pdSetLine replaces line n (1-based) of the file at p.
func pdSetLine(p string, n int, text string) func(pdTree) {
	return func(tr pdTree) { tr[p] = testutil.ReplaceLine(tr[p], n, text) }
}

func pdBaseTree() pdTree {
	return pdTree{
		"README.md":    "demo\n",
		"shared.txt":   testutil.Lines("shared line", pdSharedLines),
		"mod.txt":      testutil.Lines("mod line", 5),
		"gone.txt":     "this file will be deleted\n",
		"old-name.txt": testutil.Lines("content that moves to a new name, line", 8),
	}
}

func pdTasks() (disjoint, overlapping []*pdTask) {
	disjoint = []*pdTask{
		{name: "new file", script: `printf 'one\n' > new-1.txt`,
			effect: func(tr pdTree) { tr["new-1.txt"] = "one\n" }, touched: []string{"new-1.txt"}},
		{name: "edit a file", script: `sed -i '3s/.*/mod line 3, edited/' mod.txt`,
			effect: pdSetLine("mod.txt", 3, "mod line 3, edited"), touched: []string{"mod.txt"}},
		{name: "delete a file", script: `rm gone.txt`,
			effect: func(tr pdTree) { delete(tr, "gone.txt") }, touched: []string{"gone.txt"}},
		{name: "two files in a new folder", script: `mkdir -p pkg/d4 && printf 'package d4\n' > pkg/d4/a.go && printf 'package d4\n\nconst B = 2\n' > pkg/d4/b.go`,
			effect: func(tr pdTree) {
				tr["pkg/d4/a.go"] = "package d4\n"
				tr["pkg/d4/b.go"] = "package d4\n\nconst B = 2\n"
			}, touched: []string{"pkg/d4/a.go", "pkg/d4/b.go"}},
		{name: "append and add docs", script: `printf 'more docs\n' >> README.md && mkdir docs && printf '# D5\n' > docs/d5.md`,
			effect: func(tr pdTree) {
				tr["README.md"] += "more docs\n"
				tr["docs/d5.md"] = "# D5\n"
			}, touched: []string{"README.md", "docs/d5.md"}},
		{name: "rename", script: `mv old-name.txt new-name.txt`,
			effect: func(tr pdTree) {
				tr["new-name.txt"] = tr["old-name.txt"]
				delete(tr, "old-name.txt")
			}, touched: []string{"new-name.txt", "old-name.txt"}},
	}
	// Two groups on shared.txt, far enough apart to be separate hunks: X1
	// and X2 change line 5, Y1 and Y2 line 35. Y2 also adds a file of its
	// own, which must not reach the target when Y2 conflicts.
	overlapping = []*pdTask{
		{name: "X1", script: `sed -i '5s/.*/shared line 5, by X1/' shared.txt`,
			effect: pdSetLine("shared.txt", 5, "shared line 5, by X1"), touched: []string{"shared.txt"}},
		{name: "X2", script: `sed -i '5s/.*/shared line 5, by X2/' shared.txt`,
			effect: pdSetLine("shared.txt", 5, "shared line 5, by X2"), touched: []string{"shared.txt"}},
		{name: "Y1", script: `sed -i '35s/.*/shared line 35, by Y1/' shared.txt`,
			effect: pdSetLine("shared.txt", 35, "shared line 35, by Y1"), touched: []string{"shared.txt"}},
		{name: "Y2", script: `sed -i '35s/.*/shared line 35, by Y2/' shared.txt && printf 'extra\n' > y2-extra.txt`,
			effect: func(tr pdTree) {
				pdSetLine("shared.txt", 35, "shared line 35, by Y2")(tr)
				tr["y2-extra.txt"] = "extra\n"
			}, touched: []string{"shared.txt", "y2-extra.txt"}},
	}
	return disjoint, overlapping
}

// pdServe starts `claude-parallel --config FILE serve` over stdio.
func pdServe(t *testing.T, fi *flowInstall) *flowServer {
	t.Helper()
	cmd := exec.Command(flowBinary(t), "--config", fi.config, "serve")
	cmd.Env = fi.env
	stderr := &testutil.LockedBuffer{}
	cmd.Stderr = stderr
	cs, err := flowClient().Connect(t.Context(), &sdk.CommandTransport{Command: cmd}, nil)
	if err != nil {
		t.Fatalf("connect stdio: %v\n%s", err, stderr)
	}
	t.Cleanup(func() { _ = cs.Close() })
	return &flowServer{cs: cs, cmd: cmd, stderr: stderr}
}

// pdReadTree reads every file of the work tree except .git.
func pdReadTree(t *testing.T, root string) pdTree {
	t.Helper()
	tr := pdTree{}
	err := filepath.WalkDir(root, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(root, p)
		if d.IsDir() {
			if rel == ".git" {
				return filepath.SkipDir
			}
			return nil
		}
		b, err := os.ReadFile(p)
		if err != nil {
			return err
		}
		tr[filepath.ToSlash(rel)] = string(b)
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return tr
}

// pdPorcelain is what `git status --porcelain --untracked-files=all` must
// print for a working tree that went from base to want without touching the
// index (worktree mode never stages anything).
func pdPorcelain(base, want pdTree) []string {
	var out []string
	for _, p := range slices.Sorted(maps.Keys(mergeKeys(base, want))) {
		b, inBase := base[p]
		w, inWant := want[p]
		switch {
		case inBase && !inWant:
			out = append(out, " D "+p)
		case !inBase && inWant:
			out = append(out, "?? "+p)
		case b != w:
			out = append(out, " M "+p)
		}
	}
	slices.Sort(out)
	return out
}

func mergeKeys(a, b pdTree) map[string]bool {
	m := map[string]bool{}
	for k := range a {
		m[k] = true
	}
	for k := range b {
		m[k] = true
	}
	return m
}

// pdCheckTarget asserts the repository holds exactly want: every file's
// content, nothing else (no .rej, no .orig, no stray file), git status
// naming exactly the changed files, and the history untouched.
func pdCheckTarget(t *testing.T, repo string, base, want pdTree, headWant, when string) {
	t.Helper()
	got := pdReadTree(t, repo)
	for _, p := range slices.Sorted(maps.Keys(mergeKeys(got, want))) {
		g, inGot := got[p]
		w, inWant := want[p]
		switch {
		case !inWant:
			t.Errorf("%s: unexpected file %s in the target:\n%s", when, p, g)
		case !inGot:
			t.Errorf("%s: file %s missing from the target", when, p)
		case g != w:
			t.Errorf("%s: %s =\n%s\nwant\n%s", when, p, g, w)
		}
	}
	status := strings.Split(testutil.Git(t, repo, "status", "--porcelain", "--untracked-files=all"), "\n")
	if len(status) == 1 && status[0] == "" {
		status = nil
	}
	slices.Sort(status)
	if wantStatus := pdPorcelain(base, want); !slices.Equal(status, wantStatus) {
		t.Errorf("%s: git status %q, want %q", when, status, wantStatus)
	}
	if head := testutil.Git(t, repo, "rev-parse", "HEAD"); head != headWant {
		t.Errorf("%s: HEAD moved to %s (was %s)", when, head, headWant)
	}
	if t.Failed() {
		t.FailNow()
	}
}

func (s *flowServer) pdDiff(t *testing.T, diffID string) *service.DiffView {
	t.Helper()
	var r service.ReviewResult
	s.call(t, "review_changes", map[string]any{"diffId": diffID, "showContent": false}, &r)
	if r.Diff == nil {
		t.Fatalf("review_changes %s: no diff", diffID)
	}
	return r.Diff
}

// pdAwaitStatus polls the diff until its status is want.
func (s *flowServer) pdAwaitStatus(t *testing.T, diffID, want string, timeout time.Duration) *service.DiffView {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for {
		d := s.pdDiff(t, diffID)
		if d.Status == want {
			return d
		}
		if time.Now().After(deadline) {
			t.Fatalf("diff %s is %s (%s: %s) after %v, want %s", diffID, d.Status, d.Reason, d.Message, timeout, want)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// pdTry calls a tool from any goroutine: it reports failure as an error
// instead of stopping the test.
func (s *flowServer) pdTry(name string, args map[string]any, out any) error {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	res, err := s.cs.CallTool(ctx, &sdk.CallToolParams{Name: name, Arguments: args})
	if err != nil {
		return fmt.Errorf("%s: %w", name, err)
	}
	if res.IsError {
		return fmt.Errorf("%s(%v): error result %s", name, args, testutil.ToolText(res))
	}
	b, _ := json.Marshal(res.StructuredContent)
	return json.Unmarshal(b, out)
}

func (s *flowServer) pdApply(t *testing.T, diffID string) service.ApplyResult {
	t.Helper()
	var res service.ApplyResult
	s.call(t, "apply_changes", map[string]any{"diffId": diffID}, &res)
	return res
}

func TestTenTasksOnOneRepository(t *testing.T) {
	fi := newFlowInstall(t)
	fi.writeConfig("max_parallel: 10\n")
	base := pdBaseTree()
	for p, c := range base {
		testutil.WriteFile(t, filepath.Join(fi.repo, p), c)
	}
	testutil.Git(t, fi.repo, "add", "-A")
	testutil.Git(t, fi.repo, "commit", "-q", "-m", "base for ten tasks")
	head := testutil.Git(t, fi.repo, "rev-parse", "HEAD")
	s := pdServe(t, fi)

	disjoint, overlapping := pdTasks()
	all := append(slices.Clone(disjoint), overlapping...)
	byID := map[string]*pdTask{}

	// All ten at once.
	start := time.Now()
	var wg sync.WaitGroup
	errs := make([]error, len(all))
	for i, task := range all {
		wg.Go(func() {
			var res service.TaskWorkerResult
			errs[i] = s.pdTry("task_worker", map[string]any{"task": task.script, "workFolder": fi.repo, "agent": "shell",
				"taskDescription": task.name}, &res)
			task.taskID = res.TaskID
		})
	}
	wg.Wait()
	ids := make([]string, 0, len(all))
	for i, task := range all {
		if errs[i] != nil || task.taskID == "" {
			t.Fatalf("task %q was not started: %v\n%s", task.name, errs[i], s.stderr)
		}
		ids = append(ids, task.taskID)
		byID[task.taskID] = task
	}
	deadline := time.Now().Add(2 * time.Minute)
	for {
		var w service.WaitResult
		s.call(t, "wait_for_tasks", map[string]any{"taskIds": ids, "timeoutSeconds": 30}, &w)
		if w.AllFinished {
			for _, v := range w.Tasks {
				task := byID[v.TaskID]
				if v.Status != "completed" || v.DiffID == "" {
					t.Fatalf("task %q (%s) ended %+v", task.name, v.TaskID, v)
				}
				task.diffID = v.DiffID
			}
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("tasks not finished: %+v\n%s", w.Tasks, s.stderr)
		}
	}
	t.Logf("ten tasks ran in %v", time.Since(start).Round(time.Millisecond))

	// Before anything is applied: every diff is pending and changes exactly
	// its task's files, every task is completed, and nothing reached the
	// repository.
	var ws service.WorkStatusResult
	s.call(t, "work_status", map[string]any{}, &ws)
	if ws.Counts["completed"] != int64(len(all)) || ws.Total != int64(len(all)) {
		t.Errorf("work_status counts %v (total %d), want %d completed", ws.Counts, ws.Total, len(all))
	}
	var pending service.ReviewResult
	s.call(t, "review_changes", map[string]any{"showContent": false}, &pending)
	if len(pending.Pending) != len(all) {
		t.Errorf("review_changes lists %d pending diffs, want %d", len(pending.Pending), len(all))
	}
	for _, task := range all {
		d := s.pdDiff(t, task.diffID)
		var touched []string
		for _, f := range d.Files {
			touched = append(touched, f.Path)
			if f.OldPath != "" && f.OldPath != f.Path {
				touched = append(touched, f.OldPath)
			}
		}
		slices.Sort(touched)
		if !slices.Equal(touched, task.touched) || d.Status != "pending" || d.TaskID != task.taskID {
			t.Errorf("diff of %q: status %s, files %q, want pending with %q", task.name, d.Status, touched, task.touched)
		}
	}
	pdCheckTarget(t, fi.repo, base, base, head, "before any apply")
	want := maps.Clone(base)

	// applyOne applies a diff that must apply and checks the repository.
	applyOne := func(task *pdTask) {
		t.Helper()
		res := s.pdApply(t, task.diffID)
		if res.Outcome != service.OutcomeApplied {
			t.Fatalf("apply %q: %+v", task.name, res)
		}
		task.effect(want)
		pdCheckTarget(t, fi.repo, base, want, head, "after applying "+task.name)
	}
	// conflictOne checks that the controller marked a diff conflict on its
	// own, naming the file, then that applying it is refused and leaves the
	// repository untouched.
	conflictOne := func(task *pdTask, with string, file string) {
		t.Helper()
		d := s.pdAwaitStatus(t, task.diffID, "conflict", 30*time.Second)
		if !slices.Contains(d.ConflictFiles, file) || slices.Contains(d.ConflictFiles, "y2-extra.txt") {
			t.Errorf("%q marked conflict after %s with files %q, want %s named (and only the overlapping files)",
				task.name, with, d.ConflictFiles, file)
		}
		if d.Desired != "pending" {
			t.Errorf("%q: desired %s before anyone asked to apply it", task.name, d.Desired)
		}
		res := s.pdApply(t, task.diffID)
		if res.Outcome != service.OutcomeConflict || !slices.Contains(res.ConflictFiles, file) {
			t.Errorf("apply %q after %s: %+v, want outcome conflict naming %s", task.name, with, res, file)
		}
		pdCheckTarget(t, fi.repo, base, want, head, "after trying to apply "+task.name)
	}
	// stillPending checks the diffs that do not overlap anything applied were
	// not marked conflict by the re-checks.
	stillPending := func(tasks ...*pdTask) {
		t.Helper()
		for _, task := range tasks {
			if d := s.pdDiff(t, task.diffID); d.Status != "pending" {
				t.Errorf("%q is %s (%s: %s, files %q), want pending", task.name, d.Status, d.Reason, d.Message, d.ConflictFiles)
			}
		}
	}

	x1, x2, y1, y2 := overlapping[0], overlapping[1], overlapping[2], overlapping[3]
	applyOne(x1)
	conflictOne(x2, "X1", "shared.txt")
	stillPending(append([]*pdTask{y1, y2}, disjoint...)...)

	// Y1 changes the same file as X1, lines away: it applies on top.
	applyOne(y1)
	conflictOne(y2, "Y1", "shared.txt")
	stillPending(disjoint...)

	// The disjoint ones: half one by one, the rest at once.
	for _, task := range disjoint[:3] {
		applyOne(task)
	}
	rest := disjoint[3:]
	results := make([]service.ApplyResult, len(rest))
	for i, task := range rest {
		wg.Go(func() { errs[i] = s.pdTry("apply_changes", map[string]any{"diffId": task.diffID}, &results[i]) })
	}
	wg.Wait()
	for i, task := range rest {
		if errs[i] != nil || results[i].Outcome != service.OutcomeApplied {
			t.Fatalf("concurrent apply %q: %+v %v", task.name, results[i], errs[i])
		}
		task.effect(want)
	}
	pdCheckTarget(t, fi.repo, base, want, head, "after the concurrent applies")

	// Final states: the two losers stay conflict, everything else applied.
	for _, task := range all {
		wantStatus := "applied"
		if task == x2 || task == y2 {
			wantStatus = "conflict"
		}
		if d := s.pdDiff(t, task.diffID); d.Status != wantStatus {
			t.Errorf("%q ended %s (%s), want %s", task.name, d.Status, d.Message, wantStatus)
		}
	}
}
