// Package mcp is claude-parallel's front end: the MCP tools (over stdio or
// streamable HTTP) and the operations the CLI shares with them.
//
// A front end only validates requests, writes intents into the store
// (models.Store) and reads state back. It never calls Docker and never changes
// a repository: the controllers converge the world towards the intents. The
// only git it runs is read-only validation of a caller's folder (is it a work
// tree, does a base ref name a commit), with a hardened environment.
//
// Layout:
//   - input.go, validate.go, requests.go: argument decoding and validation.
//     Every bad argument becomes an *InputError whose sentence names the
//     argument, says what is wrong and what is accepted. The CLI decodes its
//     flags through the same functions.
//   - frontend.go and ops_*.go: the operations (Frontend), shared by tools and CLI.
//   - views.go, markdown.go: structured results and their readable rendering.
//   - tools.go: one constructor per tool, returning the tool and its handler.
//   - server.go, resources.go, http.go: the MCP server, its resource
//     templates and the HTTP transport with Origin and bearer-token checks.
package mcp
