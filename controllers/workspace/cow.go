package workspace

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"github.com/claude-parallel/claude-parallel/models"
	"io/fs"
	"os"
	"path"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"
)

// Copy-on-write workspaces (issue 13): writing a tree of 100,000 files costs
// seconds, finding what changed in it a fraction of that. So the tree of a
// base is written once, into a shared read-only base under <Root>/.bases/<key>,
// and each task gets an overlay mount at its work/ whose lower layer is that
// base and whose upper layer (<task>/upper) receives what the task writes.
//
// A base is keyed by the source (its work tree and git dir), the commit, the
// mode (a snapshot of the work folder or a checkout) and the owner the tree
// is handed to. A snapshot base also keeps source.index: the snapshot's
// entries with the stat data the source's files had when copied, so a later
// task finds what changed in the source since by stat data, as git status
// would, and writes only that into its upper layer (whiteouts for what went).
//
// The task's repository borrows the base's objects (objects/info/alternates)
// and starts its capture index from the base's, whose stat data the overlay
// shows unchanged for files the task did not touch (same inode, times and
// owner): the capture is then the same diff-files + ls-files as with a copy.
//
// Mounts are kernel state that outlives the process: Open mounts a ready
// workspace's overlay again when it is missing (after a reboot), Begin and
// Remove unmount before deleting, and a base is deleted once no task
// directory names it (base.ref, written under the base's lock before the base
// is used), so a crash at any step leaves a state the next call finishes.

const (
	basesDirName  = ".bases"    // <Root>/.bases/<key>: shared bases
	baseRefName   = "base.ref"  // <task>/base.ref: the key of the base the task's overlay uses
	upperDirName  = "upper"     // <task>/upper: the overlay's upper layer
	ovWorkDirName = "ovwork"    // <task>/ovwork: the overlay's work dir
	baseMarker    = "base.json" // <base>/base.json: written last, the base is ready
	sourceIndex   = "source.index"
)

// baseTree is a shared base: a checked-out or copied tree, its repository and
// capture index.
type baseTree struct {
	Commit      string    `json:"commit"`
	SourceIndex bool      `json:"source_index"`
	Created     time.Time `json:"created"`
	UID         int       `json:"uid"`
	GID         int       `json:"gid"`

	key   string
	dir   string
	built bool // by this process's acquireBase call, for the task that asked
}

func (b *baseTree) workDir() string { return filepath.Join(b.dir, workDirName) }
func (b *baseTree) gitDir() string  { return filepath.Join(b.dir, gitDirName) }

// layout is the base as a Workspace, so the code that builds a task's copy
// builds the base the same way (same hardened git, same checks).
func (b *baseTree) layout() *Workspace {
	ws := &Workspace{TaskID: "base-" + b.key, UID: b.UID, GID: b.GID, Created: b.Created}
	ws.setDir(b.dir)
	return ws
}

// baseKey names the base a task's workspace is made from.
func baseKey(spec PrepareSpec, src repoInfo, commit string) string {
	mode := "checkout"
	if spec.IncludeUncommitted {
		mode = "snapshot"
	}
	h := sha256.New()
	for _, s := range []string{mode, src.realTop, src.realCommonDir(), commit, strconv.Itoa(spec.UID), strconv.Itoa(spec.GID)} {
		h.Write([]byte(s))
		h.Write([]byte{0})
	}
	return hex.EncodeToString(h.Sum(nil))[:24]
}

var baseKeyPattern = regexp.MustCompile(`^[0-9a-f]{24}$`)

func basesDir(root string) string { return filepath.Join(root, basesDirName) }

// readBase returns the ready base in dir.
func readBase(dir, key string) (*baseTree, error) {
	buf, err := os.ReadFile(filepath.Join(dir, baseMarker))
	if err != nil {
		return nil, err
	}
	b := &baseTree{}
	if err := json.Unmarshal(buf, b); err != nil {
		return nil, fmt.Errorf("base %s: %w", key, err)
	}
	if err := validateOID("base", b.Commit); err != nil {
		return nil, err
	}
	b.key, b.dir = key, dir
	return b, nil
}

