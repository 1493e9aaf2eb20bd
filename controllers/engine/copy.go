package engine

import (
	"archive/tar"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path"
	"path/filepath"
	"strconv"
	"strings"

	"github.com/docker/docker/api/types/container"
)

// LabelCopyTargets marks a container whose workspace is copied rather than
// bind-mounted (RunSpec.CopyMounts). Its value is the JSON list of the copy
// targets in the order of RunSpec.Mounts, so a controller restarted half-way
// through a run copies the right paths back out whatever the configuration
// says by then.
const LabelCopyTargets = "claude-parallel.copy-targets"

// CopyTargets returns the copy targets recorded on a container's labels, and
// false for a container whose mounts are bind mounts.
func CopyTargets(labels map[string]string) ([]string, bool) {
	v, ok := labels[LabelCopyTargets]
	if !ok {
		return nil, false
	}
	var targets []string
	if err := json.Unmarshal([]byte(v), &targets); err != nil {
		return nil, false
	}
	return targets, true
}

// copyTargets validates the targets of a copy-mode spec and returns its
// labels with LabelCopyTargets added (a new map: the caller's is not
// changed).
func copyTargets(spec RunSpec) (map[string]string, error) {
	if spec.ReadOnlyRootfs {
		// The targets live in the container's writable layer: a read-only
		// root file system would refuse the copy before start.
		return nil, errors.New("copied mounts need a writable root file system")
	}
	targets := make([]string, 0, len(spec.Mounts))
	for _, m := range spec.Mounts {
		t := path.Clean(m.Target)
		if !path.IsAbs(m.Target) || t == "/" {
			return nil, fmt.Errorf("copy target %q must be an absolute path below /", m.Target)
		}
		if m.ReadOnly {
			return nil, fmt.Errorf("copy target %q: read-only copies are not supported", m.Target)
		}
		targets = append(targets, t)
	}
	b, err := json.Marshal(targets)
	if err != nil {
		return nil, err
	}
	labels := make(map[string]string, len(spec.Labels)+1)
	for k, v := range spec.Labels {
		labels[k] = v
	}
	labels[LabelCopyTargets] = string(b)
	return labels, nil
}

// CopyIn copies each host directory m.Source into the created (not yet
// started) container at m.Target through the Docker API, in one archive, so
// an engine on another machine gets the workspace without seeing this
// machine's files. Every entry is owned by user ("uid:gid", the container's
// user) and keeps its permission bits; symbolic links are sent as links,
// never followed; sockets, FIFOs and devices are left out. A target's parents
// that the image lacks are created by Docker, owned by root.
//
// Copying the same sources again overwrites what an interrupted copy left, so
// CopyIn is safe to repeat after a crash. progress, when not nil, is called
// after each entry is sent with the bytes of file content sent so far.
func (e *Engine) CopyIn(ctx context.Context, id string, mounts []Mount, user string, progress func(sent int64)) error {
	uid, gid, err := numericUser(user)
	if err != nil {
		return fmt.Errorf("copy into container %s: %w: %v", shortID(id), ErrRefused, err)
	}
	roots := make([]*os.Root, 0, len(mounts))
	defer func() {
		for _, r := range roots {
			r.Close()
		}
	}()
	prefixes := make([]string, 0, len(mounts))
	for _, m := range mounts {
		target := path.Clean(m.Target)
		if !path.IsAbs(m.Target) || target == "/" {
			return fmt.Errorf("copy into container %s: %w: target %q must be an absolute path below /", shortID(id), ErrRefused, m.Target)
		}
		root, err := os.OpenRoot(m.Source)
		if err != nil {
			return fmt.Errorf("copy into container %s: open %s: %w", shortID(id), m.Source, err)
		}
		roots = append(roots, root)
		prefixes = append(prefixes, strings.TrimPrefix(target, "/"))
	}

	pr, pw := io.Pipe()
	go func() {
		tw := tar.NewWriter(pw)
		var sent int64
		for i, root := range roots {
			if err := writeTree(tw, root, prefixes[i], uid, gid, &sent, progress); err != nil {
				pw.CloseWithError(err)
				return
			}
		}
		pw.CloseWithError(tw.Close())
	}()
	// Extracted at "/" so that each target directory's own entry, and with it
	// its owner, is applied too (an entry "." would be skipped). One archive:
	// every copy costs the engine a helper process and a mount of the
	// container's file system.
	err = e.api(ctx).CopyToContainer(ctx, id, "/", pr, container.CopyToContainerOptions{})
	pr.CloseWithError(errors.New("copy ended")) // unblocks the writer if Docker stopped reading
	return wrap(err, "copy the workspace into container %s", shortID(id))
}

// writeTree writes the tree of root to tw, its names starting with prefix
// ("workspace" for /workspace).
func writeTree(tw *tar.Writer, root *os.Root, prefix string, uid, gid int, sent *int64, progress func(int64)) error {
	return fs.WalkDir(root.FS(), ".", func(rel string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		info, err := root.Lstat(rel)
		if err != nil {
			return err
		}
		name := prefix
		if rel != "." {
			name = prefix + "/" + filepath.ToSlash(rel)
		}
		hdr := &tar.Header{
			Name:    name,
			Mode:    int64(info.Mode().Perm()),
			Uid:     uid,
			Gid:     gid,
			ModTime: info.ModTime(),
			Format:  tar.FormatPAX,
		}
		switch {
		case info.IsDir():
			hdr.Typeflag, hdr.Name = tar.TypeDir, name+"/"
		case info.Mode()&fs.ModeSymlink != 0:
			target, err := root.Readlink(rel)
			if err != nil {
				return err
			}
			hdr.Typeflag, hdr.Linkname = tar.TypeSymlink, target
		case info.Mode().IsRegular():
			hdr.Typeflag, hdr.Size = tar.TypeReg, info.Size()
		default:
			return nil // sockets, FIFOs, devices: nothing a work tree can carry
		}
		if err := tw.WriteHeader(hdr); err != nil {
			return err
		}
		if hdr.Typeflag == tar.TypeReg {
			f, err := root.Open(rel)
			if err != nil {
				return err
			}
			n, err := io.CopyN(tw, f, hdr.Size)
			f.Close()
			*sent += n
			if err != nil {
				return fmt.Errorf("%s: %w", rel, err)
			}
		}
		if progress != nil {
			progress(*sent)
		}
		return nil
	})
}

// CopyOut streams the container directory p (its work tree, once it has
// exited) as a tar archive whose entries are named below path.Base(p). The
// archive comes from the engine and is not trusted: see the caller's
// extraction.
func (e *Engine) CopyOut(ctx context.Context, id, p string) (io.ReadCloser, error) {
	rc, _, err := e.api(ctx).CopyFromContainer(ctx, id, p)
	if err != nil {
		return nil, wrap(err, "copy %s out of container %s", p, shortID(id))
	}
	return rc, nil
}

// numericUser parses "uid" or "uid:gid" (gid defaults to uid).
func numericUser(user string) (uid, gid int, err error) {
	if err := checkUser(user); err != nil {
		return 0, 0, err
	}
	u, g, hasGroup := strings.Cut(user, ":")
	if !hasGroup {
		g = u
	}
	uid, _ = strconv.Atoi(u)
	gid, _ = strconv.Atoi(g)
	return uid, gid, nil
}
