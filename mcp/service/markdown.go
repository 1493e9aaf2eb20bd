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

// md is a reply's text being written. With factsOnly the suggested calls
// are kept (next) but not written: an adapter that names what follows in its
// own terms, the CLI's commands, writes them itself.
type md struct {
	strings.Builder
	factsOnly bool
	next      []NextCall
}

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

func (r *TaskWorkerResult) text(m *md) string {
	r.present()
	if r.Created {
		m.line("## Task %s accepted", r.TaskID)
	} else {
		m.line("## Existing task %s returned", r.TaskID)
	}
	m.blank()
	m.line("- status: **%s**%s", r.Status, phaseSuffix(r.Phase))
	m.line("- work folder: `%s`, agent %s", r.WorkFolder, r.Agent)
	if r.Message != "" {
		m.blank()
		m.line("%s.", strings.TrimSuffix(r.Message, "."))
	}
	writeNext(m, r.Next)
	return m.String()
}

func phaseSuffix(phase string) string {
	if phase == "" {
		return ""
	}
	return " (phase " + phase + ")"
}

func (r *WorkStatusResult) text(m *md) string {
	r.present()
	if t := r.Task; t != nil {
		writeTask(m, t)
		writeNext(m, r.Next)
		return m.String()
	}
	title := "Tasks"
	if r.Filter != "" {
		title = "Tasks with status " + r.Filter
	}
	m.line("## %s (%d in total: %s)", title, r.Total, countsLine(r.Counts, taskStates()))
	m.blank()
	if len(r.Tasks) == 0 {
		m.line("No tasks match.")
		return m.String()
	}
	if r.WorkFolder != "" || r.Agent != "" {
		var shared []string
		if r.WorkFolder != "" {
			shared = append(shared, fmt.Sprintf("work folder `%s`", r.WorkFolder))
		}
		if r.Agent != "" {
			shared = append(shared, "agent "+r.Agent)
		}
		m.line("All with %s.", strings.Join(shared, ", "))
		m.blank()
	}
	m.line("| task | status | run | diff | accepted | description |")
	m.line("|---|---|---|---|---|---|")
	for _, t := range r.Tasks {
		status := t.Status + phaseSuffix(t.Phase)
		if t.Reason != "" {
			status += ": " + t.Reason
		}
		desc := t.Description
		if t.WorkFolder != "" {
			desc += " (in " + t.WorkFolder + ")"
		}
		if t.Agent != "" {
			desc += " (agent " + t.Agent + ")"
		}
		m.line("| %s | %s | %d | %s | %s | %s |", t.TaskID, tableCell(status), t.RunNumber, orDash(t.DiffID), fmtTime(t.StartTime), tableCell(desc))
	}
	writeNext(m, r.Next)
	return m.String()
}

