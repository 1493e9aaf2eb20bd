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

	"github.com/claude-parallel/claude-parallel/mcp/service"
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
	out := &stdioOutput{w: stdout}
	in := &cancelWatcher{r: bufio.NewReaderSize(stdin, 64<<10), out: out}
	s.inner.SetContextFunc(func(ctx context.Context) context.Context {
		return service.WithAfterReply(withNotifier(ctx, out), out.afterNextWrite)
	})
	return s.inner.Listen(ctx, in, out)
}

// maxCancelled bounds the cancelled ids remembered: a cancel that arrives
// after its response was written leaves its id behind.
const maxCancelled = 1024

// cancelledSet holds the keys of requests the client cancelled, whose
// response must not be sent; the oldest are forgotten beyond maxCancelled.
type cancelledSet struct {
	mu    sync.Mutex
	keys  map[string]struct{}
	order []string
}

func (c *cancelledSet) add(key string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.keys == nil {
		c.keys = map[string]struct{}{}
	}
	if _, ok := c.keys[key]; ok {
		return
	}
	c.keys[key] = struct{}{}
	c.order = append(c.order, key)
	if len(c.order) > maxCancelled {
		delete(c.keys, c.order[0])
		c.order = c.order[1:]
	}
}

// has reports whether key was cancelled.
func (c *cancelledSet) has(key string) bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	_, ok := c.keys[key]
	return ok
}

// any reports whether anything was cancelled, so the common case skips
// decoding what it writes.
func (c *cancelledSet) any() bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	return len(c.keys) > 0
}

// stdioOutput is the server's stdout. Every message the library writes is
// one Write of one line; the mutex keeps those whole and orders them with
// the notifications written here directly.
type stdioOutput struct {
	mu        sync.Mutex
	w         io.Writer
	cancelled cancelledSet // request ids whose response must not be sent
	after     []func()     // run after the next message (afterNextWrite)
}

func (o *stdioOutput) Write(p []byte) (int, error) {
	o.mu.Lock()
	n, err := o.write(p)
	after := o.after
	o.after = nil
	o.mu.Unlock()
	for _, fn := range after {
		fn()
	}
	return n, err
}

func (o *stdioOutput) write(p []byte) (int, error) {
	if !o.cancelled.any() {
		return o.w.Write(p)
	}
	if id, ok := responseID(p); ok && o.cancelled.has(id) {
		return len(p), nil
	}
	return o.w.Write(p)
}

// afterNextWrite runs fn once the next message is written (or dropped as
// cancelled). A handler's reply is the next message its worker writes;
// another call's message written first runs fn a little early, which is
// what happened before anything was put off.
func (o *stdioOutput) afterNextWrite(fn func()) {
	o.mu.Lock()
	defer o.mu.Unlock()
	o.after = append(o.after, fn)
}

// cancel records that the client cancelled request id.
func (o *stdioOutput) cancel(id string) { o.cancelled.add(id) }

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
