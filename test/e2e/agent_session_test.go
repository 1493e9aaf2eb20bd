package e2e

// The stream-json agent path for real, without the real Claude Code: a
// profile `fakeclaude` runs, in the shell test image, a script that prints
// Claude Code's stream-json lines. Its first run asks a question and changes
// nothing (needs_input); the answer continues the session in a second run
// (resume command with the session id and the answer) on the same workspace
// and agent home; a revision continues it once more.

import (
	"encoding/json"
	"maps"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/claude-parallel/claude-parallel/mcp/service"
	"github.com/claude-parallel/claude-parallel/test/testutil"
)

const (
	asPrompt   = "Write a greeting file."
	asQuestion = "The request is ambiguous. Which greeting should the file hold, hello or bonjour?"
	// asAnswer holds shell syntax and quotes: the resume command gets it as
	// one argv element, never re-split or expanded.
	asAnswer   = `bonjour (not "hello"; keep $HOME and 'quotes' literal)`
	asFeedback = "Also add a farewell."
)

// asFirstRun is the fake agent's first run: argv $1 is the session id, $2 the
// prompt. It remembers the prompt in its home (as Claude Code keeps its
// sessions under ~/.claude), asks a question and changes no file.
const asFirstRun = `sid="$1"
mkdir -p "$HOME/.fakeclaude" || exit 5
printf '%s\n' "$2" > "$HOME/.fakeclaude/$sid" || exit 6
printf '{"type":"system","subtype":"init","session_id":"%s","cwd":"%s","model":"fake-claude","tools":["Bash","Edit"]}\n' "$sid" "$PWD"
printf '{"type":"assistant","message":{"id":"msg_1","type":"message","role":"assistant","content":[{"type":"text","text":"I read the repository."}]},"session_id":"%s"}\n' "$sid"
printf '{"type":"assistant","message":{"id":"msg_2","type":"message","role":"assistant","content":[{"type":"tool_use","id":"tu_1","name":"Bash","input":{"command":"ls"}}]},"session_id":"%s"}\n' "$sid"
printf '{"type":"user","message":{"role":"user","content":[{"type":"tool_result","tool_use_id":"tu_1","content":"README.md"}]},"session_id":"%s"}\n' "$sid"
printf '{"type":"result","subtype":"success","is_error":false,"duration_ms":1200,"num_turns":3,"result":"QUESTION","session_id":"%s","total_cost_usd":0.0125}\n' "$sid"
`

// asResumeRun continues the session: $1 is the session id, $2 the answer or
// feedback, $3 the run number. It fails unless the first run's memory is in
// its home, then writes reply-<run>.txt from the answer and that memory.
const asResumeRun = `sid="$1"; run="$3"
printf '{"type":"system","subtype":"init","session_id":"%s","cwd":"%s","model":"fake-claude","tools":["Bash","Edit"]}\n' "$sid" "$PWD"
if [ ! -f "$HOME/.fakeclaude/$sid" ]; then
  printf '{"type":"result","subtype":"error_during_execution","is_error":true,"num_turns":0,"result":"no session in HOME","session_id":"%s"}\n' "$sid"
  exit 3
fi
{ printf 'run %s: %s\n' "$run" "$2"; printf 'session memory: '; cat "$HOME/.fakeclaude/$sid"; } > "reply-$run.txt"
printf '{"type":"assistant","message":{"id":"msg_r%s","type":"message","role":"assistant","content":[{"type":"text","text":"Wrote reply-%s.txt."}]},"session_id":"%s"}\n' "$run" "$run" "$sid"
printf '{"type":"result","subtype":"success","is_error":false,"num_turns":1,"result":"Done: reply-%s.txt holds the answer.","session_id":"%s","total_cost_usd":0.004}\n' "$run" "$sid"
`

// asProfile is the YAML of the fakeclaude profile.
func asProfile(t *testing.T) string {
	t.Helper()
	q := func(argv ...string) string {
		b, err := json.Marshal(argv) // a JSON array is a YAML flow sequence
		if err != nil {
			t.Fatal(err)
		}
		return string(b)
	}
	first := strings.ReplaceAll(asFirstRun, "QUESTION", asQuestion)
	return `profiles:
  fakeclaude:
    image: ` + flowShellImage + `
    output_format: stream-json
    command: ` + q("sh", "-c", first, "fakeclaude", "sess-{{.TaskID}}", "{{.Prompt}}") + `
    resume_command: ` + q("sh", "-c", asResumeRun, "fakeclaude", "{{.SessionID}}", "{{.Feedback}}", "{{.Run}}") + `
`
}

// asContainer is what docker inspect says of a run's container.
type asContainer struct {
	Config struct{ Cmd []string }
	Mounts []struct{ Source, Destination string }
}

