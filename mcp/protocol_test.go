package mcp

import (
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	sdk "github.com/modelcontextprotocol/go-sdk/mcp"

	"github.com/claude-parallel/claude-parallel/config"
	"github.com/claude-parallel/claude-parallel/mcp/service"
	"github.com/claude-parallel/claude-parallel/models"
	"github.com/claude-parallel/claude-parallel/test/testutil"
)

// These tests talk to the server with the official go-sdk client, an
// implementation independent of the server's library.

func newSDKClient(progress *atomic.Int32) *sdk.Client {
	return sdk.NewClient(&sdk.Implementation{Name: "protocol-test", Version: "1"}, &sdk.ClientOptions{
		ProgressNotificationHandler: func(context.Context, *sdk.ProgressNotificationClientRequest) {
			if progress != nil {
				progress.Add(1)
			}
		},
	})
}

func (e *testEnv) deps() service.Deps {
	return service.Deps{Config: service.StaticConfig(e.cfg), Store: e.store, Notifier: e, Logger: e.fe.Logger(),
		PollInterval: 10 * time.Millisecond, ApplyWait: 10 * time.Second, Version: "test"}
}

// httpClientSession serves the environment over streamable HTTP (with the
// Origin and token checks) and connects the go-sdk client to it.
func (e *testEnv) httpClientSession(t *testing.T, progress *atomic.Int32) *sdk.ClientSession {
	t.Helper()
	handler, streamable := NewHTTPHandler(NewServer(e.deps()), HTTPOptions{Config: service.StaticConfig(e.cfg)})
	ts := httptest.NewServer(handler)
	t.Cleanup(func() { streamable.CloseSessions(context.Background()); ts.Close() })
	cs, err := newSDKClient(progress).Connect(context.Background(), &sdk.StreamableClientTransport{Endpoint: ts.URL + EndpointPath}, nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = cs.Close() })
	return cs
}

// stdioClientSession serves the environment over the stdio transport on
// pipes. The library keeps one stdio session per process, so these tests
// must not run in parallel with each other.
func (e *testEnv) stdioClientSession(t *testing.T, progress *atomic.Int32) *sdk.ClientSession {
	t.Helper()
	clientR, serverW := io.Pipe()
	serverR, clientW := io.Pipe()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- NewStdioServer(NewServer(e.deps()), e.fe.Logger()).Listen(ctx, serverR, serverW) }()
	cs, err := newSDKClient(progress).Connect(context.Background(), &sdk.IOTransport{Reader: clientR, Writer: clientW}, nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		_ = cs.Close()
		cancel()
		_ = serverW.Close()
		_ = serverR.Close()
		<-done
	})
	return cs
}

func callSDK(t *testing.T, cs *sdk.ClientSession, name string, args map[string]any, out any) *sdk.CallToolResult {
	t.Helper()
	res, err := cs.CallTool(context.Background(), &sdk.CallToolParams{Name: name, Arguments: args})
	if err != nil {
		t.Fatalf("%s: %v", name, err)
	}
	if out != nil {
		if res.IsError {
			t.Fatalf("%s: error result %s", name, testutil.ToolText(res))
		}
		b, _ := json.Marshal(res.StructuredContent)
		if err := json.Unmarshal(b, out); err != nil {
			t.Fatalf("%s: %v", name, err)
		}
	}
	return res
}

