package workspace

import (
	"bytes"
	"crypto/sha1"
	"errors"
	"fmt"
	"hash"
	"os"
	"path"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"unsafe"

	"golang.org/x/sys/unix"
)

// The snapshot's copy on Linux: the same result as treeCopier.copyOne for
// each path, with a tenth of the system calls and none of os's per-call work.
// At 300,000 small files the copy through os.Root took 2.5x the CPU of
// `cp -a`: every Lstat and OpenFile opened and closed the file's folder again
// (os.Root resolves each path component by component), every os.File was
// registered with the poller, and io.Copy allocated 32 KB per file. Here each
// worker keeps its current folder open on both sides (the source's opened
// component by component with O_NOFOLLOW, so no symlink is followed at any
// level, as lstatInTree requires), and a file is fstatat, openat, fstat,
// openat(O_CREAT), read, write, fstat, close, close: about what cp does.

// fastCopier is a treeCopier (for symlinks, which are rare) plus the open
// top folders of both trees.
type fastCopier struct {
	*treeCopier
	srcTop, dstTop int
	dstPath        string
	skipChmod      bool // the umask cannot take a bit off 0o644 or 0o755
}

// copyTree copies paths from the tree at srcDir into the tree at dstDir (see
// copyAll), with from and to the same trees as roots.
func copyTree(from, to *os.Root, srcDir, dstDir string, paths []string) ([]copiedEntry, error) {
	srcTop, err := syscall.Open(srcDir, syscall.O_RDONLY|syscall.O_DIRECTORY|syscall.O_CLOEXEC, 0)
	if err != nil {
		return nil, &os.PathError{Op: "open", Path: srcDir, Err: err}
	}
	defer syscall.Close(srcTop)
	dstTop, err := syscall.Open(dstDir, syscall.O_RDONLY|syscall.O_DIRECTORY|syscall.O_CLOEXEC|syscall.O_NOFOLLOW, 0)
	if err != nil {
		return nil, &os.PathError{Op: "open", Path: dstDir, Err: err}
	}
	defer syscall.Close(dstTop)
	c := &fastCopier{treeCopier: newTreeCopier(from, to), srcTop: srcTop, dstTop: dstTop, dstPath: dstDir}
	if m, ok := processUmask(); ok && m&0o755 == 0 {
		c.skipChmod = true
	}
	return c.copyAll(paths)
}

// copyChunks splits paths (sorted, so a folder's files are together) into
// runs of about copyChunk paths that end at a folder's end, up to 8 chunks
// long: two workers creating files in one folder wait on its lock in the
// kernel, spinning.
func copyChunks(paths []string) []int {
	var ends []int
	start := 0
	for i := 1; i <= len(paths); i++ {
		n := i - start
		if i == len(paths) || n >= 8*copyChunk || n >= copyChunk && path.Dir(paths[i]) != path.Dir(paths[i-1]) {
			ends = append(ends, i)
			start = i
		}
	}
	return ends
}

func (c *fastCopier) copyAll(paths []string) ([]copiedEntry, error) {
	copied := make([]copiedEntry, len(paths))
	ends := copyChunks(paths)
	var (
		next atomic.Int64
		wg   sync.WaitGroup
		fail copyFailure
	)
	for range min(copyWorkers, len(ends)) {
		wg.Add(1)
		go func() {
			defer wg.Done()
			w := &copyWorker{c: c, src: -1, dst: -1, h: sha1.New(), buf: make([]byte, 64<<10)}
			defer w.closeDir()
			for !fail.failed.Load() {
				k := int(next.Add(1)) - 1
				if k >= len(ends) {
					return
				}
				lo := 0
				if k > 0 {
					lo = ends[k-1]
				}
				for i := lo; i < ends[k]; i++ {
					e, err := w.copyOne(paths[i])
					if err != nil {
						fail.set(paths[i], err)
						return
					}
					copied[i] = e
				}
			}
		}()
	}
	wg.Wait()
	return copied, fail.first
}

// copyWorker is one worker's state: the folder it copies in, open on both
// sides (src -1 when the source's is not a real folder all the way down, dst
// -1 until a file is written there), a hash and a buffer.
type copyWorker struct {
	c        *fastCopier
	dir      string
	dirValid bool
	src, dst int
	h        hash.Hash
	buf      []byte
	hdr      []byte
}

func (w *copyWorker) closeDir() {
	for _, fd := range []*int{&w.src, &w.dst} {
		if *fd >= 0 {
			syscall.Close(*fd)
			*fd = -1
		}
	}
	w.dirValid = false
}

