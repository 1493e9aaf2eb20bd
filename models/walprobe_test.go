package models

import (
	"context"
	"fmt"
	"testing"
	"time"
)

// The probe may spare DataVersion its SQLite call only while nobody wrote:
// every commit by another store, looked at right after it, must still count,
// and quiet looks must be answered from the -shm header alone.
func TestDataVersion_ProbeSkipsQuietLooksAndMissesNoCommit(t *testing.T) {
	ctx := context.Background()
	s := newSQLiteTestStore(t)
	other, err := Open(ctx, s.Path(), Options{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { other.Close() })
	version := func() int64 {
		t.Helper()
		v, err := s.DataVersion(ctx)
		if err != nil {
			t.Fatal(err)
		}
		return v
	}
	last := version()
	for i := range 50 {
		mustCreateTask(t, other, newTask(fmt.Sprint("other ", i)))
		v := version()
		if v == last {
			t.Fatalf("commit %d by another store not seen by the look right after it", i)
		}
		last = v
		// Quiet looks: answered by the probe, not by SQLite.
		s.versionMu.Lock()
		before := s.walProbe.streak
		s.versionMu.Unlock()
		for range 3 {
			if v := version(); v != last {
				t.Fatalf("version moved without a write: %d -> %d", last, v)
			}
		}
		s.versionMu.Lock()
		after := s.walProbe.streak
		s.versionMu.Unlock()
		if after-before != 3 {
			t.Fatalf("quiet looks asked SQLite (probe streak %d -> %d, want +3)", before, after)
		}
		// This store's own write is still not news, and the look after it
		// needs no SQLite call either (the write recorded the header).
		mustCreateTask(t, s, newTask(fmt.Sprint("own ", i)))
		if v := version(); v != last {
			t.Fatalf("own write counted as news: %d -> %d", last, v)
		}
	}
}

// A look the probe answers alone is re-checked with SQLite every
// walVerifyEvery looks, so a case the probe does not foresee costs a delay,
// never a lost change.
func TestWALProbe_VerifiesWithSQLitePeriodically(t *testing.T) {
	p := &walProbe{}
	var h [walIndexHeaderSize]byte
	p.record(h, true)
	n := 0
	for p.unchanged(h, true) {
		n++
		if n > 1000 {
			t.Fatal("the probe never asks SQLite")
		}
	}
	if n != walVerifyEvery {
		t.Fatalf("asked SQLite after %d quiet looks, want %d", n, walVerifyEvery)
	}
	if p.unchanged(h, false) {
		t.Fatal("an unreadable header counted as unchanged")
	}
}

// Another store's commit is announced on CommitHints; a quiet database
// announces nothing.
func TestCommitHints_AnnounceOthersWrites(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	s := newSQLiteTestStore(t)
	hints, err := s.CommitHints(ctx)
	if err != nil {
		t.Fatal(err)
	}
	select {
	case <-hints:
		t.Fatal("a hint while nobody wrote")
	case <-time.After(100 * time.Millisecond):
	}
	other, err := Open(ctx, s.Path(), Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer other.Close()
	// Opening may write (it migrates nothing here, but SQLite may touch
	// the log): drain what it caused, then write.
	drain := time.After(100 * time.Millisecond)
	for done := false; !done; {
		select {
		case <-hints:
		case <-drain:
			done = true
		}
	}
	mustCreateTask(t, other, newTask("announced"))
	select {
	case <-hints:
	case <-time.After(10 * time.Second):
		t.Fatal("no hint after another store's commit")
	}
	cancel()
	for range hints { // closes when ctx ends
	}
}

// A writer of this program releasing the write lock (closing <db>.writelock
// after its commit is visible) is a hint of its own: the watcher's look at
// it sees the commit however long the log's fsync delayed its publication.
func TestCommitHints_WriteLockReleaseHints(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	s := newSQLiteTestStore(t)
	hints, err := s.CommitHints(ctx)
	if err != nil {
		t.Fatal(err)
	}
	lock := newFileLock(s.Path())
	unlock, err := lock.lock(ctx) // creating the file may hint: drain it
	if err != nil {
		t.Fatal(err)
	}
	drain := time.After(100 * time.Millisecond)
	for done := false; !done; {
		select {
		case <-hints:
		case <-drain:
			done = true
		}
	}
	unlock()
	select {
	case <-hints:
	case <-time.After(10 * time.Second):
		t.Fatal("no hint when the write lock was released")
	}
}
