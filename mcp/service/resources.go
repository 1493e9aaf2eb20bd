package service

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/claude-parallel/claude-parallel/models"
	"go.uber.org/zap"

	"github.com/claude-parallel/claude-parallel/config"
)

// Accessors for adapters: what they need of the dependencies to describe
// themselves (the MCP handshake's version) and to log their calls.

// Config returns the configuration in force.
func (f *Frontend) Config() *config.Config { return f.cfg() }

// Version is the version reported by system_status and the MCP handshake.
func (f *Frontend) Version() string { return f.d.Version }

// Logger is the service's logger.
func (f *Frontend) Logger() *zap.Logger { return f.d.Logger }

// ToolObserver is Deps.ToolObserver (may be nil).
func (f *Frontend) ToolObserver() func(tool string, d time.Duration, outcome string) {
	return f.d.ToolObserver
}

// TaskLogText returns the newest run's output of a task, timestamps
// removed, the last MaxLogResourceBytes of it. A missing task is
// ErrNotFound.
func (f *Frontend) TaskLogText(ctx context.Context, taskID string) ([]string, error) {
	t, err := f.d.Store.GetTask(ctx, taskID)
	if errors.Is(err, models.ErrNotFound) {
		return nil, fmt.Errorf("%w: no task %s", ErrNotFound, taskID)
	}
	if err != nil {
		return nil, fmt.Errorf("read task %s: %w", taskID, err)
	}
	res, err := f.readRunLog(ctx, logTarget{taskID: t.ID, run: t.Status.RunNumber}, 0, "", MaxLogResourceBytes)
	if err != nil {
		return nil, err
	}
	return res.Lines, nil
}

// DiffPatch returns a diff's whole patch. A missing diff is ErrNotFound.
func (f *Frontend) DiffPatch(ctx context.Context, diffID string) ([]byte, error) {
	d, err := f.d.Store.GetDiff(ctx, diffID)
	if errors.Is(err, models.ErrNotFound) {
		return nil, fmt.Errorf("%w: no diff %s", ErrNotFound, diffID)
	}
	if err != nil {
		return nil, fmt.Errorf("read diff %s: %w", diffID, err)
	}
	return d.Patch, nil
}
