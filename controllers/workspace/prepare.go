package workspace

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"syscall"
	"time"
)

var taskIDPattern = regexp.MustCompile(`^task-[0-9a-f]{12}$`)

// Layout of <Root>/<task id>/.
const (
	workDirName  = "work"           // bind-mounted at /workspace
	gitDirName   = "git"            // the workspace's repository, outside the mount
	homeDirName  = "home"           // the agent's HOME
	markerName   = "workspace.json" // written last: its presence means ready
	captureIndex = "capture.index"  // index kept between captures for its stat data
	baseRef      = "refs/claude-parallel/base"
)

// PrepareSpec says which work folder a task's workspace is made from.
type PrepareSpec struct {
	TaskID     string // task-<12 hex>
	WorkFolder string // any directory inside the source work tree
	// BaseRef names the commit to check out when IncludeUncommitted is false
	// (default HEAD). With IncludeUncommitted it may only name HEAD's commit.
	BaseRef string
	// IncludeUncommitted snapshots the work folder as it is — tracked files with
	// their uncommitted edits and untracked files that are not ignored — as a
	// commit whose parent is HEAD, so the captured diff applies back onto the
	// unchanged work folder. When false, BaseRef is checked out.
	IncludeUncommitted bool
	Root               string // <data>/workspaces
	// UID and GID receive work/ and home/ when >= 0 (-1 leaves them): a server
	// running as root hands the tree to the container's user this way. The git
	// dir stays the server's; the container never sees it.
	UID, GID int
}

// Workspace is a prepared per-task workspace.
type Workspace struct {
	TaskID string `json:"task_id"`
	// BaseCommit is the commit captured diffs are taken against.
	BaseCommit string `json:"base_commit"`
	// SourceTop is the top of the source work tree; the workspace mirrors all of it.
	SourceTop string `json:"source_top"`
	// SourceHead is the source's HEAD when prepared ("" if it had no commit).
	SourceHead string `json:"source_head,omitempty"`
	// Subdir is the work folder relative to SourceTop ("" for the top), for a
	// container that should start in the same folder.
	Subdir             string    `json:"subdir,omitempty"`
	IncludeUncommitted bool      `json:"include_uncommitted"`
	UID                int       `json:"uid"`
	GID                int       `json:"gid"`
	Created            time.Time `json:"created"`

	Dir     string `json:"-"` // <Root>/<task id>
	WorkDir string `json:"-"` // Dir/work: the container's tree
	GitDir  string `json:"-"` // Dir/git
	HomeDir string `json:"-"` // Dir/home: the agent's HOME
}

func (w *Workspace) setDir(dir string) {
	w.Dir = dir
	w.WorkDir = filepath.Join(dir, workDirName)
	w.GitDir = filepath.Join(dir, gitDirName)
	w.HomeDir = filepath.Join(dir, homeDirName)
}

// git runs in the workspace's own repository with work/ as its work tree.
func (w *Workspace) git() gitCmd {
	return gitCmd{gitDir: w.GitDir, workTree: w.WorkDir, dir: w.WorkDir, config: workspaceConfig}
}

// commitDate is the fixed date of every commit the workspace makes, so the same tree
// captured twice is the same commit.
func (w *Workspace) commitDate() string {
	return fmt.Sprintf("%d +0000", w.Created.Unix())
}

func validateTaskID(id string) error {
	if !taskIDPattern.MatchString(id) {
		return fmt.Errorf("%w: task id %q", ErrInvalidSpec, id)
	}
	return nil
}

