package reconciler

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"
	"go.uber.org/zap/zaptest/observer"
)

func TestController_KeyEnqueuedDuringItsPassRunsExactlyOnceMoreAfterIt(t *testing.T) {
	calls := newCallLog()
	var inFlight, maxInFlight atomic.Int32
	entered := make(chan struct{})
	release := make(chan struct{})
	c := newController(t, "dedupe", ReconcilerFunc(func(ctx context.Context, req Request) (Result, error) {
		n := inFlight.Add(1)
		defer inFlight.Add(-1)
		if n > maxInFlight.Load() {
			maxInFlight.Store(n)
		}
		if calls.record(req.Key) == 1 {
			close(entered)
			<-release
		}
		return Result{}, nil
	}), Options{Workers: 4})
	startController(t, c)

	c.Enqueue("a")
	<-entered
	for range 100 {
		c.Enqueue("a")
	}
	close(release)

	eventually(t, 5*time.Second, "second pass of a", func() bool { return calls.count("a") == 2 })
	// Give a wrongly queued third pass time to show up.
	time.Sleep(200 * time.Millisecond)
	if got := calls.count("a"); got != 2 {
		t.Errorf("a reconciled %d times, want 2 (one pass, then one for all 100 hints during it)", got)
	}
	if got := maxInFlight.Load(); got != 1 {
		t.Errorf("a reconciled by %d workers at once, want 1", got)
	}
}

func TestController_NeverReconcilesOneKeyOnTwoWorkersAtOnce(t *testing.T) {
	const keys = 4
	var perKey [keys]atomic.Int32
	var overlap atomic.Bool
	var inFlight, maxInFlight atomic.Int32
	var passes atomic.Int64
	c := newController(t, "no-overlap", ReconcilerFunc(func(ctx context.Context, req Request) (Result, error) {
		var i int
		fmt.Sscanf(req.Key, "k%d", &i)
		if perKey[i].Add(1) > 1 {
			overlap.Store(true)
		}
		n := inFlight.Add(1)
		for {
			m := maxInFlight.Load()
			if n <= m || maxInFlight.CompareAndSwap(m, n) {
				break
			}
		}
		time.Sleep(time.Millisecond)
		inFlight.Add(-1)
		perKey[i].Add(-1)
		passes.Add(1)
		return Result{}, nil
	}), Options{Workers: 8})
	startController(t, c)

	var wg sync.WaitGroup
	for range 4 {
		wg.Go(func() {
			for range 300 {
				c.Enqueue(fmt.Sprintf("k%d", rand.IntN(keys)))
				time.Sleep(50 * time.Microsecond)
			}
		})
	}
	wg.Wait()
	eventually(t, 10*time.Second, "queue drained", func() bool {
		return c.Stats().QueueDepth == 0 && inFlight.Load() == 0
	})

	if overlap.Load() {
		t.Error("one key was reconciled by two workers at once")
	}
	// Without parallelism across keys the check above would prove nothing.
	if got := maxInFlight.Load(); got < 2 {
		t.Errorf("at most %d passes ran at once, want >= 2 (8 workers, 4 keys)", got)
	}
	if passes.Load() < keys {
		t.Errorf("only %d passes ran", passes.Load())
	}
}

