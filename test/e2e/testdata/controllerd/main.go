// Command controllerd runs claude-parallel's controllers — the real
// controllers.System on the real Docker engine and a store file — and
// nothing else, for the end-to-end crash tests, which start it as a child
// process, kill it and start it again.
//
// CP_CRASH_AT=<step> (a controllers.Step such as "container-created") makes
// the process SIGKILL itself the first time a task run reaches that step, so
// a test can die at a precise point between two durable steps. SIGTERM or
// SIGINT stop it cleanly. DOCKER_HOST and CP_WORKSPACE_TRANSFER set the
// engine and workspace_transfer.
package main

import (
	"context"
	"flag"
	"fmt"
	"os"
	"os/signal"
	"path/filepath"
	"syscall"
	"time"

	"go.uber.org/zap"

	"github.com/claude-parallel/claude-parallel/config"
	"github.com/claude-parallel/claude-parallel/controllers"
	"github.com/claude-parallel/claude-parallel/controllers/engine"
	"github.com/claude-parallel/claude-parallel/models"
)

func main() {
	if err := run(); err != nil {
		fmt.Fprintln(os.Stderr, "controllerd:", err)
		os.Exit(1)
	}
}

func run() error {
	home := flag.String("home", "", "installation directory (database, logs, workspaces)")
	holder := flag.String("holder", "", "leader lease holder identity")
	maxParallel := flag.Int("max-parallel", 4, "max_parallel")
	resync := flag.Duration("resync", 2*time.Second, "intervals.resync")
	gc := flag.Duration("container-gc", 2*time.Second, "intervals.container_gc")
	lease := flag.Duration("lease", 2*time.Second, "intervals.lease_duration")
	renew := flag.Duration("renew", 500*time.Millisecond, "intervals.lease_renew")
	roots := flag.String("allowed-roots", "", "allowed_roots, separated by ':' (default: the temporary directory)")
	flag.Parse()
	if *home == "" {
		return fmt.Errorf("-home is required")
	}

	cfg := config.Default()
	cfg.Home = *home
	cfg.DBPath = filepath.Join(*home, "data", config.DBFileName)
	cfg.Log.Dir = filepath.Join(*home, "logs")
	cfg.MaxParallel = *maxParallel
	cfg.DefaultAgent = "shell"
	// The tests' repositories are made under t.TempDir().
	cfg.AllowedRoots = []string{os.TempDir()}
	if *roots != "" {
		cfg.AllowedRoots = filepath.SplitList(*roots)
	}
	// The remote-engine tests point the controllers at the second engine
	// (hack/ensure-docker2.sh) and choose the workspace transfer.
	cfg.DockerHost = os.Getenv(config.EnvDockerHost)
	cfg.WorkspaceTransfer = os.Getenv("CP_WORKSPACE_TRANSFER")
	cfg.Intervals.Resync = config.D(*resync)
	cfg.Intervals.ContainerGC = config.D(*gc)
	cfg.Intervals.LeaseDuration = config.D(*lease)
	cfg.Intervals.LeaseRenew = config.D(*renew)
	cfg.Intervals.WakePoll = config.D(100 * time.Millisecond)
	shell := cfg.Profiles["shell"]
	shell.Resources = config.Resources{MemoryBytes: 64 << 20, NanoCPUs: 500_000_000, Pids: 64}
	cfg.Profiles["shell"] = shell
	if err := cfg.Validate(); err != nil {
		return err
	}

	logger, err := zap.NewProduction() // JSON on stderr
	if err != nil {
		return err
	}
	defer func() { _ = logger.Sync() }()

	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, syscall.SIGINT)
	defer stop()
	// CLAUDE_PARALLEL_DB_DSN puts the store on PostgreSQL (the chaos
	// test's postgres run); else the SQLite file under -home.
	driver, target := models.DriverSQLite, cfg.DBPath
	if dsn := os.Getenv(config.EnvDBDSN); dsn != "" {
		driver, target = models.DriverPostgres, dsn
	}
	store, err := models.OpenDriver(ctx, driver, target, models.Options{Logger: logger})
	if err != nil {
		return err
	}
	defer store.Close()
	eng, err := engine.New(cfg.DockerHost)
	if err != nil {
		return err
	}
	defer eng.Close()

	crashAt := os.Getenv("CP_CRASH_AT")
	sys, err := controllers.NewSystem(controllers.Deps{
		Config: cfg, Store: store, Engine: eng, Logger: logger, Holder: *holder,
		AfterStep: func(step controllers.Step, taskID string, run int) {
			if crashAt != "" && string(step) == crashAt {
				logger.Warn("crashing at step", zap.String("step", string(step)), zap.String("task", taskID), zap.Int("run", run))
				_ = logger.Sync()
				_ = syscall.Kill(os.Getpid(), syscall.SIGKILL)
				select {} // the signal is on its way
			}
		},
	})
	if err != nil {
		return err
	}
	logger.Info("controllerd running", zap.String("home", *home), zap.String("crashAt", crashAt))
	return sys.Run(ctx)
}