// Open returns the ready workspace of a task, or an error wrapping ErrNotFound.
func Open(root, taskID string) (*Workspace, error) {
	if err := validateTaskID(taskID); err != nil {
		return nil, err
	}
	dir := filepath.Join(root, taskID)
	b, err := os.ReadFile(filepath.Join(dir, markerName))
	if errors.Is(err, fs.ErrNotExist) {
		return nil, fmt.Errorf("%w: %s", ErrNotFound, taskID)
	}
	if err != nil {
		return nil, fmt.Errorf("open workspace %s: %w", taskID, err)
	}
	ws := &Workspace{}
	if err := json.Unmarshal(b, ws); err != nil {
		return nil, fmt.Errorf("open workspace %s: %w", taskID, err)
	}
	if ws.TaskID != taskID {
		return nil, fmt.Errorf("open workspace %s: marker names %q", taskID, ws.TaskID)
	}
	ws.setDir(dir)
	return ws, nil
}

// Prepare creates the workspace of a task, or returns it unchanged if it is ready.
// It is built under <Root>/.prepare-<task id> and renamed into place with its marker
// already written, so a crash at any point leaves either nothing or a ready
// workspace, and the next call starts over cleanly.
func Prepare(ctx context.Context, spec PrepareSpec) (*Workspace, error) {
	if err := validateTaskID(spec.TaskID); err != nil {
		return nil, err
	}
	if !filepath.IsAbs(spec.Root) || spec.WorkFolder == "" {
		return nil, fmt.Errorf("%w: root %q must be absolute and a work folder given", ErrInvalidSpec, spec.Root)
	}
	if ws, err := Open(spec.Root, spec.TaskID); err == nil || !errors.Is(err, ErrNotFound) {
		return ws, err
	}
	src, err := inspectRepo(ctx, spec.WorkFolder, true)
	if err != nil {
		return nil, err
	}
	if err := os.MkdirAll(spec.Root, 0o755); err != nil {
		return nil, fmt.Errorf("prepare %s: %w", spec.TaskID, err)
	}
	final := filepath.Join(spec.Root, spec.TaskID)
	staging := filepath.Join(spec.Root, ".prepare-"+spec.TaskID)
	for _, leftover := range []string{staging, final} {
		if err := removeTree(leftover); err != nil {
			return nil, fmt.Errorf("prepare %s: clear leftovers: %w", spec.TaskID, err)
		}
	}
	ws := &Workspace{
		TaskID:             spec.TaskID,
		SourceTop:          src.top,
		SourceHead:         src.head,
		IncludeUncommitted: spec.IncludeUncommitted,
		UID:                spec.UID,
		GID:                spec.GID,
		Created:            time.Now().UTC().Truncate(time.Second),
	}
	if real, err := filepath.EvalSymlinks(spec.WorkFolder); err == nil {
		if rel, err := filepath.Rel(src.top, real); err == nil && rel != "." {
			ws.Subdir = filepath.ToSlash(rel)
		}
	}
	ws.setDir(staging)
	if err := build(ctx, ws, src, spec); err != nil {
		_ = removeTree(staging)
		return nil, fmt.Errorf("prepare %s: %w", spec.TaskID, err)
	}
	if err := os.Rename(staging, final); err != nil {
		_ = removeTree(staging)
		return nil, fmt.Errorf("prepare %s: %w", spec.TaskID, err)
	}
	ws.setDir(final)
	return ws, nil
}

// build fills the staging directory: the layout, the workspace repository, the work
// tree and its base commit, and last the marker.
func build(ctx context.Context, ws *Workspace, src repoInfo, spec PrepareSpec) error {
	if err := os.Mkdir(ws.Dir, 0o700); err != nil {
		return err
	}
	for _, d := range []struct {
		path string
		perm fs.FileMode
	}{{ws.WorkDir, 0o755}, {ws.HomeDir, 0o700}} {
		if err := os.Mkdir(d.path, d.perm); err != nil {
			return err
		}
	}
	g := ws.git()
	if _, err := (gitCmd{}).run(ctx, nil, "init", "--quiet", "--bare", "--template=", "--end-of-options", ws.GitDir); err != nil {
		return fmt.Errorf("init workspace repository: %w", err)
	}
	if err := copyExcludes(src, ws.GitDir); err != nil {
		return err
	}

	var base string
	var err error
	if spec.IncludeUncommitted {
		base, err = snapshotBase(ctx, ws, src, spec)
	} else {
		base, err = checkoutBase(ctx, ws, src, spec)
	}
	if err != nil {
		return err
	}
	ws.BaseCommit = base
	if _, err := g.run(ctx, nil, "update-ref", "--no-deref", "-m", "prepare", "--end-of-options", baseRef, base); err != nil {
		return fmt.Errorf("record base: %w", err)
	}
	if _, err := g.run(ctx, nil, "update-ref", "--no-deref", "-m", "prepare", "--end-of-options", "HEAD", base); err != nil {
		return fmt.Errorf("record base: %w", err)
	}
	b, err := json.MarshalIndent(ws, "", "  ")
	if err != nil {
		return err
	}
	return os.WriteFile(filepath.Join(ws.Dir, markerName), append(b, '\n'), 0o600)
}

