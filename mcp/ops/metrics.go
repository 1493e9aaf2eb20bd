package ops

import (
	"context"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"go.uber.org/zap"

	"github.com/claude-parallel/claude-parallel/models"
)

// namespace prefixes every series, as the controllers' own do.
const namespace = "claude_parallel"

// Tool call outcomes, the "outcome" label of the tool metrics.
const (
	OutcomeOK          = "ok"           // a result
	OutcomeErrorResult = "error_result" // a result with isError (bad input, refused)
	OutcomeError       = "error"        // the handler failed (infrastructure)
)

// Metrics is the registry /metrics serves, with the figures the front end,
// the store and the Docker client report as they work. The controllers
// register their own collectors into Registry(); NewStateCollector adds the
// figures read from the store at scrape time.
type Metrics struct {
	reg *prometheus.Registry

	toolDuration *prometheus.HistogramVec
	toolErrors   *prometheus.CounterVec
	storeWrite   prometheus.Histogram
	storeFailed  prometheus.Counter
	busyRetries  prometheus.Counter
	dockerCall   *prometheus.HistogramVec
}

// NewMetrics builds the registry with the Go runtime and process collectors.
func NewMetrics() *Metrics {
	reg := prometheus.NewRegistry()
	m := &Metrics{
		reg: reg,
		toolDuration: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Namespace: namespace, Subsystem: "mcp", Name: "tool_duration_seconds",
			Help:    "Time taken by MCP tool calls, by tool and outcome (ok, error_result, error).",
			Buckets: prometheus.ExponentialBuckets(0.001, 4, 10), // 1ms .. ~4.4min (waits are long)
		}, []string{"tool", "outcome"}),
		toolErrors: prometheus.NewCounterVec(prometheus.CounterOpts{
			Namespace: namespace, Subsystem: "mcp", Name: "tool_errors_total",
			Help: "MCP tool calls that ended in an error or an error result, by tool and outcome.",
		}, []string{"tool", "outcome"}),
		storeWrite: prometheus.NewHistogram(prometheus.HistogramOpts{
			Namespace: namespace, Subsystem: "store", Name: "write_duration_seconds",
			Help:    "Time taken by store write transactions, queueing for the write lock included.",
			Buckets: prometheus.ExponentialBuckets(0.0005, 3, 12), // 0.5ms .. ~89s
		}),
		storeFailed: prometheus.NewCounter(prometheus.CounterOpts{
			Namespace: namespace, Subsystem: "store", Name: "write_errors_total",
			Help: "Store write transactions that failed.",
		}),
		busyRetries: prometheus.NewCounter(prometheus.CounterOpts{
			Namespace: namespace, Subsystem: "store", Name: "busy_retries_total",
			Help: "Times SQLite answered busy past its busy timeout and the operation was retried.",
		}),
		dockerCall: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Namespace: namespace, Subsystem: "docker", Name: "api_duration_seconds",
			Help:    "Time taken by Docker Engine API calls, by operation (method and path pattern) and outcome. Streams (events, followed logs, attach) are left out.",
			Buckets: prometheus.ExponentialBuckets(0.001, 3, 11), // 1ms .. ~59s
		}, []string{"operation", "outcome"}),
	}
	reg.MustRegister(
		collectors.NewGoCollector(),
		collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}),
		m.toolDuration, m.toolErrors, m.storeWrite, m.storeFailed, m.busyRetries, m.dockerCall,
	)
	return m
}

// Registry is where every series of this process is registered.
func (m *Metrics) Registry() *prometheus.Registry { return m.reg }

// ObserveTool records one MCP tool call (service.Deps.ToolObserver).
func (m *Metrics) ObserveTool(tool string, d time.Duration, outcome string) {
	m.toolDuration.WithLabelValues(tool, outcome).Observe(d.Seconds())
	if outcome != OutcomeOK {
		m.toolErrors.WithLabelValues(tool, outcome).Inc()
	}
}

// WriteDone records one store write (models.StoreObserver).
func (m *Metrics) WriteDone(d time.Duration, err error) {
	m.storeWrite.Observe(d.Seconds())
	if err != nil {
		m.storeFailed.Inc()
	}
}

// BusyRetry records a busy retry (models.StoreObserver).
func (m *Metrics) BusyRetry() { m.busyRetries.Inc() }

var _ models.StoreObserver = (*Metrics)(nil)

// ObserveDocker records one Docker API call.
func (m *Metrics) ObserveDocker(operation string, d time.Duration, failed bool) {
	outcome := OutcomeOK
	if failed {
		outcome = OutcomeError
	}
	m.dockerCall.WithLabelValues(operation, outcome).Observe(d.Seconds())
}

