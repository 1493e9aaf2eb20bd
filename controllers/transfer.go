package controllers

import (
	"archive/tar"
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path"
	"path/filepath"
	"strconv"
	"strings"

	"go.uber.org/zap"

	"github.com/claude-parallel/claude-parallel/config"
	"github.com/claude-parallel/claude-parallel/controllers/engine"
	"github.com/claude-parallel/claude-parallel/controllers/workspace"
)

// The copy workspace transfer (workspace_transfer: copy, the default for an
// engine that is not on a local unix socket): the engine may run on another
// machine, so no host path can be mounted. The run's container is created
// with the workspace's mounts as copy targets (engine.RunSpec.CopyMounts);
// before it starts, the work tree and the agent's home are copied in through
// the Docker API (transferIn); after it exits, they are copied back out into
// the local workspace (transferOut), and the diff is captured from there as
// in bind mode.
//
// Both directions are safe to repeat after a crash at any point: copy-in
// runs again whenever an adopted container is still only created (the same
// snapshot overwrites what a cut copy left), and copy-out extracts into a
// fresh folder beside the local tree, swaps it in, and only then writes a
// marker saying the run's tree is home; until the marker exists it is taken
// again from the stopped container.

// Transfer steps, reported to Deps.AfterStep like the Steps of a run (they
// are not in Steps: a bind-mode run never reaches them).
const (
	StepCopyingIn  Step = "copying-in"  // part of the workspace sent into the created container
	StepCopiedIn   Step = "copied-in"   // the workspace is in the container, not yet started
	StepCopyingOut Step = "copying-out" // part of the work tree read back into the local folder
	StepCopiedOut  Step = "copied-out"  // the work tree replaced locally, the diff not yet captured
	transferMarker      = ".copied-out-run-"
	copiedInMarker      = ".copied-in-run-"
	incomingSuffix      = ".incoming"
	outgoingSuffix      = ".old"
)

// TransferSteps lists the copy-mode steps in order.
func TransferSteps() []Step {
	return []Step{StepCopyingIn, StepCopiedIn, StepCopyingOut, StepCopiedOut}
}

// archiveCopier is what the copy transfer needs of the engine, part of the
// ContainerRuntime port.
type archiveCopier interface {
	CopyIn(ctx context.Context, id string, mounts []engine.Mount, user string, progress func(sent int64)) error
	CopyOut(ctx context.Context, id, path string) (io.ReadCloser, error)
}

var _ archiveCopier = (*engine.Engine)(nil)

// errTreeTooLarge reports a work tree copied out past limits.workspace_max_bytes.
var errTreeTooLarge = errors.New("the container's work tree is larger than limits.workspace_max_bytes")

// transferIn copies the workspace into a copy-mode container that has not
// started yet. A created container has the copy targets of spec; an adopted
// one those its labels recorded when it was created.
func (r *taskReconciler) transferIn(ctx context.Context, sc *taskScope, ws *workspace.Workspace, info engine.ContainerInfo,
	spec engine.RunSpec, adopted bool) error {
	s, t := r.deps, sc.task
	targets, copyMode := engine.CopyTargets(info.Labels)
	if !adopted {
		copyMode, targets = spec.CopyMounts, nil
		for _, m := range spec.Mounts {
			targets = append(targets, path.Clean(m.Target))
		}
	}
	if !copyMode {
		return nil
	}
	c := s.rt
	user := spec.User
	if adopted && info.User != "" {
		user = info.User
	}
	run := t.Status.RunNumber
	reported := false
	progress := func(int64) {
		if !reported {
			reported = true
			s.step(StepCopyingIn, t.ID, run)
		}
	}
	mounts := make([]engine.Mount, 0, len(targets))
	for _, target := range targets {
		i := slicesIndexTarget(spec.Mounts, target)
		if i < 0 {
			return fmt.Errorf("copy into container %s: no workspace folder for its target %s", info.Name, target)
		}
		mounts = append(mounts, engine.Mount{Source: spec.Mounts[i].Source, Target: target})
	}
	if err := c.CopyIn(ctx, info.ID, mounts, user, progress); err != nil {
		return fmt.Errorf("copy workspace in: %w", err)
	}
	// Witness of a copy-mode run for transferOut, should its container be
	// gone by the time the run is collected.
	if err := writeMarker(filepath.Join(ws.Dir, copiedInMarker+strconv.Itoa(run))); err != nil {
		return err
	}
	s.step(StepCopiedIn, t.ID, run)
	return nil
}

func slicesIndexTarget(mounts []engine.Mount, target string) int {
	for i, m := range mounts {
		if path.Clean(m.Target) == target {
			return i
		}
	}
	return -1
}

