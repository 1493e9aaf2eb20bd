package workspace

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"regexp"
	"strings"
	"syscall"
	"time"

	"github.com/claude-parallel/claude-parallel/models/gitcmd"
)

// workspaceConfig is added for repositories the package owns (the workspace git dir
// and scratch repositories) so captures record exactly what is on disk.
var workspaceConfig = []string{
	"core.fileMode=true",
	"core.symlinks=true",
	"core.autocrlf=false",
	"core.safecrlf=false",
	"core.ignoreCase=false",
}

// Every git process starts through gitcmd, the hardened runner the front
// end's validation uses too (its -c settings and its whole environment);
// this package adds the pinning of checked directories (roots.go) on top.

// gitCmd describes where and how a git process runs. The zero value runs in the
// current directory with repository discovery, which only inspectIn uses.
type gitCmd struct {
	gitDir   string   // --git-dir; explicit so no .git found on disk is ever honoured
	workTree string   // --work-tree
	dir      string   // working directory of the process
	env      []string // extra environment (GIT_INDEX_FILE, dates, alternates)
	config   []string // extra -c key=value
	cred     *syscall.Credential
}

func (g gitCmd) with(env ...string) gitCmd {
	g.env = append(append([]string(nil), g.env...), env...)
	return g
}

func (g gitCmd) command(ctx context.Context, args []string) (*exec.Cmd, error) {
	var global []string
	if g.gitDir != "" {
		global = append(global, "--git-dir="+g.gitDir)
	}
	if g.workTree != "" {
		wt := g.workTree
		if wt == g.dir && pinnedFD.MatchString(wt) {
			// A checked work tree (roots.go) that is also the process's
			// directory is named ".": git then takes the directory it was
			// started in, which the child entered through the handle, as
			// its work tree. Given /proc/self/fd/N instead, git would
			// resolve it to a path string and change into that by name,
			// which a swap at that moment would redirect.
			wt = "."
		}
		global = append(global, "--work-tree="+wt)
	}
	cmd, err := gitcmd.Cmd{Dir: g.dir, Config: g.config, Global: global, Env: g.env}.Command(ctx, args...)
	if err != nil {
		return nil, err
	}
	// Directories checked against the allowed roots are named
	// /proc/self/fd/N; the child gets each at the same number, and a pinned
	// git dir its pinned common dir, so a commondir file written into the
	// repository after the check cannot send git elsewhere (roots.go). The
	// child changes into cmd.Dir before exec, while it still holds the
	// parent's descriptors.
	extra, common := pinnedFiles(g.gitDir, append(append([]string{g.gitDir, g.dir, g.workTree}, g.env...), g.config...)...)
	cmd.ExtraFiles = extra
	if common != "" {
		cmd.Env = append(cmd.Env, "GIT_COMMON_DIR="+common)
	}
	if g.cred != nil {
		cmd.SysProcAttr = &syscall.SysProcAttr{Credential: g.cred}
	}
	return cmd, nil
}

// run runs git and returns its standard output.
func (g gitCmd) run(ctx context.Context, stdin []byte, args ...string) ([]byte, error) {
	var out bytes.Buffer
	var in io.Reader
	if stdin != nil {
		in = bytes.NewReader(stdin)
	}
	err := g.stream(ctx, in, &out, args...)
	return out.Bytes(), err
}

// runText is run with the output's trailing newline removed.
func (g gitCmd) runText(ctx context.Context, stdin []byte, args ...string) (string, error) {
	out, err := g.run(ctx, stdin, args...)
	return strings.TrimRight(string(out), "\n"), err
}

// stream runs git with stdout going to w. A failure is a *gitError carrying the exit
// code and standard error, so callers can tell "no match" (exit 1) from a fault.
func (g gitCmd) stream(ctx context.Context, stdin io.Reader, w io.Writer, args ...string) error {
	p, err := g.start(ctx, stdin, w, args...)
	if err != nil {
		return err
	}
	return p.wait()
}

// gitProcess is a started git.
type gitProcess struct {
	ctx     context.Context
	started time.Time
	cmd     *exec.Cmd
	args    []string
	stderr  *cappedBuffer
}