// enter makes dir the worker's folder: it opens the source's, component by
// component without following a symlink; a component gone, a symlink or a
// file leaves the folder's paths uncopied, as sourceDir does.
func (w *copyWorker) enter(dir string) error {
	if w.dirValid && w.dir == dir {
		return nil
	}
	w.closeDir()
	w.dir, w.dirValid = dir, true
	fd, err := syscall.Dup(w.c.srcTop)
	if err != nil {
		return err
	}
	syscall.CloseOnExec(fd)
	if dir != "." {
		for _, name := range strings.Split(dir, "/") {
			next, err := openatRetry(fd, name, syscall.O_RDONLY|syscall.O_DIRECTORY|syscall.O_NOFOLLOW|syscall.O_CLOEXEC, 0)
			syscall.Close(fd)
			switch {
			case errors.Is(err, syscall.ENOENT), errors.Is(err, syscall.ELOOP), errors.Is(err, syscall.ENOTDIR):
				return nil // not really inside the work folder, or gone
			case err != nil:
				return &os.PathError{Op: "open", Path: dir, Err: err}
			}
			fd = next
		}
	}
	w.src = fd
	return nil
}

// dstDir opens the worker's folder in the copy, made (with its parents) if
// it is not there yet.
func (w *copyWorker) dstDir() (int, error) {
	if w.dst >= 0 {
		return w.dst, nil
	}
	if err := w.c.copyDir(w.dir); err != nil {
		return -1, err
	}
	fd, err := openatRetry(w.c.dstTop, w.dir, syscall.O_RDONLY|syscall.O_DIRECTORY|syscall.O_NOFOLLOW|syscall.O_CLOEXEC, 0)
	if err != nil {
		return -1, &os.PathError{Op: "open", Path: w.dir, Err: err}
	}
	w.dst = fd
	return fd, nil
}

func (w *copyWorker) copyOne(rel string) (copiedEntry, error) {
	var e copiedEntry
	if !validCopyPath(rel) {
		return e, fmt.Errorf("%q: %w", rel, os.ErrInvalid)
	}
	dir, name := path.Split(rel)
	dir = strings.TrimSuffix(dir, "/")
	if dir == "" {
		dir = "."
	}
	if err := w.enter(dir); err != nil || w.src < 0 {
		return e, err
	}
	if err := fstatat(w.src, name, &e.src, _AT_SYMLINK_NOFOLLOW); errors.Is(err, syscall.ENOENT) {
		return e, nil // deleted in the work folder
	} else if err != nil {
		return e, &os.PathError{Op: "lstat", Path: rel, Err: err}
	}
	switch e.src.Mode & syscall.S_IFMT {
	case syscall.S_IFLNK:
		return w.copyLink(rel, name, e)
	case syscall.S_IFREG:
	default:
		return copiedEntry{}, nil
	}
	perm := uint32(0o644)
	e.mode = 0o100644
	if e.src.Mode&0o111 != 0 {
		perm, e.mode = 0o755, 0o100755
	}
	in, err := openatRetry(w.src, name, syscall.O_RDONLY|syscall.O_NOFOLLOW|syscall.O_NONBLOCK|syscall.O_CLOEXEC, 0)
	if err != nil {
		return e, &os.PathError{Op: "open", Path: rel, Err: err}
	}
	defer syscall.Close(in)
	var ist syscall.Stat_t
	if err := syscall.Fstat(in, &ist); err != nil || ist.Mode&syscall.S_IFMT != syscall.S_IFREG {
		return e, fmt.Errorf("%s: no longer a regular file", rel)
	}
	dfd, err := w.dstDir()
	if err != nil {
		return e, err
	}
	out, err := openatRetry(dfd, name, syscall.O_WRONLY|syscall.O_CREAT|syscall.O_EXCL|syscall.O_NOFOLLOW|syscall.O_CLOEXEC, perm)
	if err != nil {
		return e, &os.PathError{Op: "create", Path: rel, Err: err}
	}
	e.oid, err = w.copyData(in, out, ist.Size)
	if err == nil && !w.c.skipChmod {
		err = fchmodRetry(out, perm) // the umask must not decide the mode git records
	}
	if err == nil {
		err = syscall.Fstat(out, &e.st)
	}
	if cerr := syscall.Close(out); err == nil {
		err = cerr
	}
	if err != nil {
		return e, &os.PathError{Op: "copy", Path: rel, Err: err}
	}
	e.ok = true
	return e, nil
}

