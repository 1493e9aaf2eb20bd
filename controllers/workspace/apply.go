package workspace

import (
	"context"
	"crypto/sha1"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"hash"
	"io"
	"io/fs"
	"os"
	"path"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"syscall"

	"github.com/claude-parallel/claude-parallel/models/procid"
)

// ApplyMode says where a diff is applied.
type ApplyMode string

const (
	// Worktree applies the patch to the target's working tree (three-way where
	// needed); the index and HEAD are left alone.
	Worktree ApplyMode = "worktree"
	// Branch creates a branch at the result commit in the target repository
	// without touching its working tree or HEAD.
	Branch ApplyMode = "branch"
)

// ApplyOutcome is what an apply did, or (dry run) would do.
type ApplyOutcome string

const (
	Applied        ApplyOutcome = "applied"
	AlreadyApplied ApplyOutcome = "already_applied"
	Conflict       ApplyOutcome = "conflict"
)

// ApplySpec is one apply of a captured diff.
type ApplySpec struct {
	Target string // a directory of the target repository
	Patch  []byte
	Mode   ApplyMode // "" means Worktree
	// Branch names the branch of Branch mode, normally BranchName(task id).
	Branch       string
	BaseCommit   string
	ResultCommit string
	// SourceGitDir is the workspace's git dir. Branch mode copies the result from
	// it; worktree mode reads base blobs from it for a three-way merge.
	SourceGitDir string
	// DryRun decides the outcome without writing anything to the target.
	DryRun bool
	// AllowedRoots, when not nil, must contain the target's work tree and git
	// directories when the apply runs; the target is then read and written
	// only through the directories opened for that check (roots.go). A
	// refusal matches ErrOutsideAllowedRoots.
	AllowedRoots Roots
}

// ApplyResult says what happened. Files lists the patch's files, or for a Conflict
// the files that conflict.
type ApplyResult struct {
	Outcome ApplyOutcome
	Files   []string
	Branch  string // Branch mode
	Message string // why, in words, for a Conflict
	// Top is the top of the target's work tree (worktree mode), where it was
	// when the apply opened it: the repository the apply was judged against.
	Top string
}

// BranchName is the branch Branch mode creates for a task.
func BranchName(taskID string) string { return "claude-parallel/" + taskID }

// Apply applies a diff to a target. The patch is checked (CheckPatch) before
// anything is written; an unsafe patch returns an error matching ErrUnsafePatch.
// Applying an applied diff again reports AlreadyApplied, so a retry after a crash is
// safe. A Conflict leaves the target as it was.
func Apply(ctx context.Context, spec ApplySpec) (ApplyResult, error) {
	switch spec.Mode {
	case Worktree, "":
		return applyWorktree(ctx, spec)
	case Branch:
		return applyBranch(ctx, spec)
	default:
		return ApplyResult{}, fmt.Errorf("%w: apply mode %q", ErrInvalidSpec, spec.Mode)
	}
}

// CheckApplies is a dry run of a worktree apply: Applied means the patch would
// apply (directly or by a three-way merge with the base blobs the target holds).
// It is how pending diffs are re-checked after another diff changed the target.
func CheckApplies(ctx context.Context, target string, patch []byte) (ApplyResult, error) {
	return Apply(ctx, ApplySpec{Target: target, Patch: patch, Mode: Worktree, DryRun: true})
}

