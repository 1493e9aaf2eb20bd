package fakeanthropic

import (
	"encoding/json"
	"strings"
)

// A prompt can carry the model's part: one line per turn, each ScriptPrefix
// followed by a Reply in JSON. ScriptModel plays it, so a model running
// where the test cannot reach (inside a container) still follows the test's
// script, and a follow-up prompt (a revision, an answer) brings the next
// part of the script with it.

// ScriptPrefix starts each scripted line of a prompt.
const ScriptPrefix = "fake-model: "

// ScriptDone is the text the model answers once a script has run out.
const ScriptDone = "Done."

// Script renders replies as prompt lines for ScriptModel.
func Script(steps ...Reply) string {
	var b strings.Builder
	for _, st := range steps {
		j, err := json.Marshal(st)
		if err != nil {
			panic(err) // a Reply always marshals
		}
		b.WriteString(ScriptPrefix)
		b.Write(j)
		b.WriteByte('\n')
	}
	return b.String()
}

// ParseScript reads the scripted replies of a text; nil when it has none.
func ParseScript(text string) []Reply {
	var steps []Reply
	for _, line := range strings.Split(text, "\n") {
		rest, ok := strings.CutPrefix(strings.TrimSpace(line), ScriptPrefix)
		if !ok {
			continue
		}
		var r Reply
		if json.Unmarshal([]byte(rest), &r) == nil {
			steps = append(steps, r)
		}
	}
	return steps
}

// ScriptModel plays the script of the newest user message that has one:
// step n answers the n-th model turn after that message (the turns are
// counted by the tool calls the model made since), then ScriptDone. An
// error step repeats on a retry, as the API would. Side requests (those
// that offer no tools, such as a title or a summary) are answered "ok".
func ScriptModel(c Conversation) Reply {
	if len(c.Tools) == 0 {
		return Reply{Text: "ok"}
	}
	at, steps := -1, []Reply(nil)
	for i, m := range c.Messages {
		if m.Role != "user" {
			continue
		}
		for _, t := range m.Texts {
			if s := ParseScript(t); s != nil {
				at, steps = i, s
			}
		}
	}
	if at < 0 {
		return Reply{Text: "The prompt holds no " + strings.TrimSpace(ScriptPrefix) + " script."}
	}
	n := 0
	for _, m := range c.Messages[at+1:] {
		if m.Role == "assistant" {
			n += len(m.ToolUses)
		}
	}
	if n >= len(steps) {
		return Reply{Text: ScriptDone}
	}
	return steps[n]
}
