package config

import (
	"errors"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"
)

func TestLoad_RefusesBadFiles(t *testing.T) {
	cases := []struct {
		name string
		yaml string
		key  string // must appear in the error
		why  string // a word of the reason that must appear too
	}{
		{"unknown top-level key", "max_paralel: 3\n", "max_paralel", `did you mean "max_parallel"`},
		{"unknown nested key", "profiles:\n  shell:\n    resources:\n      memry: 1g\n", "profiles.shell.resources.memry", "unknown key"},
		{"unknown key in intervals", "intervals:\n  resink: 10s\n", "intervals.resink", "unknown key"},
		{"int given a word", "max_parallel: four\n", "max_parallel", "whole number"},
		{"int given a list", "workers: [1]\n", "workers", "whole number"},
		{"max_parallel zero", "max_parallel: 0\n", "max_parallel", "at least 1"},
		{"workers negative", "workers: -1\n", "workers", "at least 1"},
		{"negative interval", "intervals:\n  resync: -5s\n", "intervals.resync", `must be > 0, got "-5s"`},
		{"zero interval", "intervals:\n  container_gc: 0s\n", "intervals.container_gc", "must be > 0"},
		{"duration garbage", "intervals:\n  wake_poll: soon\n", "intervals.wake_poll", "invalid duration"},
		{"bool as yes", "intervals:\n  wake_watch: \"yes\"\n", "intervals.wake_watch", "must be true or false"},
		{"duration without unit", "intervals:\n  resync: 30\n", "intervals.resync", "bare number"},
		{"lease renew not shorter", "intervals:\n  lease_duration: 10s\n  lease_renew: 10s\n", "intervals.lease_renew", "shorter than"},
		{"default timeout above max", "default_task_timeout: 5h\n", "default_task_timeout", "max_task_timeout"},
		{"negative retention", "retention:\n  data_max_age: -1d\n", "retention.data_max_age", "must be > 0"},
		{"memory above ceiling", "profiles:\n  shell:\n    resources:\n      memory: 3g\n", "profiles.shell.resources.memory", "must not exceed"},
		{"memory garbage", "profiles:\n  shell:\n    resources:\n      memory: lots\n", "profiles.shell.resources.memory", "invalid size"},
		{"memory below docker minimum", "profiles:\n  shell:\n    resources:\n      memory: 1m\n", "profiles.shell.resources.memory", "at least 6m"},
		{"cpus zero", "profiles:\n  shell:\n    resources:\n      cpus: 0\n", "profiles.shell.resources.cpus", "at least 0.01"},
		{"cpus word", "profiles:\n  shell:\n    ceilings:\n      cpus: many\n", "profiles.shell.ceilings.cpus", "number of CPUs"},
		{"pids unlimited", "profiles:\n  shell:\n    ceilings:\n      pids: -1\n", "profiles.shell.ceilings.pids", "unlimited"},
		{"host network", "profiles:\n  shell:\n    network: host\n", "profiles.shell.network", "refused"},
		{"unknown network", "profiles:\n  shell:\n    network: overlay\n", "profiles.shell.network", "none, bridge"},
		{"new profile without image", "profiles:\n  mine:\n    command: [run]\n", "profiles.mine.image", "required"},
		{"new profile without command", "profiles:\n  mine:\n    image: x\n", "profiles.mine.command", "required"},
		{"command not a list", "profiles:\n  shell:\n    command: sh -c x\n", "profiles.shell.command", "must be a list"},
		{"template does not parse", "profiles:\n  shell:\n    command: [sh, -c, \"{{.Prompt\"]\n", "profiles.shell.command[2]", "not a valid template"},
		{"template unknown field", "profiles:\n  shell:\n    resume_command: [sh, -c, \"{{.Promt}}\"]\n", "profiles.shell.resume_command[2]", "Promt"},
		{"env with a value", "profiles:\n  claude:\n    env: [ANTHROPIC_API_KEY=sk-123]\n", "profiles.claude.env[0]", "NAMES only"},
		{"env bad name", "profiles:\n  claude:\n    env: [\"1X\"]\n", "profiles.claude.env[0]", "variable name"},
		{"root user", "profiles:\n  shell:\n    user: \"0:0\"\n", "profiles.shell.user", "root"},
		{"user name not numeric", "profiles:\n  shell:\n    user: agent\n", "profiles.shell.user", "uid:gid"},
		{"unknown output format", "profiles:\n  shell:\n    output_format: xml\n", "profiles.shell.output_format", "stream-json"},
		{"relative work dir", "profiles:\n  shell:\n    work_dir: workspace\n", "profiles.shell.work_dir", "absolute"},
		{"bad profile name", "profiles:\n  My Agent:\n    image: x\n    command: [x]\n", "profiles.My Agent", "lower-case"},
		{"profile not a mapping", "profiles:\n  shell: yes\n", "profiles.shell", "mapping"},
		{"default agent unknown", "default_agent: gpt\n", "default_agent", "must name a profile"},
		{"relative allowed root", "allowed_roots: [src]\n", "allowed_roots[0]", "absolute"},
		{"no allowed roots", "allowed_roots: []\n", "allowed_roots", "at least one"},
		{"relative home", "home: data\n", "home", "absolute"},
		{"relative db path", "db_path: x.db\n", "db_path", "absolute"},
		{"unknown log level", "log:\n  level: verbose\n", "log.level", "debug, info, warn, error"},
		{"log size zero", "log:\n  max_size_mb: 0\n", "log.max_size_mb", "at least 1"},
		{"log files zero", "log:\n  max_files: 0\n", "log.max_files", "at least 1"},
		{"listen not host:port", "http:\n  listen: localhost\n", "http.listen", "host:port"},
		{"listen bad port", "http:\n  listen: 127.0.0.1:99999\n", "http.listen", "port"},
		{"open listen without token", "http:\n  listen: 0.0.0.0:8080\n", "http.token", "required"},
		{"token copied from print", "http:\n  token: '[redacted]'\n", "http.token", "placeholder"},
		{"bad origin", "http:\n  allowed_origins: [example.com]\n", "http.allowed_origins[0]", "origin"},
		{"bad docker host", "docker_host: /var/run/docker.sock\n", "docker_host", "unix://"},
		{"patch size zero", "max_patch_bytes: 0\n", "max_patch_bytes", "at least 1"},
		{"workspace cap garbage", "limits:\n  workspace_max_bytes: huge\n", "limits.workspace_max_bytes", "invalid size"},
		{"disk reserve negative", "limits:\n  disk_reserve_bytes: -1g\n", "limits.disk_reserve_bytes", "invalid size"},
		{"unknown key in limits", "limits:\n  workspace_max: 1g\n", "limits.workspace_max", "unknown key"},
		{"zero workspace check", "intervals:\n  workspace_check: 0s\n", "intervals.workspace_check", "must be > 0"},
		{"section given a list", "intervals: [30s]\n", "intervals", "mapping"},
		{"duplicate key", "max_parallel: 2\nmax_parallel: 3\n", "max_parallel", "twice"},
		{"null scalar", "max_parallel:\n", "max_parallel", "whole number"},
		{"string given a mapping", "default_agent: {name: shell}\n", "default_agent", "single value"},
		{"redact env with a value", "redact:\n  env: [TOKEN=abc]\n", "redact.env[0]", "variable name"},
		{"redact pattern does not compile", "redact:\n  patterns:\n    MINE: 'tok_[0-9'\n", "redact.patterns.MINE", "regular expression"},
		{"redact pattern matches nothing at all", "redact:\n  patterns:\n    MINE: 'x*'\n", "redact.patterns.MINE", "empty string"},
		{"redact pattern crosses lines", "redact:\n  patterns:\n    MINE: 'key\\s+\\w+'\n", "redact.patterns.MINE", "line break"},
		{"redact pattern bad name", "redact:\n  patterns:\n    my-token: 'tok_[0-9]{8}'\n", "redact.patterns.my-token", "placeholder"},
		{"redact patterns given a list", "redact:\n  patterns: [abc]\n", "redact.patterns", "mapping"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			_, err := load(t, LoadOptions{ConfigPath: writeFile(t, tc.yaml)}, nil)
			if err == nil {
				t.Fatalf("accepted:\n%s", tc.yaml)
			}
			msg := err.Error()
			if !strings.Contains(msg, tc.key+": ") {
				t.Errorf("error does not name key %q: %v", tc.key, msg)
			}
			if !strings.Contains(msg, tc.why) {
				t.Errorf("error does not say %q: %v", tc.why, msg)
			}
			var fe *FieldError
			if !errors.As(err, &fe) {
				t.Errorf("error is not a *FieldError: %T", err)
			}
		})
	}
}