// transferOut brings the work tree and the agent's home of a copy-mode run
// back into the local workspace, once per run. It reports false, with the
// outcome set in in, when the run's changes cannot be collected (the
// container is gone, or its tree is over the size limit); true means capture
// the diff as usual. A bind-mode run is left alone.
func (r *taskReconciler) transferOut(ctx context.Context, sc *taskScope, ws *workspace.Workspace, in *outcomeInput) (bool, error) {
	s, t := r.deps, sc.task
	run := t.Status.RunNumber
	marker := filepath.Join(ws.Dir, transferMarker+strconv.Itoa(run))
	if _, err := os.Lstat(marker); err == nil {
		return true, nil
	}
	// A swap cut after its first rename left the local tree aside: put it
	// back, so a run whose container is gone still finds its workspace.
	for _, dir := range []string{ws.WorkDir, ws.HomeDir} {
		restoreAside(dir)
	}
	info, err := s.rt.Inspect(ctx, containerRef(t))
	switch {
	case errors.Is(err, engine.ErrNotFound):
		if _, statErr := os.Lstat(filepath.Join(ws.Dir, copiedInMarker+strconv.Itoa(run))); errors.Is(statErr, fs.ErrNotExist) {
			return true, nil // a bind-mode run: its tree is here already
		}
		in.Capture, in.CaptureText = captureNoWorkdir, fmt.Sprintf("the container of run %d is gone, and with it "+
			"the work tree it was copied into (workspace_transfer: copy); the run's changes cannot be collected", run)
		t.Status.DiffID = ""
		return false, nil
	case err != nil:
		return false, fmt.Errorf("inspect container: %w", err)
	}
	targets, ok := engine.CopyTargets(info.Labels)
	if !ok {
		return true, nil
	}
	c := s.rt
	budget := s.config().Limits.WorkspaceMaxBytes
	if budget <= 0 {
		budget = -1 // no cap
	}
	reported := false
	progress := func() {
		if !reported {
			reported = true
			s.step(StepCopyingOut, t.ID, run)
		}
	}
	for i, target := range targets {
		// buildRunSpec lists the work tree first and the agent's home second.
		local := ws.WorkDir
		if i == 1 {
			local = ws.HomeDir
		} else if i > 1 {
			continue
		}
		err := copyTreeOut(ctx, c, info.ID, target, local, &budget, progress)
		if errors.Is(err, errTreeTooLarge) {
			in.Capture, in.CaptureText = captureRefused, fmt.Sprintf("run %d: %v (%s); its changes were not collected",
				run, err, config.FormatBytes(s.config().Limits.WorkspaceMaxBytes))
			t.Status.DiffID = ""
			return false, nil
		}
		if err != nil {
			return false, fmt.Errorf("copy work tree out of %s: %w", info.Name, err)
		}
	}
	if err := writeMarker(marker); err != nil {
		return false, err
	}
	s.log.Info("work tree copied out", zap.String("task", t.ID), zap.Int("run", run), zap.String("container", info.Name))
	s.step(StepCopiedOut, t.ID, run)
	return true, nil
}

// copyTreeOut replaces the local folder dst with the container's tree at
// target: extracted into dst.incoming, then swapped in by two renames.
func copyTreeOut(ctx context.Context, c archiveCopier, id, target, dst string, budget *int64, progress func()) error {
	incoming, old := dst+incomingSuffix, dst+outgoingSuffix
	if err := os.RemoveAll(incoming); err != nil {
		return err
	}
	if err := os.Mkdir(incoming, 0o700); err != nil {
		return err
	}
	rc, err := c.CopyOut(ctx, id, target)
	if err != nil {
		return err
	}
	defer rc.Close()
	root, err := os.OpenRoot(incoming)
	if err != nil {
		return err
	}
	err = extractTree(rc, path.Base(target), root, budget, progress)
	root.Close()
	if err != nil {
		_ = os.RemoveAll(incoming)
		return err
	}
	if err := os.RemoveAll(old); err != nil {
		return err
	}
	if err := os.Rename(dst, old); err != nil && !errors.Is(err, fs.ErrNotExist) {
		return err
	}
	if err := os.Rename(incoming, dst); err != nil {
		return err
	}
	return os.RemoveAll(old)
}

// restoreAside undoes a swap cut between its two renames.
func restoreAside(dir string) {
	if _, err := os.Lstat(dir); errors.Is(err, fs.ErrNotExist) {
		_ = os.Rename(dir+outgoingSuffix, dir)
	}
}

func writeMarker(p string) error {
	f, err := os.OpenFile(p, os.O_CREATE|os.O_WRONLY|os.O_TRUNC, 0o600)
	if err != nil {
		return fmt.Errorf("write marker %s: %w", filepath.Base(p), err)
	}
	if err := f.Sync(); err != nil {
		f.Close()
		return fmt.Errorf("write marker %s: %w", filepath.Base(p), err)
	}
	return f.Close()
}

// entryOverhead is what every entry costs against the size budget besides
// its content, so a tree of a million empty files is bounded too.
const entryOverhead = 512

