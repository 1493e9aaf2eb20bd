package config

import (
	"reflect"
	"strings"
	"testing"
)

func TestRenderCommand_PromptStaysOneArgument(t *testing.T) {
	hostile := "it's \"quoted\" $(rm -rf /) `id`; echo <b>&amp;\nsecond line {{.TaskID}}"
	shell := Default().Profiles["shell"]
	argv, err := shell.RenderCommand(TemplateData{Prompt: hostile, TaskID: "task-0123456789ab"})
	if err != nil {
		t.Fatal(err)
	}
	// The prompt arrives verbatim: no escaping, no splitting, and template
	// syntax inside the data is not evaluated.
	want := []string{"sh", "-c", hostile}
	if !reflect.DeepEqual(argv, want) {
		t.Fatalf("argv = %q, want %q", argv, want)
	}
}

func TestRenderResumeCommand(t *testing.T) {
	claude := Default().Profiles["claude"]
	argv, err := claude.RenderResumeCommand(TemplateData{Prompt: "orig", Feedback: "fix the test", SessionID: "sess 1"})
	if err != nil {
		t.Fatal(err)
	}
	joined := strings.Join(argv, "|")
	if !strings.Contains(joined, "-p|fix the test|--resume|sess 1|") || strings.Contains(joined, "orig") {
		t.Fatalf("resume argv = %q", argv)
	}

	// Without a resume command the plain command is used.
	p := Profile{Command: []string{"run", "{{.TaskID}}-r{{.Run}}"}}
	argv, err = p.RenderResumeCommand(TemplateData{TaskID: "task-aaaaaaaaaaaa", Run: 2})
	if err != nil || !reflect.DeepEqual(argv, []string{"run", "task-aaaaaaaaaaaa-r2"}) {
		t.Fatalf("fallback argv = %q, %v", argv, err)
	}
}

func TestRenderArgv_EmptyValueIsStillOneElement(t *testing.T) {
	argv, err := RenderArgv([]string{"a", "{{.SessionID}}", "b"}, TemplateData{})
	if err != nil || !reflect.DeepEqual(argv, []string{"a", "", "b"}) {
		t.Fatalf("argv = %q, %v", argv, err)
	}
}

func TestRenderArgv_Errors(t *testing.T) {
	for _, argv := range [][]string{nil, {"{{.Nope}}"}, {"{{.Prompt"}} {
		if _, err := RenderArgv(argv, TemplateData{}); err == nil {
			t.Errorf("RenderArgv(%q) succeeded", argv)
		}
	}
}