func asInspect(t *testing.T, name string) asContainer {
	t.Helper()
	cmd := exec.Command("docker", "inspect", "--type", "container", name)
	var stderr strings.Builder
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("docker inspect %s: %v: %s", name, err, stderr.String())
	}
	var cs []asContainer
	if err := json.Unmarshal(out, &cs); err != nil || len(cs) != 1 {
		t.Fatalf("docker inspect %s: %v (%d results)", name, err, len(cs))
	}
	return cs[0]
}

func (c asContainer) mounts() map[string]string {
	m := map[string]string{}
	for _, mt := range c.Mounts {
		m[mt.Destination] = mt.Source
	}
	return m
}

func (s *flowServer) asStatus(t *testing.T, taskID string) *service.TaskView {
	t.Helper()
	var ws service.WorkStatusResult
	s.call(t, "work_status", map[string]any{"taskId": taskID}, &ws)
	if ws.Task == nil {
		t.Fatalf("work_status %s: no task", taskID)
	}
	return ws.Task
}

// asAwaitRun waits with wait_for_tasks for run n of a task that was just
// given a follow-up, and checks the wait did not end before that run did.
func (s *flowServer) asAwaitRun(t *testing.T, taskID string, n int) *service.TaskView {
	t.Helper()
	w := s.waitTask(t, taskID)
	v := s.asStatus(t, taskID)
	if v.RunNumber < n || !v.Finished {
		t.Errorf("wait_for_tasks reported the task finished (status %s, phase %s) while run %d was still to come (work_status: run %d, status %s, finished %v)",
			w.Status, w.Phase, n, v.RunNumber, v.Status, v.Finished)
		deadline := time.Now().Add(time.Minute)
		for v.RunNumber < n || !v.Finished {
			if time.Now().After(deadline) {
				t.Fatalf("run %d of %s never finished: %+v\n%s", n, taskID, v, s.stderr)
			}
			time.Sleep(100 * time.Millisecond)
			v = s.asStatus(t, taskID)
		}
	}
	return v
}

func asFiles(d *service.DiffView) []string {
	var out []string
	for _, f := range d.Files {
		out = append(out, f.Path+":"+f.Status)
	}
	slices.Sort(out)
	return out
}