// copyData copies in to out and returns the blob id of what it copied (zero
// if the file was not size bytes long: git then hashes it). A read shorter
// than asked of a regular file is its end, so a small file is one read.
func (w *copyWorker) copyData(in, out int, size int64) (id [sha1.Size]byte, err error) {
	w.h.Reset()
	w.hdr = strconv.AppendInt(append(w.hdr[:0], "blob "...), size, 10)
	w.hdr = append(w.hdr, 0)
	w.h.Write(w.hdr)
	var n int64
	for {
		k, err := syscall.Read(in, w.buf)
		if errors.Is(err, syscall.EINTR) {
			continue
		}
		if err != nil {
			return id, err
		}
		if k == 0 {
			break
		}
		w.h.Write(w.buf[:k])
		if err := writeAll(out, w.buf[:k]); err != nil {
			return id, err
		}
		n += int64(k)
		if k < len(w.buf) && n >= size {
			break
		}
	}
	if n == size {
		w.h.Sum(id[:0])
	}
	return id, nil
}

func writeAll(fd int, b []byte) error {
	for len(b) > 0 {
		k, err := syscall.Write(fd, b)
		if errors.Is(err, syscall.EINTR) {
			continue
		}
		if err != nil {
			return err
		}
		b = b[k:]
	}
	return nil
}

// copyLink copies a symlink, read from the open source folder.
func (w *copyWorker) copyLink(rel, name string, e copiedEntry) (copiedEntry, error) {
	target, err := readlinkat(w.src, name)
	if errors.Is(err, syscall.ENOENT) || errors.Is(err, syscall.EINVAL) {
		return copiedEntry{}, nil // gone, or no longer a symlink
	}
	if err != nil {
		return e, &os.PathError{Op: "readlink", Path: rel, Err: err}
	}
	if _, err := w.dstDir(); err != nil {
		return e, err
	}
	if err := w.c.to.Symlink(target, rel); err != nil {
		return e, err
	}
	lfi, err := w.c.to.Lstat(rel)
	if err != nil {
		return e, err
	}
	st, ok := lfi.Sys().(*syscall.Stat_t)
	if !ok {
		return e, fmt.Errorf("%s: no stat data", rel)
	}
	e.ok, e.mode, e.oid, e.st = true, 0o120000, gitBlobID([]byte(target)), *st
	return e, nil
}

// validCopyPath is fs.ValidPath without "." (a path the listing gave).
func validCopyPath(rel string) bool {
	if rel == "" || rel == "." || rel[0] == '/' || rel[len(rel)-1] == '/' {
		return false
	}
	for _, c := range strings.Split(rel, "/") {
		if c == "" || c == "." || c == ".." {
			return false
		}
	}
	return true
}

const _AT_SYMLINK_NOFOLLOW = unix.AT_SYMLINK_NOFOLLOW

// fstatat is fstatat(2) into a syscall.Stat_t (what the rest of the copy
// reads from os.Lstat too), through x/sys/unix, which has it on every Linux
// architecture; the two Stat_t types are the same kernel struct on each.
func fstatat(dirfd int, name string, st *syscall.Stat_t, flags int) error {
	for {
		err := unix.Fstatat(dirfd, name, (*unix.Stat_t)(unsafe.Pointer(st)), flags)
		if err != unix.EINTR {
			return err
		}
	}
}

func readlinkat(dirfd int, name string) (string, error) {
	for size := 256; ; size *= 2 {
		buf := make([]byte, size)
		n, err := unix.Readlinkat(dirfd, name, buf)
		if err == unix.EINTR {
			size /= 2
			continue
		}
		if err != nil {
			return "", err
		}
		if n < size {
			return string(buf[:n]), nil
		}
	}
}

func openatRetry(dirfd int, name string, flags int, perm uint32) (int, error) {
	for {
		fd, err := syscall.Openat(dirfd, name, flags, perm)
		if err != syscall.EINTR {
			return fd, err
		}
	}
}

func fchmodRetry(fd int, perm uint32) error {
	for {
		if err := syscall.Fchmod(fd, perm); err != syscall.EINTR {
			return err
		}
	}
}

var umaskOnce = sync.OnceValues(func() (uint32, bool) {
	b, err := os.ReadFile("/proc/self/status")
	if err != nil {
		return 0, false
	}
	for _, line := range bytes.Split(b, []byte("\n")) {
		if v, ok := bytes.CutPrefix(line, []byte("Umask:")); ok {
			m, err := strconv.ParseUint(string(bytes.TrimSpace(v)), 8, 32)
			return uint32(m), err == nil
		}
	}
	return 0, false
})

// processUmask is the process's umask as the kernel reports it (Linux 4.7
// and later), read once: nothing in this program changes it.
func processUmask() (uint32, bool) { return umaskOnce() }