// applyWorktree never lets git near the target's working tree: git resolves a
// work tree to a path string and changes into it by name, so a folder swapped
// for a symlink at that moment would receive the writes. Instead the files the
// patch touches are copied, through the checked handle of the target (os.Root
// on /proc/self/fd/N, see roots.go), into a scratch work tree; every git
// process — checks, the three-way merge, the apply itself — runs there, in a
// scratch repository whose configuration is ours (the target's filters, diff
// drivers, hooks and core.worktree are never read); and the results are
// written back through the same handle, each file to a temporary name and
// renamed over, after checking that the target's copy has not changed since
// it was read. When the server is root, what it writes is handed to the
// target's owner.
func applyWorktree(ctx context.Context, spec ApplySpec) (ApplyResult, error) {
	repo, err := inspectTarget(ctx, spec.Target, spec.AllowedRoots)
	if err != nil {
		return ApplyResult{}, err
	}
	defer repo.close()
	// From here on no other apply in this process writes the target: the
	// patch's checks below read the target too.
	defer lockTarget(repo.realTop, spec.DryRun)()
	root, err := os.OpenRoot(repo.top)
	if err != nil {
		return ApplyResult{}, err
	}
	defer root.Close()
	files, err := checkPatch(spec.Patch, linkReaderIn(root))
	if err != nil {
		return ApplyResult{}, err
	}
	if err := checkNoSymlinkParents(root, files); err != nil {
		return ApplyResult{}, err
	}
	owner, err := ownerCredential(repo.top)
	if err != nil {
		return ApplyResult{}, err
	}

	res := ApplyResult{Files: patchFiles(files), Top: repo.realTop}
	// Files already in their post-patch state are left out: after a crash part-way
	// through an apply, the rest still applies and the whole is reported applied.
	var pending []*filePatch
	for _, f := range files {
		if !matchesPostimage(root, f) {
			pending = append(pending, f)
		}
	}
	if len(pending) == 0 {
		res.Outcome = AlreadyApplied
		return res, nil
	}
	patch := spec.Patch
	if len(pending) < len(files) {
		patch = joinSegments(spec.Patch, pending)
	}
	shared, err := applyRepo()
	if err != nil {
		return ApplyResult{}, err
	}
	m, err := mirrorTarget(root, shared.dir, pending)
	if err != nil {
		return ApplyResult{}, fmt.Errorf("read target %s: %w", repo.realTop, err)
	}
	defer m.remove()
	target := gitCmd{gitDir: shared.gitDir, workTree: m.dir, dir: m.dir, config: workspaceConfig}

	// One git process decides the usual case: git apply checks every hunk
	// of every file before it writes the first, so the apply itself is the
	// check (a failure leaves the copy as it was), and only a patch that does
	// not apply forwards is tried in reverse (already there?) and merged.
	fwdErr := tryApply(ctx, target, patch, spec.DryRun)
	if fwdErr == nil {
		res.Outcome = Applied
		return finishWorktree(m, root, owner, pending, spec.DryRun, res)
	}
	if exitCode(fwdErr) != 1 { // 1: does not apply; anything else is a fault
		return ApplyResult{}, fmt.Errorf("check patch against %s: %w", repo.realTop, fwdErr)
	}
	revErr := applyCheck(ctx, target, patch, true)
	switch {
	case revErr == nil:
		// Only the reverse applies: the change is there, though the patch lacks
		// the full blob ids to prove it file by file.
		res.Outcome = AlreadyApplied
		return res, nil
	case exitCode(revErr) != 1:
		return ApplyResult{}, fmt.Errorf("check patch against %s: %w", repo.realTop, revErr)
	}

	// A merge writes objects and an index: it gets a repository of its own.
	sc, err := newScratch(ctx, nil)
	if err != nil {
		return ApplyResult{}, err
	}
	defer sc.remove()
	merged, conflicts, err := threeWay(ctx, sc, m, repo, spec.SourceGitDir, patch, pending)
	if err != nil {
		return ApplyResult{}, err
	}
	switch {
	case conflicts != nil:
		if len(conflicts) == 0 {
			conflicts = conflictFiles(ctx, target, patch, pending, gitStderr(fwdErr))
		}
		return ApplyResult{Outcome: Conflict, Files: conflicts, Top: repo.realTop,
			Message: "the patch does not apply to the target's working tree: local changes overlap"}, nil
	case merged == nil:
		res.Outcome = AlreadyApplied
		return res, nil
	}
	mergedFiles, err := checkPatch(merged, linkReaderIn(root))
	if err != nil {
		return ApplyResult{}, fmt.Errorf("three-way result: %w", err)
	}
	if err := tryApply(ctx, target, merged, spec.DryRun); err != nil {
		if exitCode(err) != 1 {
			return ApplyResult{}, fmt.Errorf("apply merged patch: %w", err)
		}
		return ApplyResult{Outcome: Conflict, Files: patchFiles(mergedFiles), Top: repo.realTop,
			Message: "the target changed during the apply"}, nil
	}
	res.Outcome = Applied
	res.Message = "applied with a three-way merge"
	return finishWorktree(m, root, owner, mergedFiles, spec.DryRun, res)
}

