//go:build linux || darwin

package models

import (
	"context"
	"fmt"
	"sync"
	"syscall"
)

// fileLock is an advisory lock on a file beside the database, taken around
// every write transaction. SQLite's own busy handler waits for another
// process's write lock by sleeping in steps of up to 100 ms, so a process
// that writes back to back starves the others; a waiter blocked in flock is
// woken by the kernel the moment the lock is released instead.
type fileLock struct{ path string }

func newFileLock(dbPath string) *fileLock { return &fileLock{path: dbPath + ".writelock"} }

// lock takes the lock and returns the function that releases it (safe to
// call more than once). Each call opens its own descriptor: flock belongs to
// the open file description, and an abandoned waiter (context cancelled)
// must only ever release its own; and the close after each transaction is
// what other processes watch as the hint that a commit is visible (see
// CommitHints).
//
// The lock is given back with LOCK_UN before the close, not by the close
// alone: a close releases it only once every copy of the descriptor is gone,
// and a child forked meanwhile (a git command a controller starts) holds a
// copy until it execs — under load that kept the next writer, often a
// task_worker call, waiting tens of milliseconds. LOCK_UN releases the open
// file description's lock whatever copies exist. The descriptor is opened
// with the raw call (close-on-exec), without the os.File poller set-up,
// which cost four more system calls per write.
func (l *fileLock) lock(ctx context.Context) (unlock func(), err error) {
	if l == nil { // a store on PostgreSQL: writers queue on an advisory lock instead
		return func() {}, nil
	}
	fd, err := syscall.Open(l.path, syscall.O_RDWR|syscall.O_CREAT|syscall.O_CLOEXEC, 0o600)
	if err != nil {
		return nil, fmt.Errorf("open write lock %s: %w", l.path, err)
	}
	var once sync.Once
	release := func() {
		once.Do(func() {
			_ = flockRetry(fd, syscall.LOCK_UN)
			_ = syscall.Close(fd)
		})
	}
	if err := syscall.Flock(fd, syscall.LOCK_EX|syscall.LOCK_NB); err == nil {
		return release, nil
	}
	done := make(chan error, 1)
	go func() { done <- flockRetry(fd, syscall.LOCK_EX) }()
	select {
	case err := <-done:
		if err != nil {
			release()
			return nil, fmt.Errorf("take write lock: %w", err)
		}
		return release, nil
	case <-ctx.Done():
		go func() { <-done; release() }()
		return nil, fmt.Errorf("wait for write lock: %w", context.Cause(ctx))
	}
}

func flockRetry(fd, how int) error {
	for {
		err := syscall.Flock(fd, how)
		if err != syscall.EINTR {
			return err
		}
	}
}
