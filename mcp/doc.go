// Package mcp is claude-parallel's MCP adapter: the tools over stdio or
// streamable HTTP, over the application service of mcp/service.
//
// The front end has three layers:
//   - mcp/service: the application service, shared by every adapter. Typed
//     requests (requests.go) checked by their Check methods whichever adapter
//     built them, the operations (service.go, ops_*.go, logs.go) that
//     validate, write intents into the store and read state back, typed
//     results (views.go) with their readable text (markdown.go), and errors
//     as values (*InputError; errors.Is with ErrInvalidInput, ErrNotFound).
//     It never calls Docker nor changes a repository; the only git it runs is
//     read-only validation through the hardened runner of models/gitcmd. It
//     links no MCP library (a test checks it).
//   - this package, the MCP adapter: decode.go turns a call's JSON arguments
//     into a typed request once (types, presence, unknown arguments, the
//     service's rules as each is read, so every bad argument of a call is
//     reported together); tools.go has one constructor per tool returning its
//     definition and its handler (decode, call the service, reply); server.go,
//     resources.go, http.go and stdio.go are the server, its resource
//     templates and transports. It never reaches the store itself (a test
//     checks it).
//   - the other adapters over the same service: the CLI
//     (cmd/claude-parallel: flags to typed requests, claude-parallel next
//     steps), the dashboard (mcp/dashboard) and the ops endpoints (mcp/ops).
package mcp
