package reconciler

import (
	"sort"
	"sync"
	"sync/atomic"

	"github.com/prometheus/client_golang/prometheus"
)

// Wake-up sources counted by the Manager: what makes an idle leader run at
// all. An idle server's CPU is mostly the cost of waking up (the Go
// scheduler, sysmon, one SQLite statement), so these counts, beside the
// controllers' resyncs_total and the Go collector's GC count, say where an
// idle minute goes (BenchmarkIdleServer prints them from /metrics).
const (
	WakeLeaseRenew   = "lease-renew"   // the holder renewing its lease
	WakeLeaseAttempt = "lease-attempt" // a candidate trying for the lease
	WakeChangePoll   = "change-poll"   // a timed look at the store's data version
	WakeCommitHint   = "commit-hint"   // inotify (or NOTIFY) said the store was written
	WakeHintLook     = "hint-look"     // a look at the data version in the moments after a hint
	wakePeriodic     = "periodic:"     // + the job's name: a leader-only periodic job's run
)

// wakeCounts counts wake-ups by source; Manager.WakeUps reads them and a
// Registerer receives them as claude_parallel_wakeups_total{source}.
type wakeCounts struct {
	m sync.Map // source -> *atomic.Uint64
}

func (w *wakeCounts) add(source string) {
	c, ok := w.m.Load(source)
	if !ok {
		c, _ = w.m.LoadOrStore(source, new(atomic.Uint64))
	}
	c.(*atomic.Uint64).Add(1)
}

func (w *wakeCounts) snapshot() map[string]uint64 {
	out := map[string]uint64{}
	w.m.Range(func(k, v any) bool {
		out[k.(string)] = v.(*atomic.Uint64).Load()
		return true
	})
	return out
}

var wakeupsDesc = prometheus.NewDesc(metricsNamespace+"_wakeups_total",
	"Times the leader's machinery woke up, by source (lease renewals and attempts, data version polls, commit hints and the looks after them, periodic jobs).",
	[]string{"source"}, nil)

func (w *wakeCounts) Describe(ch chan<- *prometheus.Desc) { ch <- wakeupsDesc }

func (w *wakeCounts) Collect(ch chan<- prometheus.Metric) {
	snap := w.snapshot()
	names := make([]string, 0, len(snap))
	for k := range snap {
		names = append(names, k)
	}
	sort.Strings(names)
	for _, k := range names {
		ch <- prometheus.MustNewConstMetric(wakeupsDesc, prometheus.CounterValue, float64(snap[k]), k)
	}
}

// WakeUps returns how many times each source woke this Manager up so far.
func (m *Manager) WakeUps() map[string]uint64 { return m.wakes.snapshot() }