// acquireBase records that the task in taskDir uses the base of its spec and
// returns that base, building it first when there is none. Both happen under
// the base's lock, which removal takes too, so a base is never deleted
// between being found and being referenced.
func acquireBase(ctx context.Context, spec PrepareSpec, src repoInfo, commit, taskDir string) (*baseTree, error) {
	key := baseKey(spec, src, commit)
	bases := basesDir(spec.Root)
	if err := os.MkdirAll(bases, 0o700); err != nil {
		return nil, err
	}
	unlock, err := lockFile(ctx, filepath.Join(bases, key+".lock"))
	if err != nil {
		return nil, fmt.Errorf("lock base %s: %w", key, err)
	}
	defer unlock()
	if err := writeFileAtomic(filepath.Join(taskDir, baseRefName), []byte(key+"\n"), 0o600); err != nil {
		return nil, err
	}
	dir := filepath.Join(bases, key)
	if b, err := readBase(dir, key); err == nil {
		return b, nil
	}
	// What a build that died left: a base without its marker, or its
	// temporary directory.
	leftovers, _ := filepath.Glob(filepath.Join(bases, key+".tmp-*"))
	for _, p := range append(leftovers, dir) {
		if err := removeTree(p); err != nil {
			return nil, fmt.Errorf("clear base leftovers: %w", err)
		}
	}
	b := &baseTree{key: key, dir: dir + ".tmp-" + randomSuffix(), UID: spec.UID, GID: spec.GID,
		Created: time.Now().UTC().Truncate(time.Second)}
	if err := buildBase(ctx, b, src, spec, commit); err != nil {
		_ = removeTree(b.dir)
		return nil, fmt.Errorf("build base: %w", err)
	}
	if err := os.Rename(b.dir, dir); err != nil {
		_ = removeTree(b.dir)
		return nil, fmt.Errorf("build base: %w", err)
	}
	b.dir, b.built = dir, true
	return b, nil
}

// buildBase writes a base as a copy workspace would be written, plus, for a
// snapshot, the source's stat data, and last its marker.
func buildBase(ctx context.Context, b *baseTree, src repoInfo, spec PrepareSpec, commit string) error {
	ws := b.layout()
	if err := makeLayout(ws); err != nil {
		return err
	}
	if err := copyExcludes(src, ws.GitDir); err != nil {
		return err
	}
	var err error
	if spec.IncludeUncommitted {
		var ct *copiedTree
		b.Commit, ct, err = snapshotBaseCopy(ctx, ws, src, spec)
		if err == nil && ct != nil && len(ct.paths) > 0 && ct.indexable() {
			// The tree extension of the capture index that write-tree made
			// (same paths, same blobs), so that a later task that finds a
			// change writes the trees of its folders only.
			ext := cacheTreeExtension(filepath.Join(ws.GitDir, captureIndex))
			if err = ct.writeIndexExt(filepath.Join(b.dir, sourceIndex), true, ext); err == nil {
				b.SourceIndex = true
			}
		}
	} else {
		b.Commit, err = checkoutBase(ctx, ws, src, spec, commit)
	}
	if err != nil {
		return err
	}
	if err := recordBase(ws.GitDir, b.Commit); err != nil {
		return err
	}
	buf, err := json.Marshal(b)
	if err != nil {
		return err
	}
	return writeFileAtomic(filepath.Join(b.dir, baseMarker), append(buf, '\n'), 0o600)
}

