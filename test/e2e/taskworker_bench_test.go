package e2e

import (
	"context"
	"database/sql"
	"fmt"
	"net/url"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"gorm.io/driver/sqlite"

	"github.com/claude-parallel/claude-parallel/mcp/service"
	"github.com/claude-parallel/claude-parallel/models"
	"github.com/claude-parallel/claude-parallel/test/testutil"
)

// originalTaskWorker is claude-parallel-work's task_worker median on this
// machine (issue 13), the figure to meet; ten of its calls back to back
// took 29–135 ms.
const originalTaskWorker = 3300 * time.Microsecond

// BenchmarkTaskWorker is issue 13's task_worker measurement: the real
// binary over stdio through the go-sdk client, as a client sees it, in three
// situations — one call at a time on an idle server (the previous task
// finished), ten calls back to back, and ten calls while ten tasks run —
// each beside floors measured in the same run, interleaved with the calls:
//   - read: the same server's cheapest tool call (list_container_logs), the
//     protocol and process round trip every call pays;
//   - insert: the same task row written by a models.Store of this build
//     into its own database in the same folder (one fsync'd transaction,
//     the schema's indexes and triggers);
//   - fsync: a bare SQLite insert of a row of the same size, one
//     transaction with synchronous=FULL: the durability floor.
//
// task_worker ÷ (read + insert) is what the front end adds beyond the
// round trip and the one write it must make.
//
//	go test -run '^$' -bench TaskWorker -benchtime 1x ./test/e2e/
//
// CP_BENCH_WORKER_CALLS sets the idle calls (default 60);
// CP_BENCH_WORKER_PARTS the parts run (default "idle,ten,busy").
// CP_BENCH_WORKER_BASELINE names another build's binary: the idle part then
// also runs it, on an installation of its own, its calls interleaved with
// this build's (which goes first alternates), so a comparison under a
// changing load is old and new back to back.
func BenchmarkTaskWorker(b *testing.B) {
	calls := 60
	if n, err := strconv.Atoi(os.Getenv("CP_BENCH_WORKER_CALLS")); err == nil && n > 0 {
		calls = n
	}
	parts := "idle,ten,busy"
	if p := os.Getenv("CP_BENCH_WORKER_PARTS"); p != "" {
		parts = p
	}
	runs := func(part string) bool { return slices.Contains(strings.Split(parts, ","), part) }
	for range b.N {
		fi := newFlowInstall(b)
		// Ten may run: the ten long tasks of the last part run while the
		// calls' own tasks wait for a slot.
		fi.writeConfig("max_parallel: 10\n")
		s := fi.stdio()
		floor := newInsertFloor(b, fi.dir)
		fmt.Printf("writes | task_worker bench: load average at start %s\n", testutil.LoadAverage())

		worker := func(script string) (time.Duration, string) { return timeWorker(b, s, fi, script) }
		read := func() time.Duration { return timeRead(b, s) }
		_, warm := worker("true") // connections, caches and the first container
		s.waitTask(b, warm)
		var base *workerBaseline
		if bin := os.Getenv("CP_BENCH_WORKER_BASELINE"); bin != "" && runs("idle") {
			base = newWorkerBaseline(b, bin)
		}

		// 1. One call at a time on an idle server: the floors first, then
		// the call, then its task runs to the end before the next round.
		var idle, idleRead, idleInsert, idleFsync []time.Duration
		for i := range calls {
			if !runs("idle") {
				break
			}
			if base != nil && i%2 == 1 {
				base.round(b, i)
			}
			idleRead = append(idleRead, read())
			idleInsert = append(idleInsert, floor.insert(b, fi.repo))
			idleFsync = append(idleFsync, floor.fsync(b))
			d, id := worker(fmt.Sprintf("echo %d > idle-%d.txt", i, i))
			idle = append(idle, d)
			s.waitTask(b, id)
			if base != nil && i%2 == 0 {
				base.round(b, i)
			}
		}
		if runs("idle") {
			reportWorker("idle, one call at a time", idle, idleRead, idleInsert, idleFsync)
			b.ReportMetric(ms(median(idle)), "idle-p50-ms")
		}
		if base != nil {
			reportWorker("idle, baseline binary", base.calls, base.reads, idleInsert, idleFsync)
			b.ReportMetric(ms(median(base.calls)), "baseline-idle-p50-ms")
		}
		if !runs("ten") && !runs("busy") {
			continue
		}

		// 2. Ten calls back to back (the total), five times; the floors'
		// ten back to back just before each batch.
		var batches, readBatches, insertBatches, fsyncBatches []time.Duration
		for k := range 5 {
			if !runs("ten") {
				break
			}
			var rs, is, fs time.Duration
			for range 10 {
				rs += read()
				is += floor.insert(b, fi.repo)
				fs += floor.fsync(b)
			}
			readBatches, insertBatches, fsyncBatches = append(readBatches, rs), append(insertBatches, is), append(fsyncBatches, fs)
			var ids []string
			t0 := time.Now()
			for i := range 10 {
				_, id := worker(fmt.Sprintf("echo %d > batch-%d-%d.txt", i, k, i))
				ids = append(ids, id)
			}
			batches = append(batches, time.Since(t0))
			for _, id := range ids {
				s.waitTask(b, id)
			}
		}
		if runs("ten") {
			reportWorker("ten back to back (total)", batches, readBatches, insertBatches, fsyncBatches)
			b.ReportMetric(ms(median(batches)), "ten-ms")
		}
		if !runs("busy") {
			continue
		}

		// 3. Ten calls while ten tasks run (each printing a line every
		// 100 ms, so their log followers write too).
		var long []string
		for i := range 10 {
			_, id := worker(fmt.Sprintf("i=0; while [ $i -lt 600 ]; do echo line $i; i=$((i+1)); sleep 0.1; done # %d", i))
			long = append(long, id)
		}
		waitRunning(b, s, 10)
		var busy, busyRead, busyInsert, busyFsync []time.Duration
		for i := range 10 {
			busyRead = append(busyRead, read())
			busyInsert = append(busyInsert, floor.insert(b, fi.repo))
			busyFsync = append(busyFsync, floor.fsync(b))
			d, _ := worker(fmt.Sprintf("echo %d > busy-%d.txt", i, i))
			busy = append(busy, d)
		}
		reportWorker("while ten tasks run", busy, busyRead, busyInsert, busyFsync)
		fmt.Printf("writes | task_worker bench: load average at end %s\n", testutil.LoadAverage())
		for _, id := range long {
			var out map[string]any
			s.call(b, "cancel_task", map[string]any{"taskId": id}, &out)
		}
		b.ReportMetric(ms(median(busy)), "busy-p50-ms")
	}
}

