package service

import (
	"context"
	"errors"
	"fmt"
	"time"

	"go.uber.org/zap"

	"github.com/claude-parallel/claude-parallel/config"
	"github.com/claude-parallel/claude-parallel/models"
)

// Notifier wakes in-process controllers after a front end wrote an intent;
// kind is "task" or "diff". Controllers in other processes notice the write
// by polling the store, so a nil Notifier only costs a few hundred
// milliseconds.
type Notifier interface{ Notify(kind, id string) }

// RuntimeStatus reports what the controllers of this process are doing.
// cmd adapts controllers.System to it; this package never imports controllers.
type RuntimeStatus interface {
	RuntimeStatus(ctx context.Context) RuntimeSnapshot
}

// EngineProbe asks the container engine whether it answers.
type EngineProbe interface {
	Ping(ctx context.Context) (version, apiVersion string, err error)
}

// RuntimeSnapshot is the state of this process's controllers.
type RuntimeSnapshot struct {
	IsLeader    bool
	Holder      string
	Controllers []ControllerStats
}

// ControllerStats are one controller's reconcile figures.
type ControllerStats struct {
	Name           string `json:"name"`
	Running        bool   `json:"running,omitempty"`
	Workers        int    `json:"workers,omitempty"`
	QueueDepth     int    `json:"queueDepth,omitempty"`
	Reconciles     uint64 `json:"reconciles,omitempty"`
	Errors         uint64 `json:"errors,omitempty"`
	TerminalErrors uint64 `json:"terminalErrors,omitempty"`
	Panics         uint64 `json:"panics,omitempty"`
	Requeues       uint64 `json:"requeues,omitempty"`
	Resyncs        uint64 `json:"resyncs,omitempty"`
	// OverduePasses are passes running now past their timeout, each holding
	// a worker: not zero means something does not heed cancellation.
	OverduePasses int64      `json:"overduePasses,omitempty"`
	LastResync    *time.Time `json:"lastResync,omitempty"`
	LastError     string     `json:"lastError,omitempty"`
}

// Deps are what the front end works with.
type Deps struct {
	// Config returns the configuration in force; serve swaps it on SIGHUP,
	// so every call reads allowed roots, profiles and limits afresh.
	Config func() *config.Config
	Store  *models.Store
	// Notifier, Runtime and Engine may be nil: a CLI command or a server
	// without Docker still answers from the store.
	Notifier Notifier
	Runtime  RuntimeStatus
	Engine   EngineProbe
	Logger   *zap.Logger
	// Version is reported by system_status and the MCP handshake.
	Version string
	// ApplyWait bounds how long apply_changes waits for the controller's
	// outcome before answering "still in progress" (default 60s).
	ApplyWait time.Duration
	// PollInterval is how often waits re-read the store (default 250ms).
	PollInterval time.Duration
	// OnWake, when not nil, is told when a wait parks (WaitParked) and why
	// it re-read the store (WakeChange, WakePoll): tests check with it that
	// waits are woken by changes rather than by the poll.
	OnWake func(source string)
	// ToolObserver, when not nil, is told of every tool call: its tool,
	// duration and outcome ("ok", "error_result" or "error"), for metrics.
	ToolObserver func(tool string, d time.Duration, outcome string)
}

// StaticConfig is a Deps.Config for a configuration that never changes.
func StaticConfig(cfg *config.Config) func() *config.Config {
	return func() *config.Config { return cfg }
}

const (
	defaultApplyWait    = 60 * time.Second
	defaultPollInterval = 250 * time.Millisecond
	engineProbeTimeout  = 3 * time.Second
)

// Frontend carries out the front-end operations shared by the MCP tools and
// the CLI: validate, write an intent, read state back.
type Frontend struct {
	d     Deps
	probe dockerProbe
}

// NewFrontend returns a Frontend over deps, filling defaults.
func NewFrontend(deps Deps) *Frontend {
	if deps.Logger == nil {
		deps.Logger = zap.NewNop()
	}
	if deps.ApplyWait <= 0 {
		deps.ApplyWait = defaultApplyWait
	}
	if deps.PollInterval <= 0 {
		deps.PollInterval = defaultPollInterval
	}
	if deps.Version == "" {
		deps.Version = "dev"
	}
	return &Frontend{d: deps}
}

