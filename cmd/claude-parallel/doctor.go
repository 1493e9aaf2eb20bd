package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"time"

	cerrdefs "github.com/containerd/errdefs"
	"github.com/docker/docker/client"
	"github.com/spf13/cobra"

	"github.com/claude-parallel/claude-parallel/config"
	"github.com/claude-parallel/claude-parallel/controllers/workspace"
	"github.com/claude-parallel/claude-parallel/models"
)

// checkTimeout bounds each external check so doctor never hangs on a dead
// socket or a stuck git.
const checkTimeout = 10 * time.Second

func newDoctorCommand(opts *globalOptions) *cobra.Command {
	return &cobra.Command{
		Use:   "doctor",
		Short: "Show the effective paths and check Docker, git and the home directory",
		Args:  withUsageError(cobra.NoArgs),
		RunE: func(cmd *cobra.Command, _ []string) error {
			cfg, err := opts.loadConfig()
			if err != nil {
				return err
			}
			return doctor(cmd.Context(), cfg, cmd.OutOrStdout())
		},
	}
}

// doctorReport prints one line per check and counts the failures.
type doctorReport struct {
	out    io.Writer
	failed []string
}

func (r *doctorReport) ok(format string, args ...any) {
	fmt.Fprintf(r.out, "ok    %s\n", fmt.Sprintf(format, args...))
}

func (r *doctorReport) warn(format string, args ...any) {
	fmt.Fprintf(r.out, "warn  %s\n", indent(fmt.Sprintf(format, args...), "      "))
}

func (r *doctorReport) fail(what, format string, args ...any) {
	fmt.Fprintf(r.out, "FAIL  %s\n", indent(fmt.Sprintf(format, args...), "      "))
	r.failed = append(r.failed, what)
}

func doctor(ctx context.Context, cfg *config.Config, out io.Writer) error {
	p := cfg.Paths()
	dockerHost := cfg.DockerHost
	if dockerHost == "" {
		dockerHost = "Docker client default (" + client.DefaultDockerHost + ")"
	}
	fmt.Fprintf(out, "config:      %s\n", describeSource(cfg))
	fmt.Fprintf(out, "home:        %s\n", p.Home)
	fmt.Fprintf(out, "database:    %s\n", p.DBPath)
	fmt.Fprintf(out, "logs:        %s\n", p.LogDir)
	fmt.Fprintf(out, "task logs:   %s\n", p.TaskLogDir)
	fmt.Fprintf(out, "workspaces:  %s\n", p.WorkspaceDir)
	fmt.Fprintf(out, "docker host: %s\n", dockerHost)
	fmt.Fprintf(out, "profiles:    %s (default %s)\n\n", strings.Join(cfg.ProfileNames(), ", "), cfg.DefaultAgent)

	r := &doctorReport{out: out}
	checkWritable(r, "home directory", p.Home)
	if dbDir := filepath.Dir(p.DBPath); !strings.HasPrefix(dbDir+string(filepath.Separator), p.Home+string(filepath.Separator)) {
		checkWritable(r, "database directory", dbDir)
	}
	if cfg.Store.EffectiveDriver() == config.StorePostgres {
		checkPostgresStore(ctx, r, cfg)
	} else {
		checkStore(ctx, r, p.DBPath)
	}
	checkGit(ctx, r)
	checkWorkspaceMode(r, p.WorkspaceDir)
	checkDocker(ctx, r, cfg)

	if len(r.failed) > 0 {
		return fmt.Errorf("doctor: %d check(s) failed: %s", len(r.failed), strings.Join(r.failed, ", "))
	}
	fmt.Fprintln(out, "\nall checks passed")
	return nil
}

