package service

import (
	"fmt"
	"slices"
	"strings"
	"time"
)

// The markdown renderers give each reply a readable text beside its
// structured content: what a model or a person needs first, then details,
// then the next useful call.

type md struct{ strings.Builder }

func (m *md) line(format string, a ...any) { fmt.Fprintf(&m.Builder, format+"\n", a...) }
func (m *md) blank()                       { m.WriteString("\n") }

// fence writes text in a code block whose fence is longer than any run of
// backticks inside it, so a patch or a log can never close it early.
func (m *md) fence(lang, text string) {
	fenceLen := 3
	for run, i := 0, 0; i < len(text); i++ {
		if text[i] == '`' {
			run++
			fenceLen = max(fenceLen, run+1)
		} else {
			run = 0
		}
	}
	f := strings.Repeat("`", fenceLen)
	m.line("%s%s", f, lang)
	m.WriteString(text)
	if !strings.HasSuffix(text, "\n") {
		m.blank()
	}
	m.line("%s", f)
}

// timeline lists an object's events, one a line.
func (m *md) timeline(events []EventView) {
	m.line("Timeline:")
	for _, e := range events {
		m.line("- %s %s: %s", fmtTime(e.Time), e.Reason, oneLine(e.Message, 300))
	}
}

func fmtTime(t time.Time) string { return t.UTC().Format(time.RFC3339) }

func fmtTimePtr(t *time.Time) string {
	if t == nil {
		return "-"
	}
	return fmtTime(*t)
}

// countsLine prints counts in a fixed order, zero counts left out.
func countsLine(counts map[string]int64, order []string) string {
	var parts []string
	for _, k := range order {
		if n := counts[k]; n > 0 {
			parts = append(parts, fmt.Sprintf("%s %d", k, n))
		}
	}
	if len(parts) == 0 {
		return "none"
	}
	return strings.Join(parts, ", ")
}

func (r *TaskWorkerResult) Markdown() string {
	var m md
	if r.Created {
		m.line("## Task %s accepted", r.TaskID)
	} else {
		m.line("## Existing task %s returned", r.TaskID)
	}
	m.blank()
	m.line("- status: **%s** (phase %s)", r.Status, r.Phase)
	m.line("- work folder: `%s`", r.WorkFolder)
	m.line("- agent: %s", r.Agent)
	m.blank()
	m.line("%s.", r.Message)
	m.blank()
	m.line("Next: `wait_for_tasks` taskIds=[\"%s\"], then `review_changes` taskId=\"%s\".", r.TaskID, r.TaskID)
	return m.String()
}

func (r *WorkStatusResult) Markdown() string {
	var m md
	if t := r.Task; t != nil {
		writeTask(&m, t)
		return m.String()
	}
	m.line("## Tasks (%d in total: %s)", r.Total, countsLine(r.Counts, taskStates()))
	m.blank()
	if len(r.Tasks) == 0 {
		m.line("No tasks match.")
		return m.String()
	}
	m.line("| task | status | run | diff | started | description |")
	m.line("|---|---|---|---|---|---|")
	for _, t := range r.Tasks {
		m.line("| %s | %s | %d | %s | %s | %s |", t.TaskID, t.Status, t.RunNumber, orDash(t.DiffID), fmtTime(t.StartTime), tableCell(t.Description))
	}
	writeNextCursor(&m, r.NextCursor)
	return m.String()
}

// writeNextCursor tells a reader of the text how to get the next page.
// writeHint says what the reply left out and how to get it.
func writeHint(m *md, hint string) {
	if hint != "" {
		m.blank()
		m.line("%s", hint)
	}
}

func writeNextCursor(m *md, cursor string) {
	if cursor != "" {
		m.blank()
		m.line("More follow: call again with cursor `%s`.", cursor)
	}
}

