package controllers

import (
	"fmt"
	"path"
	"strings"

	"github.com/claude-parallel/claude-parallel/config"
	"github.com/claude-parallel/claude-parallel/controllers/engine"
	"github.com/claude-parallel/claude-parallel/controllers/workspace"
	"github.com/claude-parallel/claude-parallel/models"
)

// The container of a task run is described by pure functions of the task,
// the run, the agent profile, the workspace's directories and the identity it
// runs as: no Docker, no store, no clock. A pass computes it once
// (taskReconciler.runPlan, then buildRunSpec) and uses that one value for
// every create or adoption check of the pass.

// agentHome is where a task's own home directory is mounted; HOME points there
// so an agent's session files survive into the task's next run.
const agentHome = "/home/agent"

// runAs is the identity a task's container runs as, and the owner its
// workspace is handed to (-1: left as it is).
type runAs struct {
	user     string
	uid, gid int
}

// containerUser picks the container's user: when the server runs as root,
// the profile's non-root uid:gid, and the workspace is handed to it; when it
// runs as an ordinary user, that same uid:gid, so the files the agent writes
// stay readable and removable by the server.
func containerUser(profileUser string, euid, egid int) (runAs, error) {
	if euid != 0 {
		return runAs{user: fmt.Sprintf("%d:%d", euid, egid), uid: -1, gid: -1}, nil
	}
	uid, gid, err := config.ParseUser(profileUser)
	if err != nil {
		return runAs{}, fmt.Errorf("profile user: %w", err)
	}
	return runAs{user: fmt.Sprintf("%d:%d", uid, gid), uid: uid, gid: gid}, nil
}

// runSpecInput is what a run's container is built from.
type runSpecInput struct {
	Task      *models.Task
	Run       int
	Profile   config.Profile
	Workspace *workspace.Workspace
	StoreID   string
	User      string
	// SessionID is the agent session a follow-up run resumes: the newest one
	// an earlier run of the task recorded on its row (Store.LastSessionID).
	SessionID string
	LookupEnv func(string) (string, bool)
}

// buildRunSpec describes the container of one task run. Everything comes
// from the profile except the prompt (one argv element), the resource
// requests (clamped to the profile's ceilings) and the task's own workspace
// and home, the only host paths mounted. Environment values are read from the
// server's environment here, at creation, and go nowhere but to Docker.
func buildRunSpec(in runSpecInput) (engine.RunSpec, error) {
	t, p, ws := in.Task, in.Profile, in.Workspace
	argv, err := commandFor(t, in.Run, p, in.SessionID)
	if err != nil {
		return engine.RunSpec{}, fmt.Errorf("profile %q: %w", t.Spec.Agent, err)
	}
	env := []string{"HOME=" + agentHome}
	for _, name := range p.Env {
		if name == "HOME" {
			continue
		}
		if v, ok := in.LookupEnv(name); ok {
			env = append(env, name+"="+v)
		}
	}
	workDir := p.WorkDir
	if workDir == "" {
		workDir = "/workspace"
	}
	mem, cpus, pids := resourcesFor(t.Spec, p)
	return engine.RunSpec{
		Name:        engine.ContainerName(t.ID, in.Run),
		Image:       p.Image,
		Cmd:         argv,
		Env:         env,
		Labels:      engine.Labels(in.StoreID, t.ID, in.Run),
		User:        in.User,
		WorkDir:     path.Join(workDir, ws.Subdir),
		Network:     p.Network,
		MemoryBytes: mem,
		NanoCPUs:    cpus,
		PidsLimit:   pids,
		Mounts: []engine.Mount{
			{Source: ws.WorkDir, Target: workDir},
			{Source: ws.HomeDir, Target: agentHome},
		},
	}, nil
}

// commandFor renders the argv of a run: the profile's command with the prompt
// for the first run, its resume command with the follow-up text and the agent
// session for later ones. A profile that resumes by session id but has none
// recorded (the first run never announced one) starts afresh with the
// follow-up appended to the prompt.
func commandFor(t *models.Task, run int, p config.Profile, sessionID string) ([]string, error) {
	data := config.TemplateData{
		Prompt:    t.Spec.Prompt,
		SessionID: sessionID,
		Feedback:  t.Spec.FollowUp,
		TaskID:    t.ID,
		Run:       run,
	}
	if run <= 1 {
		return p.RenderCommand(data)
	}
	if data.SessionID == "" && strings.Contains(strings.Join(p.ResumeCommand, "\x00"), "SessionID") {
		data.Prompt = t.Spec.Prompt + "\n\n" + t.Spec.FollowUp
		return p.RenderCommand(data)
	}
	return p.RenderResumeCommand(data)
}

// resourcesFor returns the limits of a run: the task's requests where it made
// them, else the profile's defaults, never above the profile's ceilings.
func resourcesFor(spec models.TaskSpec, p config.Profile) (memory, nanoCPUs, pids int64) {
	pick := func(req, def, ceiling int64) int64 {
		v := def
		if req > 0 {
			v = req
		}
		if ceiling > 0 && v > ceiling {
			v = ceiling
		}
		return v
	}
	return pick(spec.MemoryBytes, p.Resources.MemoryBytes, p.Ceilings.MemoryBytes),
		pick(spec.NanoCPUs, p.Resources.NanoCPUs, p.Ceilings.NanoCPUs),
		pick(0, p.Resources.Pids, p.Ceilings.Pids)
}
