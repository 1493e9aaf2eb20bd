package models

import "sync"

// Change names an object a write through this Store has just committed.
type Change struct {
	Kind        string // EventKindTask, EventKindDiff or EventKindContainer
	ID          string // task or diff id, container name
	SpecChanged bool   // the spec changed (a new generation), or the object was created or deleted
}

// subscribers holds the callbacks registered with Subscribe.
type subscribers struct {
	mu   sync.RWMutex
	next int
	fns  map[int]func(Change)
}

// Subscribe registers fn to be called after every committed write through
// this Store that creates, changes or deletes a task, a diff or a container
// row. It is how a write in this process reaches the controllers at once;
// writes by other processes show up through DataVersion. fn runs on the
// writer's goroutine after the commit: it must not block or call back into
// the store's write methods (enqueue a key and return). The returned function
// unregisters fn.
func (s *Store) Subscribe(fn func(Change)) (unsubscribe func()) {
	s.subs.mu.Lock()
	defer s.subs.mu.Unlock()
	if s.subs.fns == nil {
		s.subs.fns = map[int]func(Change){}
	}
	id := s.subs.next
	s.subs.next++
	s.subs.fns[id] = fn
	return func() {
		s.subs.mu.Lock()
		defer s.subs.mu.Unlock()
		delete(s.subs.fns, id)
	}
}

func (s *Store) notify(c Change) {
	s.subs.mu.RLock()
	defer s.subs.mu.RUnlock()
	for _, fn := range s.subs.fns {
		fn(c)
	}
}
