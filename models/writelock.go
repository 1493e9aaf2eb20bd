//go:build linux || darwin

package models

import (
	"context"
	"fmt"
	"os"
	"sync"
	"syscall"
)

// fileLock is an advisory lock on a file beside the database, taken around
// every write transaction. SQLite's own busy handler waits for another
// process's write lock by sleeping in steps of up to 100 ms, so a process
// that writes back to back starves the others; a waiter blocked in flock is
// woken by the kernel the moment the lock is released instead.
//
// One descriptor is opened on first use and kept until close, and the lock
// is given back with LOCK_UN rather than by closing it. Both matter on the
// write path: opening the file per write cost five system calls, and a
// close released the lock only once every copy of the descriptor was gone —
// a child forked in the meantime (a git command started by a controller)
// holds a copy until it execs, which under load kept the next writer, often
// a task_worker call, waiting tens of milliseconds. LOCK_UN releases the
// lock of the open file description whatever copies exist. The descriptor
// is close-on-exec, so no child keeps it past exec.
//
// flock belongs to the open file description, so two fileLocks (two Stores
// on one file, in one process or two) exclude each other as before; callers
// of one fileLock take turns on sem.
type fileLock struct {
	path string
	// sem is held from lock until its unlock: one holder (or waiter in
	// flock) of this descriptor at a time.
	sem chan struct{}

	mu sync.Mutex // guards the fields below
	fd int        // -1 until opened, and after close
	// pending is a blocking flock whose caller's context ended before the
	// kernel granted it; the next caller takes its outcome over, so the
	// descriptor never has two flock calls in flight.
	pending chan error
	closed  bool
}

func newFileLock(dbPath string) *fileLock {
	return &fileLock{path: dbPath + ".writelock", sem: make(chan struct{}, 1), fd: -1}
}

// lock takes the lock and returns the function that releases it (safe to
// call more than once).
func (l *fileLock) lock(ctx context.Context) (unlock func(), err error) {
	if l == nil { // a store on PostgreSQL: writers queue on an advisory lock instead
		return func() {}, nil
	}
	select {
	case l.sem <- struct{}{}:
	case <-ctx.Done():
		return nil, fmt.Errorf("wait for write lock: %w", context.Cause(ctx))
	}
	fd, pending, err := l.descriptor()
	if err != nil {
		<-l.sem
		return nil, err
	}
	if pending == nil {
		if err := syscall.Flock(fd, syscall.LOCK_EX|syscall.LOCK_NB); err == nil {
			return l.unlocker(fd), nil
		}
		pending = make(chan error, 1)
		go func() { pending <- flockRetry(fd, syscall.LOCK_EX) }()
	}
	select {
	case err := <-pending:
		if err != nil {
			<-l.sem
			return nil, fmt.Errorf("take write lock: %w", err)
		}
		return l.unlocker(fd), nil
	case <-ctx.Done():
		l.mu.Lock()
		l.pending = pending
		l.mu.Unlock()
		<-l.sem
		return nil, fmt.Errorf("wait for write lock: %w", context.Cause(ctx))
	}
}

// descriptor opens the lock file on first use and hands over a pending
// flock, if any. The caller holds sem.
func (l *fileLock) descriptor() (fd int, pending chan error, err error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.closed {
		return -1, nil, fmt.Errorf("open write lock %s: %w", l.path, os.ErrClosed)
	}
	if l.fd < 0 {
		fd, err := syscall.Open(l.path, syscall.O_RDWR|syscall.O_CREAT|syscall.O_CLOEXEC, 0o600)
		if err != nil {
			return -1, nil, fmt.Errorf("open write lock %s: %w", l.path, err)
		}
		l.fd = fd
	}
	pending, l.pending = l.pending, nil
	return l.fd, pending, nil
}

// unlocker returns the function that gives the lock on fd back and lets the
// next caller in.
func (l *fileLock) unlocker(fd int) func() {
	var once sync.Once
	return func() {
		once.Do(func() {
			l.mu.Lock()
			// After close the number may name another file by now: the
			// close released the lock already.
			if l.fd == fd {
				if err := flockRetry(fd, syscall.LOCK_UN); err != nil {
					// Not seen in practice; closing the descriptor
					// releases the lock once no child holds a copy.
					_ = syscall.Close(fd)
					l.fd = -1
				}
			}
			l.mu.Unlock()
			<-l.sem
		})
	}
}

// close closes the descriptor, which releases the lock if it is still held.
// A later lock fails with ErrClosed.
func (l *fileLock) close() {
	if l == nil {
		return
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	l.closed = true
	if l.fd >= 0 {
		_ = syscall.Close(l.fd)
		l.fd = -1
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
