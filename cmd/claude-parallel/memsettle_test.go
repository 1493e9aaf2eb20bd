package main

import (
	"context"
	"runtime"
	"runtime/debug"
	"runtime/metrics"
	"sync/atomic"
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

// A look that finds no free heap worth returning doubles the wait before
// the next, up to maxEvery: a quiet server is not woken every `every`.
// Each look still runs after (the caches' release).
func TestSettleMemory_StretchesWhileNothingToReturn(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	var looks atomic.Int64
	done := make(chan struct{})
	go func() {
		defer close(done)
		// minFree unreachable: no look after the first finds anything.
		settleMemory(ctx, time.Millisecond, 10*time.Millisecond, 160*time.Millisecond, 1<<62,
			func(context.Context) { looks.Add(1) })
	}()
	time.Sleep(2 * time.Second)
	cancel()
	<-done
	// Unstretched: 200 looks. Stretched: 10, 20, 40, 80, 160, 160... about 16.
	if n := looks.Load(); n < 2 || n > 40 {
		t.Fatalf("%d looks in 2s with a 10ms interval stretching to 160ms; want between 2 and 40", n)
	}
}