// buildOverlay makes ws's work tree an overlay on the shared base of its spec
// and returns the workspace's base commit.
func buildOverlay(ctx context.Context, ws *Workspace, src repoInfo, spec PrepareSpec, commit string) (string, error) {
	b, err := acquireBase(ctx, spec, src, commit, ws.Dir)
	if err != nil {
		return "", err
	}
	if spec.UID >= 0 || spec.GID >= 0 {
		if err := chownTree(ws.HomeDir, spec.UID, spec.GID); err != nil {
			return "", fmt.Errorf("hand over home: %w", err)
		}
	}
	if err := borrowObjects(ws.GitDir, b.gitDir()); err != nil {
		return "", fmt.Errorf("borrow base objects: %w", err)
	}
	base := b.Commit
	var changes []treeChange
	// The task that wrote the base has its snapshot in it already.
	if spec.IncludeUncommitted && !b.built {
		if base, changes, err = sourceDelta(ctx, ws, src, b); err != nil {
			return "", err
		}
	}
	upper := filepath.Join(ws.Dir, upperDirName)
	for _, d := range []string{upper, filepath.Join(ws.Dir, ovWorkDirName)} {
		if err := os.Mkdir(d, 0o700); err != nil {
			return "", err
		}
	}
	// The upper layer's root is the merged tree's root: it takes the base's.
	if err := sameDirAttrs(b.workDir(), upper); err != nil {
		return "", err
	}
	if err := writeChanges(ctx, ws.git(), b.workDir(), upper, changes, spec); err != nil {
		return "", fmt.Errorf("write changes since base: %w", err)
	}
	idx, err := os.ReadFile(filepath.Join(b.gitDir(), captureIndex))
	if err != nil {
		return "", fmt.Errorf("read base index: %w", err)
	}
	if err := os.WriteFile(filepath.Join(ws.GitDir, captureIndex), idx, 0o644); err != nil {
		return "", err
	}
	if err := mountOverlay(b.workDir(), upper, filepath.Join(ws.Dir, ovWorkDirName), ws.WorkDir); err != nil {
		return "", err
	}
	ws.Overlay = b.key
	return base, nil
}

// borrowObjects lets the task's repository read the base's objects, and marks
// what the base marked shallow.
func borrowObjects(gitDir, baseGit string) error {
	if err := os.MkdirAll(filepath.Join(gitDir, "objects", "info"), 0o755); err != nil {
		return err
	}
	if err := os.WriteFile(filepath.Join(gitDir, "objects", "info", "alternates"),
		[]byte(filepath.Join(baseGit, "objects")+"\n"), 0o644); err != nil {
		return err
	}
	sh, err := os.ReadFile(filepath.Join(baseGit, "shallow"))
	if errors.Is(err, fs.ErrNotExist) {
		return nil
	}
	if err != nil {
		return err
	}
	return os.WriteFile(filepath.Join(gitDir, "shallow"), sh, 0o644)
}

// treeChange is one path of base's tree that a task's base commit has otherwise.
type treeChange struct {
	path, mode, oid string // mode and oid "" when the path went
}