// tryApply applies patch to the scratch copy target, or with dry only checks
// that it would apply. Exit code 1 means it does not apply, and then the copy
// is as it was: git apply checks every hunk of every file before it writes.
func tryApply(ctx context.Context, target gitCmd, patch []byte, dry bool) error {
	if dry {
		return applyCheck(ctx, target, patch, false)
	}
	_, err := target.run(ctx, patch, "apply", "--whitespace=nowarn")
	return err
}

// finishWorktree writes the files the patch of files changed in the scratch
// copy m (already patched, unless dry) back into the target dst.
func finishWorktree(m *mirror, dst *os.Root, owner *syscall.Credential,
	files []*filePatch, dry bool, res ApplyResult) (ApplyResult, error) {
	if dry {
		return res, nil
	}
	var paths []string
	for _, f := range files {
		for _, p := range []string{f.oldPath, f.newPath} {
			if p != "" && !slices.Contains(paths, p) {
				paths = append(paths, p)
			}
		}
	}
	// Someone editing the target meanwhile wins: nothing is written over a
	// file that changed since it was copied.
	for _, p := range paths {
		if entryState(dst, p) != m.states[p] {
			return ApplyResult{Outcome: Conflict, Files: []string{p}, Top: res.Top,
				Message: "the target changed during the apply"}, nil
		}
	}
	if err := writeBack(m.root, dst, paths, owner); err != nil {
		return ApplyResult{}, fmt.Errorf("write the patched files into the target: %w", err)
	}
	return res, nil
}

// mirror is a scratch copy of the target files a patch touches.
type mirror struct {
	dir    string
	root   *os.Root
	copied []string          // the files and symlinks copied
	states map[string]string // entryState of each path in the target when copied
}

// mirrorTarget copies from the target, for every path the patch names, the
// entry there (a file, a symlink, or a directory, standing in as an empty
// one), or the first of its parents that is not a directory, so git sees in
// the copy every obstacle the target holds.
func mirrorTarget(target *os.Root, parent string, files []*filePatch) (*mirror, error) {
	dir, err := os.MkdirTemp(parent, "wt-")
	if err != nil {
		return nil, err
	}
	r, err := os.OpenRoot(dir)
	if err != nil {
		_ = removeTree(dir)
		return nil, err
	}
	m := &mirror{dir: dir, root: r, states: map[string]string{}}
	add := func(p string) error {
		if _, seen := m.states[p]; seen {
			return nil
		}
		m.states[p] = entryState(target, p)
		if fi, err := lstatInTree(target, p); err == nil && fi.IsDir() {
			// A directory where the patch puts a file: git must see it.
			return r.MkdirAll(p+"/.claude-parallel-directory", 0o755)
		}
		ok, err := copyEntry(target, r, p)
		if ok {
			m.copied = append(m.copied, p)
		}
		return err
	}
	for _, f := range files {
		for _, p := range []string{f.oldPath, f.newPath} {
			if p == "" {
				continue
			}
			blocked := false
			for _, a := range ancestors(p) {
				if fi, err := target.Lstat(a); err == nil && !fi.IsDir() {
					if err := add(a); err != nil {
						m.remove()
						return nil, err
					}
					blocked = true
					break
				}
			}
			if blocked {
				m.states[p] = entryState(target, p)
				continue
			}
			if err := add(p); err != nil {
				m.remove()
				return nil, err
			}
		}
	}
	return m, nil
}

