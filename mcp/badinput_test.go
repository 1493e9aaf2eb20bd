package mcp

import (
	"context"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/claude-parallel/claude-parallel/mcp/service"
	"github.com/claude-parallel/claude-parallel/models"
)

// badCase is one call that must be answered with an error result whose
// message names arg.
type badCase struct {
	name string
	tool string
	args any // map[string]any, or a raw JSON string
	arg  string
}

// badFixture is what the bad calls point at: folders around the allowed
// root, and an existing task with a pending diff whose spec must not move.
type badFixture struct {
	sibling, outside, escape, notGit, file, missing, dotdot, trap string
	taskID, diffID                                                string
}

func newBadFixture(t *testing.T, e *testEnv) badFixture {
	f := badFixture{
		// A sibling whose name extends the root's: /…/work2 is not in /…/work.
		sibling: e.root + "2/repo",
		outside: filepath.Join(e.dir, "outside", "repo"),
		escape:  filepath.Join(e.root, "escape"),
		notGit:  filepath.Join(e.root, "plain"),
		file:    filepath.Join(e.repo, "README.md"),
		missing: filepath.Join(e.root, "missing"),
		dotdot:  e.root + "/repo/../../outside/repo",
		trap:    filepath.Join(e.dir, "trap"),
	}
	gitInit(t, f.sibling)
	gitInit(t, f.outside)
	if err := os.Symlink(f.outside, f.escape); err != nil {
		t.Fatal(err)
	}
	if err := os.MkdirAll(f.notGit, 0o755); err != nil {
		t.Fatal(err)
	}
	a := e.startTask(nil)
	d := e.finishRun(a.TaskID, 1, models.TaskPhaseSucceeded, "out.txt")
	f.taskID, f.diffID = a.TaskID, d.ID
	return f
}

// pathCases are folder values every path argument must refuse.
func (f badFixture) pathCases(e *testEnv) map[string]any {
	return map[string]any{
		"relative":            "work/repo",
		"dot relative":        "./repo",
		"tilde":               "~/repo",
		"dotdot":              f.dotdot,
		"dotdot inside":       e.repo + "/../repo",
		"symlink out":         f.escape,
		"sibling prefix":      f.sibling,
		"outside":             f.outside,
		"not git":             f.notGit,
		"file":                f.file,
		"missing":             f.missing,
		"root itself not git": e.root,
		"filesystem root":     "/",
		"empty":               "",
		"blank":               "   ",
		"newline":             e.repo + "\n",
		"nul":                 e.repo + "\x00x",
		"control":             e.repo + "\x1b[31m",
		"huge":                "/" + strings.Repeat("a", service.MaxPathChars+1),
		"option-like":         "--upload-pack=/tmp/x",
		"number":              42,
		"bool":                true,
		"array":               []string{e.repo},
		"object":              map[string]any{"path": e.repo},
	}
}

var badTaskIDs = map[string]any{
	"empty":          "",
	"short":          "task-123",
	"upper":          "task-0123456789AB",
	"no prefix":      "0123456789ab",
	"diff prefix":    "diff-0123456789ab",
	"path traversal": "../../etc/passwd",
	"trailing nl":    "task-0123456789ab\n",
	"long":           "task-" + strings.Repeat("0", 100),
	"unknown":        "task-000000000000",
	"number":         7,
	"array":          []string{"task-000000000000"},
	"null byte":      "task-0123456789a\x00",
}

var badDiffIDs = map[string]any{
	"empty":          "",
	"short":          "diff-1",
	"upper":          "diff-0123456789AB",
	"task prefix":    "task-0123456789ab",
	"path traversal": "../diff-0123456789ab",
	"unknown":        "diff-000000000000",
	"number":         1,
	"object":         map[string]any{},
	"option":         "--diff=x",
}

func badRefs(trap string) map[string]any {
	return map[string]any{
		"option output": "--output=" + trap,
		"dash":          "-x",
		"dotdot":        "main..HEAD",
		"reflog":        "main@{1}",
		"space":         "ma in",
		"control":       "main\x01",
		"tilde":         "HEAD~1",
		"caret":         "HEAD^",
		"colon":         "HEAD:README.md",
		"glob":          "ma*n",
		"leading slash": "/main",
		"trailing":      "main/",
		"double slash":  "a//b",
		"dot component": "a/.b",
		"lock":          "main.lock",
		"trailing dot":  "main.",
		"huge":          strings.Repeat("a", service.MaxRefChars+1),
		"unknown":       "no-such-branch",
		"number":        3,
	}
}

