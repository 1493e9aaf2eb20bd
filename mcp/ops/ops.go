// Package ops serves the operations endpoints of a claude-parallel server:
// /healthz (the process answers), /readyz (it can do its job: named checks,
// JSON body) and /metrics (Prometheus text), on the MCP HTTP listener and
// on the optional ops-only listener (ops.listen), and holds the metrics the
// front end, the store and the Docker client report into.
//
// It knows nothing of the controllers or Docker: the checks and the figures
// are handed in as functions by cmd, which wires the two sides.
package ops

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"net/http"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	"go.uber.org/zap"

	"github.com/claude-parallel/claude-parallel/config"
	"github.com/claude-parallel/claude-parallel/mcp"
)

// Paths of the endpoints.
const (
	HealthPath  = "/healthz"
	ReadyPath   = "/readyz"
	MetricsPath = "/metrics"
)

// Check is one readiness condition: Probe returns nil when it holds, else
// an error saying what is wrong (it is shown in the /readyz body).
type Check struct {
	Name  string
	Probe func(ctx context.Context) error
}

// Options configure the endpoints.
type Options struct {
	// Config is read per request: the bearer token of /metrics follows a reload.
	Config   func() *config.Config
	Gatherer prometheus.Gatherer
	Checks   []Check
	Logger   *zap.Logger
	// CheckTimeout bounds each probe (default 3s); a probe still running
	// then counts as failed.
	CheckTimeout time.Duration
	// CacheFor reuses the last readiness verdict for this long (default 2s),
	// so a probe storm costs one round of checks (the store probe writes).
	CacheFor time.Duration
}

// Routes adds the three endpoints to mux. /healthz and /readyz need no
// token: supervisors and load balancers probe them, and they reveal no
// more than which check fails. /metrics is under the same rules as /mcp
// (Origin, and the bearer token when one is configured): series names
// holders and task counts.
func Routes(mux *http.ServeMux, opts Options) {
	opts = opts.withDefaults()
	r := &readiness{opts: opts}
	mux.HandleFunc(HealthPath, health)
	mux.Handle(ReadyPath, r)
	metrics := promhttp.HandlerFor(opts.Gatherer, promhttp.HandlerOpts{ErrorLog: zap.NewStdLog(opts.Logger)})
	mux.Handle(MetricsPath, mcp.Protect(metrics, mcp.HTTPOptions{Config: opts.Config, Logger: opts.Logger}))
}

func (o Options) withDefaults() Options {
	if o.Logger == nil {
		o.Logger = zap.NewNop()
	}
	if o.CheckTimeout <= 0 {
		o.CheckTimeout = 3 * time.Second
	}
	if o.CacheFor <= 0 {
		o.CacheFor = 2 * time.Second
	}
	if o.Gatherer == nil {
		o.Gatherer = prometheus.NewRegistry()
	}
	return o
}

// health answers 200 as long as the process serves HTTP: it touches
// nothing, so a busy store or Docker never makes a supervisor kill a
// healthy server.
func health(w http.ResponseWriter, r *http.Request) {
	w.Header().Set("Content-Type", "text/plain; charset=utf-8")
	w.Header().Set("Cache-Control", "no-store")
	_, _ = w.Write([]byte("ok\n"))
}

// CheckResult is one check in the /readyz body.
type CheckResult struct {
	Name  string `json:"name"`
	OK    bool   `json:"ok"`
	Error string `json:"error,omitempty"`
}

// Readiness is the /readyz body.
type Readiness struct {
	Ready   bool          `json:"ready"`
	Failing []string      `json:"failing,omitempty"`
	Checks  []CheckResult `json:"checks"`
}

type readiness struct {
	opts Options

	mu   sync.Mutex
	last Readiness
	at   time.Time
}

func (rd *readiness) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	res := rd.evaluate(r.Context())
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Cache-Control", "no-store")
	if !res.Ready {
		w.WriteHeader(http.StatusServiceUnavailable)
	}
	_ = json.NewEncoder(w).Encode(res)
}

// evaluate runs every check at once (each bounded by CheckTimeout), or
// returns the verdict of the last CacheFor.
func (rd *readiness) evaluate(ctx context.Context) Readiness {
	rd.mu.Lock()
	defer rd.mu.Unlock()
	if !rd.at.IsZero() && time.Since(rd.at) < rd.opts.CacheFor {
		return rd.last
	}
	results := make([]CheckResult, len(rd.opts.Checks))
	var wg sync.WaitGroup
	for i, c := range rd.opts.Checks {
		wg.Add(1)
		go func() {
			defer wg.Done()
			results[i] = runCheck(ctx, c, rd.opts.CheckTimeout)
		}()
	}
	wg.Wait()
	out := Readiness{Ready: true, Checks: results}
	for _, c := range results {
		if !c.OK {
			out.Ready = false
			out.Failing = append(out.Failing, c.Name)
		}
	}
	if !out.Ready {
		rd.opts.Logger.Warn("not ready", zap.Strings("failing", out.Failing))
	}
	rd.last, rd.at = out, time.Now()
	return out
}

func runCheck(ctx context.Context, c Check, timeout time.Duration) (res CheckResult) {
	res = CheckResult{Name: c.Name}
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	done := make(chan error, 1)
	go func() {
		defer func() {
			if r := recover(); r != nil {
				done <- fmt.Errorf("check panicked: %v", r)
			}
		}()
		done <- c.Probe(ctx)
	}()
	var err error
	select {
	case err = <-done:
	case <-ctx.Done():
		err = fmt.Errorf("no answer within %s", timeout)
	}
	if err != nil {
		res.Error = err.Error()
		return res
	}
	res.OK = true
	return res
}

// Listener is the ops-only HTTP listener (ops.listen).
type Listener struct {
	srv *http.Server
	ln  net.Listener
}

// Listen binds addr for the ops endpoints. Beyond loopback it needs a
// bearer token, which then guards /metrics.
func Listen(addr string, opts Options) (*Listener, error) {
	if err := mcp.CheckListen(addr, opts.Config().HTTP.Token); err != nil {
		return nil, fmt.Errorf("ops listener: %w", err)
	}
	opts = opts.withDefaults()
	mux := http.NewServeMux()
	Routes(mux, opts)
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, fmt.Errorf("ops listener on %s: %w", addr, err)
	}
	return &Listener{
		srv: &http.Server{Handler: mux, ReadHeaderTimeout: 10 * time.Second, ErrorLog: zap.NewStdLog(opts.Logger)},
		ln:  ln,
	}, nil
}

// Addr is the address bound.
func (l *Listener) Addr() string { return l.ln.Addr().String() }

// Serve serves until Shutdown; nil after a clean shutdown.
func (l *Listener) Serve() error {
	if err := l.srv.Serve(l.ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
		return fmt.Errorf("serve ops listener: %w", err)
	}
	return nil
}

// Shutdown stops accepting and waits for requests in flight until ctx ends.
func (l *Listener) Shutdown(ctx context.Context) error {
	if err := l.srv.Shutdown(ctx); err != nil {
		return fmt.Errorf("shut down ops listener: %w", err)
	}
	return nil
}