// timeWorker times one task_worker call of s and returns its task.
func timeWorker(b *testing.B, s *flowServer, fi *flowInstall, script string) (time.Duration, string) {
	b.Helper()
	var started service.TaskWorkerResult
	t0 := time.Now()
	s.call(b, "task_worker", map[string]any{"task": script, "workFolder": fi.repo, "agent": "shell"}, &started)
	return time.Since(t0), started.TaskID
}

// timeRead times s's cheapest call.
func timeRead(b *testing.B, s *flowServer) time.Duration {
	b.Helper()
	var out map[string]any
	t0 := time.Now()
	s.call(b, "list_container_logs", map[string]any{}, &out)
	return time.Since(t0)
}

// workerBaseline is another build's server on an installation of its own,
// called in turn with this build's (CP_BENCH_WORKER_BASELINE).
type workerBaseline struct {
	fi           *flowInstall
	s            *flowServer
	calls, reads []time.Duration
}

func newWorkerBaseline(b *testing.B, bin string) *workerBaseline {
	b.Helper()
	w := &workerBaseline{fi: newFlowInstall(b)}
	w.fi.writeConfig("max_parallel: 10\n")
	var err error
	if w.s, err = w.fi.stdioErr(bin); err != nil {
		b.Fatal(err)
	}
	_, warm := timeWorker(b, w.s, w.fi, "true")
	w.s.waitTask(b, warm)
	return w
}

// round is one idle round on the baseline: its read, its call, its task to
// the end.
func (w *workerBaseline) round(b *testing.B, i int) {
	b.Helper()
	w.reads = append(w.reads, timeRead(b, w.s))
	d, id := timeWorker(b, w.s, w.fi, fmt.Sprintf("echo %d > idle-%d.txt", i, i))
	w.calls = append(w.calls, d)
	w.s.waitTask(b, id)
}

