package mcp

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"github.com/claude-parallel/claude-parallel/mcp/service"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/mark3labs/mcp-go/mcp"

	"github.com/claude-parallel/claude-parallel/models"
)

// session is a realistic installation for the tool outputs: the state the
// Claude Code session of test/e2e leaves (a task finished with a one-file
// diff, one revised, one running, one asking a question, one failed, one
// whose diff met a conflict), with timelines, a log and a leader.
type session struct {
	e                                         *testEnv
	done, running, asking, failed, conflicted string // task ids
	doneDiff, conflictDiff                    string // diff ids
	manyFolders                               bool
}

// event records a timeline line as a controller would.
func (s *session) event(kind, id, reason, msg string) {
	s.e.t.Helper()
	if err := s.e.store.RecordEvent(context.Background(), kind, id, reason, msg); err != nil {
		s.e.t.Fatal(err)
	}
}

// setTask writes a task's status as the task controller would.
func (s *session) setTask(id string, edit func(st *models.TaskStatus)) {
	s.e.t.Helper()
	ctx := context.Background()
	task, err := s.e.store.GetTask(ctx, id)
	if err != nil {
		s.e.t.Fatal(err)
	}
	edit(&task.Status)
	task.Status.ObservedGeneration = task.Generation
	if err := s.e.store.UpdateTaskStatus(ctx, task); err != nil {
		s.e.t.Fatal(err)
	}
}

// setProgress writes what a run's log follower would, on the run's own row:
// the time of its last output and the agent's account of the run.
func (s *session) setProgress(taskID string, run int, edit func(l *models.ExecutionLog)) {
	s.e.t.Helper()
	ctx := context.Background()
	l, err := s.e.store.GetExecutionLog(ctx, taskID, run)
	if errors.Is(err, models.ErrNotFound) {
		l, err = &models.ExecutionLog{TaskID: taskID, Run: run}, nil
	}
	if err != nil {
		s.e.t.Fatal(err)
	}
	edit(l)
	if err := s.e.store.UpsertExecutionLog(ctx, l); err != nil {
		s.e.t.Fatal(err)
	}
}

func newSession(t *testing.T) *session {
	t.Helper()
	e := newTestEnv(t)
	ctx := context.Background()
	s := &session{e: e}
	e.setDeps(func(d *service.Deps) { d.Engine, d.Runtime = &fakeEngine{}, sessionRuntime{} })
	if _, err := e.store.TryAcquireLease(ctx, models.LeaderLease, "host:4242:5f3a9c", time.Minute); err != nil {
		t.Fatal(err)
	}

	s.done = e.startTask(map[string]any{"task": "echo hello-from-claude > hello.txt; echo wrote-hello", "taskDescription": "hello"}).TaskID
	run := func(id string, phase models.TaskPhase, files ...string) *models.Diff {
		s.event(models.EventKindTask, id, "Preparing", "workspace ready at base 4b825dc642cb")
		s.event(models.EventKindTask, id, "Running", "container "+models.ContainerName(id, 1)+" started")
		d := e.finishRun(id, 1, phase, files...)
		s.event(models.EventKindTask, id, string(phase), fmt.Sprintf("run 1 ended with exit code 0, %d file(s) changed", len(files)))
		return d
	}
	d := run(s.done, models.TaskPhaseSucceeded, "hello.txt")
	s.doneDiff = d.ID
	s.setTask(s.done, func(st *models.TaskStatus) {
		now := time.Now()
		st.RunStartedAt, st.EndTime = &now, &now
	})
	s.writeLog(s.done, "wrote-hello")
	s.setProgress(s.done, 1, func(l *models.ExecutionLog) { now := time.Now(); l.LastLogTime = &now })

	s.running = e.startTask(map[string]any{"task": "make test && echo ok", "taskDescription": "run the tests"}).TaskID
	s.setTask(s.running, func(st *models.TaskStatus) {
		now := time.Now()
		st.Phase, st.RunNumber, st.ContainerName, st.RunStartedAt = models.TaskPhaseRunning, 1, models.ContainerName(s.running, 1), &now
	})
	s.setProgress(s.running, 1, func(l *models.ExecutionLog) { now := time.Now(); l.LastLogTime = &now })

	s.asking = e.startTask(map[string]any{"task": "migrate the users table", "taskDescription": "migration"}).TaskID
	run(s.asking, models.TaskPhaseSucceeded)
	s.setTask(s.asking, func(st *models.TaskStatus) {
		st.PendingQuestion = "Which database should the migration target?"
	})
	s.setProgress(s.asking, 1, func(l *models.ExecutionLog) {
		l.Progress = models.RunProgress{SessionID: "sess-0f9e", NumTurns: 4, CostUSD: 0.0132, LastMessage: "I need to know the target database."}
	})

	s.failed = e.startTask(map[string]any{"task": "go build ./... && go vet ./...", "taskDescription": "build"}).TaskID
	run(s.failed, models.TaskPhaseFailed)
	s.setTask(s.failed, func(st *models.TaskStatus) {
		exit := 2
		st.ExitCode, st.Reason, st.Message = &exit, "ExitCode", "the agent exited with code 2"
	})
	s.writeLog(s.failed, "main.go:3:1: syntax error: unexpected }")

	s.conflicted = e.startTask(map[string]any{"task": "echo conflict > README.md", "taskDescription": "readme"}).TaskID
	cd := run(s.conflicted, models.TaskPhaseSucceeded, "README.md")
	s.conflictDiff = cd.ID
	e.setDiff(cd.ID, models.DiffDesiredApplied, models.DiffPhaseConflict)
	cur, err := e.store.ListDiffs(ctx, models.DiffFilter{IDs: []string{cd.ID}})
	if err != nil {
		t.Fatal(err)
	}
	cur[0].Status.ConflictFiles, cur[0].Status.Message = []string{"README.md"}, "README.md was changed in the target since the task started"
	if err := e.store.UpdateDiffStatus(ctx, &cur[0]); err != nil {
		t.Fatal(err)
	}
	return s
}