func writeTask(m *md, t *TaskView) {
	m.line("## Task %s: %s", t.TaskID, t.Status)
	m.blank()
	if t.Phase != "" || t.Reason != "" {
		m.line("- phase: %s%s", PhaseOf(t.Status, t.Phase), reasonSuffix(t.Reason))
	}
	if t.Message != "" {
		m.line("- message: %s", t.Message)
	}
	m.line("- work folder: `%s`, agent %s, priority %s", t.WorkFolder, t.Agent, t.Priority)
	run := fmt.Sprintf("- run %d", t.RunNumber)
	if t.DesiredRuns > 0 {
		run += fmt.Sprintf(" (run %d requested)", t.DesiredRuns)
	}
	if t.Finished {
		run += ", finished"
	}
	if t.CancelRequested {
		run += ", cancellation requested"
	}
	m.line("%s", run)
	times := []string{"accepted " + fmtTime(t.StartTime)}
	if t.RunStartedAt != nil {
		times = append(times, "run started "+fmtTime(*t.RunStartedAt))
	}
	if t.EndTime != nil {
		times = append(times, "ended "+fmtTime(*t.EndTime))
	}
	if t.LastOutputAt != nil {
		times = append(times, "last output "+fmtTime(*t.LastOutputAt))
	}
	m.line("- %s", strings.Join(times, ", "))
	if t.ExitCode != nil {
		m.line("- exit code: %d", *t.ExitCode)
	}
	if t.ContainerName != "" {
		m.line("- container: %s", t.ContainerName)
	}
	if t.DiffID != "" {
		files := ""
		if t.FilesChanged != nil {
			files = fmt.Sprintf(" (%d file(s) changed)", *t.FilesChanged)
		}
		m.line("- diff: **%s**%s", t.DiffID, files)
	}
	if t.BaseRef != "" || t.BaseCommit != "" {
		m.line("- base: %s", strings.TrimSpace(t.BaseRef+" "+t.BaseCommit))
	}
	if len(t.DependsOn) > 0 {
		m.line("- depends on: %s", strings.Join(t.DependsOn, ", "))
	}
	if t.ParentTaskID != "" {
		m.line("- parentTaskId: %s", t.ParentTaskID)
	}
	if p := t.Progress; p != nil {
		m.line("- agent progress: %d turns, $%.4f%s", p.NumTurns, p.CostUSD, map[bool]string{true: ", session " + p.SessionID}[p.SessionID != ""])
		if p.LastMessage != "" {
			m.line("- last message: %s", p.LastMessage)
		}
		if p.ResultText != "" {
			m.line("- result: %s", p.ResultText)
		}
	}
	if t.PendingQuestion != "" {
		m.blank()
		m.line("**The agent asks:** %s", t.PendingQuestion)
	}
	if t.Description != "" {
		m.blank()
		m.line("Description: %s", t.Description)
	}
	if t.Prompt != "" {
		m.blank()
		m.line("Task: %s", t.Prompt)
	}
	if len(t.Events) > 0 {
		m.blank()
		m.timeline(t.Events)
	}
}

func (r *ReviewResult) text(m *md) string {
	r.present()
	if r.Diff != nil {
		writeDiff(m, r.Diff)
		writeNext(m, r.Next)
		return m.String()
	}
	if len(r.Pending) == 0 {
		m.line("No diffs are waiting for review.")
		return m.String()
	}
	m.line("## %d diff(s) waiting for a decision", len(r.Pending))
	for i := range r.Pending {
		m.blank()
		writeDiff(m, &r.Pending[i])
	}
	writeNext(m, r.Next)
	return m.String()
}

