// Package engine is claude-parallel's ContainerEngine: the only code that talks to the
// Docker Engine API.
//
// It does three things beyond a thin client:
//
//   - Every container is created hardened, whatever the caller asks (see Create): a
//     non-root user, all capabilities dropped, no-new-privileges, memory/CPU/pids
//     limits, the network from the spec, a tmpfs /tmp and no bind mount but the ones
//     given, which may never be the Docker socket or "/".
//   - Idempotency lives in Docker: containers have deterministic names
//     (ContainerName) and ownership labels (Labels). A create that meets an existing
//     container of the same name returns ErrNameConflict with that container's id, so
//     a controller that crashed between "create" and "record" adopts the container
//     instead of starting a second one (the pattern of nomad's docker driver).
//   - Reading the world survives restarts: Logs resumes from a docker timestamp with
//     no gap and no duplicate, and Watch keeps a label-filtered event subscription
//     alive, reconnecting with backoff and asking the caller for a full resync after
//     every (re)connect, because events missed while disconnected are lost.
//
// Errors are wrapped with the operation and the container, and classified with
// errors.Is: ErrNotFound (no such container), ErrNameConflict (see Create),
// ErrImageNotFound and ErrRefused (a spec that would weaken the hardening).
//
// Consumers define their own narrow interfaces over *Engine; none is declared here.
package engine

import (
	"context"
	"errors"
	"fmt"
	"math"
	"strings"
	"sync"
	"time"

	cerrdefs "github.com/containerd/errdefs"
	"github.com/docker/docker/client"
	"k8s.io/apimachinery/pkg/util/wait"
)

var (
	// ErrNotFound reports that the container (or, from Events, the object) does not
	// exist. Start, Stop, Kill, Remove, Inspect and Logs return it wrapped; callers that
	// want idempotent removal write `if err != nil && !errors.Is(err, ErrNotFound)`.
	ErrNotFound = errors.New("container not found")

	// ErrNameConflict reports that Create found a container with the requested name
	// already there. The error is a *NameConflictError carrying that container's id,
	// and Create returns the same id as its first result.
	ErrNameConflict = errors.New("container name already in use")

	// ErrImageNotFound reports that the image of a RunSpec is not present locally.
	// The engine never pulls: images are built on the machine (see hack/images).
	ErrImageNotFound = errors.New("image not found")

	// ErrRefused reports a RunSpec the engine will not run because it would weaken
	// the container's isolation (root user, Docker socket or "/" mounted, host
	// network, missing limits). It is a caller bug or a bad profile, never transient.
	ErrRefused = errors.New("refused by container hardening policy")
)

// NameConflictError is returned by Create when a container with the requested name
// already exists. errors.Is(err, ErrNameConflict) matches it.
type NameConflictError struct {
	Name string // the requested name
	ID   string // the id of the container that already has it
}

func (e *NameConflictError) Error() string {
	return fmt.Sprintf("container name %q already in use by %s", e.Name, shortID(e.ID))
}

// Is makes errors.Is(err, ErrNameConflict) true.
func (e *NameConflictError) Is(target error) bool { return target == ErrNameConflict }

// Engine runs claude-parallel's containers on one Docker engine. It is safe for
// concurrent use.
type Engine struct {
	cli *client.Client
	// sshHost is the ssh:// address the client reaches through ssh (its own
	// host is a placeholder then), for messages.
	sshHost string

	// negotiateMu guards the client's lazy API-version negotiation: the Docker
	// client negotiates on its first calls without synchronisation, and two
	// first calls at once race on its version field (seen with -race).
	negotiateMu sync.Mutex
	negotiated  bool

	// WatchBackoff sets the delays between reconnects of Watch. Set it before calling
	// Watch. Steps is ignored: Watch retries until its context ends, and Cap bounds
	// the delay.
	WatchBackoff wait.Backoff

	// WatchStableAfter is how long a subscription must have lived for the next
	// reconnect to start again from WatchBackoff.Duration, so an engine that accepts
	// and drops connections at once does not cause a reconnect (and resync) storm.
	WatchStableAfter time.Duration

	// outMu guards outages, the spans during which Watch had lost the engine.
	outMu   sync.Mutex
	outages []Outage
}