// writeLog gives a task's run 1 a complete log ending in last.
func (s *session) writeLog(taskID, last string) {
	s.e.t.Helper()
	path := filepath.Join(s.e.cfg.Paths().TaskLogDir, taskID, "run-1.log")
	if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
		s.e.t.Fatal(err)
	}
	body := "2026-12-07T10:00:00.123456789Z starting\n2026-12-07T10:00:01.123456789Z " + last + "\n"
	if err := os.WriteFile(path, []byte(body), 0o600); err != nil {
		s.e.t.Fatal(err)
	}
	if err := s.e.store.UpsertExecutionLog(context.Background(), &models.ExecutionLog{TaskID: taskID, Run: 1, Path: path, Size: int64(len(body)), Complete: true}); err != nil {
		s.e.t.Fatal(err)
	}
}

// sessionRuntime is a leader running the four controllers of serve.
type sessionRuntime struct{}

func (sessionRuntime) RuntimeStatus(context.Context) service.RuntimeSnapshot {
	var cs []service.ControllerStats
	for i, name := range []string{"task", "diff", "container", "retention"} {
		cs = append(cs, service.ControllerStats{Name: name, Running: true, Workers: 2, Reconciles: uint64(40 + i), Resyncs: 3})
	}
	return service.RuntimeSnapshot{IsLeader: true, Holder: "host:4242:5f3a9c", Controllers: cs}
}

// sizedCall is one call of the size table.
type sizedCall struct {
	tool string
	args map[string]any
}

// sizeCalls is one default call of every tool on the session, the calls a
// model makes in the Claude Code session.
func (s *session) sizeCalls() []sizedCall {
	return []sizedCall{
		{"system_status", map[string]any{}},
		{"task_worker", map[string]any{"task": "echo again > again.txt", "workFolder": s.e.repo, "agent": "shell", "taskDescription": "again"}},
		{"wait_for_tasks", map[string]any{"taskIds": []string{s.done, s.failed}, "timeoutSeconds": 0}},
		{"work_status", map[string]any{"taskId": s.done}},
		{"work_status", map[string]any{}},
		{"review_changes", map[string]any{"taskId": s.done}},
		{"review_changes", map[string]any{}},
		{"apply_changes", map[string]any{"diffId": s.doneDiff, "confirm": false}},
		{"request_revision", map[string]any{"diffId": s.conflictDiff, "feedback": "keep the old first line"}},
		{"answer_worker_question", map[string]any{"taskId": s.asking, "answer": "the production one"}},
		{"reject_changes", map[string]any{"diffId": s.doneDiff, "reason": "not wanted"}},
		{"cancel_task", map[string]any{"taskId": s.running, "reason": "e2e"}},
		{"list_container_logs", map[string]any{}},
		{"view_container_logs", map[string]any{"identifier": s.done}},
	}
}

// sizes returns the characters of a result's structured content (as JSON,
// what Claude Code hands the model) and of its text.
func sizes(t *testing.T, res *mcp.CallToolResult) (jsonChars, textChars int) {
	t.Helper()
	b, err := json.Marshal(res.StructuredContent)
	if err != nil {
		t.Fatal(err)
	}
	return len(b), len(resultText(res))
}

