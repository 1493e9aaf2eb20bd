package workspace

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path"
	"path/filepath"
	"sort"
	"strings"
	"sync"
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
// Git's own machinery does the walk, so a capture costs about what git status
// does, whatever the size of the tree: the index starts from base with the stat
// data the previous capture (or the checkout) recorded, `diff-files` finds the
// tracked files that changed or went (by stat data, so an unchanged file is not
// read), `ls-files --others --exclude-standard` the untracked files git does not
// ignore, and only those paths are staged.
//
// Git would treat a directory holding a .git as an embedded repository: list it
// as "dir/" without entering it, and read its .git (where a FIFO would block it
// for good). So a walk of directory entries first (surveyWorkTree) finds every
// directory holding something named like a git directory; git is told to leave
// those alone, and they are walked here instead, with check-ignore --no-index
// deciding what is ignored. That walk is linear too, and is only taken for what
// the agent nested.
func stageWorkTree(ctx context.Context, g gitCmd, work, base string) error {
	return stageSurveyed(ctx, g, work, func() error {
		_, err := resetIndexToBase(ctx, g, base)
		return err
	})
}

// stageSurveyed is stageWorkTree on an index that reset (when not nil) makes
// base's, once the survey found the work tree safe for git to read (read-tree
// reads the top .gitattributes); with reset nil the index is base's already.
func stageSurveyed(ctx context.Context, g gitCmd, work string, reset func() error) error {
	root, err := os.OpenRoot(work)
	if err != nil {
		return err
	}
	defer root.Close()
	sv, err := surveyWorkTree(root)
	if err != nil {
		return err
	}
	if reset != nil {
		if err := reset(); err != nil {
			return err
		}
	}

	var gone, present []string
	// gitlinks is only needed, and only read, when something holds a .git.
	var gitlinks map[string]bool
	if len(sv.gitHolders) > 0 {
		var hidden, replaced []string
		gitlinks, hidden, replaced, err = indexAtGitHolders(ctx, g, sv.gitHolders)
		if err != nil {
			return err
		}
		// A tracked file that became a directory holding a .git is gone; it
		// leaves the index before diff-files, which would read that .git.
		if len(replaced) > 0 {
			if _, err := g.run(ctx, joinNUL(replaced), "update-index", "--force-remove", "-z", "--stdin"); err != nil {
				return fmt.Errorf("stage removals: %w", err)
			}
		}
		// A submodule entry whose directory holds a .git: diff-files would read
		// that repository's HEAD (a FIFO there blocks it); skip-worktree makes
		// it pass the entry by, which is what a capture wants of it anyway.
		if len(hidden) > 0 {
			if _, err := g.run(ctx, joinNUL(hidden), "update-index", "--skip-worktree", "-z", "--stdin"); err != nil {
				return fmt.Errorf("set submodules aside: %w", err)
			}
		}
	}

	// The untracked files are listed at the same time (below): both only read
	// the index, and each mostly waits on the file system.
	changedList := changedTrackedAsync(ctx, g)
	untracked, moreNested, err := untrackedOrWalk(ctx, g, sv, &gitlinks)
	changed, lerr := changedList() // waited for either way: it runs git
	if err == nil {
		err = lerr
	}
	if err != nil {
		return err
	}
	for _, p := range changed {
		// A tracked file inside an ignored directory is still tracked: whatever
		// is there now is staged, ignored or not.
		if fi, err := lstatInTree(root, p); err == nil && (fi.Mode().IsRegular() || fi.Mode()&fs.ModeSymlink != 0) {
			present = append(present, p)
		} else {
			gone = append(gone, p)
		}
	}

	present = append(present, untracked...)
	for _, d := range moreNested {
		if d != "." && underGitlink(d, gitlinks) {
			continue
		}
		files, err := walkUnignored(ctx, g, root, d, gitlinks)
		if err != nil {
			return err
		}
		present = append(present, files...)
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

// untrackedOrWalk lists the untracked files git does not ignore outside the
// nested repositories sv found, and returns the folders still to be walked
// here: those repositories, and any git reported as one anyway; or, when there
// are too many to name to git, no list and the whole tree to walk (*gitlinks
// is then read if it was not).
func untrackedOrWalk(ctx context.Context, g gitCmd, sv treeSurvey, gitlinks *map[string]bool) (files, walk []string, err error) {
	excludes := make([]string, 0, len(sv.nested)+len(sv.topGitNames))
	for _, d := range sv.nested {
		excludes = append(excludes, "--exclude=/"+escapeGlob(d)+"/")
	}
	for _, n := range sv.topGitNames {
		excludes = append(excludes, "--exclude=/"+escapeGlob(n))
	}
	if argBytes(excludes) > maxExcludeArgBytes {
		// Too many nested repositories to name on a command line: walk the
		// whole tree the slow way, which is still linear.
		if *gitlinks == nil {
			if *gitlinks, _, _, err = indexAtGitHolders(ctx, g, nil); err != nil {
				return nil, nil, err
			}
		}
		return nil, []string{"."}, nil
	}
	files, more, err := untrackedFiles(ctx, g, excludes)
	if err != nil {
		return nil, nil, err
	}
	return files, append(append([]string(nil), sv.nested...), more...), nil
}

// resetIndexToBase makes the index base's tree ("" = empty). read-tree -m keeps
// the stat data of entries that still match base, so an unchanged file is not
// hashed again; it reports whether it could (without a usable index it is a
// plain read). -i: the work tree is not compared with the index, which it no
// longer matches when a previous capture staged what a later run changed
// again (without it read-tree refused, and the plain read made a revision's
// capture hash every file).
func resetIndexToBase(ctx context.Context, g gitCmd, base string) (kept bool, err error) {
	if base == "" {
		if _, err := g.run(ctx, nil, "read-tree", "--empty"); err != nil {
			return false, fmt.Errorf("reset index: %w", err)
		}
		return false, nil
	}
	if _, err := g.run(ctx, nil, "read-tree", "-m", "-i", "--end-of-options", base); err == nil {
		return true, nil
	}
	if _, err := g.run(ctx, nil, "read-tree", "--end-of-options", base); err != nil {
		return false, fmt.Errorf("read base tree: %w", err)
	}
	return false, nil
}

// maxExcludeArgBytes bounds the --exclude arguments of one ls-files, well
// below what Linux lets a process receive. (A variable for tests.)
var maxExcludeArgBytes = 256 << 10

func argBytes(args []string) int {
	n := 0
	for _, a := range args {
		n += len(a) + 1
	}
	return n
}

// escapeGlob makes a path match only itself as a gitignore pattern.
func escapeGlob(p string) string {
	var b strings.Builder
	for _, r := range p {
		switch r {
		case '\\', '*', '?', '[', ']', ' ', '!', '#':
			b.WriteByte('\\')
		}
		b.WriteRune(r)
	}
	return b.String()
}

// underGitlink reports whether p is a submodule entry or inside one.
func underGitlink(p string, gitlinks map[string]bool) bool {
	for q := p; q != "."; q = path.Dir(q) {
		if gitlinks[q] {
			return true
		}
	}
	return false
}

// indexAtGitHolders lists the index (which only a tree holding a .git needs)
// and returns its submodule entries, those of them at a directory in holders
// (to be set aside), and the files it tracks at such a directory, which is a
// directory now and so the file is gone.
func indexAtGitHolders(ctx context.Context, g gitCmd, holders map[string]bool) (gitlinks map[string]bool, hidden, gone []string, err error) {
	out, err := g.run(ctx, nil, "ls-files", "--stage", "-z")
	if err != nil {
		return nil, nil, nil, fmt.Errorf("list index: %w", err)
	}
	gitlinks = map[string]bool{}
	for _, rec := range splitNUL(out) {
		meta, p, ok := strings.Cut(rec, "\t")
		if !ok {
			return nil, nil, nil, fmt.Errorf("list index: unexpected record %q", rec)
		}
		link := strings.HasPrefix(meta, "160000 ")
		if link {
			gitlinks[p] = true
		}
		switch {
		case !holders[p]:
		case link:
			hidden = append(hidden, p)
		default:
			gone = append(gone, p)
		}
	}
	return gitlinks, hidden, gone, nil
}

// changedTrackedAsync runs changedTracked in the background, for a caller
// that lists the untracked files meanwhile (both only read the index, and
// each mostly waits on the file system); wait returns its outcome and must
// be called.
func changedTrackedAsync(ctx context.Context, g gitCmd) (wait func() ([]string, error)) {
	var changed []string
	done := make(chan error, 1)
	go func() {
		var err error
		changed, err = changedTracked(ctx, g)
		done <- err
	}()
	return func() ([]string, error) {
		err := <-done
		return changed, err
	}
}

// changedTracked lists the index entries, submodules aside, whose file in the
// work tree is modified, of another type or mode, or gone, as diff-files sees
// them: by stat data, reading a file only when its stat data cannot tell.
// --ignore-submodules=all keeps it out of submodules (which it would ask with
// a git status of their own).
func changedTracked(ctx context.Context, g gitCmd) ([]string, error) {
	out, err := g.run(ctx, nil, "diff-files", "-z", "--raw", "--no-renames", "--ignore-submodules=all")
	if err != nil {
		return nil, fmt.Errorf("list changed files: %w", err)
	}
	tok := splitNUL(out)
	var paths []string
	for i := 0; i < len(tok); i += 2 {
		meta := strings.Fields(strings.TrimPrefix(tok[i], ":"))
		if !strings.HasPrefix(tok[i], ":") || len(meta) != 5 || i+1 >= len(tok) {
			return nil, fmt.Errorf("list changed files: unexpected record %q", tok[i])
		}
		if meta[0] == "160000" {
			continue // a submodule entry is kept as base has it
		}
		paths = append(paths, tok[i+1])
	}
	return paths, nil
}

// untrackedFiles lists the untracked files git does not ignore, leaving out what
// the exclude arguments name. A directory git still reports as an embedded
// repository ("dir/") is returned apart, to be walked.
func untrackedFiles(ctx context.Context, g gitCmd, excludes []string) (files, nested []string, err error) {
	args := append([]string{"ls-files", "-z", "--others", "--exclude-standard"}, excludes...)
	out, err := g.run(ctx, nil, args...)
	if err != nil {
		return nil, nil, fmt.Errorf("list untracked files: %w", err)
	}
	for _, p := range splitNUL(out) {
		switch {
		case strings.HasSuffix(p, "/"):
			nested = append(nested, strings.TrimSuffix(p, "/"))
		case hasGitComponent(p):
			// Never staged; the survey's excludes should have kept git away.
		default:
			files = append(files, p)
		}
	}
	return files, nested, nil
}

// walkUnignored lists the files and symlinks at or below start (a directory,
// "." for the top) that git would consider, one directory level at a time so
// that an ignored directory (node_modules) is pruned without being read.
// Symlinks to directories are entries, never descended; entries named like a
// git directory and submodule entries are passed by. check-ignore runs with
// --no-index: what the index tracks is staged by changedTracked whatever the
// rules say, and without the index its work per path does not grow with the
// index's size.
func walkUnignored(ctx context.Context, g gitCmd, root *os.Root, start string, gitlinks map[string]bool) ([]string, error) {
	type candidate struct {
		path string
		dir  bool
	}
	var files []string
	var level []string
	if start == "." {
		level = []string{"."}
	} else if ignored, err := checkIgnore(ctx, g, []string{start}); err != nil {
		return nil, err
	} else if !ignored[start] {
		level = []string{start}
	}
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

// treeSurvey is what one walk of a work tree's directory entries learnt.
type treeSurvey struct {
	// gitHolders are the directories (other than the top) holding an entry
	// named like a git directory, which git would take for repositories.
	gitHolders map[string]bool
	// nested are the outermost of gitHolders: git is kept out of them.
	nested []string
	// topGitNames are the entries at the top named like a git directory
	// (git itself passes by only ".git").
	topGitNames []string
}

// surveyWorkTree walks the directory entries of the work tree once. It refuses
// a work tree with a .gitignore or .gitattributes that git would open and never
// finish reading. Git reads them wherever it walks, hashes or compares files
// (even read-tree -m reads the top .gitattributes), and a FIFO there, which an
// agent can make without any privilege, blocks it for good. It looks everywhere
// but in git directories, ignored ones included (a tracked file in an ignored
// directory is hashed too): one walk of directory entries, small beside the git
// processes of a capture. On the way it notes where something is named like a
// git directory (see treeSurvey).
func surveyWorkTree(root *os.Root) (treeSurvey, error) {
	sv := treeSurvey{gitHolders: map[string]bool{}}
	// Directory entries carry their type, so nothing is stat'ed; the order of
	// the walk does not matter, so nothing is sorted either. A few workers
	// list directories at once: at 300,000 files the listing is most of a
	// capture's own work, and on a busy machine a lone thread waits its turn
	// behind every other (git's walks use threads too).
	var (
		mu      sync.Mutex
		more    = sync.NewCond(&mu)
		pending = []string{"."}
		active  int
		failed  error
		wg      sync.WaitGroup
	)
	worker := func() {
		defer wg.Done()
		mu.Lock()
		defer mu.Unlock()
		for {
			for len(pending) == 0 && active > 0 && failed == nil {
				more.Wait()
			}
			if len(pending) == 0 || failed != nil {
				more.Broadcast()
				return
			}
			dir := pending[len(pending)-1]
			pending = pending[:len(pending)-1]
			active++
			mu.Unlock()
			dirs, gitNames, err := surveyDir(root, dir)
			mu.Lock()
			active--
			switch {
			case err != nil:
				if failed == nil {
					failed = err
				}
			case len(gitNames) > 0 && dir == ".":
				sv.topGitNames = append(sv.topGitNames, gitNames...)
			case len(gitNames) > 0:
				sv.gitHolders[dir] = true
			}
			pending = append(pending, dirs...)
			more.Broadcast()
		}
	}
	for range surveyWorkers {
		wg.Add(1)
		go worker()
	}
	wg.Wait()
	if failed != nil {
		return sv, failed
	}
	for d := range sv.gitHolders {
		outermost := true
		for q := path.Dir(d); q != "."; q = path.Dir(q) {
			if sv.gitHolders[q] {
				outermost = false
				break
			}
		}
		if outermost {
			sv.nested = append(sv.nested, d)
		}
	}
	sort.Strings(sv.nested)
	return sv, nil
}

// surveyWorkers is how many directories surveyWorkTree lists at once.
const surveyWorkers = 4

// surveyDir lists one directory of the work tree for surveyWorkTree: its
// subdirectories, and its entries named like a git directory (which git
// looks neither at nor into).
func surveyDir(root *os.Root, dir string) (dirs, gitNames []string, err error) {
	entries, err := readDir(root, dir)
	if err != nil {
		return nil, nil, fmt.Errorf("look for git rule files: %w", err)
	}
	for _, e := range entries {
		if isGitName(e.Name()) {
			gitNames = append(gitNames, e.Name())
			continue
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
			return nil, nil, err
		}
	}
	return dirs, gitNames, nil
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

// checkIgnore returns the subset of paths that git's rules ignore, without
// looking at the index: check-ignore checks each path against every submodule
// entry of the index otherwise, which made a capture quadratic in the size of
// the tree. Each path is passed as "./path": check-ignore reads its arguments
// as pathspecs, and a file named ":(top)x" must not be taken for pathspec magic.
func checkIgnore(ctx context.Context, g gitCmd, paths []string) (map[string]bool, error) {
	in := make([]string, len(paths))
	for i, p := range paths {
		in[i] = "./" + p
	}
	out, err := g.run(ctx, joinNUL(in), "check-ignore", "--no-index", "--stdin", "-z")
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

// stage stages work/ against base and returns the tree staged.
//
// The capture index is kept holding base's tree, with the stat data of the
// checkout or snapshot (and of the last reset), and is never rewritten when
// it does: staging happens in a temporary index that starts as a hard link to
// it (git replaces an index through a lock file and a rename, never in place)
// and is dropped once its tree is written. At 300,000 files the index is
// 24 MB: reading it back and writing it again per capture (read-tree -m, then
// a rename of the staged index over the kept one) cost more than the walk
// itself on a loaded machine. Only an index holding another tree (that of a
// capture before this scheme, a source edited since a copy-on-write base) or
// entries git must compare by content at every read (racily clean: written in
// the same second as the index) is reset to base, and kept that way.
func (w *Workspace) stage(ctx context.Context, base string) (string, error) {
	tree, _, err := w.stageAgainst(ctx, base)
	return tree, err
}

// stageAgainst is stage, returning base's tree too (which it reads anyway).
func (w *Workspace) stageAgainst(ctx context.Context, base string) (tree, baseTree string, err error) {
	cache := filepath.Join(w.GitDir, captureIndex)
	tmp := cache + ".tmp-" + randomSuffix()
	defer os.Remove(tmp)
	if err := linkOrCopy(cache, tmp); err != nil && !errors.Is(err, fs.ErrNotExist) {
		return "", "", err
	}
	// Whether the index holds base's tree is learnt while the survey walks.
	var (
		atBase bool
		bt     string
		looked = make(chan struct{})
	)
	go func() {
		defer close(looked)
		if bt = treeOf(ctx, w.git(), base); bt != "" {
			st, err := readIndexState(tmp, len(bt)/2)
			atBase = err == nil && st.tree == bt && st.racy == 0
		}
	}()
	defer func() { <-looked }()
	g := w.git().with("GIT_INDEX_FILE=" + tmp)
	reset := func() error {
		if <-looked; atBase {
			return nil
		}
		if _, err := resetIndexToBase(ctx, g, base); err != nil {
			return err
		}
		// Kept before anything is staged: later captures start from it.
		return keepIndex(tmp, cache)
	}
	if err := stageSurveyed(ctx, g, w.WorkDir, reset); err != nil {
		return "", "", err
	}
	tree, err = g.runText(ctx, nil, "write-tree")
	if err != nil {
		return "", "", fmt.Errorf("write tree: %w", err)
	}
	return tree, bt, nil
}

// keepIndex makes the index at tmp the capture index, leaving tmp in place.
func keepIndex(tmp, cache string) error {
	next := cache + ".tmp-" + randomSuffix()
	if err := linkOrCopy(tmp, next); err != nil {
		return err
	}
	if err := os.Rename(next, cache); err != nil {
		os.Remove(next)
		return err
	}
	return nil
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
		if err := linkOrCopy(cache, tmp); err != nil && !errors.Is(err, fs.ErrNotExist) {
			return "", err
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