// sourceDelta finds what changed in the source since base b was copied and
// returns the commit recording the source as it is now (b's when nothing
// changed) and the paths that differ from b's.
//
// It asks git what `git status` would, in two processes run at once on an
// index of b's tree holding the stat data the source's files had when copied
// (the base's source.index): diff-files for the tracked files changed or gone
// (by stat data: an unchanged file is not read) and ls-files --others for the
// files added that no rule ignores. Git's own walk prunes ignored folders, and
// nothing else looks at the source: at 300,000 files the capture's staging
// (a walk of every folder in Go, a read-tree of the base) cost three times a
// `git status`. What it keeps and leaves out is what a copy's listing does
// (listWorkFolder, copySnapshot): a nested repository ("dir/") and a path
// named like a git directory are passed by, and a path beyond a symlink is
// gone. Only when something changed is the index updated and a tree written.
func sourceDelta(ctx context.Context, ws *Workspace, src repoInfo, b *baseTree) (string, []treeChange, error) {
	tmp := filepath.Join(ws.GitDir, "source.index.tmp")
	defer os.Remove(tmp)
	g := gitCmd{gitDir: ws.GitDir, workTree: src.top, dir: src.top, config: workspaceConfig}.with("GIT_INDEX_FILE=" + tmp)
	if b.SourceIndex {
		// Git replaces an index (lock file, rename) and never writes one in
		// place, so the task may read the base's through a link.
		if err := linkOrCopy(filepath.Join(b.dir, sourceIndex), tmp); err != nil {
			return "", nil, err
		}
	} else if _, err := g.run(ctx, nil, "read-tree", "--end-of-options", b.Commit); err != nil {
		// No stat data (the copy could not make its own index): every
		// file is compared by its contents.
		return "", nil, fmt.Errorf("read base tree: %w", err)
	}
	var (
		changed, added []string
		err            error
	)
	if n := indexEntries(tmp); n >= 0 && n < onePassEntries {
		changed, added, err = sourceStatusOnePass(ctx, g)
	} else {
		changedList := changedTrackedAsync(ctx, g)
		added, _, err = untrackedFiles(ctx, g, nil) // nested repositories are not copied
		var lerr error
		changed, lerr = changedList()
		if err == nil {
			err = lerr
		}
	}
	if err != nil {
		return "", nil, fmt.Errorf("compare source with base: %w", err)
	}
	if len(changed) == 0 && len(added) == 0 {
		return b.Commit, nil, nil
	}
	root, err := os.OpenRoot(src.top)
	if err != nil {
		return "", nil, err
	}
	defer root.Close()
	var gone []string
	present := added
	for _, p := range changed {
		// A tracked file is kept, ignored or not, while it is a file or a
		// symlink inside the tree.
		if fi, err := lstatInTree(root, p); err == nil && (fi.Mode().IsRegular() || fi.Mode()&fs.ModeSymlink != 0) {
			present = append(present, p)
		} else {
			gone = append(gone, p)
		}
	}
	if len(gone) > 0 {
		if _, err := g.run(ctx, joinNUL(gone), "update-index", "--force-remove", "-z", "--stdin"); err != nil {
			return "", nil, fmt.Errorf("stage removals: %w", err)
		}
	}
	if len(present) > 0 {
		if _, err := g.run(ctx, joinNUL(present), "update-index", "--add", "--replace", "-z", "--stdin"); err != nil {
			return "", nil, fmt.Errorf("stage files: %w", err)
		}
	}
	tree, err := g.runText(ctx, nil, "write-tree")
	if err != nil {
		return "", nil, fmt.Errorf("write tree: %w", err)
	}
	if tree == treeOf(ctx, g, b.Commit) {
		return b.Commit, nil, nil // touched, not changed
	}
	commit, err := ws.commitTree(ctx, tree, src.head, fmt.Sprintf("claude-parallel %s: snapshot of the work folder", ws.TaskID))
	if err != nil {
		return "", nil, err
	}
	out, err := g.run(ctx, nil, "diff-tree", "-r", "-z", "--raw", "--no-renames", "--end-of-options", b.Commit, commit)
	if err != nil {
		return "", nil, fmt.Errorf("list changes since base: %w", err)
	}
	tok := splitNUL(out)
	var changes []treeChange
	for i := 0; i+1 < len(tok); i += 2 {
		meta := strings.Fields(strings.TrimPrefix(tok[i], ":"))
		if len(meta) != 5 {
			return "", nil, fmt.Errorf("list changes since base: unexpected record %q", tok[i])
		}
		c := treeChange{path: tok[i+1]}
		if meta[4] != "D" {
			c.mode, c.oid = meta[1], meta[3]
		}
		changes = append(changes, c)
	}
	return commit, changes, nil
}

// linkOrCopy makes to a hard link to from, or a copy of it.
func linkOrCopy(from, to string) error {
	_ = os.Remove(to)
	if err := os.Link(from, to); err == nil {
		return nil
	}
	b, err := os.ReadFile(from)
	if err != nil {
		return err
	}
	return os.WriteFile(to, b, 0o644)
}

