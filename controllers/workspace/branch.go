package workspace

import (
	"context"
	"errors"
	"fmt"
	"path/filepath"
	"strings"
)

// ErrBranchExists matches a branch-mode apply whose branch name is taken in
// the target (errors.Is); errors.As gives the *BranchExistsError.
var ErrBranchExists = errors.New("branch exists")

// BranchExistsError is a branch-mode apply refused because the target's
// branch Branch already exists at another commit (At), or is checked out.
// The target is left as it was.
type BranchExistsError struct {
	Branch     string
	At         string // the commit the branch points at; "" when only checked out (unborn)
	Result     string // the commit the apply would have created it at
	CheckedOut bool
}

func (e *BranchExistsError) Error() string {
	if e.CheckedOut {
		return fmt.Sprintf("branch %s is checked out in the target", e.Branch)
	}
	return fmt.Sprintf("branch %s already exists at %s, not at the result %s", e.Branch, e.At, e.Result)
}

// Is makes errors.Is(err, ErrBranchExists) match.
func (e *BranchExistsError) Is(target error) bool { return target == ErrBranchExists }

// applyBranch makes refs/heads/<Branch> of the target point at the result commit,
// copying the objects the target lacks. It never touches the target's working tree,
// index or HEAD.
func applyBranch(ctx context.Context, spec ApplySpec) (ApplyResult, error) {
	if checkRefFormat(spec.Branch) != nil || checkRefFormat("refs/heads/"+spec.Branch) != nil {
		return ApplyResult{}, fmt.Errorf("%w: branch %q", ErrInvalidRef, spec.Branch)
	}
	for what, oid := range map[string]string{"base commit": spec.BaseCommit, "result commit": spec.ResultCommit} {
		if err := validateOID(what, oid); err != nil {
			return ApplyResult{}, err
		}
	}
	if !filepath.IsAbs(spec.SourceGitDir) {
		return ApplyResult{}, fmt.Errorf("%w: source git dir %q must be absolute", ErrInvalidSpec, spec.SourceGitDir)
	}
	res := ApplyResult{Branch: spec.Branch}
	if len(spec.Patch) > 0 {
		// The branch will be checked out some day: refuse what worktree mode refuses.
		files, err := checkPatch(spec.Patch, nil)
		if err != nil {
			return ApplyResult{}, err
		}
		res.Files = patchFiles(files)
	}
	src := gitCmd{gitDir: spec.SourceGitDir, config: workspaceConfig}
	if parent := firstParent(ctx, src, spec.ResultCommit); parent != spec.BaseCommit {
		return ApplyResult{}, fmt.Errorf("%w: result %s is not a child of base %s", ErrInvalidSpec, spec.ResultCommit, spec.BaseCommit)
	}
	// The target's git directories are opened once and checked; every git
	// process below reaches them through those handles (roots.go), so a
	// target swapped for a symlink after the check cannot receive the branch.
	repo, err := inspectChecked(ctx, spec.Target, false, spec.AllowedRoots)
	if err != nil {
		return ApplyResult{}, err
	}
	defer repo.close()
	defer lockTarget(repo.realCommonDir(), spec.DryRun)()
	ref := "refs/heads/" + spec.Branch
	tg := gitCmd{gitDir: repo.commonDir}
	if done, err := branchState(ctx, tg, ref, spec.ResultCommit, &res); done || err != nil {
		return res, err
	}
	headOf := gitCmd{gitDir: repo.gitDir}
	if head, err := headOf.runText(ctx, nil, "symbolic-ref", "--quiet", "HEAD"); err == nil && head == ref {
		return res, &BranchExistsError{Branch: spec.Branch, Result: spec.ResultCommit, CheckedOut: true}
	}
	have, err := hasCommit(ctx, tg, spec.ResultCommit)
	if err != nil {
		return ApplyResult{}, err
	}
	var exclude []string
	if !have {
		if exclude, err = knownHistory(ctx, src, tg, spec.BaseCommit); err != nil {
			return ApplyResult{}, err
		}
	}
	res.Outcome = Applied
	if spec.DryRun {
		return res, nil
	}
	owner, err := ownerCredential(repo.commonDir)
	if err != nil {
		return ApplyResult{}, err
	}
	tg.cred = owner
	if !have {
		revs := spec.ResultCommit + "\n" + strings.Join(exclude, "\n") + "\n"
		if err := pipeGit(ctx, src, []byte(revs), []string{"pack-objects", "--revs", "--stdout", "--quiet"},
			tg, []string{"index-pack", "--stdin"}); err != nil {
			return ApplyResult{}, fmt.Errorf("copy result %s into target: %w", spec.ResultCommit, err)
		}
	}
	// An empty old value makes the update fail if the branch appeared meanwhile.
	if _, err := tg.run(ctx, nil, "update-ref", "-m", "claude-parallel: apply", "--end-of-options",
		ref, spec.ResultCommit, ""); err != nil {
		if done, err2 := branchState(ctx, tg, ref, spec.ResultCommit, &res); done || err2 != nil {
			return res, err2
		}
		return ApplyResult{}, fmt.Errorf("create branch %s: %w", spec.Branch, err)
	}
	return res, nil
}

// branchState settles the outcome when the branch already exists: already
// applied at the result, else a *BranchExistsError.
func branchState(ctx context.Context, tg gitCmd, ref, result string, res *ApplyResult) (bool, error) {
	cur, err := tg.runText(ctx, nil, "rev-parse", "--verify", "--quiet", "--end-of-options", ref)
	switch {
	case exitCode(err) == 1:
		return false, nil
	case err != nil:
		return false, fmt.Errorf("read branch %s: %w", res.Branch, err)
	case cur == result:
		res.Outcome = AlreadyApplied
	default:
		return true, &BranchExistsError{Branch: res.Branch, At: cur, Result: result}
	}
	return true, nil
}

// firstParent returns the first parent of commit in the source, or "".
func firstParent(ctx context.Context, src gitCmd, commit string) string {
	p, err := src.runText(ctx, nil, "rev-parse", "--verify", "--quiet", "--end-of-options", commit+"^1")
	if err != nil {
		return ""
	}
	return p
}

// knownHistory returns the exclusions (^commit) for the objects to send: the base if
// the target has it, otherwise the base's parents, all of which the target must have
// — a base made from uncommitted changes sits on the source's HEAD, which a clone of
// the source holds. The workspace only has the base's tree, not its history.
func knownHistory(ctx context.Context, src, tg gitCmd, base string) ([]string, error) {
	ok, err := hasCommit(ctx, tg, base)
	if err != nil {
		return nil, err
	}
	if ok {
		return []string{"^" + base}, nil
	}
	// The commit object itself, not rev-list: the workspace is shallow at the source
	// HEAD, so rev-list would show that commit without its parents.
	raw, err := src.runText(ctx, nil, "cat-file", "commit", base)
	if err != nil {
		return nil, fmt.Errorf("read base %s: %w", base, err)
	}
	header, _, _ := strings.Cut(raw, "\n\n")
	var exclude []string
	for _, line := range strings.Split(header, "\n") {
		p, ok := strings.CutPrefix(line, "parent ")
		if !ok {
			continue
		}
		ok, err := hasCommit(ctx, tg, p)
		if err != nil {
			return nil, err
		}
		if !ok {
			return nil, fmt.Errorf("%w: %s (parent of base %s) is missing", ErrBaseNotInTarget, p, base)
		}
		exclude = append(exclude, "^"+p)
	}
	return exclude, nil
}
