package e2e

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"runtime/debug"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	sdk "github.com/modelcontextprotocol/go-sdk/mcp"

	"github.com/claude-parallel/claude-parallel/models"
	"github.com/claude-parallel/claude-parallel/test/testutil"
)

// seedHome makes a server home whose store holds history finished tasks with
// their diffs and timelines (testutil.SeedHistory: a tenth of the diffs
// still pending) and returns the store's path. A pending diff's task keeps
// its workspace folder: retention would otherwise reject the diff as
// WorkspaceGone at start-up, which is work, not the history being read.
func seedHome(b *testing.B, home string, history int) string {
	b.Helper()
	db := filepath.Join(home, "data", "claude-parallel.db")
	st, err := models.Open(context.Background(), db, models.Options{})
	if err != nil {
		b.Fatal(err)
	}
	defer st.Close()
	if history == 0 {
		return db
	}
	testutil.SeedHistory(b, st.DB(), history)
	var pending []string
	if err := st.DB().Raw(`SELECT task_id FROM git_diffs WHERE desired = 'pending'`).Scan(&pending).Error; err != nil {
		b.Fatal(err)
	}
	for _, id := range pending {
		if err := os.MkdirAll(filepath.Join(home, "data", "workspaces", id), 0o700); err != nil {
			b.Fatal(err)
		}
	}
	return db
}

// readServer is the real binary serving MCP over stdio on a seeded home, a
// process of its own as it is for a real client: the client's garbage and
// the server's are collected apart.
type readServer struct {
	history int
	cmd     *exec.Cmd
	cs      *sdk.ClientSession
	stderr  *testutil.LockedBuffer
}

func startReadServer(b *testing.B, history int) *readServer {
	b.Helper()
	dir, err := filepath.EvalSymlinks(b.TempDir())
	if err != nil {
		b.Fatal(err)
	}
	home := filepath.Join(dir, "home")
	testutil.UnmountBelowAtEnd(b, home)
	start := time.Now()
	seedHome(b, home, history)
	seeded := time.Since(start)
	work := filepath.Join(dir, "work")
	testutil.NewRepo(b, filepath.Join(work, "repo"), map[string]string{"README.md": "bench\n"})
	// The shipped intervals; the root, the agent and a retention that keeps
	// the seeded history (dated 2024) are this bench's.
	config := filepath.Join(dir, "config.yaml")
	testutil.WriteFile(b, config, fmt.Sprintf("allowed_roots: [%q]\ndefault_agent: shell\nretention:\n  data_max_age: 100000h\n", work))
	s := &readServer{history: history, stderr: &testutil.LockedBuffer{}}
	s.cmd = exec.Command(flowBinary(b), "serve")
	s.cmd.Env = append(flowCleanEnv(), "HOME="+dir, "CLAUDE_PARALLEL_HOME="+home, "CLAUDE_PARALLEL_CONFIG="+config)
	s.cmd.Stderr = s.stderr
	s.cs, err = flowClient().Connect(context.Background(), &sdk.CommandTransport{Command: s.cmd}, nil)
	if err != nil {
		b.Fatalf("connect to the server on %d tasks: %v\n%s", history, err, s.stderr)
	}
	b.Cleanup(func() { _ = s.cs.Close() })
	settled := s.settle(b)
	fmt.Printf("reads  | %d finished tasks: seeded in %s, server settled %s after start (its start-up passes over the store)\n",
		history, seeded.Round(time.Millisecond), settled.Round(time.Millisecond))
	return s
}

// settle waits until the server's start-up work (leadership, the first
// passes of retention and the target watch over a large store) is over: its
// CPU time grows by under 20 ms in a second.
func (s *readServer) settle(b *testing.B) time.Duration {
	start := time.Now()
	last, _ := processCPU(b, s.cmd.Process.Pid)
	for time.Since(start) < 3*time.Minute {
		time.Sleep(time.Second)
		now, _ := processCPU(b, s.cmd.Process.Pid)
		if now-last < 20*time.Millisecond {
			break
		}
		last = now
	}
	return time.Since(start)
}

func (s *readServer) call(b *testing.B, name string, args map[string]any) time.Duration {
	start := time.Now()
	if name == pingCall {
		if err := s.cs.Ping(context.Background(), nil); err != nil {
			b.Fatalf("ping on %d tasks: %v\nserver log:\n%s", s.history, err, s.stderr)
		}
		return time.Since(start)
	}
	res, err := s.cs.CallTool(context.Background(), &sdk.CallToolParams{Name: name, Arguments: args})
	d := time.Since(start)
	if err != nil || res.IsError {
		b.Fatalf("%s %v on %d tasks: %v %s\nserver log:\n%s", name, args, s.history, err, testutil.ToolText(res), s.stderr)
	}
	return d
}

// handlerTimes are the durations the server logged for its calls of tool
// whose log line also holds match (its argument names, say): the server's
// own time, without the pipe and the client.
func (s *readServer) handlerTimes(tool, match string) []time.Duration {
	var out []time.Duration
	for line := range strings.Lines(s.stderr.String()) {
		if !strings.Contains(line, `"tool": "`+tool+`"`) || !strings.Contains(line, match) {
			continue
		}
		_, rest, ok := strings.Cut(line, `"duration": "`)
		if !ok {
			continue
		}
		v, _, _ := strings.Cut(rest, `"`)
		if d, err := time.ParseDuration(v); err == nil {
			out = append(out, d)
		}
	}
	return out
}