// New connects to the Docker engine named by host ("unix:///var/run/docker.sock",
// "tcp://..." with TLS from DOCKER_TLS_VERIFY and DOCKER_CERT_PATH,
// "ssh://user@host" through the ssh client, see sshOptions), or when host is "" by the environment (DOCKER_HOST, DOCKER_TLS_VERIFY,
// DOCKER_CERT_PATH) and then the platform default. The API version is negotiated on
// first use because engines in the field are older than this client (Debian's 20.10
// speaks API 1.41). New does not contact the engine; use Ping for that.
func New(host string) (*Engine, error) { return newEngine(host) }

// newEngine is New with extra client options (NewObserved adds tracing).
func newEngine(host string, extra ...client.Opt) (*Engine, error) {
	opts := []client.Opt{client.FromEnv, client.WithAPIVersionNegotiation()}
	switch {
	case strings.HasPrefix(host, "ssh://"):
		ssh, err := sshOptions(host)
		if err != nil {
			return nil, err
		}
		opts = append(opts, ssh...)
	case host != "":
		opts = append(opts, client.WithHost(host))
	}
	opts = append(opts, extra...)
	cli, err := client.NewClientWithOpts(opts...)
	if err != nil {
		return nil, fmt.Errorf("docker client for %q: %w", host, err)
	}
	sshHost := ""
	if strings.HasPrefix(host, "ssh://") {
		sshHost = host
	}
	return &Engine{
		cli:     cli,
		sshHost: sshHost,
		WatchBackoff: wait.Backoff{
			Duration: 200 * time.Millisecond,
			Factor:   2,
			Jitter:   0.2,
			Steps:    math.MaxInt32,
			// A failed Ping of an engine that is down costs next to nothing, and
			// every second of delay after it is back is a second the controllers
			// stay blind (a restarted daemon is usually back within seconds), so
			// the delay stays short. A flapping engine costs a resync every Cap.
			Cap: 2 * time.Second,
		},
		WatchStableAfter: 10 * time.Second,
	}, nil
}

// api returns the Docker client after making sure the API version was
// negotiated exactly once. Until a negotiation succeeds (the engine may be
// down at start) every call tries again, one at a time.
func (e *Engine) api(ctx context.Context) *client.Client {
	e.negotiateMu.Lock()
	defer e.negotiateMu.Unlock()
	if !e.negotiated {
		if _, err := e.cli.Ping(ctx); err == nil {
			e.cli.NegotiateAPIVersion(ctx)
			e.negotiated = true
		}
	}
	return e.cli
}

// Ping asks the engine for its version, proving it answers. version is the engine's
// release ("20.10.24+dfsg1"), apiVersion the API version it speaks ("1.41").
func (e *Engine) Ping(ctx context.Context) (version string, apiVersion string, err error) {
	v, err := e.api(ctx).ServerVersion(ctx)
	if err != nil {
		return "", "", fmt.Errorf("ping docker engine at %s: %w", e.Host(), err)
	}
	return v.Version, v.APIVersion, nil
}

// Host is the address of the engine this Engine talks to.
func (e *Engine) Host() string {
	if e.sshHost != "" {
		return e.sshHost
	}
	return e.cli.DaemonHost()
}

// Close releases the client's idle connections. Streams already returned by Logs or
// Events end with their contexts, not with Close.
func (e *Engine) Close() error {
	if err := e.cli.Close(); err != nil {
		return fmt.Errorf("close docker client: %w", err)
	}
	return nil
}

// ImageExists reports whether ref (e.g. "claude-parallel/shell:latest") is present in
// the engine's image store. The engine never pulls, so a task whose profile image is
// missing should fail with a message telling how to build it.
func (e *Engine) ImageExists(ctx context.Context, ref string) (bool, error) {
	_, err := e.api(ctx).ImageInspect(ctx, ref)
	switch {
	case err == nil:
		return true, nil
	case cerrdefs.IsNotFound(err):
		return false, nil
	default:
		return false, fmt.Errorf("inspect image %s: %w", ref, err)
	}
}

// wrap classifies a Docker error for callers and adds what was being done. A Docker
// not-found becomes ErrNotFound (keeping the original text and chain), so callers
// never need to import errdefs or compare messages.
func wrap(err error, format string, args ...any) error {
	if err == nil {
		return nil
	}
	what := fmt.Sprintf(format, args...)
	if cerrdefs.IsNotFound(err) {
		return fmt.Errorf("%s: %w: %w", what, ErrNotFound, err)
	}
	return fmt.Errorf("%s: %w", what, err)
}

// shortID is the 12-character form Docker prints, for messages only.
func shortID(id string) string {
	if len(id) > 12 {
		return id[:12]
	}
	return id
}
