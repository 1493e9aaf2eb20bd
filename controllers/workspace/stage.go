package workspace

import (
	"context"
	"fmt"
	"io/fs"
	"os"
	"path"
	"path/filepath"
	"strings"
	"syscall"
)

// stageWorkTree makes the index named by g's GIT_INDEX_FILE describe work exactly as
// a capture must record it, relative to commit base ("" = nothing):
//
//   - files and symlinks, with their exec bit; empty directories leave no trace;
//   - untracked files that .gitignore (or info/exclude) ignores are left out, while
//     files base tracks stay tracked even if a pattern matches them, as with git add;
//   - nothing named like a git directory, at any depth, is looked at: a .git the
//     agent created is neither staged nor honoured (the git dir is explicit);
//   - submodule entries of base are kept as they are.
//
// It does its own walk instead of `git add -A` because add turns a directory holding
// a .git into an embedded repository (or fails on one without commits) and would
// drop the files the agent wrote there.
func stageWorkTree(ctx context.Context, g gitCmd, work, base string) error {
	root, err := os.OpenRoot(work)
	if err != nil {
		return err
	}
	defer root.Close()
	if err := checkRuleFiles(root); err != nil {
		return err
	}
	// read-tree -m keeps the stat data of entries that still match base, so an
	// unchanged file is not hashed again; without a usable index it is a plain read.
	if base == "" {
		if _, err := g.run(ctx, nil, "read-tree", "--empty"); err != nil {
			return fmt.Errorf("reset index: %w", err)
		}
	} else if _, err := g.run(ctx, nil, "read-tree", "-m", "--end-of-options", base); err != nil {
		if _, err := g.run(ctx, nil, "read-tree", "--end-of-options", base); err != nil {
			return fmt.Errorf("read base tree: %w", err)
		}
	}
	out, err := g.run(ctx, nil, "ls-files", "--stage", "-z")
	if err != nil {
		return fmt.Errorf("list index: %w", err)
	}
	var tracked []string
	gitlinks := map[string]bool{}
	for _, rec := range splitNUL(out) {
		meta, p, ok := strings.Cut(rec, "\t")
		if !ok {
			return fmt.Errorf("list index: unexpected record %q", rec)
		}
		if strings.HasPrefix(meta, "160000 ") {
			gitlinks[p] = true
			continue
		}
		tracked = append(tracked, p)
	}

	present, err := walkUnignored(ctx, g, root, gitlinks)
	if err != nil {
		return err
	}
	have := make(map[string]bool, len(present))
	for _, p := range present {
		have[p] = true
	}
	var gone []string
	for _, p := range tracked {
		if have[p] {
			continue
		}
		// A tracked file inside an ignored directory is still tracked.
		if fi, err := lstatInTree(root, p); err == nil && (fi.Mode().IsRegular() || fi.Mode()&fs.ModeSymlink != 0) {
			present = append(present, p)
			have[p] = true
			continue
		}
		gone = append(gone, p)
	}
	// Removals first, so a file replaced by a directory (or the reverse) does not
	// collide with its old entry.
	if len(gone) > 0 {
		if _, err := g.run(ctx, joinNUL(gone), "update-index", "--force-remove", "-z", "--stdin"); err != nil {
			return fmt.Errorf("stage removals: %w", err)
		}
	}
	if len(present) > 0 {
		if _, err := g.run(ctx, joinNUL(present), "update-index", "--add", "--replace", "-z", "--stdin"); err != nil {
			return fmt.Errorf("stage files: %w", err)
		}
	}
	return nil
}

// walkUnignored lists the files and symlinks below root that git would consider,
// one directory level at a time so that an ignored directory (node_modules) is
// pruned without being read. Symlinks to directories are entries, never descended.
func walkUnignored(ctx context.Context, g gitCmd, root *os.Root, gitlinks map[string]bool) ([]string, error) {
	type candidate struct {
		path string
		dir  bool
	}
	var files []string
	level := []string{"."}
	for len(level) > 0 {
		var cands []candidate
		for _, dir := range level {
			entries, err := readDir(root, dir)
			if err != nil {
				return nil, err
			}
			for _, e := range entries {
				if isGitName(e.Name()) {
					continue
				}
				p := e.Name()
				if dir != "." {
					p = dir + "/" + p
				}
				if gitlinks[p] {
					continue
				}
				switch t := e.Type(); {
				case t.IsDir():
					cands = append(cands, candidate{p, true})
				case t.IsRegular(), t&fs.ModeSymlink != 0:
					cands = append(cands, candidate{p, false})
				}
			}
		}
		if len(cands) == 0 {
			break
		}
		paths := make([]string, len(cands))
		for i, c := range cands {
			paths[i] = c.path
		}
		ignored, err := checkIgnore(ctx, g, paths)
		if err != nil {
			return nil, err
		}
		level = level[:0]
		for _, c := range cands {
			switch {
			case ignored[c.path]:
			case c.dir:
				level = append(level, c.path)
			default:
				files = append(files, c.path)
			}
		}
	}
	return files, nil
}

