package reconciler

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"go.uber.org/zap"
	"k8s.io/apimachinery/pkg/util/wait"
)

// Defaults for zero ManagerOptions fields.
const (
	DefaultLeaseName     = "claude-parallel-controllers"
	DefaultLeaseDuration = 15 * time.Second
	DefaultWakePoll      = 200 * time.Millisecond
)

// ManagerOptions configures a Manager. Zero values take defaults.
type ManagerOptions struct {
	Logger *zap.Logger

	// Lease, when not nil, makes the Manager run its controllers and runnables
	// only while this process holds the lease named LeaseName. Nil means this
	// process always leads (a single process, or tests).
	Lease     LeaseStore
	LeaseName string
	// Holder identifies this process in the lease; default NewHolderIdentity().
	Holder string
	// LeaseDuration is how long a lease lasts without renewal: a holder that
	// dies is replaced within about this long. Default 15s.
	LeaseDuration time.Duration
	// RenewInterval is how often the holder renews and a candidate retries.
	// Default LeaseDuration/3.
	RenewInterval time.Duration
	// RenewDeadline: a holder that has not renewed for this long stops its
	// controllers. It must be shorter than LeaseDuration so that they have
	// stopped before another process can take the lease over. Default
	// LeaseDuration*2/3.
	RenewDeadline time.Duration
	// CampaignInterval is how often a process that does not hold the lease
	// tries for it. Default min(RenewInterval, DefaultLeaseDuration/3): a
	// long lease (renewed rarely) must not slow the takeover from a holder
	// the store already knows is gone (models/procid).
	CampaignInterval time.Duration

	// Changes, when not nil, is polled every WakePoll (default 200ms) while
	// leading; when its version moves, every controller resyncs. This is how a
	// write by another process sharing the database reaches the queues.
	Changes  ChangeSource
	WakePoll time.Duration
	// PollOnly polls Changes every WakePoll even when it offers commit
	// hints (CommitHinter).
	PollOnly bool

	// OnStartedLeading and OnStoppedLeading are called synchronously when this
	// process gains and loses leadership; they must return quickly.
	OnStartedLeading func()
	OnStoppedLeading func()

	// Registerer, when not nil, receives a claude_parallel_leader gauge.
	Registerer prometheus.Registerer
}

// Manager runs a set of controllers and leader-only background jobs while this
// process holds the leader lease, and routes wake-ups to the controllers.
type Manager struct {
	opts ManagerOptions
	log  *zap.Logger

	mu          sync.RWMutex
	controllers []*Controller
	byKind      map[string][]*Controller
	runnables   []runnable
	started     bool
	leaderSince time.Time

	leader atomic.Bool

	// act is signalled by every Notify and ResyncAll: it ends the waits of
	// periodic jobs stretched while idle (AddIdlePeriodic).
	act activity

	// wakes counts what woke the idle machinery up (wakeups.go).
	wakes wakeCounts
}

// runnable is a leader-only job, run once per leadership term.
type runnable struct {
	name string
	run  func(ctx context.Context)
}

// ManagerStatus is a point-in-time view of a Manager, for system_status.
type ManagerStatus struct {
	Holder      string
	Leader      bool
	LeaderSince time.Time // zero when not leading
	Controllers []Stats
	// Runnables names the leader-only jobs, in the order they were added.
	Runnables []string
}

// NewManager validates opts and returns a Manager with no controllers yet.
func NewManager(opts ManagerOptions) (*Manager, error) {
	if opts.Logger == nil {
		opts.Logger = zap.NewNop()
	}
	if opts.LeaseName == "" {
		opts.LeaseName = DefaultLeaseName
	}
	if opts.Holder == "" {
		opts.Holder = NewHolderIdentity()
	}
	if opts.LeaseDuration <= 0 {
		opts.LeaseDuration = DefaultLeaseDuration
	}
	if opts.RenewInterval <= 0 {
		opts.RenewInterval = opts.LeaseDuration / 3
	}
	if opts.RenewDeadline <= 0 {
		opts.RenewDeadline = opts.LeaseDuration * 2 / 3
	}
	if opts.CampaignInterval <= 0 {
		opts.CampaignInterval = min(opts.RenewInterval, DefaultLeaseDuration/3)
	}
	if opts.WakePoll <= 0 {
		opts.WakePoll = DefaultWakePoll
	}
	if opts.Lease != nil && (opts.RenewInterval >= opts.RenewDeadline || opts.RenewDeadline >= opts.LeaseDuration) {
		return nil, fmt.Errorf("new manager: need renew interval (%s) < renew deadline (%s) < lease duration (%s)",
			opts.RenewInterval, opts.RenewDeadline, opts.LeaseDuration)
	}
	m := &Manager{
		opts:   opts,
		log:    opts.Logger.With(zap.String("holder", opts.Holder)),
		byKind: map[string][]*Controller{},
	}
	if opts.Registerer != nil {
		g := prometheus.NewGaugeFunc(prometheus.GaugeOpts{
			Namespace: metricsNamespace,
			Name:      "leader",
			Help:      "1 while this process holds the controllers' leader lease.",
		}, func() float64 {
			if m.IsLeader() {
				return 1
			}
			return 0
		})
		if err := opts.Registerer.Register(g); err != nil {
			return nil, fmt.Errorf("new manager: register metrics: %w", err)
		}
		if err := opts.Registerer.Register(&m.wakes); err != nil {
			return nil, fmt.Errorf("new manager: register metrics: %w", err)
		}
	}
	return m, nil
}

