package mcp

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	mcpgo "github.com/mark3labs/mcp-go/mcp"

	"github.com/claude-parallel/claude-parallel/config/logging"
	"github.com/claude-parallel/claude-parallel/mcp/service"
	"github.com/claude-parallel/claude-parallel/models"
)

// These tests read the raw byte streams a client receives, as Claude Code
// does, and check the order of the messages on them.

// wireMessage is one JSON-RPC message as it appeared on a stream.
type wireMessage struct {
	raw    []byte
	ID     json.RawMessage `json:"id"`
	Method string          `json:"method"`
	Result json.RawMessage `json:"result"`
	Error  *struct {
		Code    int    `json:"code"`
		Message string `json:"message"`
	} `json:"error"`
	Params struct {
		ProgressToken any `json:"progressToken"`
	} `json:"params"`
}

func (m wireMessage) isResponse() bool { return m.Method == "" && len(m.ID) > 0 }

func (m wireMessage) idString() string { id, _ := canonicalID(m.ID); return id }

func (m wireMessage) progressToken() string {
	if m.Method != "notifications/progress" {
		return ""
	}
	return fmt.Sprint(m.Params.ProgressToken)
}

func parseWire(t *testing.T, b []byte) wireMessage {
	t.Helper()
	var m wireMessage
	if err := json.Unmarshal(b, &m); err != nil {
		t.Fatalf("not JSON-RPC on the wire: %q: %v", b, err)
	}
	m.raw = append([]byte(nil), b...)
	return m
}

// rawStdio is a stdio client that records every line the server writes.
type rawStdio struct {
	t    *testing.T
	w    io.Writer
	mu   sync.Mutex
	cond *sync.Cond
	log  []wireMessage
	eof  bool
}

func (e *testEnv) rawStdioClient(t *testing.T) *rawStdio {
	t.Helper()
	clientR, serverW := io.Pipe()
	serverR, clientW := io.Pipe()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- NewStdioServer(NewServer(e.deps()), e.fe.Logger()).Listen(ctx, serverR, serverW) }()
	c := &rawStdio{t: t, w: clientW}
	c.cond = sync.NewCond(&c.mu)
	go func() {
		sc := bufio.NewScanner(clientR)
		sc.Buffer(make([]byte, 1<<20), 16<<20)
		for sc.Scan() {
			var m wireMessage
			if err := json.Unmarshal(sc.Bytes(), &m); err != nil {
				m.Method = "!invalid: " + sc.Text()
			}
			m.raw = append([]byte(nil), sc.Bytes()...)
			c.mu.Lock()
			c.log = append(c.log, m)
			c.cond.Broadcast()
			c.mu.Unlock()
		}
		c.mu.Lock()
		c.eof = true
		c.cond.Broadcast()
		c.mu.Unlock()
	}()
	t.Cleanup(func() {
		cancel()
		_ = clientW.Close()
		_ = serverW.Close()
		<-done
	})
	c.send(map[string]any{"jsonrpc": "2.0", "id": "init", "method": "initialize", "params": map[string]any{
		"protocolVersion": "2025-06-18", "capabilities": map[string]any{}, "clientInfo": map[string]any{"name": "raw", "version": "1"}}})
	c.waitResponse(`"init"`)
	c.send(map[string]any{"jsonrpc": "2.0", "method": "notifications/initialized"})
	return c
}

func (c *rawStdio) send(msg any) {
	c.t.Helper()
	b, err := json.Marshal(msg)
	if err != nil {
		c.t.Fatal(err)
	}
	if _, err := c.w.Write(append(b, '\n')); err != nil {
		c.t.Fatal(err)
	}
}

// waitFor blocks until a message matching ok is in the log and returns it.
func (c *rawStdio) waitFor(what string, ok func(wireMessage) bool) wireMessage {
	c.t.Helper()
	timer := time.AfterFunc(60*time.Second, func() {
		c.mu.Lock()
		c.eof = true
		c.cond.Broadcast()
		c.mu.Unlock()
	})
	defer timer.Stop()
	c.mu.Lock()
	defer c.mu.Unlock()
	for i := 0; ; i++ {
		for ; i < len(c.log); i++ {
			if ok(c.log[i]) {
				return c.log[i]
			}
		}
		if c.eof {
			c.t.Fatalf("no %s on the stream", what)
		}
		c.cond.Wait()
		i--
	}
}

