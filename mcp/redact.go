package mcp

import (
	"bytes"
	"encoding/json"
	"io"

	"github.com/mark3labs/mcp-go/mcp"

	"github.com/claude-parallel/claude-parallel/config/redact"
)

// Defence in depth: the controllers store agent output already redacted,
// and every response of the front end goes through the redactor once more
// on its way out, so a secret stored by an older version, or reaching a
// response by some other road, still never leaves. The rule itself lives in
// config/redact, shared with the controllers and the server log.

// secrets is the redactor of the configuration in force.
func (f *Frontend) secrets() *redact.Redactor { return f.cfg().Redactor() }

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
// decoded with every string redacted (the shape, and so the output schema,
// is unchanged).
func redactValue(v any, r *redact.Redactor) any {
	b, err := json.Marshal(v)
	if err != nil || !r.Contains(string(b)) {
		return v
	}
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.UseNumber()
	var out any
	if err := dec.Decode(&out); err != nil {
		return v
	}
	return redactStrings(out, r)
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

// redactedReader returns what r reads, redacted as a stream (a secret cut
// across two reads is caught; memory stays bounded on a line of any
// length). Call stop once done reading.
func redactedReader(r io.Reader, red *redact.Redactor) (out io.Reader, stop func()) {
	if red.Empty() {
		return r, func() {}
	}
	pr, pw := io.Pipe()
	go func() {
		w := red.NewWriter(pw)
		_, err := io.Copy(w, r)
		if err == nil {
			err = w.Flush()
		}
		pw.CloseWithError(err) // nil: the reader sees io.EOF
	}()
	return pr, func() { _ = pr.Close() }
}

// Redact hides the secrets in force in s. Adapters that render what the
// service returns themselves (the dashboard's pages and its log stream) pass
// their output through it, as the MCP middleware does for tool results.
func (f *Frontend) Redact(s string) string { return f.secrets().String(s) }
