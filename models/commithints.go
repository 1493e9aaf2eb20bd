package models

import "context"

// notifiedHints turns the store's change signal into commit hints: on
// PostgreSQL every commit, another replica's included, arrives by
// LISTEN/NOTIFY and fires it, so a watcher needs no poll to learn of one.
func (s *Store) notifiedHints(ctx context.Context) <-chan struct{} {
	hints := make(chan struct{}, 1)
	go func() {
		defer close(hints)
		for {
			changed := s.Changed()
			select {
			case <-ctx.Done():
				return
			case <-changed:
			}
			select {
			case hints <- struct{}{}:
			default: // one pending hint covers any number of commits
			}
		}
	}()
	return hints
}
