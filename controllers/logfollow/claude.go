package logfollow

import (
	"encoding/json"
	"strings"
	"unicode/utf8"

	"github.com/claude-parallel/claude-parallel/config/redact"
	"github.com/claude-parallel/claude-parallel/models"
)

// Claude Code's headless mode with `--output-format stream-json --verbose`
// prints one JSON object per line:
//
//	{"type":"system","subtype":"init","session_id":"…",…}
//	{"type":"assistant","message":{"content":[{"type":"text","text":"…"},{"type":"tool_use",…}]},"session_id":"…"}
//	{"type":"user","message":{…tool results…}}
//	{"type":"result","subtype":"success","is_error":false,"num_turns":3,"result":"…","session_id":"…","total_cost_usd":0.02}
//
// claudeProgress folds those lines into the progress the run's row shows
// while the agent works. Anything else — a line that is not JSON, an unknown type, a field
// of an unexpected shape — is only output, never an error: the parser must not
// be able to stop a log follower.

// maxStatusText bounds the agent texts copied into the run's row; the full text
// stays in the log file.
const maxStatusText = 16 << 10

// claudeProgress is the state parsed so far from one run's stream-json output.
type claudeProgress struct {
	SessionID   string
	NumTurns    int
	CostUSD     float64
	LastMessage string // text of the newest assistant message that had text
	ResultText  string // the final result, once the result line arrived
	IsError     bool   // the result line reported an error
	HasResult   bool

	// secrets redacts the texts taken from a line. The line was redacted as
	// a whole before; decoding may still unveil a secret JSON wrote with
	// escapes ("\u0041", "\/") the redactor does not look for.
	secrets *redact.Redactor
}

// streamLine is the subset of a stream-json line the parser reads.
type streamLine struct {
	Type         string          `json:"type"`
	Subtype      string          `json:"subtype"`
	SessionID    string          `json:"session_id"`
	Message      json.RawMessage `json:"message"`
	Result       *string         `json:"result"`
	NumTurns     *int            `json:"num_turns"`
	TotalCostUSD *float64        `json:"total_cost_usd"`
	CostUSD      *float64        `json:"cost_usd"` // older releases
	IsError      bool            `json:"is_error"`
}

type assistantMessage struct {
	Content []struct {
		Type string `json:"type"`
		Text string `json:"text"`
	} `json:"content"`
}

// Feed parses one output line and reports whether the progress changed.
func (p *claudeProgress) Feed(line string) bool {
	line = strings.TrimSpace(line)
	if !strings.HasPrefix(line, "{") {
		return false
	}
	var l streamLine
	if err := json.Unmarshal([]byte(line), &l); err != nil {
		return false
	}
	before := *p
	if l.SessionID != "" {
		p.SessionID = p.secrets.String(l.SessionID)
	}
	switch l.Type {
	case "assistant":
		p.NumTurns++
		if text := assistantText(l.Message); text != "" {
			p.LastMessage = clip(p.secrets.String(text))
		}
	case "result":
		p.HasResult = true
		p.IsError = l.IsError
		if l.Result != nil {
			p.ResultText = clip(p.secrets.String(*l.Result))
		}
		if l.NumTurns != nil {
			p.NumTurns = *l.NumTurns
		}
		switch {
		case l.TotalCostUSD != nil:
			p.CostUSD = *l.TotalCostUSD
		case l.CostUSD != nil:
			p.CostUSD = *l.CostUSD
		}
	}
	return *p != before
}

// assistantText joins the text blocks of an assistant message.
func assistantText(raw json.RawMessage) string {
	if len(raw) == 0 {
		return ""
	}
	var m assistantMessage
	if err := json.Unmarshal(raw, &m); err != nil {
		return ""
	}
	var parts []string
	for _, c := range m.Content {
		if c.Type == "text" && strings.TrimSpace(c.Text) != "" {
			parts = append(parts, c.Text)
		}
	}
	return strings.Join(parts, "\n")
}

// runProgress is the progress as the run's execution_logs row keeps it.
func (p *claudeProgress) runProgress() models.RunProgress {
	return models.RunProgress{SessionID: p.SessionID, NumTurns: p.NumTurns, CostUSD: p.CostUSD,
		LastMessage: p.LastMessage, ResultText: p.ResultText}
}

// clip bounds s to maxStatusText bytes without splitting a UTF-8 sequence.
func clip(s string) string {
	if len(s) <= maxStatusText {
		return s
	}
	cut := maxStatusText
	for cut > 0 && !utf8.RuneStart(s[cut]) {
		cut--
	}
	return s[:cut] + "…"
}