// remove deletes the copy.
func (m *mirror) remove() {
	m.root.Close()
	_ = removeTree(m.dir)
}

// ancestors lists the parent directories of a slash-separated path, outermost
// first.
func ancestors(p string) []string {
	var out []string
	for d := path.Dir(p); d != "." && d != "/"; d = path.Dir(d) {
		out = append([]string{d}, out...)
	}
	return out
}

// entryState describes rel in root as lstat sees it, enough to tell that it
// was written, replaced or removed.
func entryState(root *os.Root, rel string) string {
	fi, err := lstatInTree(root, rel)
	switch {
	case errors.Is(err, fs.ErrNotExist) || errors.Is(err, errBeyondSymlink):
		return "absent"
	case err != nil:
		return "error: " + err.Error()
	}
	state := fmt.Sprintf("%o %d %d", fi.Mode(), fi.Size(), fi.ModTime().UnixNano())
	if st, ok := fi.Sys().(*syscall.Stat_t); ok {
		state += fmt.Sprintf(" %d %d %d.%d", st.Dev, st.Ino, st.Ctim.Sec, st.Ctim.Nsec)
	}
	return state
}

// writeBack makes each of paths in dst what it is in src: removed when src
// has nothing there (first, since a file may give way to a directory), else
// the file or symlink of src, written under a temporary name and renamed over.
func writeBack(src, dst *os.Root, paths []string, owner *syscall.Credential) error {
	if owner != nil {
		// A server running as root writes what the owner could write, as git
		// running as the owner used to: into folders the owner owns.
		for _, p := range paths {
			if err := checkOwnedFolder(dst, p, owner.Uid); err != nil {
				return err
			}
		}
	}
	for _, p := range paths {
		if _, err := lstatInTree(src, p); !errors.Is(err, fs.ErrNotExist) {
			continue
		}
		if _, err := lstatInTree(dst, p); errors.Is(err, fs.ErrNotExist) {
			continue
		}
		if err := dst.Remove(p); err != nil && !errors.Is(err, fs.ErrNotExist) {
			return err
		}
		// As git apply does, folders the removal left empty go too.
		for _, d := range slices.Backward(ancestors(p)) {
			if dst.Remove(d) != nil {
				break
			}
		}
	}
	for _, p := range paths {
		fi, err := lstatInTree(src, p)
		if errors.Is(err, fs.ErrNotExist) {
			continue
		}
		if err != nil {
			return err
		}
		if err := writeEntry(src, dst, p, fi, owner); err != nil {
			return fmt.Errorf("%s: %w", p, err)
		}
	}
	return nil
}

// checkOwnedFolder checks that the nearest existing folder holding p is
// owned by uid.
func checkOwnedFolder(dst *os.Root, p string, uid uint32) error {
	dirs := append([]string{"."}, ancestors(p)...)
	for _, d := range slices.Backward(dirs) {
		fi, err := dst.Lstat(d)
		if errors.Is(err, fs.ErrNotExist) {
			continue
		}
		if err != nil {
			return err
		}
		if st, ok := fi.Sys().(*syscall.Stat_t); !ok || st.Uid != uid {
			return fmt.Errorf("%s: folder %s is not owned by the repository's owner (uid %d)", p, d, uid)
		}
		return nil
	}
	return nil
}

