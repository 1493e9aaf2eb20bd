package main

import (
	"context"
	"runtime/debug"
	"sync/atomic"
	"time"
)

// A server answering tool calls collects its garbage less often while the
// calls come, and as usual once they stop. At the default GC goal (twice
// the live heap, at least 4 MB) the few MB a server keeps live meet a
// collection every ten or so calls, and a call that overlaps one is slowed
// by the marking it shares the two cores with: that is most of the tail of
// the read tools' latency. During a burst the goal is burstGCPercent (five
// times the live heap); burstQuiet after the last call the default comes
// back and the burst's heap goes back to the OS, so an idle server's
// memory is what it was. No timer runs between bursts.
const (
	burstGCPercent = 400
	burstQuiet     = 10 * time.Second
)

// gcBurst switches the GC goal for bursts of tool calls: called is told of
// every call, run (one goroutine) does the switching.
type gcBurst struct {
	normal   int          // the GC percent outside bursts (GOGC's, 100 by default)
	lastCall atomic.Int64 // unix nanoseconds of the newest call
	busy     atomic.Bool  // a burst is on (set by called, cleared by run)
	begin    chan struct{}
}

func newGCBurst() *gcBurst {
	normal := debug.SetGCPercent(100)
	debug.SetGCPercent(normal)
	return &gcBurst{normal: normal, begin: make(chan struct{}, 1)}
}

// enabled: GOGC=off, or a GOGC already above the burst's, is left alone.
func (g *gcBurst) enabled() bool { return g.normal >= 0 && g.normal < burstGCPercent }

// called notes a tool call; the first of a burst wakes run.
func (g *gcBurst) called() {
	if !g.enabled() {
		return
	}
	g.lastCall.Store(time.Now().UnixNano())
	if !g.busy.Swap(true) {
		select {
		case g.begin <- struct{}{}:
		default:
		}
	}
}

// run raises the goal when a burst begins and restores it quiet after its
// last call, giving the burst's free heap back, until ctx ends.
func (g *gcBurst) run(ctx context.Context, quiet time.Duration) {
	if !g.enabled() {
		return
	}
	for {
		select {
		case <-ctx.Done():
			return
		case <-g.begin:
		}
		debug.SetGCPercent(burstGCPercent)
		for {
			wait := quiet - time.Since(time.Unix(0, g.lastCall.Load()))
			if wait <= 0 {
				break
			}
			t := time.NewTimer(wait)
			select {
			case <-ctx.Done():
				t.Stop()
				debug.SetGCPercent(g.normal)
				return
			case <-t.C:
			}
		}
		// A call between the last look and this store finds busy still
		// set and signals nothing: the next call begins a new burst.
		g.busy.Store(false)
		debug.SetGCPercent(g.normal)
		debug.FreeOSMemory()
	}
}