func (f badFixture) cases(e *testEnv) []badCase {
	var cs []badCase
	add := func(name, tool string, args any, arg string) {
		cs = append(cs, badCase{name: name, tool: tool, args: args, arg: arg})
	}
	base := func(kv ...any) map[string]any {
		m := map[string]any{"task": "echo", "workFolder": e.repo, "agent": "shell"}
		for i := 0; i+1 < len(kv); i += 2 {
			if kv[i+1] == nil {
				delete(m, kv[i].(string))
				continue
			}
			m[kv[i].(string)] = kv[i+1]
		}
		return m
	}

	// Arguments that are not an object, unknown names, missing required ones.
	for _, tool := range []string{"task_worker", "work_status", "review_changes", "apply_changes", "reject_changes",
		"request_revision", "answer_worker_question", "cancel_task", "wait_for_tasks", "system_status",
		"view_container_logs", "list_container_logs"} {
		add("array arguments", tool, `[1,2]`, "arguments")
		add("string arguments", tool, `"hello"`, "arguments")
		add("unknown argument", tool, map[string]any{"bogusArgument": 1}, "bogusArgument")
	}
	for tool, required := range map[string][]string{
		"task_worker": {"task", "workFolder"}, "apply_changes": {"diffId"}, "reject_changes": {"diffId"},
		"request_revision": {"diffId", "feedback"}, "answer_worker_question": {"taskId", "answer"},
		"cancel_task": {"taskId"}, "wait_for_tasks": {"taskIds"}, "view_container_logs": {"identifier"},
	} {
		for _, arg := range required {
			add("missing "+arg, tool, map[string]any{}, arg)
			add("null "+arg, tool, map[string]any{arg: nil}, arg)
		}
	}

	// Paths.
	for name, v := range f.pathCases(e) {
		add("workFolder "+name, "task_worker", base("workFolder", v), "workFolder")
		if name != "empty" && name != "blank" { // an empty target means the task's folder
			add("targetWorkspace "+name, "apply_changes", map[string]any{"diffId": f.diffID, "targetWorkspace": v}, "targetWorkspace")
		}
	}

	// Ids.
	for name, v := range badTaskIDs {
		add("taskId "+name, "work_status", map[string]any{"taskId": v}, "taskId")
		add("taskId "+name, "cancel_task", map[string]any{"taskId": v}, "taskId")
		add("taskId "+name, "answer_worker_question", map[string]any{"taskId": v, "answer": "yes"}, "taskId")
		add("taskId "+name, "review_changes", map[string]any{"taskId": v}, "taskId")
		add("dependsOn "+name, "task_worker", base("dependsOn", []any{v}), "dependsOn[0]")
		add("taskIds "+name, "wait_for_tasks", map[string]any{"taskIds": []any{v}}, "taskIds[0]")
		if s, ok := v.(string); ok && s != "" {
			add("identifier "+name, "view_container_logs", map[string]any{"identifier": s}, "identifier")
		}
	}
	for name, v := range badDiffIDs {
		add("diffId "+name, "apply_changes", map[string]any{"diffId": v}, "diffId")
		add("diffId "+name, "reject_changes", map[string]any{"diffId": v}, "diffId")
		add("diffId "+name, "request_revision", map[string]any{"diffId": v, "feedback": "x"}, "diffId")
		add("diffId "+name, "review_changes", map[string]any{"diffId": v}, "diffId")
	}
	add("identifier unknown container id", "view_container_logs", map[string]any{"identifier": "ffffffffffff"}, "identifier")
	add("identifier unknown container name", "view_container_logs", map[string]any{"identifier": "claude-parallel-task-000000000000-r1"}, "identifier")
	add("identifier shell", "view_container_logs", map[string]any{"identifier": "$(rm -rf /)"}, "identifier")
	add("identifier huge", "view_container_logs", map[string]any{"identifier": strings.Repeat("a", service.MaxIdentifierChars+1)}, "identifier")

	// Refs.
	for name, v := range badRefs(f.trap) {
		add("baseRef "+name, "task_worker", base("baseRef", v), "baseRef")
	}

	// Enums.
	for _, c := range []struct{ tool, arg string }{
		{"task_worker", "returnMode"}, {"task_worker", "priority"}, {"work_status", "status"},
		{"review_changes", "format"}, {"apply_changes", "mode"}, {"list_container_logs", "sortBy"},
	} {
		for name, v := range map[string]any{"unknown": "bogus", "case": "HIGH", "empty": "", "number": 1, "option": "--all"} {
			args := map[string]any{c.arg: v}
			switch c.tool {
			case "task_worker":
				args = base(c.arg, v)
			case "apply_changes":
				args["diffId"] = f.diffID
			}
			add(c.arg+" "+name, c.tool, args, c.arg)
		}
	}

	// Numbers and booleans.
	for name, v := range map[string]any{"negative": -1, "zero": 0, "huge": 1e12, "fraction": 2.5, "string": "10", "bool": true, "overflow": `1e400`} {
		if name == "overflow" {
			add("limit overflow", "work_status", `{"limit": 1e400}`, "limit")
			add("tail overflow", "view_container_logs", `{"identifier": "`+f.taskID+`", "tail": 1e400}`, "tail")
			add("timeoutSeconds overflow", "wait_for_tasks", `{"taskIds": ["`+f.taskID+`"], "timeoutSeconds": 1e400}`, "timeoutSeconds")
			continue
		}
		add("limit "+name, "work_status", map[string]any{"limit": v}, "limit")
		add("limit "+name, "list_container_logs", map[string]any{"limit": v}, "limit")
		if name != "zero" {
			add("tail "+name, "view_container_logs", map[string]any{"identifier": f.taskID, "tail": v}, "tail")
			add("timeoutSeconds "+name, "wait_for_tasks", map[string]any{"taskIds": []string{f.taskID}, "timeoutSeconds": v}, "timeoutSeconds")
		}
	}
	for tool, arg := range map[string]string{"task_worker": "includeUncommitted", "review_changes": "showContent",
		"apply_changes": "confirm", "request_revision": "preserveCorrectParts"} {
		for name, v := range map[string]any{"string": "yes", "number": 1, "array": []bool{true}} {
			args := map[string]any{arg: v, "diffId": f.diffID, "feedback": "x"}
			switch tool {
			case "task_worker":
				args = base(arg, v)
			case "review_changes":
				args = map[string]any{arg: v}
			case "apply_changes":
				delete(args, "feedback")
			}
			add(arg+" "+name, tool, args, arg)
		}
	}

	// Resource requests.
	for name, v := range map[string]any{"word": "lots", "above ceiling": "64g", "below minimum": "1k", "negative": -1,
		"fraction bytes": 1.5, "bool": true, "empty": ""} {
		add("memory "+name, "task_worker", base("containerConfig", map[string]any{"memory": v}), "containerConfig.memory")
	}
	for name, v := range map[string]any{"zero": 0, "negative": -1, "above ceiling": 100, "word": "abc", "inf": "inf", "bool": false} {
		add("cpus "+name, "task_worker", base("containerConfig", map[string]any{"cpus": v}), "containerConfig.cpus")
	}
	for name, v := range map[string]any{"ms too short": 5000, "above max": "1000h", "word": "soon", "negative": -5, "bool": true, "seconds unit mistake": 600} {
		add("timeout "+name, "task_worker", base("containerConfig", map[string]any{"timeout": v}), "containerConfig.timeout")
	}
	add("containerConfig unknown key", "task_worker", base("containerConfig", map[string]any{"image": "alpine"}), "containerConfig.image")
	add("containerConfig privileged", "task_worker", base("containerConfig", map[string]any{"privileged": true}), "containerConfig.privileged")
	add("containerConfig not object", "task_worker", base("containerConfig", "2g"), "containerConfig")

	// Text lengths and content.
	add("task huge", "task_worker", base("task", strings.Repeat("x", service.MaxPromptChars+1)), "task")
	add("task empty", "task_worker", base("task", ""), "task")
	add("task blank", "task_worker", base("task", " \n\t "), "task")
	add("task nul", "task_worker", base("task", "echo \x00"), "task")
	add("task number", "task_worker", base("task", 12), "task")
	add("taskDescription huge", "task_worker", base("taskDescription", strings.Repeat("d", service.MaxDescriptionChars+1)), "taskDescription")
	add("parentTaskId huge", "task_worker", base("parentTaskId", strings.Repeat("p", service.MaxParentIDChars+1)), "parentTaskId")
	add("parentTaskId newline", "task_worker", base("parentTaskId", "a\nb"), "parentTaskId")
	add("parentTaskId object", "task_worker", base("parentTaskId", map[string]any{}), "parentTaskId")
	add("agent unknown", "task_worker", base("agent", "root-shell"), "agent")
	add("agent huge", "task_worker", base("agent", strings.Repeat("a", service.MaxAgentChars+1)), "agent")
	add("agent option", "task_worker", base("agent", "--privileged"), "agent")
	add("dependsOn not array", "task_worker", base("dependsOn", f.taskID), "dependsOn")
	add("dependsOn too many", "task_worker", base("dependsOn", slices.Repeat([]string{f.taskID}, service.MaxDependsOn+1)), "dependsOn")
	add("taskIds empty", "wait_for_tasks", map[string]any{"taskIds": []string{}}, "taskIds")
	add("taskIds too many", "wait_for_tasks", map[string]any{"taskIds": slices.Repeat([]string{f.taskID}, service.MaxWaitTasks+1)}, "taskIds")
	add("taskIds string", "wait_for_tasks", map[string]any{"taskIds": f.taskID}, "taskIds")
	add("feedback huge", "request_revision", map[string]any{"diffId": f.diffID, "feedback": strings.Repeat("f", service.MaxFeedbackChars+1)}, "feedback")
	add("feedback empty", "request_revision", map[string]any{"diffId": f.diffID, "feedback": ""}, "feedback")
	add("additionalContext huge", "request_revision", map[string]any{"diffId": f.diffID, "feedback": "x", "additionalContext": strings.Repeat("c", service.MaxFeedbackChars+1)}, "additionalContext")
	add("answer huge", "answer_worker_question", map[string]any{"taskId": f.taskID, "answer": strings.Repeat("a", service.MaxFeedbackChars+1)}, "answer")
	add("answer blank", "answer_worker_question", map[string]any{"taskId": f.taskID, "answer": "  "}, "answer")
	add("answer not waiting", "answer_worker_question", map[string]any{"taskId": f.taskID, "answer": "yes"}, "taskId")
	add("reject reason huge", "reject_changes", map[string]any{"diffId": f.diffID, "reason": strings.Repeat("r", service.MaxReasonChars+1)}, "reason")
	add("cancel reason huge", "cancel_task", map[string]any{"taskId": f.taskID, "reason": strings.Repeat("r", service.MaxReasonChars+1)}, "reason")
	add("cancel reason array", "cancel_task", map[string]any{"taskId": f.taskID, "reason": []string{"x"}}, "reason")
	add("filter huge", "view_container_logs", map[string]any{"identifier": f.taskID, "filter": strings.Repeat("f", service.MaxFilterChars+1)}, "filter")
	add("filter control", "view_container_logs", map[string]any{"identifier": f.taskID, "filter": "\x07"}, "filter")
	add("system_status argument", "system_status", map[string]any{"verbose": true}, "verbose")
	return cs
}

