package workspace

import (
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
