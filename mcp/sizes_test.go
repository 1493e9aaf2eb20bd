package mcp

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/claude-parallel/claude-parallel/mcp/service"
	"github.com/claude-parallel/claude-parallel/models"
)

// Claude Code replaces a tool result above 25,000 tokens with an error, so
// every default result must stay well below: this many characters for the
// whole serialized CallToolResult (text and structured content).
const maxResultChars = 60_000

// sized calls a tool that must succeed, checks the size of its whole
// result and decodes its structured content.
func sized[T any](t *testing.T, e *testEnv, name string, args map[string]any) T {
	t.Helper()
	res := e.call(name, args)
	if res.IsError {
		t.Fatalf("%s(%v): %s", name, args, resultText(res))
	}
	b, err := json.Marshal(res)
	if err != nil {
		t.Fatal(err)
	}
	if len(b) > maxResultChars {
		t.Fatalf("%s(%v): result of %d characters, bound %d", name, args, len(b), maxResultChars)
	}
	var out T
	sc, _ := json.Marshal(res.StructuredContent)
	if err := json.Unmarshal(sc, &out); err != nil {
		t.Fatal(err)
	}
	return out
}

// nextArgs returns the arguments of the first suggested call of tool
// that has the argument arg, nil when there is none.
func nextArgs(next []service.NextCall, tool, arg string) map[string]any {
	for _, n := range next {
		if _, ok := n.Args[arg]; ok && n.Tool == tool {
			out := map[string]any{}
			for k, v := range n.Args {
				out[k] = v
			}
			return out
		}
	}
	return nil
}

// suggests reports whether a suggested call names id, in its arguments or
// in why it is suggested.
func suggests(next []service.NextCall, id string) bool {
	for _, n := range next {
		b, _ := json.Marshal(n)
		if strings.Contains(string(b), id) {
			return true
		}
	}
	return false
}

// seedDiff gives a new task a finished run whose diff has this patch.
func seedDiff(t *testing.T, e *testEnv, patch string, files []string) *models.Diff {
	t.Helper()
	task := e.startTask(nil)
	e.finishRun(task.TaskID, 1, models.TaskPhaseSucceeded)
	d := &models.Diff{TaskID: task.TaskID, RunNumber: 1, BaseCommit: "abc", ResultCommit: "def",
		FilesChanged: len(files), Patch: []byte(patch)}
	for _, f := range files {
		d.Files = append(d.Files, models.DiffFile{Path: f, Status: models.FileAdded, Additions: 1})
	}
	ctx := context.Background()
	d, _, err := e.store.CreateDiff(ctx, d)
	if err != nil {
		t.Fatal(err)
	}
	tk, err := e.store.GetTask(ctx, task.TaskID)
	if err != nil {
		t.Fatal(err)
	}
	tk.Status.DiffID = d.ID
	if err := e.store.UpdateTaskStatus(ctx, tk); err != nil {
		t.Fatal(err)
	}
	return d
}

// bigPatch is a patch of files, each with lines of text that JSON escapes
// (quotes, tabs, <, >, &) up to about size bytes.
func bigPatch(files []string, size int) string {
	var b strings.Builder
	for i, f := range files {
		fmt.Fprintf(&b, "diff --git a/%s b/%s\nnew file mode 100644\n--- /dev/null\n+++ b/%s\n@@ -0,0 +1,99 @@\n", f, f, f)
		for n := 0; b.Len() < size*(i+1)/len(files); n++ {
			fmt.Fprintf(&b, "+\tif a < b && c > \"d\" { return %d } // ü line %d of %s\n", n, n, f)
		}
	}
	return b.String()
}

// readPatch follows review_changes's suggested calls from args on and
// returns the patch parts put together.
func readPatch(t *testing.T, e *testEnv, args map[string]any) string {
	t.Helper()
	var got strings.Builder
	for calls := 0; args != nil; calls++ {
		if calls > 1000 {
			t.Fatal("the hints do not end")
		}
		res := sized[service.ReviewResult](t, e, "review_changes", args)
		got.WriteString(res.Diff.Patch)
		args = nextArgs(res.Next, "review_changes", "offset")
		if res.Diff.PatchTruncated && args == nil {
			t.Fatalf("patch cut without a call for the rest: %+v", args)
		}
	}
	return got.String()
}

func TestReviewChanges_LargeDiffPagesWithinBound(t *testing.T) {
	e := newTestEnv(t)
	files := []string{"a.go", "b/c.go", "d.txt"}
	patch := bigPatch(files, 600<<10)
	d := seedDiff(t, e, patch, files)

	first := sized[service.ReviewResult](t, e, "review_changes", map[string]any{"diffId": d.ID})
	if !first.Diff.PatchTruncated || nextArgs(first.Next, "review_changes", "offset") == nil {
		t.Fatalf("a 600 KB patch, not cut or no call for the rest: truncated %t, next %+v", first.Diff.PatchTruncated, first.Next)
	}
	if got := readPatch(t, e, map[string]any{"diffId": d.ID}); got != patch {
		t.Fatalf("paged patch: %d bytes, want the %d of the patch", len(got), len(patch))
	}
	// By task id too, and one file at a time.
	if got := readPatch(t, e, map[string]any{"taskId": d.TaskID}); got != patch {
		t.Fatalf("paged patch by task: %d bytes, want %d", len(got), len(patch))
	}
	var all strings.Builder
	for _, f := range files {
		all.WriteString(readPatch(t, e, map[string]any{"diffId": d.ID, "file": f}))
	}
	if all.String() != patch {
		t.Fatalf("file by file: %d bytes, want %d", all.Len(), len(patch))
	}
	if msg := e.fails("review_changes", map[string]any{"diffId": d.ID, "file": "nope.go"}); !strings.Contains(msg, "nope.go") {
		t.Fatalf("unknown file: %s", msg)
	}
}