func TestLoad_ErrorsCarryFileLine(t *testing.T) {
	p := writeFile(t, "max_parallel: 2\nintervals:\n  resync: -1s\n")
	_, err := load(t, LoadOptions{ConfigPath: p}, nil)
	if err == nil || !strings.Contains(err.Error(), p+":3") {
		t.Fatalf("error does not point at %s:3: %v", p, err)
	}
}

func TestLoad_ReportsEveryProblemAtOnce(t *testing.T) {
	p := writeFile(t, "max_parallel: 0\nworkers: 0\nbogus: 1\nlog:\n  level: loud\n")
	_, err := load(t, LoadOptions{ConfigPath: p}, nil)
	if err == nil {
		t.Fatal("accepted")
	}
	// Unknown keys are found while decoding, so the value checks come after
	// the file is fixed; here the decoding problem alone must be reported...
	if !strings.Contains(err.Error(), "bogus") {
		t.Fatalf("unknown key not reported: %v", err)
	}
	// ... and without it, every bad value at once.
	p = writeFile(t, "max_parallel: 0\nworkers: 0\nlog:\n  level: loud\n")
	_, err = load(t, LoadOptions{ConfigPath: p}, nil)
	var probs Problems
	if !errors.As(err, &probs) || len(probs) != 3 {
		t.Fatalf("want 3 problems, got %v", err)
	}
}

