package engine

import (
	"context"
	"fmt"
	"math"
	"sort"
	"strings"
	"time"

	cerrdefs "github.com/containerd/errdefs"
	"github.com/docker/docker/api/types/container"
	"github.com/docker/docker/api/types/filters"
)

// Container states as Docker reports them (ContainerInfo.State).
const (
	StateCreated    = "created"
	StateRunning    = "running"
	StatePaused     = "paused"
	StateRestarting = "restarting"
	StateRemoving   = "removing"
	StateExited     = "exited"
	StateDead       = "dead"
)

// ContainerInfo is what the controllers need to know about a container. Inspect
// fills every field; List fills only ID, Name, Image, Labels, State and CreatedAt
// (Docker's list does not carry the rest — call Inspect for it). Env is deliberately
// absent: it holds secrets.
type ContainerInfo struct {
	ID      string
	Name    string // without Docker's leading "/"
	Image   string // the image reference it was created from
	ImageID string
	Labels  map[string]string

	State      string // StateRunning, StateExited, ...
	ExitCode   int
	OOMKilled  bool
	Error      string // the engine's error starting it, if any ("exec: ... not found")
	CreatedAt  time.Time
	StartedAt  time.Time // zero if never started
	FinishedAt time.Time // zero if not finished

	// The effective isolation, as the engine applied it, so tests and audits can
	// verify the hardening on the real container rather than on our request.
	User           string
	CapAdd         []string
	CapDrop        []string
	SecurityOpt    []string
	Privileged     bool
	NetworkMode    string
	ReadOnlyRootfs bool
	MemoryBytes    int64
	MemorySwap     int64
	NanoCPUs       int64
	PidsLimit      int64
	Tmpfs          map[string]string
	Mounts         []MountInfo
}

// MountInfo is one mount of a running or stopped container, as Docker reports it.
type MountInfo struct {
	Type     string // "bind", "volume", ...
	Source   string
	Target   string
	ReadOnly bool
}

// Running reports whether the container's process is (about to be) alive.
func (c ContainerInfo) Running() bool {
	return c.State == StateRunning || c.State == StateRestarting || c.State == StatePaused
}

// Finished reports whether the container ran and its process has ended, so ExitCode
// and FinishedAt are final.
func (c ContainerInfo) Finished() bool {
	return c.State == StateExited || c.State == StateDead
}

// Start starts a created container. Starting a running container is not an error
// (Docker answers "not modified"), so Start is safe to repeat after a crash.
func (e *Engine) Start(ctx context.Context, id string) error {
	if err := e.api(ctx).ContainerStart(ctx, id, container.StartOptions{}); err != nil {
		return wrap(err, "start container %s", shortID(id))
	}
	return nil
}

// Inspect returns the container's current state and configuration. idOrName may be
// an id, a unique id prefix or a name.
func (e *Engine) Inspect(ctx context.Context, idOrName string) (ContainerInfo, error) {
	resp, err := e.api(ctx).ContainerInspect(ctx, idOrName)
	if err != nil {
		return ContainerInfo{}, wrap(err, "inspect container %s", shortID(idOrName))
	}
	return infoFromInspect(resp), nil
}

// Stop sends SIGTERM (or the image's stop signal), waits up to grace (rounded up to
// whole seconds, Docker's unit) and then kills. Stopping a stopped container is not
// an error.
func (e *Engine) Stop(ctx context.Context, id string, grace time.Duration) error {
	secs := int(math.Ceil(grace.Seconds()))
	if secs < 0 {
		secs = 0
	}
	if err := e.api(ctx).ContainerStop(ctx, id, container.StopOptions{Timeout: &secs}); err != nil {
		return wrap(err, "stop container %s", shortID(id))
	}
	return nil
}

// Kill sends signal ("" means SIGKILL) to the container's main process. Killing a
// container that is not running is not an error: it is already in the state asked for.
func (e *Engine) Kill(ctx context.Context, id, signal string) error {
	if signal == "" {
		signal = "SIGKILL"
	}
	err := e.api(ctx).ContainerKill(ctx, id, signal)
	if err != nil && cerrdefs.IsConflict(err) && strings.Contains(err.Error(), "is not running") {
		// Docker reports this only as a conflict with this text; there is no typed error.
		return nil
	}
	if err != nil {
		return wrap(err, "kill container %s", shortID(id))
	}
	return nil
}