func (c *rawStdio) waitResponse(id string) wireMessage {
	c.t.Helper()
	return c.waitFor("response "+id, func(m wireMessage) bool { return m.isResponse() && m.idString() == id })
}

func (c *rawStdio) messages() []wireMessage {
	c.mu.Lock()
	defer c.mu.Unlock()
	return append([]wireMessage(nil), c.log...)
}

func toolCall(id any, token string, name string, args map[string]any) map[string]any {
	params := map[string]any{"name": name, "arguments": args}
	if token != "" {
		params["_meta"] = map[string]any{"progressToken": token}
	}
	return map[string]any{"jsonrpc": "2.0", "id": id, "method": "tools/call", "params": params}
}

// checkProgressOrder fails unless every call (request id → progress token)
// got at least one progress notification, all of them before its response,
// none after it.
func checkProgressOrder(t *testing.T, stream []wireMessage, calls map[string]string) {
	t.Helper()
	responseAt := map[string]int{}
	for i, m := range stream {
		if m.isResponse() {
			responseAt[m.idString()] = i
		}
	}
	byToken := map[string][]int{}
	for i, m := range stream {
		if tok := m.progressToken(); tok != "" {
			byToken[tok] = append(byToken[tok], i)
		}
	}
	for id, token := range calls {
		at, ok := responseAt[id]
		if !ok {
			t.Errorf("call %s: no response", id)
			continue
		}
		if stream[at].Error != nil {
			t.Errorf("call %s: error %+v", id, stream[at].Error)
		}
		if len(byToken[token]) == 0 {
			t.Errorf("call %s: no progress notification for token %s", id, token)
		}
		for _, p := range byToken[token] {
			if p > at {
				t.Errorf("call %s: progress for token %s at message %d, after its response at %d: %s", id, token, p, at, stream[p].raw)
			}
		}
	}
}

// TestStdio_ProgressNeverFollowsResponse: wait_for_tasks and apply_changes
// report progress right before they answer; over stdio that progress must
// be on the stream before the response, every time (the library used to
// write it from another goroutine, after the response in most calls, and
// Claude Code then dropped the connection).
func TestStdio_ProgressNeverFollowsResponse(t *testing.T) {
	e := newTestEnv(t)
	c := e.rawStdioClient(t)
	done := e.startTask(nil)
	e.finishRun(done.TaskID, 1, models.TaskPhaseSucceeded, "out.txt")
	playDiffController(t, e.store, models.DiffPhaseApplied)

	calls := map[string]string{}
	for i := range 24 {
		id, token := fmt.Sprint(100+i), fmt.Sprintf("wait-%d", i)
		calls[id] = token
		c.send(toolCall(100+i, token, "wait_for_tasks", map[string]any{"taskIds": []string{done.TaskID}, "timeoutSeconds": 10}))
		c.waitResponse(id)
		if i%4 == 0 {
			task := e.startTask(nil)
			d := e.finishRun(task.TaskID, 1, models.TaskPhaseSucceeded, "out.txt")
			id, token := fmt.Sprint(1000+i), fmt.Sprintf("apply-%d", i)
			calls[id] = token
			c.send(toolCall(1000+i, token, "apply_changes", map[string]any{"diffId": d.ID}))
			c.waitResponse(id)
		}
	}
	// A last round trip, so a straggling notification has been written.
	c.send(map[string]any{"jsonrpc": "2.0", "id": "last", "method": "ping"})
	c.waitResponse(`"last"`)
	checkProgressOrder(t, c.messages(), calls)
}