func TestLoad_SyntaxErrorNamesFile(t *testing.T) {
	p := writeFile(t, "max_parallel: [\n")
	_, err := load(t, LoadOptions{ConfigPath: p}, nil)
	if err == nil || !strings.Contains(err.Error(), p) || !strings.Contains(err.Error(), "parse YAML") {
		t.Fatalf("syntax error not reported with the file name: %v", err)
	}
}

func TestLoad_PrecedenceFileEnvFlag(t *testing.T) {
	file := writeFile(t, `
home: /from/file
db_path: /from/file/db.sqlite
docker_host: unix:///from/file.sock
log:
  level: debug
http:
  token: file-token
`)
	cases := []struct {
		name  string
		env   map[string]string
		flags LoadOptions
		want  func(c *Config) []any // pairs: got, want
	}{
		{"file only", nil, LoadOptions{}, func(c *Config) []any {
			return []any{c.Home, "/from/file", c.DBPath, "/from/file/db.sqlite", c.Log.Level, "debug",
				c.DockerHost, "unix:///from/file.sock", c.HTTP.Token.Value(), "file-token"}
		}},
		{"env beats file", map[string]string{
			EnvHome: "/from/env", EnvDBPath: "/from/env/db", EnvLogLevel: "WARN",
			EnvDockerHost: "tcp://env:2375", EnvToken: "env-token",
		}, LoadOptions{}, func(c *Config) []any {
			return []any{c.Home, "/from/env", c.DBPath, "/from/env/db", c.Log.Level, "warn",
				c.DockerHost, "tcp://env:2375", c.HTTP.Token.Value(), "env-token"}
		}},
		{"flag beats env", map[string]string{EnvHome: "/from/env", EnvDBPath: "/from/env/db", EnvLogLevel: "warn"},
			LoadOptions{Home: "/from/flag", DBPath: "/from/flag/db", LogLevel: "error"}, func(c *Config) []any {
				return []any{c.Home, "/from/flag", c.DBPath, "/from/flag/db", c.Log.Level, "error"}
			}},
		{"empty env is unset", map[string]string{EnvHome: "", EnvLogLevel: ""}, LoadOptions{}, func(c *Config) []any {
			return []any{c.Home, "/from/file", c.Log.Level, "debug"}
		}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			opts := tc.flags
			opts.ConfigPath = file
			c, err := load(t, opts, tc.env)
			if err != nil {
				t.Fatal(err)
			}
			pairs := tc.want(c)
			for i := 0; i < len(pairs); i += 2 {
				if pairs[i] != pairs[i+1] {
					t.Errorf("got %v, want %v", pairs[i], pairs[i+1])
				}
			}
		})
	}
}

