package reconciler

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"go.uber.org/zap"
	"k8s.io/apimachinery/pkg/util/wait"
)

// Defaults for zero Options fields.
const (
	DefaultWorkers          = 1
	DefaultReconcileTimeout = 2 * time.Minute
	DefaultBaseBackoff      = 100 * time.Millisecond
	DefaultMaxBackoff       = time.Minute
	DefaultResyncInterval   = 30 * time.Second
)

// overdueGrace is how long a pass may run past its timeout, winding down
// after its context ended, before it is reported as not heeding it.
const overdueGrace = 5 * time.Second

// requeueJitter spreads RequeueAfter and resync periods by up to 10% so that keys
// or controllers started together do not keep firing at the same instant.
const requeueJitter = 0.1

// Options configures a Controller. Zero values take the Default* constants.
type Options struct {
	// Workers is how many keys are reconciled in parallel. One key is never
	// reconciled by two workers at once, whatever this is.
	Workers int
	// ReconcileTimeout bounds one pass; its context is cancelled after it.
	ReconcileTimeout time.Duration
	// BaseBackoff and MaxBackoff shape the per-key exponential backoff after
	// errors: BaseBackoff * 2^(failures-1), capped at MaxBackoff, reset by a pass
	// that succeeds or fails terminally.
	BaseBackoff, MaxBackoff time.Duration
	Logger                  *zap.Logger
	// ListKeys returns the key of every live object this controller looks after.
	// It is called when the controller starts, every ResyncInterval, and on
	// cross-process wake-ups; nil means the controller only sees explicit Enqueues.
	// It should cost in proportion to live objects, not history.
	ListKeys       func(ctx context.Context) ([]string, error)
	ResyncInterval time.Duration
	// IdleResyncMax, when longer than ResyncInterval, lets the periodic
	// resync stretch while ListKeys finds nothing live: each empty listing
	// doubles the wait, up to IdleResyncMax; an Enqueue (any hint, the
	// cross-process wake-up's resync included) or a listing with keys brings
	// it back to ResyncInterval.
	IdleResyncMax time.Duration
	// Registerer, when not nil, receives this controller's Prometheus metrics,
	// labelled controller=<name>.
	Registerer prometheus.Registerer
}

func (o *Options) setDefaults() {
	if o.Workers <= 0 {
		o.Workers = DefaultWorkers
	}
	if o.ReconcileTimeout <= 0 {
		o.ReconcileTimeout = DefaultReconcileTimeout
	}
	if o.BaseBackoff <= 0 {
		o.BaseBackoff = DefaultBaseBackoff
	}
	if o.MaxBackoff <= 0 {
		o.MaxBackoff = DefaultMaxBackoff
	}
	if o.ResyncInterval <= 0 {
		o.ResyncInterval = DefaultResyncInterval
	}
	if o.Logger == nil {
		o.Logger = zap.NewNop()
	}
}

// Controller runs a Reconciler over a queue of keys with a pool of workers.
//
// It is level-triggered: Enqueue is a hint that a key may need work, not an event
// to be delivered, so hints for a key that is already queued collapse into one pass
// and hints arriving while the controller is stopped are dropped (the start of the
// next Run lists every live key anyway).
type Controller struct {
	name     string
	r        Reconciler
	opts     Options
	log      *zap.Logger
	duration prometheus.Observer // nil without a Registerer
	counters counters
	// overdueGrace: see the constant; tests shorten it.
	overdueGrace time.Duration

	mu    sync.RWMutex
	queue *workQueue // nil while not running

	// act is signalled by every Enqueue: it ends a resync wait stretched
	// while idle.
	act activity
}

// New returns a controller named name (used in logs and metrics) that runs r.
func New(name string, r Reconciler, opts Options) (*Controller, error) {
	if name == "" {
		return nil, errors.New("new controller: empty name")
	}
	if r == nil {
		return nil, fmt.Errorf("new controller %q: nil reconciler", name)
	}
	opts.setDefaults()
	if opts.BaseBackoff > opts.MaxBackoff {
		return nil, fmt.Errorf("new controller %q: base backoff %s exceeds max backoff %s", name, opts.BaseBackoff, opts.MaxBackoff)
	}
	c := &Controller{
		name: name,
		r:    r,
		opts: opts,
		log:  opts.Logger.With(zap.String("controller", name)),

		overdueGrace: overdueGrace,
	}
	if opts.Registerer != nil {
		d, err := registerControllerMetrics(opts.Registerer, name, c.Stats)
		if err != nil {
			return nil, err
		}
		c.duration = d
	}
	return c, nil
}

