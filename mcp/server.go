package mcp

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"sync"
	"time"

	"github.com/mark3labs/mcp-go/mcp"
	"github.com/mark3labs/mcp-go/server"
	"go.uber.org/zap"

	"github.com/claude-parallel/claude-parallel/config/logging"
	"github.com/claude-parallel/claude-parallel/mcp/service"
)

// ServerName is the name the server gives in the MCP handshake; it keeps the
// original's, so clients configured for it recognise this one.
const ServerName = "claude_parallel_work"

const instructions = `claude-parallel runs coding-agent tasks in parallel, each in its own Docker container on its own copy of a git repository.
Typical flow: task_worker (returns a task id at once) → wait_for_tasks → review_changes → apply_changes, request_revision or reject_changes.
Nothing changes in a repository until apply_changes. Task output: view_container_logs. Health: system_status.
Every result's "next" lists the calls that usually follow, with their arguments (write a value in <angle brackets> yourself).`

// NewServer builds the MCP server with every tool and resource template.
// The same server serves stdio and streamable HTTP.
func NewServer(deps service.Deps) *server.MCPServer {
	fe := service.NewFrontend(deps)
	s := server.NewMCPServer(ServerName, fe.Version(),
		server.WithInstructions(instructions),
		server.WithToolCapabilities(false),
		server.WithResourceCapabilities(false, false),
		// Structured content is checked against the output schema before it
		// leaves, so a client never receives a reply its schema rejects.
		server.WithOutputSchemaValidation(),
		server.WithToolHandlerMiddleware(guardTool(fe.Logger(), fe.ToolObserver())),
		// Whatever a tool or a resource answers is redacted on its way out.
		server.WithToolHandlerMiddleware(redactTool(fe)),
		server.WithResourceHandlerMiddleware(redactResource(fe)),
	)
	for _, newTool := range toolConstructors {
		tool, handler := newTool(fe)
		s.AddTool(rawOutputSchema(portableTool(tool)), handler)
	}
	addResourceTemplates(s, fe)
	return s
}

// Tools returns every tool definition, for schema snapshots and docs.
func Tools(deps service.Deps) []mcp.Tool {
	fe := service.NewFrontend(deps)
	out := make([]mcp.Tool, 0, len(toolConstructors))
	for _, newTool := range toolConstructors {
		tool, _ := newTool(fe)
		out = append(out, portableTool(tool))
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
				if res != nil && res.StructuredContent != nil {
					res.StructuredContent = dropNulls(res.StructuredContent)
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
			clock := &progressClock{}
			res, err = next(context.WithValue(ctx, progressClockKey{}, clock), req)
			clock.keepDistance(ctx)
			return res, err
		}
	}
}

// redactTool redacts every tool result (see redactToolResult).
func redactTool(fe *service.Frontend) server.ToolHandlerMiddleware {
	return func(next server.ToolHandlerFunc) server.ToolHandlerFunc {
		return func(ctx context.Context, req mcp.CallToolRequest) (*mcp.CallToolResult, error) {
			res, err := next(ctx, req)
			redactToolResult(res, fe.Secrets())
			return res, err
		}
	}
}

// redactResource redacts every text resource: a task's log, and a patch
// (a key the agent wrote into a file shows as its placeholder; applying the
// diff uses the stored patch). A binary resource is sent as it is.
func redactResource(fe *service.Frontend) server.ResourceHandlerMiddleware {
	return func(next server.ResourceHandlerFunc) server.ResourceHandlerFunc {
		return func(ctx context.Context, req mcp.ReadResourceRequest) ([]mcp.ResourceContents, error) {
			contents, err := next(ctx, req)
			r := fe.Secrets()
			for i, c := range contents {
				switch t := c.(type) {
				case mcp.TextResourceContents:
					t.Text = r.String(t.Text)
					contents[i] = t
				case *mcp.TextResourceContents:
					t.Text = r.String(t.Text)
				}
			}
			return contents, err
		}
	}
}

// progressGap is the least time between a call's last progress notification
// and its response. Claude Code (the TypeScript MCP SDK) handles a
// notification on a later tick but a response at once, and forgets the
// call's progress token with its response: a progress notification that
// arrives in the same read as the response then names an unknown token, and
// Claude Code drops the connection. Ordering alone is not enough; time
// between the two lets the client read them apart.
const progressGap = 250 * time.Millisecond

type progressClockKey struct{}

// progressClock remembers when a call last sent progress.
type progressClock struct {
	mu   sync.Mutex
	last time.Time
}

func (c *progressClock) sent() {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.last = time.Now()
}

// keepDistance waits until progressGap has passed since the last progress,
// unless the call was cancelled (it then gets no response anyway).
func (c *progressClock) keepDistance(ctx context.Context) {
	c.mu.Lock()
	last := c.last
	c.mu.Unlock()
	if last.IsZero() {
		return
	}
	wait := progressGap - time.Since(last)
	if wait <= 0 {
		return
	}
	timer := time.NewTimer(wait)
	defer timer.Stop()
	select {
	case <-timer.C:
	case <-ctx.Done():
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

// notifier writes a notification to the client of the call in ctx, in
// order with the responses: it is on the wire when notify returns, so
// before the response of the call that sent it. Each transport puts its own
// in the context; the library's SendNotificationToClient queues to another
// goroutine instead, which wrote a call's last progress after its response
// (Claude Code then drops the connection).
type notifier interface {
	notify(ctx context.Context, method string, params map[string]any) error
}

type notifierKey struct{}

func withNotifier(ctx context.Context, n notifier) context.Context {
	return context.WithValue(ctx, notifierKey{}, n)
}

// progressTo returns a ProgressFunc sending MCP progress notifications for
// the call, or a no-op when the client gave no progress token or the
// transport cannot order them before the response. Values are forced to
// increase, as the protocol requires.
func progressTo(ctx context.Context, req mcp.CallToolRequest) service.ProgressFunc {
	if req.Params.Meta == nil || req.Params.Meta.ProgressToken == nil {
		return nil // the service reports nothing to a nil ProgressFunc
	}
	n, ok := ctx.Value(notifierKey{}).(notifier)
	if !ok {
		return nil // the service reports nothing to a nil ProgressFunc
	}
	token := req.Params.Meta.ProgressToken
	clock, _ := ctx.Value(progressClockKey{}).(*progressClock)
	last := -1.0
	return func(progress, total float64, message string) {
		if ctx.Err() != nil {
			// A cancelled call sends nothing more.
			return
		}
		if progress <= last {
			progress = last + 0.001
		}
		last = progress
		params := map[string]any{"progressToken": token, "progress": progress, "message": message}
		if total > 0 {
			params["total"] = max(total, progress)
		}
		// A client gone away makes this fail; the wait then ends with ctx.
		if n.notify(ctx, string(mcp.MethodNotificationProgress), params) == nil && clock != nil {
			clock.sent()
		}
	}
}