// Add registers a controller. Notify(kind, key) for any of kinds enqueues key on
// it. Controllers must be added before Run.
func (m *Manager) Add(c *Controller, kinds ...string) error {
	if c == nil {
		return errors.New("add controller: nil controller")
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.started {
		return fmt.Errorf("add controller %s: manager already running", c.Name())
	}
	for _, other := range m.controllers {
		if other == c || other.Name() == c.Name() {
			return fmt.Errorf("add controller %s: already added", c.Name())
		}
	}
	m.controllers = append(m.controllers, c)
	for _, k := range kinds {
		m.byKind[k] = append(m.byKind[k], c)
	}
	return nil
}

// AddRunnable registers a leader-only job. run is started each time this process
// becomes leader and must return soon after ctx is cancelled; it should retry its
// own failures, since one that returns early stays stopped for the rest of the
// term. Runnables must be added before Run.
func (m *Manager) AddRunnable(name string, run func(ctx context.Context) error) error {
	log := m.log.With(zap.String("runnable", name))
	return m.addRunnable(runnable{name: name, run: func(ctx context.Context) {
		if err := run(ctx); err != nil && ctx.Err() == nil {
			log.Error("runnable stopped with an error", zap.Error(err))
		}
	}})
}

// AddPeriodic registers a leader-only job run at the start of each leadership
// term and then every interval (plus up to 10% jitter), such as container garbage
// collection. An error or a panic is logged and the next run happens on schedule.
func (m *Manager) AddPeriodic(name string, every time.Duration, run func(ctx context.Context) error) error {
	if every <= 0 {
		return fmt.Errorf("add periodic %s: interval must be > 0, got %s", name, every)
	}
	log := m.log.With(zap.String("runnable", name))
	once := func(ctx context.Context) {
		m.wakes.add(wakePeriodic + name)
		defer func() {
			if r := recover(); r != nil {
				_ = logPanic(log, "periodic", r)
			}
		}()
		if err := run(ctx); err != nil && ctx.Err() == nil {
			log.Warn("periodic run failed", zap.Error(err))
		}
	}
	return m.addRunnable(runnable{name: name, run: func(ctx context.Context) {
		wait.JitterUntilWithContext(ctx, once, every, requeueJitter, true)
	}})
}

// AddIdlePeriodic is AddPeriodic for a job that can tell when it found
// nothing to do (run returns idle): after each idle run the next one waits
// twice as long, up to maxEvery, and any Notify or ResyncAll — a write, a
// Docker event, another process's commit — brings it back to every at once.
// An error counts as not idle.
func (m *Manager) AddIdlePeriodic(name string, every, maxEvery time.Duration, run func(ctx context.Context) (idle bool, err error)) error {
	if every <= 0 {
		return fmt.Errorf("add periodic %s: interval must be > 0, got %s", name, every)
	}
	log := m.log.With(zap.String("runnable", name))
	once := func(ctx context.Context) (idle bool) {
		m.wakes.add(wakePeriodic + name)
		defer func() {
			if r := recover(); r != nil {
				_ = logPanic(log, "periodic", r)
				idle = false
			}
		}()
		idle, err := run(ctx)
		if err != nil && ctx.Err() == nil {
			log.Warn("periodic run failed", zap.Error(err))
		}
		return idle && err == nil
	}
	return m.addRunnable(runnable{name: name, run: func(ctx context.Context) {
		idleLoop(ctx, every, maxEvery, &m.act, once)
	}})
}

func (m *Manager) addRunnable(r runnable) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.started {
		return fmt.Errorf("add runnable %s: manager already running", r.name)
	}
	m.runnables = append(m.runnables, r)
	return nil
}

// Notify is the in-process wake-up: after writing an object of kind, a front end
// calls Notify so the controllers for that kind reconcile key at once. It never
// blocks, and does nothing while this process is not the leader (the leader sees
// the write through its ChangeSource).
func (m *Manager) Notify(kind, key string) {
	m.mu.RLock()
	cs := m.byKind[kind]
	m.mu.RUnlock()
	for _, c := range cs {
		c.Enqueue(key)
	}
	m.act.signal()
}

// ResyncAll enqueues every live key of every running controller, for when hints
// may have been lost (another process wrote, the Docker event stream reconnected).
func (m *Manager) ResyncAll(ctx context.Context) error {
	m.act.signal()
	m.mu.RLock()
	cs := m.controllers
	m.mu.RUnlock()
	var errs []error
	for _, c := range cs {
		if err := c.Resync(ctx); err != nil {
			errs = append(errs, err)
		}
	}
	return errors.Join(errs...)
}

