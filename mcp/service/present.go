package service

import (
	"bytes"
	"encoding/json"
	"fmt"
	"maps"
	"slices"
	"strings"
	"time"

	"github.com/claude-parallel/claude-parallel/models"
)

// Presenting a result for a model. Claude Code hands the model a tool's
// structured content, not its text, so the JSON is what the model reads:
// present leaves out what is empty or implied by another field (a phase the
// status implies, a container name the task and run give, counts of zero,
// sub-second time digits) and computes next, the calls that usually follow,
// from the result itself. The markdown shows the same facts and the same
// calls (every Markdown method presents its result first), so a client that
// shows the text tells the same story.

// NextCall is a suggested follow-up call.
type NextCall struct {
	Tool string `json:"tool" jsonschema:"the tool to call"`
	// Args validate against the tool's input schema; a value in <angle
	// brackets> (feedback, an answer) is for the caller to write.
	Args map[string]any `json:"args,omitempty" jsonschema:"its arguments; a value in <angle brackets> is yours to write"`
	Why  string         `json:"why,omitempty"`
}

// maxNext bounds the suggestions of one reply.
const maxNext = 6

func call(tool, why string, kv ...any) NextCall {
	n := NextCall{Tool: tool, Why: why}
	for i := 0; i+1 < len(kv); i += 2 {
		if n.Args == nil {
			n.Args = map[string]any{}
		}
		n.Args[kv[i].(string)] = kv[i+1]
	}
	return n
}

// CallText is how the text content writes a suggested call: the tool, then
// each argument as name=JSON value, in name order.
func CallText(n NextCall) string {
	var b strings.Builder
	b.WriteString("`" + n.Tool)
	for _, k := range slices.Sorted(maps.Keys(n.Args)) {
		var v bytes.Buffer
		enc := json.NewEncoder(&v)
		enc.SetEscapeHTML(false)
		_ = enc.Encode(n.Args[k])
		fmt.Fprintf(&b, " %s=%s", k, bytes.TrimSpace(v.Bytes()))
	}
	b.WriteString("`")
	return b.String()
}

// writeNext writes the suggested calls, one a line.
func writeNext(m *md, next []NextCall) {
	m.next = next
	if len(next) == 0 || m.factsOnly {
		return
	}
	m.blank()
	m.line("Next:")
	for _, n := range next {
		if n.Why != "" {
			m.line("- %s: %s", CallText(n), n.Why)
		} else {
			m.line("- %s", CallText(n))
		}
	}
}

// impliedPhase is the phase a status stands for when nothing else is known:
// a phase equal to it says nothing the status does not.
func impliedPhase(status string) string {
	switch status {
	case string(models.TaskStateCompleted), string(models.TaskStateNeedsInput):
		return string(models.TaskPhaseSucceeded)
	}
	var b strings.Builder
	for _, part := range strings.Split(status, "_") {
		if part != "" {
			b.WriteString(strings.ToUpper(part[:1]) + part[1:])
		}
	}
	return b.String()
}

// dropImpliedPhase blanks a phase its status implies.
func dropImpliedPhase(status string, phase *string) {
	if *phase == impliedPhase(status) {
		*phase = ""
	}
}

// dropEchoReason blanks a reason that only repeats the status or the phase
// ("Completed" for completed, "Applied" for an applied diff).
func dropEchoReason(reason *string, says ...string) {
	norm := func(x string) string { return strings.ToLower(strings.ReplaceAll(x, "_", "")) }
	for _, s := range says {
		if s != "" && norm(*reason) == norm(s) {
			*reason = ""
			return
		}
	}
}

// PhaseOf is the phase a presented result stands for: its phase, or the
// one its status implies when it was left out.
func PhaseOf(status, phase string) string {
	if phase != "" {
		return phase
	}
	return impliedPhase(status)
}

// seconds drops the sub-second part of a time (and its zone: UTC).
func seconds(t time.Time) time.Time {
	if t.IsZero() {
		return t
	}
	return t.UTC().Truncate(time.Second)
}

func secondsPtr(t *time.Time) *time.Time {
	if t == nil {
		return nil
	}
	s := seconds(*t)
	return &s
}

func presentEvents(events []EventView) {
	for i := range events {
		events[i].Time = seconds(events[i].Time)
	}
}

// dropZeroCounts removes the statuses nothing is in.
func dropZeroCounts(counts map[string]int64) {
	maps.DeleteFunc(counts, func(_ string, n int64) bool { return n == 0 })
}

