package controllers

import (
	"context"
	"io"
	"path/filepath"
	"time"

	"github.com/claude-parallel/claude-parallel/controllers/engine"
	"github.com/claude-parallel/claude-parallel/controllers/workspace"
	"github.com/claude-parallel/claude-parallel/models"
	"go.uber.org/zap"
)

// The controllers reach the outside world (Docker, host git) only through the
// narrow interfaces below, so unit tests can swap in an in-memory engine and
// inject the rare failures — a create that meets a name conflict, a start that
// fails, a container that vanishes, a log stream cut mid-line — that a real
// engine produces only under duress. *engine.Engine satisfies ContainerRuntime;
// the workspace package backs Workspaces and DiffCapturer.

// ContainerRuntime is what the controllers need of a container engine. The
// semantics, errors included (engine.ErrNotFound, engine.ErrNameConflict,
// engine.ErrImageNotFound, engine.ErrRefused), are those of *engine.Engine.
type ContainerRuntime interface {
	// Create creates (does not start) a hardened container; a name conflict
	// returns the existing container's id with an error matching
	// engine.ErrNameConflict.
	Create(ctx context.Context, spec engine.RunSpec) (string, error)
	// Start starts a created container; starting a running one is a no-op.
	Start(ctx context.Context, id string) error
	// Inspect reads a container's state by id or name.
	Inspect(ctx context.Context, idOrName string) (engine.ContainerInfo, error)
	// Stop stops a container, killing it after grace.
	Stop(ctx context.Context, id string, grace time.Duration) error
	// Remove deletes a container; force kills a running one first.
	Remove(ctx context.Context, id string, force bool) error
	// List returns containers carrying every label given.
	List(ctx context.Context, labels map[string]string, all bool) ([]engine.ContainerInfo, error)
	// Logs streams timestamped output lines strictly after since.
	Logs(ctx context.Context, id string, since time.Time, follow bool) (io.ReadCloser, error)
	// Watch delivers labelled container events until ctx ends, calling
	// onReconnect after every (re)subscription.
	Watch(ctx context.Context, labels map[string]string, onEvent func(engine.Event), onReconnect func())
	// Outages lists the recent spans during which Watch had lost the engine,
	// and RefusesConnections tells a daemon that is shutting down, so that a
	// run the daemon stopped on its way down is reported as such.
	Outages() []engine.Outage
	RefusesConnections(ctx context.Context) bool
	// CopyIn and CopyOut move a workspace into a created container and its
	// work tree back out through the engine's API (workspace_transfer:
	// copy, for an engine that cannot bind a local path).
	archiveCopier
}

var _ ContainerRuntime = (*engine.Engine)(nil)

// Workspaces is every host-side git and workspace operation the controllers
// perform (DESIGN §4): preparing, opening and removing a task's workspace,
// and looking at and applying to a user's work folder. The controllers call
// package workspace for its types, errors and naming rules only, never for an
// operation, so a test can swap any of them.
type Workspaces interface {
	// Prepare creates the task's workspace, or returns it unchanged when it is
	// already ready, so it is safe to call again after a crash.
	Prepare(ctx context.Context, spec workspace.PrepareSpec) (*workspace.Workspace, error)
	// Begin checks spec and prepares the workspace in the background: the
	// returned building's Wait gives the ready workspace (preparing.go).
	Begin(ctx context.Context, spec workspace.PrepareSpec) (building, error)
	// Open returns the ready workspace of a task, or an error matching
	// workspace.ErrNotFound.
	Open(root, taskID string) (*workspace.Workspace, error)
	// Remove deletes the workspace of taskID at dir, files the container's
	// user made read-only included; a missing workspace is not an error.
	Remove(taskID, dir string) error
	// OpenWorkFolder opens a user's work folder checked against roots (nil:
	// no check); the caller closes it.
	OpenWorkFolder(ctx context.Context, folder string, roots workspace.Roots) (*workspace.WorkFolder, error)
	// Apply applies (or, with spec.DryRun, checks) a captured diff on a
	// target, with workspace.Apply's outcomes and errors.
	Apply(ctx context.Context, spec workspace.ApplySpec) (workspace.ApplyResult, error)
}

// DiffCapturer records what a finished run changed in its workspace.
type DiffCapturer interface {
	// CaptureDiff returns the change of ws against its base commit, ready to be
	// stored with models.Store.CreateDiff (TaskID and RunNumber are set by the
	// caller). It returns an error matching workspace.ErrNoChanges when the work
	// tree equals the base, and one matching workspace.ErrPatchTooLarge (whose
	// text gives the sizes) when the patch exceeds maxPatchBytes. Capturing the
	// same work tree twice gives the same result.
	CaptureDiff(ctx context.Context, ws *workspace.Workspace, run int, maxPatchBytes int64) (*models.Diff, error)
}

