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
// review calls over a large store) stays near its peak long after. When the
// free pages it keeps reach settleMinFree, they go back to the OS at once
// (debug.FreeOSMemory: one GC and a scavenge, a few milliseconds). An idle
// server's own garbage (a few MB a minute at 1,000 tasks) stays below it,
// so at rest this costs one metrics read every 30 seconds.
const (
	settleEvery   = 30 * time.Second
	settleMinFree = 4 << 20
)

// heapFreeMetric is free heap memory not yet returned to the OS.
const heapFreeMetric = "/memory/classes/heap/free:bytes"

// settleMemory returns free heap pages to the OS every `every` while they
// reach minFree, until ctx ends.
func settleMemory(ctx context.Context, every time.Duration, minFree uint64) {
	sample := []metrics.Sample{{Name: heapFreeMetric}}
	t := time.NewTicker(every)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		if heapFree(sample) >= minFree {
			debug.FreeOSMemory()
		}
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
