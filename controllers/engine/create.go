package engine

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"

	cerrdefs "github.com/containerd/errdefs"
	"github.com/docker/docker/api/types/container"
	"github.com/docker/docker/api/types/mount"
)

// RunSpec describes one task run's container. Everything that affects isolation is
// either fixed by the engine (capabilities, privileges, tmpfs /tmp) or validated here
// (user, mounts, network, limits), so a profile or tool argument cannot weaken it.
type RunSpec struct {
	// Name is required and should be ContainerName(taskID, run): a random name would
	// defeat the name-conflict adoption that makes Create idempotent.
	Name  string
	Image string
	// Cmd is the argv; each element stays one argument (no shell splicing). Empty
	// means the image's default command.
	Cmd []string
	// Env holds KEY=VALUE pairs. Values are secrets (API keys): they are sent to
	// Docker and nowhere else — never logged, never put in errors, never returned by
	// Inspect.
	Env []string
	// Labels should be Labels(storeID, taskID, run), plus anything else.
	Labels map[string]string
	// User is "uid" or "uid:gid", numeric and non-zero ("10001:10001"). Names are
	// refused because only a number proves the process is not root.
	User string
	// WorkDir is the working directory in the container ("/workspace").
	WorkDir string
	// Network is the network mode: "none" (the default when empty), "bridge" or a
	// user-defined network. "host" and "container:<id>" are refused: they would let
	// the agent reach services bound to the host's loopback, this server included.
	Network string
	// MemoryBytes, NanoCPUs (1e9 = one CPU) and PidsLimit are required (> 0): an
	// agent must not be able to starve the host or fork-bomb it. Swap is not granted
	// beyond MemoryBytes.
	MemoryBytes int64
	NanoCPUs    int64
	PidsLimit   int64
	// Mounts are the only host paths the container sees: the task's workspace and
	// its own home directory. Sources must exist; see Create for what is refused.
	Mounts []Mount
	// ReadOnlyRootfs makes the image's filesystem read-only; /tmp stays writable
	// (tmpfs) and so do the mounts.
	ReadOnlyRootfs bool
	// TmpfsBytes caps the tmpfs on /tmp (default 256 MiB). It is charged to the
	// container's memory limit.
	TmpfsBytes int64
	// Init runs Docker's init (tini) as PID 1 so SIGTERM reaches the agent and
	// zombies are reaped. Off by default because not every engine ships docker-init.
	Init bool
	// CopyMounts makes Mounts copy targets instead of bind mounts, for an
	// engine that cannot see this machine's files: the container gets no host
	// path at all, CopyIn fills each target before start and CopyOut reads it
	// back after exit. The targets live in the writable layer, so
	// ReadOnlyRootfs is refused with it. The container is labelled
	// LabelCopyTargets.
	CopyMounts bool
}

// Mount is a bind mount of a host directory (or file) into the container.
type Mount struct {
	Source   string // absolute host path
	Target   string // absolute path in the container
	ReadOnly bool
}

const defaultTmpfsBytes = 256 << 20

// Create creates (but does not start) the container described by spec and returns its
// id. The container is always hardened:
//
//   - runs as spec.User, which must be numeric and non-zero (no root, no root group);
//   - CapDrop ALL, no-new-privileges, not privileged, a private IPC namespace;
//   - memory (without extra swap), CPU and pids limits; a tmpfs on /tmp;
//   - the network mode of the spec (default "none"; "host" refused);
//   - only the bind mounts of the spec, none of which may be "/", the Docker or
//     containerd socket, a directory containing one, or any socket file;
//   - json-file logs (what Logs reads), no restart policy, no auto-remove (the exit
//     code must survive until it has been recorded).
//
// A spec that breaks these rules is refused with ErrRefused before Docker is called.
//
// If a container with spec.Name already exists, Create returns its id together with a
// *NameConflictError (errors.Is(err, ErrNameConflict)): the caller adopts that
// container rather than creating a second one for the same task run. The existing
// container's labels are not compared; the caller decides whether it owns it.
func (e *Engine) Create(ctx context.Context, spec RunSpec) (string, error) {
	cfg, hostCfg, err := e.containerConfig(spec)
	if err != nil {
		return "", fmt.Errorf("create container %s: %w", spec.Name, err)
	}

	// Two attempts: if the conflicting container disappears between our create and
	// our inspect (removed by GC or by hand), the name is free again and a second
	// create is the right answer.
	for attempt := 0; ; attempt++ {
		resp, err := e.api(ctx).ContainerCreate(ctx, cfg, hostCfg, nil, nil, spec.Name)
		if err == nil {
			return resp.ID, nil
		}
		switch {
		case cerrdefs.IsConflict(err):
			existing, ierr := e.api(ctx).ContainerInspect(ctx, spec.Name)
			if ierr == nil {
				return existing.ID, &NameConflictError{Name: spec.Name, ID: existing.ID}
			}
			if !cerrdefs.IsNotFound(ierr) || attempt > 0 {
				return "", fmt.Errorf("create container %s: name in use, inspecting the holder: %w", spec.Name, ierr)
			}
		case cerrdefs.IsNotFound(err):
			// The only thing a create cannot find is the image.
			return "", fmt.Errorf("create container %s: %w %s: %w", spec.Name, ErrImageNotFound, spec.Image, err)
		default:
			return "", fmt.Errorf("create container %s: %w", spec.Name, err)
		}
	}
}

