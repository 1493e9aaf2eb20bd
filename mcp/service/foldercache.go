package service

import (
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"syscall"
	"time"
)

// folderChecks remembers work folders resolveRepoDir found good, so a run of
// task_worker calls on the same folder does not walk the path, the allowed
// roots and the repository layout again on every call (about twenty stats
// and a read of .git/config): a hit costs a stat of the folder, of each
// folder up to the work tree's top, of the .git directory and of its config,
// and is taken only when all of them are as they were. Anything that could
// change the answer changes one of them: a path component swapped for a
// symlink elsewhere (the folder's identity), a .git or a bare repository
// made in a folder on the way up (that folder's mtime), the git directory's
// files or layout (its mtime), core.worktree or core.bare (the config's
// mtime and size), a mount (device numbers). An entry also expires after
// folderCheckTTL (an allowed root's own symlink retargeted is seen then) and
// goes with a change of the allowed roots (part of the key). Only the plain layouts fastRepoDirs answers for are remembered. This
// is the front end's check on arrival; the controllers still resolve and
// check the folder through a handle where they use it.
var folderChecks = &folderCheckCache{m: map[folderCheckKey]folderCheck{}}

const (
	folderCheckTTL  = 30 * time.Second
	folderChecksMax = 256
)

type folderCheckKey struct{ path, roots string }

type folderCheck struct {
	real  string
	at    time.Time
	stamp []fileStamp // see stampFolder
}

// fileStamp is what a stat says about a file that a change would move.
type fileStamp struct {
	dev, ino    uint64
	size, mtime int64
	mode        os.FileMode
}

type folderCheckCache struct {
	mu sync.Mutex
	m  map[folderCheckKey]folderCheck
}

func folderKey(p string, roots []string) folderCheckKey {
	return folderCheckKey{path: p, roots: strings.Join(roots, "\x00")}
}

// lookup returns the resolved folder for p when an entry is fresh and the
// file system still matches it.
func (c *folderCheckCache) lookup(p string, roots []string, now time.Time) (string, bool) {
	key := folderKey(p, roots)
	c.mu.Lock()
	e, ok := c.m[key]
	c.mu.Unlock()
	if !ok || now.Sub(e.at) > folderCheckTTL || now.Before(e.at) {
		return "", false
	}
	// The folder as the caller named it (symlinks followed) must still be
	// the one resolved; the rest is the chain stampFolder took.
	self, ok := statStamp(p, true)
	if !ok || len(e.stamp) == 0 || !sameFile(self, e.stamp[0]) {
		return "", false
	}
	if now := stampFolderChain(e.real, e.stamp); !slices.Equal(now, e.stamp) {
		return "", false
	}
	return e.real, true
}

// remember records that p resolved to real with every check passed; stamp is
// stampFolder's (nil: nothing is remembered).
func (c *folderCheckCache) remember(p string, roots []string, real string, stamp []fileStamp, now time.Time) {
	if len(stamp) == 0 {
		return
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if len(c.m) >= folderChecksMax {
		clear(c.m)
	}
	c.m[folderKey(p, roots)] = folderCheck{real: real, at: now, stamp: stamp}
}

// stampFolder stamps the folder real, each folder above it up to the work
// tree's top, the top's .git directory and its config: nil when any of them
// cannot be read.
func stampFolder(real, top string) []fileStamp {
	if !within(real, top) {
		return nil
	}
	var out []fileStamp
	for d := real; ; d = filepath.Dir(d) {
		st, ok := statStamp(d, false)
		if !ok {
			return nil
		}
		out = append(out, st)
		if d == top || d == filepath.Dir(d) {
			break
		}
	}
	for _, f := range []string{filepath.Join(top, ".git"), filepath.Join(top, ".git", "config")} {
		st, ok := statStamp(f, false)
		if !ok {
			return nil
		}
		out = append(out, st)
	}
	return out
}

// stampFolderChain stamps the same files as the entry did: as many folders
// up from real as it had, then the .git directory and config of the last.
func stampFolderChain(real string, was []fileStamp) []fileStamp {
	folders := len(was) - 2
	if folders < 1 {
		return nil
	}
	top := real
	for range folders - 1 {
		top = filepath.Dir(top)
	}
	return stampFolder(real, top)
}

func statStamp(p string, follow bool) (fileStamp, bool) {
	stat := os.Lstat
	if follow {
		stat = os.Stat
	}
	fi, err := stat(p)
	if err != nil {
		return fileStamp{}, false
	}
	st, ok := fi.Sys().(*syscall.Stat_t)
	if !ok {
		return fileStamp{}, false
	}
	return fileStamp{dev: uint64(st.Dev), ino: uint64(st.Ino), size: fi.Size(), mode: fi.Mode(), //nolint:unconvert // widths differ by platform
		mtime: fi.ModTime().UnixNano()}, true
}

func sameFile(a, b fileStamp) bool { return a.dev == b.dev && a.ino == b.ino }
