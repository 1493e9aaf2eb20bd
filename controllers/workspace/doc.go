// Package workspace owns the host-side git of claude-parallel: it prepares a per-task
// workspace (a work tree for the container, a git dir kept outside it and a home for
// the agent), captures what the agent changed as a commit and a binary patch, checks
// patches for hostile paths and applies them to a target repository either in its
// working tree or as a branch.
//
// Every git process runs hardened (see git.go): no system or global configuration,
// no hooks, no fsmonitor, no external diff or textconv, no transport but the ones a
// step needs, and an explicit git dir wherever one is known. The agent controls the
// content of work/; nothing in it — a .git folder, a .gitattributes naming a filter,
// a symlink — may make the host run a command or write outside the tree it targets.
//
// Applies to one target repository are serialised within the process. Prepare,
// CaptureDiff and Remove of one workspace are not: the task controller reconciles
// one task key at a time. A Begin lasts until its Building is done, so nothing
// else may touch that workspace before Wait returns. CaptureDiff must run after
// the container has stopped, when work/ no longer changes.
package workspace

import "errors"

var (
	// ErrNoChanges means the work tree is identical to the base commit.
	ErrNoChanges = errors.New("no changes")
	// ErrPatchTooLarge means the captured patch exceeds the size limit; the result
	// commit and its ref are kept so the change is not lost.
	ErrPatchTooLarge = errors.New("patch too large")
	// ErrUnsafePatch means a patch was refused before anything was written; the
	// error is an *UnsafePatchError naming the offending path.
	ErrUnsafePatch = errors.New("unsafe patch")
	// ErrNotGitWorkTree means a directory is not inside a git work tree.
	ErrNotGitWorkTree = errors.New("not a git work tree")
	// ErrInvalidRef means a caller-supplied ref or object id was refused or does not
	// name a commit.
	ErrInvalidRef = errors.New("invalid ref")
	// ErrInvalidSpec means a request is malformed (bad task id, missing field, ...).
	ErrInvalidSpec = errors.New("invalid spec")
	// ErrNotFound means no ready workspace exists for the task.
	ErrNotFound = errors.New("workspace not found")
	// ErrBaseNotInTarget means branch mode cannot build base + change in the target
	// because the target lacks the base commit's history.
	ErrBaseNotInTarget = errors.New("base commit not in target repository")
	// ErrUncapturable means the work tree holds something git cannot read
	// without waiting for ever (a FIFO named .gitignore): no capture can
	// succeed until it is gone.
	ErrUncapturable = errors.New("work tree cannot be captured")
)
