package mcp

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"time"

	"github.com/mark3labs/mcp-go/mcp"
	"github.com/mark3labs/mcp-go/server"
	"go.uber.org/zap"

	"github.com/claude-parallel/claude-parallel/config/logging"
)

// ServerName is the name the server gives in the MCP handshake; it keeps the
// original's, so clients configured for it recognise this one.
const ServerName = "claude_parallel_work"

const instructions = `claude-parallel runs coding-agent tasks in parallel, each in its own Docker container on its own copy of a git repository.
Typical flow: task_worker (returns a task id at once) → wait_for_tasks → review_changes → apply_changes, request_revision or reject_changes.
Nothing changes in a repository until apply_changes. Task output: view_container_logs. Health: system_status.`

// NewServer builds the MCP server with every tool and resource template.
// The same server serves stdio and streamable HTTP.
func NewServer(deps Deps) *server.MCPServer {
	fe := NewFrontend(deps)
	s := server.NewMCPServer(ServerName, fe.d.Version,
		server.WithInstructions(instructions),
		server.WithToolCapabilities(false),
		server.WithResourceCapabilities(false, false),
		// Structured content is checked against the output schema before it
		// leaves, so a client never receives a reply its schema rejects.
		server.WithOutputSchemaValidation(),
		server.WithToolHandlerMiddleware(guardTool(fe.d.Logger, fe.d.ToolObserver)),
	)
	for _, newTool := range toolConstructors {
		tool, handler := newTool(fe)
		s.AddTool(tool, handler)
	}
	addResourceTemplates(s, fe)
	return s
}

// Tools returns every tool definition, for schema snapshots and docs.
func Tools(deps Deps) []mcp.Tool {
	fe := NewFrontend(deps)
	out := make([]mcp.Tool, 0, len(toolConstructors))
	for _, newTool := range toolConstructors {
		tool, _ := newTool(fe)
		out = append(out, tool)
	}
	return out
}

// guardTool wraps every handler: a panic becomes an error result (the
// server keeps serving), and every call is logged with its tool, duration,
// outcome and argument names, never their values, and reported to observe
// when it is not nil.
func guardTool(logger *zap.Logger, observe func(tool string, d time.Duration, outcome string)) server.ToolHandlerMiddleware {
	return func(next server.ToolHandlerFunc) server.ToolHandlerFunc {
		return func(ctx context.Context, req mcp.CallToolRequest) (res *mcp.CallToolResult, err error) {
			start := time.Now()
			defer func() {
				if r := recover(); r != nil {
					logger.Error("tool handler panicked", zap.String("tool", req.Params.Name),
						zap.Any("panic", r), zap.StackSkip("stack", 1))
					res, err = mcp.NewToolResultError(fmt.Sprintf("internal error in %s; the call was not carried out and the server keeps running", req.Params.Name)), nil
				}
				l := logger
				outcome := "ok"
				if res != nil && res.IsError {
					l = logger.With(zap.String("result", "error_result"))
					outcome = "error_result"
				}
				if err != nil {
					outcome = "error"
				}
				took := time.Since(start)
				logging.LogToolCall(l, req.Params.Name, took, argNames(req), err)
				if observe != nil {
					observe(req.Params.Name, took, outcome)
				}
			}()
			return next(ctx, req)
		}
	}
}

// argNames lists the argument names of a call for the log, bounded: a
// client controls the names too.
func argNames(req mcp.CallToolRequest) []string {
	m, ok := toolArguments(req).(map[string]any)
	if !ok {
		return nil
	}
	names := logging.ArgNames(m)
	const maxNames, maxLen = 20, 64
	if len(names) > maxNames {
		names = names[:maxNames]
	}
	for i, n := range names {
		if len(n) > maxLen {
			names[i] = n[:maxLen] + "…"
		}
	}
	return names
}

// toolArguments returns a call's arguments as decoded JSON: from the raw
// bytes with json.Number when the transport kept them (so large integers
// keep their value for range checks), else as the transport decoded them.
func toolArguments(req mcp.CallToolRequest) any {
	if raw := bytes.TrimSpace(req.Params.RawArguments); len(raw) > 0 {
		dec := json.NewDecoder(bytes.NewReader(raw))
		dec.UseNumber()
		var v any
		if err := dec.Decode(&v); err == nil {
			return v
		}
	}
	switch v := req.Params.Arguments.(type) {
	case nil, map[string]any:
		return v
	default:
		// A typed value from an in-process caller: normalise through JSON.
		b, err := json.Marshal(v)
		if err != nil {
			return v
		}
		var out any
		dec := json.NewDecoder(bytes.NewReader(b))
		dec.UseNumber()
		if err := dec.Decode(&out); err != nil {
			return v
		}
		return out
	}
}

// progressTo returns a ProgressFunc sending MCP progress notifications for
// the call, or a no-op when the client gave no progress token. Values are
// forced to increase, as the protocol requires.
func progressTo(ctx context.Context, req mcp.CallToolRequest) ProgressFunc {
	if req.Params.Meta == nil || req.Params.Meta.ProgressToken == nil {
		return noProgress
	}
	srv := server.ServerFromContext(ctx)
	if srv == nil {
		return noProgress
	}
	token := req.Params.Meta.ProgressToken
	last := -1.0
	return func(progress, total float64, message string) {
		if progress <= last {
			progress = last + 0.001
		}
		last = progress
		params := map[string]any{"progressToken": token, "progress": progress, "message": message}
		if total > 0 {
			params["total"] = max(total, progress)
		}
		// A client gone away makes this fail; the wait then ends with ctx.
		_ = srv.SendNotificationToClient(ctx, "notifications/progress", params)
	}
}