// IsLeader reports whether this process holds the lease and runs the controllers.
func (m *Manager) IsLeader() bool { return m.leader.Load() }

// Holder returns this process's identity in the lease.
func (m *Manager) Holder() string { return m.opts.Holder }

// Status returns leadership and every controller's Stats.
func (m *Manager) Status() ManagerStatus {
	m.mu.RLock()
	defer m.mu.RUnlock()
	s := ManagerStatus{Holder: m.opts.Holder, Leader: m.IsLeader()}
	if s.Leader {
		s.LeaderSince = m.leaderSince
	}
	for _, c := range m.controllers {
		s.Controllers = append(s.Controllers, c.Stats())
	}
	for _, r := range m.runnables {
		s.Runnables = append(s.Runnables, r.name)
	}
	return s
}

// Run blocks until ctx is cancelled. Without a LeaseStore it leads at once;
// otherwise it campaigns for the lease, leads while it holds it, and campaigns
// again after losing it. On return every controller and runnable has stopped and
// a held lease has been released, so another process can take over at once.
func (m *Manager) Run(ctx context.Context) error {
	m.mu.Lock()
	if m.started {
		m.mu.Unlock()
		return errors.New("run manager: already running")
	}
	m.started = true
	m.mu.Unlock()

	m.log.Info("manager starting", zap.String("lease", m.opts.LeaseName),
		zap.Bool("leaseElection", m.opts.Lease != nil))
	defer m.log.Info("manager stopped")
	if m.opts.Lease == nil {
		m.lead(ctx, nil)
		return nil
	}
	for {
		acquiredAt, ok := m.campaign(ctx)
		if !ok {
			return nil
		}
		m.lead(ctx, &leaseTerm{lastRenew: acquiredAt})
		if ctx.Err() != nil {
			return nil
		}
	}
}

// lead runs one leadership term: start everything under a child context, hold the
// lease (term == nil: no lease, hold until ctx ends), then stop everything and
// wait for it before the lease can pass to anyone else.
func (m *Manager) lead(ctx context.Context, term *leaseTerm) {
	leadCtx, cancel := context.WithCancel(ctx)
	defer cancel()
	// What the term's controllers and jobs act under. The renewer keeps
	// leadCtx: its own writes are the renewals that keep the fence open.
	actCtx := leadCtx
	if f, ok := m.opts.Lease.(leaseFencer); ok && term != nil {
		actCtx = f.FenceContext(leadCtx, m.opts.LeaseName, m.opts.Holder)
	}

	m.mu.Lock()
	m.leaderSince = time.Now()
	cs, rs := m.controllers, m.runnables
	m.mu.Unlock()
	m.leader.Store(true)
	m.log.Info("started leading")
	m.callback("on started leading", m.opts.OnStartedLeading)

	var wg sync.WaitGroup
	if m.opts.Changes != nil {
		// Read the baseline before any controller lists its keys, so that a
		// commit landing between the two is seen as a change, not folded into it.
		w := m.newChangeWatcher(actCtx)
		GoSafe(&wg, m.log, "wake-up watcher", func() { w.run(actCtx) })
	}
	for _, c := range cs {
		GoSafe(&wg, m.log, "controller "+c.Name(), func() {
			if err := c.Run(actCtx); err != nil {
				m.log.Error("controller failed", zap.String("controller", c.Name()), zap.Error(err))
			}
		})
	}
	for _, r := range rs {
		GoSafe(&wg, m.log, "runnable "+r.name, func() { r.run(actCtx) })
	}

	reason := stopShutdown
	if term == nil {
		<-ctx.Done()
	} else {
		renewals := make(chan renewal)
		GoSafe(&wg, m.log, "lease renewer", func() { m.renewLoop(leadCtx, renewals) })
		reason = m.holdLease(ctx, term, renewals)
	}

	m.leader.Store(false)
	cancel()
	m.waitStopped(&wg)
	m.log.Info("stopped leading", zap.String("reason", string(reason)))
	m.callback("on stopped leading", m.opts.OnStoppedLeading)
	if term != nil && reason != stopLeaseTaken {
		m.release(ctx)
	}
}

// waitStopped waits for the term's goroutines, saying so if a reconcile that
// ignores its context holds the step-down up.
func (m *Manager) waitStopped(wg *sync.WaitGroup) {
	done := make(chan struct{})
	go func() {
		wg.Wait()
		close(done)
	}()
	t := time.NewTicker(5 * time.Second)
	defer t.Stop()
	for {
		select {
		case <-done:
			return
		case <-t.C:
			m.log.Warn("still waiting for controllers and runnables to stop")
		}
	}
}

func (m *Manager) callback(what string, fn func()) {
	if fn == nil {
		return
	}
	defer func() {
		if r := recover(); r != nil {
			_ = logPanic(m.log, what, r)
		}
	}()
	fn()
}
