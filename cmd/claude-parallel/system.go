package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"sync"
	"sync/atomic"
	"time"

	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"

	"github.com/claude-parallel/claude-parallel/config"
	"github.com/claude-parallel/claude-parallel/config/logging"
	"github.com/claude-parallel/claude-parallel/config/redact"
	"github.com/claude-parallel/claude-parallel/controllers"
	"github.com/claude-parallel/claude-parallel/controllers/engine"
	"github.com/claude-parallel/claude-parallel/mcp/ops"
	"github.com/claude-parallel/claude-parallel/mcp/service"
	"github.com/claude-parallel/claude-parallel/models"
)

// app is what serve and the store-backed CLI commands run on: the current
// configuration, the logger, the store, the Docker client and, when wired,
// the controllers. It is the only file of the command that imports
// controllers, so the seam between front ends and controllers stays here.
type app struct {
	cfg      atomic.Pointer[config.Config]
	log      *zap.Logger
	level    zap.AtomicLevel
	closeLog func() error
	store    *models.Store
	engine   *engine.Engine // nil when the Docker client could not be set up
	system   *controllers.System
	// metrics receives the store's, Docker's, the tools' and the
	// controllers' figures; serve exposes it at /metrics (service.go).
	metrics   *ops.Metrics
	stateOnce sync.Once
}

// openApp builds the logger for cfg (console lines to console, JSON to the
// log files), opens the store and sets up the Docker client. The engine is
// not contacted: serve must start without it.
func openApp(ctx context.Context, cfg *config.Config, console io.Writer) (*app, error) {
	a := &app{metrics: ops.NewMetrics()}
	a.cfg.Store(cfg)
	var err error
	if a.log, a.level, a.closeLog, err = newLogger(cfg.Log, console, a.redactor); err != nil {
		return nil, err
	}
	if a.store, err = openStore(ctx, cfg, models.Options{Logger: a.log, Observer: a.metrics}); err != nil {
		_ = a.closeLog()
		return nil, fmt.Errorf("open store: %w", err)
	}
	if a.engine, err = engine.NewObserved(cfg.DockerHost, a.metrics.ObserveDocker); err != nil {
		// Bad client settings (a malformed DOCKER_HOST): the front end still
		// answers from the store, and system_status reports the problem.
		a.log.Error("docker client unusable; tasks will not run", zap.Error(err))
		a.engine = nil
	}
	return a, nil
}

// newLogger builds the configured logger behind an atomic level, so SIGHUP
// can change the level of a running server. The files and console are set
// up at debug and the atomic level filters in front of them.
func newLogger(lc config.LogConfig, console io.Writer, secrets func() *redact.Redactor) (*zap.Logger, zap.AtomicLevel, func() error, error) {
	level, err := zap.ParseAtomicLevel(lc.Level)
	if err != nil {
		return nil, level, nil, fmt.Errorf("log level %q: %w", lc.Level, err)
	}
	open := lc
	open.Level = "debug"
	base, closeFn, err := logging.NewRedacting(open, console, secrets)
	if err != nil {
		return nil, level, nil, fmt.Errorf("set up logging: %w", err)
	}
	logger := base.WithOptions(zap.WrapCore(func(c zapcore.Core) zapcore.Core {
		filtered, err := zapcore.NewIncreaseLevelCore(c, level)
		if err != nil {
			return c // cannot happen: the core below accepts every level
		}
		return filtered
	}))
	return logger, level, closeFn, nil
}

// config returns the configuration in force.
func (a *app) config() *config.Config { return a.cfg.Load() }

// redactor hides the secrets of the configuration in force.
func (a *app) redactor() *redact.Redactor { return a.config().Redactor() }