func (g gitCmd) start(ctx context.Context, stdin io.Reader, w io.Writer, args ...string) (*gitProcess, error) {
	cmd, err := g.command(ctx, args)
	if err != nil {
		return nil, err
	}
	p := &gitProcess{ctx: ctx, started: time.Now(), cmd: cmd, args: args, stderr: &cappedBuffer{max: 16 << 10}}
	cmd.Stdin = stdin
	cmd.Stdout = w
	cmd.Stderr = p.stderr
	if err := cmd.Start(); err != nil {
		return nil, &gitError{op: gitOp(args), exit: -1, err: err}
	}
	return p, nil
}

func (p *gitProcess) wait() error {
	runErr := p.cmd.Wait()
	if runErr == nil {
		return nil
	}
	ge := &gitError{op: gitOp(p.args), exit: -1, stderr: strings.TrimSpace(p.stderr.String()), err: runErr}
	var ee *exec.ExitError
	if errors.As(runErr, &ee) {
		ge.exit = ee.ExitCode()
	}
	if err := p.ctx.Err(); err != nil {
		ge.err = err
		if errors.Is(err, context.DeadlineExceeded) {
			// Say how long it ran: git that never answers is usually blocked
			// reading something that never ends (a FIFO, a stalled mount).
			ge.err = fmt.Errorf("no answer after %s, stopped at its deadline: %w",
				time.Since(p.started).Round(time.Second), err)
		}
	}
	return ge
}

// gitOp names the subcommand for error messages: the first argument not an option.
func gitOp(args []string) string {
	for _, a := range args {
		if !strings.HasPrefix(a, "-") {
			return a
		}
	}
	return "git"
}

// gitError reads `git diff: exit 128: fatal: bad revision`.
type gitError struct {
	op     string
	exit   int
	stderr string
	err    error
}

func (e *gitError) Error() string {
	var b strings.Builder
	b.WriteString("git ")
	b.WriteString(e.op)
	if e.exit >= 0 {
		fmt.Fprintf(&b, ": exit %d", e.exit)
	} else {
		fmt.Fprintf(&b, ": %v", e.err)
	}
	if e.stderr != "" {
		b.WriteString(": ")
		msg := e.stderr
		if len(msg) > 2000 { // git's usage text can run to pages
			msg = msg[:2000] + "..."
		}
		b.WriteString(msg)
	}
	return b.String()
}

func (e *gitError) Unwrap() error { return e.err }

// exitCode returns the exit status of a failed git process, or -1.
func exitCode(err error) int {
	var ge *gitError
	if errors.As(err, &ge) {
		return ge.exit
	}
	return -1
}

// gitStderr returns the captured standard error of a failed git process.
func gitStderr(err error) string {
	var ge *gitError
	if errors.As(err, &ge) {
		return ge.stderr
	}
	return ""
}

// cappedBuffer keeps the first max bytes written so a chatty failure cannot grow
// memory without bound.
type cappedBuffer struct {
	buf bytes.Buffer
	max int
}

func (c *cappedBuffer) Write(p []byte) (int, error) {
	if room := c.max - c.buf.Len(); room > 0 {
		if len(p) > room {
			c.buf.Write(p[:room])
		} else {
			c.buf.Write(p)
		}
	}
	return len(p), nil
}

func (c *cappedBuffer) String() string { return c.buf.String() }

var (
	oidPattern      = regexp.MustCompile(`^(?:[0-9a-f]{40}|[0-9a-f]{64})$`)
	revSuffix       = regexp.MustCompile(`(?:[~^][0-9]*)*$`)
	shortOIDPattern = regexp.MustCompile(`^[0-9a-f]{4,64}$`)
)

// validateOID accepts a full lowercase object id (SHA-1 or SHA-256).
func validateOID(what, oid string) error {
	if !oidPattern.MatchString(oid) {
		return fmt.Errorf("%w: %s %q is not a full object id", ErrInvalidRef, what, oid)
	}
	return nil
}

