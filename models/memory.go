package models

import (
	"context"
	"fmt"
)

// ReleaseMemory asks SQLite to free what each idle connection of the pool
// keeps cached (PRAGMA shrink_memory: its page cache, up to 2 MB each), and
// the data_version connection too, and closes the pool's idle connections
// but one. A server settling after a burst of work
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
	stats := s.sqlDB.Stats()
	for range stats.OpenConnections {
		if _, err := s.sqlDB.ExecContext(ctx, "PRAGMA shrink_memory"); err != nil {
			return fmt.Errorf("release store memory: %w", err)
		}
	}
	// A quiet server needs one connection; each other idle one holds its
	// own prepared statements (SQLite's compiled programs, in the C heap)
	// as well as its cache. Closing them costs the next burst an open and
	// its statements' preparation, once; the pool grows back to
	// MaxOpenConnections and keeps them until the next settling.
	if stats.MaxOpenConnections > 1 {
		s.sqlDB.SetMaxIdleConns(1)
		s.sqlDB.SetMaxIdleConns(stats.MaxOpenConnections)
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
