package ops

import (
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/claude-parallel/claude-parallel/config"
	"github.com/claude-parallel/claude-parallel/models"
)

func newMux(t *testing.T, checks []Check, token string) *http.ServeMux {
	t.Helper()
	cfg := config.Default()
	cfg.HTTP.Token = config.Secret(token)
	mux := http.NewServeMux()
	Routes(mux, Options{Config: func() *config.Config { return cfg }, Checks: checks,
		CheckTimeout: 200 * time.Millisecond, CacheFor: time.Hour})
	return mux
}

func serve(mux *http.ServeMux, path, token string) *httptest.ResponseRecorder {
	req := httptest.NewRequest(http.MethodGet, path, nil)
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	rec := httptest.NewRecorder()
	mux.ServeHTTP(rec, req)
	return rec
}

// /readyz names every failing check with its error: one that fails, one
// that hangs past the timeout, one that panics; a passing one is ok.
// The verdict is reused within CacheFor, so a probe storm costs one round.
func TestReadyz_NamesFailingChecksAndCaches(t *testing.T) {
	var calls atomic.Int32
	block := make(chan struct{})
	defer close(block)
	mux := newMux(t, []Check{
		{Name: "store", Probe: func(context.Context) error { calls.Add(1); return nil }},
		{Name: "docker", Probe: func(context.Context) error { return errors.New("connection refused") }},
		{Name: "stuck", Probe: func(context.Context) error { <-block; return nil }},
		{Name: "buggy", Probe: func(context.Context) error { panic("boom") }},
	}, "")
	rec := serve(mux, ReadyPath, "")
	var r Readiness
	if err := json.Unmarshal(rec.Body.Bytes(), &r); err != nil {
		t.Fatalf("body %q: %v", rec.Body, err)
	}
	if rec.Code != http.StatusServiceUnavailable || r.Ready || strings.Join(r.Failing, ",") != "docker,stuck,buggy" {
		t.Fatalf("readyz = %d %s", rec.Code, rec.Body)
	}
	errs := map[string]string{}
	for _, c := range r.Checks {
		errs[c.Name] = c.Error
	}
	if errs["store"] != "" || errs["docker"] != "connection refused" || !strings.Contains(errs["stuck"], "no answer within") || !strings.Contains(errs["buggy"], "panicked") {
		t.Fatalf("check errors %v", errs)
	}
	serve(mux, ReadyPath, "")
	if calls.Load() != 1 {
		t.Fatalf("store probed %d times within CacheFor, want 1", calls.Load())
	}
}

func TestReadyz_AllPass(t *testing.T) {
	mux := newMux(t, []Check{{Name: "store", Probe: func(context.Context) error { return nil }}}, "")
	if rec := serve(mux, ReadyPath, ""); rec.Code != http.StatusOK || !strings.Contains(rec.Body.String(), `"ready":true`) {
		t.Fatalf("readyz = %d %s", rec.Code, rec.Body)
	}
}

// /healthz and /readyz need no token; /metrics does when one is set.
func TestMetrics_TokenRules(t *testing.T) {
	mux := newMux(t, nil, "secret")
	if rec := serve(mux, HealthPath, ""); rec.Code != http.StatusOK {
		t.Fatalf("healthz without token = %d", rec.Code)
	}
	if rec := serve(mux, ReadyPath, ""); rec.Code != http.StatusOK {
		t.Fatalf("readyz without token = %d", rec.Code)
	}
	if rec := serve(mux, MetricsPath, ""); rec.Code != http.StatusUnauthorized {
		t.Fatalf("metrics without token = %d", rec.Code)
	}
	if rec := serve(mux, MetricsPath, "wrong"); rec.Code != http.StatusUnauthorized {
		t.Fatalf("metrics with a wrong token = %d", rec.Code)
	}
	if rec := serve(mux, MetricsPath, "secret"); rec.Code != http.StatusOK {
		t.Fatalf("metrics with the token = %d", rec.Code)
	}
	open := newMux(t, nil, "")
	if rec := serve(open, MetricsPath, ""); rec.Code != http.StatusOK {
		t.Fatalf("metrics with no token configured = %d", rec.Code)
	}
}

