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
	"strings"
	"sync"
	"syscall"
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
}

// ApplyResult says what happened. Files lists the patch's files, or for a Conflict
// the files that conflict.
type ApplyResult struct {
	Outcome ApplyOutcome
	Files   []string
	Branch  string // Branch mode
	Message string // why, in words, for a Conflict
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

// applyWorktree runs every git process touching the target in a scratch repository
// with the target as its work tree, so the target's own configuration — filters,
// diff drivers, fsmonitor, hooks, core.worktree — is never read, and git apply's own
// guards (no paths outside the work tree, none beyond a symlink) still hold. When
// the server is root, the processes that read or write the target run as its owner.
func applyWorktree(ctx context.Context, spec ApplySpec) (ApplyResult, error) {
	repo, err := inspectRepo(ctx, spec.Target, true)
	if err != nil {
		return ApplyResult{}, err
	}
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
	defer lockTarget(repo.top, spec.DryRun)()
	sc, err := newScratch(ctx, owner)
	if err != nil {
		return ApplyResult{}, err
	}
	defer sc.remove()
	target := gitCmd{gitDir: sc.gitDir, workTree: repo.top, dir: repo.top, config: workspaceConfig, cred: owner}

	res := ApplyResult{Files: patchFiles(files)}
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

	fwdErr := applyCheck(ctx, target, patch, false)
	revErr := applyCheck(ctx, target, patch, true)
	for _, err := range []error{fwdErr, revErr} {
		if err != nil && exitCode(err) != 1 { // 1: does not apply; anything else is a fault
			return ApplyResult{}, fmt.Errorf("check patch against %s: %w", repo.top, err)
		}
	}
	switch {
	case revErr == nil && fwdErr != nil:
		// Only the reverse applies: the change is there, though the patch lacks
		// the full blob ids to prove it file by file.
		res.Outcome = AlreadyApplied
		return res, nil
	case fwdErr == nil:
		return finishWorktree(ctx, target, patch, spec.DryRun, res)
	}

	merged, conflicts, err := threeWay(ctx, sc, root, repo, spec.SourceGitDir, patch, pending)
	if err != nil {
		return ApplyResult{}, err
	}
	switch {
	case conflicts != nil:
		if len(conflicts) == 0 {
			conflicts = conflictFiles(ctx, target, patch, pending, gitStderr(fwdErr))
		}
		return ApplyResult{Outcome: Conflict, Files: conflicts,
			Message: "the patch does not apply to the target's working tree: local changes overlap"}, nil
	case merged == nil:
		res.Outcome = AlreadyApplied
		return res, nil
	}
	mergedFiles, err := checkPatch(merged, linkReaderIn(root))
	if err != nil {
		return ApplyResult{}, fmt.Errorf("three-way result: %w", err)
	}
	if err := applyCheck(ctx, target, merged, false); err != nil {
		if exitCode(err) != 1 {
			return ApplyResult{}, fmt.Errorf("check merged patch: %w", err)
		}
		return ApplyResult{Outcome: Conflict, Files: patchFiles(mergedFiles),
			Message: "the target changed during the apply"}, nil
	}
	res.Message = "applied with a three-way merge"
	return finishWorktree(ctx, target, merged, spec.DryRun, res)
}

func finishWorktree(ctx context.Context, target gitCmd, patch []byte, dry bool, res ApplyResult) (ApplyResult, error) {
	res.Outcome = Applied
	if dry {
		return res, nil
	}
	// git apply checks every hunk of every file before it writes the first one,
	// so a failure here leaves the target as it was.
	if _, err := target.run(ctx, patch, "apply", "--whitespace=nowarn"); err != nil {
		return ApplyResult{}, fmt.Errorf("apply patch: %w", err)
	}
	return res, nil
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

func newScratch(ctx context.Context, owner *syscall.Credential) (*scratch, error) {
	dir, err := os.MkdirTemp("", "claude-parallel-apply-")
	if err != nil {
		return nil, err
	}
	sc := &scratch{dir: dir, gitDir: filepath.Join(dir, "git")}
	if _, err := (gitCmd{}).run(ctx, nil, "init", "--quiet", "--bare", "--template=", "--end-of-options", sc.gitDir); err != nil {
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

func (s *scratch) remove() { _ = removeTree(s.dir) }