// wireControllers builds the controllers (they run only in runControllers);
// what runs, with which dependencies, is listed in one function,
// controllers/setup.go. Without a Docker client there is nothing to control.
func (a *app) wireControllers() error {
	if a.engine == nil {
		return errors.New("no docker client")
	}
	sys, err := controllers.NewSystem(controllers.Deps{
		Config: a.config(),
		Store:  a.store,
		Engine: a.engine,
		Logger: a.log.Named("controllers"),
		// Controllers register their collectors; only serve exposes them.
		Registerer: a.metrics.Registry(),
	})
	if err != nil {
		return fmt.Errorf("build controllers: %w", err)
	}
	a.system = sys
	return nil
}

// runControllers runs the controllers in the background until ctx ends;
// the returned channel closes once they have stopped (and released the
// lease). They campaign for the lease and only act while holding it.
func (a *app) runControllers(ctx context.Context) <-chan struct{} {
	if a.system == nil {
		done := make(chan struct{})
		close(done)
		return done
	}
	return logging.GoSafe(a.log, "controllers", func() {
		if err := a.system.Run(ctx); err != nil && ctx.Err() == nil {
			a.log.Error("controllers stopped", zap.Error(err))
		}
	})
}

// frontendDeps are the MCP front end's dependencies over the app.
func (a *app) frontendDeps() service.Deps {
	d := service.Deps{
		Config:  a.config,
		Store:   a.store,
		Logger:  a.log.Named("mcp"),
		Version: version,
		// Tool latency and errors by tool, for /metrics.
		ToolObserver: a.metrics.ObserveTool,
	}
	if a.engine != nil {
		d.Engine = a.engine
	}
	if a.system != nil {
		d.Notifier = a.system
		d.Runtime = systemStatus{a.system}
	}
	return d
}

// close releases the store, the Docker client and the log files.
func (a *app) close() error {
	var errs []error
	if a.store != nil {
		errs = append(errs, a.store.Close())
	}
	if a.engine != nil {
		errs = append(errs, a.engine.Close())
	}
	if a.closeLog != nil {
		errs = append(errs, a.closeLog())
	}
	return errors.Join(errs...)
}

// leaderActive reports whether some process holds the controllers' lease.
func (a *app) leaderActive(ctx context.Context) (bool, error) {
	_, _, active, err := a.store.LeaseHolder(ctx, models.LeaderLease)
	if err != nil {
		return false, fmt.Errorf("read lease: %w", err)
	}
	return active, nil
}

// systemStatus adapts controllers.System to service.RuntimeStatus, so the mcp
// package never imports controllers.
type systemStatus struct{ s *controllers.System }

func (a systemStatus) RuntimeStatus(context.Context) service.RuntimeSnapshot {
	st := a.s.Status()
	out := service.RuntimeSnapshot{IsLeader: st.IsLeader, Holder: st.Holder}
	for _, c := range st.Controllers {
		cs := service.ControllerStats{Name: c.Name, Running: c.Running, Workers: c.Workers, QueueDepth: c.QueueDepth,
			Reconciles: c.Reconciles, Errors: c.Errors, TerminalErrors: c.TerminalErrors, Panics: c.Panics,
			Requeues: c.Requeues, Resyncs: c.Resyncs, OverduePasses: c.Overdue, LastError: c.LastError}
		if !c.LastResync.IsZero() {
			t := c.LastResync
			cs.LastResync = &t
		}
		out.Controllers = append(out.Controllers, cs)
	}
	return out
}

// stopWithin waits for done up to d, logging when it gives up: a
// controller stuck in a Docker call must not keep the process alive.
func stopWithin(log *zap.Logger, what string, done <-chan struct{}, d time.Duration) {
	select {
	case <-done:
	case <-time.After(d):
		log.Warn("gave up waiting for shutdown", zap.String("component", what), zap.Duration("waited", d))
	}
}

// settle gives back what a burst of work left resident besides the Go
// heap (settleMemory has just returned that): SQLite's connection caches
// and the C heap's free pages. Best effort: a failure is logged and costs
// only memory.
func (a *app) settle(ctx context.Context) {
	if err := a.store.ReleaseMemory(ctx); err != nil && ctx.Err() == nil {
		a.log.Debug("memory settling: store caches kept", zap.Error(err))
	}
	trimCHeap()
}