func TestReviewChanges_HundredFilesPerFile(t *testing.T) {
	e := newTestEnv(t)
	var files []string
	for i := range 100 {
		files = append(files, fmt.Sprintf("pkg%02d/file_%d.go", i/10, i))
	}
	patch := bigPatch(files, 300<<10)
	d := seedDiff(t, e, patch, files)
	first := sized[service.ReviewResult](t, e, "review_changes", map[string]any{"diffId": d.ID, "format": "detailed"})
	if len(first.Diff.Files) != 100 || nextArgs(first.Next, "review_changes", "offset") == nil {
		t.Fatalf("%d files listed, next %+v", len(first.Diff.Files), first.Next)
	}
	var all strings.Builder
	for _, f := range first.Diff.Files {
		all.WriteString(readPatch(t, e, map[string]any{"diffId": d.ID, "file": f.Path}))
	}
	if all.String() != patch {
		t.Fatalf("file by file: %d bytes, want %d", all.Len(), len(patch))
	}
}

func TestReviewChanges_TwoHundredPendingPagesWithinBound(t *testing.T) {
	e := newTestEnv(t)
	want := map[string]bool{}
	for i := range 200 {
		f := fmt.Sprintf("f%d.go", i)
		want[seedDiff(t, e, bigPatch([]string{f}, 3<<10), []string{f}).ID] = true
	}
	for _, format := range []string{"summary", "detailed"} {
		seen := map[string]int{}
		args := map[string]any{"format": format}
		for calls := 0; args != nil; calls++ {
			if calls > 200 {
				t.Fatal("the hints do not end")
			}
			res := sized[service.ReviewResult](t, e, "review_changes", args)
			for _, v := range res.Pending {
				seen[v.DiffID]++
				if format == "detailed" && (v.Patch == "" || v.PatchTruncated) && !suggests(res.Next, v.DiffID) {
					t.Fatalf("patch of %s left out without a call for it: %+v", v.DiffID, res.Next)
				}
			}
			args = nextArgs(res.Next, "review_changes", "cursor")
			if res.NextCursor != "" && (args == nil || args["cursor"] != res.NextCursor) {
				t.Fatalf("a next page without a call for it: %+v", res.Next)
			}
			if args != nil {
				args["format"] = format
			}
		}
		if len(seen) != len(want) {
			t.Fatalf("%s: paged %d diffs, want %d", format, len(seen), len(want))
		}
		for id, n := range seen {
			if n != 1 || !want[id] {
				t.Fatalf("%s: diff %s seen %d times (seeded %t)", format, id, n, want[id])
			}
		}
	}
}

func TestViewContainerLogs_LongLogPagesWithinBound(t *testing.T) {
	e := newTestEnv(t)
	task := e.startTask(nil)
	e.finishRun(task.TaskID, 1, models.TaskPhaseSucceeded)
	var want []string
	var file strings.Builder
	for i := range 20_000 {
		line := fmt.Sprintf("step %d: compiling <pkg/%d> \"ok\"\t&done", i, i%97)
		want = append(want, line)
		fmt.Fprintf(&file, "2026-01-01T00:00:%02d.000000000Z %s\n", i%60, line)
	}
	logPath := filepath.Join(e.cfg.Paths().TaskLogDir, task.TaskID, "run-1.log")
	if err := os.MkdirAll(filepath.Dir(logPath), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(logPath, []byte(file.String()), 0o600); err != nil {
		t.Fatal(err)
	}

	// Backwards from the default view, then forwards from the first line.
	for _, dir := range []string{"beforeLine", "fromLine"} {
		args := map[string]any{"identifier": task.TaskID}
		if dir == "fromLine" {
			args["fromLine"] = 1
		}
		var got []string
		for calls := 0; args != nil; calls++ {
			if calls > 1000 {
				t.Fatal("the hints do not end")
			}
			res := sized[service.LogsResult](t, e, "view_container_logs", args)
			if calls == 0 && dir == "beforeLine" && (len(res.Lines) == 0 || len(res.Next) == 0) {
				t.Fatalf("default view: %d lines, next %+v", len(res.Lines), res.Next)
			}
			if dir == "beforeLine" {
				got = append(append([]string{}, res.Lines...), got...)
			} else {
				got = append(got, res.Lines...)
			}
			args = nextArgs(res.Next, "view_container_logs", dir)
		}
		if strings.Join(got, "\n") != strings.Join(want, "\n") {
			t.Fatalf("%s: paged %d lines, want the %d of the log", dir, len(got), len(want))
		}
	}
}