// TestToolOutput_Sizes prints, for one default call of every tool on a
// realistic session, the characters of the structured content and of the
// text, and holds the structured content to at most 1.3 times the text.
func TestToolOutput_Sizes(t *testing.T) {
	s := newSession(t)
	var table strings.Builder
	fmt.Fprintf(&table, "%-24s %-10s %6s %6s %5s\n", "tool", "args", "json", "text", "ratio")
	var sumJSON, sumText int
	for _, c := range s.sizeCalls() {
		res := s.e.call(c.tool, c.args)
		if res.IsError {
			t.Fatalf("%s(%v): %s", c.tool, c.args, resultText(res))
		}
		j, x := sizes(t, res)
		sumJSON, sumText = sumJSON+j, sumText+x
		what := "default"
		if len(c.args) == 0 {
			what = "none"
		} else if _, ok := c.args["taskId"]; ok && c.tool == "work_status" {
			what = "one task"
		} else if _, ok := c.args["taskId"]; ok && c.tool == "review_changes" {
			what = "one diff"
		}
		fmt.Fprintf(&table, "%-24s %-10s %6d %6d %5.2f\n", c.tool, what, j, x, float64(j)/float64(x))
		if os.Getenv("SHOW_TOOL_OUTPUT") != "" {
			sc, _ := json.Marshal(res.StructuredContent)
			t.Logf("%s JSON:\n%s\nTEXT:\n%s", c.tool, sc, resultText(res))
		}
		if float64(j) > 1.3*float64(x) {
			t.Errorf("%s: structured content of %d characters, %.2f times its text of %d (bound 1.3)", c.tool, j, float64(j)/float64(x), x)
		}
	}
	fmt.Fprintf(&table, "%-24s %-10s %6d %6d %5.2f\n", "all", "", sumJSON, sumText, float64(sumJSON)/float64(sumText))
	t.Logf("tool result sizes (characters):\n%s", table.String())
}

// decodeArgs decodes a suggested call's arguments through the tool's own
// decoder, as a call from a client would be.
func decodeArgs(e *testEnv, tool string, args map[string]any) error {
	b, err := json.Marshal(args)
	if err != nil {
		return err
	}
	var raw any
	dec := json.NewDecoder(strings.NewReader(string(b)))
	dec.UseNumber()
	if err := dec.Decode(&raw); err != nil {
		return err
	}
	switch tool {
	case "task_worker":
		_, err = DecodeTaskWorker(raw, e.cfg)
	case "work_status":
		_, err = DecodeWorkStatus(raw)
	case "wait_for_tasks":
		_, err = DecodeWaitForTasks(raw)
	case "review_changes":
		_, err = DecodeReviewChanges(raw)
	case "apply_changes":
		_, err = DecodeApplyChanges(raw)
	case "reject_changes":
		_, err = DecodeRejectChanges(raw)
	case "request_revision":
		_, err = DecodeRequestRevision(raw)
	case "answer_worker_question":
		_, err = DecodeAnswerWorkerQuestion(raw)
	case "cancel_task":
		_, err = DecodeCancelTask(raw)
	case "system_status":
		err = DecodeSystemStatus(raw)
	case "view_container_logs":
		_, err = DecodeViewContainerLogs(raw)
	case "list_container_logs":
		_, err = DecodeListContainerLogs(raw)
	default:
		return fmt.Errorf("no tool %s", tool)
	}
	return err
}

// emptyFields lists where a decoded JSON value holds null, an empty
// string, array or object, false, a zero number (an exit code of 0 is a
// fact), or a time with a fraction of a second or the zero time.
func emptyFields(v any, path string) []string {
	var out []string
	switch n := v.(type) {
	case nil:
		out = append(out, path+": null")
	case string:
		switch {
		case n == "":
			out = append(out, path+": empty string")
		case strings.HasPrefix(n, "0001-01-01"):
			out = append(out, path+": zero time")
		default:
			if _, err := time.Parse(time.RFC3339Nano, n); err == nil && strings.Contains(n, ".") {
				out = append(out, path+": time with a fraction of a second: "+n)
			}
		}
	case bool:
		if !n {
			out = append(out, path+": false")
		}
	case json.Number:
		if n.String() == "0" && !strings.HasSuffix(path, ".exitCode") {
			out = append(out, path+": zero")
		}
	case []any:
		if len(n) == 0 {
			out = append(out, path+": empty array")
		}
		for i, x := range n {
			out = append(out, emptyFields(x, fmt.Sprintf("%s[%d]", path, i))...)
		}
	case map[string]any:
		if len(n) == 0 {
			out = append(out, path+": empty object")
		}
		for k, x := range n {
			out = append(out, emptyFields(x, path+"."+k)...)
		}
	}
	return out
}

