package reconciler

import (
	"fmt"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// Stats is a point-in-time view of one controller, for system_status and metrics.
// Counters are cumulative over the life of the process, across leadership terms.
type Stats struct {
	Name    string
	Running bool // the controller's workers are running (this process leads)
	Workers int
	// QueueDepth counts keys ready to be reconciled; keys waiting out a backoff or a
	// RequeueAfter are not included.
	QueueDepth int

	Reconciles     uint64 // passes completed, whatever their outcome
	Errors         uint64 // passes that failed and were retried with backoff (panics included)
	TerminalErrors uint64 // passes that failed terminally and were not retried
	Panics         uint64 // passes that panicked
	Requeues       uint64 // passes that asked for RequeueAfter
	Resyncs        uint64 // successful full listings of live keys
	// Overdue counts passes running now that have outlived their timeout by
	// overdueGrace: each holds a worker because it does not heed its context
	// (a bug, or a call that cannot be interrupted).
	Overdue int64

	LastResync    time.Time // zero until the first successful resync
	LastError     string    // the most recent failure, for a human; empty if none yet
	LastErrorKey  string
	LastErrorTime time.Time
}

// counters is the mutable side of Stats; workers update it concurrently.
type counters struct {
	reconciles, errors, terminal, panics, requeues, resyncs atomic.Uint64
	overdue                                                 atomic.Int64

	mu           sync.Mutex
	lastResync   time.Time
	lastError    string
	lastErrorKey string
	lastErrorAt  time.Time
}

func (c *counters) recordError(key string, err error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.lastError = err.Error()
	c.lastErrorKey = key
	c.lastErrorAt = time.Now()
}

func (c *counters) recordResync() {
	c.resyncs.Add(1)
	c.mu.Lock()
	defer c.mu.Unlock()
	c.lastResync = time.Now()
}

func (c *counters) fill(s *Stats) {
	s.Reconciles = c.reconciles.Load()
	s.Errors = c.errors.Load()
	s.TerminalErrors = c.terminal.Load()
	s.Panics = c.panics.Load()
	s.Requeues = c.requeues.Load()
	s.Resyncs = c.resyncs.Load()
	s.Overdue = c.overdue.Load()
	c.mu.Lock()
	defer c.mu.Unlock()
	s.LastResync = c.lastResync
	s.LastError = c.lastError
	s.LastErrorKey = c.lastErrorKey
	s.LastErrorTime = c.lastErrorAt
}

// metricsNamespace prefixes every metric this package exports.
const metricsNamespace = "claude_parallel"

// statsCollector exports a controller's Stats to Prometheus at scrape time, so the
// counters have a single source of truth. Each controller registers its own
// collector with a constant "controller" label; the registry accepts several
// collectors of the same metric names as long as that label's value differs.
type statsCollector struct {
	stats func() Stats

	reconciles, errors, terminal, panics, requeues, resyncs *prometheus.Desc
	depth, running, lastResync, overdue                     *prometheus.Desc
}

func newStatsCollector(name string, stats func() Stats) *statsCollector {
	labels := prometheus.Labels{"controller": name}
	desc := func(metric, help string) *prometheus.Desc {
		return prometheus.NewDesc(prometheus.BuildFQName(metricsNamespace, "controller", metric), help, nil, labels)
	}
	return &statsCollector{
		stats:      stats,
		reconciles: desc("reconciles_total", "Reconcile passes completed, whatever their outcome."),
		errors:     desc("reconcile_errors_total", "Reconcile passes that failed and were retried with backoff."),
		terminal:   desc("reconcile_terminal_errors_total", "Reconcile passes that failed terminally and were not retried."),
		panics:     desc("reconcile_panics_total", "Reconcile passes that panicked."),
		requeues:   desc("requeues_total", "Reconcile passes that asked to be requeued after a delay."),
		resyncs:    desc("resyncs_total", "Successful full listings of live keys."),
		depth:      desc("queue_depth", "Keys ready to be reconciled."),
		running:    desc("running", "1 while the controller's workers run (this process leads)."),
		lastResync: desc("last_resync_timestamp_seconds", "Unix time of the last successful resync."),
		overdue:    desc("overdue_passes", "Reconcile passes running past their timeout, each holding a worker."),
	}
}

func (sc *statsCollector) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{sc.reconciles, sc.errors, sc.terminal, sc.panics, sc.requeues, sc.resyncs, sc.depth, sc.running, sc.lastResync, sc.overdue} {
		ch <- d
	}
}

func (sc *statsCollector) Collect(ch chan<- prometheus.Metric) {
	s := sc.stats()
	counter := func(d *prometheus.Desc, v uint64) {
		ch <- prometheus.MustNewConstMetric(d, prometheus.CounterValue, float64(v))
	}
	gauge := func(d *prometheus.Desc, v float64) {
		ch <- prometheus.MustNewConstMetric(d, prometheus.GaugeValue, v)
	}
	counter(sc.reconciles, s.Reconciles)
	counter(sc.errors, s.Errors)
	counter(sc.terminal, s.TerminalErrors)
	counter(sc.panics, s.Panics)
	counter(sc.requeues, s.Requeues)
	counter(sc.resyncs, s.Resyncs)
	gauge(sc.depth, float64(s.QueueDepth))
	gauge(sc.overdue, float64(s.Overdue))
	running := 0.0
	if s.Running {
		running = 1
	}
	gauge(sc.running, running)
	lastResync := 0.0
	if !s.LastResync.IsZero() {
		lastResync = float64(s.LastResync.UnixNano()) / 1e9
	}
	gauge(sc.lastResync, lastResync)
}

// registerControllerMetrics registers the controller's collectors and returns the
// reconcile-duration histogram to observe.
func registerControllerMetrics(reg prometheus.Registerer, name string, stats func() Stats) (prometheus.Observer, error) {
	duration := prometheus.NewHistogram(prometheus.HistogramOpts{
		Namespace:   metricsNamespace,
		Subsystem:   "controller",
		Name:        "reconcile_duration_seconds",
		Help:        "Time taken by one reconcile pass.",
		ConstLabels: prometheus.Labels{"controller": name},
		Buckets:     prometheus.ExponentialBuckets(0.001, 4, 10), // 1ms .. ~4.4min
	})
	collector := newStatsCollector(name, stats)
	if err := reg.Register(collector); err != nil {
		return nil, fmt.Errorf("register metrics of controller %q: %w", name, err)
	}
	if err := reg.Register(duration); err != nil {
		reg.Unregister(collector)
		return nil, fmt.Errorf("register metrics of controller %q: %w", name, err)
	}
	return duration, nil
}