// TestStdio_CancelledCallGetsNoResponse: after notifications/cancelled the
// server sends no response for that request (it used to send -32603
// "context canceled"), and keeps serving.
func TestStdio_CancelledCallGetsNoResponse(t *testing.T) {
	e := newTestEnv(t)
	c := e.rawStdioClient(t)
	running := e.startTask(nil) // never finishes

	for round := range 3 {
		id := 7 + round
		token := fmt.Sprintf("long-%d", round)
		c.send(toolCall(id, token, "wait_for_tasks", map[string]any{"taskIds": []string{running.TaskID}, "timeoutSeconds": 60}))
		// The handler runs once its first progress is out.
		c.waitFor("progress "+token, func(m wireMessage) bool { return m.progressToken() == token })
		c.send(map[string]any{"jsonrpc": "2.0", "method": "notifications/cancelled",
			"params": map[string]any{"requestId": id, "reason": "user pressed Esc"}})
		// The handler has returned once its call is logged; its reply
		// would be written right after.
		deadline := time.Now().Add(30 * time.Second)
		for e.loggedCalls("wait_for_tasks") <= round {
			if time.Now().After(deadline) {
				t.Fatalf("cancelled wait %d did not end", id)
			}
			time.Sleep(5 * time.Millisecond)
		}
		pingID := fmt.Sprintf(`"ping-%d"`, round)
		c.send(map[string]any{"jsonrpc": "2.0", "id": "ping-" + fmt.Sprint(round), "method": "ping"})
		c.waitResponse(pingID)
	}
	// One more call, answered normally: the server still serves.
	c.send(toolCall(99, "", "system_status", nil))
	if m := c.waitResponse("99"); m.Error != nil {
		t.Fatalf("system_status after cancels: %+v", m.Error)
	}
	time.Sleep(100 * time.Millisecond)
	for _, m := range c.messages() {
		if m.isResponse() && (m.idString() == "7" || m.idString() == "8" || m.idString() == "9") {
			t.Errorf("a cancelled call got a response: %s", m.raw)
		}
	}
}

func (e *testEnv) loggedCalls(tool string) int {
	n := 0
	for _, entry := range e.logs.FilterMessage(logging.ToolCallMessage).All() {
		if entry.ContextMap()["tool"] == tool {
			n++
		}
	}
	return n
}

// httpSession is a raw streamable HTTP client: one session, requests
// posted one at a time, SSE and JSON answers parsed by hand.
type httpSession struct {
	t        *testing.T
	endpoint string
	id       string
}

