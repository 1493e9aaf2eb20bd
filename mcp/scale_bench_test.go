package mcp

import (
	"context"
	"fmt"
	"net/http/httptest"
	"os"
	"runtime"
	"slices"
	"strconv"
	"strings"
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

// countedCall is call with the heap allocations made meanwhile (client and
// server: they share this process), counted outside the timed span.
func (s *benchServer) countedCall(tb testing.TB, name string, args map[string]any) (time.Duration, uint64) {
	var before, after runtime.MemStats
	runtime.ReadMemStats(&before)
	d := s.call(tb, name, args)
	runtime.ReadMemStats(&after)
	return d, after.Mallocs - before.Mallocs
}

func pct(ds []time.Duration, p float64) time.Duration {
	s := slices.Clone(ds)
	slices.Sort(s)
	return s[min(len(s)-1, int(float64(len(s))*p))]
}

// warmUpCalls is how many calls of each read tool each store gets before
// the measured ones.
const warmUpCalls = 10

// benchCalls is how many calls of each read tool each size gets.
func benchCalls() int {
	if n, err := strconv.Atoi(os.Getenv("CP_BENCH_CALLS")); err == nil && n > 0 {
		return n
	}
	return 300
}

// BenchmarkReadScaling is the front end's part of `make bench`: every read
// tool through the go-sdk client against a store of 1,000 and one of 100,000
// finished tasks (each with a diff, a tenth of them still pending, and a
// timeline), calls interleaved so load hits both alike; p50 and p99 and their
// ratios, and the same against a store of 1,000,000. Then task_worker and
// apply_changes latency on the small store.
//
//	go test -run '^$' -bench ReadScaling -benchtime 1x ./mcp/
func BenchmarkReadScaling(b *testing.B) {
	for range b.N {
		// A million rows seed in about 20 s here; CP_BENCH_NO_MILLION=1 leaves them out.
		sizes := []int{1_000, 100_000, 1_000_000}
		if os.Getenv("CP_BENCH_NO_MILLION") != "" {
			sizes = sizes[:2]
		}
		servers := make([]*benchServer, len(sizes))
		for i, n := range sizes {
			start := time.Now()
			servers[i] = newBenchServer(b, n)
			fmt.Printf("reads  | seeded %d finished tasks (with diffs and timelines) in %s\n", n, time.Since(start).Round(time.Millisecond))
		}
		oneTask := func(s *benchServer) string { return "task-" + fmt.Sprintf("%012x", 0x800000000000+7) }
		oneDiff := func(s *benchServer) string { return "diff-" + fmt.Sprintf("%012x", 0x800000000000+7) }
		tools := []struct {
			name string
			args func(s *benchServer) map[string]any
		}{
			{"work_status", func(s *benchServer) map[string]any { return map[string]any{"taskId": oneTask(s)} }},
			{"work_status", func(*benchServer) map[string]any { return map[string]any{"limit": 20} }},
			{"work_status", func(*benchServer) map[string]any { return map[string]any{"status": "completed", "limit": 20} }},
			{"review_changes", func(s *benchServer) map[string]any { return map[string]any{"diffId": oneDiff(s)} }},
			{"review_changes", func(*benchServer) map[string]any { return map[string]any{"showContent": false} }},
			{"wait_for_tasks", func(s *benchServer) map[string]any { return map[string]any{"taskIds": []string{oneTask(s)}} }},
			{"list_container_logs", func(*benchServer) map[string]any { return map[string]any{} }},
			{"system_status", func(*benchServer) map[string]any { return map[string]any{} }},
		}
		calls := benchCalls()
		fmt.Printf("reads  | load average %s at the start (2 cores here: above 2 the tails are the machine's)\n", testutil.LoadAverage())
		runtime.GC() // the seeding's garbage is not the reads' to collect
		for _, tool := range tools {
			// Warm-up, not measured: the first calls open the pooled
			// connections and prepare their statements on each, and compile
			// the tool's output schema — a p99 of 300 calls is the third
			// slowest, so these would be it.
			for range warmUpCalls {
				for _, s := range servers {
					s.call(b, tool.name, tool.args(s))
				}
			}
			got := make([][]time.Duration, len(servers))
			allocs := make([]uint64, len(servers))
			for round := range calls {
				for k := range servers {
					i := (k + round) % len(servers) // alternate who goes first
					d, n := servers[i].countedCall(b, tool.name, tool.args(servers[i]))
					got[i] = append(got[i], d)
					allocs[i] += n
				}
			}
			what := tool.name + " " + argsText(tool.args(servers[0]))
			line := fmt.Sprintf("reads  | %-48s | 1k p50 %7s p99 %7s", what, fmtMs(pct(got[0], .5)), fmtMs(pct(got[0], .99)))
			for i := 1; i < len(sizes); i++ {
				line += fmt.Sprintf(" | %dk p50 %7s p99 %7s (ratio p50 %.2f p99 %.2f)", sizes[i]/1000,
					fmtMs(pct(got[i], .5)), fmtMs(pct(got[i], .99)),
					float64(pct(got[i], .5))/float64(pct(got[0], .5)), float64(pct(got[i], .99))/float64(pct(got[0], .99)))
			}
			line += " | allocs/call (client+server)"
			for i := range sizes {
				line += fmt.Sprintf(" %dk %d", sizes[i]/1000, allocs[i]/uint64(calls))
			}
			fmt.Println(line + " | load " + testutil.LoadAverage())
		}

		// Writes with a waiting front end, on the small store.
		s := servers[0]
		var worker []time.Duration
		for range calls {
			worker = append(worker, s.call(b, "task_worker", map[string]any{"task": "echo hi", "workFolder": s.e.repo}))
		}
		fmt.Printf("writes | %-48s | p50 %7s p99 %7s over %d calls (fsync kept)\n", "task_worker", fmtMs(pct(worker, .5)), fmtMs(pct(worker, .99)), calls)

		answerAppliesOnChange(b, s.e.store, nil)
		var apply []time.Duration
		for i := range min(calls, 100) {
			a := s.e.startTask(nil)
			d := s.e.finishRun(a.TaskID, 1, models.TaskPhaseSucceeded, fmt.Sprintf("f%d.txt", i))
			apply = append(apply, s.call(b, "apply_changes", map[string]any{"diffId": d.ID}))
		}
		fmt.Printf("writes | %-48s | p50 %7s p99 %7s over %d calls (front end's wait only: a stand-in controller woken like the real one answers at once)\n",
			"apply_changes", fmtMs(pct(apply, .5)), fmtMs(pct(apply, .99)), len(apply))
	}
}

func argsText(args map[string]any) string {
	var parts []string
	for k, v := range args {
		if k == "taskId" || k == "diffId" || k == "taskIds" {
			v = "<one>"
		}
		parts = append(parts, fmt.Sprintf("%s=%v", k, v))
	}
	slices.Sort(parts)
	return strings.Join(parts, " ")
}

func fmtMs(d time.Duration) string {
	return fmt.Sprintf("%.2fms", float64(d)/float64(time.Millisecond))
}

// BenchmarkWorkStatusOneTask is one work_status call for one task through
// the go-sdk client against a store of 100,000 finished tasks (CP_BENCH_HISTORY
// sets another size), with allocations reported: the call BenchmarkReadScaling
// holds to p99 ≤ 2 ms, for profiling (-cpuprofile, -memprofile, -trace).
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
