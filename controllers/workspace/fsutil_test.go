package workspace

import (
	"io/fs"
	"maps"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"
)

// A file that became a FIFO between the listing's lstat and the copy's open
// is refused at once; opening it for reading would wait for a writer for ever.
func TestCopyRegular_RefusesAFIFOWithoutWaiting(t *testing.T) {
	srcDir, dstDir := t.TempDir(), t.TempDir()
	if err := syscall.Mkfifo(filepath.Join(srcDir, "was-a-file"), 0o644); err != nil {
		t.Fatal(err)
	}
	src, err := os.OpenRoot(srcDir)
	if err != nil {
		t.Fatal(err)
	}
	defer src.Close()
	dst, err := os.OpenRoot(dstDir)
	if err != nil {
		t.Fatal(err)
	}
	defer dst.Close()
	done := make(chan error, 1)
	go func() { done <- copyRegular(src, dst, "was-a-file", 0o644) }()
	select {
	case err := <-done:
		if err == nil || !strings.Contains(err.Error(), "no longer a regular file") {
			t.Fatalf("copy of a FIFO = %v, want it refused", err)
		}
	case <-time.After(10 * time.Second):
		// Unblock the open so the goroutine ends, then fail.
		if f, err := os.OpenFile(filepath.Join(srcDir, "was-a-file"), os.O_WRONLY, 0); err == nil {
			f.Close()
		}
		t.Fatal("copying a FIFO waited for a writer")
	}
}

// readDir lists what os.ReadDir lists, with the same types, through a root.
func TestReadDir_MatchesOSReadDir(t *testing.T) {
	dir := t.TempDir()
	writeFile(t, filepath.Join(dir, "sub", "file"), "x", 0o644)
	writeFile(t, filepath.Join(dir, "sub", "exec"), "x", 0o755)
	if err := os.Symlink("file", filepath.Join(dir, "sub", "link")); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink(t.TempDir(), filepath.Join(dir, "sub", "out")); err != nil {
		t.Fatal(err)
	}
	if err := os.Mkdir(filepath.Join(dir, "sub", "d"), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := syscall.Mkfifo(filepath.Join(dir, "sub", "pipe"), 0o644); err != nil {
		t.Fatal(err)
	}
	root, err := os.OpenRoot(dir)
	if err != nil {
		t.Fatal(err)
	}
	defer root.Close()
	got, err := readDir(root, "sub")
	if err != nil {
		t.Fatal(err)
	}
	want, err := os.ReadDir(filepath.Join(dir, "sub"))
	if err != nil {
		t.Fatal(err)
	}
	types := func(es []fs.DirEntry) map[string]fs.FileMode {
		m := map[string]fs.FileMode{}
		for _, e := range es {
			m[e.Name()] = e.Type()
		}
		return m
	}
	if g, w := types(got), types(want); !maps.Equal(g, w) || len(g) != 6 {
		t.Fatalf("readDir = %v, want %v", g, w)
	}
	// A symlink out of the root is not followed.
	if _, err := readDir(root, "sub/out"); err == nil {
		t.Fatal("readDir followed a symlink out of its root")
	}
}
