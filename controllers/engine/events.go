package engine

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
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
// Watch also records the spans during which it had lost the engine (Outages), so
// that a caller can tell a container the daemon stopped on its way down from one
// that failed by itself.
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
			e.endOutage(connected)
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
			if ctx.Err() == nil {
				// The stream broke: a daemon stopping closes its API first, then
				// stops the containers (without live-restore), so those stops
				// fall inside the outage opened here.
				e.beginOutage(time.Now())
			}
			if time.Since(connected) >= e.WatchStableAfter {
				backoff = initial
			}
		} else if ctx.Err() == nil {
			e.beginOutage(time.Now())
		}
		if !sleepCtx(ctx, backoff.Step()) {
			return
		}
	}
}

// Outage is a span during which Watch had lost the engine: from the moment its
// event stream broke (or an attempt to subscribe failed) to the moment a new
// subscription was registered. To is zero while the engine is still away.
//
// A Docker daemon restart is one. A daemon going down closes its listener, stops
// its containers (unless live-restore is on) while it goes on serving the
// connections it had, the event stream included, and only then exits: the
// stream, hence the outage, ends up to its shutdown timeout after the stops.
type Outage struct {
	From, To time.Time
}

// Contains reports whether t falls within the outage, widened by slack on both
// sides to absorb clock granularity between this process and the engine.
func (o Outage) Contains(t time.Time, slack time.Duration) bool {
	if t.IsZero() || t.Before(o.From.Add(-slack)) {
		return false
	}
	return o.To.IsZero() || !t.After(o.To.Add(slack))
}

// DaemonState is what the Docker daemon was doing at some moment, as far as
// the outages seen by Watch and a probe tell.
type DaemonState int

const (
	// DaemonUp: nothing says the daemon was not up.
	DaemonUp DaemonState = iota
	// DaemonStopping: the daemon was shutting down. Without live-restore it
	// stops every container then, so a container that ended at that moment
	// was most likely stopped by it.
	DaemonStopping
	// DaemonAway: the daemon was down. With live-restore containers run on
	// and may end meanwhile; Docker keeps their exit code but drops what one
	// printed while the daemon was down if it ended before the daemon was back.
	DaemonAway
)

func (s DaemonState) String() string {
	switch s {
	case DaemonStopping:
		return "stopping"
	case DaemonAway:
		return "away"
	default:
		return "up"
	}
}

// DaemonShutdownWindow is how long before Watch loses a stopping daemon it
// may have stopped a container: each container gets its stop timeout (10 s by
// default) within the daemon's shutdown timeout (15 s by default).
const DaemonShutdownWindow = 20 * time.Second

// daemonClockSlack absorbs the difference between the engine's clock, which
// stamps a container's finish, and this process's, which stamps outages.
const daemonClockSlack = time.Second

// DaemonStateAt tells, from the outages Watch saw, what the daemon was doing
// when a container finished at t: away if t is within an outage, stopping if
// it is within DaemonShutdownWindow before one began. A container that ended
// long before this process started, or while Watch was not running, is
// DaemonUp for want of knowledge.
func DaemonStateAt(outages []Outage, t time.Time) DaemonState {
	if t.IsZero() {
		return DaemonUp
	}
	state := DaemonUp
	for _, o := range outages {
		switch {
		case !t.Before(o.From) && (o.To.IsZero() || !t.After(o.To.Add(daemonClockSlack))):
			return DaemonAway
		case !t.Before(o.From.Add(-DaemonShutdownWindow)) && t.Before(o.From):
			state = DaemonStopping
		}
	}
	return state
}

// RefusesConnections reports whether the engine refuses a new connection right
// now. A daemon shutting down closes its listener (a unix socket's file goes)
// before it stops its containers, and goes on serving the connections it had:
// a caller that just read a container's end over one of those learns this way
// that the daemon is going down. A probe that neither connects nor fails
// within a couple of seconds counts as not refused.
func (e *Engine) RefusesConnections(ctx context.Context) bool {
	ctx, cancel := context.WithTimeout(ctx, 2*time.Second)
	defer cancel()
	type dialed struct {
		conn net.Conn
		err  error
	}
	ch := make(chan dialed, 1)
	go func() {
		conn, err := e.cli.Dialer()(ctx)
		ch <- dialed{conn, err}
	}()
	select {
	case d := <-ch:
		if d.err != nil {
			return ctx.Err() == nil
		}
		_ = d.conn.Close()
		return false
	case <-ctx.Done():
		go func() {
			if d := <-ch; d.conn != nil {
				_ = d.conn.Close()
			}
		}()
		return false
	}
}

// maxOutages bounds the outages an Engine remembers; only recent ones matter
// (a container stopped by a restart is looked at within seconds of it).
const maxOutages = 32

// Outages returns the outages Watch has seen, oldest first; the last one is open
// (To zero) while the engine is away. It is empty when Watch never ran, and it
// forgets everything with the process.
func (e *Engine) Outages() []Outage {
	e.outMu.Lock()
	defer e.outMu.Unlock()
	return append([]Outage(nil), e.outages...)
}

// beginOutage opens an outage at t unless one is open.
func (e *Engine) beginOutage(t time.Time) {
	e.outMu.Lock()
	defer e.outMu.Unlock()
	if n := len(e.outages); n > 0 && e.outages[n-1].To.IsZero() {
		return
	}
	e.outages = append(e.outages, Outage{From: t})
	if len(e.outages) > maxOutages {
		e.outages = append([]Outage(nil), e.outages[len(e.outages)-maxOutages:]...)
	}
}

// endOutage closes the open outage, if any, at t.
func (e *Engine) endOutage(t time.Time) {
	e.outMu.Lock()
	defer e.outMu.Unlock()
	if n := len(e.outages); n > 0 && e.outages[n-1].To.IsZero() {
		e.outages[n-1].To = t
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