// snapshotTree lists every path under dir except those under skip, with sizes.
func snapshotTree(t *testing.T, dir, skip string) map[string]int64 {
	out := map[string]int64{}
	err := filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if p == skip {
			return filepath.SkipDir
		}
		info, err := d.Info()
		if err != nil {
			return err
		}
		out[p] = info.Size()
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return out
}

func TestBadInputs_ErrorResultsNamingTheArgument(t *testing.T) {
	e := newTestEnv(t)
	f := newBadFixture(t, e)
	cases := f.cases(e)
	if len(cases) < 200 {
		t.Fatalf("only %d bad inputs; the table must hold at least 200", len(cases))
	}
	t.Logf("%d bad inputs", len(cases))

	ctx := context.Background()
	diffBefore, _ := e.store.GetDiff(ctx, f.diffID)
	taskBefore, _ := e.store.GetTask(ctx, f.taskID)
	filesBefore := snapshotTree(t, e.dir, e.home)
	notifiedBefore := len(e.notified)

	for _, c := range cases {
		t.Run(c.tool+"/"+c.name, func(t *testing.T) {
			res := e.call(c.tool, c.args)
			text := resultText(res)
			if !res.IsError {
				t.Fatalf("accepted: %s", text)
			}
			if !strings.Contains(text, c.arg+": ") && !strings.Contains(text, c.arg+`": `) {
				t.Fatalf("message does not name %s: %s", c.arg, text)
			}
			if len(text) > 4000 {
				t.Fatalf("message of %d bytes", len(text))
			}
			if testing.Verbose() {
				t.Log(text)
			}
		})
	}

	// Nothing was written: no task, no diff change, no wake-up, no file.
	tasks, _ := e.store.ListTasks(ctx, models.TaskFilter{})
	diffs, _ := e.store.ListDiffs(ctx, models.DiffFilter{})
	if len(tasks) != 1 || len(diffs) != 1 {
		t.Errorf("store holds %d tasks and %d diffs, want the fixture's 1 and 1", len(tasks), len(diffs))
	}
	diffAfter, _ := e.store.GetDiff(ctx, f.diffID)
	taskAfter, _ := e.store.GetTask(ctx, f.taskID)
	if diffAfter.ResourceVersion != diffBefore.ResourceVersion || taskAfter.ResourceVersion != taskBefore.ResourceVersion {
		t.Errorf("fixture rows were written")
	}
	if len(e.notified) != notifiedBefore {
		t.Errorf("bad calls notified the controllers: %v", e.notified[notifiedBefore:])
	}
	filesAfter := snapshotTree(t, e.dir, e.home)
	for p := range filesAfter {
		if _, ok := filesBefore[p]; !ok {
			t.Errorf("a bad call created %s", p)
		}
	}
	if _, err := os.Stat(f.trap); err == nil {
		t.Errorf("the option-like ref created %s", f.trap)
	}
	if n := len(filesBefore) - len(filesAfter); n != 0 {
		t.Errorf("%d files disappeared", n)
	}
}
