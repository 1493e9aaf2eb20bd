package models

import "sync"

// changeSignal is a broadcast: every waiter holding the channel Changed
// returned is woken by the next fire. A closed channel wakes any number of
// waiters at once; a new one is made for the waiters after.
type changeSignal struct {
	mu sync.Mutex
	ch chan struct{}
}

func (c *changeSignal) wait() <-chan struct{} {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.ch == nil {
		c.ch = make(chan struct{})
	}
	return c.ch
}

func (c *changeSignal) fire() {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.ch != nil {
		close(c.ch)
		c.ch = nil
	}
}

// Changed returns a channel closed at the next change this store learns of:
// a write committed through it (a front end's intent, a controller's status
// write in the same process), or another writer's commit seen by a
// DataVersion call (the controllers' cross-process watch makes those calls
// every wake-up poll). Take the channel before reading the state it guards,
// then wait on it: a change between the read and the wait still wakes.
// Writes of other processes are only seen while someone calls DataVersion,
// so a waiter should also re-read at a slow interval.
func (s *Store) Changed() <-chan struct{} { return s.changes.wait() }