// checkRuleFiles refuses a work tree with a .gitignore or .gitattributes that
// git would open and never finish reading. Git reads them wherever it walks,
// hashes or compares files (even read-tree -m reads the top .gitattributes),
// and a FIFO there, which an agent can make without any privilege, blocks it
// for good. It looks everywhere but in git directories, ignored ones included
// (a tracked file in an ignored directory is hashed too): one walk of
// directory entries, small beside the git processes of a capture.
func checkRuleFiles(root *os.Root) error {
	// Directory entries carry their type, so nothing is stat'ed; the order of
	// the walk does not matter, so nothing is sorted either.
	dirs := []string{"."}
	for len(dirs) > 0 {
		dir := dirs[len(dirs)-1]
		dirs = dirs[:len(dirs)-1]
		entries, err := readDir(root, dir)
		if err != nil {
			return fmt.Errorf("look for git rule files: %w", err)
		}
		for _, e := range entries {
			if isGitName(e.Name()) {
				continue // git looks neither at nor into anything named like its directory
			}
			p := e.Name()
			if dir != "." {
				p = dir + "/" + p
			}
			if e.IsDir() {
				dirs = append(dirs, p)
				continue
			}
			if err := checkRuleFile(p, e.Type()); err != nil {
				return err
			}
		}
	}
	return nil
}

// checkRuleFile refuses p when it is a git rule file that is not a file, a
// directory (git skips those) or a symlink (git does not follow those).
func checkRuleFile(p string, t fs.FileMode) error {
	switch path.Base(p) {
	case ".gitignore", ".gitattributes":
	default:
		return nil
	}
	kind := "special file"
	switch {
	case t.IsRegular(), t.IsDir(), t&fs.ModeSymlink != 0:
		return nil
	case t&fs.ModeNamedPipe != 0:
		kind = "named pipe (FIFO)"
	case t&fs.ModeSocket != 0:
		kind = "socket"
	case t&fs.ModeDevice != 0:
		kind = "device"
	}
	return fmt.Errorf("%w: %s is a %s, which git would wait on for ever; remove it (a revision can ask the agent to)",
		ErrUncapturable, p, kind)
}

// readDir lists dir, opened through root (so no symlink leads out of it), with
// each entry's type as the directory reports it. Listing the *os.File that
// root.Open returns costs a stat per entry (Go 1.26): 380 ms instead of 50 ms
// for 100,000 files, more than the git processes of a capture. So the listing
// reads a plain File on a duplicate of the same descriptor, named by the
// directory's path so that an entry whose type the file system does not
// report is stat'ed in the right place.
func readDir(root *os.Root, dir string) ([]fs.DirEntry, error) {
	f, err := root.Open(dir)
	if err != nil {
		return nil, fmt.Errorf("read %s: %w", dir, err)
	}
	// Under ForkLock and close-on-exec, as os does it: git processes are
	// started meanwhile, and must not inherit the descriptor.
	syscall.ForkLock.RLock()
	fd, err := syscall.Dup(int(f.Fd()))
	if err == nil {
		syscall.CloseOnExec(fd)
	}
	syscall.ForkLock.RUnlock()
	f.Close()
	if err != nil {
		return nil, fmt.Errorf("read %s: %w", dir, err)
	}
	plain := os.NewFile(uintptr(fd), filepath.Join(root.Name(), filepath.FromSlash(dir)))
	defer plain.Close()
	entries, err := plain.ReadDir(-1)
	if err != nil {
		return nil, fmt.Errorf("read %s: %w", dir, err)
	}
	return entries, nil
}

// checkIgnore returns the subset of paths that git ignores. Paths the index tracks
// are never reported, which is what keeps tracked-but-ignored files staged. Each
// path is passed as "./path": check-ignore reads its arguments as pathspecs, and a
// file named ":(top)x" must not be taken for pathspec magic.
func checkIgnore(ctx context.Context, g gitCmd, paths []string) (map[string]bool, error) {
	in := make([]string, len(paths))
	for i, p := range paths {
		in[i] = "./" + p
	}
	out, err := g.run(ctx, joinNUL(in), "check-ignore", "--stdin", "-z")
	if err != nil && exitCode(err) != 1 { // 1: nothing ignored
		return nil, fmt.Errorf("check ignored files: %w", err)
	}
	ignored := map[string]bool{}
	for _, p := range splitNUL(out) {
		ignored[strings.TrimPrefix(p, "./")] = true
	}
	return ignored, nil
}