// snapshotBase copies the work folder as it is into work/ and returns the commit
// that records it: HEAD itself when nothing is uncommitted, else a commit on HEAD.
func snapshotBase(ctx context.Context, ws *Workspace, src repoInfo, spec PrepareSpec) (string, error) {
	if spec.BaseRef != "" {
		ref, err := resolveCommit(ctx, gitCmd{gitDir: src.gitDir}, spec.BaseRef)
		if err != nil {
			return "", err
		}
		if ref != src.head {
			return "", fmt.Errorf("%w: a snapshot of uncommitted changes is based on HEAD (%s), not %q (%s)",
				ErrInvalidSpec, src.head, spec.BaseRef, ref)
		}
	}
	if src.head != "" {
		if err := importCommit(ctx, src, ws.GitDir, src.head); err != nil {
			return "", err
		}
	}
	if err := copySnapshot(ctx, src, ws.WorkDir); err != nil {
		return "", err
	}
	if err := handOver(ws, spec); err != nil {
		return "", err
	}
	tree, err := ws.stage(ctx, src.head)
	if err != nil {
		return "", err
	}
	if src.head != "" && tree == treeOf(ctx, ws.git(), src.head) {
		return src.head, nil
	}
	return ws.commitTree(ctx, tree, src.head, fmt.Sprintf("claude-parallel %s: snapshot of the work folder", ws.TaskID))
}

// checkoutBase writes the tree of BaseRef (default HEAD) into work/.
func checkoutBase(ctx context.Context, ws *Workspace, src repoInfo, spec PrepareSpec) (string, error) {
	rev := spec.BaseRef
	if rev == "" {
		rev = "HEAD"
	}
	base, err := resolveCommit(ctx, gitCmd{gitDir: src.gitDir}, rev)
	if err != nil {
		return "", err
	}
	if err := importCommit(ctx, src, ws.GitDir, base); err != nil {
		return "", err
	}
	if err := ws.checkout(ctx, base); err != nil {
		return "", err
	}
	if err := handOver(ws, spec); err != nil {
		return "", err
	}
	// Staging now records the stat data the first capture starts from.
	if _, err := ws.stage(ctx, base); err != nil {
		return "", err
	}
	return base, nil
}

// handOver gives work/ and home/ to the container's user before anything records
// stat data, since a chown changes every file's ctime.
func handOver(ws *Workspace, spec PrepareSpec) error {
	for _, d := range []string{ws.WorkDir, ws.HomeDir} {
		if err := chownTree(d, spec.UID, spec.GID); err != nil {
			return fmt.Errorf("hand over %s: %w", filepath.Base(d), err)
		}
	}
	return nil
}

// copyExcludes carries the source's info/exclude over, so files the user ignores
// that way are ignored by captures too.
func copyExcludes(src repoInfo, gitDir string) error {
	f, err := os.OpenFile(filepath.Join(src.commonDir, "info", "exclude"), os.O_RDONLY|syscall.O_NOFOLLOW, 0)
	if errors.Is(err, fs.ErrNotExist) || errors.Is(err, syscall.ELOOP) {
		return nil // none, or a symlink we do not follow
	}
	if err != nil {
		return err
	}
	defer f.Close()
	if st, err := f.Stat(); err != nil || !st.Mode().IsRegular() {
		return nil
	}
	b, err := io.ReadAll(io.LimitReader(f, 1<<20))
	if err != nil {
		return err
	}
	if err := os.MkdirAll(filepath.Join(gitDir, "info"), 0o755); err != nil {
		return err
	}
	return os.WriteFile(filepath.Join(gitDir, "info", "exclude"), b, 0o644)
}

