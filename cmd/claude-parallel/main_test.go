package main

import (
	"bytes"
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"testing"

	"github.com/claude-parallel/claude-parallel/config"
	"github.com/claude-parallel/claude-parallel/test/testutil"
)

type result struct {
	code           int
	stdout, stderr string
}

// isolate points every location the CLI could read or write at a temporary
// directory, so no test sees the developer's own configuration.
func isolate(t *testing.T) string {
	t.Helper()
	dir := t.TempDir()
	t.Setenv("HOME", dir)
	t.Setenv(config.EnvHome, filepath.Join(dir, "cp-home"))
	for _, k := range []string{config.EnvConfig, config.EnvDBPath, config.EnvLogLevel, config.EnvToken} {
		t.Setenv(k, "")
	}
	return dir
}

func runCLI(t *testing.T, args ...string) result {
	t.Helper()
	var stdout, stderr bytes.Buffer
	code := run(context.Background(), args, &stdout, &stderr)
	return result{code, stdout.String(), stderr.String()}
}

func writeConfig(t *testing.T, content string) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), "config.yaml")
	if err := os.WriteFile(p, []byte(content), 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

func TestVersion(t *testing.T) {
	isolate(t)
	version, commit = "1.2.3", "abc1234"
	t.Cleanup(func() { version, commit = "dev", "unknown" })
	r := runCLI(t, "version")
	if r.code != 0 || r.stderr != "" {
		t.Fatalf("exit %d, stderr %q", r.code, r.stderr)
	}
	for _, want := range []string{"claude-parallel 1.2.3", "commit: abc1234", runtime.Version()} {
		if !strings.Contains(r.stdout, want) {
			t.Errorf("version output lacks %q:\n%s", want, r.stdout)
		}
	}
}

func TestConfigPrint_NeverShowsSecret(t *testing.T) {
	isolate(t)
	t.Setenv(config.EnvToken, "supersecret")
	file := writeConfig(t, "http:\n  listen: 0.0.0.0:9000\n")
	r := runCLI(t, "--config", file, "--log-level", "debug", "config", "print")
	if r.code != 0 {
		t.Fatalf("exit %d: %s", r.code, r.stderr)
	}
	if strings.Contains(r.stdout+r.stderr, "supersecret") {
		t.Fatalf("the token value was printed:\n%s", r.stdout)
	}
	for _, want := range []string{"token: '[redacted]'", "level: debug", "listen: 0.0.0.0:9000", "file: " + file} {
		if !strings.Contains(r.stdout, want) {
			t.Errorf("output lacks %q:\n%s", want, r.stdout)
		}
	}
}

// The printed configuration is itself a valid config file.
func TestConfigPrint_OutputValidates(t *testing.T) {
	dir := isolate(t)
	r := runCLI(t, "--home", filepath.Join(dir, "elsewhere"), "config", "print")
	if r.code != 0 {
		t.Fatalf("exit %d: %s", r.code, r.stderr)
	}
	if !strings.Contains(r.stdout, "home: "+filepath.Join(dir, "elsewhere")+"\n") {
		t.Errorf("--home not applied:\n%s", r.stdout)
	}
	v := runCLI(t, "config", "validate", writeConfig(t, r.stdout))
	if v.code != 0 || !strings.Contains(v.stdout, "configuration is valid") {
		t.Fatalf("printed config does not validate: exit %d\n%s%s", v.code, v.stdout, v.stderr)
	}
}

func TestConfigValidate_BadFiles(t *testing.T) {
	isolate(t)
	cases := map[string]struct{ yaml, key string }{
		"unknown key":     {"profiles:\n  shell:\n    resources:\n      memry: 1g\n", "profiles.shell.resources.memry"},
		"negative":        {"intervals:\n  resync: -5s\n", "intervals.resync"},
		"host network":    {"profiles:\n  shell:\n    network: host\n", "profiles.shell.network"},
		"above ceiling":   {"profiles:\n  claude:\n    resources: {cpus: 8}\n", "profiles.claude.resources.cpus"},
		"broken template": {"profiles:\n  shell:\n    command: [sh, -c, \"{{.Prompt\"]\n", "profiles.shell.command[2]"},
	}
	for name, tc := range cases {
		t.Run(name, func(t *testing.T) {
			file := writeConfig(t, tc.yaml)
			r := runCLI(t, "config", "validate", file)
			if r.code != 1 {
				t.Fatalf("exit %d, want 1; stdout %q", r.code, r.stdout)
			}
			if !strings.Contains(r.stderr, tc.key+": ") || !strings.Contains(r.stderr, file) {
				t.Errorf("stderr does not name %s in %s:\n%s", tc.key, file, r.stderr)
			}
			if r.stdout != "" {
				t.Errorf("stdout on failure: %q", r.stdout)
			}
		})
	}
}

func TestConfigValidate_MissingFile(t *testing.T) {
	dir := isolate(t)
	r := runCLI(t, "config", "validate", filepath.Join(dir, "absent.yaml"))
	if r.code != 1 || !strings.Contains(r.stderr, "absent.yaml") {
		t.Fatalf("exit %d stderr %q", r.code, r.stderr)
	}
}

func TestConfigValidate_DefaultLocation(t *testing.T) {
	dir := isolate(t)
	home := filepath.Join(dir, "cp-home")
	r := runCLI(t, "config", "validate")
	if r.code != 0 || !strings.Contains(r.stdout, "built-in defaults") {
		t.Fatalf("exit %d: %s%s", r.code, r.stdout, r.stderr)
	}
	if err := os.MkdirAll(home, 0o700); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(home, "config.yaml"), []byte("max_parallel: 0\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	r = runCLI(t, "config", "validate")
	if r.code != 1 || !strings.Contains(r.stderr, "max_parallel: ") {
		t.Fatalf("file in $CLAUDE_PARALLEL_HOME not read: exit %d %s", r.code, r.stderr)
	}
}

func TestUsageErrors(t *testing.T) {
	isolate(t)
	cases := map[string][]string{
		"unknown command":    {"bogus"},
		"unknown subcommand": {"config", "prnt"},
		"unknown flag":       {"--nope", "version"},
		"extra argument":     {"version", "extra"},
		"two files":          {"config", "validate", "a", "b"},
	}
	for name, args := range cases {
		t.Run(name, func(t *testing.T) {
			r := runCLI(t, args...)
			if r.code != exitUsage || !strings.Contains(r.stderr, "claude-parallel: ") {
				t.Fatalf("exit %d, stderr %q", r.code, r.stderr)
			}
		})
	}
	if r := runCLI(t, "config", "prnt"); !strings.Contains(r.stderr, `did you mean "print"`) {
		t.Errorf("no suggestion: %q", r.stderr)
	}
}

func TestHelpGoesToStdout(t *testing.T) {
	isolate(t)
	r := runCLI(t)
	if r.code != 0 || !strings.Contains(r.stdout, "Available Commands") || r.stderr != "" {
		t.Fatalf("exit %d stdout %q stderr %q", r.code, r.stdout, r.stderr)
	}
}

func TestDoctor_DockerUnreachable(t *testing.T) {
	dir := isolate(t)
	t.Setenv("DOCKER_HOST", "unix://"+filepath.Join(dir, "no-docker.sock"))
	r := runCLI(t, "doctor")
	if r.code != 1 {
		t.Fatalf("exit %d, want 1\n%s", r.code, r.stdout)
	}
	if !strings.Contains(r.stdout, "FAIL  docker: cannot reach the engine at unix://"+dir) ||
		!strings.Contains(r.stdout, "hack/ensure-docker.sh") {
		t.Errorf("no clear Docker message:\n%s", r.stdout)
	}
	if !strings.Contains(r.stderr, "check(s) failed: docker") {
		t.Errorf("stderr = %q", r.stderr)
	}
	// The other checks still ran.
	if !strings.Contains(r.stdout, "ok    home directory is writable: "+filepath.Join(dir, "cp-home")) {
		t.Errorf("home check missing:\n%s", r.stdout)
	}
}

func TestDoctor_HomeNotWritable(t *testing.T) {
	dir := isolate(t)
	blocker := filepath.Join(dir, "file")
	if err := os.WriteFile(blocker, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	t.Setenv("DOCKER_HOST", "unix://"+filepath.Join(dir, "no-docker.sock"))
	r := runCLI(t, "--home", filepath.Join(blocker, "home"), "doctor")
	if r.code != 1 || !strings.Contains(r.stdout, "FAIL  home directory") || !strings.Contains(r.stderr, "home directory") {
		t.Fatalf("exit %d\n%s\n%s", r.code, r.stdout, r.stderr)
	}
}

// With a real engine (always in CI, where make test starts one), doctor passes
// and reports the engine version.
func TestDoctor_RealDocker(t *testing.T) {
	isolate(t)
	if _, err := os.Stat("/var/run/docker.sock"); err != nil && os.Getenv("DOCKER_HOST") == "" {
		testutil.SkipOrFailInCI(t, "no Docker engine here; run `make docker` (CI always runs this test)")
	}
	if _, err := exec.LookPath("git"); err != nil {
		t.Fatalf("git is required: %v", err)
	}
	r := runCLI(t, "doctor")
	if r.code != 0 || !strings.Contains(r.stdout, "ok    docker engine ") || !strings.Contains(r.stdout, "all checks passed") {
		t.Fatalf("exit %d\n%s\n%s", r.code, r.stdout, r.stderr)
	}
}
