package workspace

import (
	"context"
	"fmt"
	"os"
	"strings"
	"syscall"
)

// repoInfo is what the package needs to know about a repository it does not own
// (a source work folder or an apply target). After inspection every git call on it
// uses these explicit paths instead of discovery.
type repoInfo struct {
	top       string // top of the work tree; "" for a bare repository
	gitDir    string // this work tree's git dir (index, HEAD)
	commonDir string // shared git dir (objects, refs, info/exclude)
	head      string // HEAD commit; "" when the branch is unborn
	// headCommit is HEAD's tree and parents when inspectIn learnt them on
	// the way (commit "" otherwise).
	headCommit commitInfo

	// After inspectChecked, top, gitDir and commonDir name directories opened
	// once and checked against the allowed roots (/proc/self/fd/N, see
	// roots.go); pins holds them until close. The real* fields say where they
	// were when opened, for messages and records; folderRel is the inspected
	// folder relative to the top ("." for the top).
	pins                []*pinnedDir
	realTop, realGitDir string
	realCommon          string
	folderRel           string
}

// WorkFolderInfo checks that dir is inside a git work tree and returns the tree's
// top-level directory and its HEAD commit ("" when no commit exists yet). It only
// reads, and checks no allowed roots (WorkFolderInfoIn does).
func WorkFolderInfo(ctx context.Context, dir string) (top string, head string, err error) {
	return WorkFolderInfoIn(ctx, dir, nil)
}

// inspectIn finds the repository containing the folder dir, with git running
// in cwd: the handle of that folder, opened and checked by inspectChecked, so
// discovery starts from that very directory; real is where the folder was
// when opened. Discovery is the one place git looks for a .git on its own; it
// runs with safe.directory=* because a server running as root must read its
// users' repositories, which is safe here since rev-parse runs nothing from
// their configuration. A core.worktree in that configuration could point the
// "work tree" anywhere, so inspectChecked then checks, by identity, that the
// top found contains the folder, and that every directory found lies in an
// allowed root.
func inspectIn(ctx context.Context, cwd, real, dir string, needWorkTree bool) (repoInfo, error) {
	g := gitCmd{dir: cwd, config: []string{"safe.directory=*"}}
	info, ok := inspectWorkTree(ctx, g)
	if !ok {
		// Not the common case of a work tree (a bare repository, a git
		// directory, no repository at all, or a failure): ask step by step, so
		// the error says which.
		var err error
		if info, err = inspectStepwise(ctx, g, real, dir, needWorkTree); err != nil {
			return repoInfo{}, err
		}
	}
	if err := checkSameOwner(info); err != nil {
		return repoInfo{}, fmt.Errorf("%w: %s: %v", ErrNotGitWorkTree, dir, err)
	}
	return info, nil
}

// inspectWorkTree asks one git process everything inspectIn needs when g's
// directory is inside a work tree — git dir, common dir, top, HEAD — and, on the
// way, what importing HEAD into a workspace needs: its tree and parents. Preparing
// a workspace runs a chain of git processes before the task's container can start,
// each costing a process start-up, so the usual case takes one instead of four.
// ok is false when the answer is not that of a work tree; the caller then asks
// step by step.
func inspectWorkTree(ctx context.Context, g gitCmd) (repoInfo, bool) {
	paths := []string{"rev-parse", "--path-format=absolute",
		"--absolute-git-dir", "--git-common-dir", "--is-inside-work-tree", "--show-toplevel"}
	// The trailing "--" makes the revisions revisions even if files are named
	// like them; rev-parse echoes it last. An unborn HEAD fails this form.
	out, err := g.runText(ctx, nil, append(paths, "HEAD^{commit}", "HEAD^{tree}", "HEAD^{commit}^@", "--")...)
	lines := strings.Split(out, "\n")
	if err == nil && len(lines) >= 7 && lines[len(lines)-1] == "--" && lines[2] == "true" && lines[3] != "" {
		info := repoInfo{gitDir: lines[0], commonDir: lines[1], top: lines[3], head: lines[4]}
		info.headCommit = commitInfo{commit: lines[4], tree: lines[5], parents: lines[6 : len(lines)-1]}
		for _, oid := range lines[4 : len(lines)-1] {
			if !oidPattern.MatchString(oid) {
				return repoInfo{}, false
			}
		}
		return info, true
	}
	// --verify prints HEAD's commit last, or exits 1 with nothing for it when
	// the branch is unborn.
	out, err = g.runText(ctx, nil, append(paths, "--verify", "--quiet", "--end-of-options", "HEAD^{commit}")...)
	lines = strings.Split(out, "\n")
	if exitCode(err) != 1 || len(lines) != 4 || lines[2] != "true" || lines[3] == "" {
		return repoInfo{}, false
	}
	return repoInfo{gitDir: lines[0], commonDir: lines[1], top: lines[3]}, true
}