// validateRev accepts what a caller may name a base with: a ref name following
// git check-ref-format (one level allowed, so HEAD and main pass) or a hex object id,
// optionally followed by ~N / ^N ancestry. Anything else — options, ranges, reflog
// syntax, path lookups — is refused before git sees it.
func validateRev(rev string) error {
	if rev == "" || strings.HasPrefix(rev, "-") {
		return fmt.Errorf("%w: %q", ErrInvalidRef, rev)
	}
	name := revSuffix.ReplaceAllString(rev, "")
	if shortOIDPattern.MatchString(name) {
		return nil
	}
	if err := checkRefFormat(name); err != nil {
		return fmt.Errorf("%w: %q: %v", ErrInvalidRef, rev, err)
	}
	return nil
}

// checkRefFormat mirrors the rules of git check-ref-format --allow-onelevel.
func checkRefFormat(name string) error {
	switch {
	case name == "" || name == "@":
		return errors.New("empty or reserved name")
	case strings.HasPrefix(name, "-"):
		return errors.New("begins with '-'")
	case strings.HasPrefix(name, "/") || strings.HasSuffix(name, "/") || strings.Contains(name, "//"):
		return errors.New("bad '/' placement")
	case strings.HasSuffix(name, "."):
		return errors.New("ends with '.'")
	case strings.Contains(name, ".."):
		return errors.New("contains '..'")
	case strings.Contains(name, "@{"):
		return errors.New("contains '@{'")
	}
	for _, r := range name {
		if r < 0x20 || r == 0x7f || strings.ContainsRune(" ~^:?*[\\", r) {
			return fmt.Errorf("contains %q", r)
		}
	}
	for _, c := range strings.Split(name, "/") {
		if strings.HasPrefix(c, ".") || strings.HasSuffix(c, ".lock") {
			return fmt.Errorf("component %q not allowed", c)
		}
	}
	return nil
}

// resolveCommit turns a validated revision into a full commit id.
func resolveCommit(ctx context.Context, g gitCmd, rev string) (string, error) {
	if err := validateRev(rev); err != nil {
		return "", err
	}
	out, err := g.runText(ctx, nil, "rev-parse", "--verify", "--quiet", "--end-of-options", rev+"^{commit}")
	if err != nil {
		if exitCode(err) == 1 {
			return "", fmt.Errorf("%w: %q does not name a commit", ErrInvalidRef, rev)
		}
		return "", fmt.Errorf("resolve %q: %w", rev, err)
	}
	return out, nil
}

// hasCommit reports whether the repository holds commit oid.
func hasCommit(ctx context.Context, g gitCmd, oid string) (bool, error) {
	_, err := g.run(ctx, nil, "rev-parse", "--verify", "--quiet", "--end-of-options", oid+"^{commit}")
	switch {
	case err == nil:
		return true, nil
	case exitCode(err) == 1:
		return false, nil
	default:
		return false, fmt.Errorf("look up %s: %w", oid, err)
	}
}

// splitNUL splits -z output into its records.
func splitNUL(b []byte) []string {
	s := strings.TrimSuffix(string(b), "\x00")
	if s == "" {
		return nil
	}
	return strings.Split(s, "\x00")
}

// joinNUL builds -z --stdin input.
func joinNUL(paths []string) []byte {
	var b bytes.Buffer
	for _, p := range paths {
		b.WriteString(p)
		b.WriteByte(0)
	}
	return b.Bytes()
}

// pipeGit runs `from ... | to ...` over an OS pipe, so that if either side dies the
// other sees end-of-file or EPIPE instead of blocking.
func pipeGit(ctx context.Context, from gitCmd, stdin []byte, fromArgs []string, to gitCmd, toArgs []string) error {
	pr, pw, err := os.Pipe()
	if err != nil {
		return err
	}
	src, err := from.start(ctx, bytes.NewReader(stdin), pw, fromArgs...)
	pw.Close() // the child holds its own copy
	if err != nil {
		pr.Close()
		return err
	}
	dst, err := to.start(ctx, pr, nil, toArgs...)
	pr.Close()
	if err != nil {
		_ = src.cmd.Process.Kill()
		_ = src.wait()
		return err
	}
	dstErr := dst.wait()
	return errors.Join(src.wait(), dstErr)
}
