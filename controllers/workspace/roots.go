package workspace

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"sync"
	"syscall"
)

// allowed_roots is checked where a path of the user's is used, not only when a
// request names it: between the request and its use the folder may have been
// renamed and replaced by a symlink to anywhere (`mv repo repo.real; ln -s
// /outside/repo repo`). So every use opens the folder once, beneath an allowed
// root (os.Root refuses any lookup that would leave the root, through ".." or
// a symlink), and from then on works on that open directory, never on the
// path string again:
//
//   - this process reaches it as /proc/self/fd/N, a name the kernel resolves
//     to the open directory itself, whatever has been renamed since;
//   - a git process gets the same descriptor at the same number (gitCmd.command
//     puts it in ExtraFiles at index N-3), so --git-dir=/proc/self/fd/N and
//     GIT_COMMON_DIR name the checked directories in the child too. Git keeps an
//     explicit git dir as given (it does not resolve it to a path string), so
//     every object and ref git reads or writes goes through the descriptor;
//   - files of a work tree are read and written through os.Root opened on that
//     name, so each lookup starts at the checked directory and cannot climb out.
//
// Git is never given a user's work tree to write: it resolves a work tree to a
// path string and may change into it by name, which a swap at that moment
// would redirect. A worktree apply therefore runs git on a scratch copy of the
// files the patch touches and writes the results back through os.Root (see
// applyWorktree). The one git process that reads a user's work tree, the
// snapshot's listing of its files, starts in the checked directory (the
// child enters it through the handle) with the work tree named "." (see
// gitCmd.command), so git takes the directory it is in as the work tree; and
// whatever it lists, every byte copied is read through os.Root on the handle,
// so no content from elsewhere can reach a workspace.

// ErrOutsideAllowedRoots means a path, when it was about to be used, lay (or
// led through a symlink or a .git file) outside every allowed root. The error
// is an *OutsideRootsError naming the path.
var ErrOutsideAllowedRoots = errors.New("outside the allowed roots")

// OutsideRootsError names the path refused and where it led.
type OutsideRootsError struct {
	Path     string // as given
	Resolved string // where it led, "" when not known
	What     string // what the path is ("git directory of /a/b"), "" for the folder itself
}

func (e *OutsideRootsError) Error() string {
	what := e.Path
	if e.What != "" {
		what = e.What + " " + e.Path
	}
	if e.Resolved != "" && e.Resolved != e.Path {
		return fmt.Sprintf("%s resolves to %s, which is outside the allowed roots", what, e.Resolved)
	}
	return what + " is outside the allowed roots"
}

func (e *OutsideRootsError) Is(target error) bool { return target == ErrOutsideAllowedRoots }

// Roots are the allowed roots a use is checked against. Nil means the caller
// asks for no containment check (the folder is still opened once and used
// through that handle); an empty, non-nil list allows nothing.
type Roots []string

// resolved returns the roots with their own symlinks resolved (a root is
// configured by the operator and trusted, /tmp on macOS is a symlink); a
// root that does not exist contains nothing.
func (r Roots) resolved() []string {
	out := make([]string, 0, len(r))
	for _, root := range r {
		if !filepath.IsAbs(root) {
			continue
		}
		if real, err := filepath.EvalSymlinks(root); err == nil {
			out = append(out, real)
		}
	}
	return out
}

// pinnedDir is a directory opened once and checked; path names it for this
// process and for git children.
type pinnedDir struct {
	f    *os.File
	path string // /proc/self/fd/N
	real string // where it was when opened (for messages, keys and records)
}

// pinned are the open pinnedDirs by descriptor, for gitCmd.command; common
// maps a pinned git dir to the pinned common dir git must use with it.
var pinned struct {
	sync.Mutex
	files  map[int]*os.File
	common map[string]string
}

// openPinned opens the directory p beneath an allowed root and registers it.
// The path is resolved first only to find which root it lies in; the open
// itself walks from that root's handle and fails rather than leave it, so a
// swap between the two can at worst open another directory inside the root.
func openPinned(p string, roots Roots, what string) (*pinnedDir, error) {
	abs, err := filepath.Abs(p)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", p, err)
	}
	real, err := filepath.EvalSymlinks(abs)
	if err != nil {
		return nil, err
	}
	var f *os.File
	if roots == nil {
		f, err = os.OpenFile(real, os.O_RDONLY|syscall.O_DIRECTORY, 0)
	} else {
		f, err = openBeneath(real, roots.resolved())
		if errors.Is(err, ErrOutsideAllowedRoots) {
			return nil, &OutsideRootsError{Path: p, Resolved: real, What: what}
		}
	}
	if err != nil {
		return nil, err
	}
	if fi, err := f.Stat(); err != nil || !fi.IsDir() {
		f.Close()
		return nil, fmt.Errorf("%w: %s is not a directory", ErrNotGitWorkTree, p)
	}
	fd := int(f.Fd())
	d := &pinnedDir{f: f, path: "/proc/self/fd/" + strconv.Itoa(fd), real: real}
	pinned.Lock()
	if pinned.files == nil {
		pinned.files, pinned.common = map[int]*os.File{}, map[string]string{}
	}
	pinned.files[fd] = f
	pinned.Unlock()
	return d, nil
}

