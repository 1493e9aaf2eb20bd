package service

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/claude-parallel/claude-parallel/config"
	"github.com/claude-parallel/claude-parallel/models"
	"github.com/claude-parallel/claude-parallel/models/gitcmd"
)

// Length limits of text arguments, in characters.
const (
	MaxPromptChars      = 100_000
	MaxDescriptionChars = 10_000
	MaxFeedbackChars    = 50_000
	MaxReasonChars      = 2_000
	MaxFilterChars      = 1_000
	MaxPathChars        = 4_096
	MaxRefChars         = 255
	MaxParentIDChars    = 200
	MaxIdentifierChars  = 128
	MaxAgentChars       = 64
	MaxDependsOn        = 50
	MaxWaitTasks        = 50
)

const (
	AcceptedTaskID = `"task-" followed by 12 lowercase hex digits, as returned by task_worker (e.g. "task-0123456789ab")`
	AcceptedDiffID = `"diff-" followed by 12 lowercase hex digits, as shown by work_status or review_changes (e.g. "diff-0123456789ab")`
	acceptedRef    = `a branch, tag or commit id such as "main", "release/1.2" or "3f2a9c1"`
)

// CheckTaskID validates the shape of a task id argument.
func CheckTaskID(arg, id string) *InputError {
	if !models.IsTaskID(id) {
		return &InputError{Arg: arg, Problem: fmt.Sprintf("%s is not a task id", Quote(id)), Accepted: AcceptedTaskID}
	}
	return nil
}

// CheckDiffID validates the shape of a diff id argument.
func CheckDiffID(arg, id string) *InputError {
	if !models.IsDiffID(id) {
		return &InputError{Arg: arg, Problem: fmt.Sprintf("%s is not a diff id", Quote(id)), Accepted: AcceptedDiffID}
	}
	return nil
}

// refChars is what a base ref may be made of: git's ref-format rules allow
// more, but nothing a person names a branch, tag or commit with needs more,
// and every character left out is one that means something to git's
// revision syntax or to a shell.
var refChars = regexp.MustCompile(`^[A-Za-z0-9._/+-]+$`)

// CheckRefName validates a base ref against git's ref-format rules
// (git check-ref-format) and refuses anything that could read as an option.
func CheckRefName(arg, ref string) *InputError {
	bad := func(problem string) *InputError {
		return &InputError{Arg: arg, Problem: problem, Accepted: acceptedRef}
	}
	switch {
	case len(ref) > MaxRefChars:
		return bad(fmt.Sprintf("is %d bytes long, more than the limit of %d", len(ref), MaxRefChars))
	case strings.HasPrefix(ref, "-"):
		return bad(fmt.Sprintf("%s starts with '-' and would read as an option", Quote(ref)))
	case strings.ContainsAny(ref, " \t\r\n"):
		return bad(fmt.Sprintf("%s contains whitespace", Quote(ref)))
	case strings.Contains(ref, ".."):
		return bad(fmt.Sprintf("%s contains \"..\"", Quote(ref)))
	case strings.Contains(ref, "@{"):
		return bad(fmt.Sprintf("%s contains \"@{\"", Quote(ref)))
	case !refChars.MatchString(ref):
		return bad(fmt.Sprintf("%s contains characters not allowed in a ref name", Quote(ref)))
	case strings.HasPrefix(ref, "/") || strings.HasSuffix(ref, "/") || strings.Contains(ref, "//"):
		return bad(fmt.Sprintf("%s has an empty path component", Quote(ref)))
	case strings.HasSuffix(ref, "."):
		return bad(fmt.Sprintf("%s ends with '.'", Quote(ref)))
	}
	for _, part := range strings.Split(ref, "/") {
		if strings.HasPrefix(part, ".") || strings.HasSuffix(part, ".lock") {
			return bad(fmt.Sprintf("%s has a component starting with '.' or ending with \".lock\"", Quote(ref)))
		}
	}
	return nil
}

// rootsText lists the allowed roots for messages.
func rootsText(roots []string) string {
	if len(roots) == 0 {
		return "none are configured (set allowed_roots in the config file)"
	}
	return strings.Join(roots, ", ")
}

