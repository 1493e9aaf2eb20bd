package fakeanthropic

import (
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"regexp"
	"strings"
	"testing"
)

// The script in the newest prompt is played step by step, counted by the
// tool calls made since that prompt; a resumed conversation's older script
// is ignored; requests without tools are side requests.
func TestScriptModel_PlaysTheNewestPromptsScript(t *testing.T) {
	first := "Do it.\n" + Script(Reply{Tool: "Bash", Input: map[string]any{"command": "ls"}}, Reply{Text: "Which one?"})
	second := "this one\n" + Script(Reply{Tool: "Write", Input: map[string]any{"file_path": "/w/a", "content": "x"}}, Reply{Status: 401})
	tools := []string{"Bash", "Write"}
	call := func(id, name string) []Message {
		return []Message{{Role: "assistant", ToolUses: []ToolUse{{ID: id, Name: name}}}, {Role: "user", ToolResults: []ToolResult{{ToolUseID: id}}}}
	}
	conv := func(ms ...[]Message) Conversation {
		c := Conversation{Tools: tools}
		for _, m := range ms {
			c.Messages = append(c.Messages, m...)
		}
		return c
	}
	user := func(text string) []Message {
		return []Message{{Role: "user", Texts: []string{"<system-reminder>x</system-reminder>", text}}}
	}
	said := func(text string) []Message { return []Message{{Role: "assistant", Texts: []string{text}}} }
	cases := []struct {
		name string
		c    Conversation
		want Reply
	}{
		{"first step", conv(user(first)), Reply{Tool: "Bash", Input: map[string]any{"command": "ls"}}},
		{"second step", conv(user(first), call("t1", "Bash")), Reply{Text: "Which one?"}},
		{"run out", conv(user(first), call("t1", "Bash"), call("t2", "Bash")), Reply{Text: ScriptDone}},
		{"resumed: the new prompt's script", conv(user(first), call("t1", "Bash"), said("Which one?"), user(second)),
			Reply{Tool: "Write", Input: map[string]any{"file_path": "/w/a", "content": "x"}}},
		{"resumed: its error step", conv(user(first), call("t1", "Bash"), said("Which one?"), user(second), call("t2", "Write")), Reply{Status: 401}},
		{"side request", Conversation{Messages: user(first)}, Reply{Text: "ok"}},
	}
	for _, c := range cases {
		got, _ := json.Marshal(ScriptModel(c.c))
		want, _ := json.Marshal(c.want)
		if string(got) != string(want) {
			t.Errorf("%s: got %s, want %s", c.name, got, want)
		}
	}
	if got := ScriptModel(conv(user("no script"))); !strings.Contains(got.Text, "no fake-model: script") {
		t.Errorf("no script: %+v", got)
	}
}

// A scripted error is the API's error answer; tool ids differ between two
// servers (a resumed Claude Code session sees the ids of every earlier run,
// each served by a new server, and takes a repeated id for an interrupted
// call).
func TestServer_ErrorsAndIDsUniqueAcrossServers(t *testing.T) {
	post := func(s *Server) (int, string) {
		t.Helper()
		ts := httptest.NewServer(s)
		defer ts.Close()
		resp, err := http.Post(ts.URL+"/v1/messages", "application/json",
			strings.NewReader(`{"model":"m","stream":true,"tools":[{"name":"Bash"}],"messages":[{"role":"user","content":"go"}]}`))
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, string(b)
	}
	for status, typ := range map[int]string{401: "authentication_error", 529: "overloaded_error"} {
		code, body := post(New(func(Conversation) Reply { return Reply{Status: status} }))
		if code != status || !strings.Contains(body, `"type":"`+typ+`"`) {
			t.Errorf("scripted %d: got %d %s", status, code, body)
		}
	}
	id := regexp.MustCompile(`"id":"(toolu_[^"]+)"`)
	tool := func(Conversation) Reply { return Reply{Tool: "Bash", Input: map[string]any{"command": "ls"}} }
	_, a := post(New(tool))
	_, b := post(New(tool))
	ma, mb := id.FindStringSubmatch(a), id.FindStringSubmatch(b)
	if ma == nil || mb == nil || ma[1] == mb[1] {
		t.Errorf("tool ids of two servers: %v and %v", ma, mb)
	}
}