// exerciseProtocol runs the same conversation over any transport.
func exerciseProtocol(t *testing.T, e *testEnv, cs *sdk.ClientSession, progress *atomic.Int32) {
	ctx := context.Background()
	if got := cs.InitializeResult().ServerInfo.Name; got != ServerName {
		t.Errorf("server name %q", got)
	}
	tools, err := cs.ListTools(ctx, nil)
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, tool := range tools.Tools {
		names = append(names, tool.Name)
		if tool.OutputSchema == nil || tool.InputSchema == nil {
			t.Errorf("%s lacks a schema", tool.Name)
		}
	}
	for _, want := range []string{"task_worker", "work_status", "review_changes", "apply_changes", "reject_changes",
		"request_revision", "answer_worker_question", "cancel_task", "wait_for_tasks", "system_status",
		"view_container_logs", "list_container_logs"} {
		if !slices.Contains(names, want) {
			t.Errorf("tool %s missing from %v", want, names)
		}
	}

	var status service.SystemStatusResult
	callSDK(t, cs, "system_status", nil, &status)
	if status.Version != "test" || status.Paths.Database != e.store.Path() {
		t.Errorf("system_status %+v", status)
	}

	var started service.TaskWorkerResult
	callSDK(t, cs, "task_worker", map[string]any{"task": "echo hi", "workFolder": e.repo, "agent": "shell", "parentTaskId": "proto-1"}, &started)
	var ws service.WorkStatusResult
	callSDK(t, cs, "work_status", map[string]any{"taskId": started.TaskID}, &ws)
	if ws.Task == nil || ws.Task.TaskID != started.TaskID || ws.Task.WorkFolder != e.repo {
		t.Fatalf("work_status %+v", ws.Task)
	}

	bad := callSDK(t, cs, "task_worker", map[string]any{"task": "x", "workFolder": "relative"}, nil)
	if !bad.IsError || !strings.Contains(testutil.ToolText(bad), "workFolder: ") {
		t.Errorf("bad input over the wire: %+v", bad)
	}

	// A wait with a progress token gets progress notifications while it
	// waits. (A call that ends at once may finish before its notification
	// is flushed; progress only matters for calls that take time.)
	diffCh := make(chan *models.Diff, 1)
	go func() {
		time.Sleep(300 * time.Millisecond)
		diffCh <- e.finishRun(started.TaskID, 1, models.TaskPhaseSucceeded, "out.txt")
	}()
	params := &sdk.CallToolParams{Name: "wait_for_tasks", Arguments: map[string]any{"taskIds": []string{started.TaskID}, "timeoutSeconds": 10}}
	params.SetProgressToken("wait-1")
	res, err := cs.CallTool(ctx, params)
	if err != nil || res.IsError {
		t.Fatalf("wait: %v %s", err, testutil.ToolText(res))
	}
	deadline := time.Now().Add(2 * time.Second)
	for progress.Load() == 0 && time.Now().Before(deadline) {
		time.Sleep(10 * time.Millisecond)
	}
	if progress.Load() == 0 {
		t.Errorf("no progress notification")
	}
	d := <-diffCh

	templates, err := cs.ListResourceTemplates(ctx, nil)
	if err != nil || len(templates.ResourceTemplates) != 2 {
		t.Fatalf("templates %v %v", templates, err)
	}
	patch, err := cs.ReadResource(ctx, &sdk.ReadResourceParams{URI: service.DiffPatchURI(d.ID)})
	if err != nil || len(patch.Contents) != 1 || !strings.Contains(patch.Contents[0].Text, "+++ b/out.txt") {
		t.Fatalf("patch resource %v %v", patch, err)
	}
	if _, err := cs.ReadResource(ctx, &sdk.ReadResourceParams{URI: service.TaskLogsURI(started.TaskID)}); err != nil {
		t.Fatalf("log resource: %v", err)
	}
	if _, err := cs.ReadResource(ctx, &sdk.ReadResourceParams{URI: "claude-parallel://tasks/../../etc/passwd/logs"}); err == nil {
		t.Errorf("a malformed resource URI was served")
	}
}

func TestProtocol_StreamableHTTP(t *testing.T) {
	e := newTestEnv(t)
	var progress atomic.Int32
	exerciseProtocol(t, e, e.httpClientSession(t, &progress), &progress)
}

func TestProtocol_Stdio(t *testing.T) {
	e := newTestEnv(t)
	var progress atomic.Int32
	exerciseProtocol(t, e, e.stdioClientSession(t, &progress), &progress)
}

