package main

import (
	"context"
	"runtime/debug"
	"runtime/metrics"
	"testing"
	"time"
)

// gcPercent is the GC goal in force, as the runtime reports it.
func gcPercent() int64 {
	s := []metrics.Sample{{Name: "/gc/gogc:percent"}}
	metrics.Read(s)
	return int64(s[0].Value.Uint64())
}

// waitGCPercent waits until the goal in force is want.
func waitGCPercent(t *testing.T, want int64, what string) {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for gcPercent() != want {
		if time.Now().After(deadline) {
			t.Fatalf("%s: GC percent %d after 30s, want %d", what, gcPercent(), want)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

func TestGCBurst_LargerGoalWhileCallsComeDefaultWhenQuiet(t *testing.T) {
	defer debug.SetGCPercent(debug.SetGCPercent(100))
	g := newGCBurst()
	// Long beside the calls' gaps, so a loaded machine cannot end a burst early.
	const quiet = 2 * time.Second
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { defer close(done); g.run(ctx, quiet) }()
	defer func() { cancel(); <-done }()

	if got := gcPercent(); got != 100 {
		t.Fatalf("before any call: GC percent %d, want the default 100", got)
	}
	for round := range 2 { // a second burst after the first ended
		g.called()
		waitGCPercent(t, burstGCPercent, "a burst began")
		// Calls closer than quiet keep it on.
		for range 5 {
			time.Sleep(20 * time.Millisecond)
			g.called()
			if got := gcPercent(); got != burstGCPercent {
				t.Fatalf("round %d: GC percent %d while calls come, want %d", round, got, burstGCPercent)
			}
		}
		last := time.Now()
		waitGCPercent(t, 100, "the calls stopped")
		if since := time.Since(last); since < quiet {
			t.Fatalf("round %d: default back %s after the last call, before the quiet %s", round, since, quiet)
		}
	}
}

func TestGCBurst_LeavesGOGCOffAlone(t *testing.T) {
	defer debug.SetGCPercent(debug.SetGCPercent(-1))
	g := newGCBurst()
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	done := make(chan struct{})
	go func() { defer close(done); g.run(ctx, time.Millisecond) }()
	g.called()
	select {
	case <-done: // run has nothing to do with GOGC=off
	case <-time.After(10 * time.Second):
		t.Fatal("run still running with GOGC=off")
	}
	if prev := debug.SetGCPercent(-1); prev != -1 {
		t.Fatalf("GOGC=off became %d", prev)
	}
}