// shortCommit is the abbreviation git shows.
func shortCommit(c string) string {
	if len(c) > 12 {
		return c[:12]
	}
	return c
}

func (r *TaskWorkerResult) present() {
	dropImpliedPhase(r.Status, &r.Phase)
	r.Next = nextForTask(r.TaskID, r.Status, r.Status == string(models.TaskStatePending) || r.Status == string(models.TaskStateRunning), "", "")
}

// nextForTask suggests what follows for a task in status: waiting while it
// is not finished, else reviewing its diff, answering its question or
// reading its output.
func nextForTask(id, status string, unfinished bool, diffID, question string) []NextCall {
	switch {
	case unfinished:
		return []NextCall{call("wait_for_tasks", "returns when the task has finished", "taskIds", []string{id})}
	case status == string(models.TaskStateNeedsInput):
		if question == "" {
			return []NextCall{call("work_status", "shows the agent's question", "taskId", id)}
		}
		return []NextCall{call("answer_worker_question", "the agent waits for this answer", "taskId", id, "answer", "<your answer>")}
	case diffID != "":
		return []NextCall{call("review_changes", "shows the changes to apply, revise or reject", "diffId", diffID)}
	case status == string(models.TaskStateFailed) || status == string(models.TaskStateTimedOut):
		return []NextCall{call("view_container_logs", "shows the output that tells why", "identifier", id)}
	}
	return nil
}

func (r *WorkStatusResult) present() {
	if t := r.Task; t != nil {
		t.present()
		r.Next = t.Next
		t.Next = nil
		// One task: the store's counts say nothing about it.
		r.Counts, r.Total = nil, 0
		return
	}
	dropZeroCounts(r.Counts)
	r.hoistShared()
	for i := range r.Tasks {
		s := &r.Tasks[i]
		dropEchoReason(&s.Reason, s.Status, PhaseOf(s.Status, s.Phase))
		dropImpliedPhase(s.Status, &s.Phase)
		s.StartTime = seconds(s.StartTime)
	}
	r.Next = nil
	if r.NextCursor != "" {
		n := call("work_status", "the next page of the list", "cursor", r.NextCursor)
		if r.Filter != "" {
			n.Args["status"] = r.Filter
		}
		r.Next = append(r.Next, n)
	}
}

// hoistShared says a work folder or an agent every listed task shares once,
// for the list, instead of once a task.
func (r *WorkStatusResult) hoistShared() {
	if len(r.Tasks) < 2 {
		return
	}
	folder, agent := r.Tasks[0].WorkFolder, r.Tasks[0].Agent
	for _, s := range r.Tasks[1:] {
		if s.WorkFolder != folder {
			folder = ""
		}
		if s.Agent != agent {
			agent = ""
		}
	}
	for i := range r.Tasks {
		if folder != "" {
			r.Tasks[i].WorkFolder = ""
		}
		if agent != "" {
			r.Tasks[i].Agent = ""
		}
	}
	r.WorkFolder = firstNonEmpty(r.WorkFolder, folder)
	r.Agent = firstNonEmpty(r.Agent, agent)
}

func (t *TaskView) present() {
	dropEchoReason(&t.Reason, t.Status, PhaseOf(t.Status, t.Phase))
	dropImpliedPhase(t.Status, &t.Phase)
	if t.Prompt == t.Description || strings.HasPrefix(t.Description, strings.TrimSuffix(t.Prompt, "…")) {
		t.Prompt = ""
	}
	if t.DesiredRuns <= t.RunNumber {
		t.DesiredRuns = 0
	}
	if t.ContainerName == containerName(t.TaskID, t.RunNumber) {
		t.ContainerName = ""
	}
	t.BaseCommit = shortCommit(t.BaseCommit)
	t.StartTime = seconds(t.StartTime)
	t.RunStartedAt, t.EndTime, t.LastOutputAt = secondsPtr(t.RunStartedAt), secondsPtr(t.EndTime), secondsPtr(t.LastOutputAt)
	presentEvents(t.Events)
	t.Next = nextForTask(t.TaskID, t.Status, !t.Finished, t.DiffID, t.PendingQuestion)
}

func (v *TaskWaitView) present() {
	dropEchoReason(&v.Reason, v.Status, PhaseOf(v.Status, v.Phase))
	dropImpliedPhase(v.Status, &v.Phase)
}

