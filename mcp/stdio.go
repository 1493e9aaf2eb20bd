package mcp

import (
	"github.com/mark3labs/mcp-go/server"
	"go.uber.org/zap"
)

// stdioWorkers is how many tool calls a stdio server runs at once: waits
// (wait_for_tasks, apply_changes) hold a worker for their whole bound, and
// must not block a status call behind them.
const stdioWorkers = 16

// NewStdioServer returns the stdio transport for srv. Its error messages go
// to the logger: stdout carries nothing but the protocol.
func NewStdioServer(srv *server.MCPServer, logger *zap.Logger) *server.StdioServer {
	s := server.NewStdioServer(srv)
	s.SetErrorLogger(zap.NewStdLog(logger))
	server.WithWorkerPoolSize(stdioWorkers)(s)
	server.WithQueueSize(256)(s)
	return s
}
