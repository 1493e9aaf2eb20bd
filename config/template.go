package config

import (
	"fmt"
	"io"
	"strings"
	"text/template"
)

// TemplateData is what a command template can refer to, e.g. {{.Prompt}}.
type TemplateData struct {
	// Prompt is the task's prompt.
	Prompt string
	// SessionID is the agent session a resume command continues.
	SessionID string
	// Feedback is the revision request or the answer to the agent's question
	// that a resume command passes on.
	Feedback string
	// TaskID is the task's id (task-<12 hex>).
	TaskID string
	// Run is the run number, starting at 1.
	Run int
}

// RenderCommand renders the profile's Command for data.
func (p Profile) RenderCommand(data TemplateData) ([]string, error) {
	return RenderArgv(p.Command, data)
}

// RenderResumeCommand renders the profile's ResumeCommand, or Command when
// the profile has no resume command.
func (p Profile) RenderResumeCommand(data TemplateData) ([]string, error) {
	if len(p.ResumeCommand) == 0 {
		return RenderArgv(p.Command, data)
	}
	return RenderArgv(p.ResumeCommand, data)
}

// RenderArgv renders each template element on its own, so each becomes
// exactly one argv element whatever the data contains (spaces, quotes,
// newlines, shell syntax): no value is ever re-split or handed to a shell by
// this function. text/template is used, so nothing is HTML-escaped.
func RenderArgv(argv []string, data TemplateData) ([]string, error) {
	if len(argv) == 0 {
		return nil, fmt.Errorf("render command: empty command")
	}
	out := make([]string, len(argv))
	var b strings.Builder
	for i, elem := range argv {
		t, err := parseArgTemplate(elem)
		if err != nil {
			return nil, fmt.Errorf("render command element %d: %w", i, err)
		}
		b.Reset()
		if err := t.Execute(&b, data); err != nil {
			return nil, fmt.Errorf("render command element %d: %w", i, err)
		}
		out[i] = b.String()
	}
	return out, nil
}

func parseArgTemplate(elem string) (*template.Template, error) {
	return template.New("arg").Option("missingkey=error").Parse(elem)
}

// checkArgTemplate parses elem and executes it once, which is the only way
// to catch a misspelt field such as {{.Promt}} before a task runs into it.
func checkArgTemplate(elem string) error {
	t, err := parseArgTemplate(elem)
	if err != nil {
		return err
	}
	return t.Execute(io.Discard, TemplateData{})
}
