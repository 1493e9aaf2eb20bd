package service

// Every result is written by its text method; Markdown is the text an MCP
// client gets, Facts the same without the suggested calls.

// A Result is a reply the service can write as text.
type Result interface {
	text(m *md) string
}

// Facts is a result's text without the suggested calls, and those calls, for
// an adapter that says what follows in its own terms. The service decides
// what follows (present.go); each adapter only names it.
func Facts(r Result) (text string, next []NextCall) {
	m := &md{factsOnly: true}
	text = r.text(m)
	return text, m.next
}

func markdown(r Result) string { return r.text(&md{}) }

// Markdown is the reply as an MCP client reads it: the facts, then the suggested calls.
func (r *TaskWorkerResult) Markdown() string { return markdown(r) }

// Markdown is the reply as an MCP client reads it: the facts, then the suggested calls.
func (r *WorkStatusResult) Markdown() string { return markdown(r) }

// Markdown is the reply as an MCP client reads it: the facts, then the suggested calls.
func (r *ReviewResult) Markdown() string { return markdown(r) }

// Markdown is the reply as an MCP client reads it: the facts, then the suggested calls.
func (r *ApplyResult) Markdown() string { return markdown(r) }

// Markdown is the reply as an MCP client reads it: the facts, then the suggested calls.
func (r *RejectResult) Markdown() string { return markdown(r) }

// Markdown is the reply as an MCP client reads it: the facts, then the suggested calls.
func (r *FollowUpResult) Markdown() string { return markdown(r) }

// Markdown is the reply as an MCP client reads it: the facts, then the suggested calls.
func (r *CancelResult) Markdown() string { return markdown(r) }

// Markdown is the reply as an MCP client reads it: the facts, then the suggested calls.
func (r *WaitResult) Markdown() string { return markdown(r) }

// Markdown is the reply as an MCP client reads it: the facts, then the suggested calls.
func (r *SystemStatusResult) Markdown() string { return markdown(r) }

// Markdown is the reply as an MCP client reads it: the facts, then the suggested calls.
func (r *LogsResult) Markdown() string { return markdown(r) }

// Markdown is the reply as an MCP client reads it: the facts, then the suggested calls.
func (r *ListLogsResult) Markdown() string { return markdown(r) }
