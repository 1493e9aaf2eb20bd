package controllers

import (
	"time"

	"go.uber.org/zap"

	"github.com/claude-parallel/claude-parallel/config"
	"github.com/claude-parallel/claude-parallel/controllers/logfollow"
	"github.com/claude-parallel/claude-parallel/models"
)

// taskDeps is what the task controller depends on; setup (setup.go) fills it
// in. Its methods, over the task controller's files (task.go, task_steps.go,
// admission.go, diskguard.go, logs.go), are the steps' shared helpers.
type taskDeps struct {
	store *models.Store
	ports // rt, workspaces, diffs: Docker and host git
	paths config.Paths
	// storeID is the installation id: the claude-parallel.store label.
	storeID string
	log     *zap.Logger
	// config is the configuration in force, read on every pass.
	config func() *config.Config
	now    func() time.Time
	// notify enqueues a key: KindTask (this controller), KindDiff.
	notify func(kind, id string)
	// step reports a durable step to Deps.AfterStep, the fault-injection hook.
	step func(step Step, taskID string, run int)

	// stopGrace is how long a stopped container gets between SIGTERM and SIGKILL.
	stopGrace time.Duration
	// drainWait bounds how long one reconcile pass waits for a log follower to
	// drain an exited container's output before it requeues instead.
	drainWait time.Duration
	// progressEvery throttles the follower's writes of output progress.
	progressEvery time.Duration

	admission admission
	disk      *diskGuard      // verdicts of the workspace size walk (diskguard.go)
	builds    workspaceBuilds // workspaces prepared in the background (preparing.go)
	followers *logfollow.Set  // the runs' output into log files
}