// stateCollector reads the store at scrape time: tasks by phase, diffs by
// status, containers by state, the admission queue and the lease holder. The
// figures are the same for every process on one database; each one serves
// them so any of them can be scraped.
type stateCollector struct {
	store *models.Store
	log   *zap.Logger

	tasks, diffs, containers, running     *prometheus.Desc
	admission, admissionWait, leaseHolder *prometheus.Desc
	scrapeErrors                          *prometheus.Desc
}

// NewStateCollector returns the collector of the store's figures.
func NewStateCollector(store *models.Store, log *zap.Logger) prometheus.Collector {
	if log == nil {
		log = zap.NewNop()
	}
	d := func(name, help string, labels ...string) *prometheus.Desc {
		return prometheus.NewDesc(prometheus.BuildFQName(namespace, "", name), help, labels, nil)
	}
	return &stateCollector{
		store:         store,
		log:           log,
		tasks:         d("tasks", "Tasks in the store by phase (history included).", "phase"),
		diffs:         d("diffs", "Diffs in the store by status (pending, applied, rejected, conflict, ...).", "status"),
		containers:    d("containers", "Containers in the registry by Docker state, as last observed.", "state"),
		running:       d("containers_running", "Task containers running, as last observed."),
		admission:     d("admission_queue_depth", "Tasks waiting to be admitted (phase Pending), by reason.", "reason"),
		admissionWait: d("admission_oldest_wait_seconds", "How long the longest-waiting pending task has waited since it was accepted (0 when none waits)."),
		leaseHolder:   d("lease_holder", "1 for the process holding the controllers' leader lease (0 when its lease has lapsed).", "holder"),
		scrapeErrors:  d("state_scrape_errors", "Store queries that failed during this scrape."),
	}
}

func (c *stateCollector) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{c.tasks, c.diffs, c.containers, c.running, c.admission, c.admissionWait, c.leaseHolder, c.scrapeErrors} {
		ch <- d
	}
}

func (c *stateCollector) Collect(ch chan<- prometheus.Metric) {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	failed := 0
	fail := func(err error) {
		failed++
		c.log.Warn("metrics: store query failed", zap.Error(err))
	}
	gauge := func(d *prometheus.Desc, v float64, labels ...string) {
		ch <- prometheus.MustNewConstMetric(d, prometheus.GaugeValue, v, labels...)
	}
	if byPhase, err := c.store.CountTasksByPhase(ctx); err != nil {
		fail(err)
	} else {
		// Every phase is exported, 0 included, so a query for one that
		// has no task yet finds a series.
		for _, p := range []models.TaskPhase{models.TaskPhasePending, models.TaskPhasePreparing, models.TaskPhaseRunning,
			models.TaskPhaseCollecting, models.TaskPhaseSucceeded, models.TaskPhaseFailed, models.TaskPhaseCancelled, models.TaskPhaseTimedOut} {
			gauge(c.tasks, float64(byPhase[p]), string(p))
		}
	}
	if byStatus, err := c.store.CountDiffsByStatus(ctx); err != nil {
		fail(err)
	} else {
		for _, s := range []models.DiffState{models.DiffStatePending, models.DiffStateApplied, models.DiffStateRejected, models.DiffStateConflict} {
			if _, ok := byStatus[s]; !ok {
				byStatus[s] = 0
			}
		}
		for s, n := range byStatus {
			gauge(c.diffs, float64(n), string(s))
		}
	}
	if byState, err := c.store.CountContainersByState(ctx); err != nil {
		fail(err)
	} else {
		for s, n := range byState {
			gauge(c.containers, float64(n), s)
		}
		gauge(c.running, float64(byState["running"]))
	}
	if q, err := c.store.PendingAdmission(ctx); err != nil {
		fail(err)
	} else {
		total := int64(0)
		for reason, n := range q.ByReason {
			if reason == "" {
				reason = "NotYetSeen"
			}
			gauge(c.admission, float64(n), reason)
			total += n
		}
		if total == 0 {
			gauge(c.admission, 0, "WaitingForSlot")
		}
		wait := 0.0
		if !q.OldestSince.IsZero() {
			wait = max(0, time.Since(q.OldestSince).Seconds())
		}
		gauge(c.admissionWait, wait)
	}
	if holder, _, live, err := c.store.LeaseHolder(ctx, models.LeaderLease); err != nil {
		fail(err)
	} else if holder != "" {
		v := 0.0
		if live {
			v = 1
		}
		gauge(c.leaseHolder, v, holder)
	}
	gauge(c.scrapeErrors, float64(failed))
}
