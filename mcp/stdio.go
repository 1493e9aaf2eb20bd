package mcp

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"sync"

	"github.com/mark3labs/mcp-go/mcp"
	"github.com/mark3labs/mcp-go/server"
	"go.uber.org/zap"
)

// stdioWorkers is how many tool calls a stdio server runs at once: waits
// (wait_for_tasks, apply_changes) hold a worker for their whole bound, and
// must not block a status call behind them.
const stdioWorkers = 16

// StdioServer serves MCP over a pair of streams (stdin and stdout). It wraps
// the library's transport to keep two promises the library does not:
//   - a call's progress notifications are written before its response (the
//     library queues notifications to another goroutine, which wrote the last
//     one after the response; clients then drop the connection);
//   - a call the client cancelled (notifications/cancelled) gets no response,
//     as the protocol requires.
type StdioServer struct {
	inner *server.StdioServer
}

// NewStdioServer returns the stdio transport for srv. Its error messages go
// to the logger: stdout carries nothing but the protocol.
func NewStdioServer(srv *server.MCPServer, logger *zap.Logger) *StdioServer {
	s := server.NewStdioServer(srv)
	s.SetErrorLogger(zap.NewStdLog(logger))
	server.WithWorkerPoolSize(stdioWorkers)(s)
	server.WithQueueSize(256)(s)
	return &StdioServer{inner: s}
}

// Listen serves until stdin ends or ctx is cancelled.
func (s *StdioServer) Listen(ctx context.Context, stdin io.Reader, stdout io.Writer) error {
	out := &stdioOutput{w: stdout, cancelled: map[string]struct{}{}}
	in := &cancelWatcher{r: bufio.NewReaderSize(stdin, 64<<10), out: out}
	s.inner.SetContextFunc(func(ctx context.Context) context.Context { return withNotifier(ctx, out) })
	return s.inner.Listen(ctx, in, out)
}

// maxCancelled bounds the cancelled ids remembered: a cancel that arrives
// after its response was written leaves its id behind.
const maxCancelled = 1024

// stdioOutput is the server's stdout. Every message the library writes is
// one Write of one line; the mutex keeps those whole and orders them with
// the notifications written here directly.
type stdioOutput struct {
	mu        sync.Mutex
	w         io.Writer
	cancelled map[string]struct{} // request ids whose response must not be sent
	order     []string            // cancelled ids, oldest first, for the bound
}

func (o *stdioOutput) Write(p []byte) (int, error) {
	o.mu.Lock()
	defer o.mu.Unlock()
	if len(o.cancelled) > 0 {
		if id, ok := responseID(p); ok {
			if _, drop := o.cancelled[id]; drop {
				delete(o.cancelled, id)
				return len(p), nil
			}
		}
	}
	return o.w.Write(p)
}

// cancel records that the client cancelled request id.
func (o *stdioOutput) cancel(id string) {
	o.mu.Lock()
	defer o.mu.Unlock()
	if _, ok := o.cancelled[id]; ok {
		return
	}
	o.cancelled[id] = struct{}{}
	o.order = append(o.order, id)
	if len(o.order) > maxCancelled {
		delete(o.cancelled, o.order[0])
		o.order = o.order[1:]
	}
}

// notify writes a notification at once, so it is on the wire before the
// response of the call that sent it.
func (o *stdioOutput) notify(_ context.Context, method string, params map[string]any) error {
	b, err := json.Marshal(notification(method, params))
	if err != nil {
		return fmt.Errorf("encode %s: %w", method, err)
	}
	if _, err := o.Write(append(b, '\n')); err != nil {
		return fmt.Errorf("write %s: %w", method, err)
	}
	return nil
}

func notification(method string, params map[string]any) mcp.JSONRPCNotification {
	return mcp.JSONRPCNotification{
		JSONRPC:      mcp.JSONRPC_VERSION,
		Notification: mcp.Notification{Method: method, Params: mcp.NotificationParams{AdditionalFields: params}},
	}
}

// cancelWatcher passes stdin through line by line, noting each
// notifications/cancelled before the library reads it, so the id is known
// by the time the cancelled handler returns.
type cancelWatcher struct {
	r       *bufio.Reader
	out     *stdioOutput
	pending []byte
}

func (c *cancelWatcher) Read(p []byte) (int, error) {
	if len(c.pending) == 0 {
		line, err := c.r.ReadBytes('\n')
		if len(line) == 0 {
			return 0, err
		}
		if id, ok := cancelledID(line); ok {
			c.out.cancel(id)
		}
		c.pending = line
	}
	n := copy(p, c.pending)
	c.pending = c.pending[n:]
	return n, nil
}

// cancelledID returns the request id a notifications/cancelled line names.
func cancelledID(line []byte) (string, bool) {
	if !bytes.Contains(line, []byte(string(mcp.MethodNotificationCancelled))) {
		return "", false
	}
	var msg struct {
		Method string `json:"method"`
		Params struct {
			RequestID json.RawMessage `json:"requestId"`
		} `json:"params"`
	}
	if json.Unmarshal(line, &msg) != nil || msg.Method != string(mcp.MethodNotificationCancelled) {
		return "", false
	}
	return canonicalID(msg.Params.RequestID)
}

// responseID returns the id of a JSON-RPC response (a result or an error,
// not a request or notification of the server's).
func responseID(line []byte) (string, bool) {
	var msg struct {
		ID     json.RawMessage `json:"id"`
		Method string          `json:"method"`
	}
	if json.Unmarshal(line, &msg) != nil || msg.Method != "" {
		return "", false
	}
	return canonicalID(msg.ID)
}

func canonicalID(raw json.RawMessage) (string, bool) {
	var b bytes.Buffer
	if len(raw) == 0 || json.Compact(&b, raw) != nil || b.String() == "null" {
		return "", false
	}
	return b.String(), true
}
