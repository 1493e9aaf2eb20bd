// Package service is claude-parallel's application service: what the front
// ends (MCP tools, CLI, dashboard) do, apart from how each one talks.
//
// A request is a typed value (requests.go); every operation checks it with
// its Check method first, so a length, an id's shape, a range or a
// profile's ceiling holds for every adapter, then checks what needs the file
// system, git or the store, writes an intent (models.Store) and answers with
// a typed result (views.go, rendered as text by markdown.go). A refusal is an
// *InputError (or InputErrors) naming the field as the MCP tools spell it;
// errors.Is tells ErrInvalidInput and ErrNotFound apart. Anything else is an
// infrastructure failure, wrapped with what was being done.
//
// The service never calls Docker and never changes a repository: the
// controllers converge the world towards the intents. The only git it runs
// is read-only validation of a caller's folder, through models/gitcmd.
package service