func (f *Frontend) cfg() *config.Config { return f.d.Config() }

// ApplyWait is the default bound of apply_changes's wait.
func (f *Frontend) ApplyWait() time.Duration { return f.d.ApplyWait }

func (f *Frontend) notify(kind, id string) {
	if f.d.Notifier != nil {
		f.d.Notifier.Notify(kind, id)
	}
}

// ProgressFunc receives progress of a long operation: a value that grows
// with every call, the total when known (0 otherwise) and a sentence.
type ProgressFunc func(progress, total float64, message string)

func noProgress(float64, float64, string) {}

// getTask reads a task named by argument arg; a missing one is bad input.
func (f *Frontend) getTask(ctx context.Context, arg, id string) (*models.Task, error) {
	t, err := f.d.Store.GetTask(ctx, id)
	if errors.Is(err, models.ErrNotFound) {
		return nil, &InputError{Arg: arg,
			Kind:     ErrNotFound,
			Problem:  fmt.Sprintf("no task %s exists", id),
			Accepted: fmt.Sprintf("the id of an existing task (tasks are kept for %s after they finish; list them with work_status)", f.cfg().Retention.DataMaxAge)}
	}
	if err != nil {
		return nil, fmt.Errorf("read task %s: %w", id, err)
	}
	return t, nil
}

// getDiff reads a diff (without its patch) named by argument arg.
func (f *Frontend) getDiff(ctx context.Context, arg, id string) (*models.Diff, error) {
	ds, err := f.d.Store.ListDiffs(ctx, models.DiffFilter{IDs: []string{id}})
	if err != nil {
		return nil, fmt.Errorf("read diff %s: %w", id, err)
	}
	if len(ds) == 0 {
		return nil, noSuchDiff(arg, id)
	}
	return &ds[0], nil
}

func noSuchDiff(arg, id string) *InputError {
	return &InputError{Arg: arg,
		Kind:     ErrNotFound,
		Problem:  fmt.Sprintf("no diff %s exists", id),
		Accepted: "the id of an existing diff (see review_changes without arguments for the pending ones)"}
}

// inputErr converts a list of problems to an error, or nil.
func inputErr(probs InputErrors) error {
	if len(probs) == 0 {
		return nil
	}
	return probs
}

// versionLook is how often a waiting front end looks at the store's data
// version for other processes' writes.
const versionLook = 25 * time.Millisecond

// pollUntil re-reads state until done reports true, the bound passes
// (timedOut) or ctx ends (its error). It re-reads when the store reports a
// change (models.Store.Changed: a write of this process, or another
// process's write seen through the data version, which the wait itself looks
// at every versionLook), and every poll interval as the last fallback.
func (f *Frontend) pollUntil(ctx context.Context, bound time.Duration, done func() (bool, error)) (timedOut bool, err error) {
	deadline := time.NewTimer(bound)
	defer deadline.Stop()
	tick := time.NewTicker(f.d.PollInterval)
	defer tick.Stop()
	// Another process's commit (a CLI's wait, or a server that does not
	// lead) moves SQLite's data version; looking at it is one cheap pragma,
	// and a move wakes this wait through Changed like a write of our own.
	look := time.NewTicker(versionLook)
	defer look.Stop()
	for {
		// Taken before the read, so a change made while done reads still wakes.
		changed := f.d.Store.Changed()
		ok, err := done()
		if err != nil || ok {
			return false, err
		}
		f.wake(WaitParked)
	park:
		for {
			select {
			case <-ctx.Done():
				return false, context.Cause(ctx)
			case <-deadline.C:
				return true, nil
			case <-changed:
				f.wake(WakeChange)
				break park
			case <-tick.C:
				f.wake(WakePoll)
				break park
			case <-look.C:
				// A move closes changed; an error leaves it to the poll.
				_, _ = f.d.Store.DataVersion(ctx)
			}
		}
	}
}

// Why a wait re-read the store, for tests that check waits are woken by
// changes rather than by the poll; waitParked is told before each wait.
const (
	WaitParked = "parked"
	WakeChange = "change"
	WakePoll   = "poll"
)

func (f *Frontend) wake(source string) {
	if f.d.OnWake != nil {
		f.d.OnWake(source)
	}
}