// openBeneath opens the directory real through the handle of the root that
// contains it.
func openBeneath(real string, roots []string) (*os.File, error) {
	for _, root := range roots {
		if !isWithin(real, root) {
			continue
		}
		rel, err := filepath.Rel(root, real)
		if err != nil {
			continue
		}
		r, err := os.OpenRoot(root)
		if err != nil {
			return nil, err
		}
		f, err := r.OpenFile(rel, os.O_RDONLY|syscall.O_DIRECTORY, 0)
		r.Close()
		if err != nil && !errors.Is(err, fs.ErrNotExist) && !errors.Is(err, fs.ErrPermission) && !errors.Is(err, syscall.ENOTDIR) {
			// os.Root refused a lookup that leaves the root: something
			// on the way was swapped for a symlink after it was resolved.
			return nil, fmt.Errorf("%w: %v", ErrOutsideAllowedRoots, err)
		}
		return f, err
	}
	return nil, ErrOutsideAllowedRoots
}

func (d *pinnedDir) close() {
	if d == nil {
		return
	}
	pinned.Lock()
	delete(pinned.files, int(d.f.Fd()))
	delete(pinned.common, d.path)
	pinned.Unlock()
	d.f.Close()
}

// pinnedFD matches the names of pinned directories in git's arguments and
// environment.
var pinnedFD = regexp.MustCompile(`/proc/self/fd/([0-9]+)`)

// pinnedFiles returns the ExtraFiles that give a git child every pinned
// directory named in texts at the same descriptor number, and the
// GIT_COMMON_DIR to add for a pinned git dir ("" if none).
func pinnedFiles(gitDir string, texts ...string) (extra []*os.File, commonDir string) {
	pinned.Lock()
	defer pinned.Unlock()
	if len(pinned.files) == 0 {
		return nil, ""
	}
	if c, ok := pinned.common[gitDir]; ok {
		commonDir = c
		texts = append(texts, c)
	}
	for _, s := range texts {
		for _, m := range pinnedFD.FindAllStringSubmatch(s, -1) {
			fd, err := strconv.Atoi(m[1])
			f, ok := pinned.files[fd]
			if err != nil || !ok || fd < 3 {
				continue
			}
			if len(extra) < fd-2 {
				extra = append(extra, make([]*os.File, fd-2-len(extra))...)
			}
			extra[fd-3] = f
		}
	}
	return extra, commonDir
}

// pinRepo opens and checks the directories of a repository found by
// inspection — its top (when it has a work tree), its git dir and its common
// dir — and rewrites info to name them by their handles. folder is the pinned
// directory the inspection ran in; the top must contain that very directory,
// so a swap between the inspection and the pinning is caught.
func pinRepo(info *repoInfo, folder *pinnedDir, dir string, roots Roots) error {
	open := func(p, what string) (*pinnedDir, error) {
		d, err := openPinned(p, roots, what)
		if err != nil {
			return nil, err
		}
		info.pins = append(info.pins, d)
		return d, nil
	}
	info.realTop, info.realGitDir = info.top, info.gitDir
	if info.top != "" {
		top, err := open(info.top, "work tree of "+dir+":")
		if err != nil {
			return err
		}
		// By identity, not by path strings: the folder may have been renamed
		// since it was opened (git then reports the top by its new name).
		if !containsDir(top, folder) {
			return fmt.Errorf("%w: %s: work tree %s does not contain it", ErrNotGitWorkTree, dir, top.real)
		}
		info.top, info.realTop = top.path, top.real
		info.folderRel = "."
		if t, f := currentPath(top), currentPath(folder); t != "" && f != "" {
			if rel, err := filepath.Rel(t, f); err == nil && filepath.IsLocal(rel) {
				info.folderRel = filepath.ToSlash(rel)
			}
		}
	}
	gd, err := open(info.gitDir, "git directory of "+dir+":")
	if err != nil {
		return err
	}
	cd := gd
	if filepath.Clean(info.commonDir) != filepath.Clean(info.gitDir) {
		if cd, err = open(info.commonDir, "git common directory of "+dir+":"); err != nil {
			return err
		}
	}
	info.gitDir, info.realGitDir, info.commonDir, info.realCommon = gd.path, gd.real, cd.path, cd.real
	pinned.Lock()
	pinned.common[gd.path] = cd.path
	pinned.Unlock()
	return nil
}

