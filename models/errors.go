package models

import (
	"errors"
	"syscall"

	"github.com/mattn/go-sqlite3"
	"gorm.io/gorm"
)

// Sentinel errors. Store methods wrap them with context; compare with errors.Is.
var (
	// ErrNotFound: the object does not exist (never existed, or was deleted).
	ErrNotFound = errors.New("not found")
	// ErrConflict: a status write was based on a stale read (the row's
	// resource_version moved on). Re-read and retry; a reconcile requeues.
	ErrConflict = errors.New("conflict: object was modified since it was read")
	// ErrAlreadyExists: a create named an id that is already taken.
	ErrAlreadyExists = errors.New("already exists")
	// ErrInvalid: a create or spec update carried a value the store cannot hold
	// (unknown enum value, missing required field).
	ErrInvalid = errors.New("invalid object")
	// ErrSchemaTooNew: the database was written by a newer claude-parallel whose
	// schema this binary does not know; upgrade the binary.
	ErrSchemaTooNew = errors.New("database schema is newer than this binary supports")
	// ErrCorrupt: the file is not a SQLite database or is damaged.
	ErrCorrupt = errors.New("database file is not a valid SQLite database or is corrupt")
	// ErrDiskFull: a write failed because the volume holding the database
	// (or its WAL) has no space left. Nothing was written; free space and
	// retry. Reads keep working.
	ErrDiskFull = errors.New("the disk holding the database is full")
	// ErrLeaseLost: a write made under FenceContext was refused because the
	// writer no longer holds the lease (another process took it, or it
	// expired). The writer must stop acting.
	ErrLeaseLost = errors.New("lease lost: this process no longer holds the lease")
)

// isBusy reports whether err is SQLite saying another connection holds a lock.
// With BEGIN IMMEDIATE, the busy timeout and the in-process write semaphore it
// should not reach us; it is retried as a last line of defence.
func isBusy(err error) bool {
	var se sqlite3.Error
	if errors.As(err, &se) {
		return se.Code == sqlite3.ErrBusy || se.Code == sqlite3.ErrLocked
	}
	return pgRetryable(err)
}

// isDiskFull reports whether err is SQLite (or the file system under it)
// saying there is no space left.
func isDiskFull(err error) bool {
	var se sqlite3.Error
	if errors.As(err, &se) && (se.Code == sqlite3.ErrFull || (se.Code == sqlite3.ErrIoErr && errors.Is(se.SystemErrno, syscall.ENOSPC))) {
		return true
	}
	return errors.Is(err, syscall.ENOSPC) || pgDiskFull(err)
}

// isCorrupt reports whether err says the file is not a database or is damaged.
func isCorrupt(err error) bool {
	var se sqlite3.Error
	if errors.As(err, &se) {
		return se.Code == sqlite3.ErrNotADB || se.Code == sqlite3.ErrCorrupt
	}
	return pgCorrupt(err)
}

// isUniqueViolation reports whether err is a UNIQUE or PRIMARY KEY constraint failure.
func isUniqueViolation(err error) bool {
	var se sqlite3.Error
	if errors.As(err, &se) {
		return se.ExtendedCode == sqlite3.ErrConstraintUnique || se.ExtendedCode == sqlite3.ErrConstraintPrimaryKey
	}
	return pgUniqueViolation(err)
}

// notFound converts GORM's record-not-found into ErrNotFound and leaves other errors alone.
func notFound(err error) error {
	if errors.Is(err, gorm.ErrRecordNotFound) {
		return ErrNotFound
	}
	return err
}