func TestHTTP_TokenAndOrigin(t *testing.T) {
	e := newTestEnv(t)
	cfg := e.cfg.Clone()
	cfg.HTTP.Token = "s3cret-token"
	cfg.HTTP.AllowedOrigins = []string{"https://app.example.com"}
	ok := http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) { w.WriteHeader(http.StatusTeapot) })
	ts := httptest.NewServer(Protect(ok, HTTPOptions{Config: service.StaticConfig(cfg)}))
	defer ts.Close()

	for _, tc := range []struct {
		name, auth, origin string
		want               int
	}{
		{"no token", "", "", http.StatusUnauthorized},
		{"wrong token", "Bearer nope", "", http.StatusUnauthorized},
		{"token prefix", "Bearer s3cret", "", http.StatusUnauthorized},
		{"basic scheme", "Basic s3cret-token", "", http.StatusUnauthorized},
		{"right token", "Bearer s3cret-token", "", http.StatusTeapot},
		{"lower-case scheme", "bearer s3cret-token", "", http.StatusTeapot},
		{"foreign origin", "Bearer s3cret-token", "https://evil.example.net", http.StatusForbidden},
		{"foreign origin without token", "", "https://evil.example.net", http.StatusForbidden},
		{"null origin", "Bearer s3cret-token", "null", http.StatusForbidden},
		{"file origin", "Bearer s3cret-token", "file://", http.StatusForbidden},
		{"lookalike origin", "Bearer s3cret-token", "https://app.example.com.evil.net", http.StatusForbidden},
		{"allowed origin", "Bearer s3cret-token", "https://APP.example.com", http.StatusTeapot},
		{"loopback origin", "Bearer s3cret-token", "http://localhost:5173", http.StatusTeapot},
		{"loopback ip origin", "Bearer s3cret-token", "http://127.0.0.1:8080", http.StatusTeapot},
	} {
		t.Run(tc.name, func(t *testing.T) {
			req, _ := http.NewRequest(http.MethodPost, ts.URL+EndpointPath, strings.NewReader("{}"))
			if tc.auth != "" {
				req.Header.Set("Authorization", tc.auth)
			}
			if tc.origin != "" {
				req.Header.Set("Origin", tc.origin)
			}
			resp, err := http.DefaultClient.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			resp.Body.Close()
			if resp.StatusCode != tc.want {
				t.Fatalf("status %d, want %d", resp.StatusCode, tc.want)
			}
			if tc.want == http.StatusUnauthorized && resp.Header.Get("WWW-Authenticate") == "" {
				t.Errorf("no WWW-Authenticate header")
			}
		})
	}
}

func TestHTTP_GoSDKClientNeedsTheToken(t *testing.T) {
	e := newTestEnv(t)
	cfg := e.cfg.Clone()
	cfg.HTTP.Token = "tok-123"
	srv, err := ListenHTTP("127.0.0.1:0", NewServer(e.deps()), HTTPOptions{Config: service.StaticConfig(cfg)})
	if err != nil {
		t.Fatal(err)
	}
	go func() { _ = srv.Serve() }()
	defer srv.Shutdown(context.Background())
	endpoint := "http://" + srv.Addr() + EndpointPath

	if _, err := newSDKClient(nil).Connect(context.Background(), &sdk.StreamableClientTransport{Endpoint: endpoint, MaxRetries: -1}, nil); err == nil {
		t.Fatal("connected without the token")
	}
	authed := &http.Client{Transport: testutil.BearerTransport{Token: "tok-123"}}
	cs, err := newSDKClient(nil).Connect(context.Background(), &sdk.StreamableClientTransport{Endpoint: endpoint, HTTPClient: authed}, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer cs.Close()
	callSDK(t, cs, "system_status", nil, &service.SystemStatusResult{})
}

func TestCheckListen(t *testing.T) {
	for _, tc := range []struct {
		addr  string
		token config.Secret
		ok    bool
	}{
		{"127.0.0.1:47821", "", true},
		{"localhost:47821", "", true},
		{"[::1]:47821", "", true},
		{"0.0.0.0:47821", "", false},
		{":47821", "", false},
		{"[::]:47821", "", false},
		{"192.168.1.5:47821", "", false},
		{"0.0.0.0:47821", "tok", true},
		{"nonsense", "tok", false},
	} {
		err := CheckListen(tc.addr, tc.token)
		if (err == nil) != tc.ok {
			t.Errorf("%s token=%v: %v", tc.addr, tc.token != "", err)
		}
		if err != nil && tc.token == "" && !strings.Contains(err.Error(), config.EnvToken) && tc.addr != "nonsense" {
			t.Errorf("%s: message does not say how to fix it: %v", tc.addr, err)
		}
	}
}

func TestListenHTTP_RefusesAllInterfacesWithoutToken(t *testing.T) {
	e := newTestEnv(t)
	_, err := ListenHTTP("0.0.0.0:0", NewServer(e.deps()), HTTPOptions{Config: service.StaticConfig(e.cfg)})
	if err == nil || !strings.Contains(err.Error(), "refusing to listen on 0.0.0.0:0 without a bearer token") {
		t.Fatalf("%v", err)
	}
}
