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
	"strings"
	"syscall"
	"time"

	"github.com/claude-parallel/claude-parallel/models"
)

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
	// AllowedRoots, when not nil, must contain the work folder, its work
	// tree and its git directories at the moment the snapshot is taken; the
	// source is then read only through the directories opened for that check
	// (roots.go). A refusal matches ErrOutsideAllowedRoots.
	AllowedRoots Roots
	// UID and GID receive work/ and home/ when >= 0 (-1 leaves them): a server
	// running as root hands the tree to the container's user this way. The git
	// dir stays the server's; the container never sees it.
	UID, GID int
	// CopyOnWrite makes the work tree an overlay mount on a base shared by the
	// tasks of the same source, commit and owner, written once (cow.go); the
	// caller checks CopyOnWriteAvailable first. Otherwise the tree is copied.
	CopyOnWrite bool
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
	// Overlay is the key of the shared base work/ is an overlay on; "" when
	// work/ is a copy.
	Overlay string `json:"overlay,omitempty"`

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
	if !models.IsTaskID(id) {
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
	if err := ws.ensureMounted(); err != nil {
		return nil, err
	}
	return ws, nil
}

// Prepare creates the workspace of a task, or returns it unchanged if it is ready.
// It is Begin followed by Wait.
func Prepare(ctx context.Context, spec PrepareSpec) (*Workspace, error) {
	b, err := Begin(ctx, spec)
	if err != nil {
		return nil, err
	}
	return b.Wait(ctx)
}

// Building is a workspace being prepared (see Begin).
type Building struct {
	layout *Workspace
	done   chan struct{}
	ws     *Workspace
	err    error
}

// Layout is the workspace as it will be once ready, without its base commit: its
// directories (which exist already, so a container can be created with them as
// its mounts) and what was learnt of the source.
func (b *Building) Layout() *Workspace {
	l := *b.layout
	return &l
}

// Wait waits until the workspace is ready, or its preparation failed, or ctx
// ends: a build blocked in git (a FIFO where git reads, a stalled file system)
// must not hold its waiter past the waiter's own deadline. The build goes on
// until its own context ends.
func (b *Building) Wait(ctx context.Context) (*Workspace, error) {
	select {
	case <-b.done:
		return b.ws, b.err
	case <-ctx.Done():
	}
	// The build often runs on a context that ends with this one (Prepare):
	// give it a moment to stop and say why, which names the git command
	// that hung, rather than only that the wait ended.
	t := time.NewTimer(waitGrace)
	defer t.Stop()
	select {
	case <-b.done:
		return b.ws, b.err
	case <-t.C:
		return nil, fmt.Errorf("wait for workspace %s: %w", b.layout.TaskID, context.Cause(ctx))
	}
}

// waitGrace is how long Wait waits, once its context ended, for the build
// to report its own end: a killed git process is reaped within milliseconds.
const waitGrace = 3 * time.Second

