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
// review calls) stays at its peak long after. An idle server should hold
// what it uses: when the free pages it keeps pass settleMinFree, they go
// back to the OS at once (debug.FreeOSMemory: one GC and a scavenge, a few
// milliseconds). At rest that happens about once per forced GC (every two
// minutes) and only when that GC freed enough to matter.
const (
	settleEvery   = 30 * time.Second
	settleMinFree = 2 << 20
)

// heapFreeMetric is free heap memory not yet returned to the OS.
const heapFreeMetric = "/memory/classes/heap/free:bytes"

// settleMemory returns free heap pages to the OS every `every` while they
// exceed minFree, until ctx ends.
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