// writeEntry writes the file or symlink p of src into dst.
func writeEntry(src, dst *os.Root, p string, fi fs.FileInfo, owner *syscall.Credential) (err error) {
	for _, d := range ancestors(p) {
		err := dst.Mkdir(d, 0o755)
		switch {
		case err == nil:
			if owner != nil {
				if err := dst.Lchown(d, int(owner.Uid), int(owner.Gid)); err != nil {
					return err
				}
			}
		case !errors.Is(err, fs.ErrExist):
			return err
		}
	}
	tmp := path.Join(path.Dir(p), ".claude-parallel-"+randomSuffix())
	defer func() {
		if err != nil {
			_ = dst.Remove(tmp)
		}
	}()
	if fi.Mode()&fs.ModeSymlink != 0 {
		t, err := src.Readlink(p)
		if err != nil {
			return err
		}
		if err := dst.Symlink(t, tmp); err != nil {
			return err
		}
	} else {
		perm := fs.FileMode(0o644)
		if fi.Mode()&0o111 != 0 {
			perm = 0o755
		}
		// A file the patch modifies keeps its permission bits unless the
		// patch changes whether it is executable.
		if old, err := lstatInTree(dst, p); err == nil && old.Mode().IsRegular() && (old.Mode()&0o111 != 0) == (perm&0o111 != 0) {
			perm = old.Mode().Perm()
		}
		if err := copyTo(src, dst, p, tmp, perm); err != nil {
			return err
		}
	}
	if owner != nil {
		if err := dst.Lchown(tmp, int(owner.Uid), int(owner.Gid)); err != nil {
			return err
		}
	}
	return dst.Rename(tmp, p)
}

// copyTo copies the regular file from of src to the new file to of dst.
func copyTo(src, dst *os.Root, from, to string, perm fs.FileMode) (err error) {
	// O_NOFOLLOW: if the entry became a symlink since it was looked at, fail
	// rather than read whatever it points at. O_NONBLOCK: if it became a FIFO,
	// the open returns (and the check below refuses it) instead of waiting for
	// a writer for ever; it changes nothing for a regular file.
	in, err := src.OpenFile(from, os.O_RDONLY|syscall.O_NOFOLLOW|syscall.O_NONBLOCK, 0)
	if err != nil {
		return err
	}
	defer in.Close()
	if st, err := in.Stat(); err != nil || !st.Mode().IsRegular() {
		return fmt.Errorf("%s: no longer a regular file", from)
	}
	out, err := dst.OpenFile(to, os.O_WRONLY|os.O_CREATE|os.O_EXCL|syscall.O_NOFOLLOW, perm)
	if err != nil {
		return err
	}
	defer func() {
		if cerr := out.Close(); err == nil {
			err = cerr
		}
	}()
	if _, err := io.Copy(out, in); err != nil {
		return err
	}
	return out.Chmod(perm) // the umask must not decide the mode git records
}

func applyCheck(ctx context.Context, target gitCmd, patch []byte, reverse bool) error {
	args := []string{"apply", "--check", "--whitespace=nowarn"}
	if reverse {
		args = append(args, "--reverse")
	}
	_, err := target.run(ctx, patch, args...)
	return err
}

func patchFiles(files []*filePatch) []string {
	names := make([]string, 0, len(files))
	for _, f := range files {
		names = append(names, f.path())
	}
	return names
}

// checkNoSymlinkParents refuses a patch that would write beneath a symlink the
// target already has (git apply refuses too; this names the reason).
func checkNoSymlinkParents(root *os.Root, files []*filePatch) error {
	for _, f := range files {
		for _, p := range []string{f.oldPath, f.newPath} {
			for dir := path.Dir(p); p != "" && dir != "."; dir = path.Dir(dir) {
				if fi, err := root.Lstat(dir); err == nil && fi.Mode()&fs.ModeSymlink != 0 {
					return unsafePath(p, "beneath symlink "+dir+" of the target")
				}
			}
		}
	}
	return nil
}

// linkReaderIn reads symlinks of the target without following any.
func linkReaderIn(root *os.Root) linkReader {
	return func(p string) (string, bool) {
		fi, err := lstatInTree(root, p)
		if err != nil || fi.Mode()&fs.ModeSymlink == 0 {
			return "", false
		}
		t, err := root.Readlink(p)
		return t, err == nil
	}
}