// checkWritable creates dir if needed and proves a file can be written in it.
func checkWritable(r *doctorReport, what, dir string) {
	if err := os.MkdirAll(dir, 0o700); err != nil {
		r.fail(what, "%s %s cannot be created: %v", what, dir, err)
		return
	}
	f, err := os.CreateTemp(dir, ".doctor-*")
	if err == nil {
		_, err = f.WriteString("ok")
		err = errors.Join(err, f.Close(), os.Remove(f.Name()))
	}
	if err != nil {
		r.fail(what, "%s %s is not writable: %v", what, dir, err)
		return
	}
	r.ok("%s is writable: %s", what, dir)
}

// checkStore reads every page of the database (read-only) with SQLite's
// quick_check, so damage is named with what to do before a call meets it.
func checkStore(ctx context.Context, r *doctorReport, path string) {
	if _, err := os.Stat(path); errors.Is(err, os.ErrNotExist) {
		r.ok("database %s does not exist yet (created on first use)", path)
		return
	}
	if err := models.CheckFile(ctx, path); err != nil {
		r.fail("database", "database: %v", err)
		return
	}
	r.ok("database passes quick_check: %s", path)
}

func checkGit(ctx context.Context, r *doctorReport) {
	path, err := exec.LookPath("git")
	if err != nil {
		r.fail("git", "git is not installed or not on PATH (workspaces need it): %v", err)
		return
	}
	ctx, cancel := context.WithTimeout(ctx, checkTimeout)
	defer cancel()
	v, err := exec.CommandContext(ctx, path, "--version").Output()
	if err != nil {
		r.fail("git", "%s --version failed: %v", path, err)
		return
	}
	r.ok("%s (%s)", strings.TrimSpace(string(v)), path)
}

// checkWorkspaceMode says how task workspaces are made: overlay mounts on a
// shared base (copy-on-write) or a copy per task, and why not the former.
func checkWorkspaceMode(r *doctorReport, root string) {
	if ok, why := workspace.CopyOnWriteAvailable(root); ok {
		r.ok("workspaces are copy-on-write overlay mounts on shared bases (%s)", root)
	} else {
		r.warn("workspaces are copied per task, slower for large repositories: %s", why)
	}
}

// checkDocker connects the way the engine controller will: environment
// (DOCKER_HOST, TLS), the configured host, and API version negotiation,
// which an older engine (API 1.41 here) needs.
func checkDocker(ctx context.Context, r *doctorReport, cfg *config.Config) {
	opts := []client.Opt{client.FromEnv, client.WithAPIVersionNegotiation()}
	if cfg.DockerHost != "" {
		opts = append(opts, client.WithHost(cfg.DockerHost))
	}
	cli, err := client.NewClientWithOpts(opts...)
	if err != nil {
		r.fail("docker", "docker: bad client settings: %v", err)
		return
	}
	defer cli.Close()

	ctx, cancel := context.WithTimeout(ctx, checkTimeout)
	defer cancel()
	v, err := cli.ServerVersion(ctx)
	if err != nil {
		r.fail("docker", "docker: cannot reach the engine at %s: %v\n"+
			"start it (on Debian: bash hack/ensure-docker.sh, or sudo systemctl start docker),\n"+
			"or point DOCKER_HOST / docker_host at a running engine", cli.DaemonHost(), err)
		return
	}
	r.ok("docker engine %s (API %s, client uses %s) at %s", v.Version, v.APIVersion, cli.ClientVersion(), cli.DaemonHost())

	// A missing image is a warning, not a failure: tasks of the other
	// profiles still run, and an image may be built after installation.
	for _, name := range cfg.ProfileNames() {
		img := cfg.Profiles[name].Image
		_, err := cli.ImageInspect(ctx, img)
		switch {
		case err == nil:
			r.ok("image %s present (profile %s)", img, name)
		case cerrdefs.IsNotFound(err):
			r.warn("image %s is not present (profile %s); tasks using it fail until it is built (images are never pulled)", img, name)
		default:
			r.fail("docker", "image %s (profile %s): %v", img, name, err)
		}
	}
}

// indent prefixes every line after the first, for multi-line errors in
// aligned output.
func indent(s, prefix string) string {
	return strings.ReplaceAll(s, "\n", "\n"+prefix)
}