// containerConfig validates spec and turns it into Docker's configuration.
func (e *Engine) containerConfig(spec RunSpec) (*container.Config, *container.HostConfig, error) {
	refuse := func(format string, args ...any) error {
		return fmt.Errorf("%w: %s", ErrRefused, fmt.Sprintf(format, args...))
	}
	if spec.Name == "" {
		return nil, nil, refuse("a container name is required (use ContainerName)")
	}
	if spec.Image == "" {
		return nil, nil, refuse("an image is required")
	}
	if err := checkUser(spec.User); err != nil {
		return nil, nil, refuse("%v", err)
	}
	for i, kv := range spec.Env {
		// Never echo kv: its value may be a secret.
		if k, _, ok := strings.Cut(kv, "="); !ok || k == "" {
			return nil, nil, refuse("env[%d] is not KEY=VALUE", i)
		}
	}
	network := spec.Network
	if network == "" {
		network = "none"
	}
	if network == "host" || strings.HasPrefix(network, "container:") {
		return nil, nil, refuse("network mode %q shares another network namespace", network)
	}
	if spec.MemoryBytes <= 0 || spec.NanoCPUs <= 0 || spec.PidsLimit <= 0 {
		return nil, nil, refuse("memory, CPU and pids limits are required (got memory=%d nanoCPUs=%d pids=%d)",
			spec.MemoryBytes, spec.NanoCPUs, spec.PidsLimit)
	}
	if spec.WorkDir != "" && !filepath.IsAbs(spec.WorkDir) {
		return nil, nil, refuse("working directory %q is not absolute", spec.WorkDir)
	}
	mounts := make([]mount.Mount, 0, len(spec.Mounts))
	labels := spec.Labels
	if spec.CopyMounts {
		var err error
		if labels, err = copyTargets(spec); err != nil {
			return nil, nil, refuse("%v", err)
		}
		spec.Mounts = nil // copied, never bound
	}
	for _, m := range spec.Mounts {
		if err := e.checkMount(m); err != nil {
			return nil, nil, refuse("%v", err)
		}
		mounts = append(mounts, mount.Mount{
			Type:     mount.TypeBind,
			Source:   filepath.Clean(m.Source),
			Target:   filepath.Clean(m.Target),
			ReadOnly: m.ReadOnly,
			// rprivate: mounts made on the host later never propagate into the agent.
			BindOptions: &mount.BindOptions{Propagation: mount.PropagationRPrivate},
		})
	}
	tmpfs := spec.TmpfsBytes
	if tmpfs <= 0 {
		tmpfs = defaultTmpfsBytes
	}

	cfg := &container.Config{
		Image:      spec.Image,
		Cmd:        spec.Cmd,
		Env:        spec.Env,
		Labels:     labels,
		User:       spec.User,
		WorkingDir: spec.WorkDir,
		// No TTY and no stdin: output is multiplexed (Logs demuxes it with stdcopy) and
		// nothing can be typed into an agent.
		Tty:       false,
		OpenStdin: false,
	}
	pids := spec.PidsLimit
	hostCfg := &container.HostConfig{
		NetworkMode:    container.NetworkMode(network),
		CapDrop:        []string{"ALL"},
		SecurityOpt:    []string{"no-new-privileges"},
		Privileged:     false,
		ReadonlyRootfs: spec.ReadOnlyRootfs,
		IpcMode:        container.IPCModePrivate,
		Tmpfs: map[string]string{
			"/tmp": "rw,nosuid,nodev,mode=1777,size=" + strconv.FormatInt(tmpfs, 10),
		},
		Mounts: mounts,
		Resources: container.Resources{
			Memory: spec.MemoryBytes,
			// Equal to Memory: no swap on top of the limit, so the limit means what it says.
			MemorySwap: spec.MemoryBytes,
			NanoCPUs:   spec.NanoCPUs,
			PidsLimit:  &pids,
		},
		// json-file is what Logs reads back with timestamps on every engine; rotation
		// bounds the disk an endless agent can use (the server copies output to its own
		// task log as it arrives).
		LogConfig: container.LogConfig{
			Type:   "json-file",
			Config: map[string]string{"max-size": "50m", "max-file": "3"},
		},
		RestartPolicy: container.RestartPolicy{Name: container.RestartPolicyDisabled},
		AutoRemove:    false,
	}
	if spec.Init {
		init := true
		hostCfg.Init = &init
	}
	return cfg, hostCfg, nil
}

