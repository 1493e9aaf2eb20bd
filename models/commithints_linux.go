//go:build linux

package models

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"unsafe"

	"golang.org/x/sys/unix"
)

// CommitHints returns a channel that receives, coalesced, whenever the
// database file or its write-ahead log is written by anyone — this process
// included — as the kernel reports it (inotify on the database's folder, so a
// log that is deleted and made again is still seen). A hint is only a hint:
// the commit it announces may become visible a moment later (SQLite publishes
// it in the -shm file, which inotify does not see), and DataVersion says
// whether it was someone else's. It lets an idle process wait for writes
// instead of polling for them. On PostgreSQL the hints are its notifications. The channel closes when ctx ends or the watch
// fails; the caller then falls back to polling.
func (s *Store) CommitHints(ctx context.Context) (<-chan struct{}, error) {
	if s.pg != nil {
		return s.notifiedHints(ctx), nil
	}
	dir, base := filepath.Split(s.path)
	fd, err := unix.InotifyInit1(unix.IN_CLOEXEC | unix.IN_NONBLOCK)
	if err != nil {
		return nil, fmt.Errorf("watch %s for commits: %w", s.path, err)
	}
	// A non-blocking inotify descriptor wrapped in an os.File reads through
	// the runtime's poller, so Close from another goroutine ends the Read.
	f := os.NewFile(uintptr(fd), "inotify")
	const mask = unix.IN_MODIFY | unix.IN_CREATE | unix.IN_MOVED_TO | unix.IN_CLOSE_WRITE
	if _, err := unix.InotifyAddWatch(fd, dir, mask); err != nil {
		_ = f.Close()
		return nil, fmt.Errorf("watch %s for commits: %w", dir, err)
	}
	// The write lock's file is closed when a writer of this program ends
	// its transaction, after the commit is visible (IN_CLOSE_WRITE): a
	// hint then needs no later look, however long the log's fsync took.
	names := map[string]bool{base: true, base + "-wal": true, filepath.Base(newFileLock(s.path).path): true}
	hints := make(chan struct{}, 1)
	go func() {
		<-ctx.Done()
		_ = f.Close()
	}()
	go func() {
		defer close(hints)
		buf := make([]byte, 16<<10)
		for {
			n, err := f.Read(buf)
			if err != nil {
				if !errors.Is(err, os.ErrClosed) && ctx.Err() == nil {
					s.log.Warn("commit watch stopped; falling back to polling")
				}
				return
			}
			if touches(buf[:n], names) {
				select {
				case hints <- struct{}{}:
				default: // one pending hint covers any number of writes
				}
			}
		}
	}()
	return hints, nil
}

// touches reports whether a batch of inotify events names one of names (an
// overflowed queue counts: something changed, nobody knows what).
func touches(buf []byte, names map[string]bool) bool {
	for off := 0; off+unix.SizeofInotifyEvent <= len(buf); {
		ev := (*unix.InotifyEvent)(unsafe.Pointer(&buf[off]))
		end := off + unix.SizeofInotifyEvent + int(ev.Len)
		if end > len(buf) {
			return true
		}
		if ev.Mask&unix.IN_Q_OVERFLOW != 0 {
			return true
		}
		name := buf[off+unix.SizeofInotifyEvent : end]
		for i, c := range name {
			if c == 0 {
				name = name[:i]
				break
			}
		}
		if names[string(name)] {
			return true
		}
		off = end
	}
	return false
}