// Name returns the controller's name.
func (c *Controller) Name() string { return c.name }

func (c *Controller) currentQueue() *workQueue {
	c.mu.RLock()
	defer c.mu.RUnlock()
	return c.queue
}

// Enqueue asks for key to be reconciled as soon as a worker is free. It never
// blocks. While the controller is not running the hint is dropped: the next Run
// starts with a full resync.
func (c *Controller) Enqueue(key string) {
	if q := c.currentQueue(); q != nil {
		q.Add(key)
		c.act.signal()
	}
}

// EnqueueAfter asks for key to be reconciled after d. Like Enqueue, it is dropped
// while the controller is not running.
func (c *Controller) EnqueueAfter(key string, d time.Duration) {
	if q := c.currentQueue(); q != nil {
		q.AddAfter(key, d)
	}
}

// Resync enqueues every key ListKeys returns. It does nothing when the controller
// has no ListKeys or is not running.
func (c *Controller) Resync(ctx context.Context) error {
	_, err := c.resync(ctx)
	return err
}

// resync is Resync, also reporting how many keys it listed.
func (c *Controller) resync(ctx context.Context) (n int, err error) {
	q := c.currentQueue()
	if c.opts.ListKeys == nil || q == nil {
		return 0, nil
	}
	defer func() {
		if r := recover(); r != nil {
			err = logPanic(c.log, "list keys", r)
		}
	}()
	keys, err := c.opts.ListKeys(ctx)
	if err != nil {
		return 0, fmt.Errorf("resync controller %s: list keys: %w", c.name, err)
	}
	for _, k := range keys {
		q.Add(k)
	}
	c.counters.recordResync()
	return len(keys), nil
}

// Stats returns the controller's counters and current queue depth.
func (c *Controller) Stats() Stats {
	s := Stats{Name: c.name, Workers: c.opts.Workers}
	if q := c.currentQueue(); q != nil {
		s.Running = true
		s.QueueDepth = q.Len()
	}
	c.counters.fill(&s)
	return s
}

// Run reconciles until ctx is cancelled, then stops: the queue is shut down,
// in-flight passes see their context cancelled, keys still queued are left for the
// next Run, and Run returns once every worker has returned. A controller runs at
// most once at a time but may be run again after Run returns (the Manager does so
// for each leadership term).
func (c *Controller) Run(ctx context.Context) error {
	c.mu.Lock()
	if c.queue != nil {
		c.mu.Unlock()
		return fmt.Errorf("run controller %s: already running", c.name)
	}
	// The queue is published before the first listing, so a write committed after
	// ListKeys read the store is still seen: its hint finds the queue in place.
	q := newWorkQueue(c.opts.BaseBackoff, c.opts.MaxBackoff)
	c.queue = q
	c.mu.Unlock()

	c.log.Info("controller starting", zap.Int("workers", c.opts.Workers))
	var wg sync.WaitGroup
	for range c.opts.Workers {
		GoSafe(&wg, c.log, "controller worker", func() {
			for c.processNext(ctx, q) {
			}
		})
	}
	if c.opts.ListKeys != nil {
		// idleLoop runs the first resync at once: a new leader starts from
		// the full list of live objects, not from hints it missed.
		GoSafe(&wg, c.log, "controller resync", func() {
			idleLoop(ctx, c.opts.ResyncInterval, c.opts.IdleResyncMax, &c.act, c.resyncOnce)
		})
	}

	<-ctx.Done()
	c.log.Info("controller stopping")
	// ShutDown (not ShutDownWithDrain): draining would run every queued key with
	// a cancelled context; those keys belong to the next leader's first resync.
	q.ShutDown()
	wg.Wait()

	c.mu.Lock()
	c.queue = nil
	c.mu.Unlock()
	c.log.Info("controller stopped")
	return nil
}

