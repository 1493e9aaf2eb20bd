package e2e

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	sdk "github.com/modelcontextprotocol/go-sdk/mcp"

	"github.com/claude-parallel/claude-parallel/mcp"
	"github.com/claude-parallel/claude-parallel/models"
	"github.com/claude-parallel/claude-parallel/test/testutil"
)

// idleServer is one real `serve --http` process on its own seeded home.
type idleServer struct {
	name string
	home string
	db   string
	cmd  *exec.Cmd
	addr string
	err  *testutil.LockedBuffer
}

// startIdleServer seeds a home with history finished tasks (a tenth of their
// diffs pending) and starts the real server on it with extra config.
func startIdleServer(b *testing.B, name string, history int, config string) *idleServer {
	b.Helper()
	home := b.TempDir()
	testutil.UnmountBelowAtEnd(b, home) // copy-on-write workspaces are mounts
	db := seedHome(b, home, history)    // a tenth of the diffs pending, their workspaces kept
	if config != "" {
		testutil.WriteFile(b, filepath.Join(home, "config.yaml"), config)
	}
	s := &idleServer{name: name, home: home, db: db, addr: freeAddr(b), err: &testutil.LockedBuffer{}}
	s.cmd = exec.Command(flowBinary(b), "serve", "--http", s.addr)
	s.cmd.Env = append(os.Environ(), "CLAUDE_PARALLEL_HOME="+home, "CLAUDE_PARALLEL_TOKEN=bench-token")
	s.cmd.Stderr = s.err
	if err := s.cmd.Start(); err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() {
		_ = s.cmd.Process.Signal(syscall.SIGTERM)
		_, _ = s.cmd.Process.Wait()
	})
	waitHTTP(b, name+" ready", "http://"+s.addr+"/readyz", http.StatusOK, 2*time.Minute, func() string { return s.err.String() })
	return s
}

// cpu is the server's CPU time so far (processCPU).
func (s *idleServer) cpu(b *testing.B) (total time.Duration, threads []string) {
	return processCPU(b, s.cmd.Process.Pid)
}

// counters scrapes the server's /metrics for what wakes an idle server
// up: claude_parallel_wakeups_total by source, each controller's resyncs
// and reconciles, and the Go runtime's GC cycles. Keys are "name{labels}".
func (s *idleServer) counters(b *testing.B) map[string]float64 {
	req, err := http.NewRequest(http.MethodGet, "http://"+s.addr+"/metrics", nil)
	if err != nil {
		b.Fatal(err)
	}
	req.Header.Set("Authorization", "Bearer bench-token")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		b.Fatalf("%s: scrape /metrics: %v", s.name, err)
	}
	defer resp.Body.Close()
	raw, err := io.ReadAll(resp.Body)
	if err != nil || resp.StatusCode != http.StatusOK {
		b.Fatalf("%s: scrape /metrics: %d %v", s.name, resp.StatusCode, err)
	}
	out := map[string]float64{}
	for _, line := range strings.Split(string(raw), "\n") {
		if !strings.HasPrefix(line, "claude_parallel_wakeups_total") &&
			!strings.HasPrefix(line, "claude_parallel_controller_resyncs_total") &&
			!strings.HasPrefix(line, "claude_parallel_controller_reconciles_total") &&
			!strings.HasPrefix(line, "go_gc_duration_seconds_count") {
			continue
		}
		i := strings.LastIndexByte(line, ' ')
		v, err := strconv.ParseFloat(line[i+1:], 64)
		if err != nil {
			continue
		}
		out[line[:i]] = v
	}
	return out
}

// wakeBreakdown says, per idle minute, how often each source woke the
// server (only those that did), e.g. "lease-renew 2.0, change-poll 1.0, gc 0.5".
func wakeBreakdown(before, after map[string]float64, idle time.Duration) string {
	short := func(k string) string {
		for _, p := range []string{"claude_parallel_wakeups_total{source=", "claude_parallel_controller_"} {
			k = strings.TrimPrefix(k, p)
		}
		k = strings.NewReplacer(`"`, "", "{controller=", ":", "}", "", "go_gc_duration_seconds_count", "gc").Replace(k)
		return k
	}
	var keys []string
	for k := range after {
		if after[k] > before[k] {
			keys = append(keys, k)
		}
	}
	slices.Sort(keys)
	var parts []string
	for _, k := range keys {
		parts = append(parts, fmt.Sprintf("%s %.1f", short(k), (after[k]-before[k])*float64(time.Minute)/float64(idle)))
	}
	if len(parts) == 0 {
		return "none"
	}
	return strings.Join(parts, ", ")
}

