package fakeanthropic

import (
	"bufio"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
)

// A streamed turn is the event sequence Claude Code parses, and the tool
// results of the conversation are recorded once each, with their tool.
func TestServer_ScriptsToolCallsAndRecordsResults(t *testing.T) {
	var seen []Conversation
	s := New(func(c Conversation) Reply {
		seen = append(seen, c)
		if len(c.Results) == 0 {
			return Reply{Tool: "mcp__x__status", Input: map[string]any{"verbose": true}}
		}
		return Reply{Text: "done"}
	})
	ts := httptest.NewServer(s)
	defer ts.Close()

	post := func(body string) (*http.Response, []string) {
		t.Helper()
		resp, err := http.Post(ts.URL+"/v1/messages?beta=true", "application/json", strings.NewReader(body))
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		var events []string
		sc := bufio.NewScanner(resp.Body)
		for sc.Scan() {
			if name, ok := strings.CutPrefix(sc.Text(), "event: "); ok {
				events = append(events, name)
			}
			if data, ok := strings.CutPrefix(sc.Text(), "data: "); ok && !json.Valid([]byte(data)) {
				t.Errorf("invalid event data %s", data)
			}
		}
		return resp, events
	}
	first := `{"model":"m","stream":true,"tools":[{"name":"mcp__x__status"}],"messages":[{"role":"user","content":"go"}]}`
	resp, events := post(first)
	if resp.Header.Get("Content-Type") != "text/event-stream" {
		t.Fatalf("content type %s", resp.Header.Get("Content-Type"))
	}
	want := "message_start content_block_start content_block_delta content_block_stop message_delta message_stop"
	if got := strings.Join(events, " "); got != want {
		t.Fatalf("events %s", got)
	}
	second := `{"model":"m","stream":true,"tools":[{"name":"mcp__x__status"}],"messages":[
		{"role":"user","content":"go"},
		{"role":"assistant","content":[{"type":"tool_use","id":"toolu_1","name":"mcp__x__status","input":{"verbose":true}}]},
		{"role":"user","content":[{"type":"tool_result","tool_use_id":"toolu_1","content":[{"type":"text","text":"all fine"}]}]}]}`
	post(second)
	post(second) // the same conversation again records nothing new
	if len(seen) != 3 || !seen[0].HasTool("mcp__x__status") || seen[0].LastUser != "go" || len(seen[1].Results) != 1 {
		t.Fatalf("conversations %+v", seen)
	}
	res := s.ToolResults()
	if len(res) != 1 || res[0].Name != "mcp__x__status" || res[0].Text != "all fine" || res[0].Input["verbose"] != true || res[0].IsError {
		t.Fatalf("results %+v", res)
	}
	if errs := s.Errors(); len(errs) != 0 {
		t.Fatalf("errors %v", errs)
	}
	// Anything but the Messages API is a 404.
	r, err := http.Get(ts.URL + "/v1/models")
	if err != nil {
		t.Fatal(err)
	}
	r.Body.Close()
	if r.StatusCode != http.StatusNotFound {
		t.Fatalf("GET /v1/models: %d", r.StatusCode)
	}
}
