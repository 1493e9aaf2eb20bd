//go:build linux || darwin

package models

import (
	"context"
	"fmt"
	"os"
	"syscall"
)

// fileLock is an advisory lock on a file beside the database, taken around
// every write transaction. SQLite's own busy handler waits for another
// process's write lock by sleeping in steps of up to 100 ms, so a process
// that writes back to back starves the others; a waiter blocked in flock is
// woken by the kernel the moment the lock is released instead.
type fileLock struct{ path string }

func newFileLock(dbPath string) *fileLock { return &fileLock{path: dbPath + ".writelock"} }

// lock takes the lock and returns the function that releases it. Each call
// opens its own descriptor: flock belongs to the open file description, and
// an abandoned waiter (context cancelled) must only ever release its own.
func (l *fileLock) lock(ctx context.Context) (unlock func(), err error) {
	if l == nil { // a store on PostgreSQL: writers queue on an advisory lock instead
		return func() {}, nil
	}
	f, err := os.OpenFile(l.path, os.O_RDWR|os.O_CREATE, 0o600)
	if err != nil {
		return nil, fmt.Errorf("open write lock: %w", err)
	}
	release := func() { _ = f.Close() } // closing the descriptor releases the lock
	fd := int(f.Fd())
	if err := syscall.Flock(fd, syscall.LOCK_EX|syscall.LOCK_NB); err == nil {
		return release, nil
	}
	done := make(chan error, 1)
	go func() { done <- syscall.Flock(fd, syscall.LOCK_EX) }()
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