// Begin starts preparing the workspace of a task and returns once everything that
// depends on the caller's input is checked — the task id, the work folder is a git
// work tree, the base can be resolved — and the workspace's directories exist. The
// rest (copying or checking out the source, recording the base) goes on in the
// background until Wait; it uses ctx, which must stay alive until then. An error
// from Begin is about the spec; the background part fails only for reasons of the
// host (a file that cannot be read, a full disk, git failing).
//
// The workspace is built in place under <Root>/<task id>, and the marker that
// makes it ready is written last, so a crash at any point leaves either a
// directory without a marker, which the next call removes and builds again, or a
// ready workspace. A ready workspace is returned unchanged.
func Begin(ctx context.Context, spec PrepareSpec) (*Building, error) {
	if err := validateTaskID(spec.TaskID); err != nil {
		return nil, err
	}
	if !filepath.IsAbs(spec.Root) || spec.WorkFolder == "" {
		return nil, fmt.Errorf("%w: root %q must be absolute and a work folder given", ErrInvalidSpec, spec.Root)
	}
	if ws, err := Open(spec.Root, spec.TaskID); err == nil {
		b := &Building{layout: ws, done: make(chan struct{}), ws: ws}
		close(b.done)
		return b, nil
	} else if !errors.Is(err, ErrNotFound) {
		return nil, err
	}
	// The source is opened once here and checked against the allowed roots;
	// src names its directories by those handles, so the snapshot taken in
	// the background reads the folder that was checked even if its path is
	// swapped for a symlink meanwhile. The handles live until build ends.
	// In the plain layout the repository and HEAD are read off the file
	// system (inspectPlain): a git process here was a third of the time
	// from a task's intent to its container's create on this path; HEAD's
	// tree and parents are then read by the build, beside the copy.
	src, err := inspectPlain(ctx, spec.WorkFolder, spec.AllowedRoots, true)
	if err != nil {
		return nil, err
	}
	handedOff := false
	defer func() {
		if !handedOff {
			src.close()
		}
	}()
	commit, err := importTarget(ctx, src, spec)
	if err != nil {
		return nil, fmt.Errorf("prepare %s: %w", spec.TaskID, err)
	}
	if err := os.MkdirAll(spec.Root, 0o755); err != nil {
		return nil, fmt.Errorf("prepare %s: %w", spec.TaskID, err)
	}
	dir := filepath.Join(spec.Root, spec.TaskID)
	// .prepare-<task id> is where earlier versions built a workspace.
	for _, leftover := range []string{filepath.Join(spec.Root, ".prepare-"+spec.TaskID), dir} {
		if err := removeWorkspaceDir(leftover); err != nil {
			return nil, fmt.Errorf("prepare %s: clear leftovers: %w", spec.TaskID, err)
		}
	}
	ws := &Workspace{
		TaskID:             spec.TaskID,
		IncludeUncommitted: spec.IncludeUncommitted,
		UID:                spec.UID,
		GID:                spec.GID,
		Created:            time.Now().UTC().Truncate(time.Second),
	}
	ws.setDir(dir)
	// The directories exist when Begin returns, so that a container can be
	// created with them as its mounts while the rest is prepared.
	if err := makeLayout(ws); err != nil {
		_ = removeTree(dir)
		return nil, fmt.Errorf("prepare %s: %w", spec.TaskID, err)
	}
	ws.SourceTop, ws.SourceHead = src.realTop, src.head
	if src.folderRel != "." {
		ws.Subdir = src.folderRel
	}
	layout := *ws
	b := &Building{layout: &layout, done: make(chan struct{})}
	handedOff = true
	go func() {
		defer close(b.done)
		defer src.close()
		if err := build(ctx, ws, src, spec, commit); err != nil {
			_ = ws.Remove() // and the base, when this task was its only user
			b.err = fmt.Errorf("prepare %s: %w", spec.TaskID, err)
			return
		}
		b.ws = ws
	}()
	return b, nil
}

// makeLayout makes the workspace's directories and its empty repository.
func makeLayout(ws *Workspace) error {
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
	if err := initRepository(ws.GitDir); err != nil {
		return fmt.Errorf("init workspace repository: %w", err)
	}
	return nil
}

// build fills the laid-out workspace: the work tree and its base commit (commit is
// the one to import, "" for none) in the workspace repository, and last the marker.
//
// This runs between a task's acceptance and the start of its container, and most of
// its cost is the start-up of git processes, so it starts as few as it can and runs
// the independent ones at once (see snapshotBase).
func build(ctx context.Context, ws *Workspace, src repoInfo, spec PrepareSpec, commit string) error {
	var err error
	if err := copyExcludes(src, ws.GitDir); err != nil {
		return err
	}

	var base string
	if spec.CopyOnWrite {
		base, err = buildOverlay(ctx, ws, src, spec, commit)
	} else if spec.IncludeUncommitted {
		base, err = snapshotBase(ctx, ws, src, spec)
	} else {
		base, err = checkoutBase(ctx, ws, src, spec, commit)
	}
	if err != nil {
		return err
	}
	ws.BaseCommit = base
	if err := recordBase(ws.GitDir, base); err != nil {
		return fmt.Errorf("record base: %w", err)
	}
	b, err := json.MarshalIndent(ws, "", "  ")
	if err != nil {
		return err
	}
	// The marker makes the workspace ready, so it is written whole or not at
	// all: a torn one would leave a workspace neither ready nor rebuilt (Open
	// refuses it rather than have Prepare wipe what a run may have left).
	return writeFileAtomic(filepath.Join(ws.Dir, markerName), append(b, '\n'), 0o600)
}

// initRepository creates the workspace's repository as `git init --bare
// --template=` would: repository format 0, so loose refs and SHA-1 objects. It is
// written here rather than by git because it lies on the path from a task's
// acceptance to its container's start, where every git process costs its
// start-up, and the layout of a format-0 repository is fixed.
func initRepository(gitDir string) error {
	for _, d := range []string{"objects/info", "objects/pack", "refs/heads", "refs/tags"} {
		if err := os.MkdirAll(filepath.Join(gitDir, d), 0o755); err != nil {
			return err
		}
	}
	for name, content := range map[string]string{
		"config": "[core]\n\trepositoryformatversion = 0\n\tfilemode = true\n\tbare = true\n",
		"HEAD":   "ref: refs/heads/master\n",
	} {
		if err := os.WriteFile(filepath.Join(gitDir, name), []byte(content), 0o644); err != nil {
			return err
		}
	}
	return nil
}