// hostWorkspaces is Workspaces on the host file system.
type hostWorkspaces struct {
	// copyOnWrite makes work trees overlay mounts on shared bases
	// (workspace.PrepareSpec.CopyOnWrite), when the probe found them usable.
	copyOnWrite bool
}

var _ Workspaces = hostWorkspaces{}

func (h hostWorkspaces) Prepare(ctx context.Context, spec workspace.PrepareSpec) (*workspace.Workspace, error) {
	return workspace.Prepare(ctx, h.spec(spec))
}

// spec turns copy-on-write on when the server found it usable and the
// workspace folder is one that takes overlays (probed once per folder: a
// configuration may name another one later).
func (h hostWorkspaces) spec(spec workspace.PrepareSpec) workspace.PrepareSpec {
	if h.copyOnWrite && !spec.CopyOnWrite && filepath.IsAbs(spec.Root) {
		spec.CopyOnWrite, _ = workspace.CopyOnWriteAvailable(spec.Root)
	}
	return spec
}

// newHostWorkspaces probes once whether workspaces under root can be overlay
// mounts, says which way they are made, and deletes the shared bases a
// process that died left unused. copyTransfer (workspace_transfer: copy)
// rules overlays out: the run's work tree comes back from the container and
// is swapped in for the local one by renames, which a mount point refuses.
func newHostWorkspaces(log *zap.Logger, root string, copyTransfer bool) hostWorkspaces {
	if log == nil {
		log = zap.NewNop()
	}
	ok, why := false, "no workspace folder"
	switch {
	case copyTransfer:
		why = "workspace_transfer is copy: the work tree is copied out of the container and swapped in"
	case filepath.IsAbs(root):
		ok, why = workspace.CopyOnWriteAvailable(root)
	}
	if !ok {
		log.Info("workspaces are copied per task (no copy-on-write)", zap.String("reason", why))
		return hostWorkspaces{}
	}
	log.Info("workspaces are copy-on-write overlay mounts on shared bases", zap.String("root", root))
	if err := workspace.SweepBases(root); err != nil {
		log.Warn("sweep unused workspace bases", zap.Error(err))
	}
	return hostWorkspaces{copyOnWrite: true}
}

func (h hostWorkspaces) Begin(ctx context.Context, spec workspace.PrepareSpec) (building, error) {
	b, err := workspace.Begin(ctx, h.spec(spec))
	if err != nil {
		return nil, err // not a typed nil inside the interface
	}
	return b, nil
}

func (hostWorkspaces) Open(root, taskID string) (*workspace.Workspace, error) {
	return workspace.Open(root, taskID)
}

func (hostWorkspaces) Remove(taskID, dir string) error {
	return (&workspace.Workspace{TaskID: taskID, Dir: dir}).Remove()
}

func (hostWorkspaces) OpenWorkFolder(ctx context.Context, folder string, roots workspace.Roots) (*workspace.WorkFolder, error) {
	return workspace.OpenWorkFolder(ctx, folder, roots)
}

func (hostWorkspaces) Apply(ctx context.Context, spec workspace.ApplySpec) (workspace.ApplyResult, error) {
	return workspace.Apply(ctx, spec)
}

// workspaceDiffs is DiffCapturer over workspace.CaptureDiff.
type workspaceDiffs struct{}

func (workspaceDiffs) CaptureDiff(ctx context.Context, ws *workspace.Workspace, run int, maxPatchBytes int64) (*models.Diff, error) {
	d, err := workspace.CaptureDiff(ctx, ws, workspace.CaptureOptions{MaxPatchBytes: maxPatchBytes, RunNumber: run})
	if err != nil {
		return nil, err
	}
	out := &models.Diff{
		BaseCommit:   d.BaseCommit,
		ResultCommit: d.ResultCommit,
		FilesChanged: len(d.Files),
		Additions:    d.Additions,
		Deletions:    d.Deletions,
		Patch:        d.Patch,
	}
	for _, f := range d.Files {
		out.Files = append(out.Files, models.DiffFile{
			Path:      f.Path,
			OldPath:   f.OldPath,
			Status:    string(f.Status),
			Additions: f.Additions,
			Deletions: f.Deletions,
			Binary:    f.Binary,
		})
	}
	return out, nil
}

// ports bundles the outside world of one System; tests build a System with
// fakes through newSystem.
type ports struct {
	rt         ContainerRuntime
	workspaces Workspaces
	diffs      DiffCapturer
}
