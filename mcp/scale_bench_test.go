package mcp

import (
	"context"
	"fmt"
	"net/http/httptest"
	"os"
	"strconv"
	"testing"
	"time"

	"github.com/mark3labs/mcp-go/server"
	sdk "github.com/modelcontextprotocol/go-sdk/mcp"

	"github.com/claude-parallel/claude-parallel/mcp/service"
	"github.com/claude-parallel/claude-parallel/models"
	"github.com/claude-parallel/claude-parallel/test/testutil"
)

// seedHistory adds n finished tasks with their diffs and timelines (see
// testutil.SeedHistory).
func seedHistory(tb testing.TB, s *models.Store, n int) { testutil.SeedHistory(tb, s.DB(), n) }

// benchServer is a test environment served over streamable HTTP to the
// go-sdk client, an MCP implementation independent of the server's.
type benchServer struct {
	e  *testEnv
	cs *sdk.ClientSession
}

func newBenchServer(tb testing.TB, history int) *benchServer {
	e := newTestEnv(tb)
	if history > 0 {
		seedHistory(tb, e.store, history)
	}
	// The real server's defaults: the change signal, and the poll only as fallback.
	deps := e.deps()
	deps.PollInterval = 0
	e.fe = service.NewFrontend(deps)
	streamable := server.NewStreamableHTTPServer(NewServer(deps), server.WithEndpointPath(EndpointPath))
	ts := httptest.NewServer(streamable)
	tb.Cleanup(ts.Close)
	cs, err := newSDKClient(nil).Connect(context.Background(), &sdk.StreamableClientTransport{Endpoint: ts.URL + EndpointPath}, nil)
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() { _ = cs.Close() })
	return &benchServer{e: e, cs: cs}
}

func (s *benchServer) call(tb testing.TB, name string, args map[string]any) time.Duration {
	start := time.Now()
	res, err := s.cs.CallTool(context.Background(), &sdk.CallToolParams{Name: name, Arguments: args})
	d := time.Since(start)
	if err != nil || res.IsError {
		tb.Fatalf("%s %v: %v %+v", name, args, err, res)
	}
	return d
}

// BenchmarkWorkStatusOneTask is one work_status call for one task through
// the go-sdk client against a store of 100,000 finished tasks (CP_BENCH_HISTORY
// sets another size), client and server in this process, with allocations
// reported: the call test/e2e's BenchmarkReadScaling (the real binary) holds
// to p99 ≤ 2 ms, here for profiling (-cpuprofile, -memprofile, -trace).
func BenchmarkWorkStatusOneTask(b *testing.B) {
	history := 100_000
	if n, err := strconv.Atoi(os.Getenv("CP_BENCH_HISTORY")); err == nil && n > 0 {
		history = n
	}
	s := newBenchServer(b, history)
	args := map[string]any{"taskId": "task-" + fmt.Sprintf("%012x", 0x800000000000+7)}
	s.call(b, "work_status", args)
	b.ReportAllocs()
	b.ResetTimer()
	for range b.N {
		s.call(b, "work_status", args)
	}
}
