package main

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"sync"
	"time"

	"github.com/coreos/go-systemd/v22/daemon"
	"go.uber.org/zap"

	"github.com/claude-parallel/claude-parallel/controllers"
	"github.com/claude-parallel/claude-parallel/mcp/dashboard"
	"github.com/claude-parallel/claude-parallel/mcp/ops"
	"github.com/claude-parallel/claude-parallel/mcp/service"
	"github.com/claude-parallel/claude-parallel/models"
)

// Running as a service: the ops endpoints (/healthz, /readyz, /metrics)
// and the systemd notify protocol (READY, WATCHDOG, STOPPING). This file
// wires package ops, which knows nothing of the controllers, to them.

// opsOptions are the ops endpoints' options over the app; the store's
// figures are registered once, the first time they are asked for.
func (a *app) opsOptions() ops.Options {
	a.stateOnce.Do(func() {
		if err := a.metrics.Registry().Register(ops.NewStateCollector(a.store, a.log.Named("metrics"))); err != nil {
			a.log.Error("metrics: store figures not registered", zap.Error(err))
		}
	})
	return ops.Options{
		Config:   a.config,
		Gatherer: a.metrics.Registry(),
		Logger:   a.log.Named("ops"),
		Checks: []ops.Check{
			{Name: "store", Probe: a.store.ProbeWrite},
			{Name: "docker", Probe: a.probeDocker},
			{Name: "controllers", Probe: a.probeControllers},
		},
	}
}

// opsRoutes mounts the ops endpoints beside /mcp.
func (a *app) opsRoutes(mux *http.ServeMux) { ops.Routes(mux, a.opsOptions()) }

func (a *app) probeDocker(ctx context.Context) error {
	if a.engine == nil {
		return errors.New("no docker client (see the server log)")
	}
	if _, _, err := a.engine.Ping(ctx); err != nil {
		return fmt.Errorf("docker does not answer: %w", err)
	}
	return nil
}

// probeControllers holds when this process leads with every controller
// running, or another process holds a live lease (it runs them).
func (a *app) probeControllers(ctx context.Context) error {
	var self string
	if a.system != nil {
		st := a.system.Status()
		self = st.Holder
		if st.IsLeader {
			for _, c := range st.Controllers {
				if !c.Running {
					return fmt.Errorf("leading, but controller %s is not running", c.Name)
				}
			}
			return nil
		}
	}
	holder, _, live, err := a.store.LeaseHolder(ctx, models.LeaderLease)
	if err != nil {
		return err
	}
	if live && holder != self {
		return nil
	}
	if self == "" {
		return errors.New("no controllers in this process and no live leader elsewhere")
	}
	return errors.New("no process holds the leader lease yet (this one is campaigning)")
}

// startOpsListener serves the ops endpoints on ops.listen, when set, until
// ctx ends; the returned function waits for it to stop.
func (a *app) startOpsListener(ctx context.Context) (wait func(), err error) {
	addr := a.config().Ops.Listen
	if addr == "" {
		return func() {}, nil
	}
	l, err := ops.Listen(addr, a.opsOptions())
	if err != nil {
		return nil, err
	}
	a.log.Info("ops listener ready", zap.String("url", "http://"+l.Addr()))
	served := make(chan struct{})
	go func() {
		defer close(served)
		if err := l.Serve(); err != nil {
			a.log.Error("ops listener stopped", zap.Error(err))
		}
	}()
	go func() {
		<-ctx.Done()
		drain, cancel := context.WithTimeout(context.Background(), httpDrainTimeout)
		defer cancel()
		_ = l.Shutdown(drain)
	}()
	return func() { <-served }, nil
}

// sdNotify sends one state to systemd (a no-op without NOTIFY_SOCKET).
func (a *app) sdNotify(state string) {
	if _, err := daemon.SdNotify(false, state); err != nil {
		a.log.Warn("systemd notify failed", zap.String("state", state), zap.Error(err))
	}
}

// notifyService speaks the systemd notify protocol for serve, once the
// front end accepts requests: READY=1 as soon as the controllers run here
// or a live leader runs them elsewhere; then, when systemd asked for a
// watchdog (WATCHDOG_USEC), WATCHDOG=1 every half period while the
// reconcile loops make progress (see progressWatch); STOPPING=1 when ctx
// ends (SIGTERM). It returns at once; the work runs until ctx ends.
func (a *app) notifyService(ctx context.Context) {
	go func() {
		ready := time.NewTicker(100 * time.Millisecond)
		defer ready.Stop()
		for a.probeControllers(ctx) != nil && a.system != nil {
			select {
			case <-ctx.Done():
				a.sdNotify(daemon.SdNotifyStopping)
				return
			case <-ready.C:
			}
		}
		a.sdNotify(daemon.SdNotifyReady)
		a.log.Info("service ready: controllers running here or a live leader elsewhere")
		interval, err := daemon.SdWatchdogEnabled(false)
		if err != nil {
			a.log.Warn("systemd watchdog settings unusable", zap.Error(err))
		}
		if interval <= 0 {
			<-ctx.Done()
			a.sdNotify(daemon.SdNotifyStopping)
			return
		}
		a.runWatchdog(ctx, interval)
		a.sdNotify(daemon.SdNotifyStopping)
	}()
}

