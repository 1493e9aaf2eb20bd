// Package testutil holds the helpers that the tests of several packages need
// alike: running git isolated from the machine's configuration, making a
// committed repository, small file fixtures, polling, and the pieces of an
// MCP client test (a locked buffer for a child's stderr, a bearer-token
// transport, the text of a tool result).
//
// It exists so that each of these is written once; before it, the same git
// runner alone stood in nine test files, each a little differently isolated.
// It imports only the standard library and the MCP go-sdk, so that any test
// package of this module (internal tests included) can import it without a
// cycle.
package testutil
