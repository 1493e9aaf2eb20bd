package service

import (
	"io"

	"github.com/claude-parallel/claude-parallel/config/redact"
)

// Defence in depth: the controllers store agent output already redacted,
// and every adapter passes what it shows through the redactor once more
// (the MCP middleware for tool results, the dashboard for its pages), so a
// secret stored by an older version still never leaves. The rule itself
// lives in config/redact, shared with the controllers and the server log.

// Secrets is the redactor of the configuration in force.
func (f *Frontend) Secrets() *redact.Redactor { return f.cfg().Redactor() }

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
func (f *Frontend) Redact(s string) string { return f.Secrets().String(s) }
