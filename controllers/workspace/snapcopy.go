package workspace

import (
	"crypto/sha1"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path"
	"sync"
	"sync/atomic"
	"syscall"
)

// copyWorkers is how many files a snapshot copies at once. Copying small
// files is mostly waiting on the file system (opens, creates, metadata), so a
// few more than the cores keep it busy; beyond that, two cores gain nothing.
const copyWorkers = 6

// copyChunk is how many consecutive paths (mostly of one folder, as listings
// are sorted) a worker takes at a time.
const copyChunk = 128

// treeCopier copies files and symlinks from one tree into another at the same
// relative paths, as copyEntry does, but made for many files: each folder of
// the source is checked once (that it is a real directory, not a symlink, at
// every level) and each folder of the copy made once, and several files are
// copied at once.
type treeCopier struct {
	from, to *os.Root
	mu       sync.Mutex
	srcDirs  map[string]bool // source folders checked: true if a real directory all the way down
	dstDirs  map[string]bool // folders made in the copy
}

func newTreeCopier(from, to *os.Root) *treeCopier {
	return &treeCopier{from: from, to: to, srcDirs: map[string]bool{".": true}, dstDirs: map[string]bool{".": true}}
}

// copyAll copies paths and reports, for each, whether something was copied
// (an entry gone from the source, beyond a symlink, or neither a file nor a
// symlink is not).
func (c *treeCopier) copyAll(paths []string) ([]copiedEntry, error) {
	copied := make([]copiedEntry, len(paths))
	var (
		next atomic.Int64
		wg   sync.WaitGroup
		fail copyFailure
	)
	for range min(copyWorkers, (len(paths)+copyChunk-1)/copyChunk) {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for !fail.failed.Load() {
				lo := int(next.Add(copyChunk)) - copyChunk
				if lo >= len(paths) {
					return
				}
				for i := lo; i < min(lo+copyChunk, len(paths)); i++ {
					e, err := c.copyOne(paths[i])
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

// copyFailure is the first error of the copy workers; once it is set, the
// others stop at their next range.
type copyFailure struct {
	failed atomic.Bool
	mu     sync.Mutex
	first  error
}

func (f *copyFailure) set(path string, err error) {
	f.mu.Lock()
	if f.first == nil {
		f.first = fmt.Errorf("copy %s: %w", path, err)
	}
	f.mu.Unlock()
	f.failed.Store(true)
}

// copiedEntry is what copyOne made of one path: nothing (ok false), or a
// file or symlink whose blob id and stat data (as copied) are known, enough
// for an index entry that git will find up to date.
type copiedEntry struct {
	ok   bool
	mode uint32 // git's: 0100644, 0100755, 0120000
	oid  [sha1.Size]byte
	st   syscall.Stat_t
	// src is the source's stat data, read before its contents: a base for
	// copy-on-write workspaces keeps it (source.index) so that a later task
	// finds what changed in the source since by stat data, as git status would.
	src syscall.Stat_t
}

// copyOne is copyEntry with the folders' checks and creations shared; it also
// hashes what it copies as git would a blob (no attributes applied).
func (c *treeCopier) copyOne(rel string) (copiedEntry, error) {
	var e copiedEntry
	if !fs.ValidPath(rel) || rel == "." {
		return e, fmt.Errorf("%q: %w", rel, fs.ErrInvalid)
	}
	dir := path.Dir(rel)
	if ok, err := c.sourceDir(dir); err != nil || !ok {
		return e, err // not really inside the work folder, or gone
	}
	fi, err := c.from.Lstat(rel)
	if errors.Is(err, fs.ErrNotExist) {
		return e, nil // deleted in the work folder
	}
	if err != nil {
		return e, err
	}
	isLink := fi.Mode()&fs.ModeSymlink != 0
	if !isLink && !fi.Mode().IsRegular() {
		return e, nil
	}
	if err := c.copyDir(dir); err != nil {
		return e, err
	}
	if isLink {
		target, err := c.from.Readlink(rel)
		if err != nil {
			return e, err
		}
		if err := c.to.Symlink(target, rel); err != nil {
			return e, err
		}
		lfi, err := c.to.Lstat(rel)
		if err != nil {
			return e, err
		}
		st, ok := lfi.Sys().(*syscall.Stat_t)
		if !ok {
			return e, fmt.Errorf("%s: no stat data", rel)
		}
		e = copiedEntry{ok: true, mode: 0o120000, oid: gitBlobID([]byte(target)), st: *st}
		e.setSource(fi)
		return e, nil
	}
	perm := fs.FileMode(0o644)
	e.mode = 0o100644
	if fi.Mode()&0o111 != 0 {
		perm, e.mode = 0o755, 0o100755
	}
	e.oid, e.st, err = copyRegularHashed(c.from, c.to, rel, perm)
	e.ok = err == nil
	e.setSource(fi)
	return e, err
}

// setSource keeps the source's stat data of the entry.
func (e *copiedEntry) setSource(fi fs.FileInfo) {
	if st, ok := fi.Sys().(*syscall.Stat_t); ok {
		e.src = *st
	}
}

// gitBlobID is the id git gives a blob of these contents.
func gitBlobID(b []byte) [sha1.Size]byte {
	h := sha1.New()
	fmt.Fprintf(h, "blob %d\x00", len(b))
	h.Write(b)
	var id [sha1.Size]byte
	h.Sum(id[:0])
	return id
}

// copyRegularHashed is copyRegular that also returns the blob id of what it
// copied (zero if the file changed size while copied: git then hashes it) and
// the stat data of the copy once written.
func copyRegularHashed(src, dst *os.Root, rel string, perm fs.FileMode) (id [sha1.Size]byte, st syscall.Stat_t, err error) {
	in, err := src.OpenFile(rel, os.O_RDONLY|syscall.O_NOFOLLOW|syscall.O_NONBLOCK, 0)
	if err != nil {
		return id, st, err
	}
	defer in.Close()
	sfi, err := in.Stat()
	if err != nil || !sfi.Mode().IsRegular() {
		return id, st, fmt.Errorf("%s: no longer a regular file", rel)
	}
	out, err := dst.OpenFile(rel, os.O_WRONLY|os.O_CREATE|os.O_EXCL|syscall.O_NOFOLLOW, perm)
	if err != nil {
		return id, st, err
	}
	defer func() {
		if cerr := out.Close(); err == nil {
			err = cerr
		}
	}()
	h := sha1.New()
	fmt.Fprintf(h, "blob %d\x00", sfi.Size())
	n, err := io.Copy(io.MultiWriter(out, h), in)
	if err != nil {
		return id, st, err
	}
	if err := out.Chmod(perm); err != nil { // the umask must not decide the mode git records
		return id, st, err
	}
	if err := syscall.Fstat(int(out.Fd()), &st); err != nil {
		return id, st, err
	}
	if n == sfi.Size() {
		h.Sum(id[:0])
	}
	return id, st, nil
}

// sourceDir reports whether dir is a real directory of the source, with no
// symlink (or file) at any level, as lstatInTree requires of a path's parents.
func (c *treeCopier) sourceDir(dir string) (bool, error) {
	c.mu.Lock()
	ok, seen := c.srcDirs[dir]
	c.mu.Unlock()
	if seen {
		return ok, nil
	}
	ok, err := c.sourceDir(path.Dir(dir))
	if err != nil {
		return false, err
	}
	if ok {
		fi, err := c.from.Lstat(dir)
		switch {
		case errors.Is(err, fs.ErrNotExist):
			ok = false
		case err != nil:
			return false, err
		default:
			ok = fi.IsDir()
		}
	}
	c.mu.Lock()
	c.srcDirs[dir] = ok
	c.mu.Unlock()
	return ok, nil
}

// copyDir makes dir (and its parents) in the copy, once.
func (c *treeCopier) copyDir(dir string) error {
	c.mu.Lock()
	made := c.dstDirs[dir]
	c.mu.Unlock()
	if made {
		return nil
	}
	if err := c.copyDir(path.Dir(dir)); err != nil {
		return err
	}
	if err := c.to.Mkdir(dir, 0o755); err != nil && !errors.Is(err, fs.ErrExist) {
		return err
	}
	c.mu.Lock()
	c.dstDirs[dir] = true
	c.mu.Unlock()
	return nil
}