// matchesPostimage reports whether a file of the patch is already in its post-patch
// state in the target, judged by the full blob id and mode the patch records.
// Without a full id for changed content it cannot tell and says no.
func matchesPostimage(root *os.Root, f *filePatch) bool {
	if f.deleted || (f.renameOrCopy && !f.copy && f.oldPath != f.newPath) {
		if _, err := lstatInTree(root, f.oldPath); !errors.Is(err, fs.ErrNotExist) {
			return false
		}
		if f.deleted {
			return true
		}
	}
	fi, err := lstatInTree(root, f.newPath)
	if err != nil {
		return false
	}
	if want := f.finalMode(); want != "" && want != gitMode(fi) {
		return false
	}
	switch {
	case f.newOID == "" && f.hunks == 0 && !f.binary:
		return true // mode change or pure rename: no content to compare
	case !oidPattern.MatchString(f.newOID):
		return false
	default:
		sum, err := blobID(root, f.newPath, fi, len(f.newOID))
		return err == nil && sum == f.newOID
	}
}

// joinSegments rebuilds a patch from some of its files.
func joinSegments(patch []byte, files []*filePatch) []byte {
	var b []byte
	for _, f := range files {
		b = append(b, patch[f.start:f.end]...)
	}
	return b
}

func gitMode(fi fs.FileInfo) string {
	switch {
	case fi.Mode()&fs.ModeSymlink != 0:
		return "120000"
	case fi.Mode()&0o111 != 0:
		return "100755"
	default:
		return "100644"
	}
}

// blobID computes the git object id of a file as stored without conversions.
func blobID(root *os.Root, p string, fi fs.FileInfo, hexLen int) (string, error) {
	var h hash.Hash = sha1.New()
	if hexLen == 64 {
		h = sha256.New()
	}
	var (
		size    int64
		content io.Reader
	)
	if fi.Mode()&fs.ModeSymlink != 0 {
		t, err := root.Readlink(p)
		if err != nil {
			return "", err
		}
		size, content = int64(len(t)), strings.NewReader(t)
	} else {
		f, err := root.OpenFile(p, os.O_RDONLY|syscall.O_NOFOLLOW|syscall.O_NONBLOCK, 0) // a FIFO: refused below, not waited on
		if err != nil {
			return "", err
		}
		defer f.Close()
		st, err := f.Stat()
		if err != nil || !st.Mode().IsRegular() {
			return "", fmt.Errorf("%s: not a regular file", p)
		}
		size, content = st.Size(), f
	}
	fmt.Fprintf(h, "blob %d\x00", size)
	if _, err := io.Copy(h, content); err != nil {
		return "", err
	}
	return hex.EncodeToString(h.Sum(nil)), nil
}

// targetLocks serialises applies to one repository within this process, so two
// diffs applied at once cannot interleave their checks and writes; dry runs, which
// write nothing in the target, share the lock with each other. Across processes,
// only the holder of the leader lease applies. (One small entry stays per
// repository ever applied to.)
var targetLocks sync.Map // path → *sync.RWMutex

func lockTarget(key string, dryRun bool) (unlock func()) {
	m, _ := targetLocks.LoadOrStore(key, &sync.RWMutex{})
	mu := m.(*sync.RWMutex)
	if dryRun {
		mu.RLock()
		return mu.RUnlock
	}
	mu.Lock()
	return mu.Unlock
}

// scratch is a throwaway repository whose configuration is ours.
type scratch struct{ dir, gitDir string }

func newScratch(_ context.Context, owner *syscall.Credential) (*scratch, error) {
	return makeScratch("", "claude-parallel-apply-", owner)
}

