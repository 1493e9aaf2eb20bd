package engine

import (
	"context"
	"errors"
	"fmt"
	"io"
	"strconv"
	"time"

	"github.com/docker/docker/api/types/events"
)

// Event is a container event. Controllers treat it as a hint to reconcile the task it
// names, never as the state itself (state is what Inspect says).
type Event struct {
	Action string // "create", "start", "die", "oom", "kill", "stop", "destroy", ...
	ID     string // container id
	Name   string // container name
	Image  string
	// Attributes are the container's labels plus Docker's own keys ("name",
	// "image", "exitCode", "signal"); Owner(ev.Attributes) names the task run.
	Attributes map[string]string
	// ExitCode is set on "die" (from Attributes["exitCode"]); -1 otherwise.
	ExitCode int
	Time     time.Time
}

// Events subscribes to the engine's container events carrying every label of labels
// (an empty value matches any value). It returns once the subscription is registered
// (or failed): events after that point are delivered on the first channel in order.
// The subscription ends when ctx ends or the connection fails; then the event channel
// is closed and one error (ctx.Err(), or the failure) is sent on the second, which is
// then closed too. Events are not replayed after a failure: use Watch, which
// reconnects and asks for a resync.
func (e *Engine) Events(ctx context.Context, labels map[string]string) (<-chan Event, <-chan error) {
	args := labelFilters(labels)
	args.Add("type", string(events.ContainerEventType))
	msgs, errs := e.api(ctx).Events(ctx, events.ListOptions{Filters: args})

	out := make(chan Event)
	outErr := make(chan error, 1)
	go func() {
		defer close(outErr)
		defer close(out)
		for {
			select {
			case m := <-msgs:
				select {
				case out <- eventFromMessage(m):
				case <-ctx.Done():
					outErr <- ctx.Err()
					return
				}
			case err := <-errs:
				if err == nil || errors.Is(err, io.EOF) {
					err = io.ErrUnexpectedEOF // the engine closed the stream (daemon stopping)
				}
				if ctx.Err() != nil {
					err = ctx.Err()
				}
				outErr <- fmt.Errorf("docker events: %w", err)
				return
			}
		}
	}()
	return out, outErr
}

// Watch keeps a subscription to the labelled container events alive until ctx ends,
// calling onEvent for each event (from one goroutine, in order) and onReconnect after
// every successful (re)subscription, the first one included. Events that happen while
// disconnected are lost, so onReconnect must trigger a full resync (list + enqueue
// everything); because it is called only after the new subscription is registered, an
// event either reaches onEvent or is seen by that resync. Between failed attempts
// Watch waits with exponential backoff and jitter (WatchBackoff).
//
// The callbacks run on Watch's goroutine and should only enqueue work; a slow
// callback delays further events but loses none.
func (e *Engine) Watch(ctx context.Context, labels map[string]string, onEvent func(Event), onReconnect func()) {
	backoff := e.WatchBackoff
	backoff.Steps = int(^uint32(0) >> 1) // retry for as long as ctx lives; Cap bounds the delay
	initial := backoff

	for ctx.Err() == nil {
		// Ping first so that a daemon that is down costs a cheap failed request and a
		// backoff, not a resync of the caller's whole world.
		if _, _, err := e.Ping(ctx); err == nil {
			subCtx, cancel := context.WithCancel(ctx)
			evs, errs := e.Events(subCtx, labels)
			connected := time.Now()
			if onReconnect != nil {
				onReconnect()
			}
			for ev := range evs {
				if onEvent != nil {
					onEvent(ev)
				}
			}
			<-errs
			cancel()
			if time.Since(connected) >= e.WatchStableAfter {
				backoff = initial
			}
		}
		if !sleepCtx(ctx, backoff.Step()) {
			return
		}
	}
}

// sleepCtx waits d or until ctx ends; it reports whether the full wait elapsed.
func sleepCtx(ctx context.Context, d time.Duration) bool {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return false
	case <-t.C:
		return true
	}
}

func eventFromMessage(m events.Message) Event {
	ev := Event{
		Action:     string(m.Action),
		ID:         m.Actor.ID,
		Attributes: m.Actor.Attributes,
		ExitCode:   -1,
		Time:       time.Unix(0, m.TimeNano),
	}
	if m.TimeNano == 0 {
		ev.Time = time.Unix(m.Time, 0)
	}
	if ev.ID == "" {
		ev.ID = m.ID //nolint:staticcheck // engines before API 1.22 set only the legacy field
	}
	if a := m.Actor.Attributes; a != nil {
		ev.Name = a["name"]
		ev.Image = a["image"]
		if code, err := strconv.Atoi(a["exitCode"]); err == nil {
			ev.ExitCode = code
		}
	}
	return ev
}