// mem reads the server's memory figures from /proc.
func (s *idleServer) mem(b *testing.B) memory { return processMemory(b, s.cmd.Process.Pid) }

// pickups writes n task intents from this process (another process than the
// server, as a CLI or a second server would) and measures each commit → the
// leader's first write to the task, with the server idle before each.
func (s *idleServer) pickups(b *testing.B, n int, gap time.Duration) []time.Duration {
	b.Helper()
	ctx := context.Background()
	st, err := models.Open(ctx, s.db, models.Options{})
	if err != nil {
		b.Fatal(err)
	}
	defer st.Close()
	var out []time.Duration
	for i := range n {
		time.Sleep(gap)
		// A folder that does not exist: the leader's first pass fails the
		// task at once, which is the write this waits for.
		task := &models.Task{Spec: models.TaskSpec{Prompt: "pickup", Agent: "shell",
			WorkFolder: filepath.Join(s.home, fmt.Sprintf("absent-%d", i))}}
		created, _, err := st.CreateTask(ctx, task)
		if err != nil {
			b.Fatal(err)
		}
		start := time.Now()
		for {
			got, err := st.GetTask(ctx, created.ID)
			if err != nil {
				b.Fatal(err)
			}
			if got.ResourceVersion != created.ResourceVersion {
				break
			}
			if time.Since(start) > time.Minute {
				b.Fatalf("%s: task %s not picked up in a minute\n%s", s.name, created.ID, s.err.String())
			}
			time.Sleep(time.Millisecond)
		}
		out = append(out, time.Since(start))
	}
	return out
}

// reviewPending calls review_changes (the pending list) through the MCP
// client n times: the calls that once loaded every pending diff.
func (s *idleServer) reviewPending(b *testing.B, n int) {
	b.Helper()
	client := &http.Client{Transport: testutil.BearerTransport{Token: "bench-token"}}
	cs, err := flowClient().Connect(context.Background(), &sdk.StreamableClientTransport{
		Endpoint: "http://" + s.addr + mcp.EndpointPath, HTTPClient: client}, nil)
	if err != nil {
		b.Fatal(err)
	}
	defer cs.Close()
	for range n {
		res, err := cs.CallTool(context.Background(), &sdk.CallToolParams{Name: "review_changes", Arguments: map[string]any{}})
		if err != nil || res.IsError {
			b.Fatalf("review_changes: %v %s", err, testutil.ToolText(res))
		}
	}
}

