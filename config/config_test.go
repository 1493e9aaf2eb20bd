package config

import (
	"bytes"
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"strings"
	"testing"
	"time"

	"gopkg.in/yaml.v3"
)

// testUserHome is a fake user home; nothing is created under it.
const testUserHome = "/home/tester"

// load runs Load with only the given environment and a fake user home.
func load(t *testing.T, opts LoadOptions, env map[string]string) (*Config, error) {
	t.Helper()
	opts.LookupEnv = func(k string) (string, bool) { v, ok := env[k]; return v, ok }
	if opts.UserHome == "" {
		opts.UserHome = testUserHome
	}
	return Load(opts)
}

// writeFile writes a config file into a fresh temporary directory.
func writeFile(t *testing.T, content string) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), "config.yaml")
	if err := os.WriteFile(p, []byte(content), 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

func TestDefault_MatchesContract(t *testing.T) {
	c := defaultsFor(testUserHome)
	c.deriveEmptyPaths()
	if err := c.Validate(); err != nil {
		t.Fatalf("defaults do not validate: %v", err)
	}
	checks := []struct {
		name      string
		got, want any
	}{
		{"home", c.Home, "/home/tester/.claude-parallel"},
		{"db", c.DBPath, "/home/tester/.claude-parallel/data/claude-parallel.db"},
		{"log dir", c.Log.Dir, "/home/tester/.claude-parallel/logs"},
		{"max_parallel", c.MaxParallel, 4},
		{"workers", c.Workers, 4},
		{"default timeout", c.DefaultTaskTimeout.Duration, 30 * time.Minute},
		{"max timeout", c.MaxTaskTimeout.Duration, 4 * time.Hour},
		{"patch", c.MaxPatchBytes, int64(20 << 20)},
		{"roots", c.AllowedRoots, []string{testUserHome}},
		{"resync", c.Intervals.Resync.Duration, 30 * time.Second},
		{"gc", c.Intervals.ContainerGC.Duration, time.Minute},
		{"retention interval", c.Intervals.Retention.Duration, time.Hour},
		{"lease", c.Intervals.LeaseDuration.Duration, 15 * time.Second},
		{"renew", c.Intervals.LeaseRenew.Duration, 5 * time.Second},
		{"wake", c.Intervals.WakePoll.Duration, 200 * time.Millisecond},
		{"reconcile timeout", c.Intervals.ReconcileTimeout.Duration, 2 * time.Minute},
		{"data age", c.Retention.DataMaxAge.Duration, 7 * 24 * time.Hour},
		{"container age", c.Retention.StoppedContainerMaxAge.Duration, time.Hour},
		{"log", c.Log, LogConfig{Level: "info", MaxSizeMB: 10, MaxFiles: 5, Dir: "/home/tester/.claude-parallel/logs"}},
		{"listen", c.HTTP.Listen, "127.0.0.1:47821"},
		{"token", c.HTTP.Token, Secret("")},
		{"profiles", c.ProfileNames(), []string{"claude", "shell"}},
		{"default agent", c.DefaultAgent, "claude"},
		{"claude network", c.Profiles["claude"].Network, "bridge"},
		{"claude output", c.Profiles["claude"].OutputFormat, "stream-json"},
		{"claude env", c.Profiles["claude"].Env, []string{"ANTHROPIC_API_KEY", "CLAUDE_CODE_OAUTH_TOKEN"}},
		{"shell network", c.Profiles["shell"].Network, "none"},
		{"shell output", c.Profiles["shell"].OutputFormat, "text"},
		{"shell command", c.Profiles["shell"].Command, []string{"sh", "-c", "{{.Prompt}}"}},
		{"shell user", c.Profiles["shell"].User, "10001:10001"},
	}
	for _, ck := range checks {
		if !reflect.DeepEqual(ck.got, ck.want) {
			t.Errorf("%s = %#v, want %#v", ck.name, ck.got, ck.want)
		}
	}
	p := c.Paths()
	wantPaths := Paths{
		Home:         "/home/tester/.claude-parallel",
		DataDir:      "/home/tester/.claude-parallel/data",
		LogDir:       "/home/tester/.claude-parallel/logs",
		TaskLogDir:   "/home/tester/.claude-parallel/logs/tasks",
		WorkspaceDir: "/home/tester/.claude-parallel/data/workspaces",
		DBPath:       "/home/tester/.claude-parallel/data/claude-parallel.db",
	}
	if p != wantPaths {
		t.Errorf("Paths() = %+v, want %+v", p, wantPaths)
	}
}

func TestExampleFile_EqualsDefaults(t *testing.T) {
	c, err := load(t, LoadOptions{ConfigPath: "example.yaml"}, nil)
	if err != nil {
		t.Fatalf("example.yaml does not load: %v", err)
	}
	want := defaultsFor(testUserHome)
	want.deriveEmptyPaths()
	want.File = c.File
	if !reflect.DeepEqual(c, want) {
		var got, exp bytes.Buffer
		_ = c.WriteYAML(&got)
		_ = want.WriteYAML(&exp)
		t.Fatalf("example.yaml differs from Default():\n--- example\n%s\n--- default\n%s", got.String(), exp.String())
	}
}

// Every key the program knows must appear in the example, so adding a field
// without documenting it fails here.
func TestExampleFile_HasEveryKey(t *testing.T) {
	data, err := os.ReadFile("example.yaml")
	if err != nil {
		t.Fatal(err)
	}
	var buf bytes.Buffer
	if err := Default().WriteYAML(&buf); err != nil {
		t.Fatal(err)
	}
	exampleKeys := keyPaths(t, data)
	for _, k := range keyPaths(t, buf.Bytes()) {
		if !slices.Contains(exampleKeys, k) {
			t.Errorf("example.yaml lacks key %s", k)
		}
	}
	// Each key should come with a comment somewhere near it; at least the
	// file must be mostly commented rather than a bare dump.
	if n := strings.Count(string(data), "\n#") + strings.Count(string(data), "\n  #"); n < 25 {
		t.Errorf("example.yaml has only %d comment lines", n)
	}
}

func keyPaths(t *testing.T, data []byte) []string {
	t.Helper()
	var doc yaml.Node
	if err := yaml.Unmarshal(data, &doc); err != nil {
		t.Fatal(err)
	}
	var out []string
	var walk func(prefix string, n *yaml.Node)
	walk = func(prefix string, n *yaml.Node) {
		if n.Kind != yaml.MappingNode {
			return
		}
		for i := 0; i+1 < len(n.Content); i += 2 {
			k := joinKey(prefix, n.Content[i].Value)
			out = append(out, k)
			walk(k, n.Content[i+1])
		}
	}
	walk("", doc.Content[0])
	return out
}

func TestWriteYAML_RoundTrips(t *testing.T) {
	c := defaultsFor(testUserHome)
	c.deriveEmptyPaths()
	c.Profiles["extra"] = Profile{
		Image: "img", Command: []string{"run", "{{.Prompt}}", "--id={{.TaskID}}"}, ResumeCommand: []string{},
		Env: []string{"A"}, Network: "none", User: "1000:1000", OutputFormat: "text", WorkDir: "/w",
		Resources: Resources{MemoryBytes: 100 << 20, NanoCPUs: 1_500_000_000, Pids: 10},
		Ceilings:  Resources{MemoryBytes: 3 << 30, NanoCPUs: 2_250_000_000, Pids: 20},
	}
	c.MaxPatchBytes = 12345
	c.Intervals.Resync = D(90 * time.Minute)
	c.DockerHost = "unix:///run/docker.sock"
	var buf bytes.Buffer
	if err := c.WriteYAML(&buf); err != nil {
		t.Fatal(err)
	}
	back, err := load(t, LoadOptions{ConfigPath: writeFile(t, buf.String())}, nil)
	if err != nil {
		t.Fatalf("printed config does not load: %v\n%s", err, buf.String())
	}
	back.File = ""
	if !reflect.DeepEqual(back, c) {
		t.Fatalf("round trip changed the config:\n%s", buf.String())
	}
	for _, want := range []string{"memory: 100m", "cpus: 1.5", "max_patch_bytes: 12345", "resync: 1h30m", "data_max_age: 7d"} {
		if !strings.Contains(buf.String(), want) {
			t.Errorf("printed config lacks %q", want)
		}
	}
}

func TestClone_SharesNothing(t *testing.T) {
	c := Default()
	cp := c.Clone()
	cp.AllowedRoots[0] = "/elsewhere"
	p := cp.Profiles["shell"]
	p.Command[0] = "bash"
	cp.Profiles["shell"] = p
	cp.Profiles["new"] = Profile{}
	if c.AllowedRoots[0] == "/elsewhere" || c.Profiles["shell"].Command[0] == "bash" {
		t.Fatal("Clone shares slices with the original")
	}
	if _, ok := c.Profiles["new"]; ok {
		t.Fatal("Clone shares the profile map with the original")
	}
}

func TestRedacted_HidesToken(t *testing.T) {
	c := Default()
	c.HTTP.Token = "supersecret"
	r := c.Redacted()
	if r.HTTP.Token.Value() != RedactedText {
		t.Fatalf("Redacted() token = %q", r.HTTP.Token.Value())
	}
	if c.HTTP.Token.Value() != "supersecret" {
		t.Fatal("Redacted() modified the original")
	}
	var buf bytes.Buffer
	if err := c.WriteYAML(&buf); err != nil {
		t.Fatal(err)
	}
	if strings.Contains(buf.String(), "supersecret") || !strings.Contains(buf.String(), `token: '[redacted]'`) {
		t.Fatalf("WriteYAML output does not redact the token:\n%s", buf.String())
	}
}

func TestIsLoopbackHost(t *testing.T) {
	for host, want := range map[string]bool{
		"localhost": true, "LocalHost": true, "127.0.0.1": true, "127.8.9.10": true, "::1": true, "[::1]": true,
		"": false, "0.0.0.0": false, "::": false, "example.com": false, "localhost.example.com": false, "10.0.0.1": false,
	} {
		if got := IsLoopbackHost(host); got != want {
			t.Errorf("IsLoopbackHost(%q) = %v, want %v", host, got, want)
		}
	}
}

// The redactor hides the values of every profile's pass-through variables,
// of redact.env and the HTTP token, the key shapes and redact.patterns —
// and nothing of a variable no profile passes.
func TestRedactor_SecretsOfTheConfiguration(t *testing.T) {
	c := Default()
	shell := c.Profiles["shell"]
	shell.Env = []string{"SHELL_SECRET", "SHORT"}
	c.Profiles["shell"] = shell
	c.Redact.Env = []string{"EXTRA_SECRET"}
	c.Redact.Patterns = map[string]string{"INTERNAL": `itk_[a-z]{10}`}
	c.HTTP.Token = Secret("bearer-token-value-1")
	env := map[string]string{
		"ANTHROPIC_API_KEY": "anthropic-value-123",
		"SHELL_SECRET":      "shell-value-4567",
		"SHORT":             "1234567", // below redact.MinLength
		"EXTRA_SECRET":      "extra-value-89ab",
		"UNRELATED":         "unrelated-value-1",
	}
	r := c.redactorWith(func(k string) (string, bool) { v, ok := env[k]; return v, ok })
	in := "anthropic-value-123 shell-value-4567 1234567 extra-value-89ab unrelated-value-1 bearer-token-value-1 itk_abcdefghij sk-ant-api03-abcdefghijklmnopqrstuv"
	want := "[REDACTED:ANTHROPIC_API_KEY] [REDACTED:SHELL_SECRET] 1234567 [REDACTED:EXTRA_SECRET] unrelated-value-1 [REDACTED:CLAUDE_PARALLEL_TOKEN] [REDACTED:INTERNAL] [REDACTED:ANTHROPIC_KEY]"
	if got := r.String(in); got != want {
		t.Errorf("got  %s\nwant %s", got, want)
	}
	if err := c.Validate(); err != nil {
		t.Errorf("a valid redact section was refused: %v", err)
	}
}