func TestController_BackoffGrowsWithEachFailureAndResetsAfterSuccess(t *testing.T) {
	core, logs := observer.New(zapcore.ErrorLevel)
	calls := newCallLog()
	// Passes 1-5 fail, 6 succeeds; the test then enqueues again: 7 fails, 8 succeeds.
	fails := map[int]bool{1: true, 2: true, 3: true, 4: true, 5: true, 7: true}
	c := newController(t, "backoff", ReconcilerFunc(func(ctx context.Context, req Request) (Result, error) {
		if fails[calls.record(req.Key)] {
			return Result{}, errors.New("docker unavailable")
		}
		return Result{}, nil
	}), Options{BaseBackoff: 10 * time.Millisecond, MaxBackoff: time.Second, Logger: zap.New(core)})
	startController(t, c)

	c.Enqueue("a")
	eventually(t, 10*time.Second, "six passes", func() bool { return calls.count("a") == 6 })
	c.Enqueue("a")
	eventually(t, 10*time.Second, "eight passes", func() bool { return calls.count("a") == 8 })

	var backoffs []time.Duration
	for _, e := range logs.FilterMessage("reconcile failed, retrying with backoff").All() {
		backoffs = append(backoffs, time.Duration(e.ContextMap()["backoff"].(time.Duration)))
	}
	want := []time.Duration{10, 20, 40, 80, 160, 10} // ms; the last after the success reset it
	if len(backoffs) != len(want) {
		t.Fatalf("logged backoffs %v, want %d of them", backoffs, len(want))
	}
	for i := range want {
		if backoffs[i] != want[i]*time.Millisecond {
			t.Errorf("backoff after failure %d = %s, want %s", i+1, backoffs[i], want[i]*time.Millisecond)
		}
	}
	// The delays were really waited (lower bounds only: a busy machine may be late).
	ts := calls.times("a")
	for i := range 5 {
		if gap := ts[i+1].Sub(ts[i]); gap < backoffs[i] {
			t.Errorf("retry %d came after %s, before its backoff %s", i+1, gap, backoffs[i])
		}
	}
	if s := c.Stats(); s.Errors != 6 || s.Reconciles != 8 || s.LastError != "docker unavailable" || s.LastErrorKey != "a" {
		t.Errorf("stats = %+v, want 6 errors of 8 passes, last error docker unavailable on a", s)
	}
}

func TestController_TerminalErrorIsNotRetriedUntilEnqueuedAgain(t *testing.T) {
	calls := newCallLog()
	c := newController(t, "terminal", ReconcilerFunc(func(ctx context.Context, req Request) (Result, error) {
		calls.record(req.Key)
		return Result{RequeueAfter: time.Millisecond}, Terminal(fmt.Errorf("validate task %s: work folder outside allowed roots", req.Key))
	}), Options{BaseBackoff: time.Millisecond, MaxBackoff: 5 * time.Millisecond})
	startController(t, c)

	c.Enqueue("a")
	eventually(t, 5*time.Second, "terminal failure recorded", func() bool { return c.Stats().TerminalErrors == 1 })
	// A retried key would have run dozens of times by now (backoff <= 5ms).
	time.Sleep(200 * time.Millisecond)
	if got := calls.count("a"); got != 1 {
		t.Fatalf("a reconciled %d times after a terminal error, want 1", got)
	}

	c.Enqueue("a") // a new hint, e.g. the spec changed
	eventually(t, 5*time.Second, "pass after new hint", func() bool { return calls.count("a") == 2 })
	if s := c.Stats(); s.Errors != 0 || s.TerminalErrors != 2 {
		t.Errorf("stats = %+v, want 0 retried errors and 2 terminal", s)
	}
}

func TestTerminal_SurvivesWrappingAndNilStaysNil(t *testing.T) {
	base := errors.New("unknown profile")
	wrapped := fmt.Errorf("reconcile task-0123456789ab: %w", Terminal(base))
	if !IsTerminal(wrapped) {
		t.Error("IsTerminal(wrapped terminal) = false")
	}
	if !errors.Is(wrapped, base) {
		t.Error("terminal error does not unwrap to its cause")
	}
	if IsTerminal(base) || IsTerminal(nil) {
		t.Error("IsTerminal true for an unmarked error")
	}
	if Terminal(nil) != nil {
		t.Error("Terminal(nil) != nil")
	}
}

func TestController_RequeueAfterReconcilesAgainAfterTheDelay(t *testing.T) {
	calls := newCallLog()
	const delay = 150 * time.Millisecond
	c := newController(t, "requeue", ReconcilerFunc(func(ctx context.Context, req Request) (Result, error) {
		if calls.record(req.Key) == 1 {
			return Result{RequeueAfter: delay}, nil
		}
		return Result{}, nil
	}), Options{})
	startController(t, c)

	c.Enqueue("a")
	eventually(t, 10*time.Second, "requeued pass", func() bool { return calls.count("a") == 2 })
	ts := calls.times("a")
	if gap := ts[1].Sub(ts[0]); gap < delay {
		t.Errorf("requeued pass came after %s, want >= %s", gap, delay)
	}
	if got := c.Stats().Requeues; got != 1 {
		t.Errorf("Requeues = %d, want 1", got)
	}
}