// readOnlyTools may be called to try a suggestion out; wait_for_tasks is
// left out (it would wait).
var readOnlyTools = map[string]bool{"work_status": true, "review_changes": true, "system_status": true,
	"view_container_logs": true, "list_container_logs": true}

// checkOutput holds one result to the rules of present.go: no empty field,
// every suggested call a real tool whose arguments its decoder accepts
// (and, for a reading tool, that answers without an error), and the text
// naming every suggested call. It returns the suggestions.
func checkOutput(t *testing.T, e *testEnv, name string, res *mcp.CallToolResult) []service.NextCall {
	t.Helper()
	if res.IsError {
		t.Fatalf("%s: error result: %s", name, resultText(res))
	}
	b, err := json.Marshal(res.StructuredContent)
	if err != nil {
		t.Fatal(err)
	}
	dec := json.NewDecoder(strings.NewReader(string(b)))
	dec.UseNumber()
	var generic any
	if err := dec.Decode(&generic); err != nil {
		t.Fatal(err)
	}
	for _, p := range emptyFields(generic, name) {
		t.Errorf("%s", p)
	}
	var out struct {
		Next []service.NextCall `json:"next"`
	}
	if err := json.Unmarshal(b, &out); err != nil {
		t.Fatal(err)
	}
	text := resultText(res)
	for _, n := range out.Next {
		if err := decodeArgs(e, n.Tool, n.Args); err != nil {
			t.Errorf("%s: suggests %s with arguments %v its decoder refuses: %v", name, n.Tool, n.Args, err)
			continue
		}
		if n.Why == "" {
			t.Errorf("%s: suggests %s without saying why", name, n.Tool)
		}
		if !strings.Contains(text, service.CallText(n)) {
			t.Errorf("%s: the text does not show the suggested call %s:\n%s", name, service.CallText(n), text)
		}
		if readOnlyTools[n.Tool] {
			if tried := e.call(n.Tool, n.Args); tried.IsError {
				t.Errorf("%s: the suggested %s fails: %s", name, service.CallText(n), resultText(tried))
			}
		}
	}
	return out.Next
}

// tools names the suggested calls' tools, in order.
func tools(next []service.NextCall) []string {
	var out []string
	for _, n := range next {
		out = append(out, n.Tool)
	}
	return out
}