// resolveRepoDir resolves a folder argument and checks everything a front
// end can check without changing anything: an absolute path without ".."
// elements, which exists, is a directory after following symlinks, lies
// inside an allowed root (on path-component boundaries, so /home/ab is not
// inside /home/a), and is inside a git work tree whose top is inside an
// allowed root too. It returns the resolved path.
func resolveRepoDir(ctx context.Context, arg, p string, roots []string) (string, *InputError) {
	accepted := "the absolute path of a folder in a git repository inside an allowed root (" + rootsText(roots) + ")"
	bad := func(format string, a ...any) *InputError {
		return &InputError{Arg: arg, Problem: fmt.Sprintf(format, a...), Accepted: accepted}
	}
	if err := CheckText(arg, p, TextRule{Required: true, MaxChars: MaxPathChars, Accepted: accepted}); err != nil {
		return "", err
	}
	if !filepath.IsAbs(p) {
		return "", bad("%s is a relative path", Quote(p))
	}
	for _, part := range strings.Split(filepath.ToSlash(p), "/") {
		if part == ".." {
			return "", bad("%s contains a \"..\" element", Quote(p))
		}
	}
	now := time.Now()
	if real, ok := folderChecks.lookup(p, roots, now); ok {
		return real, nil
	}
	real, err := filepath.EvalSymlinks(p)
	if err != nil {
		if errors.Is(err, fs.ErrNotExist) || errors.Is(err, fs.ErrInvalid) {
			return "", bad("%s does not exist", Quote(p))
		}
		return "", bad("%s cannot be resolved: %v", Quote(p), unwrapPathError(err))
	}
	fi, err := os.Stat(real)
	if err != nil {
		return "", bad("%s cannot be read: %v", Quote(p), unwrapPathError(err))
	}
	if !fi.IsDir() {
		return "", bad("%s is a file, not a folder", Quote(p))
	}
	resolvedRoots := resolveRoots(roots)
	if !withinAny(real, resolvedRoots) {
		if real != filepath.Clean(p) {
			return "", bad("%s resolves to %s, which is outside the allowed roots", Quote(p), Quote(real))
		}
		return "", bad("%s is outside the allowed roots", Quote(p))
	}
	top, dirs, fast := fastRepoDirs(real)
	var stamp []fileStamp
	if fast {
		// Stamped, then looked at again: a change before the stamp shows in
		// the second look (nothing is remembered), one after it in the
		// stamp (the entry misses).
		stamp = stampFolder(real, top)
		if top2, dirs2, fast2 := fastRepoDirs(real); !fast2 || top2 != top || !slices.Equal(dirs2, dirs) {
			stamp = nil
		}
	}
	if !fast {
		var err error
		if top, err = gitTopLevel(ctx, real); err != nil {
			if ctx.Err() != nil {
				return "", bad("checking %s was cancelled", Quote(p))
			}
			return "", bad("%s is not inside a git work tree (%v)", Quote(p), err)
		}
	}
	if !withinAny(top, resolvedRoots) {
		return "", bad("%s belongs to the git repository at %s, which is outside the allowed roots", Quote(p), Quote(top))
	}
	// A .git file (or core.worktree games) may put the repository itself
	// anywhere: its git directories must be inside an allowed root too.
	if !fast {
		var err error
		if dirs, err = gitDirs(ctx, real); err != nil {
			return "", bad("%s is not inside a git work tree (%v)", Quote(p), err)
		}
	}
	for _, d := range dirs {
		if !withinAny(d, resolvedRoots) {
			return "", bad("the git directory of %s is %s, which is outside the allowed roots", Quote(p), Quote(d))
		}
	}
	if fast {
		folderChecks.remember(p, roots, real, stamp, now)
	}
	return real, nil
}

// gitDirs returns the resolved git dir and common dir of the repository
// containing dir.
func gitDirs(ctx context.Context, dir string) ([]string, error) {
	out, err := runGit(ctx, dir, "rev-parse", "--path-format=absolute", "--git-dir", "--git-common-dir")
	if err != nil {
		return nil, err
	}
	lines := strings.Split(out, "\n")
	if len(lines) != 2 {
		return nil, fmt.Errorf("unexpected rev-parse output %q", out)
	}
	for i, l := range lines {
		real, err := filepath.EvalSymlinks(l)
		if err != nil {
			return nil, fmt.Errorf("resolve git directory: %w", err)
		}
		lines[i] = real
	}
	return lines, nil
}

func unwrapPathError(err error) error {
	var pe *fs.PathError
	if errors.As(err, &pe) {
		return pe.Err
	}
	return err
}

// resolveRoots resolves the configured roots the same way folders are
// resolved, so a root reached through a symlink (/tmp on macOS) still
// contains what lies under it. A root that does not exist contains nothing.
func resolveRoots(roots []string) []string {
	out := make([]string, 0, len(roots))
	for _, r := range roots {
		if !filepath.IsAbs(r) {
			continue
		}
		real, err := filepath.EvalSymlinks(r)
		if err != nil {
			continue
		}
		out = append(out, real)
	}
	return out
}

// withinAny reports whether p is one of roots or below one, comparing whole
// path components.
func withinAny(p string, roots []string) bool {
	for _, r := range roots {
		if within(p, r) {
			return true
		}
	}
	return false
}