// Remove deletes the container (and its anonymous volumes). force also removes a
// running container, killing it. A container that does not exist returns ErrNotFound
// (wrapped), so a caller that only wants it gone writes
// `if err := e.Remove(ctx, id, true); err != nil && !errors.Is(err, engine.ErrNotFound)`.
// A removal already in progress is treated as success.
func (e *Engine) Remove(ctx context.Context, id string, force bool) error {
	err := e.api(ctx).ContainerRemove(ctx, id, container.RemoveOptions{Force: force, RemoveVolumes: true})
	if err != nil && cerrdefs.IsConflict(err) && strings.Contains(err.Error(), "already in progress") {
		return nil
	}
	if err != nil {
		return wrap(err, "remove container %s", shortID(id))
	}
	return nil
}

// List returns the containers carrying every label of labels (an empty value matches
// any value of that key), running ones only unless all is true. Results are sorted by
// name so callers and logs see a stable order. See ContainerInfo for the fields set.
func (e *Engine) List(ctx context.Context, labels map[string]string, all bool) ([]ContainerInfo, error) {
	list, err := e.api(ctx).ContainerList(ctx, container.ListOptions{All: all, Filters: labelFilters(labels)})
	if err != nil {
		return nil, fmt.Errorf("list containers %v: %w", labels, err)
	}
	out := make([]ContainerInfo, 0, len(list))
	for _, c := range list {
		name := ""
		if len(c.Names) > 0 {
			name = strings.TrimPrefix(c.Names[0], "/")
		}
		out = append(out, ContainerInfo{
			ID:        c.ID,
			Name:      name,
			Image:     c.Image,
			ImageID:   c.ImageID,
			Labels:    c.Labels,
			State:     string(c.State),
			CreatedAt: time.Unix(c.Created, 0),
		})
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Name < out[j].Name })
	return out, nil
}

// labelFilters turns {"k": "v", "k2": ""} into Docker's label=k=v, label=k2 filters.
func labelFilters(labels map[string]string) filters.Args {
	args := filters.NewArgs()
	for k, v := range labels {
		if v == "" {
			args.Add("label", k)
		} else {
			args.Add("label", k+"="+v)
		}
	}
	return args
}

func infoFromInspect(r container.InspectResponse) ContainerInfo {
	info := ContainerInfo{
		ID:        r.ID,
		Name:      strings.TrimPrefix(r.Name, "/"),
		ImageID:   r.Image,
		CreatedAt: parseDockerTime(r.Created),
	}
	if r.Config != nil {
		info.Image = r.Config.Image
		info.Labels = r.Config.Labels
		info.User = r.Config.User
	}
	if s := r.State; s != nil {
		info.State = string(s.Status)
		info.ExitCode = s.ExitCode
		info.OOMKilled = s.OOMKilled
		info.Error = s.Error
		info.StartedAt = parseDockerTime(s.StartedAt)
		info.FinishedAt = parseDockerTime(s.FinishedAt)
	}
	if h := r.HostConfig; h != nil {
		info.CapAdd = h.CapAdd
		info.CapDrop = h.CapDrop
		info.SecurityOpt = h.SecurityOpt
		info.Privileged = h.Privileged
		info.NetworkMode = string(h.NetworkMode)
		info.ReadOnlyRootfs = h.ReadonlyRootfs
		info.MemoryBytes = h.Memory
		info.MemorySwap = h.MemorySwap
		info.NanoCPUs = h.NanoCPUs
		if h.PidsLimit != nil {
			info.PidsLimit = *h.PidsLimit
		}
		info.Tmpfs = h.Tmpfs
	}
	for _, m := range r.Mounts {
		info.Mounts = append(info.Mounts, MountInfo{
			Type:     string(m.Type),
			Source:   m.Source,
			Target:   m.Destination,
			ReadOnly: !m.RW,
		})
	}
	return info
}

// parseDockerTime parses Docker's RFC 3339 times; Docker's "never" (year 1) and
// anything unparsable become the zero time so callers can test IsZero.
func parseDockerTime(s string) time.Time {
	t, err := time.Parse(time.RFC3339Nano, s)
	if err != nil || t.Year() <= 1 {
		return time.Time{}
	}
	return t
}
