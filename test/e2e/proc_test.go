package e2e

import (
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/claude-parallel/claude-parallel/test/testutil"
)

// processCPU is a process's CPU time so far, to the nanosecond: the sum of
// every thread's time on a CPU (the first field of
// /proc/PID/task/TID/schedstat, the scheduler's own sum_exec_runtime).
// /proc/PID/stat counts 10 ms ticks, too coarse for the few ticks an idle
// minute holds. Threads that exited take their time with them: the Go
// runtime does not end threads of an idle process, and threads notes the
// set so that the caller can tell.
func processCPU(b *testing.B, pid int) (total time.Duration, threads []string) {
	dir := fmt.Sprintf("/proc/%d/task", pid)
	ents, err := os.ReadDir(dir)
	if err != nil {
		b.Fatal(err)
	}
	for _, e := range ents {
		raw, err := os.ReadFile(filepath.Join(dir, e.Name(), "schedstat"))
		if err != nil {
			continue // the thread ended meanwhile
		}
		f := strings.Fields(string(raw))
		if len(f) == 0 {
			b.Fatalf("%s/%s/schedstat: empty", dir, e.Name())
		}
		ns, err := strconv.ParseInt(f[0], 10, 64)
		if err != nil {
			b.Fatalf("%s/%s/schedstat: %v", dir, e.Name(), err)
		}
		total += time.Duration(ns)
		threads = append(threads, e.Name())
	}
	return total, threads
}

// memory is a process's resident set in MiB: all of it, its peak, and the
// anonymous (heap, stacks, SQLite's caches) and file-backed (mostly the
// binary's mapped code) parts.
type memory struct{ rss, peak, anon, file float64 }

func (m memory) String() string {
	return fmt.Sprintf("%.1f MiB (anon %.1f, file %.1f)", m.rss, m.anon, m.file)
}

// processMemory reads a process's memory figures from /proc.
func processMemory(b *testing.B, pid int) memory {
	st, err := testutil.ProcStatusKB(pid)
	if err != nil {
		b.Fatal(err)
	}
	mib := func(k string) float64 { return float64(st[k]) / 1024 }
	return memory{rss: mib("VmRSS"), peak: mib("VmHWM"), anon: mib("RssAnon"), file: mib("RssFile")}
}