func TestLoad_ErrorNamesEnvOrFlagSource(t *testing.T) {
	_, err := load(t, LoadOptions{}, map[string]string{EnvLogLevel: "loud"})
	if err == nil || !strings.Contains(err.Error(), "log.level") || !strings.Contains(err.Error(), "env LOG_LEVEL") {
		t.Fatalf("env source not named: %v", err)
	}
	_, err = load(t, LoadOptions{LogLevel: "loud"}, nil)
	if err == nil || !strings.Contains(err.Error(), "flag --log-level") {
		t.Fatalf("flag source not named: %v", err)
	}
}

// Moving home moves every path derived from it unless that path was set.
func TestLoad_DerivedPathsFollowHome(t *testing.T) {
	c, err := load(t, LoadOptions{Home: "/srv/cp"}, nil)
	if err != nil {
		t.Fatal(err)
	}
	if c.DBPath != "/srv/cp/data/claude-parallel.db" || c.Log.Dir != "/srv/cp/logs" || c.Paths().WorkspaceDir != "/srv/cp/data/workspaces" {
		t.Fatalf("paths did not follow home: %+v", c.Paths())
	}
	c, err = load(t, LoadOptions{Home: "/srv/cp", DBPath: "/var/db/cp.db"}, nil)
	if err != nil {
		t.Fatal(err)
	}
	if c.DBPath != "/var/db/cp.db" || c.Log.Dir != "/srv/cp/logs" {
		t.Fatalf("explicit db path lost or log dir wrong: %+v", c.Paths())
	}
}

func TestLoad_RelativeFlagPathsAreFromWorkingDir(t *testing.T) {
	wd, err := os.Getwd()
	if err != nil {
		t.Fatal(err)
	}
	c, err := load(t, LoadOptions{DBPath: "x.db", Home: "~/cp"}, map[string]string{})
	if err != nil {
		t.Fatal(err)
	}
	if c.DBPath != filepath.Join(wd, "x.db") || c.Home != testUserHome+"/cp" {
		t.Fatalf("db = %q, home = %q", c.DBPath, c.Home)
	}
}

func TestLoad_TildeInFile(t *testing.T) {
	c, err := load(t, LoadOptions{ConfigPath: writeFile(t, "home: ~/cp\nallowed_roots: [~/src, /opt/work/]\nlog:\n  dir: ~/logs\n")}, nil)
	if err != nil {
		t.Fatal(err)
	}
	want := []string{testUserHome + "/src", "/opt/work"}
	if c.Home != testUserHome+"/cp" || !reflect.DeepEqual(c.AllowedRoots, want) || c.Log.Dir != testUserHome+"/logs" {
		t.Fatalf("home %q roots %q log dir %q", c.Home, c.AllowedRoots, c.Log.Dir)
	}
}

func TestLoad_FileResolution(t *testing.T) {
	dir := t.TempDir()
	write := func(name, content string) string {
		p := filepath.Join(dir, name)
		if err := os.MkdirAll(filepath.Dir(p), 0o700); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, []byte(content), 0o600); err != nil {
			t.Fatal(err)
		}
		return p
	}
	flagFile := write("flag.yaml", "max_parallel: 1\n")
	envFile := write("env.yaml", "max_parallel: 2\n")
	homeDir := filepath.Join(dir, "home")
	homeFile := write("home/config.yaml", "max_parallel: 3\n")
	userHome := filepath.Join(dir, "user")
	userFile := write("user/.claude-parallel/config.yaml", "max_parallel: 5\n")

	cases := []struct {
		name     string
		opts     LoadOptions
		env      map[string]string
		wantFile string
		wantMax  int
	}{
		{"--config wins", LoadOptions{ConfigPath: flagFile, Home: homeDir}, map[string]string{EnvConfig: envFile}, flagFile, 1},
		{"then $CLAUDE_PARALLEL_CONFIG", LoadOptions{Home: homeDir}, map[string]string{EnvConfig: envFile}, envFile, 2},
		{"then <--home>/config.yaml", LoadOptions{Home: homeDir}, nil, homeFile, 3},
		{"then <$CLAUDE_PARALLEL_HOME>/config.yaml", LoadOptions{}, map[string]string{EnvHome: homeDir}, homeFile, 3},
		{"then ~/.claude-parallel/config.yaml", LoadOptions{}, nil, userFile, 5},
		{"absent default file means defaults", LoadOptions{Home: filepath.Join(dir, "empty")}, nil, "", 4},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			tc.opts.UserHome = userHome
			c, err := load(t, tc.opts, tc.env)
			if err != nil {
				t.Fatal(err)
			}
			if c.File != tc.wantFile || c.MaxParallel != tc.wantMax {
				t.Fatalf("file %q max_parallel %d; want %q %d", c.File, c.MaxParallel, tc.wantFile, tc.wantMax)
			}
		})
	}

	for name, opts := range map[string]LoadOptions{
		"missing --config":                {ConfigPath: filepath.Join(dir, "nope.yaml")},
		"missing $CLAUDE_PARALLEL_CONFIG": {},
	} {
		t.Run(name, func(t *testing.T) {
			_, err := load(t, opts, map[string]string{EnvConfig: filepath.Join(dir, "nope2.yaml")})
			if err == nil || !strings.Contains(err.Error(), "nope") {
				t.Fatalf("a named but missing file was not an error: %v", err)
			}
		})
	}
}