func (h *httpSession) post(msg any) (*http.Response, error) {
	b, err := json.Marshal(msg)
	if err != nil {
		return nil, err
	}
	req, err := http.NewRequest(http.MethodPost, h.endpoint, bytes.NewReader(b))
	if err != nil {
		return nil, err
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Accept", "application/json, text/event-stream")
	if h.id != "" {
		req.Header.Set("Mcp-Session-Id", h.id)
		req.Header.Set("Mcp-Protocol-Version", "2025-06-18")
	}
	return http.DefaultClient.Do(req)
}

// call posts a request and returns every message of its answer in order.
func (h *httpSession) call(msg any) []wireMessage {
	h.t.Helper()
	resp, err := h.post(msg)
	if err != nil {
		h.t.Fatal(err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		b, _ := io.ReadAll(resp.Body)
		h.t.Fatalf("status %d: %s", resp.StatusCode, b)
	}
	if id := resp.Header.Get("Mcp-Session-Id"); id != "" {
		h.id = id
	}
	if !strings.HasPrefix(resp.Header.Get("Content-Type"), "text/event-stream") {
		b, err := io.ReadAll(resp.Body)
		if err != nil {
			h.t.Fatal(err)
		}
		return []wireMessage{parseWire(h.t, b)}
	}
	return readSSE(h.t, resp.Body, nil)
}

// readSSE parses data events until the body ends (or stop says so).
func readSSE(t *testing.T, body io.Reader, stop func(wireMessage) bool) []wireMessage {
	var out []wireMessage
	sc := bufio.NewScanner(body)
	sc.Buffer(make([]byte, 1<<20), 16<<20)
	for sc.Scan() {
		line := sc.Text()
		if data, ok := strings.CutPrefix(line, "data: "); ok {
			m := parseWire(t, []byte(data))
			out = append(out, m)
			if stop != nil && stop(m) {
				break
			}
		}
	}
	return out
}

func (e *testEnv) rawHTTPSession(t *testing.T) (*httpSession, string) {
	t.Helper()
	handler, streamable := NewHTTPHandler(NewServer(e.deps()), HTTPOptions{Config: service.StaticConfig(e.cfg)})
	ts := httptest.NewServer(handler)
	t.Cleanup(func() { streamable.CloseSessions(context.Background()); ts.Close() })
	h := &httpSession{t: t, endpoint: ts.URL + EndpointPath}
	h.call(map[string]any{"jsonrpc": "2.0", "id": 0, "method": "initialize", "params": map[string]any{
		"protocolVersion": "2025-06-18", "capabilities": map[string]any{}, "clientInfo": map[string]any{"name": "raw", "version": "1"}}})
	if h.id == "" {
		t.Fatal("initialize returned no session id")
	}
	resp, err := h.post(map[string]any{"jsonrpc": "2.0", "method": "notifications/initialized"})
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	return h, ts.URL
}

// TestHTTP_ProgressNeverFollowsResponse: over streamable HTTP a call's
// progress goes on the call's own stream, before its response, with
// nothing after it; the session's GET stream (which Claude Code keeps open,
// and which used to take some of the progress, at any time) carries none.
func TestHTTP_ProgressNeverFollowsResponse(t *testing.T) {
	e := newTestEnv(t)
	h, _ := e.rawHTTPSession(t)
	done := e.startTask(nil)
	e.finishRun(done.TaskID, 1, models.TaskPhaseSucceeded, "out.txt")
	playDiffController(t, e.store, models.DiffPhaseApplied)

	// The standalone GET stream, read in the background.
	getCtx, stopGet := context.WithCancel(context.Background())
	defer stopGet()
	req, _ := http.NewRequestWithContext(getCtx, http.MethodGet, h.endpoint, nil)
	req.Header.Set("Accept", "text/event-stream")
	req.Header.Set("Mcp-Session-Id", h.id)
	getResp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	if getResp.StatusCode != http.StatusOK {
		t.Fatalf("GET stream: %d", getResp.StatusCode)
	}
	getMsgs := make(chan []wireMessage, 1)
	go func() { defer getResp.Body.Close(); getMsgs <- readSSE(t, getResp.Body, nil) }()

	for i := range 16 {
		id, token := fmt.Sprint(100+i), fmt.Sprintf("wait-%d", i)
		stream := h.call(toolCall(100+i, token, "wait_for_tasks", map[string]any{"taskIds": []string{done.TaskID}, "timeoutSeconds": 10}))
		checkStream(t, stream, id, token)
		if i%5 == 0 {
			task := e.startTask(nil)
			d := e.finishRun(task.TaskID, 1, models.TaskPhaseSucceeded, "out.txt")
			id, token := fmt.Sprint(1000+i), fmt.Sprintf("apply-%d", i)
			checkStream(t, h.call(toolCall(1000+i, token, "apply_changes", map[string]any{"diffId": d.ID})), id, token)
		}
	}
	stopGet()
	for _, m := range <-getMsgs {
		if m.progressToken() != "" {
			t.Errorf("progress on the GET stream, unordered with its call's response: %s", m.raw)
		}
	}
}

// checkStream: the answer to one call is its progress, then its response,
// then nothing.
func checkStream(t *testing.T, stream []wireMessage, id, token string) {
	t.Helper()
	if len(stream) == 0 {
		t.Fatalf("call %s: empty answer", id)
	}
	last := stream[len(stream)-1]
	if !last.isResponse() || last.idString() != id {
		t.Errorf("call %s: the answer does not end with its response: %s", id, last.raw)
	}
	checkProgressOrder(t, stream, map[string]string{id: token})
}

// TestHTTP_SessionRules: every request but initialize names a session this
// server issued: none → 400, one it never issued or that ended → 404 (a GET
// without one used to hang for ever, and any id was accepted).
func TestHTTP_SessionRules(t *testing.T) {
	e := newTestEnv(t)
	h, _ := e.rawHTTPSession(t)
	do := func(method, session string, body any) (int, string) {
		t.Helper()
		var rd io.Reader
		if body != nil {
			b, _ := json.Marshal(body)
			rd = bytes.NewReader(b)
		}
		ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
		defer cancel()
		req, _ := http.NewRequestWithContext(ctx, method, h.endpoint, rd)
		req.Header.Set("Content-Type", "application/json")
		req.Header.Set("Accept", "application/json, text/event-stream")
		if session != "" {
			req.Header.Set("Mcp-Session-Id", session)
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatalf("%s %q: %v", method, session, err)
		}
		defer resp.Body.Close()
		if strings.HasPrefix(resp.Header.Get("Content-Type"), "text/event-stream") {
			return resp.StatusCode, "(stream)"
		}
		b, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, string(b)
	}
	list := map[string]any{"jsonrpc": "2.0", "id": 5, "method": "tools/list"}
	notice := map[string]any{"jsonrpc": "2.0", "method": "notifications/initialized"}
	never := "cp-00000000000000000000000000000000"
	for _, tc := range []struct {
		name, method, session string
		body                  any
		want                  int
	}{
		{"GET without session", http.MethodGet, "", nil, http.StatusBadRequest},
		{"GET unknown session", http.MethodGet, never, nil, http.StatusNotFound},
		{"GET foreign-looking session", http.MethodGet, "mcp-session-5f0c2c52-6b3c-4c1e-9a43-2a5d8c0c6d11", nil, http.StatusNotFound},
		{"POST request without session", http.MethodPost, "", list, http.StatusBadRequest},
		{"POST notification without session", http.MethodPost, "", notice, http.StatusBadRequest},
		{"POST unknown session", http.MethodPost, never, list, http.StatusNotFound},
		{"DELETE without session", http.MethodDelete, "", nil, http.StatusBadRequest},
		{"DELETE unknown session", http.MethodDelete, never, nil, http.StatusNotFound},
		{"POST issued session", http.MethodPost, h.id, list, http.StatusOK},
	} {
		t.Run(tc.name, func(t *testing.T) {
			code, body := do(tc.method, tc.session, tc.body)
			if code != tc.want {
				t.Fatalf("status %d, want %d: %s", code, tc.want, body)
			}
			if tc.want == http.StatusBadRequest && !strings.Contains(body, "Mcp-Session-Id") {
				t.Errorf("400 does not say what is missing: %s", body)
			}
		})
	}
	// Ending the session makes its id unknown too.
	if code, body := do(http.MethodDelete, h.id, nil); code != http.StatusOK {
		t.Fatalf("DELETE: %d %s", code, body)
	}
	if code, _ := do(http.MethodPost, h.id, list); code != http.StatusNotFound {
		t.Fatalf("POST on an ended session: %d", code)
	}
	if code, _ := do(http.MethodGet, h.id, nil); code != http.StatusNotFound {
		t.Fatalf("GET on an ended session: %d", code)
	}
}

// TestHTTP_UnauthorizedSaysHowToPassTheToken: a request without the token
// gets a 401 whose challenge and body say a bearer token is needed and how
// to send it, with no OAuth resource-metadata hint, and the OAuth discovery
// paths a client then probes answer 404 at once (Claude Code and the MCP
// Inspector used to start an OAuth flow that ended in confusing errors).
func TestHTTP_UnauthorizedSaysHowToPassTheToken(t *testing.T) {
	e := newTestEnv(t)
	cfg := e.cfg.Clone()
	cfg.HTTP.Token = "tok-401"
	srv, err := ListenHTTP("127.0.0.1:0", NewServer(e.deps()), HTTPOptions{Config: service.StaticConfig(cfg)})
	if err != nil {
		t.Fatal(err)
	}
	go func() { _ = srv.Serve() }()
	defer srv.Shutdown(context.Background())
	base := "http://" + srv.Addr()

	req, _ := http.NewRequest(http.MethodPost, base+EndpointPath, strings.NewReader(
		`{"jsonrpc":"2.0","id":0,"method":"initialize","params":{"protocolVersion":"2025-06-18","capabilities":{},"clientInfo":{"name":"x","version":"1"}}}`))
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Accept", "application/json, text/event-stream")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusUnauthorized {
		t.Fatalf("status %d", resp.StatusCode)
	}
	challenge := resp.Header.Get("WWW-Authenticate")
	for _, want := range []string{`Bearer realm="claude-parallel"`, "Authorization: Bearer <token>", "CLAUDE_PARALLEL_TOKEN"} {
		if !strings.Contains(challenge, want) {
			t.Errorf("WWW-Authenticate %q lacks %q", challenge, want)
		}
	}
	if strings.Contains(challenge, "resource_metadata") || strings.Count(challenge, `"`)%2 != 0 {
		t.Errorf("WWW-Authenticate %q: an OAuth hint or broken quoting", challenge)
	}
	for _, want := range []string{"bearer token", "Authorization: Bearer <token>", "CLAUDE_PARALLEL_TOKEN", "--header"} {
		if !strings.Contains(string(body), want) {
			t.Errorf("401 body %q lacks %q", body, want)
		}
	}
	for _, path := range []string{"/.well-known/oauth-protected-resource", "/.well-known/oauth-protected-resource/mcp",
		"/.well-known/oauth-authorization-server", "/.well-known/openid-configuration", "/register", "/authorize", "/token"} {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		req, _ := http.NewRequestWithContext(ctx, http.MethodGet, base+path, nil)
		resp, err := http.DefaultClient.Do(req)
		cancel()
		if err != nil {
			t.Fatalf("%s: %v", path, err)
		}
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != http.StatusNotFound || !strings.Contains(string(body), "Authorization: Bearer <token>") {
			t.Errorf("%s: status %d, want 404 saying how to pass the token: %s", path, resp.StatusCode, body)
		}
	}
}

// notifyRecorder is a transport that notes when each notification went out.
type notifyRecorder struct {
	mu    sync.Mutex
	times []time.Time
}

func (r *notifyRecorder) notify(context.Context, string, map[string]any) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.times = append(r.times, time.Now())
	return nil
}