func (r *WaitResult) present() {
	var waiting []string
	r.Next = nil
	for i := range r.Tasks {
		t := &r.Tasks[i]
		t.present()
		if !t.Finished {
			waiting = append(waiting, t.TaskID)
		}
	}
	if len(waiting) > 0 {
		r.Next = append(r.Next, call("wait_for_tasks", "keeps waiting for the tasks not finished", "taskIds", waiting))
	}
	for _, t := range r.Tasks {
		if t.Finished && len(r.Next) < maxNext {
			r.Next = append(r.Next, nextForTask(t.TaskID, t.Status, false, t.DiffID, t.Question)...)
		}
	}
}

func (d *DiffView) present(detailed bool) {
	dropEchoReason(&d.Reason, d.Status, PhaseOf(d.Status, d.Phase))
	dropImpliedPhase(d.Status, &d.Phase)
	if !detailed {
		// The summary leaves out what only an audit needs (in full).
		d.BaseCommit, d.ResultCommit, d.PatchSHA256 = "", "", ""
	}
	if !d.PatchTruncated {
		d.PatchURI = ""
	}
	if d.ApplyMode == string(models.ApplyModeWorktree) {
		d.ApplyMode = "" // the default
	}
	d.CreatedAt = seconds(d.CreatedAt)
	d.AppliedAt = secondsPtr(d.AppliedAt)
	presentEvents(d.Events)
}

// decisionCalls are the three decisions on a diff waiting for one.
func decisionCalls(d *DiffView) []NextCall {
	apply := call("apply_changes", "applies it to the task's work folder", "diffId", d.DiffID)
	revise := call("request_revision", "the agent reworks it; a new diff replaces it", "diffId", d.DiffID, "feedback", "<what to change>")
	reject := call("reject_changes", "discards it", "diffId", d.DiffID)
	if d.Status == string(models.DiffStateConflict) {
		apply.Why = "once the conflict in the target is resolved"
		return []NextCall{revise, apply, reject}
	}
	return []NextCall{apply, revise, reject}
}

func (r *ReviewResult) present() {
	r.Next = nil
	if d := r.Diff; d != nil {
		d.present(r.Detailed)
		r.Count = 0
		if d.PatchTruncated && d.NextOffset > 0 {
			n := call("review_changes", fmt.Sprintf("the patch%s from byte %d on (this reply shows bytes %d to %d)",
				map[bool]string{true: " of " + d.PatchFile}[d.PatchFile != ""], d.NextOffset, d.PatchOffset, d.NextOffset),
				"diffId", d.DiffID, "offset", d.NextOffset)
			if d.PatchFile != "" {
				n.Args["file"] = d.PatchFile
			}
			r.Next = append(r.Next, n)
		}
		if d.Desired == string(models.DiffDesiredPending) && (d.Status == string(models.DiffStatePending) || d.Status == string(models.DiffStateConflict)) {
			if r.PatchHidden {
				r.Next = append(r.Next, call("review_changes", "shows the patch to decide on", "diffId", d.DiffID, "showContent", true))
			}
			r.Next = append(r.Next, decisionCalls(d)...)
		}
		if d.Status == string(models.DiffStateSuperseded) && d.TaskID != "" {
			r.Next = append(r.Next, call("review_changes", "the newest diff of the task", "taskId", d.TaskID))
		}
		return
	}
	r.Count = 0 // the list's length
	detailed := r.Detailed
	for i := range r.Pending {
		r.Pending[i].present(detailed)
	}
	if r.NextCursor != "" {
		n := call("review_changes", "the next page of diffs waiting for a decision", "cursor", r.NextCursor)
		if detailed {
			n.Args["format"] = "detailed"
		}
		r.Next = append(r.Next, n)
	}
	var cut []string
	for i := range r.Pending {
		if r.Pending[i].PatchTruncated {
			cut = append(cut, r.Pending[i].DiffID)
		}
	}
	if len(cut) > 0 {
		why := "its patch, cut in this list"
		if len(cut) > 1 {
			why += "; the same call shows the cut patches of " + strings.Join(cut[1:], ", ")
		}
		r.Next = append(r.Next, call("review_changes", why, "diffId", cut[0]))
	}
	for i := range r.Pending {
		if detailed || len(r.Next) >= maxNext {
			break
		}
		r.Next = append(r.Next, call("review_changes", "its patch and the decisions on it", "diffId", r.Pending[i].DiffID))
	}
}