func within(p, root string) bool {
	p, root = filepath.Clean(p), filepath.Clean(root)
	if p == root || root == string(filepath.Separator) {
		return true
	}
	return strings.HasPrefix(p, root+string(filepath.Separator))
}

// gitTimeout bounds one validation git call; a repository on a hung network
// file system must not hang a tool call.
const gitTimeout = 10 * time.Second

// runGit runs a read-only git command in dir through the hardened runner
// the controllers use (gitcmd: its -c settings outrank the repository's own
// configuration, so it cannot make git run a hook, an fsmonitor or a pager,
// and nothing of the server's environment reaches git). safe.directory lets
// a server running as root read a user's repository, which is safe because
// nothing from it is executed.
func runGit(ctx context.Context, dir string, gitArgs ...string) (string, error) {
	ctx, cancel := context.WithTimeout(ctx, gitTimeout)
	defer cancel()
	cmd, err := gitcmd.Cmd{Dir: dir, Config: []string{"safe.directory=*"}}.Command(ctx, gitArgs...)
	if err != nil {
		return "", err
	}
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Run(); err != nil {
		msg := strings.TrimSpace(stderr.String())
		if i := strings.IndexByte(msg, '\n'); i >= 0 {
			msg = msg[:i]
		}
		if msg == "" {
			msg = err.Error()
		}
		return "", errors.New(msg)
	}
	return strings.TrimSpace(stdout.String()), nil
}

// gitTopLevel returns the top of the work tree containing dir.
func gitTopLevel(ctx context.Context, dir string) (string, error) {
	top, err := runGit(ctx, dir, "rev-parse", "--show-toplevel")
	if err != nil {
		return "", err
	}
	if top == "" {
		return "", errors.New("no work tree")
	}
	real, err := filepath.EvalSymlinks(top)
	if err != nil {
		return "", fmt.Errorf("resolve work tree top: %w", err)
	}
	return real, nil
}

// checkRefExists asks git whether ref names a commit in the repository at dir.
func checkRefExists(ctx context.Context, arg, dir, ref string) *InputError {
	if _, err := runGit(ctx, dir, "rev-parse", "--verify", "--quiet", "--end-of-options", ref+"^{commit}"); err != nil {
		return &InputError{Arg: arg,
			Problem:  fmt.Sprintf("%s does not name a commit in the repository at %s", Quote(ref), dir),
			Accepted: acceptedRef + " that exists in the work folder's repository"}
	}
	return nil
}

// Resource limits a task may ask for.
const (
	minMemoryBytes = 6 << 20 // Docker refuses less
	minNanoCPUs    = 10_000_000
	minTimeout     = 10 * time.Second
)

// MemoryAccepted says which memory limits are accepted under ceiling.
func MemoryAccepted(ceiling int64) string {
	return fmt.Sprintf("a size from 6m to %s, e.g. \"1g\" or \"512m\"", config.FormatBytes(ceiling))
}

// CheckMemory checks a memory limit: at least 6m (Docker refuses less) and
// at most the profile's ceiling.
func CheckMemory(arg string, n, ceiling int64) *InputError {
	if n < minMemoryBytes || (ceiling > 0 && n > ceiling) {
		return &InputError{Arg: arg, Problem: fmt.Sprintf("%s is out of range", config.FormatBytes(n)), Accepted: MemoryAccepted(ceiling)}
	}
	return nil
}

// CPUsAccepted says which CPU limits are accepted under ceilingNano.
func CPUsAccepted(ceilingNano int64) string {
	return fmt.Sprintf("a number of CPUs from 0.01 to %s, e.g. 1.5 or \"2\"", strconv.FormatFloat(float64(ceilingNano)/1e9, 'g', -1, 64))
}

// CheckCPUs checks a CPU limit in billionths of a CPU: from 0.01 to the
// profile's ceiling.
func CheckCPUs(arg string, nano, ceilingNano int64) *InputError {
	if nano < minNanoCPUs || (ceilingNano > 0 && nano > ceilingNano) {
		return &InputError{Arg: arg, Problem: fmt.Sprintf("%s CPUs is out of range", strconv.FormatFloat(float64(nano)/1e9, 'g', -1, 64)),
			Accepted: CPUsAccepted(ceilingNano)}
	}
	return nil
}

// TimeoutAccepted says which run time limits are accepted up to max.
func TimeoutAccepted(max time.Duration) string {
	return fmt.Sprintf("a duration from 10s to %s: a string such as \"30m\" or a number of milliseconds such as 1800000", config.D(max))
}

// CheckTimeout checks a run time limit: from 10s to the configured maximum.
func CheckTimeout(arg string, d, max time.Duration) *InputError {
	if d < minTimeout || d > max {
		return &InputError{Arg: arg, Problem: fmt.Sprintf("%s is out of range", d), Accepted: TimeoutAccepted(max)}
	}
	return nil
}