// The figures reported by the front end, the store and Docker reach the
// registry under their names and labels.
func TestMetrics_Observations(t *testing.T) {
	m := NewMetrics()
	m.ObserveTool("task_worker", 20*time.Millisecond, OutcomeOK)
	m.ObserveTool("apply_changes", time.Millisecond, OutcomeErrorResult)
	m.WriteDone(3*time.Millisecond, nil)
	m.WriteDone(3*time.Millisecond, errors.New("disk full"))
	m.BusyRetry()
	m.ObserveDocker("POST /containers/{id}/start", 40*time.Millisecond, false)
	mux := http.NewServeMux()
	cfg := config.Default()
	Routes(mux, Options{Config: func() *config.Config { return cfg }, Gatherer: m.Registry()})
	body := serve(mux, MetricsPath, "").Body.String()
	for _, want := range []string{
		`claude_parallel_mcp_tool_duration_seconds_count{outcome="ok",tool="task_worker"} 1`,
		`claude_parallel_mcp_tool_errors_total{outcome="error_result",tool="apply_changes"} 1`,
		`claude_parallel_store_write_duration_seconds_count 2`,
		`claude_parallel_store_write_errors_total 1`,
		`claude_parallel_store_busy_retries_total 1`,
		`claude_parallel_docker_api_duration_seconds_count{operation="POST /containers/{id}/start",outcome="ok"} 1`,
		`go_goroutines`,
	} {
		if !strings.Contains(body, want) {
			t.Errorf("metrics lack %s", want)
		}
	}
	if strings.Contains(body, `claude_parallel_mcp_tool_errors_total{outcome="ok"`) {
		t.Error("a successful call counted as an error")
	}
}

// The store's figures are read at scrape time: tasks by phase, the
// admission queue with the wait of its oldest task, the lease holder.
func TestStateCollector_ReadsTheStore(t *testing.T) {
	ctx := context.Background()
	clock := time.Now().Add(-90 * time.Second) // tasks accepted 90s ago
	store, err := models.Open(ctx, filepath.Join(t.TempDir(), "cp.db"), models.Options{Now: func() time.Time { return clock }})
	if err != nil {
		t.Fatal(err)
	}
	defer store.Close()
	for range 2 {
		if _, _, err := store.CreateTask(ctx, &models.Task{Spec: models.TaskSpec{Prompt: "x", WorkFolder: "/repo", Agent: "shell"}}); err != nil {
			t.Fatal(err)
		}
	}
	if ok, err := store.TryAcquireLease(ctx, models.LeaderLease, "host:1:abc", time.Hour); err != nil || !ok {
		t.Fatalf("lease: %v %v", ok, err)
	}
	reg := prometheus.NewRegistry()
	reg.MustRegister(NewStateCollector(store, nil))
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	got := map[string]float64{}
	for _, mf := range mfs {
		for _, m := range mf.GetMetric() {
			key := mf.GetName()
			for _, l := range m.GetLabel() {
				key += "," + l.GetName() + "=" + l.GetValue()
			}
			got[key] = m.GetGauge().GetValue()
		}
	}
	for key, want := range map[string]float64{
		"claude_parallel_tasks,phase=Pending":                     2,
		"claude_parallel_tasks,phase=Running":                     0,
		"claude_parallel_diffs,status=pending":                    0,
		"claude_parallel_admission_queue_depth,reason=NotYetSeen": 2,
		"claude_parallel_lease_holder,holder=host:1:abc":          1,
		"claude_parallel_containers_running":                      0,
		"claude_parallel_state_scrape_errors":                     0,
	} {
		if v, ok := got[key]; !ok || v != want {
			t.Errorf("%s = %v (present %v), want %v", key, v, ok, want)
		}
	}
	if wait := got["claude_parallel_admission_oldest_wait_seconds"]; wait < 80 || wait > 3600 {
		t.Errorf("oldest wait %v s, want about 90", wait)
	}
}