// writeChanges writes changes into the upper layer: a whiteout for a path
// that went, the blob for one added or changed (from the repository, so the
// tree is exactly the commit's), folders made as the base has them.
func writeChanges(ctx context.Context, g gitCmd, lower, upper string, changes []treeChange, spec PrepareSpec) error {
	if len(changes) == 0 {
		return nil
	}
	var blobs []treeChange
	// Removals first: a file that became a folder (or the reverse) is gone
	// before its successor is written.
	for _, c := range changes {
		if !fs.ValidPath(c.path) || hasGitComponent(c.path) {
			return fmt.Errorf("refused path %q", c.path)
		}
		if c.oid == "" {
			if err := upperDirs(lower, upper, path.Dir(c.path), spec); err != nil {
				return err
			}
			p := filepath.Join(upper, filepath.FromSlash(c.path))
			if err := removeTree(p); err != nil {
				return err
			}
			if err := syscall.Mknod(p, syscall.S_IFCHR, 0); err != nil {
				return fmt.Errorf("whiteout %s: %w", c.path, err)
			}
			continue
		}
		if c.mode != "160000" { // a submodule's folder is the base's
			blobs = append(blobs, c)
		}
	}
	if len(blobs) == 0 {
		return nil
	}
	var in bytes.Buffer
	for _, c := range blobs {
		in.WriteString(c.oid + "\n")
	}
	out, err := g.run(ctx, in.Bytes(), "cat-file", "--batch")
	if err != nil {
		return fmt.Errorf("read blobs: %w", err)
	}
	for _, c := range blobs {
		hdr, rest, ok := bytes.Cut(out, []byte("\n"))
		f := strings.Fields(string(hdr))
		if !ok || len(f) != 3 || f[0] != c.oid || f[1] != "blob" {
			return fmt.Errorf("read blob %s: unexpected header %q", c.oid, hdr)
		}
		n, err := strconv.Atoi(f[2])
		if err != nil || n < 0 || n+1 > len(rest) {
			return fmt.Errorf("read blob %s: unexpected header %q", c.oid, hdr)
		}
		data := rest[:n]
		out = rest[n+1:]
		if err := upperDirs(lower, upper, path.Dir(c.path), spec); err != nil {
			return err
		}
		p := filepath.Join(upper, filepath.FromSlash(c.path))
		if err := removeTree(p); err != nil {
			return err
		}
		switch c.mode {
		case "120000":
			err = os.Symlink(string(data), p)
		case "100755":
			err = os.WriteFile(p, data, 0o755)
		default:
			err = os.WriteFile(p, data, 0o644)
		}
		if err == nil && (spec.UID >= 0 || spec.GID >= 0) {
			err = os.Lchown(p, spec.UID, spec.GID)
		}
		if err != nil {
			return fmt.Errorf("write %s: %w", c.path, err)
		}
	}
	return nil
}

// upperDirs makes the folders of dir in the upper layer that are not there,
// each as the base has it (its mode and owner become the merged folder's), or
// for a folder the base lacks, as a copy would make it. A whiteout or file on
// the way (a file that became a folder) is replaced.
func upperDirs(lower, upper, dir string, spec PrepareSpec) error {
	if dir == "." {
		return nil
	}
	if err := upperDirs(lower, upper, path.Dir(dir), spec); err != nil {
		return err
	}
	p := filepath.Join(upper, filepath.FromSlash(dir))
	if fi, err := os.Lstat(p); err == nil && fi.IsDir() {
		return nil
	} else if err == nil {
		if err := os.Remove(p); err != nil {
			return err
		}
	}
	if err := os.Mkdir(p, 0o755); err != nil {
		return err
	}
	l := filepath.Join(lower, filepath.FromSlash(dir))
	if fi, err := os.Lstat(l); err == nil && fi.IsDir() {
		return sameDirAttrs(l, p)
	}
	if spec.UID >= 0 || spec.GID >= 0 {
		return os.Lchown(p, spec.UID, spec.GID)
	}
	return nil
}

// sameDirAttrs gives folder to the owner of from, with its permissions.
func sameDirAttrs(from, to string) error {
	fi, err := os.Lstat(from)
	if err != nil {
		return err
	}
	st, ok := fi.Sys().(*syscall.Stat_t)
	if !ok {
		return fmt.Errorf("%s: no stat data", from)
	}
	if err := os.Lchown(to, int(st.Uid), int(st.Gid)); err != nil {
		return err
	}
	return os.Chmod(to, fi.Mode().Perm())
}

// ensureMounted mounts a ready workspace's overlay again when it is not
// mounted (the host restarted); a mount in place is adopted as it is.
func (w *Workspace) ensureMounted() error {
	if w.Overlay == "" {
		return nil
	}
	// Two Opens at once must not both find it missing and mount it twice.
	mountMu.Lock()
	defer mountMu.Unlock()
	if !baseKeyPattern.MatchString(w.Overlay) {
		return fmt.Errorf("%w: base key %q", ErrInvalidSpec, w.Overlay)
	}
	if mounted, err := isMountPoint(w.WorkDir); err != nil || mounted {
		return err
	}
	lower := filepath.Join(basesDir(filepath.Dir(w.Dir)), w.Overlay, workDirName)
	if _, err := os.Stat(filepath.Join(filepath.Dir(lower), baseMarker)); err != nil {
		return fmt.Errorf("mount workspace %s again: base %s: %w", w.TaskID, w.Overlay, err)
	}
	if err := mountOverlay(lower, filepath.Join(w.Dir, upperDirName), filepath.Join(w.Dir, ovWorkDirName), w.WorkDir); err != nil {
		return fmt.Errorf("mount workspace %s again: %w", w.TaskID, err)
	}
	return nil
}

