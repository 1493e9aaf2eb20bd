package service

import (
	"bytes"
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"syscall"
)

// fastRepoDirs finds the repository containing dir (a resolved, absolute
// folder) the way git's discovery does in the plain case — a .git directory
// in dir or in an ancestor on the same file system — by looking at the file
// system only, so task_worker and apply_changes run no git process for it.
// It returns the work tree's top and the git directory (which is also the
// common directory). Anything less plain returns ok false and git decides:
// a .git file or symlink (linked worktrees, submodules), a commondir file, a
// configuration naming a work tree or a bare repository, a folder that is
// itself a git directory, a mount point crossed, anything unreadable. The
// controllers check the work tree again, by identity, when they snapshot it.
func fastRepoDirs(dir string) (top string, dirs []string, ok bool) {
	dev, ok := deviceOf(dir)
	if !ok {
		return "", nil, false
	}
	for d := dir; ; {
		if isGitDir(d) {
			return "", nil, false // a bare repository, or inside a .git
		}
		gd := filepath.Join(d, ".git")
		fi, err := os.Lstat(gd)
		switch {
		case err == nil && fi.IsDir():
			if !isGitDir(gd) || exists(filepath.Join(gd, "commondir")) {
				return "", nil, false
			}
			cfg, err := os.ReadFile(filepath.Join(gd, "config"))
			if err != nil {
				return "", nil, false
			}
			cfg = bytes.ToLower(cfg)
			if bytes.Contains(cfg, []byte("worktree")) || bytes.Contains(cfg, []byte("bare = true")) || bytes.Contains(cfg, []byte("bare=true")) {
				return "", nil, false
			}
			return d, []string{gd, gd}, true
		case err == nil || !errors.Is(err, fs.ErrNotExist):
			return "", nil, false
		}
		parent := filepath.Dir(d)
		if parent == d {
			return "", nil, false // no repository: git says why
		}
		if pdev, ok := deviceOf(parent); !ok || pdev != dev {
			return "", nil, false // git stops at a mount point by default
		}
		d = parent
	}
}

// isGitDir is git's own test of a git directory: HEAD, objects and refs.
func isGitDir(d string) bool {
	return exists(filepath.Join(d, "HEAD")) && exists(filepath.Join(d, "objects")) && exists(filepath.Join(d, "refs"))
}

func exists(p string) bool {
	_, err := os.Lstat(p)
	return err == nil
}

func deviceOf(p string) (uint64, bool) {
	fi, err := os.Stat(p)
	if err != nil {
		return 0, false
	}
	st, ok := fi.Sys().(*syscall.Stat_t)
	if !ok {
		return 0, false
	}
	return uint64(st.Dev), true //nolint:unconvert // Dev is 32 bits on some platforms
}
