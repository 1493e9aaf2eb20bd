// Package gitcmd is the one hardened way to start git, shared by the
// controllers' workspaces (controllers/workspace, which adds descriptor
// pinning on top) and the front end's read-only validation (mcp/service). It
// imports nothing of the project, so the front end can use it without
// linking controllers or Docker.
//
// Every git process gets the settings of Config as -c options, which outrank
// every configuration file git reads, and the environment of Env and nothing
// else, so neither a repository's own config (a hostile work/.git, a target,
// a source work folder) nor the server's environment (GIT_DIR,
// GIT_CONFIG_PARAMETERS, GIT_EXTERNAL_DIFF, ...) can make git run a program,
// reach a network or look somewhere else.
package gitcmd

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"sync"
	"time"
)

// Identity used for every commit and ref update. Fixed values (and a fixed
// date per workspace) make capturing the same tree twice yield the same commit.
const (
	IdentityName  = "claude-parallel"
	IdentityEmail = "claude-parallel@localhost"
)

// hardenedConfig is passed as -c to every git process. Each entry closes a
// way configuration could make git run a program or reach a network.
var hardenedConfig = []string{
	"core.hooksPath=/dev/null",
	"core.fsmonitor=false",
	"core.untrackedCache=false",
	"core.pager=cat",
	"core.editor=false",
	"core.sshCommand=false",
	"core.askPass=",
	"core.alternateRefsCommand=",
	// A repository's config could point excludesFile at a FIFO or a device,
	// and git would block or read without end; and a capture, which runs in
	// the workspace repository, would not see that file anyway. Ignore rules
	// come from .gitignore files and info/exclude (copied into workspaces).
	"core.excludesFile=/dev/null",
	"credential.helper=",
	"diff.external=",
	"uploadpack.packObjectsHook=",
	// No transport at all: objects move between repositories through
	// pack-objects | index-pack, so a lazy fetch of a partial clone or a
	// remote.<url>.uploadpack override has nothing to run.
	"protocol.allow=never",
	"gc.auto=0",
	"maintenance.auto=false",
	"commit.gpgSign=false",
	"submodule.recurse=false",
	"color.ui=false",
	"diff.noprefix=false",
	"diff.mnemonicPrefix=false",
	"diff.relative=false",
	"core.quotePath=true",
}

// Config returns the hardened settings, each a key=value for -c.
func Config() []string { return append([]string(nil), hardenedConfig...) }

// Env is the complete environment of a git process: nothing is inherited
// but PATH (to find git's helpers) and TMPDIR.
func Env() []string {
	env := []string{
		"PATH=" + os.Getenv("PATH"),
		"HOME=/nonexistent",
		"XDG_CONFIG_HOME=/nonexistent",
		"GIT_CONFIG_NOSYSTEM=1",
		"GIT_CONFIG_SYSTEM=/dev/null",
		"GIT_CONFIG_GLOBAL=/dev/null",
		"GIT_ATTR_NOSYSTEM=1",
		"GIT_TERMINAL_PROMPT=0",
		"GIT_NO_REPLACE_OBJECTS=1",
		"GIT_PROTOCOL_FROM_USER=0",
		"LANG=C",
		"LC_ALL=C",
		"GIT_AUTHOR_NAME=" + IdentityName,
		"GIT_AUTHOR_EMAIL=" + IdentityEmail,
		"GIT_COMMITTER_NAME=" + IdentityName,
		"GIT_COMMITTER_EMAIL=" + IdentityEmail,
	}
	if tmp := os.Getenv("TMPDIR"); tmp != "" {
		env = append(env, "TMPDIR="+tmp)
	}
	return env
}

var gitPath = sync.OnceValues(func() (string, error) { return exec.LookPath("git") })

// waitDelay bounds how long a killed git's pipes are waited for: a helper
// it left running must not hold the caller.
const waitDelay = 5 * time.Second

// Cmd describes one git invocation beyond the hardened defaults.
type Cmd struct {
	Dir    string   // working directory of the process
	Config []string // extra -c key=value, after the hardened ones
	Global []string // options before the subcommand, e.g. --git-dir=...
	Env    []string // extra environment (GIT_INDEX_FILE, dates, ...)
}

// Command returns the hardened git process for args; the caller sets its
// standard streams (and any extra files) and runs it.
func (c Cmd) Command(ctx context.Context, args ...string) (*exec.Cmd, error) {
	bin, err := gitPath()
	if err != nil {
		return nil, fmt.Errorf("find git: %w", err)
	}
	full := make([]string, 0, 2*len(hardenedConfig)+2*len(c.Config)+len(c.Global)+len(args))
	for _, kv := range hardenedConfig {
		full = append(full, "-c", kv)
	}
	for _, kv := range c.Config {
		full = append(full, "-c", kv)
	}
	full = append(full, c.Global...)
	full = append(full, args...)
	cmd := exec.CommandContext(ctx, bin, full...)
	cmd.Dir = c.Dir
	cmd.Env = append(Env(), c.Env...)
	cmd.WaitDelay = waitDelay
	return cmd, nil
}