func writeTask(m *md, t *TaskView) {
	m.line("## Task %s: %s", t.TaskID, t.Status)
	m.blank()
	m.line("- phase: %s%s", t.Phase, reasonSuffix(t.Reason))
	if t.Message != "" {
		m.line("- message: %s", t.Message)
	}
	m.line("- work folder: `%s`, agent %s, priority %s", t.WorkFolder, t.Agent, t.Priority)
	m.line("- run %d of %d requested%s", t.RunNumber, t.DesiredRuns, map[bool]string{true: ", cancellation requested"}[t.CancelRequested])
	m.line("- accepted %s, run started %s, ended %s", fmtTime(t.StartTime), fmtTimePtr(t.RunStartedAt), fmtTimePtr(t.EndTime))
	if t.ExitCode != nil {
		m.line("- exit code: %d", *t.ExitCode)
	}
	if t.ContainerName != "" {
		m.line("- container: %s", t.ContainerName)
	}
	if t.DiffID != "" {
		files := "?"
		if t.FilesChanged != nil {
			files = fmt.Sprint(*t.FilesChanged)
		}
		m.line("- diff: **%s** (%s file(s) changed) → `review_changes` diffId=\"%s\"", t.DiffID, files, t.DiffID)
	}
	if len(t.DependsOn) > 0 {
		m.line("- depends on: %s", strings.Join(t.DependsOn, ", "))
	}
	if p := t.Progress; p != nil {
		m.line("- agent progress: %d turns, $%.4f", p.NumTurns, p.CostUSD)
		if p.LastMessage != "" {
			m.line("- last message: %s", oneLine(p.LastMessage, 300))
		}
	}
	if t.PendingQuestion != "" {
		m.blank()
		m.line("**The agent asks:** %s", t.PendingQuestion)
		m.line("Answer with `answer_worker_question` taskId=\"%s\".", t.TaskID)
	}
	if t.Description != "" {
		m.blank()
		m.line("Description: %s", oneLine(t.Description, 500))
	}
	if len(t.Events) > 0 {
		m.blank()
		m.timeline(t.Events)
	}
}

func (r *ReviewResult) Markdown() string {
	var m md
	if r.Diff != nil {
		writeDiff(&m, r.Diff, true)
		writeHint(&m, r.Hint)
		return m.String()
	}
	if len(r.Pending) == 0 {
		m.line("No diffs are waiting for review.")
		return m.String()
	}
	m.line("## %d diff(s) waiting for a decision", len(r.Pending))
	for i := range r.Pending {
		m.blank()
		writeDiff(&m, &r.Pending[i], false)
	}
	if r.Hint != "" {
		writeHint(&m, r.Hint)
	} else {
		writeNextCursor(&m, r.NextCursor)
	}
	return m.String()
}

func writeDiff(m *md, d *DiffView, single bool) {
	m.line("### Diff %s (task %s, run %d): %s", d.DiffID, d.TaskID, d.RunNumber, d.Status)
	m.blank()
	if d.TaskDescription != "" {
		m.line("Task: %s", oneLine(d.TaskDescription, 200))
	}
	m.line("%d file(s) changed, +%d −%d, patch %d bytes", d.FilesChanged, d.Additions, d.Deletions, d.PatchSize)
	if d.WorkFolder != "" {
		m.line("Work folder: `%s`", d.WorkFolder)
	}
	if d.Message != "" {
		m.line("Message: %s", d.Message)
	}
	if d.AppliedTo != "" {
		m.line("Applied to `%s`%s at %s", d.AppliedTo, map[bool]string{true: " as branch " + d.Branch}[d.Branch != ""], fmtTimePtr(d.AppliedAt))
	}
	if len(d.ConflictFiles) > 0 {
		m.line("Conflicting files: %s", strings.Join(d.ConflictFiles, ", "))
	}
	m.blank()
	for _, f := range d.Files {
		name := f.Path
		if f.OldPath != "" {
			name = f.OldPath + " → " + f.Path
		}
		extra := ""
		if f.Binary {
			extra = " (binary)"
		}
		m.line("- %s `%s` +%d −%d%s", f.Status, name, f.Additions, f.Deletions, extra)
	}
	if d.Patch != "" {
		m.blank()
		m.fence("diff", d.Patch)
	}
	if d.PatchTruncated {
		m.line("(patch cut; the whole patch is the resource %s)", d.PatchURI)
	}
	if len(d.Events) > 0 {
		m.blank()
		m.line("Base %s, result %s, patch sha256 %s", orDash(d.BaseCommit), orDash(d.ResultCommit), orDash(d.PatchSHA256))
		m.timeline(d.Events)
	}
	if single && d.Status == "pending" {
		m.blank()
		m.line("Next: `apply_changes` diffId=\"%s\", `request_revision` diffId=\"%s\" feedback=\"...\", or `reject_changes` diffId=\"%s\".", d.DiffID, d.DiffID, d.DiffID)
	}
}

