// Package diskusage measures disk space: the bytes free on the volume that
// holds a path, and the bytes a directory tree takes. The controllers use it
// to hold admissions while the volume runs low and to stop a task whose work
// tree grows past its cap; system_status uses it to say a full disk is why
// nothing can be written.
package diskusage

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"path/filepath"
	"syscall"
)

// Free returns the bytes an unprivileged process may still write on the
// volume that holds path.
func Free(path string) (uint64, error) {
	var st syscall.Statfs_t
	if err := syscall.Statfs(path, &st); err != nil {
		return 0, fmt.Errorf("free space of %s: %w", path, err)
	}
	return st.Bavail * uint64(st.Bsize), nil
}

// ErrOverLimit is returned by DirSize when the tree is larger than the limit
// it was given; the walk stops there.
var ErrOverLimit = errors.New("directory tree is larger than the limit")

// DirSize returns the bytes of disk the tree at dir occupies (allocated
// blocks, so sparse files count what they use, and each hard-linked inode
// once). It does not follow symlinks or leave dir's file system. With limit
// > 0 it stops as soon as the total passes limit and returns that partial
// total with ErrOverLimit, so checking a runaway tree stays cheap. Entries
// that vanish during the walk (the tree is live) are skipped.
func DirSize(ctx context.Context, dir string, limit int64) (int64, error) {
	var root syscall.Stat_t
	if err := syscall.Lstat(dir, &root); err != nil {
		return 0, fmt.Errorf("size of %s: %w", dir, err)
	}
	type inode struct{ dev, ino uint64 }
	seen := map[inode]bool{}
	var total int64
	err := filepath.WalkDir(dir, func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			if errors.Is(err, fs.ErrNotExist) {
				return nil
			}
			return err
		}
		if err := ctx.Err(); err != nil {
			return err
		}
		var st syscall.Stat_t
		if err := syscall.Lstat(path, &st); err != nil {
			if errors.Is(err, fs.ErrNotExist) {
				return nil
			}
			return err
		}
		if d.IsDir() && uint64(st.Dev) != uint64(root.Dev) {
			return filepath.SkipDir // a mount inside the tree is another volume
		}
		if st.Nlink > 1 && !d.IsDir() {
			k := inode{uint64(st.Dev), uint64(st.Ino)}
			if seen[k] {
				return nil
			}
			seen[k] = true
		}
		total += int64(st.Blocks) * 512
		if limit > 0 && total > limit {
			return ErrOverLimit
		}
		return nil
	})
	if errors.Is(err, ErrOverLimit) {
		return total, ErrOverLimit
	}
	if err != nil {
		return total, fmt.Errorf("size of %s: %w", dir, err)
	}
	return total, nil
}
