package testutil

import (
	"bytes"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// noHome is HOME for every git run here: a directory that does not exist, so
// that no user file (~/.config/git/attributes, ignore, credentials) is read.
const noHome = "/nonexistent"

// FixedDates pins the author and committer dates, so that the same commits
// made in two repositories get the same ids.
var FixedDates = []string{"GIT_AUTHOR_DATE=1700000000 +0000", "GIT_COMMITTER_DATE=1700000000 +0000"}

// GitEnv is the environment git runs with here, extra appended: PATH from
// the test's environment and nothing else of it (no GIT_* variable is
// inherited), HOME a directory that does not exist, no system or global
// configuration, and a fixed author and committer.
func GitEnv(extra ...string) []string {
	env := []string{
		"PATH=" + os.Getenv("PATH"),
		"HOME=" + noHome,
		"GIT_CONFIG_NOSYSTEM=1",
		"GIT_CONFIG_GLOBAL=/dev/null",
		"GIT_AUTHOR_NAME=Test User", "GIT_AUTHOR_EMAIL=test@example.com",
		"GIT_COMMITTER_NAME=Test User", "GIT_COMMITTER_EMAIL=test@example.com",
	}
	return append(env, extra...)
}

// GitRunner runs git with GitEnv(Env...). Its zero value is what Git and
// GitErr use.
type GitRunner struct {
	// Env is added to the isolated environment, e.g. FixedDates.
	Env []string
}

// Err runs git args in dir with stdin (none if nil) and returns its standard
// output without trailing newlines. Its error names the arguments and holds
// git's standard error.
func (g GitRunner) Err(dir string, stdin []byte, args ...string) (string, error) {
	cmd := exec.Command("git", args...)
	cmd.Dir = dir
	cmd.Env = GitEnv(g.Env...)
	if stdin != nil {
		cmd.Stdin = bytes.NewReader(stdin)
	}
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		return "", fmt.Errorf("git %s: %w: %s", strings.Join(args, " "), err, stderr.String())
	}
	return strings.TrimRight(string(out), "\n"), nil
}

// Run is Err without standard input; an error fails the test at once.
func (g GitRunner) Run(t testing.TB, dir string, args ...string) string {
	t.Helper()
	out, err := g.Err(dir, nil, args...)
	if err != nil {
		t.Fatal(err)
	}
	return out
}

// NewRepo writes files (slash-separated path → content, mode 0644) below
// dir, creating it and their folders, and makes dir a repository on branch
// main with them in one commit, "initial". It returns dir.
func (g GitRunner) NewRepo(t testing.TB, dir string, files map[string]string) string {
	t.Helper()
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	for name, content := range files {
		WriteFile(t, filepath.Join(dir, filepath.FromSlash(name)), content)
	}
	g.Run(t, dir, "init", "--quiet", "--initial-branch=main")
	g.Run(t, dir, "add", "-A")
	g.Run(t, dir, "commit", "--quiet", "-m", "initial")
	return dir
}

// Git runs git args in dir, isolated (see GitEnv), and returns its standard
// output without trailing newlines; an error fails the test at once.
func Git(t testing.TB, dir string, args ...string) string {
	t.Helper()
	return GitRunner{}.Run(t, dir, args...)
}

// GitErr runs git args in dir, isolated (see GitEnv), with stdin (none if
// nil), and returns its standard output without trailing newlines. Its error
// names the arguments and holds git's standard error.
func GitErr(dir string, stdin []byte, args ...string) (string, error) {
	return GitRunner{}.Err(dir, stdin, args...)
}

// NewRepo is GitRunner.NewRepo with the isolated environment alone.
func NewRepo(t testing.TB, dir string, files map[string]string) string {
	t.Helper()
	return GitRunner{}.NewRepo(t, dir, files)
}
