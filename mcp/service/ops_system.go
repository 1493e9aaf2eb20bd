package service

import (
	"context"
	"fmt"
	"path/filepath"
	"strings"
	"sync"
	"time"

	"github.com/claude-parallel/claude-parallel/models"
	"github.com/claude-parallel/claude-parallel/models/diskusage"
	"github.com/claude-parallel/claude-parallel/models/procid"
)

// SystemStatus reports the engine, the controllers' lease, counts from the
// store and where the installation keeps its files. Docker being
// unreachable is part of the answer, not an error.
func (f *Frontend) SystemStatus(ctx context.Context) (*SystemStatusResult, error) {
	cfg := f.cfg()
	p := cfg.Paths()
	res := &SystemStatusResult{
		Version:        f.d.Version,
		Docker:         f.dockerStatus(ctx),
		InstallationID: f.d.Store.InstallationID(),
		MaxParallel:    cfg.MaxParallel,
		Profiles:       cfg.ProfileNames(),
		DefaultAgent:   cfg.DefaultAgent,
		AllowedRoots:   append([]string{}, cfg.AllowedRoots...),
		Paths: PathsView{ConfigFile: cfg.File, Home: p.Home, Database: f.d.Store.Path(), Logs: p.LogDir,
			TaskLogs: p.TaskLogDir, Workspaces: p.WorkspaceDir, DockerHost: cfg.DockerHost},
		ThisProcess: f.processStatus(ctx),
	}
	holder, renewed, active, err := f.d.Store.LeaseHolder(ctx, models.LeaderLease)
	if err != nil {
		return nil, fmt.Errorf("read lease: %w", err)
	}
	res.Leader = LeaderStatus{Holder: holder, Active: active}
	if !renewed.IsZero() {
		res.Leader.RenewedAt = &renewed
	}
	if !active && holder != "" {
		res.Leader.Stalled = stalledLease(holder, renewed, f.d.Store.Path())
	}
	if res.Tasks, _, err = f.taskCounts(ctx); err != nil {
		return nil, err
	}
	if res.Diffs, err = f.diffCounts(ctx); err != nil {
		return nil, err
	}
	for _, st := range models.DiffAwaitingStates() {
		res.PendingDiffs += res.Diffs[string(st)]
	}
	if res.Containers, err = f.containerCounts(ctx); err != nil {
		return nil, err
	}
	return res, nil
}

// dockerProbeTTL is how long an engine's answer is reused: a client polling
// system_status does not ping Docker on every call, and a change of the
// engine shows within a couple of seconds.
const dockerProbeTTL = 2 * time.Second

// dockerProbe caches the engine's last answer for dockerProbeTTL.
type dockerProbe struct {
	mu     sync.Mutex
	at     time.Time
	status DockerStatus
}

func (f *Frontend) dockerStatus(ctx context.Context) DockerStatus {
	if f.d.Engine == nil {
		return DockerStatus{Error: "this process has no Docker client"}
	}
	p := &f.probe
	// Held across the ping, so callers arriving together share one.
	p.mu.Lock()
	defer p.mu.Unlock()
	if !p.at.IsZero() && time.Since(p.at) < dockerProbeTTL {
		return p.status
	}
	ctx, cancel := context.WithTimeout(ctx, engineProbeTimeout)
	defer cancel()
	v, api, err := f.d.Engine.Ping(ctx)
	if err != nil {
		if ctx.Err() != nil && context.Cause(ctx) != context.DeadlineExceeded {
			// The caller went away: its cut-short ping says nothing of the engine.
			return DockerStatus{Error: err.Error()}
		}
		p.status = DockerStatus{Error: err.Error()}
	} else {
		p.status = DockerStatus{Reachable: true, Version: v, APIVersion: api}
	}
	p.at = time.Now()
	return p.status
}

func (f *Frontend) processStatus(ctx context.Context) ProcessStatus {
	if f.d.Runtime == nil {
		return ProcessStatus{}
	}
	s := f.d.Runtime.RuntimeStatus(ctx)
	return ProcessStatus{ControllersWired: true, IsLeader: s.IsLeader, Holder: s.Holder, Controllers: s.Controllers}
}

func (f *Frontend) diffCounts(ctx context.Context) (map[string]int64, error) {
	byState, err := f.d.Store.CountDiffsByStatus(ctx)
	if err != nil {
		return nil, fmt.Errorf("count diffs: %w", err)
	}
	out := make(map[string]int64, len(models.DiffStates()))
	for _, s := range models.DiffStates() {
		out[string(s)] = byState[s]
	}
	return out, nil
}

func (f *Frontend) containerCounts(ctx context.Context) (ContainerCounts, error) {
	c, err := f.d.Store.CountContainers(ctx)
	if err != nil {
		return ContainerCounts{}, err
	}
	return ContainerCounts{Managed: int(c.Managed), Running: int(c.Running), Adopted: int(c.Adopted)}, nil
}

// lowDiskSpace is the free space below which a lapsed lease is blamed on the
// disk: SQLite needs a few pages of room for any write, a WAL frame included.
const lowDiskSpace = 1 << 20

// stalledLease says, from what can still be read, why a recorded holder no
// longer renews: a holder that stopped cleanly releases the lease (no row),
// so a row left behind means it died or cannot write. A full disk stops every
// write while reads go on, which is the usual cause.
func stalledLease(holder string, renewed time.Time, dbPath string) string {
	var why []string
	switch since := renewed.Format(time.RFC3339); {
	case procid.Alive(holder):
		why = append(why, "its process still runs but has not renewed the lease since "+since+
			", so it cannot write the store and its controllers are stopped")
	case procid.Gone(holder):
		why = append(why, "its process is gone (killed or crashed) since its last renewal at "+since+
			"; the next `claude-parallel serve` takes over at once")
	default:
		why = append(why, "it has not renewed the lease since "+since)
	}
	if free, err := diskusage.Free(filepath.Dir(dbPath)); err == nil && free < lowDiskSpace {
		why = append(why, fmt.Sprintf("the disk holding the database (%s) is full: %d bytes free", dbPath, free))
	}
	return strings.Join(why, "; ")
}