// recordBase points the base ref, and HEAD (detached), at base. The repository
// is the format-0 one initRepository made, whose refs are loose files, so they
// are written directly, for the same reason; base's objects are already in it.
func recordBase(gitDir, base string) error {
	if err := validateOID("base", base); err != nil {
		return err
	}
	for _, ref := range []string{baseRef, "HEAD"} {
		p := filepath.Join(gitDir, filepath.FromSlash(ref))
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			return err
		}
		if err := writeFileAtomic(p, []byte(base+"\n"), 0o644); err != nil {
			return err
		}
	}
	return nil
}

// runAll runs fns at once and returns the first error, cancelling the others'
// context when one fails.
func runAll(ctx context.Context, fns ...func(context.Context) error) error {
	if len(fns) == 1 {
		return fns[0](ctx)
	}
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	errs := make(chan error, len(fns))
	for _, fn := range fns {
		go func() { errs <- fn(ctx) }()
	}
	var first error
	for range fns {
		if err := <-errs; err != nil && first == nil {
			first = err
			cancel()
		}
	}
	return first
}

// importTarget returns the commit whose objects the workspace needs: for a
// snapshot the source's HEAD ("" when it has no commit yet), after checking that
// BaseRef names nothing else; otherwise the commit BaseRef (default HEAD) names.
func importTarget(ctx context.Context, src repoInfo, spec PrepareSpec) (string, error) {
	if spec.IncludeUncommitted {
		if spec.BaseRef != "" {
			ref, err := resolveSourceRev(ctx, src, spec.BaseRef)
			if err != nil {
				return "", err
			}
			if ref != src.head {
				return "", fmt.Errorf("%w: a snapshot of uncommitted changes is based on HEAD (%s), not %q (%s)",
					ErrInvalidSpec, src.head, spec.BaseRef, ref)
			}
		}
		return src.head, nil
	}
	rev := spec.BaseRef
	if rev == "" {
		rev = "HEAD"
	}
	return resolveSourceRev(ctx, src, rev)
}

// resolveSourceRev is resolveCommit in the source, without asking git again for
// HEAD: inspectIn has already resolved it.
func resolveSourceRev(ctx context.Context, src repoInfo, rev string) (string, error) {
	if rev != "HEAD" {
		return resolveCommit(ctx, gitCmd{gitDir: src.gitDir}, rev)
	}
	if src.head == "" {
		return "", fmt.Errorf("%w: %q does not name a commit", ErrInvalidRef, rev)
	}
	return src.head, nil
}

// snapshotBase copies the work folder as it is into work/ and returns the commit
// that records it: HEAD itself when nothing is uncommitted, else a commit on HEAD.
// Copying does not need HEAD's objects, so HEAD is imported meanwhile. Staging
// the copy waits for the import: update-index then finds the blob of every file
// HEAD has as it is already stored, and writes objects only for what differs
// (writing one loose object per file made a snapshot of 100,000 files several
// times slower than copying them).
func snapshotBase(ctx context.Context, ws *Workspace, src repoInfo, spec PrepareSpec) (string, error) {
	base, _, err := snapshotBaseCopy(ctx, ws, src, spec)
	return base, err
}

// snapshotBaseCopy is snapshotBase that also returns what it copied.
func snapshotBaseCopy(ctx context.Context, ws *Workspace, src repoInfo, spec PrepareSpec) (string, *copiedTree, error) {
	var (
		tree   string
		head   commitInfo
		copied *copiedTree
	)
	imported := make(chan struct{})
	if src.head == "" {
		close(imported)
	}
	jobs := []func(context.Context) error{func(ctx context.Context) error {
		listing, err := listWorkFolder(ctx, src)
		if err != nil {
			return err
		}
		copied, err = copySnapshot(src, ws.WorkDir, listing)
		if err != nil {
			return err
		}
		chowned, err := handOver(ws, spec)
		if err != nil {
			return err
		}
		select {
		case <-imported:
		case <-ctx.Done(): // the import failed, or the build was cancelled
			return context.Cause(ctx)
		}
		tree, err = ws.stageCopiedTree(ctx, copied, chowned)
		return err
	}}
	if src.head != "" {
		jobs = append(jobs, func(ctx context.Context) (err error) {
			head, err = importCommit(ctx, src, ws.GitDir, src.head)
			if err == nil {
				close(imported)
			}
			return err
		})
	}
	if err := runAll(ctx, jobs...); err != nil {
		return "", nil, err
	}
	if src.head != "" && tree == head.tree {
		return src.head, copied, nil
	}
	c, err := ws.commitTree(ctx, tree, src.head, fmt.Sprintf("claude-parallel %s: snapshot of the work folder", ws.TaskID))
	return c, copied, err
}