// containsDir reports whether the directory of folder is the directory of
// top or lies below it, walking up from folder's handle through ".." (which
// follows the directories themselves, not names that may have changed).
func containsDir(top, folder *pinnedDir) bool {
	want, err := top.f.Stat()
	if err != nil {
		return false
	}
	p := folder.path
	var prev fs.FileInfo
	for range 4096 {
		fi, err := os.Stat(p)
		if err != nil || (prev != nil && os.SameFile(fi, prev)) {
			return false // unreadable, or "/" reached
		}
		if os.SameFile(fi, want) {
			return true
		}
		prev, p = fi, p+"/.."
	}
	return false
}

// currentPath is where the pinned directory is now, "" if unknown.
func currentPath(d *pinnedDir) string {
	p, err := os.Readlink(d.path)
	if err != nil || !filepath.IsAbs(p) {
		return ""
	}
	return p
}

// inspectChecked is inspectIn on a folder opened beneath an allowed root:
// discovery runs in that directory, and every directory found (top, git dir,
// common dir — a .git file may point anywhere) must lie in an allowed root
// too. The returned info names them by their handles; close releases them.
func inspectChecked(ctx context.Context, dir string, needWorkTree bool, roots Roots) (repoInfo, error) {
	folder, err := openWorkFolder(dir, roots)
	if err != nil {
		return repoInfo{}, err
	}
	defer folder.close()
	return inspectPinned(ctx, folder, dir, needWorkTree, roots)
}

// openWorkFolder opens dir beneath an allowed root for a look at its
// repository: a folder outside the roots is refused as such, any other
// failure as no work tree.
func openWorkFolder(dir string, roots Roots) (*pinnedDir, error) {
	folder, err := openPinned(dir, roots, "")
	if err != nil {
		if errors.Is(err, ErrOutsideAllowedRoots) {
			return nil, err
		}
		return nil, fmt.Errorf("%w: %s: %w", ErrNotGitWorkTree, dir, err)
	}
	return folder, nil
}

// inspectPinned is inspectChecked on the folder openWorkFolder opened: git
// finds the repository from there, and pinRepo checks and opens what it
// found.
func inspectPinned(ctx context.Context, folder *pinnedDir, dir string, needWorkTree bool, roots Roots) (repoInfo, error) {
	info, err := inspectIn(ctx, folder.path, folder.real, dir, needWorkTree)
	if err != nil {
		return repoInfo{}, err
	}
	if err := pinRepo(&info, folder, dir, roots); err != nil {
		info.close()
		return repoInfo{}, err
	}
	return info, nil
}

// realCommonDir is where the common dir was when opened.
func (r *repoInfo) realCommonDir() string {
	if r.realCommon != "" {
		return r.realCommon
	}
	return r.commonDir
}

// close releases the handles of a checked repository.
func (r *repoInfo) close() {
	for _, d := range r.pins {
		d.close()
	}
	r.pins = nil
}

// WorkFolder is a user's work folder opened once and checked against the
// allowed roots; everything read of it goes through that handle.
type WorkFolder struct {
	info repoInfo
	root *os.Root
}

// OpenWorkFolder checks that dir is inside a git work tree whose folders all
// lie in an allowed root (nil roots: no check), and opens it. The caller
// must Close it. A plain repository is found and its HEAD read without a
// git process (inspectPlain).
func OpenWorkFolder(ctx context.Context, dir string, roots Roots) (*WorkFolder, error) {
	info, err := inspectPlain(ctx, dir, roots, true)
	if err != nil {
		return nil, err
	}
	r, err := os.OpenRoot(info.top)
	if err != nil {
		info.close()
		return nil, err
	}
	return &WorkFolder{info: info, root: r}, nil
}

// Top is the top of the work tree, where it was when opened.
func (w *WorkFolder) Top() string { return w.info.realTop }

// Head is the HEAD commit when opened ("" before the first commit).
func (w *WorkFolder) Head() string { return w.info.head }

// Lstat describes rel (slash-separated, relative to the top) without
// following a symlink at any component.
func (w *WorkFolder) Lstat(rel string) (fs.FileInfo, error) { return lstatInTree(w.root, rel) }

// Close releases the handles.
func (w *WorkFolder) Close() {
	w.root.Close()
	w.info.close()
}

// WorkFolderInfoIn is WorkFolderInfo checked against roots.
func WorkFolderInfoIn(ctx context.Context, dir string, roots Roots) (top, head string, err error) {
	w, err := OpenWorkFolder(ctx, dir, roots)
	if err != nil {
		return "", "", err
	}
	defer w.Close()
	return w.Top(), w.Head(), nil
}