func TestController_PanicIsRecoveredRetriedAndTheWorkerSurvives(t *testing.T) {
	core, logs := observer.New(zapcore.ErrorLevel)
	calls := newCallLog()
	c := newController(t, "panics", ReconcilerFunc(func(ctx context.Context, req Request) (Result, error) {
		if calls.record(req.Key) == 1 && req.Key == "p" {
			var m map[string]int
			m["boom"]++ // nil map write: a real runtime panic
		}
		return Result{}, nil
	}), Options{Workers: 1, BaseBackoff: time.Millisecond, Logger: zap.New(core)})
	startController(t, c)

	c.Enqueue("p")
	c.Enqueue("q")
	eventually(t, 5*time.Second, "p retried and q reconciled by the only worker", func() bool {
		return calls.count("p") == 2 && calls.count("q") == 1
	})
	if s := c.Stats(); s.Panics != 1 || s.Errors != 1 {
		t.Errorf("stats = %+v, want 1 panic counted as 1 error", s)
	}
	panics := logs.FilterMessage("recovered from panic").All()
	if len(panics) != 1 {
		t.Fatalf("logged %d panics, want 1", len(panics))
	}
	fields := panics[0].ContextMap()
	if stack, _ := fields["stack"].(string); !strings.Contains(stack, "reconciler.TestController_PanicIsRecovered") {
		t.Errorf("panic log has no stack through the reconciler: %q", stack)
	}
	if fields["key"] != "p" || fields["controller"] != "panics" {
		t.Errorf("panic log fields = %v, want key p and controller panics", fields)
	}
}