// TestToolOutput_CompactWithNextCalls walks every tool through the states a
// model meets (running, finished with a diff, conflict, failed, asking,
// paged) and holds each structured result to the rules: no null or empty
// field, and next calls that are real, valid and shown in the text too.
func TestToolOutput_CompactWithNextCalls(t *testing.T) {
	s := newSession(t)
	e := s.e
	// Enough tasks and a long log to page.
	for range 3 {
		e.startTask(nil)
	}
	var long strings.Builder
	for i := range 5000 {
		fmt.Fprintf(&long, "2026-12-07T10:00:00.000000000Z step %d of the build: compiling package number %d\n", i, i)
	}
	path := filepath.Join(e.cfg.Paths().TaskLogDir, s.failed, "run-1.log")
	if err := os.WriteFile(path, []byte(long.String()), 0o600); err != nil {
		t.Fatal(err)
	}
	bigFiles := []string{"big/a.go", "big/b.go"}
	big := seedDiff(t, e, bigPatch(bigFiles, 90<<10), bigFiles)

	want := []struct {
		tool string
		args map[string]any
		next []string // the tools suggested, in order
	}{
		{"task_worker", map[string]any{"task": "echo x", "workFolder": e.repo, "agent": "shell", "parentTaskId": "k1"}, []string{"wait_for_tasks"}},
		{"task_worker", map[string]any{"task": "echo x", "workFolder": e.repo, "agent": "shell", "parentTaskId": "k1"}, []string{"wait_for_tasks"}},
		{"work_status", map[string]any{"taskId": s.done}, []string{"review_changes"}},
		{"work_status", map[string]any{"taskId": s.running}, []string{"wait_for_tasks"}},
		{"work_status", map[string]any{"taskId": s.asking}, []string{"answer_worker_question"}},
		{"work_status", map[string]any{"taskId": s.failed}, []string{"view_container_logs"}},
		{"work_status", map[string]any{"limit": 2}, []string{"work_status"}},
		{"work_status", map[string]any{"limit": 3, "status": "completed"}, nil},
		{"work_status", map[string]any{"limit": 1, "status": "completed"}, []string{"work_status"}},
		{"wait_for_tasks", map[string]any{"taskIds": []string{s.running, s.done, s.failed, s.asking}, "timeoutSeconds": 0},
			[]string{"wait_for_tasks", "review_changes", "view_container_logs", "answer_worker_question"}},
		{"review_changes", map[string]any{"diffId": s.doneDiff}, []string{"apply_changes", "request_revision", "reject_changes"}},
		{"review_changes", map[string]any{"taskId": s.conflicted, "format": "detailed"}, []string{"request_revision", "apply_changes", "reject_changes"}},
		{"review_changes", map[string]any{"diffId": big.ID}, []string{"review_changes", "apply_changes", "request_revision", "reject_changes"}},
		{"review_changes", map[string]any{"diffId": big.ID, "file": "big/b.go", "offset": 100}, []string{"review_changes", "apply_changes", "request_revision", "reject_changes"}},
		{"review_changes", map[string]any{}, []string{"review_changes", "review_changes", "review_changes"}},
		{"review_changes", map[string]any{"format": "detailed"}, []string{"review_changes"}},
		{"apply_changes", map[string]any{"diffId": s.doneDiff, "confirm": false}, []string{"apply_changes"}},
		{"system_status", map[string]any{}, []string{"review_changes", "work_status"}},
		{"view_container_logs", map[string]any{"identifier": s.done}, nil},
		{"view_container_logs", map[string]any{"identifier": s.failed}, []string{"view_container_logs"}},
		{"view_container_logs", map[string]any{"identifier": s.failed, "filter": "package number 4", "fromLine": 2, "tail": 10}, []string{"view_container_logs", "view_container_logs"}},
		{"view_container_logs", map[string]any{"identifier": s.running}, nil},
		{"list_container_logs", map[string]any{}, []string{"view_container_logs"}},
		{"request_revision", map[string]any{"diffId": s.doneDiff, "feedback": "say hello twice"}, []string{"wait_for_tasks"}},
		{"answer_worker_question", map[string]any{"taskId": s.asking, "answer": "the production one"}, []string{"wait_for_tasks"}},
		{"cancel_task", map[string]any{"taskId": s.running}, []string{"wait_for_tasks"}},
		{"cancel_task", map[string]any{"taskId": s.failed}, nil},
		{"reject_changes", map[string]any{"diffId": big.ID, "reason": "too big"}, nil},
	}
	for i, c := range want {
		name := fmt.Sprintf("%d %s %v", i, c.tool, c.args)
		next := checkOutput(t, e, name, e.call(c.tool, c.args))
		if got := tools(next); strings.Join(got, ",") != strings.Join(c.next, ",") {
			t.Errorf("%s: suggests %v, want %v", name, got, c.next)
		}
	}

	// The summary leaves the commits out, format detailed keeps them whole.
	summary := ok[service.ReviewResult](e, "review_changes", map[string]any{"diffId": s.doneDiff})
	detailed := ok[service.ReviewResult](e, "review_changes", map[string]any{"diffId": s.doneDiff, "format": "detailed"})
	if summary.Diff.BaseCommit != "" || detailed.Diff.BaseCommit != "abc" || detailed.Diff.ResultCommit != "def" || detailed.Diff.PatchSHA256 == "" {
		t.Errorf("commits: summary %q, detailed %q %q %q", summary.Diff.BaseCommit, detailed.Diff.BaseCommit, detailed.Diff.ResultCommit, detailed.Diff.PatchSHA256)
	}

	// Apply outcomes: a conflict suggests a revision first, an applied diff
	// nothing.
	playDiffControllerSeq(t, e.store, models.DiffPhaseConflict, models.DiffPhaseApplied)
	conflict := checkOutput(t, e, "apply conflict", e.call("apply_changes", map[string]any{"diffId": s.conflictDiff}))
	if got := tools(conflict); strings.Join(got, ",") != "request_revision,apply_changes,reject_changes" {
		t.Errorf("apply met a conflict: suggests %v", got)
	}
	other := e.startTask(nil)
	d := e.finishRun(other.TaskID, 1, models.TaskPhaseSucceeded, "other.txt")
	if applied := checkOutput(t, e, "applied", e.call("apply_changes", map[string]any{"diffId": d.ID})); len(applied) != 0 {
		t.Errorf("applied: suggests %v", tools(applied))
	}
	// Docker down and no controllers: still nothing empty.
	e.setDeps(func(d *service.Deps) { d.Engine, d.Runtime = &fakeEngine{err: fmt.Errorf("connection refused")}, nil })
	checkOutput(t, e, "system_status without Docker", e.call("system_status", map[string]any{}))
}
