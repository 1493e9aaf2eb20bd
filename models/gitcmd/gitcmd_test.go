package gitcmd

import (
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// TestCommand_RepositoryAndEnvironmentCannotOverride: a repository's own
// config and the caller's environment both try to set what the hardened
// settings fix; git sees only the hardened values.
func TestCommand_RepositoryAndEnvironmentCannotOverride(t *testing.T) {
	repo := t.TempDir()
	if out, err := exec.Command("git", "init", "-q", repo).CombinedOutput(); err != nil {
		t.Fatalf("git init: %v\n%s", err, out)
	}
	evil := filepath.Join(t.TempDir(), "hooks")
	if out, err := exec.Command("git", "-C", repo, "config", "core.hooksPath", evil).CombinedOutput(); err != nil {
		t.Fatalf("git config: %v\n%s", err, out)
	}
	t.Setenv("GIT_DIR", filepath.Join(t.TempDir(), "elsewhere"))
	t.Setenv("GIT_CONFIG_PARAMETERS", "'core.fsmonitor'='/bin/false'")
	for _, c := range []struct{ key, want string }{{"core.hooksPath", "/dev/null"}, {"core.fsmonitor", "false"}} {
		cmd, err := Cmd{Dir: repo}.Command(context.Background(), "config", "--get", c.key)
		if err != nil {
			t.Fatal(err)
		}
		out, err := cmd.Output()
		if err != nil {
			t.Fatalf("git config --get %s: %v", c.key, err)
		}
		if got := strings.TrimSpace(string(out)); got != c.want {
			t.Errorf("%s = %q, want %q", c.key, got, c.want)
		}
	}
	for _, kv := range Env() {
		if strings.HasPrefix(kv, "GIT_DIR=") || strings.HasPrefix(kv, "GIT_CONFIG_PARAMETERS=") {
			t.Errorf("environment passes %s", kv)
		}
	}
	if os.Getenv("GIT_DIR") == "" {
		t.Fatal("test set-up lost GIT_DIR")
	}
}