func writeDiff(m *md, d *DiffView) {
	m.line("### Diff %s (task %s, run %d): %s%s, decision %s", d.DiffID, d.TaskID, d.RunNumber, d.Status, phaseSuffix(d.Phase), d.Desired)
	m.blank()
	if d.TaskDescription != "" {
		m.line("Task: %s", d.TaskDescription)
	}
	m.line("%d file(s) changed, +%d −%d, patch %d bytes, created %s", d.FilesChanged, d.Additions, d.Deletions, d.PatchSize, fmtTime(d.CreatedAt))
	if d.WorkFolder != "" {
		m.line("Work folder: `%s`", d.WorkFolder)
	}
	if d.TargetWorkspace != "" || d.ApplyMode != "" {
		m.line("Apply asked: target `%s`, mode %s", orDash(d.TargetWorkspace), orDash(d.ApplyMode))
	}
	if d.Reason != "" {
		m.line("Reason: %s", d.Reason)
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
	if d.RejectReason != "" {
		m.line("Rejected because: %s", d.RejectReason)
	}
	if d.BaseCommit != "" || d.ResultCommit != "" || d.PatchSHA256 != "" {
		m.line("Base %s, result %s, patch sha256 %s", orDash(d.BaseCommit), orDash(d.ResultCommit), orDash(d.PatchSHA256))
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
		if d.PatchFile != "" || d.PatchOffset > 0 {
			m.line("Patch%s from byte %d:", map[bool]string{true: " of " + d.PatchFile}[d.PatchFile != ""], d.PatchOffset)
		}
		m.fence("diff", d.Patch)
	}
	if d.PatchTruncated {
		m.line("(patch cut%s; the whole patch is the resource %s)", map[bool]string{true: fmt.Sprintf(" at byte %d", d.NextOffset)}[d.NextOffset > 0], d.PatchURI)
	}
	if len(d.Events) > 0 {
		m.blank()
		m.timeline(d.Events)
	}
}

func (r *ApplyResult) text(m *md) string {
	r.present()
	title := map[string]string{
		OutcomeApplied: "applied", OutcomeConflict: "CONFLICT — not applied", OutcomeFailed: "FAILED — not applied",
		OutcomeInProgress: "apply in progress", OutcomePreview: "preview (not applied)",
	}[r.Outcome]
	m.line("## Diff %s (task %s): %s", r.DiffID, r.TaskID, title)
	m.blank()
	m.line("- target: `%s`%s", r.Target, map[bool]string{true: " (" + r.Mode + " mode)"}[r.Mode != ""])
	if r.Branch != "" {
		m.line("- branch: `%s`", r.Branch)
	}
	if r.Status != "" {
		m.line("- status: %s%s", r.Status, phaseSuffix(r.Phase))
	}
	if r.Reason != "" {
		m.line("- reason: %s", r.Reason)
	}
	if len(r.ConflictFiles) > 0 {
		m.line("- conflicting files: %s", strings.Join(r.ConflictFiles, ", "))
	}
	if len(r.Files) > 0 {
		m.line("- files: %s", strings.Join(r.Files, ", "))
	}
	if r.Message != "" {
		m.blank()
		m.line("%s", r.Message)
	}
	writeNext(m, r.Next)
	return m.String()
}

func (r *RejectResult) text(m *md) string {
	r.present()
	m.line("## Diff %s: %s", r.DiffID, r.Message)
	m.blank()
	m.line("- status: %s%s", r.Status, phaseSuffix(r.Phase))
	if r.Reason != "" {
		m.line("- reason: %s", r.Reason)
	}
	writeNext(m, r.Next)
	return m.String()
}

func (r *FollowUpResult) text(m *md) string {
	r.present()
	m.line("## Task %s: run %d requested (status %s)", r.TaskID, r.Run, r.Status)
	m.blank()
	if r.DiffID != "" {
		m.line("Revising diff %s.", r.DiffID)
	}
	if r.Message != "" {
		m.line("%s.", strings.TrimSuffix(r.Message, "."))
	}
	writeNext(m, r.Next)
	return m.String()
}

func (r *CancelResult) text(m *md) string {
	r.present()
	m.line("## Task %s: %s%s%s", r.TaskID, r.Status, phaseSuffix(r.Phase), map[bool]string{true: ", cancellation requested"}[r.CancelRequested])
	m.blank()
	if r.Message != "" {
		m.line("%s.", strings.TrimSuffix(r.Message, "."))
	}
	writeNext(m, r.Next)
	return m.String()
}

func (r *WaitResult) text(m *md) string {
	r.present()
	switch {
	case r.AllFinished:
		m.line("## All %d task(s) finished after %.0fs", len(r.Tasks), r.WaitedSeconds)
	default:
		done := 0
		for _, t := range r.Tasks {
			if t.Finished {
				done++
			}
		}
		m.line("## %d of %d task(s) finished after %.0fs%s", done, len(r.Tasks), r.WaitedSeconds, map[bool]string{true: "; the wait timed out"}[r.TimedOut])
	}
	m.blank()
	m.line("| task | status | finished | diff | reason |")
	m.line("|---|---|---|---|---|")
	for _, t := range r.Tasks {
		status := t.Status + phaseSuffix(t.Phase)
		if t.ExitCode != nil {
			status += fmt.Sprintf(", exit %d", *t.ExitCode)
		}
		reason := strings.TrimSpace(t.Reason + " " + t.Message)
		m.line("| %s | %s | %s | %s | %s |", t.TaskID, status, map[bool]string{true: "yes", false: "no"}[t.Finished], orDash(t.DiffID), tableCell(reason))
	}
	for _, t := range r.Tasks {
		if t.Question != "" {
			m.blank()
			m.line("**%s asks:** %s", t.TaskID, t.Question)
		}
	}
	writeNext(m, r.Next)
	return m.String()
}

func (r *SystemStatusResult) text(m *md) string {
	r.present()
	m.line("## claude-parallel %s (installation %s)", r.Version, r.InstallationID)
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
	if p := r.ThisProcess; p.ControllersWired {
		m.line("- this process: %s%s", map[bool]string{true: "leader", false: "standby"}[p.IsLeader], map[bool]string{true: " (" + p.Holder + ")"}[p.Holder != ""])
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
		m.line("- controller %s: %s", c.Name, controllerLine(c))
	}
	m.blank()
	p := r.Paths
	m.line("Paths: config %s, home `%s`, database `%s`, logs `%s`, task logs `%s`, workspaces `%s`%s",
		firstNonEmpty(p.ConfigFile, "(built-in defaults)"), p.Home, p.Database, p.Logs, p.TaskLogs, p.Workspaces,
		map[bool]string{true: ", Docker host " + p.DockerHost}[p.DockerHost != ""])
	writeNext(m, r.Next)
	return m.String()
}

// controllerLine lists a controller's figures that are not zero.
func controllerLine(c ControllerStats) string {
	parts := []string{map[bool]string{true: "running", false: "stopped"}[c.Running]}
	for _, f := range []struct {
		n    uint64
		name string
	}{{uint64(c.Workers), "workers"}, {c.Reconciles, "reconciles"}, {c.Errors, "errors"}, {c.TerminalErrors, "terminal errors"},
		{c.Panics, "panics"}, {c.Requeues, "requeues"}, {c.Resyncs, "resyncs"}, {uint64(max(c.OverduePasses, 0)), "overdue passes"}, {uint64(c.QueueDepth), "queued"}} {
		if f.n > 0 {
			parts = append(parts, fmt.Sprintf("%d %s", f.n, f.name))
		}
	}
	if c.LastResync != nil {
		parts = append(parts, "last resync "+fmtTime(*c.LastResync))
	}
	if c.LastError != "" {
		parts = append(parts, "last error: "+c.LastError)
	}
	return strings.Join(parts, ", ")
}

func (r *LogsResult) text(m *md) string {
	r.present()
	m.line("## Logs of %s run %d%s", r.TaskID, r.Run, map[bool]string{true: " (container " + r.ContainerName + ")"}[r.ContainerName != ""])
	m.blank()
	switch {
	case r.Run == 0:
		m.line("No run has started yet.")
		return m.String()
	case !r.Exists:
		m.line("The run has written no output yet (%s).", r.LogFile)
		return m.String()
	}
	first, last := r.FirstLine, r.FirstLine+len(r.Lines)-1
	shown := fmt.Sprintf("Lines %d to %d of %d", first, last, r.TotalLines)
	if len(r.Lines) == 0 {
		shown = fmt.Sprintf("No lines of %d", r.TotalLines)
	}
	if r.Filter != "" {
		shown = fmt.Sprintf("%s; %d of them contain the filter, and the numbers count those", shown, r.MatchedLines)
	}
	m.line("%s; %d bytes in %s; %s", shown, r.Size, r.LogFile, map[bool]string{true: "run complete", false: "run still writing"}[r.Complete])
	m.blank()
	m.fence("text", strings.Join(r.Lines, "\n"))
	if len(r.Runs) > 1 {
		m.line("Runs with logs: %s", joinInts(r.Runs))
	}
	writeNext(m, r.Next)
	return m.String()
}

func (r *ListLogsResult) text(m *md) string {
	r.present()
	if len(r.Logs) == 0 {
		m.line("No task logs recorded.")
		return m.String()
	}
	m.line("## %d log file(s)", len(r.Logs))
	m.blank()
	m.line("| task | run | bytes | complete | updated |")
	m.line("|---|---|---|---|---|")
	for _, l := range r.Logs {
		task := l.TaskID
		if l.ContainerName != "" {
			task += " (" + l.ContainerName + ")"
		}
		m.line("| %s | %d | %d | %t | %s |", task, l.Run, l.Size, l.Complete, fmtTime(l.UpdatedAt))
	}
	writeNext(m, r.Next)
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