// checkoutBase writes the tree of base into work/.
func checkoutBase(ctx context.Context, ws *Workspace, src repoInfo, spec PrepareSpec, base string) (string, error) {
	if _, err := importCommit(ctx, src, ws.GitDir, base); err != nil {
		return "", err
	}
	if err := ws.checkout(ctx, base); err != nil {
		return "", err
	}
	chowned, err := handOver(ws, spec)
	if err != nil {
		return "", err
	}
	// The checkout recorded each file's stat data in the capture index, where the
	// first capture starts from; a hand-over changed every ctime since.
	if chowned {
		if err := ws.refresh(ctx); err != nil {
			return "", err
		}
	}
	return base, nil
}

// handOver gives work/ and home/ to the container's user. A chown changes every
// file's ctime, so stat data recorded before it is stale; it reports whether it
// changed owners.
func handOver(ws *Workspace, spec PrepareSpec) (bool, error) {
	if spec.UID < 0 && spec.GID < 0 {
		return false, nil
	}
	for _, d := range []string{ws.WorkDir, ws.HomeDir} {
		if err := chownTree(d, spec.UID, spec.GID); err != nil {
			return false, fmt.Errorf("hand over %s: %w", filepath.Base(d), err)
		}
	}
	return true, nil
}

// copyExcludes carries the source's info/exclude over, so files the user ignores
// that way are ignored by captures too.
func copyExcludes(src repoInfo, gitDir string) error {
	f, err := os.OpenFile(filepath.Join(src.commonDir, "info", "exclude"), os.O_RDONLY|syscall.O_NOFOLLOW|syscall.O_NONBLOCK, 0) // a FIFO: skipped below, not waited on
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

// commitInfo is what importing a commit needs to know of it besides its id.
type commitInfo struct {
	commit  string
	tree    string   // its root tree
	parents []string // its parents, which the workspace does not get
}

// readCommitInfo asks the source for a commit's tree and parents (rev-parse echoes
// the trailing "--" that makes them revisions).
func readCommitInfo(ctx context.Context, src repoInfo, commit string) (commitInfo, error) {
	out, err := gitCmd{gitDir: src.gitDir}.runText(ctx, nil, "rev-parse", commit+"^{tree}", commit+"^{commit}^@", "--")
	if err != nil {
		return commitInfo{}, fmt.Errorf("read commit %s: %w", commit, err)
	}
	lines := strings.Split(out, "\n")
	if len(lines) < 2 || lines[len(lines)-1] != "--" {
		return commitInfo{}, fmt.Errorf("read commit %s: unexpected rev-parse output %q", commit, out)
	}
	for _, oid := range lines[:len(lines)-1] {
		if !oidPattern.MatchString(oid) {
			return commitInfo{}, fmt.Errorf("read commit %s: unexpected rev-parse output %q", commit, out)
		}
	}
	return commitInfo{commit: commit, tree: lines[0], parents: lines[1 : len(lines)-1]}, nil
}

// sourceCommitInfo is readCommitInfo without a git process when inspectIn
// already learnt it.
func sourceCommitInfo(ctx context.Context, src repoInfo, commit string) (commitInfo, error) {
	if src.headCommit.commit != "" && src.headCommit.commit == commit {
		return src.headCommit, nil
	}
	return readCommitInfo(ctx, src, commit)
}

// importCommit copies commit and its tree into the workspace repository and
// returns what it learnt of the commit.
func importCommit(ctx context.Context, src repoInfo, gitDir, commit string) (commitInfo, error) {
	ci, err := sourceCommitInfo(ctx, src, commit)
	if err != nil {
		return commitInfo{}, err
	}
	return ci, importObjects(ctx, src, gitDir, ci)
}

// importObjects copies one commit and its tree (not its history) from the source
// into the workspace repository, which then records the commit as shallow. It pipes
// pack-objects into index-pack rather than cloning: with explicit git dirs on both
// sides no transport, upload-pack or ownership check is involved, and the source's
// history, possibly huge, is not copied: "--shallow" makes pack-objects treat the
// commit as having no parents, so it packs the commit and its tree only, exactly
// what rev-list --objects --no-walk would list, without a rev-list process to ask.
// index-pack verifies every object it stores.
func importObjects(ctx context.Context, src repoInfo, gitDir string, ci commitInfo) error {
	from := gitCmd{gitDir: src.gitDir}
	to := gitCmd{gitDir: gitDir, config: workspaceConfig}
	revs := fmt.Sprintf("--shallow %s\n%s\n", ci.commit, ci.commit)
	if err := pipeGit(ctx, from, []byte(revs), []string{"pack-objects", "--revs", "--stdout", "--quiet"},
		to, []string{"index-pack", "--stdin"}); err != nil {
		return fmt.Errorf("copy objects of %s: %w", ci.commit, err)
	}
	return markShallow(gitDir, ci)
}

// markShallow records the imported commit as shallow when it has parents, which
// the workspace repository does not have.
func markShallow(gitDir string, ci commitInfo) error {
	if len(ci.parents) == 0 {
		return nil
	}
	f, err := os.OpenFile(filepath.Join(gitDir, "shallow"), os.O_WRONLY|os.O_CREATE|os.O_APPEND, 0o644)
	if err != nil {
		return err
	}
	_, err = fmt.Fprintln(f, ci.commit)
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	return err
}

// listWorkFolder lists the source's index entries and its untracked, not ignored
// files. -t tags each record, "? path" for an untracked file and "H mode oid
// stage<TAB>path" (or S, M, ...) for an index entry, so an untracked name that
// looks like an index record cannot pass for one.
func listWorkFolder(ctx context.Context, src repoInfo) ([]byte, error) {
	g := gitCmd{gitDir: src.gitDir, workTree: src.top, dir: src.top}
	out, err := g.run(ctx, nil, "ls-files", "-z", "-t", "--stage", "--cached", "--others", "--exclude-standard")
	if err != nil {
		return nil, fmt.Errorf("list work folder files: %w", err)
	}
	return out, nil
}

// copySnapshot copies the source's tracked files (with uncommitted edits) and its
// untracked, not ignored files, as listWorkFolder listed them, into work/. It
// returns what it copied, each file with its blob id and the stat data of its
// copy, and the submodule entries of the source's index (a snapshot keeps them
// as they are; their contents are another repository's). Contents are read by os.Root without
// following symlinks, so a symlink in the source — or one raced in — is copied as
// a symlink and never read through.
func copySnapshot(src repoInfo, work string, out []byte) (*copiedTree, error) {
	type gitlink struct{ oid, stage string }
	links := map[string]gitlink{}
	var paths []string
	for _, rec := range splitNUL(out) {
		tag, rest, ok := strings.Cut(rec, " ")
		if !ok {
			return nil, fmt.Errorf("list work folder files: unexpected record %q", rec)
		}
		if tag == "?" {
			paths = append(paths, rest)
			continue
		}
		meta, p, ok := strings.Cut(rest, "\t")
		f := strings.Fields(meta)
		if !ok || len(f) != 3 {
			return nil, fmt.Errorf("list work folder files: unexpected record %q", rec)
		}
		if f[0] == "160000" {
			// Stage 0, or for a conflicted submodule our side (stage 2).
			if l, seen := links[p]; (f[2] == "0" || f[2] == "2") && (!seen || l.stage != "0") {
				links[p] = gitlink{f[1], f[2]}
			}
			continue
		}
		paths = append(paths, p)
	}
	from, err := os.OpenRoot(src.top)
	if err != nil {
		return nil, err
	}
	defer from.Close()
	to, err := os.OpenRoot(work)
	if err != nil {
		return nil, err
	}
	defer to.Close()
	seen := map[string]bool{}
	todo := paths[:0:0]
	for _, p := range paths {
		// "dir/" is a nested repository ls-files did not enter; conflicted files
		// are listed once per stage.
		if seen[p] || strings.HasSuffix(p, "/") || hasGitComponent(p) {
			continue
		}
		seen[p] = true
		todo = append(todo, p)
	}
	done, err := copyTree(from, to, src.top, work, todo)
	if err != nil {
		return nil, err
	}
	ct := &copiedTree{}
	for i, p := range todo {
		if done[i].ok {
			ct.paths = append(ct.paths, p)
			ct.entries = append(ct.entries, done[i])
		}
	}
	for p, l := range links {
		if !hasGitComponent(p) {
			ct.gitlinks = append(ct.gitlinks, gitlinkEntry{p, l.oid})
		}
	}
	return ct, nil
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
	var key string
	if b, err := os.ReadFile(filepath.Join(w.Dir, baseRefName)); err == nil {
		key = strings.TrimSpace(string(b))
	}
	if err := errors.Join(removeWorkspaceDir(w.Dir), removeTree(staging)); err != nil {
		return err
	}
	// The base goes with the last workspace that used it.
	return releaseBase(filepath.Dir(w.Dir), key)
}
