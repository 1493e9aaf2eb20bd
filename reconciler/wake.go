package reconciler

import (
	"context"

	"go.uber.org/zap"
	"k8s.io/apimachinery/pkg/util/wait"
)

// ChangeSource tells whether someone else changed the store. models.Store
// implements it with SQLite's PRAGMA data_version, leaving out the moves its
// own writes make: this process wakes its controllers itself (Notify), so only
// writes by other processes need the resync below.
type ChangeSource interface {
	DataVersion(ctx context.Context) (int64, error)
}

// changeWatcher turns movements of the data version into a resync of every
// controller: the cross-process wake-up. Polling is coarse on purpose; it only has
// to bound the delay (WakePoll), and one resync covers every write since the last
// poll however many there were.
type changeWatcher struct {
	m       *Manager
	last    int64
	known   bool // last holds a version read successfully
	failing bool // the last read failed; log only the first failure of a run
}

// newChangeWatcher reads the baseline version now, before the controllers list
// their keys. When that read fails, the first successful read counts as a change.
func (m *Manager) newChangeWatcher(ctx context.Context) *changeWatcher {
	w := &changeWatcher{m: m}
	w.poll(ctx, false)
	return w
}

func (w *changeWatcher) run(ctx context.Context) {
	wait.JitterUntilWithContext(ctx, func(ctx context.Context) { w.poll(ctx, true) }, w.m.opts.WakePoll, 0, true)
}

func (w *changeWatcher) poll(ctx context.Context, resync bool) {
	defer func() {
		if r := recover(); r != nil {
			_ = logPanic(w.m.log, "wake-up watcher", r)
		}
	}()
	v, err := w.m.opts.Changes.DataVersion(ctx)
	if err != nil {
		if !w.failing && ctx.Err() == nil {
			w.m.log.Warn("read data version failed, cross-process wake-ups paused", zap.Error(err))
		}
		w.failing = true
		return
	}
	if w.failing {
		w.m.log.Info("read data version recovered")
		w.failing = false
	}
	if w.known && v == w.last {
		return
	}
	changed := w.known || resync
	w.last, w.known = v, true
	if !changed {
		return
	}
	w.m.log.Debug("data version changed, resyncing", zap.Int64("dataVersion", v))
	if err := w.m.ResyncAll(ctx); err != nil && ctx.Err() == nil {
		w.m.log.Warn("resync after data version change failed", zap.Error(err))
	}
}