func (r *ApplyResult) Markdown() string {
	var m md
	title := map[string]string{
		OutcomeApplied: "applied", OutcomeConflict: "CONFLICT — not applied", OutcomeFailed: "FAILED — not applied",
		OutcomeInProgress: "apply in progress", OutcomePreview: "preview (not applied)",
	}[r.Outcome]
	m.line("## Diff %s: %s", r.DiffID, title)
	m.blank()
	m.line("- target: `%s` (%s mode)", r.Target, r.Mode)
	if r.Branch != "" {
		m.line("- branch: `%s`", r.Branch)
	}
	m.line("- status: %s (phase %s)%s", r.Status, r.Phase, reasonSuffix(r.Reason))
	if len(r.ConflictFiles) > 0 {
		m.line("- conflicting files: %s", strings.Join(r.ConflictFiles, ", "))
	}
	if len(r.Files) > 0 {
		m.line("- files: %s", strings.Join(r.Files, ", "))
	}
	m.blank()
	m.line("%s", r.Message)
	return m.String()
}

func (r *RejectResult) Markdown() string {
	var m md
	m.line("## Diff %s: %s", r.DiffID, r.Message)
	m.blank()
	m.line("- status: %s (phase %s)", r.Status, r.Phase)
	if r.Reason != "" {
		m.line("- reason: %s", oneLine(r.Reason, 500))
	}
	return m.String()
}

func (r *FollowUpResult) Markdown() string {
	var m md
	m.line("## Task %s: run %d requested", r.TaskID, r.Run)
	m.blank()
	m.line("%s.", strings.TrimSuffix(r.Message, "."))
	m.blank()
	m.line("Next: `wait_for_tasks` taskIds=[\"%s\"].", r.TaskID)
	return m.String()
}

func (r *CancelResult) Markdown() string {
	var m md
	m.line("## Task %s: %s", r.TaskID, r.Status)
	m.blank()
	m.line("%s.", strings.TrimSuffix(r.Message, "."))
	return m.String()
}

func (r *WaitResult) Markdown() string {
	var m md
	switch {
	case r.AllFinished:
		m.line("## All %d task(s) finished", len(r.Tasks))
	default:
		done := 0
		for _, t := range r.Tasks {
			if t.Finished {
				done++
			}
		}
		m.line("## %d of %d task(s) finished after %.0fs; call wait_for_tasks again to keep waiting", done, len(r.Tasks), r.WaitedSeconds)
	}
	m.blank()
	m.line("| task | status | diff | reason |")
	m.line("|---|---|---|---|")
	for _, t := range r.Tasks {
		m.line("| %s | %s | %s | %s |", t.TaskID, t.Status, orDash(t.DiffID), tableCell(firstNonEmpty(t.Message, t.Reason)))
	}
	var diffs []string
	for _, t := range r.Tasks {
		if t.DiffID != "" && t.Finished {
			diffs = append(diffs, t.DiffID)
		}
	}
	if len(diffs) > 0 {
		m.blank()
		m.line("Review with `review_changes` diffId=\"%s\"%s.", diffs[0], map[bool]string{true: " (and the others)"}[len(diffs) > 1])
	}
	return m.String()
}

