package models

import (
	"context"
	"fmt"
)

// ReleaseMemory asks SQLite to free what each idle connection of the pool
// keeps cached (PRAGMA shrink_memory: its page cache, up to 2 MB each), and
// the data_version connection too. A server settling after a burst of work
// calls it: the start-up integrity check alone reads every page of the
// file through one connection. The caches refill with what later queries
// read; a quiet server's queries read little. On PostgreSQL it does nothing.
func (s *Store) ReleaseMemory(ctx context.Context) error {
	if s.pg != nil || s.sqlDB == nil {
		return nil
	}
	// database/sql hands out its idle connections first-in first-out, so
	// as many statements as there are open connections reach each idle one
	// once; a connection busy meanwhile keeps its cache until next time.
	n := s.sqlDB.Stats().OpenConnections
	for range n {
		if _, err := s.sqlDB.ExecContext(ctx, "PRAGMA shrink_memory"); err != nil {
			return fmt.Errorf("release store memory: %w", err)
		}
	}
	s.versionMu.Lock()
	defer s.versionMu.Unlock()
	if s.versionConn != nil {
		if _, err := s.versionConn.ExecContext(ctx, "PRAGMA shrink_memory"); err != nil {
			return fmt.Errorf("release store memory: %w", err)
		}
	}
	return nil
}
