package main

import (
	"fmt"
	"strings"

	"github.com/claude-parallel/claude-parallel/mcp/service"
)

// The service decides what follows a result (its suggested calls, written
// for an MCP client as tool calls); a person at a terminal gets the result's
// facts and, after them, the same steps as claude-parallel commands. A call
// with no command here (answering a question, asking for a revision: MCP
// only) is left out.

// commandsFor names the suggested calls as commands, each once, in order.
func commandsFor(next []service.NextCall) []string {
	var out []string
	seen := map[string]bool{}
	add := func(cmds ...string) {
		for _, c := range cmds {
			if !seen[c] {
				seen[c] = true
				out = append(out, c)
			}
		}
	}
	for _, n := range next {
		add(commandFor(n)...)
	}
	return out
}

// commandFor is the claude-parallel command for one suggested call, or nil.
func commandFor(n service.NextCall) []string {
	str := func(k string) string { s, _ := n.Args[k].(string); return s }
	const cp = "claude-parallel "
	switch n.Tool {
	case "wait_for_tasks":
		ids, _ := n.Args["taskIds"].([]string)
		var cmds []string
		for _, id := range ids {
			cmds = append(cmds, cp+"task logs "+id+" --follow")
		}
		if len(ids) == 1 {
			cmds = append(cmds, cp+"task show "+ids[0])
		}
		return cmds
	case "work_status":
		switch {
		case str("taskId") != "":
			return []string{cp + "task show " + str("taskId")}
		case str("cursor") != "":
			return nil // the CLI's list has no pages: --limit shows more
		case str("status") != "":
			return []string{cp + "task list --status " + str("status")}
		}
	case "review_changes":
		switch {
		case str("diffId") != "":
			return []string{cp + "diff show " + str("diffId") + " --patch"}
		case str("taskId") != "":
			return []string{cp + "task show " + str("taskId")}
		case str("cursor") != "":
			return nil
		default:
			return []string{cp + "diff list"}
		}
	case "apply_changes":
		c := cp + "diff apply " + str("diffId") + " --wait"
		if t := str("targetWorkspace"); t != "" {
			c += " --to " + shellWord(t)
		}
		if m := str("mode"); m != "" {
			c += " --mode " + m
		}
		return []string{c}
	case "reject_changes":
		return []string{cp + "diff reject " + str("diffId")}
	case "view_container_logs":
		return []string{cp + "task logs " + str("identifier")}
	}
	return nil
}

// shellWord quotes s for a POSIX shell when it needs it.
func shellWord(s string) string {
	if s != "" && strings.Trim(s, "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-_./:@%+=,") == "" {
		return s
	}
	return "'" + strings.ReplaceAll(s, "'", `'\''`) + "'"
}

// forPeople is a result as a person reads it: its facts, then the "Next:"
// commands, one a line, ready to copy.
func forPeople(r service.Result) string {
	text, next := service.Facts(r)
	cmds := commandsFor(next)
	if len(cmds) == 0 {
		return text
	}
	return text + fmt.Sprintf("\nNext:\n  %s\n", strings.Join(cmds, "\n  "))
}
