package controllers

import (
	"github.com/claude-parallel/claude-parallel/config"
	"github.com/claude-parallel/claude-parallel/controllers/workspace"
)

// A user's folder is checked against allowed_roots where it is used — the
// snapshot of a work folder, every dry run and apply, the target watch — and
// not only when a request names it, since the folder may have been swapped
// for a symlink to anywhere in between. The workspace package opens it once
// beneath an allowed root and works through that handle; a refusal matches
// workspace.ErrOutsideAllowedRoots and ends in the reason below.

// ReasonOutsideAllowedRoots is the reason of a task whose work folder, or a
// diff whose target, was outside the allowed roots when it was about to be
// used (the message names the path).
const ReasonOutsideAllowedRoots = "OutsideAllowedRoots"

// allowedRoots is the roots in force, never nil: an empty list allows
// nothing, whereas nil would ask the workspace package for no check.
// allowed_roots is reloaded on SIGHUP (the config pointer is swapped), and
// every use reads it afresh.
func allowedRoots(cfg *config.Config) workspace.Roots {
	return append(workspace.Roots{}, cfg.AllowedRoots...)
}