// importCommit copies one commit and its tree (not its history) from the source into
// the workspace repository, which then records the commit as shallow. It pipes
// pack-objects into index-pack rather than cloning: with explicit git dirs on both
// sides no transport, upload-pack or ownership check is involved, and the source's
// history, possibly huge, is not copied.
func importCommit(ctx context.Context, src repoInfo, gitDir, commit string) error {
	from := gitCmd{gitDir: src.gitDir}
	objects, err := from.run(ctx, nil, "rev-list", "--objects", "--no-walk", "--end-of-options", commit)
	if err != nil {
		return fmt.Errorf("list objects of %s: %w", commit, err)
	}
	to := gitCmd{gitDir: gitDir, config: workspaceConfig}
	if err := pipeGit(ctx, from, objects, []string{"pack-objects", "--stdout", "--quiet"},
		to, []string{"index-pack", "--stdin"}); err != nil {
		return fmt.Errorf("copy objects of %s: %w", commit, err)
	}
	parents, err := from.runText(ctx, nil, "rev-list", "--parents", "-n", "1", "--end-of-options", commit)
	if err != nil {
		return fmt.Errorf("read parents of %s: %w", commit, err)
	}
	if len(strings.Fields(parents)) > 1 {
		f, err := os.OpenFile(filepath.Join(gitDir, "shallow"), os.O_WRONLY|os.O_CREATE|os.O_APPEND, 0o644)
		if err != nil {
			return err
		}
		_, err = fmt.Fprintln(f, commit)
		if cerr := f.Close(); err == nil {
			err = cerr
		}
		return err
	}
	return nil
}

// copySnapshot copies the source's tracked files (with uncommitted edits) and its
// untracked, not ignored files into work/. Names come from git; contents are read by
// os.Root without following symlinks, so a symlink in the source — or one raced in —
// is copied as a symlink and never read through.
func copySnapshot(ctx context.Context, src repoInfo, work string) error {
	g := gitCmd{gitDir: src.gitDir, workTree: src.top, dir: src.top}
	out, err := g.run(ctx, nil, "ls-files", "-z", "--cached", "--others", "--exclude-standard")
	if err != nil {
		return fmt.Errorf("list work folder files: %w", err)
	}
	from, err := os.OpenRoot(src.top)
	if err != nil {
		return err
	}
	defer from.Close()
	to, err := os.OpenRoot(work)
	if err != nil {
		return err
	}
	defer to.Close()
	seen := map[string]bool{}
	for _, p := range splitNUL(out) {
		// "dir/" is a nested repository ls-files did not enter; conflicted files
		// are listed once per stage.
		if seen[p] || strings.HasSuffix(p, "/") || hasGitComponent(p) {
			continue
		}
		seen[p] = true
		if _, err := copyEntry(from, to, p); err != nil {
			return fmt.Errorf("copy %s: %w", p, err)
		}
	}
	return nil
}

func randomSuffix() string {
	var b [6]byte
	_, _ = rand.Read(b[:])
	return hex.EncodeToString(b[:])
}

// Remove deletes the workspace, including files the container's user owns and
// directories it made read-only. Removing a missing workspace is not an error.
func (w *Workspace) Remove() error {
	if w == nil || w.Dir == "" {
		return fmt.Errorf("%w: workspace has no directory", ErrInvalidSpec)
	}
	staging := filepath.Join(filepath.Dir(w.Dir), ".prepare-"+w.TaskID)
	return errors.Join(removeTree(w.Dir), removeTree(staging))
}