// reportWorker prints one situation: the calls' median, p99 and max, the floors'
// medians, the ratio to read + insert and to the original's 3.3 ms.
func reportWorker(what string, calls, read, insert, fsync []time.Duration) {
	floor := median(read) + median(insert)
	orig := originalTaskWorker
	if strings.HasPrefix(what, "ten") {
		orig *= 10
	}
	fmt.Printf("writes | task_worker %-26s | p50 %s p99 %s max %s (n=%d) | floors p50: read %s, store insert %s, bare fsync'd insert %s | ÷(read+insert) %.2f | ÷original %s: %.2f\n",
		what, benchMs(median(calls)), benchMs(percentile(calls, .99)), benchMs(slices.Max(calls)), len(calls),
		benchMs(median(read)), benchMs(median(insert)), benchMs(median(fsync)),
		float64(median(calls))/float64(floor), benchMs(orig), float64(median(calls))/float64(orig))
}

// waitRunning waits until n tasks are running.
func waitRunning(b testing.TB, s *flowServer, n int64) {
	b.Helper()
	deadline := time.Now().Add(3 * time.Minute)
	for {
		var st service.WorkStatusResult
		s.call(b, "work_status", map[string]any{"status": "running", "limit": 1}, &st)
		if st.Counts["running"] >= n {
			return
		}
		if time.Now().After(deadline) {
			b.Fatalf("%d tasks running after 3 minutes, want %d\nserver log:\n%s", st.Counts["running"], n, s.stderr)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// insertFloor writes the floors' rows: a store of this build and a bare
// SQLite database, both beside the server's.
type insertFloor struct {
	store   *models.Store
	bare    *sql.DB
	rowSize int
	n       int
}

func newInsertFloor(b *testing.B, dir string) *insertFloor {
	b.Helper()
	f := &insertFloor{}
	var err error
	if f.store, err = models.Open(context.Background(), filepath.Join(dir, "floor", "store.db"), models.Options{}); err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { _ = f.store.Close() })
	bare := filepath.Join(dir, "floor", "bare.db")
	dsn := "file:" + (&url.URL{Path: bare}).EscapedPath() + "?_journal_mode=WAL&_synchronous=FULL&_txlock=immediate&_busy_timeout=10000"
	if f.bare, err = sql.Open(sqlite.DriverName, dsn); err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { _ = f.bare.Close() })
	if _, err := f.bare.Exec("CREATE TABLE rows (id TEXT PRIMARY KEY, body BLOB NOT NULL)"); err != nil {
		b.Fatal(err)
	}
	return f
}

// insert stores a task like the calls' own and times it; the first one
// measures the row's size for fsync.
func (f *insertFloor) insert(b *testing.B, repo string) time.Duration {
	b.Helper()
	f.n++
	t := &models.Task{Spec: models.TaskSpec{Prompt: fmt.Sprintf("echo %d > idle-%d.txt", f.n, f.n), WorkFolder: repo,
		Agent: "shell", IncludeUncommitted: true}}
	t0 := time.Now()
	if _, _, err := f.store.CreateTask(context.Background(), t); err != nil {
		b.Fatal(err)
	}
	d := time.Since(t0)
	if f.rowSize == 0 {
		db, err := f.store.DB().DB()
		if err != nil {
			b.Fatal(err)
		}
		f.rowSize = rowBytes(b, db, t.ID)
	}
	return d
}

// fsync inserts a row of the task row's size into the bare database.
func (f *insertFloor) fsync(b *testing.B) time.Duration {
	b.Helper()
	body := make([]byte, max(f.rowSize-18, 1))
	t0 := time.Now()
	if _, err := f.bare.Exec("INSERT INTO rows (id, body) VALUES (?, ?)", models.NewTaskID(), body); err != nil {
		b.Fatal(err)
	}
	return time.Since(t0)
}

// rowBytes sums the stored sizes of a task row's columns.
func rowBytes(b *testing.B, db *sql.DB, id string) int {
	b.Helper()
	rows, err := db.Query("SELECT * FROM background_tasks WHERE id = ?", id)
	if err != nil {
		b.Fatal(err)
	}
	defer rows.Close()
	cols, _ := rows.Columns()
	vals := make([]sql.RawBytes, len(cols))
	ptrs := make([]any, len(cols))
	for i := range vals {
		ptrs[i] = &vals[i]
	}
	n := 0
	for rows.Next() {
		if err := rows.Scan(ptrs...); err != nil {
			b.Fatal(err)
		}
		for _, v := range vals {
			n += len(v)
		}
	}
	return n
}