// checkUser accepts "uid" or "uid:gid", numeric and non-zero.
func checkUser(user string) error {
	if user == "" {
		return errors.New("a non-root user is required (e.g. \"10001:10001\"); the image default may be root")
	}
	uid, gid, hasGroup := strings.Cut(user, ":")
	n, err := strconv.ParseUint(uid, 10, 32)
	if err != nil {
		return fmt.Errorf("user %q: the uid must be numeric so it can be checked not to be root", user)
	}
	if n == 0 {
		return fmt.Errorf("user %q is root", user)
	}
	if hasGroup {
		g, err := strconv.ParseUint(gid, 10, 32)
		if err != nil {
			return fmt.Errorf("user %q: the gid must be numeric", user)
		}
		if g == 0 {
			return fmt.Errorf("user %q: group 0 is root's group", user)
		}
	}
	return nil
}

// sensitiveSockets are host paths whose exposure gives root on the host.
var sensitiveSockets = []string{
	"/var/run/docker.sock",
	"/run/docker.sock",
	"/run/containerd/containerd.sock",
	"/var/run/containerd/containerd.sock",
	"/run/podman/podman.sock",
}

// checkMount refuses bind mounts that would hand the agent the host: "/", a container
// engine's socket or any directory containing one, any socket file, and relative
// paths. Symlinks are resolved first, so a link to /var/run does not slip through.
func (e *Engine) checkMount(m Mount) error {
	if !filepath.IsAbs(m.Source) || !filepath.IsAbs(m.Target) {
		return fmt.Errorf("mount %q -> %q: both paths must be absolute", m.Source, m.Target)
	}
	target := filepath.Clean(m.Target)
	if target == "/" {
		return fmt.Errorf("mount %q -> %q: cannot mount over the container's root", m.Source, m.Target)
	}
	src := filepath.Clean(m.Source)
	candidates := []string{src}
	if resolved, err := filepath.EvalSymlinks(src); err == nil {
		candidates = append(candidates, resolved)
	}
	for _, p := range candidates {
		if p == "/" {
			return fmt.Errorf("mount %q: the host's root cannot be mounted", m.Source)
		}
		if strings.HasSuffix(p, ".sock") {
			return fmt.Errorf("mount %q: sockets cannot be mounted", m.Source)
		}
		if fi, err := os.Stat(p); err == nil && fi.Mode()&os.ModeSocket != 0 {
			return fmt.Errorf("mount %q: sockets cannot be mounted", m.Source)
		}
		for _, s := range e.sockets() {
			if s == p || strings.HasPrefix(s, p+"/") {
				return fmt.Errorf("mount %q: exposes the container engine socket %s", m.Source, s)
			}
		}
	}
	return nil
}

// sockets lists the engine sockets to protect, with symlinks resolved (/var/run is
// usually a link to /run), including the one this Engine talks to.
func (e *Engine) sockets() []string {
	list := append([]string(nil), sensitiveSockets...)
	if host := e.cli.DaemonHost(); strings.HasPrefix(host, "unix://") {
		list = append(list, strings.TrimPrefix(host, "unix://"))
	}
	if rt := os.Getenv("XDG_RUNTIME_DIR"); rt != "" {
		list = append(list, filepath.Join(rt, "docker.sock"))
	}
	out := make([]string, 0, 2*len(list))
	for _, s := range list {
		out = append(out, filepath.Clean(s))
		if dir, err := filepath.EvalSymlinks(filepath.Dir(s)); err == nil {
			out = append(out, filepath.Join(dir, filepath.Base(s)))
		}
	}
	return out
}
