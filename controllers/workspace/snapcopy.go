package workspace

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path"
	"sync"
	"sync/atomic"
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
func (c *treeCopier) copyAll(paths []string) ([]bool, error) {
	copied := make([]bool, len(paths))
	var (
		next   atomic.Int64
		failed atomic.Bool
		wg     sync.WaitGroup
		errMu  sync.Mutex
		first  error
	)
	for range min(copyWorkers, (len(paths)+copyChunk-1)/copyChunk) {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for !failed.Load() {
				lo := int(next.Add(copyChunk)) - copyChunk
				if lo >= len(paths) {
					return
				}
				for i := lo; i < min(lo+copyChunk, len(paths)); i++ {
					ok, err := c.copyOne(paths[i])
					if err != nil {
						errMu.Lock()
						if first == nil {
							first = fmt.Errorf("copy %s: %w", paths[i], err)
						}
						errMu.Unlock()
						failed.Store(true)
						return
					}
					copied[i] = ok
				}
			}
		}()
	}
	wg.Wait()
	return copied, first
}

// copyOne is copyEntry with the folders' checks and creations shared.
func (c *treeCopier) copyOne(rel string) (bool, error) {
	if !fs.ValidPath(rel) || rel == "." {
		return false, fmt.Errorf("%q: %w", rel, fs.ErrInvalid)
	}
	dir := path.Dir(rel)
	if ok, err := c.sourceDir(dir); err != nil || !ok {
		return false, err // not really inside the work folder, or gone
	}
	fi, err := c.from.Lstat(rel)
	if errors.Is(err, fs.ErrNotExist) {
		return false, nil // deleted in the work folder
	}
	if err != nil {
		return false, err
	}
	isLink := fi.Mode()&fs.ModeSymlink != 0
	if !isLink && !fi.Mode().IsRegular() {
		return false, nil
	}
	if err := c.copyDir(dir); err != nil {
		return false, err
	}
	if isLink {
		target, err := c.from.Readlink(rel)
		if err != nil {
			return false, err
		}
		return true, c.to.Symlink(target, rel)
	}
	perm := fs.FileMode(0o644)
	if fi.Mode()&0o111 != 0 {
		perm = 0o755
	}
	return true, copyRegular(c.from, c.to, rel, perm)
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
