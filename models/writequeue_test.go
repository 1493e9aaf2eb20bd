package models

import (
	"context"
	"errors"
	"sync"
	"testing"
	"time"

	"gorm.io/gorm"
)

type writeLabelKey struct{}

// A front end's write (no lease fence) that arrives while controller writes
// wait for the write slot goes before them: it waits for the one write in
// flight, not for the whole queue. The controllers' writes keep their order.
func TestWriteQueue_PromptWritesGoBeforeQueuedControllerWrites(t *testing.T) {
	ctx := context.Background()
	s := newTestStore(t)
	if ok, err := s.TryAcquireLease(ctx, "controllers", "me", time.Minute); err != nil || !ok {
		t.Fatalf("acquire lease: %v %v", ok, err)
	}
	fenced := s.FenceContext(ctx, "controllers", "me")

	var mu sync.Mutex
	var order []string
	writeTxHook = func(tx *gorm.DB) {
		if l, ok := tx.Statement.Context.Value(writeLabelKey{}).(string); ok {
			mu.Lock()
			order = append(order, l)
			mu.Unlock()
		}
	}
	t.Cleanup(func() { writeTxHook = nil })

	hold := make(chan struct{})
	inFlight := make(chan struct{})
	errs := make(chan error, 5)
	go func() {
		errs <- s.write(context.WithValue(fenced, writeLabelKey{}, "in flight"), func(*gorm.DB) error {
			close(inFlight)
			<-hold
			return nil
		})
	}()
	<-inFlight
	queued := func(class, n int) {
		t.Helper()
		deadline := time.Now().Add(30 * time.Second)
		for {
			s.writeSlot.mu.Lock()
			got := len(s.writeSlot.waiting[class])
			s.writeSlot.mu.Unlock()
			if got == n {
				return
			}
			if time.Now().After(deadline) {
				t.Fatalf("%d writes queued in class %d, want %d", got, class, n)
			}
			time.Sleep(time.Millisecond)
		}
	}
	for i, l := range []string{"controller 1", "controller 2", "controller 3"} {
		go func() {
			errs <- s.RecordEvent(context.WithValue(fenced, writeLabelKey{}, l), "task", "task-000000000001", "Test", l)
		}()
		queued(writeBackground, i+1)
	}
	go func() {
		_, _, err := s.CreateTask(context.WithValue(ctx, writeLabelKey{}, "task_worker"), newTask("p"))
		errs <- err
	}()
	queued(writePrompt, 1)
	close(hold)
	for range 5 {
		if err := <-errs; err != nil {
			t.Fatal(err)
		}
	}
	want := []string{"in flight", "task_worker", "controller 1", "controller 2", "controller 3"}
	if len(order) != len(want) {
		t.Fatalf("commit order %q, want %q", order, want)
	}
	for i := range want {
		if order[i] != want[i] {
			t.Fatalf("commit order %q, want %q", order, want)
		}
	}
}

// A waiter whose context ends leaves the queue; one handed the slot just as
// its context ended passes it on, so the slot is never lost.
func TestWriteQueue_CancelledWaiterNeverKeepsTheSlot(t *testing.T) {
	var q writeQueue
	if err := q.acquire(context.Background(), writePrompt); err != nil {
		t.Fatal(err)
	}
	gone, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- q.acquire(gone, writeBackground) }()
	for {
		q.mu.Lock()
		n := len(q.waiting[writeBackground])
		q.mu.Unlock()
		if n == 1 {
			break
		}
		time.Sleep(time.Millisecond)
	}
	cancel()
	if err := <-done; !errors.Is(err, context.Canceled) {
		t.Fatalf("cancelled waiter: %v", err)
	}
	q.release()
	// Free again: a new writer gets it at once.
	ctx, stop := context.WithTimeout(context.Background(), 10*time.Second)
	defer stop()
	if err := q.acquire(ctx, writeBackground); err != nil {
		t.Fatalf("slot lost: %v", err)
	}
	q.release()

	// Handed over and cancelled in the same instant: whichever wins, the
	// slot ends free.
	for range 200 {
		if err := q.acquire(context.Background(), writePrompt); err != nil {
			t.Fatal(err)
		}
		c, cancel := context.WithCancel(context.Background())
		got := make(chan error, 1)
		go func() { got <- q.acquire(c, writePrompt) }()
		go cancel()
		q.release()
		if err := <-got; err == nil {
			q.release()
		}
		ctx, stop := context.WithTimeout(context.Background(), 10*time.Second)
		if err := q.acquire(ctx, writePrompt); err != nil {
			t.Fatalf("slot lost after a race: %v", err)
		}
		q.release()
		stop()
	}
}
