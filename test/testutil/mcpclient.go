package testutil

import (
	"net/http"
	"strings"

	sdk "github.com/modelcontextprotocol/go-sdk/mcp"
)

// BearerTransport is an http.RoundTripper that sends every request with
// "Authorization: Bearer Token" through http.DefaultTransport.
type BearerTransport struct{ Token string }

// RoundTrip sends a copy of r carrying the token.
func (b BearerTransport) RoundTrip(r *http.Request) (*http.Response, error) {
	r = r.Clone(r.Context())
	r.Header.Set("Authorization", "Bearer "+b.Token)
	return http.DefaultTransport.RoundTrip(r)
}

// ToolText joins the text contents of a tool result.
func ToolText(res *sdk.CallToolResult) string {
	var b strings.Builder
	for _, c := range res.Content {
		if tc, ok := c.(*sdk.TextContent); ok {
			b.WriteString(tc.Text)
		}
	}
	return b.String()
}