// BenchmarkReadScaling is issue 13's read measurement: every read tool
// through the go-sdk client against the real binary over stdio, on stores of
// 1,000, 100,000 and 1,000,000 finished tasks (each with a diff, a tenth of
// them still pending, and a timeline; seeded with SQL in one transaction),
// calls interleaved so load hits every size alike; p50 and p99 and their
// ratios to the 1,000-task store. The client runs in this process and each
// server in its own, as for a real client: what the server allocates is its
// own to collect. (mcp's BenchmarkWorkStatusOneTask is the in-process call,
// for profiles and allocation counts.)
//
//	go test -run '^$' -bench ReadScaling -benchtime 1x ./test/e2e/
//
// CP_BENCH_NO_MILLION=1 leaves the million out (it seeds in about 20 s);
// CP_BENCH_CALLS sets the calls a tool and size (default 300).
func BenchmarkReadScaling(b *testing.B) {
	calls := 300
	if n, err := strconv.Atoi(os.Getenv("CP_BENCH_CALLS")); err == nil && n > 0 {
		calls = n
	}
	for range b.N {
		sizes := []int{1_000, 100_000, 1_000_000}
		if os.Getenv("CP_BENCH_NO_MILLION") != "" {
			sizes = sizes[:2]
		}
		servers := make([]*readServer, len(sizes))
		for i, n := range sizes {
			servers[i] = startReadServer(b, n)
		}
		oneTask := "task-" + fmt.Sprintf("%012x", 0x800000000000+7)
		oneDiff := "diff-" + fmt.Sprintf("%012x", 0x800000000000+7)
		tools := []struct {
			name string
			args map[string]any
		}{
			// The protocol's ping through the same client and pipe: no tool,
			// no store; its tail is what any call's tail starts from here.
			{pingCall, nil},
			{"work_status", map[string]any{"taskId": oneTask}},
			{"work_status", map[string]any{"limit": 20}},
			{"work_status", map[string]any{"status": "completed", "limit": 20}},
			{"review_changes", map[string]any{"diffId": oneDiff}},
			{"review_changes", map[string]any{"showContent": false}},
			{"wait_for_tasks", map[string]any{"taskIds": []string{oneTask}}},
			{"list_container_logs", map[string]any{}},
			{"system_status", map[string]any{}},
		}
		fmt.Printf("reads  | load average %s at the start (2 cores here: above 2 the tails are the machine's)\n", testutil.LoadAverage())
		runtime.GC() // the seeding's garbage is not the client's to collect during the calls
		// The go-sdk client allocates about as much a call as the server,
		// and its collections would stall the timing around calls it
		// makes: at five times the live heap it collects seldom, so what is
		// timed is the server and the pipe.
		defer debug.SetGCPercent(debug.SetGCPercent(400))
		for _, tool := range tools {
			// Warm-up, not measured: the first calls prepare the tool's
			// statements on the pooled connections and compile its output
			// schema; a p99 of 300 calls is the third slowest, so these
			// would be it.
			for range 10 {
				for _, s := range servers {
					s.call(b, tool.name, tool.args)
				}
			}
			got := make([][]time.Duration, len(servers))
			for round := range calls {
				for k := range servers {
					i := (k + round) % len(servers) // alternate who goes first
					got[i] = append(got[i], servers[i].call(b, tool.name, tool.args))
				}
			}
			line := fmt.Sprintf("reads  | %-48s | 1k p50 %7s p99 %7s", tool.name+" "+benchArgsText(tool.args),
				benchMs(percentile(got[0], .5)), benchMs(percentile(got[0], .99)))
			for i := 1; i < len(sizes); i++ {
				line += fmt.Sprintf(" | %dk p50 %7s p99 %7s (ratio p50 %.2f p99 %.2f)", sizes[i]/1000,
					benchMs(percentile(got[i], .5)), benchMs(percentile(got[i], .99)),
					float64(percentile(got[i], .5))/float64(percentile(got[0], .5)),
					float64(percentile(got[i], .99))/float64(percentile(got[0], .99)))
			}
			fmt.Println(line + " | load " + testutil.LoadAverage())
		}
		for _, s := range servers {
			m := processMemory(b, s.cmd.Process.Pid)
			fmt.Printf("reads  | server on %d tasks: %s, peak %.1f MiB\n", s.history, m, m.peak)
			if own := s.handlerTimes("work_status", `"args": ["taskId"]`); len(own) > 0 {
				fmt.Printf("reads  | server on %d tasks: work_status one task, the server's own handler time from its log: p50 %s p99 %s over %d calls (the warm-up ones included)\n",
					s.history, benchMs(percentile(own, .5)), benchMs(percentile(own, .99)), len(own))
			}
		}
	}
}

// pingCall stands for the protocol's ping among the read tools.
const pingCall = "ping (protocol round trip, no tool)"

// percentile is the p-th of ds (p in [0, 1]), nearest rank.
func percentile(ds []time.Duration, p float64) time.Duration {
	s := slices.Clone(ds)
	slices.Sort(s)
	return s[min(len(s)-1, int(float64(len(s))*p))]
}

func benchMs(d time.Duration) string { return fmt.Sprintf("%.2fms", ms(d)) }

// benchArgsText is a call's arguments for a report line, ids left out.
func benchArgsText(args map[string]any) string {
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
