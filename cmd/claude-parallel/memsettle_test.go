package main

import (
	"context"
	"runtime"
	"runtime/debug"
	"runtime/metrics"
	"testing"
	"time"
)

// garbage is kept reachable until the test drops it, so the GC frees it as
// one burst.
var garbage [][]byte

func TestSettleMemory_ReturnsFreedHeapAfterABurst(t *testing.T) {
	// With the GC percent off the runtime's own scavenger keeps every free
	// page (its goal follows the GC goal), so only settleMemory can return
	// the burst: the test cannot pass by the runtime's doing.
	defer debug.SetGCPercent(debug.SetGCPercent(-1))
	free := func() uint64 { return heapFree([]metrics.Sample{{Name: heapFreeMetric}}) }
	for range 64 {
		garbage = append(garbage, make([]byte, 256<<10)) // 16 MiB
	}
	garbage = nil
	runtime.GC()
	if f := free(); f < settleMinFree {
		t.Fatalf("after a 16 MiB burst only %d bytes are free and resident; nothing to settle", f)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() {
		defer close(done)
		settleMemory(ctx, 10*time.Millisecond, 10*time.Millisecond, 10*time.Millisecond, settleMinFree, nil)
	}()
	defer func() { cancel(); <-done }()
	deadline := time.Now().Add(30 * time.Second)
	for free() >= settleMinFree {
		if time.Now().After(deadline) {
			t.Fatalf("%d free heap bytes still resident after 30s of settling", free())
		}
		time.Sleep(10 * time.Millisecond)
	}
}