func TestNeedsInputAnswerContinuesSession(t *testing.T) {
	fi := newFlowInstall(t)
	fi.writeConfig(asProfile(t))
	head := testutil.Git(t, fi.repo, "rev-parse", "HEAD")
	s := pdServe(t, fi)

	// Run 1: the agent asks and changes nothing.
	var started service.TaskWorkerResult
	s.call(t, "task_worker", map[string]any{"task": asPrompt, "workFolder": fi.repo, "agent": "fakeclaude"}, &started)
	taskID := started.TaskID
	sid := "sess-" + taskID
	if w := s.waitTask(t, taskID); w.Status != "needs_input" || w.DiffID != "" {
		t.Fatalf("first run ended %+v, want needs_input without a diff\n%s", w, s.stderr)
	}
	v := s.asStatus(t, taskID)
	if v.Status != "needs_input" || v.PendingQuestion != asQuestion || v.RunNumber != 1 || v.DiffID != "" || !v.Finished {
		t.Errorf("after run 1: status %s, question %q, run %d, diff %q, finished %v", v.Status, v.PendingQuestion, v.RunNumber, v.DiffID, v.Finished)
	}
	if p := v.Progress; p == nil || p.SessionID != sid || p.NumTurns != 3 || p.CostUSD != 0.0125 ||
		p.LastMessage != "I read the repository." || p.ResultText != asQuestion {
		t.Errorf("progress after run 1: %+v, want session %s, 3 turns, $0.0125", p, sid)
	}
	r1 := asInspect(t, "claude-parallel-"+taskID+"-r1")
	if want := []string{"sh", "-c", strings.ReplaceAll(asFirstRun, "QUESTION", asQuestion), "fakeclaude", sid, asPrompt}; !slices.Equal(r1.Config.Cmd, want) {
		t.Errorf("run 1 argv %q, want %q", r1.Config.Cmd, want)
	}

	// Run 2: the answer continues the session.
	var fu service.FollowUpResult
	s.call(t, "answer_worker_question", map[string]any{"taskId": taskID, "answer": asAnswer}, &fu)
	if fu.Run != 2 {
		t.Errorf("answer: %+v, want run 2", fu)
	}
	v = s.asAwaitRun(t, taskID, 2)
	if v.Status != "completed" || v.RunNumber != 2 || v.DiffID == "" || v.PendingQuestion != "" {
		t.Fatalf("after the answer: status %s (%s: %s), run %d, diff %q, question %q\n%s",
			v.Status, v.Reason, v.Message, v.RunNumber, v.DiffID, v.PendingQuestion, s.stderr)
	}
	if p := v.Progress; p == nil || p.SessionID != sid || p.NumTurns != 1 || p.CostUSD != 0.004 ||
		p.ResultText != "Done: reply-2.txt holds the answer." {
		t.Errorf("progress after run 2: %+v", p)
	}
	r2 := asInspect(t, "claude-parallel-"+taskID+"-r2")
	if want := []string{"sh", "-c", asResumeRun, "fakeclaude", sid, asAnswer, "2"}; !slices.Equal(r2.Config.Cmd, want) {
		t.Errorf("run 2 argv %q, want %q", r2.Config.Cmd, want)
	}
	// The same workspace and the same agent home: the session memory the
	// first run wrote to $HOME is in the second run's reply.
	m1, m2 := r1.mounts(), r2.mounts()
	if m1["/workspace"] == "" || m1["/home/agent"] == "" || !maps.Equal(m1, m2) {
		t.Errorf("run 1 mounts %v, run 2 mounts %v: want the same workspace and home", m1, m2)
	}
	var review service.ReviewResult
	s.call(t, "review_changes", map[string]any{"diffId": v.DiffID, "format": "detailed"}, &review) // detailed: with its commits
	d2 := review.Diff
	reply2 := "run 2: " + asAnswer + "\nsession memory: " + asPrompt + "\n"
	if got := asFiles(d2); !slices.Equal(got, []string{"reply-2.txt:added"}) || d2.Status != "pending" || d2.BaseCommit != head ||
		!strings.Contains(d2.Patch, "+run 2: "+asAnswer+"\n") || !strings.Contains(d2.Patch, "+session memory: "+asPrompt+"\n") {
		t.Fatalf("diff of run 2: status %s, files %q, base %s (want %s), patch:\n%s", d2.Status, got, d2.BaseCommit, head, d2.Patch)
	}

	// Run 3: a revision continues the session once more; its diff is again
	// against the original base, so it holds run 2's change too, and it
	// supersedes run 2's diff.
	s.call(t, "request_revision", map[string]any{"diffId": d2.DiffID, "feedback": asFeedback}, &fu)
	if fu.Run != 3 || fu.DiffID != d2.DiffID {
		t.Errorf("revision: %+v, want run 3 of diff %s", fu, d2.DiffID)
	}
	v = s.asAwaitRun(t, taskID, 3)
	if v.Status != "completed" || v.RunNumber != 3 || v.DiffID == "" || v.DiffID == d2.DiffID {
		t.Fatalf("after the revision: status %s (%s: %s), run %d, diff %q (run 2's was %s)\n%s",
			v.Status, v.Reason, v.Message, v.RunNumber, v.DiffID, d2.DiffID, s.stderr)
	}
	if p := v.Progress; p == nil || p.SessionID != sid {
		t.Errorf("progress after run 3: %+v, want session %s", p, sid)
	}
	r3 := asInspect(t, "claude-parallel-"+taskID+"-r3")
	if len(r3.Config.Cmd) != 7 || r3.Config.Cmd[4] != sid || !strings.HasPrefix(r3.Config.Cmd[5], asFeedback) || r3.Config.Cmd[6] != "3" {
		t.Errorf("run 3 argv %q, want the session %s and the feedback", r3.Config.Cmd, sid)
	}
	if m3 := r3.mounts(); !maps.Equal(m1, m3) {
		t.Errorf("run 3 mounts %v, want run 1's %v", m3, m1)
	}
	var review3 service.ReviewResult
	s.call(t, "review_changes", map[string]any{"diffId": v.DiffID, "format": "detailed"}, &review3)
	d3 := review3.Diff
	if got := asFiles(d3); !slices.Equal(got, []string{"reply-2.txt:added", "reply-3.txt:added"}) || d3.BaseCommit != head ||
		d3.RunNumber != 3 || d3.Status != "pending" || !strings.Contains(d3.Patch, "+run 3: "+asFeedback) {
		t.Fatalf("diff of run 3: status %s, run %d, files %q, base %s (want %s), patch:\n%s", d3.Status, d3.RunNumber, got, d3.BaseCommit, head, d3.Patch)
	}
	var old service.ReviewResult
	s.call(t, "review_changes", map[string]any{"diffId": d2.DiffID, "showContent": false, "format": "detailed"}, &old)
	if old.Diff.Status != "superseded" {
		t.Errorf("run 2's diff is %s (%s: %s), want superseded; its events: %+v", old.Diff.Status, old.Diff.Reason, old.Diff.Message, old.Diff.Events)
	}

	// And the revised change applies: both replies land in the repository.
	var applied service.ApplyResult
	s.call(t, "apply_changes", map[string]any{"diffId": d3.DiffID}, &applied)
	if applied.Outcome != service.OutcomeApplied {
		t.Fatalf("apply: %+v", applied)
	}
	if got := flowReadFile(t, filepath.Join(fi.repo, "reply-2.txt")); got != reply2 {
		t.Errorf("reply-2.txt = %q, want %q", got, reply2)
	}
	if got := flowReadFile(t, filepath.Join(fi.repo, "reply-3.txt")); !strings.HasPrefix(got, "run 3: "+asFeedback) ||
		!strings.HasSuffix(got, "\nsession memory: "+asPrompt+"\n") {
		t.Errorf("reply-3.txt = %q", got)
	}
}
