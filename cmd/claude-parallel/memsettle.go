package main

import (
	"context"
	"runtime/debug"
	"runtime/metrics"
	"time"
)

// Memory settling: the Go runtime keeps the heap's free pages resident up
// to about its GC goal (twice the live heap), and gives back what lies
// above it only slowly, so a server that did a burst of work (start-up,
// review calls over a large store) stays near its peak long after. Once
// start-up is over (settleFirst), and later whenever the free pages it keeps
// reach settleMinFree, the server settles: the free heap goes back to the OS
// at once (debug.FreeOSMemory: one GC and a scavenge, a few milliseconds).
// Every look also gives back what else is resident and idle (app.settle:
// SQLite's caches, idle pooled connections, the C heap's free pages). A look
// that finds no free heap to give back doubles the wait before the next, up
// to settleMaxEvery, so a quiet server is not woken for it every 30 seconds.
const (
	settleFirst    = 5 * time.Second
	settleEvery    = 30 * time.Second
	settleMaxEvery = time.Minute
	settleMinFree  = 4 << 20
)

// heapFreeMetric is free heap memory not yet returned to the OS.
const heapFreeMetric = "/memory/classes/heap/free:bytes"

// settleMemory settles once after first, then looks every `every` (doubling
// up to maxEvery while there is nothing to give back) and settles whenever
// the free heap pages reach minFree, until ctx ends. after, when not nil,
// runs at every look, after the FreeOSMemory if there was one.
func settleMemory(ctx context.Context, first, every, maxEvery time.Duration, minFree uint64, after func(context.Context)) {
	sample := []metrics.Sample{{Name: heapFreeMetric}}
	t := time.NewTimer(first)
	defer t.Stop()
	settle := true // the first look settles whatever it finds
	wait := every
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		if settle || heapFree(sample) >= minFree {
			debug.FreeOSMemory()
			wait = every
		} else {
			wait = min(2*wait, max(maxEvery, every))
		}
		// Every look: what the caches gathered since the last one
		// (a quiet server's queries fill SQLite's again, slowly) is
		// cheap to give back, and nothing says it is needed.
		if after != nil {
			after(ctx)
		}
		settle = false
		t.Reset(wait)
	}
}

// heapFree reads heapFreeMetric into sample (0 if the runtime lacks it).
func heapFree(sample []metrics.Sample) uint64 {
	metrics.Read(sample)
	if sample[0].Value.Kind() != metrics.KindUint64 {
		return 0
	}
	return sample[0].Value.Uint64()
}
