package workspace

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/claude-parallel/claude-parallel/models/gitcmd"
)

func TestGit_ErrorCarriesSubcommandExitAndStderr(t *testing.T) {
	gitDir := filepath.Join(t.TempDir(), "repo.git")
	if _, err := (gitCmd{}).run(testCtx(t), nil, "init", "--quiet", "--bare", gitDir); err != nil {
		t.Fatal(err)
	}
	_, err := gitCmd{gitDir: gitDir}.run(testCtx(t), nil, "diff", "--end-of-options", strings.Repeat("a", 40))
	if !regexp.MustCompile(`^git diff: exit 128: fatal: `).MatchString(err.Error()) {
		t.Fatalf("error %q", err)
	}
	if exitCode(err) != 128 {
		t.Fatalf("exit code %d", exitCode(err))
	}
}

func TestGit_CancelledContextStopsGit(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	r, w, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	defer w.Close() // held open: git waits for input that never comes
	done := make(chan error, 1)
	go func() {
		done <- gitCmd{dir: t.TempDir()}.stream(ctx, r, nil, "hash-object", "--stdin")
	}()
	time.Sleep(100 * time.Millisecond)
	cancel()
	select {
	case err := <-done:
		if !errors.Is(err, context.Canceled) {
			t.Fatalf("err = %v, want context.Canceled", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("git kept running after cancel")
	}
}

// TestGit_IgnoresTheServersEnvironment: GIT_DIR or an external diff in the server's
// environment must not reach git.
func TestGit_IgnoresTheServersEnvironment(t *testing.T) {
	kit := newCanaryKit(t)
	src := newSourceRepo(t)
	t.Setenv("GIT_DIR", filepath.Join(t.TempDir(), "elsewhere"))
	t.Setenv("GIT_EXTERNAL_DIFF", kit.script)
	t.Setenv("GIT_CONFIG_PARAMETERS", "'core.fsmonitor'='"+kit.script+"'")
	t.Setenv("GIT_PAGER", kit.script)
	top, head, err := WorkFolderInfo(testCtx(t), src)
	if err != nil || top != src || head == "" {
		t.Fatalf("WorkFolderInfo = %q %q %v", top, head, err)
	}
	ws := prepareWS(t, src, true)
	writeFile(t, filepath.Join(ws.WorkDir, "a.txt"), "x\n", 0o644)
	d := capture(t, ws, 1)
	if !strings.Contains(string(d.Patch), "diff --git a/a.txt b/a.txt") {
		t.Fatalf("patch %q", d.Patch)
	}
	kit.assertSilent(t)
	for _, kv := range gitcmd.Env() {
		if strings.HasPrefix(kv, "GIT_DIR=") || strings.HasPrefix(kv, "GIT_EXTERNAL_DIFF=") {
			t.Errorf("env passes %s", kv)
		}
	}
	if os.Getenv("GIT_DIR") == "" {
		t.Fatal("test set-up lost GIT_DIR")
	}
}

func TestValidateOID(t *testing.T) {
	for _, ok := range []string{strings.Repeat("a", 40), strings.Repeat("0", 64)} {
		if err := validateOID("x", ok); err != nil {
			t.Errorf("%s: %v", ok, err)
		}
	}
	for _, bad := range []string{"", "HEAD", strings.Repeat("a", 39), strings.Repeat("A", 40), "-" + strings.Repeat("a", 39)} {
		if err := validateOID("x", bad); !errors.Is(err, ErrInvalidRef) {
			t.Errorf("%q: %v", bad, err)
		}
	}
}
