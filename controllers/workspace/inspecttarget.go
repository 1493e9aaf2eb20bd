package workspace

import (
	"context"
	"fmt"

	"github.com/claude-parallel/claude-parallel/models/gitdiscover"
)

// inspectTarget is inspectChecked for a worktree apply's target, which
// needs the repository's directories but not its HEAD: in the plain layout
// (a .git directory in the folder or above it, gitdiscover.PlainRepo) the
// directories are read off the file system instead of asked of a git
// process, which cost as much as the apply's own git process. Every check
// inspectChecked makes is made the same way on the answer: the folder is
// opened beneath an allowed root first and the discovery starts where it
// was opened; the top found must contain that very directory (by identity,
// pinRepo), the top and the git directory are opened beneath an allowed
// root too, and their owners must match (checkSameOwner). Any other layout
// is git's to discover, as before. The returned info has no head.
func inspectTarget(ctx context.Context, dir string, roots Roots) (repoInfo, error) {
	return inspectPlain(ctx, dir, roots, false)
}

// inspectPlain is inspectTarget, and with needHead it also reads the HEAD
// commit, through the pinned git directory, the way git resolves it
// (gitdiscover.Head); a HEAD only git can resolve sends the whole look to
// git (inspectChecked).
func inspectPlain(ctx context.Context, dir string, roots Roots, needHead bool) (repoInfo, error) {
	folder, err := openWorkFolder(dir, roots)
	if err != nil {
		return repoInfo{}, err
	}
	defer folder.close()
	top, gitDir, ok := gitdiscover.PlainRepo(folder.real)
	if !ok {
		return inspectPinned(ctx, folder, dir, true, roots)
	}
	info := repoInfo{top: top, gitDir: gitDir, commonDir: gitDir}
	if err := checkSameOwner(info); err != nil {
		return repoInfo{}, fmt.Errorf("%w: %s: %v", ErrNotGitWorkTree, dir, err)
	}
	if err := pinRepo(&info, folder, dir, roots); err != nil {
		info.close()
		return repoInfo{}, err
	}
	if needHead {
		head, ok := gitdiscover.Head(info.gitDir)
		if !ok {
			info.close()
			return inspectPinned(ctx, folder, dir, true, roots) // the folder already opened and checked
		}
		info.head = head
	}
	return info, nil
}