var mountMu sync.Mutex

// isMountPoint reports whether dir is a mount point: it lies on another
// device than its parent.
func isMountPoint(dir string) (bool, error) {
	var st, parent syscall.Stat_t
	if err := syscall.Lstat(dir, &st); err != nil {
		if errors.Is(err, syscall.ENOENT) {
			return false, nil
		}
		return false, err
	}
	if err := syscall.Lstat(filepath.Dir(dir), &parent); err != nil {
		return false, err
	}
	return st.Dev != parent.Dev, nil
}

// unmountWork unmounts the overlay at <dir>/work if one is there, so that the
// task directory can be deleted without reaching through it.
func unmountWork(dir string) error {
	work := filepath.Join(dir, workDirName)
	for range 3 {
		mounted, err := isMountPoint(work)
		if err != nil || !mounted {
			return err
		}
		if err := unmount(work); err != nil {
			return fmt.Errorf("unmount %s: %w", work, err)
		}
	}
	return fmt.Errorf("unmount %s: still mounted", work)
}

// removeWorkspaceDir deletes a task directory, its overlay unmounted first.
func removeWorkspaceDir(dir string) error {
	if err := unmountWork(dir); err != nil {
		return err
	}
	return removeTree(dir)
}

// releaseBase deletes base key when no task directory under root names it.
func releaseBase(root, key string) error {
	if key == "" {
		return nil
	}
	if !baseKeyPattern.MatchString(key) {
		return fmt.Errorf("%w: base key %q", ErrInvalidSpec, key)
	}
	bases := basesDir(root)
	unlock, err := lockFile(context.Background(), filepath.Join(bases, key+".lock"))
	if err != nil {
		return fmt.Errorf("lock base %s: %w", key, err)
	}
	defer unlock()
	used, err := basesInUse(root)
	if err != nil {
		return err
	}
	if used[key] {
		return nil
	}
	leftovers, _ := filepath.Glob(filepath.Join(bases, key+".tmp-*"))
	for _, p := range append(leftovers, filepath.Join(bases, key)) {
		if err := removeTree(p); err != nil {
			return err
		}
	}
	// Removed while held: lockFile checks that what it locked is still
	// the file of that name.
	return os.Remove(filepath.Join(bases, key+".lock"))
}

// basesInUse lists the bases the task directories under root name.
func basesInUse(root string) (map[string]bool, error) {
	entries, err := os.ReadDir(root)
	if err != nil {
		return nil, err
	}
	used := map[string]bool{}
	for _, e := range entries {
		if !e.IsDir() || !models.IsTaskID(e.Name()) {
			continue
		}
		b, err := os.ReadFile(filepath.Join(root, e.Name(), baseRefName))
		if err == nil {
			used[strings.TrimSpace(string(b))] = true
		}
	}
	return used, nil
}

// SweepBases deletes the shared bases under root that no task directory
// names: what a process that died between removing a workspace and its base
// left behind.
func SweepBases(root string) error {
	entries, err := os.ReadDir(basesDir(root))
	if errors.Is(err, fs.ErrNotExist) {
		return nil
	}
	if err != nil {
		return err
	}
	var errs []error
	for _, e := range entries {
		key, _, _ := strings.Cut(e.Name(), ".")
		if key == "" || e.Name() == key+".lock" && slices.ContainsFunc(entries, func(o os.DirEntry) bool { return o.Name() == key }) {
			continue // a probe's leftover, or met under its own name
		}
		errs = append(errs, releaseBase(root, key))
	}
	return errors.Join(errs...)
}

// UnmountAll unmounts the overlay of every workspace under root; the
// workspaces stay, and Open mounts one again when it is used. For a process
// (a test) that deletes the folder root is in by other means.
func UnmountAll(root string) error {
	entries, err := os.ReadDir(root)
	if errors.Is(err, fs.ErrNotExist) {
		return nil
	}
	if err != nil {
		return err
	}
	var errs []error
	for _, e := range entries {
		if e.IsDir() && models.IsTaskID(e.Name()) {
			errs = append(errs, unmountWork(filepath.Join(root, e.Name())))
		}
	}
	return errors.Join(errs...)
}
