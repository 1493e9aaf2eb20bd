package logfollow

import (
	"strings"
	"testing"
)

func TestClaudeProgress_Feed(t *testing.T) {
	var p claudeProgress
	lines := []struct {
		line    string
		changed bool
	}{
		{`{"type":"system","subtype":"init","session_id":"s1","tools":["Bash"]}`, true},
		{`{"type":"assistant","message":{"content":[{"type":"text","text":"First."},{"type":"text","text":"Second."}]},"session_id":"s1"}`, true},
		{`{"type":"user","message":{"content":[{"type":"tool_result","content":"ok"}]},"session_id":"s1"}`, false},
		{`{"type":"assistant","message":{"content":[{"type":"tool_use","name":"Bash","input":{}}]},"session_id":"s1"}`, true},
		{`plain output`, false},
		{`{"type":"assistant","message":"not an object"}`, true}, // counted as a turn, no text
		{`{broken json`, false},
		{`{"type":"result","subtype":"success","is_error":false,"num_turns":4,"result":"All done.","session_id":"s1","total_cost_usd":0.5}`, true},
	}
	for _, l := range lines {
		if got := p.Feed(l.line); got != l.changed {
			t.Errorf("Feed(%.40q) changed = %v, want %v", l.line, got, l.changed)
		}
	}
	want := claudeProgress{SessionID: "s1", NumTurns: 4, CostUSD: 0.5, LastMessage: "First.\nSecond.", ResultText: "All done.", HasResult: true}
	if p != want {
		t.Fatalf("progress %+v, want %+v", p, want)
	}
	st := p.runProgress()
	if st.SessionID != "s1" || st.NumTurns != 4 || st.CostUSD != 0.5 || st.ResultText != "All done." {
		t.Fatalf("run progress %+v", st)
	}
}

func TestClaudeProgress_OlderCostFieldAndErrors(t *testing.T) {
	var p claudeProgress
	p.Feed(`{"type":"result","subtype":"error_max_turns","is_error":true,"cost_usd":0.1,"num_turns":9}`)
	if !p.IsError || p.CostUSD != 0.1 || p.NumTurns != 9 {
		t.Fatalf("%+v", p)
	}
	p = claudeProgress{}
	huge := strings.Repeat("é", maxStatusText)
	p.Feed(`{"type":"result","result":"` + huge + `"}`)
	if len(p.ResultText) > maxStatusText+len("…") || !strings.HasSuffix(p.ResultText, "…") {
		t.Fatalf("result not clipped: %d bytes", len(p.ResultText))
	}
}