// checkout writes commit's tree into work/ and records it, with the stat data of
// the files written, in the capture index: one read-tree -u does what read-tree,
// checkout-index and a staging pass would.
func (w *Workspace) checkout(ctx context.Context, commit string) error {
	g := w.git().with("GIT_INDEX_FILE=" + filepath.Join(w.GitDir, captureIndex))
	if _, err := g.run(ctx, nil, "read-tree", "--reset", "-u", "--end-of-options", commit); err != nil {
		return fmt.Errorf("check out %s: %w", commit, err)
	}
	return nil
}

// refresh brings the stat data of the capture index up to date with work/ (after
// a hand-over changed every ctime), so the first capture does not hash every file
// again. It compares contents: a file that differs keeps its stale entry and is
// staged as changed.
func (w *Workspace) refresh(ctx context.Context) error {
	g := w.git().with("GIT_INDEX_FILE=" + filepath.Join(w.GitDir, captureIndex))
	if _, err := g.run(ctx, nil, "update-index", "-q", "--refresh"); err != nil && exitCode(err) != 1 {
		return fmt.Errorf("refresh index: %w", err)
	}
	return nil
}

// stage stages work/ against base in a temporary index seeded from the index the
// previous capture left, writes the tree and keeps the index for the next time.
func (w *Workspace) stage(ctx context.Context, base string) (string, error) {
	return w.writeCaptureIndex(ctx, true, func(g gitCmd) error { return stageWorkTree(ctx, g, w.WorkDir, base) })
}

// writeCaptureIndex fills a temporary index with fill (seeded from the kept
// capture index when seed is set), writes its tree and keeps the index as the
// capture index only once that succeeded, so a failure leaves the previous
// one in place.
func (w *Workspace) writeCaptureIndex(ctx context.Context, seed bool, fill func(g gitCmd) error) (string, error) {
	cache := filepath.Join(w.GitDir, captureIndex)
	tmp := cache + ".tmp-" + randomSuffix()
	defer os.Remove(tmp)
	if seed {
		if b, err := os.ReadFile(cache); err == nil {
			if err := os.WriteFile(tmp, b, 0o644); err != nil {
				return "", err
			}
		}
	}
	g := w.git().with("GIT_INDEX_FILE=" + tmp)
	if err := fill(g); err != nil {
		return "", err
	}
	tree, err := g.runText(ctx, nil, "write-tree")
	if err != nil {
		return "", fmt.Errorf("write tree: %w", err)
	}
	if err := os.Rename(tmp, cache); err != nil {
		return "", err
	}
	return tree, nil
}

// stageCopy writes the capture index of a freshly copied snapshot and returns its
// tree. It stages exactly the paths copySnapshot copied, plus the submodule entries
// of the source's index, without stageWorkTree's walk: the copy holds only what the source's
// rules do not ignore (or what its index tracks), and the workspace's ignore rules
// are a subset of the source's (its .gitignore files and info/exclude are copies),
// so the walk would find the same paths, at the cost of several more git processes
// and a read of the base tree that would have to wait for the import. (The one
// difference: a file the source's index tracks but HEAD does not, and that an
// ignore rule matches, is staged here, as copied; the walk would leave it out of
// the base although it is in work/.)
func (w *Workspace) stageCopy(ctx context.Context, paths []string, gitlinks []byte) (string, error) {
	return w.writeCaptureIndex(ctx, false, func(g gitCmd) error {
		if len(gitlinks) == 0 && len(paths) == 0 {
			// Nothing to stage (an empty work folder): an empty index, to keep.
			if _, err := g.run(ctx, nil, "read-tree", "--empty"); err != nil {
				return fmt.Errorf("reset index: %w", err)
			}
		}
		if len(gitlinks) > 0 {
			if _, err := g.run(ctx, gitlinks, "update-index", "-z", "--index-info"); err != nil {
				return fmt.Errorf("stage submodules: %w", err)
			}
		}
		if len(paths) > 0 {
			if _, err := g.run(ctx, joinNUL(paths), "update-index", "--add", "--replace", "-z", "--stdin"); err != nil {
				return fmt.Errorf("stage files: %w", err)
			}
		}
		return nil
	})
}

// commitTree makes a commit with the workspace's fixed identity and date.
func (w *Workspace) commitTree(ctx context.Context, tree, parent, msg string) (string, error) {
	args := []string{"commit-tree", "--no-gpg-sign", "-m", msg}
	if parent != "" {
		args = append(args, "-p", parent)
	}
	g := w.git().with("GIT_AUTHOR_DATE="+w.commitDate(), "GIT_COMMITTER_DATE="+w.commitDate())
	c, err := g.runText(ctx, nil, append(args, tree)...)
	if err != nil {
		return "", fmt.Errorf("commit: %w", err)
	}
	return c, nil
}

// treeOf returns the tree of a commit, or "" if it cannot be read.
func treeOf(ctx context.Context, g gitCmd, commit string) string {
	t, err := g.runText(ctx, nil, "rev-parse", "--verify", "--quiet", "--end-of-options", commit+"^{tree}")
	if err != nil {
		return ""
	}
	return t
}