func makeScratch(tmp, prefix string, owner *syscall.Credential) (*scratch, error) {
	dir, err := os.MkdirTemp(tmp, prefix)
	if err != nil {
		return nil, err
	}
	sc := &scratch{dir: dir, gitDir: filepath.Join(dir, "git")}
	// What git init --bare --template= would make, written here: git needs
	// only HEAD, objects/ and refs/ to take a directory for a repository, and
	// an apply that runs one git process should not spend a second on this.
	err = os.MkdirAll(filepath.Join(sc.gitDir, "objects"), 0o700)
	if err == nil {
		err = os.Mkdir(filepath.Join(sc.gitDir, "refs"), 0o700)
	}
	if err == nil {
		err = os.WriteFile(filepath.Join(sc.gitDir, "HEAD"), []byte("ref: refs/heads/main\n"), 0o600)
	}
	if err != nil {
		sc.remove()
		return nil, fmt.Errorf("create scratch repository: %w", err)
	}
	if owner != nil {
		if err := chownTree(dir, int(owner.Uid), int(owner.Gid)); err != nil {
			sc.remove()
			return nil, err
		}
	}
	return sc, nil
}

// applyRepo returns the empty repository, one per process, in which the
// plain applies and checks of every worktree apply run git, each on its own
// copy of the target's files made in a fresh folder inside it. Plain git
// apply writes nothing but those files, so the repository is shared rather
// than made and removed for every apply: on a busy disk each of those
// folders and files is a metadata operation that may wait for the journal.
// One that was removed from under the process (a temp cleaner) is made anew.
func applyRepo() (*scratch, error) {
	sharedScratch.Lock()
	defer sharedScratch.Unlock()
	if sc := sharedScratch.sc; sc != nil {
		if _, err := os.Lstat(filepath.Join(sc.gitDir, "HEAD")); err == nil {
			return sc, nil
		}
		sc.remove()
		sharedScratch.sc = nil
	}
	// The folder outlives the process (nothing removes it at exit), so the
	// first apply of a process removes those of processes that are gone.
	sc, err := newSharedScratch(os.TempDir())
	if err != nil {
		return nil, err
	}
	sharedScratch.sc = sc
	return sc, nil
}

// sharedScratchPrefix names the shared scratch repositories; sharedOwner is
// the file in one that names its process (procid), so a later process can
// tell whether that one is certainly gone.
const (
	sharedScratchPrefix = "claude-parallel-apply-shared-"
	sharedOwner         = "owner"
)

// newSharedScratch sweeps tmp (sweepSharedScratch) and makes this process's
// shared scratch repository there, its owner file naming this process.
func newSharedScratch(tmp string) (*scratch, error) {
	sweepSharedScratch(tmp)
	sc, err := makeScratch(tmp, sharedScratchPrefix, nil)
	if err != nil {
		return nil, err
	}
	if err := os.WriteFile(filepath.Join(sc.dir, sharedOwner), []byte(procid.New()), 0o600); err != nil {
		sc.remove()
		return nil, fmt.Errorf("create scratch repository: %w", err)
	}
	return sc, nil
}

// sweepSharedScratch removes the shared scratch repositories in tmp whose
// process is certainly gone (procid.Gone: same boot and pid namespace, its
// pid free or reused). One without an owner file is left: it may be in the
// making, and a process in another pid namespace sharing tmp is never
// judged.
func sweepSharedScratch(tmp string) {
	entries, err := os.ReadDir(tmp)
	if err != nil {
		return
	}
	for _, e := range entries {
		if !e.IsDir() || !strings.HasPrefix(e.Name(), sharedScratchPrefix) {
			continue
		}
		dir := filepath.Join(tmp, e.Name())
		owner, err := os.ReadFile(filepath.Join(dir, sharedOwner))
		if err == nil && procid.Gone(string(owner)) {
			_ = removeTree(dir)
		}
	}
}

var sharedScratch struct {
	sync.Mutex
	sc *scratch
}

func (s *scratch) remove() { _ = removeTree(s.dir) }
