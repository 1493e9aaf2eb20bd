package models

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// corruptMiddlePages writes a store with enough tasks to span many pages,
// closes it (checkpointing the WAL into the file) and scribbles over pages in
// the middle of the file, leaving page 1 (header and schema) intact, so the
// file opens and only a query that reaches those pages would notice.
func corruptMiddlePages(t *testing.T) string {
	t.Helper()
	ctx := context.Background()
	path := filepath.Join(t.TempDir(), "cp.db")
	s, err := Open(ctx, path, Options{})
	if err != nil {
		t.Fatal(err)
	}
	for i := range 200 {
		mustCreateTask(t, s, newTask(fmt.Sprintf("task %d %s", i, strings.Repeat("x", 500))))
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	const page = 4096
	pages := len(data) / page
	if pages < 20 {
		t.Fatalf("database has only %d pages", pages)
	}
	for p := pages / 3; p < pages*2/3; p++ {
		for i := p * page; i < (p+1)*page; i++ {
			data[i] = 0xA5
		}
	}
	if err := os.WriteFile(path, data, 0o600); err != nil {
		t.Fatal(err)
	}
	return path
}

// Damage in the middle of the file is found by QuickCheck (what serve runs at
// start) and CheckFile (what doctor runs), with the path and what to do.
func TestQuickCheck_FindsDamagedMiddlePages(t *testing.T) {
	ctx := context.Background()
	path := corruptMiddlePages(t)
	check := func(what string, err error) {
		t.Helper()
		if !errors.Is(err, ErrCorrupt) || !strings.Contains(err.Error(), path) || !strings.Contains(err.Error(), "restore") {
			t.Fatalf("%s: err = %v, want ErrCorrupt naming %s and saying to restore it", what, err, path)
		}
	}
	check("CheckFile", CheckFile(ctx, path))
	s, err := Open(ctx, path, Options{})
	if err != nil {
		check("Open", err) // damage the migration met is just as clear
		return
	}
	defer s.Close()
	check("QuickCheck", s.QuickCheck(ctx))
}

func TestQuickCheck_HealthyAndMissingFilesPass(t *testing.T) {
	ctx := context.Background()
	s := newTestStore(t)
	mustCreateTask(t, s, newTask("p"))
	if err := s.QuickCheck(ctx); err != nil {
		t.Fatalf("healthy store: %v", err)
	}
	if err := CheckFile(ctx, s.Path()); err != nil {
		t.Fatalf("healthy file: %v", err)
	}
	if err := CheckFile(ctx, filepath.Join(t.TempDir(), "none.db")); err != nil {
		t.Fatalf("missing file: %v", err)
	}
}
