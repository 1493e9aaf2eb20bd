package models

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"strconv"
	"syscall"
	"testing"
	"time"

	"gorm.io/gorm"
)

// A child forked while a write holds the lock (a controller starting git)
// carries a copy of the lock's descriptor until it execs. Giving the lock
// back must not wait for that copy to go: the next writer — another
// process, or this one's task_worker insert — gets the lock the moment the
// write ends. The copy is made here with dup, as fork makes it.
func TestWriteLock_ReleasedWhileAForkedCopyOfItsDescriptorLives(t *testing.T) {
	ctx := context.Background()
	s, err := Open(ctx, filepath.Join(t.TempDir(), "fork.db"), Options{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = s.Close() })
	lockPath := s.Path() + ".writelock"

	var copies []int
	writeTxHook = func(*gorm.DB) {
		fd, err := openDescriptorOf(lockPath)
		if err != nil {
			t.Errorf("find the write lock's descriptor: %v", err)
			return
		}
		dup, err := syscall.Dup(fd)
		if err != nil {
			t.Errorf("dup: %v", err)
			return
		}
		copies = append(copies, dup)
	}
	t.Cleanup(func() { writeTxHook = nil })
	for i := range 2 {
		mustCreateTask(t, s, newTask("p"+strconv.Itoa(i)))
		if len(copies) != i+1 {
			t.Fatalf("write %d: no copy of the lock's descriptor made", i)
		}
		// Another process's writer: its own open file description.
		other, err := syscall.Open(lockPath, syscall.O_RDWR|syscall.O_CLOEXEC, 0)
		if err != nil {
			t.Fatal(err)
		}
		err = syscall.Flock(other, syscall.LOCK_EX|syscall.LOCK_NB)
		if err == nil {
			_ = syscall.Flock(other, syscall.LOCK_UN)
		}
		_ = syscall.Close(other)
		if err != nil {
			t.Fatalf("write %d: the lock is still held after the write returned (a copy of its descriptor lives): %v", i, err)
		}
	}
	for _, fd := range copies {
		_ = syscall.Close(fd)
	}
}

// A writer whose context ends while another holds the lock gives up, and
// its abandoned wait never leaves the lock held: the next writer gets it once
// the holder lets go.
func TestWriteLock_AbandonedWaitDoesNotKeepTheLock(t *testing.T) {
	path := filepath.Join(t.TempDir(), "db")
	holder, mine := newFileLock(path), newFileLock(path)
	release, err := holder.lock(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	short, cancel := context.WithTimeout(context.Background(), 20*time.Millisecond)
	defer cancel()
	if _, err := mine.lock(short); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("lock while held elsewhere: %v, want the deadline", err)
	}
	got := make(chan error, 1)
	go func() {
		unlock, err := mine.lock(context.Background())
		if err == nil {
			unlock()
			unlock() // a second call does nothing
		}
		got <- err
	}()
	select {
	case err := <-got:
		t.Fatalf("lock returned %v while the holder still holds it", err)
	case <-time.After(20 * time.Millisecond):
	}
	release()
	select {
	case err := <-got:
		if err != nil {
			t.Fatal(err)
		}
	case <-time.After(time.Minute):
		t.Fatal("the next writer never got the lock")
	}
	for _, l := range []*fileLock{holder, mine, holder} {
		unlock, err := l.lock(context.Background())
		if err != nil {
			t.Fatal(err)
		}
		unlock()
	}
}

// openDescriptorOf returns a descriptor of this process open on path.
func openDescriptorOf(path string) (int, error) {
	entries, err := os.ReadDir("/proc/self/fd")
	if err != nil {
		return -1, err
	}
	for _, e := range entries {
		target, err := os.Readlink(filepath.Join("/proc/self/fd", e.Name()))
		if err != nil || target != path {
			continue
		}
		return strconv.Atoi(e.Name())
	}
	return -1, os.ErrNotExist
}