// BenchmarkIdleServer measures the real server at rest, on a store of 1,000
// and of 1,000,000 finished tasks (100,000 of their diffs never decided;
// CP_BENCH_NO_MILLION=1: 100,000 tasks): CPU per idle minute, resident memory
// (also after review_changes calls), and how soon another process's intent is
// picked up. Two servers run side by side on separate homes, so machine load
// hits both alike: the default (commit hints: inotify and the -shm header) and
// the same binary polling the store every 200 ms (intervals.wake_watch:
// false), the behaviour before. Targets: ≤ 50 ms CPU a minute, ≤ 40 MB, pickup
// ≤ 200 ms. CPU is every thread's scheduler time in nanoseconds, over
// CP_BENCH_IDLE (default 3m), reported per minute with what woke each server
// (the wake-up counters on /metrics).
func BenchmarkIdleServer(b *testing.B) {
	flowRequireDocker(b)
	idle := 3 * time.Minute
	if v := os.Getenv("CP_BENCH_IDLE"); v != "" {
		d, err := time.ParseDuration(v)
		if err != nil {
			b.Fatalf("CP_BENCH_IDLE: %v", err)
		}
		idle = d
	}
	sizes := []int{1_000, 1_000_000}
	if os.Getenv("CP_BENCH_NO_MILLION") != "" {
		sizes[1] = 100_000
	}
	if v := os.Getenv("CP_BENCH_IDLE_SIZES"); v != "" { // e.g. 1000 for quick runs
		sizes = nil
		for _, f := range strings.Split(v, ",") {
			n, err := strconv.Atoi(strings.TrimSpace(f))
			if err != nil {
				b.Fatalf("CP_BENCH_IDLE_SIZES: %v", err)
			}
			sizes = append(sizes, n)
		}
	}
	for range b.N {
		for _, n := range sizes {
			// The seeded history is dated 2024: kept, so that retention
			// does not spend the measured minutes deleting it.
			const keep = "retention:\n  data_max_age: 100000h\n"
			watch := startIdleServer(b, "watch", n, keep)
			poll := startIdleServer(b, "poll", n, keep+"intervals:\n  wake_watch: false\n")
			servers := []*idleServer{watch, poll}
			time.Sleep(10 * time.Second) // past start-up work: first resyncs, GC of start-up garbage
			memStart := watch.mem(b)
			before := make([]time.Duration, len(servers))
			threads := make([][]string, len(servers))
			scraped := make([]map[string]float64, len(servers))
			for i, s := range servers {
				scraped[i] = s.counters(b) // before the CPU reading: the scrape is not idle time
				before[i], threads[i] = s.cpu(b)
			}
			time.Sleep(idle)
			perMin := make([]float64, len(servers))
			breakdown := make([]string, len(servers))
			for i, s := range servers {
				after, nowThreads := s.cpu(b)
				perMin[i] = float64(after-before[i]) / float64(time.Millisecond) * float64(time.Minute) / float64(idle)
				for _, t := range threads[i] {
					if !slices.Contains(nowThreads, t) {
						b.Logf("%s: thread %s ended during the idle window; its CPU time is not counted", s.name, t)
					}
				}
				breakdown[i] = wakeBreakdown(scraped[i], s.counters(b), idle)
			}
			memW, memP := watch.mem(b), poll.mem(b)
			b.Logf("%d tasks (load average %s): idle CPU %.1f ms/min over %s (polling every 200 ms: %.1f ms/min; ratio %.2f); RSS %s (polling: %s; watch server at the start of the window: %s)",
				n, testutil.LoadAverage(), perMin[0], idle, perMin[1], perMin[0]/perMin[1], memW, memP, memStart)
			b.Logf("%d tasks: wake-ups a minute: %s (polling: %s)", n, breakdown[0], breakdown[1])
			b.ReportMetric(perMin[0], fmt.Sprintf("idle-cpu-ms/min@%d", n))
			b.ReportMetric(perMin[1], fmt.Sprintf("poll-idle-cpu-ms/min@%d", n))
			b.ReportMetric(memW.rss, fmt.Sprintf("rss-MiB@%d", n))
			b.ReportMetric(memW.anon, fmt.Sprintf("rss-anon-MiB@%d", n))
			b.ReportMetric(memW.file, fmt.Sprintf("rss-file-MiB@%d", n))

			pw := watch.pickups(b, 10, 2*time.Second)
			pp := poll.pickups(b, 10, 2*time.Second)
			b.Logf("%d tasks: pickup of another process's intent, median %.1f ms, max %.1f ms (polling: median %.1f ms, max %.1f ms)",
				n, ms(median(pw)), ms(slices.Max(pw)), ms(median(pp)), ms(slices.Max(pp)))
			b.ReportMetric(ms(slices.Max(pw)), fmt.Sprintf("pickup-max-ms@%d", n))

			// The peak before the calls too: VmHWM covers the process's whole
			// life, start-up included, so only the two together say what the
			// calls cost.
			peakBefore := watch.mem(b).peak
			watch.reviewPending(b, 5)
			after := watch.mem(b)
			rssAfter, peak := after.rss, after.peak
			b.Logf("%d tasks: RSS after 5 review_changes calls %.1f MiB (peak %.1f MiB; peak before the calls %.1f MiB)", n, rssAfter, peak, peakBefore)
			for _, s := range servers {
				_ = s.cmd.Process.Signal(syscall.SIGTERM)
				_, _ = s.cmd.Process.Wait()
			}
		}
	}
}