// TestProgress_ResponseKeepsItsDistance: a call answers no sooner than
// progressGap after its last progress notification. Claude Code forgets a
// call's progress token with its response and handles notifications a tick
// later, so a progress read together with the response made it drop the
// connection even when the bytes were in order.
func TestProgress_ResponseKeepsItsDistance(t *testing.T) {
	e := newTestEnv(t)
	done := e.startTask(nil)
	d := e.finishRun(done.TaskID, 1, models.TaskPhaseSucceeded, "out.txt")
	playDiffController(t, e.store, models.DiffPhaseApplied)
	for _, tc := range []struct {
		tool string
		args string
	}{
		{"wait_for_tasks", `{"taskIds":["` + done.TaskID + `"],"timeoutSeconds":10}`},
		{"apply_changes", `{"diffId":"` + d.ID + `"}`},
	} {
		t.Run(tc.tool, func(t *testing.T) {
			rec := &notifyRecorder{}
			req := mcpCallRequest(tc.tool, tc.args, "tok")
			res, err := e.handler(tc.tool)(withNotifier(context.Background(), rec), req)
			returned := time.Now()
			if err != nil || res.IsError {
				t.Fatalf("%v %s", err, resultText(res))
			}
			rec.mu.Lock()
			defer rec.mu.Unlock()
			if len(rec.times) == 0 {
				t.Fatal("no progress sent")
			}
			if gap := returned.Sub(rec.times[len(rec.times)-1]); gap < progressGap {
				t.Fatalf("answered %s after the last progress, want at least %s", gap, progressGap)
			}
		})
	}
	// Without a progress token nothing is sent and nothing waits.
	rec := &notifyRecorder{}
	if _, err := e.handler("wait_for_tasks")(withNotifier(context.Background(), rec),
		mcpCallRequest("wait_for_tasks", `{"taskIds":["`+done.TaskID+`"]}`, "")); err != nil || len(rec.times) != 0 {
		t.Fatalf("%v, %d notifications", err, len(rec.times))
	}
}