func TestController_ReconcileTimeoutCancelsThePassContext(t *testing.T) {
	got := make(chan error, 1)
	c := newController(t, "timeout", ReconcilerFunc(func(ctx context.Context, req Request) (Result, error) {
		<-ctx.Done() // a pass stuck on a slow Docker call
		got <- ctx.Err()
		return Result{}, Terminal(ctx.Err())
	}), Options{ReconcileTimeout: 50 * time.Millisecond})
	startController(t, c)

	c.Enqueue("a")
	select {
	case err := <-got:
		if !errors.Is(err, context.DeadlineExceeded) {
			t.Errorf("pass context ended with %v, want deadline exceeded", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("pass context was not cancelled by the reconcile timeout")
	}
}

func TestController_ResyncEnqueuesEveryListedKeyPeriodically(t *testing.T) {
	calls := newCallLog()
	live := &keySet{keys: []string{"a", "b"}}
	c := newController(t, "resync", ReconcilerFunc(func(ctx context.Context, req Request) (Result, error) {
		calls.record(req.Key)
		return Result{}, nil
	}), Options{ListKeys: live.list, ResyncInterval: 30 * time.Millisecond})
	startController(t, c)

	eventually(t, 10*time.Second, "three resyncs of each key", func() bool {
		return calls.count("a") >= 3 && calls.count("b") >= 3
	})
	live.add("c") // a new object is found by the next resync without any hint
	eventually(t, 10*time.Second, "new key resynced", func() bool { return calls.count("c") >= 1 })
	if s := c.Stats(); s.Resyncs < 3 || s.LastResync.IsZero() {
		t.Errorf("stats = %+v, want >= 3 resyncs and a last resync time", s)
	}
}

func TestController_StopsPromptlyLeavesQueuedKeysAndCanRunAgain(t *testing.T) {
	calls := newCallLog()
	passCtxErr := make(chan error, 1)
	c := newController(t, "stop", ReconcilerFunc(func(ctx context.Context, req Request) (Result, error) {
		calls.record(req.Key)
		if req.Key == "slow" {
			<-ctx.Done()
			passCtxErr <- ctx.Err()
			return Result{}, ctx.Err()
		}
		return Result{}, nil
	}), Options{Workers: 1, ListKeys: func(context.Context) ([]string, error) { return nil, nil }})
	stop := startController(t, c)

	c.Enqueue("slow")
	eventually(t, 5*time.Second, "slow pass started", func() bool { return calls.count("slow") == 1 })
	for i := range 50 {
		c.Enqueue(fmt.Sprintf("queued-%d", i))
	}
	start := time.Now()
	stop()
	if took := time.Since(start); took > 5*time.Second {
		t.Errorf("Run took %s to return after cancel", took)
	}
	if err := <-passCtxErr; !errors.Is(err, context.Canceled) {
		t.Errorf("in-flight pass context ended with %v, want canceled", err)
	}
	if got := calls.total(); got != 1 {
		t.Errorf("%d passes ran, want only the in-flight one: queued keys must wait for the next run", got)
	}
	if s := c.Stats(); s.Running || s.Errors != 0 {
		t.Errorf("stats after stop = %+v, want not running and the interrupted pass not counted as an error", s)
	}
	c.Enqueue("dropped") // not running: a hint to nobody

	startController(t, c)
	c.Enqueue("b")
	eventually(t, 5*time.Second, "pass in the second run", func() bool { return calls.count("b") == 1 })
	if calls.count("dropped") != 0 {
		t.Error("a key enqueued while stopped was reconciled; it should be dropped")
	}
}

func TestController_ExportsStatsToPrometheus(t *testing.T) {
	reg := prometheus.NewPedanticRegistry()
	ok := newController(t, "task", ReconcilerFunc(func(context.Context, Request) (Result, error) { return Result{}, nil }),
		Options{Registerer: reg})
	newController(t, "diff", ReconcilerFunc(func(context.Context, Request) (Result, error) { return Result{}, nil }),
		Options{Registerer: reg})
	startController(t, ok)
	ok.Enqueue("a")
	eventually(t, 5*time.Second, "one pass", func() bool { return ok.Stats().Reconciles == 1 })

	families, err := reg.Gather()
	if err != nil {
		t.Fatalf("gather: %v", err)
	}
	got := map[string]float64{}
	for _, f := range families {
		if f.GetName() != "claude_parallel_controller_reconciles_total" {
			continue
		}
		for _, m := range f.GetMetric() {
			got[m.GetLabel()[0].GetValue()] = m.GetCounter().GetValue()
		}
	}
	if got["task"] != 1 || got["diff"] != 0 || len(got) != 2 {
		t.Errorf("reconciles_total by controller = %v, want task 1 and diff 0", got)
	}
	if _, err := New("task", ReconcilerFunc(func(context.Context, Request) (Result, error) { return Result{}, nil }),
		Options{Registerer: reg}); err == nil {
		t.Error("a second controller with the same name registered its metrics")
	}
}

// A pass that does not heed its context outlives its timeout and holds its
// worker; it is logged and counted as overdue while it lasts (and exported as
// a metric), and stops counting when it returns. A pass that returns in time
// is never counted.
func TestController_OverduePassIsReportedWhileItLasts(t *testing.T) {
	core, logs := observer.New(zapcore.WarnLevel)
	release := make(chan struct{})
	reg := prometheus.NewRegistry()
	c := newController(t, "overdue", ReconcilerFunc(func(ctx context.Context, req Request) (Result, error) {
		if req.Key == "stuck" {
			<-release // ignores ctx, as a blocked call would
		}
		return Result{}, nil
	}), Options{Workers: 2, ReconcileTimeout: 50 * time.Millisecond, Logger: zap.New(core), Registerer: reg})
	c.overdueGrace = 50 * time.Millisecond
	startController(t, c)

	c.Enqueue("quick")
	c.Enqueue("stuck")
	eventually(t, 5*time.Second, "stuck pass counted overdue", func() bool { return c.Stats().Overdue == 1 })
	stuck := zap.String("key", "stuck")
	if n := logs.FilterMessage("reconcile pass outlived its timeout: it does not heed its context and holds a worker").FilterField(stuck).Len(); n != 1 {
		t.Fatalf("%d overdue warnings for key stuck, want 1", n)
	}
	if got := gaugeValue(t, reg, "claude_parallel_controller_overdue_passes"); got != 1 {
		t.Fatalf("overdue_passes = %v, want 1", got)
	}
	close(release)
	eventually(t, 5*time.Second, "overdue count back to 0", func() bool { return c.Stats().Overdue == 0 })
	if n := logs.FilterMessage("overdue reconcile pass returned").FilterField(stuck).Len(); n != 1 {
		t.Fatalf("%d 'returned' lines, want 1", n)
	}
}

func gaugeValue(t *testing.T, reg *prometheus.Registry, name string) float64 {
	t.Helper()
	families, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, f := range families {
		if f.GetName() == name && len(f.GetMetric()) == 1 {
			return f.GetMetric()[0].GetGauge().GetValue()
		}
	}
	t.Fatalf("metric %s not exported", name)
	return 0
}
