// Package gitdiscover finds the repository containing a folder the way git's
// own discovery does in the plain case, by reading the file system only. The
// front end (checking a work folder on arrival) and the controllers (opening
// an apply's target) both need it, and a git process spent on it costs more
// than the rest of such a call; the rule lives here once. It imports nothing
// of the project.
package gitdiscover

import (
	"bytes"
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"regexp"
	"syscall"
)

// PlainRepo finds the repository containing dir (a resolved, absolute
// folder) the way git's discovery does in the plain case — a .git directory
// in dir or in an ancestor on the same file system — by looking at the file
// system only. It returns the work tree's top and the git directory (which
// is also the common directory). Anything less plain returns ok false and
// the caller asks git: a .git file or symlink (linked worktrees,
// submodules), a commondir file, a configuration naming a work tree or
// saying the repository is bare (or anything about bareness other than
// "bare = false"), a HEAD git would not take, a folder that is itself a git
// directory, a mount point crossed, anything unreadable.
//
// The answer is a path string, as git's is: a caller that must not be
// fooled by a folder renamed meanwhile checks the top it gets against the
// folder it opened, by identity, as it does with git's answer.
func PlainRepo(dir string) (top, gitDir string, ok bool) {
	dev, ok := deviceOf(dir)
	if !ok {
		return "", "", false
	}
	for d := dir; ; {
		if isGitDir(d) {
			return "", "", false // a bare repository, or inside a .git
		}
		gd := filepath.Join(d, ".git")
		fi, err := os.Lstat(gd)
		switch {
		case err == nil && fi.IsDir():
			if !isGitDir(gd) || !validHead(gd) || exists(filepath.Join(gd, "commondir")) {
				return "", "", false
			}
			cfg, err := os.ReadFile(filepath.Join(gd, "config"))
			if err != nil || !plainConfig(cfg) {
				return "", "", false
			}
			return d, gd, true
		case err == nil || !errors.Is(err, fs.ErrNotExist):
			return "", "", false
		}
		parent := filepath.Dir(d)
		if parent == d {
			return "", "", false // no repository: git says why
		}
		if pdev, ok := deviceOf(parent); !ok || pdev != dev {
			return "", "", false // git stops at a mount point by default
		}
		d = parent
	}
}

// plainConfig reports whether a repository's config leaves git's idea of
// the work tree alone: no core.worktree or extensions.worktreeConfig (any
// mention of "worktree"), and core.bare, if set at all, written as plain
// "bare = false" (a bare key alone, or any spelling of true, makes git take
// the repository for a bare one).
func plainConfig(cfg []byte) bool {
	cfg = bytes.ToLower(cfg)
	if bytes.Contains(cfg, []byte("worktree")) {
		return false
	}
	for _, line := range bytes.Split(cfg, []byte("\n")) {
		line = bytes.TrimSpace(line)
		if !bytes.HasPrefix(line, []byte("bare")) {
			continue
		}
		if !bareFalse.Match(line) {
			return false
		}
	}
	return true
}

var bareFalse = regexp.MustCompile(`^bare\s*=\s*false$`)

// headPattern is a HEAD git takes: a symbolic ref under refs/, or a
// detached commit id (SHA-1 or SHA-256).
var headPattern = regexp.MustCompile(`^(ref: refs/[^\x00-\x1f]+|[0-9a-f]{40}|[0-9a-f]{64})\n?$`)

// validHead reports whether gd's HEAD is one git would accept; git skips a
// .git whose HEAD is not and looks further up.
func validHead(gd string) bool {
	b, err := os.ReadFile(filepath.Join(gd, "HEAD"))
	return err == nil && len(b) < 512 && headPattern.Match(b)
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

// Head reads the commit HEAD names in the git directory gd (as PlainRepo
// found it, or a handle's name for it) the way git resolves it with the
// files backend: a detached id as written, or the branch HEAD points at, as
// a loose ref file or a line of packed-refs; "" when the branch is unborn
// (no such ref yet). ok false leaves the answer to git: a ref that is itself
// symbolic, another refs backend (extensions.refStorage), a name or a file
// that is not what git writes, anything unreadable.
func Head(gd string) (oid string, ok bool) {
	cfg, err := os.ReadFile(filepath.Join(gd, "config"))
	if err != nil || bytes.Contains(bytes.ToLower(cfg), []byte("refstorage")) {
		return "", false
	}
	b, err := os.ReadFile(filepath.Join(gd, "HEAD"))
	if err != nil || !headPattern.Match(b) {
		return "", false
	}
	head := string(bytes.TrimSuffix(b, []byte("\n")))
	if oidPattern.MatchString(head) {
		return head, true
	}
	ref := head[len("ref: "):]
	if !refPattern.MatchString(ref) {
		return "", false
	}
	loose, err := os.ReadFile(filepath.Join(gd, filepath.FromSlash(ref)))
	switch {
	case err == nil:
		id := string(bytes.TrimSuffix(loose, []byte("\n")))
		if !oidPattern.MatchString(id) {
			return "", false // symbolic, or not a ref git wrote
		}
		return id, true
	case !errors.Is(err, fs.ErrNotExist):
		return "", false
	}
	packed, err := os.ReadFile(filepath.Join(gd, "packed-refs"))
	if errors.Is(err, fs.ErrNotExist) {
		return "", true // unborn
	}
	if err != nil {
		return "", false
	}
	for _, line := range bytes.Split(packed, []byte("\n")) {
		if len(line) == 0 || line[0] == '#' || line[0] == '^' {
			continue
		}
		id, name, found := bytes.Cut(line, []byte(" "))
		if found && string(name) == ref {
			if !oidPattern.Match(id) {
				return "", false
			}
			return string(id), true
		}
	}
	return "", true // unborn
}

var (
	oidPattern = regexp.MustCompile(`^([0-9a-f]{40}|[0-9a-f]{64})$`)
	// refPattern is a ref name under refs/ made of ordinary characters,
	// no component starting with a dot (so none is "." or ".."): joined to
	// the git directory it names a file inside it.
	refPattern = regexp.MustCompile(`^refs/([A-Za-z0-9_+@-][A-Za-z0-9._+@-]*/)*[A-Za-z0-9_+@-][A-Za-z0-9._+@-]*$`)
)
