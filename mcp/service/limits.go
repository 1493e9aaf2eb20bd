package service

import "context"

// Bounds adapters and their tests read: how many pending diffs one reply
// lists, and how long one log line may be before it is cut.
const (
	MaxPendingDiffsShown = maxPendingDiffsShow
	MaxLogLineBytes      = maxLogLineBytes
)

// ResolveRepoDir resolves a folder argument the way the operations do (an
// absolute path, inside an allowed root, in a git work tree whose git
// directories are inside one too) and returns the resolved path.
func ResolveRepoDir(ctx context.Context, arg, p string, roots []string) (string, *InputError) {
	return resolveRepoDir(ctx, arg, p, roots)
}

// Within reports whether p is root or below it, on whole path components.
func Within(p, root string) bool { return within(p, root) }
