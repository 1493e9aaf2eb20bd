package controllers

import (
	"context"

	"go.uber.org/zap"

	"github.com/claude-parallel/claude-parallel/controllers/engine"
)

// dockerEventsName is the leader-only job that follows Docker's events.
const dockerEventsName = "docker-events"

// dockerEvents follows the labelled container events of this store for a
// whole leadership term: each one enqueues its task and its container; every
// (re)subscription is followed by a full resync, since events missed while
// disconnected are lost. Events are only hints: the controllers decide from
// what they read.
type dockerEvents struct {
	rt interface {
		Watch(ctx context.Context, labels map[string]string, onEvent func(engine.Event), onReconnect func())
	}
	storeID string
	log     *zap.Logger
	notify  func(kind, id string)
	// On every (re)subscription: followers cut by an outage resume at once,
	// then the container controller's pass and every controller's resync run.
	retryFollowers   func()
	resyncContainers func(ctx context.Context) error
	resyncAll        func(ctx context.Context) error
}

// run watches until ctx ends.
func (w *dockerEvents) run(ctx context.Context) error {
	w.rt.Watch(ctx, engine.StoreLabels(w.storeID), func(ev engine.Event) {
		if _, taskID, _, ok := engine.Owner(ev.Attributes); ok && taskEventActions[ev.Action] {
			w.notify(KindTask, taskID)
		}
		if ev.Name != "" && containerEventActions(ev.Action) {
			w.notify(kindContainer, ev.Name)
		}
	}, func() {
		w.log.Info("docker events subscribed, resyncing")
		// Docker answers again: followers cut by the outage resume now.
		w.retryFollowers()
		if err := w.resyncContainers(ctx); err != nil && ctx.Err() == nil {
			w.log.Warn("container resync after docker reconnect failed", zap.Error(err))
		}
		if err := w.resyncAll(ctx); err != nil && ctx.Err() == nil {
			w.log.Warn("resync after docker reconnect failed", zap.Error(err))
		}
	})
	return nil
}

// taskEventActions are the container events after which the owning task may
// have to act (its container ended, vanished or came back).
var taskEventActions = map[string]bool{
	"die": true, "destroy": true, "oom": true, "stop": true, "kill": true,
	"start": true, "restart": true, "pause": true, "unpause": true,
}

// containerEventActions says whether an event of action is a hint for the
// container controller. Every action is, but "create": a container of this
// store is created only by the task controller, which starts it at once and
// records it itself, so the hint brought nothing but an inspect and a
// registry write (an fsync) racing the container's start on a small machine;
// a container created and then left (its creator died) is found by the
// container controller's periodic pass and by the task's own adoption.
func containerEventActions(action string) bool { return action != "create" }
