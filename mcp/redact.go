package mcp

import (
	"encoding/json"

	"github.com/mark3labs/mcp-go/mcp"

	"github.com/claude-parallel/claude-parallel/config/redact"
)

// Defence in depth: the controllers store agent output already redacted,
// and every response of the front end goes through the redactor once more
// on its way out, so a secret stored by an older version, or reaching a
// response by some other road, still never leaves. The rule itself lives in
// config/redact, shared with the controllers and the server log.

// redactToolResult redacts a tool result in place: its text contents and its
// structured content (through JSON, only when a secret is there).
func redactToolResult(res *mcp.CallToolResult, r *redact.Redactor) {
	if res == nil || r.Empty() {
		return
	}
	for i, c := range res.Content {
		switch t := c.(type) {
		case mcp.TextContent:
			t.Text = r.String(t.Text)
			res.Content[i] = t
		case *mcp.TextContent:
			t.Text = r.String(t.Text)
		}
	}
	if res.StructuredContent != nil {
		res.StructuredContent = redactValue(res.StructuredContent, r)
	}
}

// redactValue returns v, or when its JSON form holds a secret, that JSON
// with every string redacted (the shape, and so the output schema, is
// unchanged). The look is at the JSON, where a secret may be escaped:
// the redactor knows each literal's JSON forms too.
func redactValue(v any, r *redact.Redactor) any {
	raw, ok := asJSON(v)
	if !ok || !r.ContainsBytes(raw) {
		return v
	}
	generic, err := decodeJSON(raw)
	if err != nil {
		return v
	}
	out, err := json.Marshal(redactStrings(generic, r))
	if err != nil {
		return v
	}
	return json.RawMessage(out)
}

func redactStrings(v any, r *redact.Redactor) any {
	switch t := v.(type) {
	case string:
		return r.String(t)
	case []any:
		for i := range t {
			t[i] = redactStrings(t[i], r)
		}
	case map[string]any:
		for k, e := range t {
			t[k] = redactStrings(e, r)
		}
	}
	return v
}