func (r *ApplyResult) present() {
	dropEchoReason(&r.Reason, r.Outcome, r.Status, PhaseOf(r.Status, r.Phase))
	dropImpliedPhase(r.Status, &r.Phase)
	if r.Status == r.Outcome {
		r.Status = ""
	}
	d := &DiffView{DiffID: r.DiffID, Status: string(models.DiffStateConflict)}
	switch r.Outcome {
	case OutcomeConflict:
		r.Next = decisionCalls(d)
	case OutcomeInProgress:
		r.Next = []NextCall{call("review_changes", "shows the outcome once the apply has ended", "diffId", r.DiffID)}
	case OutcomePreview:
		n := call("apply_changes", "applies it", "diffId", r.DiffID, "targetWorkspace", r.Target)
		if r.Mode != "" && r.Mode != string(models.ApplyModeWorktree) {
			n.Args["mode"] = r.Mode
		}
		r.Next = []NextCall{n}
	case OutcomeFailed:
		r.Next = []NextCall{call("review_changes", "shows the diff and its timeline", "diffId", r.DiffID)}
	default:
		r.Next = nil
	}
}

func (r *RejectResult) present() { dropImpliedPhase(r.Status, &r.Phase) }

func (r *FollowUpResult) present() {
	r.Next = []NextCall{call("wait_for_tasks", "returns when the new run has finished", "taskIds", []string{r.TaskID})}
}

func (r *CancelResult) present() {
	dropImpliedPhase(r.Status, &r.Phase)
	r.Next = nil
	if r.CancelRequested && r.Status != string(models.TaskStateCancelled) {
		r.Next = []NextCall{call("wait_for_tasks", "returns when the task has stopped", "taskIds", []string{r.TaskID})}
	}
}

func (r *SystemStatusResult) present() {
	dropZeroCounts(r.Tasks)
	dropZeroCounts(r.Diffs)
	r.Leader.RenewedAt = secondsPtr(r.Leader.RenewedAt)
	if r.ThisProcess.Holder == r.Leader.Holder {
		r.ThisProcess.Holder = ""
	}
	for i := range r.ThisProcess.Controllers {
		r.ThisProcess.Controllers[i].LastResync = secondsPtr(r.ThisProcess.Controllers[i].LastResync)
	}
	r.Next = nil
	if r.PendingDiffs > 0 {
		r.Next = append(r.Next, call("review_changes", fmt.Sprintf("%d diff(s) wait for a decision", r.PendingDiffs)))
	}
	if n := r.Tasks[string(models.TaskStateNeedsInput)]; n > 0 {
		r.Next = append(r.Next, call("work_status", fmt.Sprintf("%d task(s) wait for an answer", n), "status", string(models.TaskStateNeedsInput)))
	}
}

func (r *LogsResult) present() {
	if r.ContainerName == containerName(r.TaskID, r.Run) {
		r.ContainerName = ""
	}
	if r.Filter == "" {
		r.MatchedLines = 0 // every line matches: totalLines says it
	}
	if len(r.Runs) < 2 {
		r.Runs = nil
	}
	r.Next = nil
	if !r.Truncated || len(r.Lines) == 0 || r.Run < 1 {
		return
	}
	// The container name pins the run, which a task id would not while a
	// new run starts.
	matched := r.TotalLines
	if r.Filter != "" {
		matched = r.MatchedLines
	}
	first, last := r.FirstLine, r.FirstLine+len(r.Lines)-1
	page := func(dir string, line int, why string) NextCall {
		n := call("view_container_logs", why, "identifier", containerName(r.TaskID, r.Run), dir, line)
		if r.Filter != "" {
			n.Args["filter"] = r.Filter
		}
		return n
	}
	if first > 1 {
		r.Next = append(r.Next, page("beforeLine", first, fmt.Sprintf("older lines (1 to %d)", first-1)))
	}
	if last < matched {
		r.Next = append(r.Next, page("fromLine", last+1, fmt.Sprintf("newer lines (%d to %d)", last+1, matched)))
	}
}

func (r *ListLogsResult) present() {
	for i := range r.Logs {
		l := &r.Logs[i]
		if l.ContainerName == containerName(l.TaskID, l.Run) {
			l.ContainerName = ""
		}
		l.Path = "" // view_container_logs reads it by task id
		l.UpdatedAt = seconds(l.UpdatedAt)
	}
	if r.Count == len(r.Logs) {
		r.Count = 0
	}
	r.Next = nil
	if len(r.Logs) > 0 {
		r.Next = []NextCall{call("view_container_logs", "shows the newest output", "identifier", r.Logs[0].TaskID)}
	}
}