func (r *SystemStatusResult) Markdown() string {
	var m md
	m.line("## claude-parallel %s", r.Version)
	m.blank()
	if r.Docker.Reachable {
		m.line("- Docker: reachable, engine %s (API %s)", r.Docker.Version, r.Docker.APIVersion)
	} else {
		m.line("- Docker: **unreachable** (%s); tasks wait until it answers", r.Docker.Error)
	}
	switch {
	case r.Leader.Active:
		m.line("- controllers: running in %s (lease renewed %s)", r.Leader.Holder, fmtTimePtr(r.Leader.RenewedAt))
	case r.Leader.Stalled != "":
		m.line("- controllers: **not running**: the lease's last holder %s: %s", r.Leader.Holder, r.Leader.Stalled)
	default:
		m.line("- controllers: **no process holds the lease**; start `claude-parallel serve`")
	}
	if r.ThisProcess.ControllersWired {
		m.line("- this process: %s", map[bool]string{true: "leader", false: "standby"}[r.ThisProcess.IsLeader])
	}
	m.line("- tasks: %s", countsLine(r.Tasks, taskStates()))
	var diffStates []string
	for k := range r.Diffs {
		diffStates = append(diffStates, k)
	}
	slices.Sort(diffStates)
	m.line("- diffs: %s (%d waiting for a decision)", countsLine(r.Diffs, diffStates), r.PendingDiffs)
	m.line("- containers: %d managed, %d running, %d adopted", r.Containers.Managed, r.Containers.Running, r.Containers.Adopted)
	m.line("- max parallel: %d; agents: %s (default %s)", r.MaxParallel, strings.Join(r.Profiles, ", "), r.DefaultAgent)
	m.line("- allowed roots: %s", strings.Join(r.AllowedRoots, ", "))
	for _, c := range r.ThisProcess.Controllers {
		m.line("- controller %s: %d reconciles, %d errors, queue %d%s", c.Name, c.Reconciles, c.Errors, c.QueueDepth,
			map[bool]string{true: ", last error: " + oneLine(c.LastError, 200)}[c.LastError != ""])
	}
	m.blank()
	m.line("Paths: config %s, database `%s`, logs `%s`, task logs `%s`, workspaces `%s`",
		firstNonEmpty(r.Paths.ConfigFile, "(built-in defaults)"), r.Paths.Database, r.Paths.Logs, r.Paths.TaskLogs, r.Paths.Workspaces)
	return m.String()
}

func (r *LogsResult) Markdown() string {
	var m md
	m.line("## Logs of %s run %d (%s)", r.TaskID, r.Run, orDash(r.ContainerName))
	m.blank()
	switch {
	case r.Run == 0:
		m.line("No run has started yet.")
		return m.String()
	case !r.Exists:
		m.line("The run has written no output yet.")
		return m.String()
	}
	shown := fmt.Sprintf("%d line(s) shown of %d", len(r.Lines), r.TotalLines)
	if r.MatchedLines != r.TotalLines {
		shown += fmt.Sprintf(" (%d matched the filter)", r.MatchedLines)
	}
	m.line("%s; %s", shown, map[bool]string{true: "run complete", false: "run still writing"}[r.Complete])
	m.blank()
	m.fence("text", strings.Join(r.Lines, "\n"))
	if len(r.Runs) > 1 {
		m.line("Runs with logs: %s", joinInts(r.Runs))
	}
	writeHint(&m, r.Hint)
	return m.String()
}

func (r *ListLogsResult) Markdown() string {
	var m md
	if len(r.Logs) == 0 {
		m.line("No task logs recorded.")
		return m.String()
	}
	m.line("## %d log file(s)", r.Count)
	m.blank()
	m.line("| task | run | size | complete | updated |")
	m.line("|---|---|---|---|---|")
	for _, l := range r.Logs {
		m.line("| %s | %d | %d | %t | %s |", l.TaskID, l.Run, l.Size, l.Complete, fmtTime(l.UpdatedAt))
	}
	m.blank()
	m.line("View one with `view_container_logs` identifier=\"%s\".", r.Logs[0].TaskID)
	return m.String()
}

func orDash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}

// oneLine flattens text for a list item or table cell.
func oneLine(s string, max int) string {
	return cut(strings.Join(strings.Fields(s), " "), max)
}

func tableCell(s string) string {
	return strings.ReplaceAll(oneLine(s, 80), "|", "\\|")
}

func joinInts(ns []int) string {
	parts := make([]string, len(ns))
	for i, n := range ns {
		parts[i] = fmt.Sprint(n)
	}
	return strings.Join(parts, ", ")
}