// resyncOnce is one periodic resync; it reports idle when nothing is live.
func (c *Controller) resyncOnce(ctx context.Context) (idle bool) {
	n, err := c.resync(ctx)
	if err != nil && ctx.Err() == nil {
		c.log.Warn("resync failed", zap.Error(err))
	}
	return err == nil && n == 0
}

// processNext handles one key and reports whether the worker should go on.
func (c *Controller) processNext(ctx context.Context, q *workQueue) bool {
	key, shutdown := q.Get()
	if shutdown {
		return false
	}
	defer q.Done(key)
	// After ShutDown, Get keeps handing out what is left in the queue; skip it.
	if ctx.Err() != nil {
		return false
	}
	c.handle(ctx, q, key)
	return true
}

// handle runs one pass for key and decides, from its outcome, when the key is
// looked at again.
func (c *Controller) handle(ctx context.Context, q *workQueue, key string) {
	start := time.Now()
	res, err := c.reconcile(ctx, key)
	elapsed := time.Since(start)
	c.counters.reconciles.Add(1)
	if c.duration != nil {
		c.duration.Observe(elapsed.Seconds())
	}

	switch {
	case err == nil:
		q.Forget(key)
		if res.RequeueAfter > 0 {
			c.counters.requeues.Add(1)
			q.AddAfter(key, wait.Jitter(res.RequeueAfter, requeueJitter))
		}
		c.log.Debug("reconciled", zap.String("key", key), zap.Duration("took", elapsed),
			zap.Duration("requeueAfter", res.RequeueAfter))
	case ctx.Err() != nil:
		// The controller is stopping and the failure is most likely the
		// cancellation itself; the next Run's resync covers the key.
		c.log.Debug("reconcile interrupted by shutdown", zap.String("key", key), zap.Error(err))
	case IsTerminal(err):
		c.counters.terminal.Add(1)
		c.counters.recordError(key, err)
		q.Forget(key)
		c.log.Error("reconcile failed terminally, not retrying", zap.String("key", key),
			zap.Duration("took", elapsed), zap.Error(err))
	default:
		c.counters.errors.Add(1)
		c.counters.recordError(key, err)
		delay := q.retryWithBackoff(key)
		c.log.Error("reconcile failed, retrying with backoff", zap.String("key", key),
			zap.Duration("took", elapsed), zap.Int("failures", q.NumRequeues(key)),
			zap.Duration("backoff", delay), zap.Error(err))
	}
}

// reconcile runs one pass under the per-reconcile timeout. A panic becomes an
// error, so the key backs off like any failure and the worker survives.
func (c *Controller) reconcile(ctx context.Context, key string) (res Result, err error) {
	rctx, cancel := context.WithTimeout(ctx, c.opts.ReconcileTimeout)
	defer cancel()
	defer c.watchOverdue(key)()
	defer func() {
		if r := recover(); r != nil {
			c.counters.panics.Add(1)
			res, err = Result{}, logPanic(c.log.With(zap.String("key", key)), "reconcile", r)
		}
	}()
	return c.r.Reconcile(rctx, Request{Key: key})
}

// watchOverdue reports a pass of key that outlives its timeout by
// c.overdueGrace, which only a pass that does not heed its context can: the
// worker it holds is lost until it returns, so it is logged and counted in
// Stats.Overdue while it lasts. The returned function ends the watch.
func (c *Controller) watchOverdue(key string) (done func()) {
	start := time.Now()
	var (
		mu             sync.Mutex
		overdue, ended bool
	)
	timer := time.AfterFunc(c.opts.ReconcileTimeout+c.overdueGrace, func() {
		mu.Lock()
		defer mu.Unlock()
		if ended {
			return
		}
		overdue = true
		c.counters.overdue.Add(1)
		c.log.Warn("reconcile pass outlived its timeout: it does not heed its context and holds a worker",
			zap.String("key", key), zap.Duration("timeout", c.opts.ReconcileTimeout))
	})
	return func() {
		timer.Stop()
		mu.Lock()
		defer mu.Unlock()
		ended = true
		if overdue {
			c.counters.overdue.Add(-1)
			c.log.Warn("overdue reconcile pass returned", zap.String("key", key), zap.Duration("took", time.Since(start)))
		}
	}
}