func mcpCallRequest(name, args, token string) mcpgo.CallToolRequest {
	req := mcpgo.CallToolRequest{}
	req.Params.Name = name
	req.Params.RawArguments = json.RawMessage(args)
	_ = json.Unmarshal([]byte(args), &req.Params.Arguments)
	if token != "" {
		req.Params.Meta = &mcpgo.Meta{ProgressToken: token}
	}
	return req
}

// TestHTTP_CancelledCallGetsNoResponse: over streamable HTTP, a call the
// client cancels ends without a response: its SSE stream (opened by its
// progress) closes with none, and a plain JSON answer becomes 202 with no
// body. The library sent -32603 "context canceled".
func TestHTTP_CancelledCallGetsNoResponse(t *testing.T) {
	e := newTestEnv(t)
	h, _ := e.rawHTTPSession(t)
	running := e.startTask(nil) // never finishes
	cancelLater := func(id int, after func()) {
		after()
		resp, err := h.post(map[string]any{"jsonrpc": "2.0", "method": "notifications/cancelled",
			"params": map[string]any{"requestId": id, "reason": "user pressed Esc"}})
		if err != nil {
			t.Error(err)
			return
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusAccepted {
			t.Errorf("cancel notification: %d", resp.StatusCode)
		}
	}

	// With a progress token: the answer is an SSE stream.
	resp, err := h.post(toolCall(21, "long", "wait_for_tasks", map[string]any{"taskIds": []string{running.TaskID}, "timeoutSeconds": 60}))
	if err != nil {
		t.Fatal(err)
	}
	if resp.StatusCode != http.StatusOK || !strings.HasPrefix(resp.Header.Get("Content-Type"), "text/event-stream") {
		t.Fatalf("wait answered %d %s", resp.StatusCode, resp.Header.Get("Content-Type"))
	}
	first := make(chan struct{})
	go cancelLater(21, func() { <-first })
	var stream []wireMessage
	sc := bufio.NewScanner(resp.Body)
	for sc.Scan() {
		if data, ok := strings.CutPrefix(sc.Text(), "data: "); ok {
			stream = append(stream, parseWire(t, []byte(data)))
			if len(stream) == 1 {
				close(first)
			}
		}
	}
	resp.Body.Close()
	if len(stream) == 0 || stream[0].progressToken() != "long" {
		t.Fatalf("no progress first: %v", stream)
	}
	for _, m := range stream {
		if m.isResponse() {
			t.Errorf("the cancelled call got a response: %s", m.raw)
		}
	}

	// Without one, in a new session (the first one answers on SSE now): a
	// plain JSON answer, cancelled while the handler waits.
	h, _ = e.rawHTTPSession(t)
	// Nothing tells when that handler runs, so the cancel is repeated
	// until the call ends (a cancel of a request not yet running is void).
	logged := e.loggedCalls("wait_for_tasks")
	answered := make(chan struct{})
	go func() {
		for {
			select {
			case <-answered:
				return
			case <-time.After(50 * time.Millisecond):
				cancelLater(22, func() {})
			}
		}
	}()
	resp, err = h.post(toolCall(22, "", "wait_for_tasks", map[string]any{"taskIds": []string{running.TaskID}, "timeoutSeconds": 60}))
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	close(answered)
	if resp.StatusCode != http.StatusAccepted || len(bytes.TrimSpace(body)) != 0 {
		t.Fatalf("cancelled plain call answered %d %q", resp.StatusCode, body)
	}
	if e.loggedCalls("wait_for_tasks") != logged+1 {
		t.Errorf("the second wait did not run")
	}
	// The session still serves.
	if got := h.call(toolCall(23, "", "system_status", nil)); len(got) != 1 || got[0].Error != nil || !got[0].isResponse() {
		t.Fatalf("after cancels: %v", got)
	}
}