// runWatchdog pings systemd every half interval while progress holds.
func (a *app) runWatchdog(ctx context.Context, interval time.Duration) {
	cfg := a.config()
	pw := newProgressWatch(cfg.Intervals.ReconcileTimeout.Duration+30*time.Second, cfg.Intervals.LeaseDuration.Duration)
	t := time.NewTicker(interval / 2)
	defer t.Stop()
	healthy := true
	for {
		var err error
		if a.system != nil {
			err = pw.check(time.Now(), a.system.Status(), a.leaseView(ctx))
		}
		if err == nil {
			a.sdNotify(daemon.SdNotifyWatchdog)
		}
		if (err == nil) != healthy {
			healthy = err == nil
			if healthy {
				a.log.Info("watchdog: reconcile loops make progress again; pinging systemd")
			} else {
				a.log.Error("watchdog: reconcile loops make no progress; no longer pinging systemd", zap.Error(err))
			}
		}
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}

// leaseView reads who holds the leader lease, for progressWatch.
func (a *app) leaseView(ctx context.Context) leaseView {
	ctx, cancel := context.WithTimeout(ctx, 2*time.Second)
	defer cancel()
	holder, _, live, err := a.store.LeaseHolder(ctx, models.LeaderLease)
	return leaseView{holder: holder, live: live, err: err}
}

type leaseView struct {
	holder string
	live   bool
	err    error
}

// progressWatch decides whether the reconcile loops make progress, from
// successive looks at the controllers' counters:
//   - leading: every controller runs, no pass has outlived its timeout
//     (Overdue: a pass that does not heed its context holds a worker), and
//     no controller has had work ready without finishing a single pass for
//     longer than stallLimit (a little more than a pass's timeout);
//   - not leading: a live leader elsewhere runs them; nobody holding the
//     lease is tolerated for leaseGrace (a lapsed holder is replaced within
//     one lease duration).
//
// Docker or git failing is progress: the passes end, with errors, and
// retry; restarting the server would not help them.
type progressWatch struct {
	stallLimit, leaseGrace time.Duration

	mu           sync.Mutex
	reconciles   map[string]uint64
	stalledSince map[string]time.Time
	noLeaderAt   time.Time
}

func newProgressWatch(stallLimit, leaseGrace time.Duration) *progressWatch {
	return &progressWatch{stallLimit: stallLimit, leaseGrace: leaseGrace,
		reconciles: map[string]uint64{}, stalledSince: map[string]time.Time{}}
}

func (p *progressWatch) check(now time.Time, st controllers.SystemStatus, lease leaseView) error {
	p.mu.Lock()
	defer p.mu.Unlock()
	if !st.IsLeader {
		clear(p.stalledSince)
		if lease.err == nil && lease.live && lease.holder != st.Holder {
			p.noLeaderAt = time.Time{}
			return nil
		}
		if p.noLeaderAt.IsZero() {
			p.noLeaderAt = now
		}
		if gone := now.Sub(p.noLeaderAt); gone > p.leaseGrace {
			if lease.err != nil {
				return fmt.Errorf("no leader for %s, and the lease cannot be read: %w", gone.Round(time.Second), lease.err)
			}
			return fmt.Errorf("no process has held the leader lease for %s", gone.Round(time.Second))
		}
		return nil
	}
	p.noLeaderAt = time.Time{}
	var errs []error
	for _, c := range st.Controllers {
		prev, seen := p.reconciles[c.Name]
		p.reconciles[c.Name] = c.Reconciles
		switch {
		case !c.Running:
			errs = append(errs, fmt.Errorf("controller %s is not running although this process leads", c.Name))
		case c.Overdue > 0:
			errs = append(errs, fmt.Errorf("controller %s: %d passes running past their timeout", c.Name, c.Overdue))
		}
		if c.QueueDepth == 0 || !seen || c.Reconciles != prev {
			delete(p.stalledSince, c.Name)
			continue
		}
		since, ok := p.stalledSince[c.Name]
		if !ok {
			p.stalledSince[c.Name] = now
			continue
		}
		if stalled := now.Sub(since); stalled > p.stallLimit {
			errs = append(errs, fmt.Errorf("controller %s: %d keys ready and no pass finished for %s", c.Name, c.QueueDepth, stalled.Round(time.Second)))
		}
	}
	return errors.Join(errs...)
}

// httpRoutes returns what mounts, beside /mcp, the ops endpoints and the
// dashboard; the dashboard's log streams end when ctx does.
func (a *app) httpRoutes(ctx context.Context) func(mux *http.ServeMux) {
	return func(mux *http.ServeMux) { a.mountHTTPRoutes(ctx, mux) }
}

func (a *app) mountHTTPRoutes(ctx context.Context, mux *http.ServeMux) {
	a.opsRoutes(mux)
	err := dashboard.Routes(mux, dashboard.Options{
		Frontend: service.NewFrontend(a.frontendDeps()),
		Store:    a.store,
		Config:   a.config,
		Logger:   a.log.Named("dashboard"),
		Stopping: ctx.Done(),
	})
	if err != nil {
		a.log.Error("dashboard not served", zap.Error(err))
	}
}