// inspectStepwise is inspectIn's slow path, one question per git process.
func inspectStepwise(ctx context.Context, g gitCmd, real, dir string, needWorkTree bool) (repoInfo, error) {
	out, err := g.runText(ctx, nil, "rev-parse", "--path-format=absolute",
		"--absolute-git-dir", "--git-common-dir", "--is-inside-work-tree")
	if err != nil {
		return repoInfo{}, fmt.Errorf("%w: %s: %w", ErrNotGitWorkTree, dir, err)
	}
	lines := strings.Split(out, "\n")
	if len(lines) != 3 {
		return repoInfo{}, fmt.Errorf("%w: %s: unexpected rev-parse output %q", ErrNotGitWorkTree, dir, out)
	}
	info := repoInfo{gitDir: lines[0], commonDir: lines[1]}
	if lines[2] == "true" {
		if info.top, err = g.runText(ctx, nil, "rev-parse", "--path-format=absolute", "--show-toplevel"); err != nil {
			return repoInfo{}, fmt.Errorf("%w: %s: %w", ErrNotGitWorkTree, dir, err)
		}
	} else if needWorkTree {
		return repoInfo{}, fmt.Errorf("%w: %s is not inside a work tree", ErrNotGitWorkTree, dir)
	} else if isWithin(real, info.gitDir) && info.gitDir != real {
		return repoInfo{}, fmt.Errorf("%w: %s is inside a git directory", ErrNotGitWorkTree, dir)
	}
	head, err := gitCmd{gitDir: info.gitDir}.runText(ctx, nil, "rev-parse", "--verify", "--quiet", "HEAD^{commit}")
	switch {
	case err == nil:
		info.head = head
	case exitCode(err) != 1:
		return repoInfo{}, fmt.Errorf("resolve HEAD of %s: %w", dir, err)
	}
	return info, nil
}

// checkSameOwner stands in, for a server running as root, for git's safe.directory
// check that discovery skips: a work tree whose .git (a file can point anywhere)
// leads to a repository owned by someone else is refused, so a user cannot have the
// server read another user's repository into a workspace.
func checkSameOwner(info repoInfo) error {
	if os.Geteuid() != 0 {
		return nil
	}
	owner := func(p string) (uint32, error) {
		fi, err := os.Stat(p)
		if err != nil {
			return 0, err
		}
		st, ok := fi.Sys().(*syscall.Stat_t)
		if !ok {
			return 0, fmt.Errorf("%s: no owner", p)
		}
		return st.Uid, nil
	}
	paths := []string{info.gitDir, info.commonDir}
	if info.top != "" {
		paths = append([]string{info.top}, paths...)
	}
	want, err := owner(paths[0])
	if err != nil {
		return err
	}
	for _, p := range paths[1:] {
		uid, err := owner(p)
		if err != nil {
			return err
		}
		if uid != want {
			return fmt.Errorf("%s is owned by uid %d, %s by uid %d", p, uid, paths[0], want)
		}
	}
	return nil
}

// ownerCredential returns, when this process is root, the credential of the owner of
// path so writes into a user's repository are made as that user: files keep their
// owner, and the user's own permissions bound what a redirected path could reach.
// It returns nil when no switch is needed.
func ownerCredential(p string) (*syscall.Credential, error) {
	if os.Geteuid() != 0 {
		return nil, nil
	}
	fi, err := os.Stat(p)
	if err != nil {
		return nil, err
	}
	st, ok := fi.Sys().(*syscall.Stat_t)
	if !ok || st.Uid == 0 {
		return nil, nil
	}
	// Groups set to empty drops root's supplementary groups as well.
	return &syscall.Credential{Uid: st.Uid, Gid: st.Gid, Groups: []uint32{}}, nil
}
