package models

import (
	"context"
	"strings"

	"gorm.io/driver/sqlite"
	"gorm.io/gorm"
)

// Commits that need not survive a power cut.
//
// Every write commits with synchronous=FULL: the intent a caller was told is
// stored, and every status a controller acted on, reach the disk before the
// commit returns. A few writes only report progress that is rebuilt from
// elsewhere after a crash — a run's execution_logs row while its output
// still flows (its size and newest line; a restarted follower reads the size
// from the log file itself) — and they come every second from every running
// task. Each used to hold the write lock for its fsync, and a task_worker
// insert arriving meanwhile waited behind it (ten running tasks held the lock
// about a third of the time on a loaded machine). Such writes commit with
// synchronous=NORMAL on a connection of their own: in WAL mode that appends
// the frames without an fsync, keeps the database consistent, and only a
// power cut (not a crash of the process) can take the newest of them back.
// The WAL is appended in commit order, so the next FULL commit's fsync makes
// them durable too: no durable write ever depends on one that can be lost.

// relaxedWriteKey marks a write's context: commit without waiting for fsync.
type relaxedWriteKey struct{}

// writeRelaxed is write for progress that may be lost with a power cut (see
// above). On PostgreSQL, or when the connection cannot be had, it is write.
func (s *Store) writeRelaxed(ctx context.Context, fn func(tx *gorm.DB) error) error {
	return s.write(context.WithValue(ctx, relaxedWriteKey{}, true), fn)
}

// writeDB is the handle a write transaction runs on: the relaxed connection
// for a write made by writeRelaxed, the pool otherwise.
func (s *Store) writeDB(ctx context.Context) *gorm.DB {
	if relaxed, _ := ctx.Value(relaxedWriteKey{}).(bool); !relaxed || s.pg != nil {
		return s.db
	}
	s.relaxedOnce.Do(func() {
		dsn := strings.Replace(buildDSN(s.path, s.busyTimeout), "_synchronous=FULL", "_synchronous=NORMAL", 1)
		if !strings.Contains(dsn, "_synchronous=NORMAL") {
			return
		}
		db, err := gorm.Open(sqlite.New(sqlite.Config{DriverName: sqlite.DriverName, DSN: dsn}), &gorm.Config{
			Logger: s.db.Config.Logger, NowFunc: s.now, SkipDefaultTransaction: true,
			// Progress rows are written every second by every running task:
			// their statements are prepared once, as on the pool.
			PrepareStmt: true, PrepareStmtMaxSize: preparedStatementsKept,
		})
		if err != nil {
			s.log.Warn("relaxed write connection unavailable; progress commits wait for fsync")
			return
		}
		sqlDB, err := db.DB()
		if err != nil {
			return
		}
		// Writes are serialised by the write slot: one connection is enough.
		sqlDB.SetMaxOpenConns(1)
		sqlDB.SetMaxIdleConns(1)
		sqlDB.SetConnMaxLifetime(0)
		sqlDB.SetConnMaxIdleTime(0)
		s.relaxedDB, s.relaxedSQL = db, sqlDB
	})
	if s.relaxedDB == nil {
		return s.db
	}
	return s.relaxedDB
}

// writeTxHook, when a test sets it, runs inside every write transaction.
var writeTxHook func(tx *gorm.DB)