// extractTree writes the tar stream r — the engine's archive of a container
// directory whose entries are named below top — into dst. The archive is not
// trusted (the engine may be on another machine, and the agent chose the
// names): every write goes through dst, an os.Root, so no absolute path, ".."
// or symbolic link in it can reach outside; entries outside top, hard links
// to outside, and devices, FIFOs and sockets are refused or left out;
// permission bits are kept without set-id bits; and the content plus
// entryOverhead per entry may not exceed *budget (negative: no cap), which is
// decreased by what was written. progress is called after each entry.
func extractTree(r io.Reader, top string, dst *os.Root, budget *int64, progress func()) error {
	tr := tar.NewReader(r)
	type dirMode struct {
		name string
		mode fs.FileMode
	}
	var dirs []dirMode
	spend := func(n int64) error {
		if *budget < 0 {
			return nil
		}
		if *budget -= n; *budget < 0 {
			*budget = 0
			return errTreeTooLarge
		}
		return nil
	}
	for {
		hdr, err := tr.Next()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			return fmt.Errorf("read the container's archive: %w", err)
		}
		rel, err := entryPath(hdr.Name, top)
		if err != nil {
			return err
		}
		if err := spend(entryOverhead); err != nil {
			return err
		}
		mode := hdr.FileInfo().Mode().Perm()
		if rel == "." {
			if hdr.Typeflag == tar.TypeDir {
				dirs = append(dirs, dirMode{".", mode})
			}
			continue
		}
		if dir := path.Dir(rel); dir != "." {
			if err := dst.MkdirAll(dir, 0o700); err != nil {
				return fmt.Errorf("extract %s: %w", rel, err)
			}
		}
		switch hdr.Typeflag {
		case tar.TypeDir:
			if err := dst.Mkdir(rel, 0o700); err != nil && !errors.Is(err, fs.ErrExist) {
				return fmt.Errorf("extract %s: %w", rel, err)
			}
			dirs = append(dirs, dirMode{rel, mode})
		case tar.TypeReg:
			if err := spend(hdr.Size); err != nil {
				return err
			}
			if err := extractFile(dst, rel, mode, tr, hdr.Size); err != nil {
				return err
			}
		case tar.TypeSymlink:
			// The link is recorded as it is (git keeps links); os.Root never
			// follows it out of dst for a later entry.
			_ = dst.Remove(rel)
			if err := dst.Symlink(hdr.Linkname, rel); err != nil {
				return fmt.Errorf("extract %s: %w", rel, err)
			}
		case tar.TypeLink:
			old, err := entryPath(hdr.Linkname, top)
			if err != nil {
				return err
			}
			_ = dst.Remove(rel)
			if err := dst.Link(old, rel); err != nil {
				return fmt.Errorf("extract %s: %w", rel, err)
			}
		default:
			// FIFOs, sockets, devices: a work tree cannot carry them.
		}
		if progress != nil {
			progress()
		}
	}
	// Directory modes last, so a read-only directory did not stop its
	// entries being written.
	for i := len(dirs) - 1; i >= 0; i-- {
		if err := dst.Chmod(dirs[i].name, dirs[i].mode|0o700); err != nil {
			return fmt.Errorf("extract %s: %w", dirs[i].name, err)
		}
	}
	return nil
}

// extractFile writes one regular file of size bytes from r.
func extractFile(dst *os.Root, rel string, mode fs.FileMode, r io.Reader, size int64) error {
	_ = dst.Remove(rel) // a link or file of the same name from an earlier entry
	f, err := dst.OpenFile(rel, os.O_CREATE|os.O_EXCL|os.O_WRONLY, 0o600)
	if err != nil {
		return fmt.Errorf("extract %s: %w", rel, err)
	}
	if _, err := io.CopyN(f, r, size); err != nil {
		f.Close()
		return fmt.Errorf("extract %s: %w", rel, err)
	}
	if err := f.Close(); err != nil {
		return fmt.Errorf("extract %s: %w", rel, err)
	}
	if err := dst.Chmod(rel, mode); err != nil {
		return fmt.Errorf("extract %s: %w", rel, err)
	}
	return nil
}

// entryPath turns an archive name below top into a local relative path, and
// refuses one that is absolute, climbs with "..", or lies outside top.
func entryPath(name, top string) (string, error) {
	clean := path.Clean(strings.TrimSuffix(name, "/"))
	if path.IsAbs(name) || clean == ".." || strings.HasPrefix(clean, "../") {
		return "", fmt.Errorf("the container's archive holds an entry outside its folder: %q", name)
	}
	if clean == top {
		return ".", nil
	}
	rel, ok := strings.CutPrefix(clean, top+"/")
	if !ok || !filepath.IsLocal(rel) {
		return "", fmt.Errorf("the container's archive holds an entry outside its folder: %q", name)
	}
	return rel, nil
}
