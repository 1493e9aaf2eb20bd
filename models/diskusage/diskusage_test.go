package diskusage

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"testing"
)

func writeBlocks(t *testing.T, path string, n int) {
	t.Helper()
	b := make([]byte, n)
	for i := range b {
		b[i] = byte(i*7 + 1)
	}
	if err := os.WriteFile(path, b, 0o600); err != nil {
		t.Fatal(err)
	}
}

// DirSize counts allocated blocks (a sparse file its few, a hard-linked file
// once), does not follow symlinks, and stops early past a limit.
func TestDirSize_CountsBlocksOnceAndStopsAtTheLimit(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	if err := os.MkdirAll(filepath.Join(dir, "a", "b"), 0o700); err != nil {
		t.Fatal(err)
	}
	writeBlocks(t, filepath.Join(dir, "a", "b", "one"), 1<<20)
	if err := os.Link(filepath.Join(dir, "a", "b", "one"), filepath.Join(dir, "a", "twin")); err != nil {
		t.Fatal(err)
	}
	sparse, err := os.Create(filepath.Join(dir, "sparse"))
	if err != nil {
		t.Fatal(err)
	}
	if err := sparse.Truncate(1 << 30); err != nil {
		t.Fatal(err)
	}
	sparse.Close()
	outside := t.TempDir()
	writeBlocks(t, filepath.Join(outside, "big"), 4<<20)
	if err := os.Symlink(outside, filepath.Join(dir, "link")); err != nil {
		t.Fatal(err)
	}

	n, err := DirSize(ctx, dir, 0)
	if err != nil {
		t.Fatal(err)
	}
	if n < 1<<20 || n > 1<<20+256<<10 {
		t.Fatalf("DirSize = %d, want about 1 MiB (the linked file once; no sparse hole, nothing behind the symlink)", n)
	}
	if got, err := DirSize(ctx, dir, 512<<10); !errors.Is(err, ErrOverLimit) || got <= 512<<10 {
		t.Fatalf("DirSize with a 512 KiB limit = %d, %v; want ErrOverLimit past the limit", got, err)
	}
	if _, err := DirSize(ctx, filepath.Join(dir, "missing"), 0); err == nil {
		t.Fatal("DirSize of a missing directory: no error")
	}
}

func TestFree_ReportsTheVolume(t *testing.T) {
	dir := t.TempDir()
	free, err := Free(dir)
	if err != nil || free == 0 {
		t.Fatalf("Free(%s) = %d, %v", dir, free, err)
	}
	if _, err := Free(filepath.Join(dir, "missing")); err == nil {
		t.Fatal("Free of a missing path: no error")
	}
}