func TestLoad_ProfileChangesMergeIntoShipped(t *testing.T) {
	c, err := load(t, LoadOptions{ConfigPath: writeFile(t, `
profiles:
  shell:
    image: my/shell:1
  base: &base
    image: my/agent:2
    command: [agent, "{{.Prompt}}"]
    resources: {memory: 1g, cpus: 0.5, pids: 64}
  derived:
    <<: *base
    network: bridge
`)}, nil)
	if err != nil {
		t.Fatal(err)
	}
	shell := c.Profiles["shell"]
	if shell.Image != "my/shell:1" || shell.Network != "none" || len(shell.Command) != 3 {
		t.Errorf("shell profile not merged key by key: %+v", shell)
	}
	d := c.Profiles["derived"]
	if d.Image != "my/agent:2" || d.Network != "bridge" || d.Resources.NanoCPUs != 500_000_000 ||
		d.Resources.MemoryBytes != 1<<30 || d.User != "10001:10001" || d.Ceilings != baseProfile().Ceilings {
		t.Errorf("new profile did not start from the base profile plus merge: %+v", d)
	}
}

func TestLoad_EmptyFileAndNullSections(t *testing.T) {
	c, err := load(t, LoadOptions{ConfigPath: writeFile(t, "# nothing yet\nintervals:\nretention:\n")}, nil)
	if err != nil {
		t.Fatal(err)
	}
	if c.Intervals.Resync.Duration != 30*time.Second || c.Retention.DataMaxAge.Duration != 7*24*time.Hour {
		t.Fatalf("null sections changed defaults: %+v %+v", c.Intervals, c.Retention)
	}
}

func TestValidate_ProgrammaticConfig(t *testing.T) {
	c := Default()
	c.Intervals.LeaseRenew = D(time.Minute)
	c.MaxParallel = 0
	err := c.Validate()
	var probs Problems
	if !errors.As(err, &probs) || len(probs) != 2 {
		t.Fatalf("want 2 problems, got %v", err)
	}
}

func TestLoad_DiskLimits(t *testing.T) {
	c, err := load(t, LoadOptions{ConfigPath: writeFile(t, "limits:\n  workspace_max_bytes: 5g\n  disk_reserve_bytes: 0\n")}, nil)
	if err != nil {
		t.Fatal(err)
	}
	if c.Limits.WorkspaceMaxBytes != 5<<30 || c.Limits.DiskReserveBytes != 0 {
		t.Fatalf("limits = %+v, want a 5 GiB cap and no reserve", c.Limits)
	}
	d, err := load(t, LoadOptions{}, nil)
	if err != nil {
		t.Fatal(err)
	}
	if d.Limits.WorkspaceMaxBytes != 10<<30 || d.Limits.DiskReserveBytes != 1<<30 || d.Intervals.WorkspaceCheck.Duration != 10*time.Second {
		t.Fatalf("default limits = %+v, workspace_check %s", d.Limits, d.Intervals.WorkspaceCheck)
	}
}
