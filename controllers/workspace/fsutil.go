package workspace

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path"
	"path/filepath"
	"strings"
)

// isGitName reports whether a path component would be taken for a git directory by
// some git: ".git" in any case, with the trailing dots or spaces Windows ignores,
// or its 8.3 short name. git refuses to record such paths, and we refuse to copy,
// stage or apply them.
func isGitName(name string) bool {
	return strings.EqualFold(strings.TrimRight(name, ". "), ".git") || strings.EqualFold(name, "git~1")
}

// hasGitComponent reports whether any component of a slash-separated path is a git
// directory name.
func hasGitComponent(p string) bool {
	for _, c := range strings.Split(p, "/") {
		if isGitName(c) {
			return true
		}
	}
	return false
}

var errBeyondSymlink = errors.New("path is beyond a symbolic link or a non-directory")

// lstatInTree describes rel inside root without following a symlink at any
// component: every parent must be a real directory. os.Root alone would follow a
// symlink that stays inside the tree, which would let a/b be read through a link a.
func lstatInTree(root *os.Root, rel string) (fs.FileInfo, error) {
	if !fs.ValidPath(rel) || rel == "." {
		return nil, fmt.Errorf("%q: %w", rel, fs.ErrInvalid)
	}
	parts := strings.Split(rel, "/")
	for i := 1; i < len(parts); i++ {
		fi, err := root.Lstat(strings.Join(parts[:i], "/"))
		if err != nil {
			return nil, err
		}
		if !fi.IsDir() {
			return nil, fmt.Errorf("%q: %w", rel, errBeyondSymlink)
		}
	}
	return root.Lstat(rel)
}

// copyEntry copies one file or symlink from src to dst at the same relative path.
// Symlinks are recreated, never followed; regular files get git's two modes. Any
// other kind of entry (directory, socket, device) is skipped. It reports whether
// something was copied.
func copyEntry(src, dst *os.Root, rel string) (bool, error) {
	fi, err := lstatInTree(src, rel)
	if err != nil {
		if errors.Is(err, fs.ErrNotExist) || errors.Is(err, errBeyondSymlink) {
			return false, nil // deleted in the work folder, or not really inside it
		}
		return false, err
	}
	if dir := path.Dir(rel); dir != "." {
		if err := dst.MkdirAll(dir, 0o755); err != nil {
			return false, err
		}
	}
	switch {
	case fi.Mode()&fs.ModeSymlink != 0:
		target, err := src.Readlink(rel)
		if err != nil {
			return false, err
		}
		return true, dst.Symlink(target, rel)
	case fi.Mode().IsRegular():
		perm := fs.FileMode(0o644)
		if fi.Mode()&0o111 != 0 {
			perm = 0o755
		}
		return true, copyRegular(src, dst, rel, perm)
	default:
		return false, nil
	}
}

func copyRegular(src, dst *os.Root, rel string, perm fs.FileMode) error {
	return copyTo(src, dst, rel, rel, perm)
}

// chownTree hands a tree to uid:gid without following symlinks. Negative ids are left
// unchanged, as os.Lchown does.
func chownTree(dir string, uid, gid int) error {
	if uid < 0 && gid < 0 {
		return nil
	}
	return filepath.WalkDir(dir, func(p string, _ fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		return os.Lchown(p, uid, gid)
	})
}

// removeTree deletes dir and everything below it. Files of other users are no
// obstacle when running as root; read-only directories an agent left behind are made
// writable first when running unprivileged. The chmod re-checks with lstat that the
// entry is still a directory: the container is stopped before a workspace is removed,
// so nothing can swap in a symlink between the check and the chmod.
func removeTree(dir string) error {
	err := os.RemoveAll(dir)
	if err == nil {
		return nil
	}
	for range 2 {
		_ = filepath.WalkDir(dir, func(p string, d fs.DirEntry, _ error) error {
			if d != nil && d.IsDir() {
				if fi, err := os.Lstat(p); err == nil && fi.IsDir() && fi.Mode().Perm()&0o700 != 0o700 {
					_ = os.Chmod(p, fi.Mode().Perm()|0o700)
				}
			}
			return nil
		})
		if err = os.RemoveAll(dir); err == nil {
			return nil
		}
	}
	return fmt.Errorf("remove %s: %w", dir, err)
}

// isWithin reports whether p is dir or below it (both absolute and clean).
func isWithin(p, dir string) bool {
	if p == dir {
		return true
	}
	rel, err := filepath.Rel(dir, p)
	return err == nil && rel != ".." && !strings.HasPrefix(rel, "../") && !filepath.IsAbs(rel)
}

// writeFileAtomic replaces path with data: written to a temporary file beside
// it, synced, then renamed over it, so a crash leaves the old file or the new
// one, never a truncated one.
func writeFileAtomic(path string, data []byte, perm fs.FileMode) error {
	tmp := path + ".tmp-" + randomSuffix()
	f, err := os.OpenFile(tmp, os.O_WRONLY|os.O_CREATE|os.O_EXCL, perm)
	if err != nil {
		return err
	}
	_, err = f.Write(data)
	if err == nil {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = os.Rename(tmp, path)
	}
	if err != nil {
		_ = os.Remove(tmp)
		return fmt.Errorf("write %s: %w", path, err)
	}
	return nil
}
