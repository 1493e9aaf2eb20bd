package reconciler

import (
	"context"
	"time"

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

// CommitHinter is a ChangeSource that can also say when the store's files
// were written (models.Store does, with inotify on Linux), so that an idle
// watcher waits for writes instead of polling for them.
type CommitHinter interface {
	// CommitHints returns a channel that receives after writes, coalesced; it
	// closes when ctx ends or the watch fails.
	CommitHints(ctx context.Context) (<-chan struct{}, error)
}

// hintLooks are the delays, after a hint, at which the watcher looks at the
// data version: a commit becomes visible a moment after the write that
// announced it (SQLite publishes it in shared memory after writing the log),
// so one look at once is not enough. Each look costs one read of the -shm
// header while nothing moved.
var hintLooks = []time.Duration{0, 2 * time.Millisecond, 10 * time.Millisecond, 40 * time.Millisecond,
	120 * time.Millisecond}

// hintedPollFactor multiplies WakePoll into the slow poll kept beside the
// hints until they have proved to work: until the first hint arrives, the
// watch might be on a file system whose writes inotify does not report.
const hintedPollFactor = 25

// provenHintPoll is the poll kept beside hints that have proved to work
// (one arrived: the kernel reports this database's writes, the leader's own
// lease renewals included, so within one renewal interval at most). It only
// catches what the hints and the looks after them could miss: a commit that
// a writer outside this program (sqlite3) published more than the last look
// after its log write. Writers of this program also hint when they release
// the write lock, after their commit is visible (models.CommitHints). At
// rest this poll was most of an idle leader's wake-ups, every 5 seconds.
const provenHintPoll = time.Minute

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
	if h, ok := w.m.opts.Changes.(CommitHinter); ok && !w.m.opts.PollOnly {
		hints, err := h.CommitHints(ctx)
		if err == nil {
			w.runHinted(ctx, hints)
			if ctx.Err() != nil {
				return
			}
		}
		w.m.log.Info("cross-process wake-ups fall back to polling", zap.Duration("every", w.m.opts.WakePoll),
			zap.Error(err))
	}
	wait.JitterUntilWithContext(ctx, func(ctx context.Context) {
		w.m.wakes.add(WakeChangePoll)
		w.poll(ctx, true)
	}, w.m.opts.WakePoll, 0, true)
}

// slowPoll is the poll kept beside the hints: hintedPollFactor × WakePoll
// until a hint has arrived, then provenHintPoll (never shorter).
func (w *changeWatcher) slowPoll(proven bool) time.Duration {
	slow := hintedPollFactor * w.m.opts.WakePoll
	if proven {
		slow = max(slow, provenHintPoll)
	}
	return slow
}

// runHinted looks at the data version after each hint (at hintLooks) and
// every slowPoll otherwise, until ctx ends or the hints stop (the watch
// failed: the caller polls instead).
func (w *changeWatcher) runHinted(ctx context.Context, hints <-chan struct{}) {
	proven := false
	timer := time.NewTimer(w.slowPoll(proven))
	defer timer.Stop()
	var hintAt time.Time
	next := len(hintLooks) // index of the next look after a hint; past the end: slow poll
	for {
		select {
		case <-ctx.Done():
			return
		case _, ok := <-hints:
			if !ok {
				return
			}
			w.m.wakes.add(WakeCommitHint)
			if !proven {
				proven = true
				w.m.log.Debug("commit hints work; the store is polled only as a fallback",
					zap.Duration("every", w.slowPoll(proven)))
			}
			hintAt, next = time.Now(), 0
		case <-timer.C:
			if next < len(hintLooks) {
				w.m.wakes.add(WakeHintLook)
			} else {
				w.m.wakes.add(WakeChangePoll)
			}
		}
		if next < len(hintLooks) {
			next++
		}
		if w.poll(ctx, true) {
			next = len(hintLooks) // the change is seen; later writes hint again
		}
		wait := w.slowPoll(proven)
		if next < len(hintLooks) {
			wait = max(0, hintLooks[next]-time.Since(hintAt))
		}
		if !timer.Stop() {
			select {
			case <-timer.C:
			default:
			}
		}
		timer.Reset(wait)
	}
}

// poll looks at the data version once and resyncs on a move; it reports
// whether it saw one.
func (w *changeWatcher) poll(ctx context.Context, resync bool) (moved bool) {
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
		return false
	}
	if w.failing {
		w.m.log.Info("read data version recovered")
		w.failing = false
	}
	if w.known && v == w.last {
		return false
	}
	changed := w.known || resync
	w.last, w.known = v, true
	if !changed {
		return false
	}
	w.m.log.Debug("data version changed, resyncing", zap.Int64("dataVersion", v))
	if err := w.m.ResyncAll(ctx); err != nil && ctx.Err() == nil {
		w.m.log.Warn("resync after data version change failed", zap.Error(err))
	}
	return true
}
