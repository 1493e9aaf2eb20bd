package main

import (
	"fmt"
	"regexp"
	"strings"

	"github.com/claude-parallel/claude-parallel/mcp/service"
	"github.com/claude-parallel/claude-parallel/models"
)

// The service's readable text is written for an MCP client: its hints name
// tool calls (`wait_for_tasks` taskIds=[…]). A person at a terminal gets the
// same text without those hints and, after it, the claude-parallel commands
// that come next.

// toolCall finds a backquoted MCP tool name (snake_case) in a line of text,
// alone or with its arguments (`wait_for_tasks taskIds=[…]`).
var toolCall = regexp.MustCompile("`[a-z]+(?:_[a-z]+)+[ `]")

// forPeople drops the lines of text that tell an MCP client which tool to
// call next, keeping the facts: a "fact → `tool` …" line keeps its fact.
func forPeople(text string) string {
	lines := strings.SplitAfter(text, "\n")
	out := make([]string, 0, len(lines))
	for _, l := range lines {
		if i := strings.Index(l, " → `"); i >= 0 && toolCall.MatchString(l[i:]) {
			out = append(out, l[:i]+"\n")
			continue
		}
		if toolCall.MatchString(l) || strings.HasPrefix(l, "More follow: call again with cursor") {
			continue
		}
		out = append(out, l)
	}
	// A "Next:" heading whose calls were all dropped goes with them.
	kept := out[:0]
	for i, l := range out {
		if l == "Next:\n" && (i+1 == len(out) || strings.TrimSpace(out[i+1]) == "") {
			continue
		}
		kept = append(kept, l)
	}
	// Dropped lines may leave blank lines in pairs (or one at the end).
	text = strings.Join(kept, "")
	for strings.Contains(text, "\n\n\n") {
		text = strings.ReplaceAll(text, "\n\n\n", "\n\n")
	}
	return strings.TrimRight(text, "\n") + "\n"
}

// nextSteps are the commands a person runs after seeing v, or nil.
func nextSteps(v any) []string {
	switch r := v.(type) {
	case *service.TaskWorkerResult:
		return []string{"claude-parallel task logs " + r.TaskID + " --follow", "claude-parallel task show " + r.TaskID}
	case *service.WorkStatusResult:
		if r.Task != nil {
			return taskNext(r.Task)
		}
	case *service.ReviewResult:
		if d := r.Diff; d != nil && d.Desired == string(models.DiffDesiredPending) && d.Status != string(models.DiffStateSuperseded) {
			return diffNext(d.DiffID, d.Patch == "")
		}
		if len(r.Pending) > 0 {
			return []string{"claude-parallel diff show " + r.Pending[0].DiffID + " --patch"}
		}
	case *service.ApplyResult:
		if r.Outcome == service.OutcomeInProgress {
			return []string{"claude-parallel diff show " + r.DiffID}
		}
	case *service.CancelResult:
		if r.CancelRequested {
			return []string{"claude-parallel task show " + r.TaskID}
		}
	}
	return nil
}

// taskNext follows a task: its output while it runs, its diff once done.
func taskNext(t *service.TaskView) []string {
	switch {
	case !t.Finished:
		return []string{"claude-parallel task logs " + t.TaskID + " --follow"}
	case t.DiffID != "":
		return []string{"claude-parallel diff show " + t.DiffID + " --patch"}
	}
	return nil
}

// diffNext decides on a pending diff, after reading its patch when the
// reply did not show it.
func diffNext(diffID string, patchHidden bool) []string {
	var steps []string
	if patchHidden {
		steps = append(steps, "claude-parallel diff show "+diffID+" --patch")
	}
	return append(steps, "claude-parallel diff apply "+diffID+" --wait", "claude-parallel diff reject "+diffID)
}

// nextLines are the "Next:" lines printed after a result, "" when nothing
// follows: one command a line, ready to copy.
func nextLines(v any) string {
	steps := nextSteps(v)
	if len(steps) == 0 {
		return ""
	}
	return fmt.Sprintf("\nNext:\n  %s\n", strings.Join(steps, "\n  "))
}
