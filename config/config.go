// Package config holds claude-parallel's configuration: one typed struct with
// defaults, loaded from a YAML file, then the environment, then command-line
// flags, and checked by Validate before anything runs on it.
//
// The YAML form of every field is named by its `yaml` tag (snake_case). Two
// extra tag values drive the YAML codec in this package:
//
//	cfg:"bytes"  an int64 written as a size ("512m", "2g") or a byte count
//	cfg:"cpus"   an int64 of nano-CPUs written as a CPU count (1.5)
package config

import (
	"maps"
	"os"
	"path/filepath"
	"slices"
	"time"

	"github.com/claude-parallel/claude-parallel/config/redact"
)

// Config is the whole configuration of one claude-parallel installation.
type Config struct {
	// Home is the installation directory (database, logs, workspaces).
	// Default ~/.claude-parallel; env CLAUDE_PARALLEL_HOME; flag --home.
	Home string `yaml:"home"`
	// DBPath is the SQLite database. Default <Home>/data/claude-parallel.db;
	// env CLAUDE_PARALLEL_DB_PATH; flag --db.
	DBPath string `yaml:"db_path"`
	// Store chooses SQLite at DBPath (default) or a shared PostgreSQL.
	Store StoreConfig `yaml:"store"`
	// DockerHost is the engine address; "" lets the Docker client choose
	// (DOCKER_HOST or the local socket). Env DOCKER_HOST.
	DockerHost string `yaml:"docker_host"`
	// WorkspaceTransfer is how a task's workspace reaches its container:
	// "bind" mounts the host directory, "copy" copies it in through the
	// Docker API before start and the work tree out after exit (an engine on
	// another machine). "" picks bind for a local engine (unix socket or the
	// default) and copy for any other address; see TransferMode.
	WorkspaceTransfer string `yaml:"workspace_transfer"`
	// MaxParallel is how many task containers may run at once.
	MaxParallel int `yaml:"max_parallel"`
	// Workers is the number of reconcile workers per controller.
	Workers int `yaml:"workers"`
	// DefaultTaskTimeout applies when a task does not ask for one.
	DefaultTaskTimeout Duration `yaml:"default_task_timeout"`
	// MaxTaskTimeout is the ceiling for a per-task timeout.
	MaxTaskTimeout Duration `yaml:"max_task_timeout"`
	// MaxPatchBytes bounds a captured diff; larger diffs are refused.
	MaxPatchBytes int64 `yaml:"max_patch_bytes" cfg:"bytes"`
	// AllowedRoots are absolute directories; a task's work folder must be
	// inside one of them. Default: the user's home directory.
	AllowedRoots []string `yaml:"allowed_roots"`

	Intervals Intervals  `yaml:"intervals"`
	Retention Retention  `yaml:"retention"`
	Limits    Limits     `yaml:"limits"`
	Log       LogConfig  `yaml:"log"`
	HTTP      HTTPConfig `yaml:"http"`
	Ops       OpsConfig  `yaml:"ops"`

	// Profiles are the agent profiles a task may choose by name.
	Profiles map[string]Profile `yaml:"profiles"`
	// DefaultAgent is the profile used when a task names none.
	DefaultAgent string `yaml:"default_agent"`

	// Redact names further secrets to hide from logs, the store and
	// responses (see Redactor).
	Redact RedactConfig `yaml:"redact"`

	// File is the configuration file Load read ("" = built-in defaults
	// only). It is not a configuration key.
	File string `yaml:"-" json:"-"`
}

// Intervals are the periods of the reconcile machinery.
type Intervals struct {
	// Resync re-enqueues every live object even when nothing signalled a change.
	Resync Duration `yaml:"resync"`
	// ContainerGC is how often containers are compared with the store.
	ContainerGC Duration `yaml:"container_gc"`
	// Retention is how often old data and stopped containers are pruned.
	Retention Duration `yaml:"retention"`
	// LeaseDuration is how long the leader lease is held without renewal.
	LeaseDuration Duration `yaml:"lease_duration"`
	// LeaseRenew is how often the leader renews; it must be shorter than
	// LeaseDuration or the lease lapses between renewals.
	LeaseRenew Duration `yaml:"lease_renew"`
	// WakePoll is how often the store is polled for commits made by another
	// process (the MCP front end) so work starts without waiting for a resync.
	WakePoll Duration `yaml:"wake_poll"`
	// WakeWatch has the kernel report writes to the database's folder
	// (inotify), so another process's commit is seen at once and the store
	// is polled only every 25 × WakePoll besides; false polls every WakePoll,
	// for file systems whose writers the kernel does not see.
	WakeWatch bool `yaml:"wake_watch"`
	// ReconcileTimeout bounds one reconcile pass.
	ReconcileTimeout Duration `yaml:"reconcile_timeout"`
	// WorkspaceCheck is how often the work trees of running tasks are
	// measured against limits.workspace_max_bytes.
	WorkspaceCheck Duration `yaml:"workspace_check"`
}

// Limits bound what tasks may take of the disk: workspaces live on the same
// volume as the store, so one task filling it would stall everything.
type Limits struct {
	// WorkspaceMaxBytes is the most disk one task's workspace (work tree,
	// agent home, git data) may use while it runs; a run that grows past it
	// is stopped and fails as WorkspaceTooLarge. 0: no cap.
	WorkspaceMaxBytes int64 `yaml:"workspace_max_bytes" cfg:"bytes"`
	// DiskReserveBytes is the free space kept on the workspaces' volume: while
	// less is free, no task starts a run (reason DiskLow). 0: no reserve.
	DiskReserveBytes int64 `yaml:"disk_reserve_bytes" cfg:"bytes"`
}

// Retention says how long finished things are kept.
type Retention struct {
	// DataMaxAge is how long finished tasks, diffs and their logs are kept.
	DataMaxAge Duration `yaml:"data_max_age"`
	// StoppedContainerMaxAge is how long a stopped task container is kept
	// (for inspection) before it is removed.
	StoppedContainerMaxAge Duration `yaml:"stopped_container_max_age"`
}

// LogConfig is the server log: level and rotation of the JSON log files.
type LogConfig struct {
	// Level is debug, info, warn or error. Env LOG_LEVEL; flag --log-level.
	Level string `yaml:"level"`
	// MaxSizeMB is the size at which a log file is rotated.
	MaxSizeMB int `yaml:"max_size_mb"`
	// MaxFiles is how many rotated files are kept per log.
	MaxFiles int `yaml:"max_files"`
	// Dir holds server-combined.log, server-error.log and tasks/.
	// Default <Home>/logs.
	Dir string `yaml:"dir"`
	// Syslog, when set, also sends every log line (the JSON of the log
	// file) to a syslog collector: "local" (/dev/log, which journald reads
	// under systemd), udp://host:port, tcp://host:port, unix:///path or
	// unixgram:///path. "" (the default) sends none.
	Syslog string `yaml:"syslog"`
}

// HTTPConfig is the streamable-HTTP MCP front end (used with serve --http).
type HTTPConfig struct {
	// Listen is host:port; loopback by default.
	Listen string `yaml:"listen"`
	// Token is the bearer token; required when Listen is not loopback.
	// Env CLAUDE_PARALLEL_TOKEN.
	Token Secret `yaml:"token"`
	// AllowedOrigins are the Origin header values accepted besides none.
	AllowedOrigins []string `yaml:"allowed_origins"`
}

// RedactConfig adds to the secrets Redactor always hides.
type RedactConfig struct {
	// Env lists NAMES of further server environment variables whose values
	// are hidden, beyond those the profiles pass into containers.
	Env []string `yaml:"env"`
	// Patterns are further secret shapes: a name (shown in the placeholder)
	// and an RE2 regular expression that matches within one line.
	Patterns map[string]string `yaml:"patterns"`
}

// OpsConfig is the operations listener: /healthz, /readyz and /metrics on
// an address of their own, so a stdio server (which has no HTTP listener)
// can be probed and scraped too.
type OpsConfig struct {
	// Listen is host:port; "" (the default) serves no ops listener. A
	// non-loopback address needs http.token, which /metrics then requires.
	Listen string `yaml:"listen"`
}

// Profile is an agent a task can run: which image, which command, and the
// limits of its container. Tool arguments choose a profile and may lower
// resources within Ceilings; they never choose the image, user or network.
type Profile struct {
	Image string `yaml:"image"`
	// Command is an argv template; each element is rendered on its own with
	// TemplateData and stays exactly one argv element, so a prompt is never
	// spliced into a shell string.
	Command []string `yaml:"command"`
	// ResumeCommand continues an agent session (revision, answer); empty
	// means Command.
	ResumeCommand []string `yaml:"resume_command"`
	// Env lists NAMES of host environment variables passed to the container;
	// values are read at container creation and never stored or logged.
	Env []string `yaml:"env"`
	// Network is "none" or "bridge".
	Network string `yaml:"network"`
	// User is "uid:gid" the container runs as; never root.
	User string `yaml:"user"`
	// OutputFormat tells how to read the agent's output: "text" or "stream-json".
	OutputFormat string `yaml:"output_format"`
	// WorkDir is where the task's workspace is mounted in the container.
	WorkDir string `yaml:"work_dir"`
	// Resources are the limits a task gets unless it asks for less.
	Resources Resources `yaml:"resources"`
	// Ceilings are the most a task may ask for.
	Ceilings Resources `yaml:"ceilings"`
}

// Resources are container limits. YAML: memory: "2g", cpus: 1.5, pids: 512.
type Resources struct {
	MemoryBytes int64 `yaml:"memory" cfg:"bytes"`
	NanoCPUs    int64 `yaml:"cpus" cfg:"cpus"`
	Pids        int64 `yaml:"pids"`
}

// Paths are the file-system locations derived from a Config.
type Paths struct {
	Home         string
	DataDir      string // <Home>/data
	LogDir       string // Log.Dir, default <Home>/logs
	TaskLogDir   string // <LogDir>/tasks; task output is tasks/<task id>/run-<n>.log
	WorkspaceDir string // <Home>/data/workspaces
	DBPath       string
}

const (
	gib = int64(1) << 30
	mib = int64(1) << 20

	// nanoPerCPU converts a CPU count to Docker's NanoCPUs.
	nanoPerCPU = int64(1e9)

	// DefaultHomeDirName is the installation directory under the user's home.
	DefaultHomeDirName = ".claude-parallel"
	// ConfigFileName is the config file looked for in the installation directory.
	ConfigFileName = "config.yaml"
	// DBFileName is the database file name under <Home>/data.
	DBFileName = "claude-parallel.db"
)

// Default returns the built-in configuration for the current user.
func Default() *Config {
	c := defaultsFor(userHomeDir())
	c.deriveEmptyPaths()
	return c
}

// defaultsFor returns the defaults with the home-derived paths (DBPath,
// Log.Dir) left empty: Load fills them only after every source has had its
// say, so moving Home moves them too unless they were set explicitly.
func defaultsFor(userHome string) *Config {
	c := &Config{
		MaxParallel:        4,
		Workers:            4,
		DefaultTaskTimeout: D(30 * time.Minute),
		MaxTaskTimeout:     D(4 * time.Hour),
		MaxPatchBytes:      20 * mib,
		Intervals: Intervals{
			Resync:           D(30 * time.Second),
			ContainerGC:      D(time.Minute),
			Retention:        D(time.Hour),
			LeaseDuration:    D(15 * time.Second),
			LeaseRenew:       D(5 * time.Second),
			WakePoll:         D(200 * time.Millisecond),
			WakeWatch:        true,
			ReconcileTimeout: D(2 * time.Minute),
			WorkspaceCheck:   D(10 * time.Second),
		},
		Limits: Limits{
			WorkspaceMaxBytes: 10 * gib,
			DiskReserveBytes:  gib,
		},
		Retention: Retention{
			DataMaxAge:             D(7 * 24 * time.Hour),
			StoppedContainerMaxAge: D(time.Hour),
		},
		Log: LogConfig{Level: "info", MaxSizeMB: 10, MaxFiles: 5},
		HTTP: HTTPConfig{
			Listen:         "127.0.0.1:47821",
			AllowedOrigins: []string{},
		},
		Profiles:     shippedProfiles(),
		DefaultAgent: "claude",
		Redact:       RedactConfig{Env: []string{}, Patterns: map[string]string{}},
	}
	if userHome != "" {
		c.Home = filepath.Join(userHome, DefaultHomeDirName)
		c.AllowedRoots = []string{userHome}
	} else {
		// Validate reports the empty home with advice; guessing a directory
		// here could put the database somewhere the user never looks.
		c.AllowedRoots = []string{}
	}
	return c
}

// baseProfile holds the values every profile starts from, so a profile
// added in a config file needs only an image and a command.
func baseProfile() Profile {
	return Profile{
		ResumeCommand: []string{},
		Env:           []string{},
		Network:       "none",
		User:          "10001:10001",
		OutputFormat:  "text",
		WorkDir:       "/workspace",
		Resources:     Resources{MemoryBytes: 512 * mib, NanoCPUs: 1 * nanoPerCPU, Pids: 256},
		Ceilings:      Resources{MemoryBytes: 2 * gib, NanoCPUs: 2 * nanoPerCPU, Pids: 1024},
	}
}

func shippedProfiles() map[string]Profile {
	claude := baseProfile()
	claude.Image = "claude-parallel/agent:latest"
	claude.Command = []string{"claude", "-p", "{{.Prompt}}",
		"--output-format", "stream-json", "--verbose", "--dangerously-skip-permissions"}
	// A continued session gets the revision request or answer as its prompt.
	claude.ResumeCommand = []string{"claude", "-p", "{{.Feedback}}", "--resume", "{{.SessionID}}",
		"--output-format", "stream-json", "--verbose", "--dangerously-skip-permissions"}
	claude.Env = []string{"ANTHROPIC_API_KEY", "CLAUDE_CODE_OAUTH_TOKEN"}
	claude.Network = "bridge" // it must reach the Anthropic API
	claude.OutputFormat = "stream-json"
	claude.Resources = Resources{MemoryBytes: 2 * gib, NanoCPUs: 2 * nanoPerCPU, Pids: 512}
	claude.Ceilings = Resources{MemoryBytes: 8 * gib, NanoCPUs: 4 * nanoPerCPU, Pids: 2048}

	shell := baseProfile()
	shell.Image = "claude-parallel/shell:latest"
	// The prompt is the script: one argv element after -c, never concatenated.
	shell.Command = []string{"sh", "-c", "{{.Prompt}}"}
	// A revision runs the feedback as the next script on the same workspace.
	shell.ResumeCommand = []string{"sh", "-c", "{{.Feedback}}"}

	return map[string]Profile{"claude": claude, "shell": shell}
}

// deriveEmptyPaths fills the paths that default to a place under Home.
func (c *Config) deriveEmptyPaths() {
	if c.Home == "" {
		return
	}
	if c.DBPath == "" {
		c.DBPath = filepath.Join(c.Home, "data", DBFileName)
	}
	if c.Log.Dir == "" {
		c.Log.Dir = filepath.Join(c.Home, "logs")
	}
}

// Paths returns where the installation keeps its files.
func (c *Config) Paths() Paths {
	logDir := c.Log.Dir
	if logDir == "" {
		logDir = filepath.Join(c.Home, "logs")
	}
	dataDir := filepath.Join(c.Home, "data")
	return Paths{
		Home:         c.Home,
		DataDir:      dataDir,
		LogDir:       logDir,
		TaskLogDir:   filepath.Join(logDir, "tasks"),
		WorkspaceDir: filepath.Join(dataDir, "workspaces"),
		DBPath:       c.DBPath,
	}
}

// Profile returns the named profile; "" means DefaultAgent.
func (c *Config) Profile(name string) (Profile, bool) {
	if name == "" {
		name = c.DefaultAgent
	}
	p, ok := c.Profiles[name]
	return p, ok
}

// ProfileNames returns the profile names in sorted order.
func (c *Config) ProfileNames() []string {
	names := make([]string, 0, len(c.Profiles))
	for n := range c.Profiles {
		names = append(names, n)
	}
	slices.Sort(names)
	return names
}

// Clone returns a deep copy, so a reloaded config can be swapped in without
// sharing slices or maps with the one in use.
func (c *Config) Clone() *Config {
	out := *c
	out.AllowedRoots = slices.Clone(c.AllowedRoots)
	out.HTTP.AllowedOrigins = slices.Clone(c.HTTP.AllowedOrigins)
	out.Redact.Env = slices.Clone(c.Redact.Env)
	out.Redact.Patterns = maps.Clone(c.Redact.Patterns)
	if c.Profiles != nil {
		out.Profiles = make(map[string]Profile, len(c.Profiles))
		for name, p := range c.Profiles {
			p.Command = slices.Clone(p.Command)
			p.ResumeCommand = slices.Clone(p.ResumeCommand)
			p.Env = slices.Clone(p.Env)
			out.Profiles[name] = p
		}
	}
	return &out
}

// Redacted returns a deep copy whose secrets hold the placeholder instead of
// their values, safe to log or print by any means.
func (c *Config) Redacted() *Config {
	out := c.Clone()
	if out.HTTP.Token != "" {
		out.HTTP.Token = RedactedText
	}
	if out.Store.DSN != "" {
		out.Store.DSN = RedactedText
	}
	return out
}

// RedactTokenName names the HTTP token in placeholders.
const RedactTokenName = EnvToken

// Redactor returns what hides the secrets this configuration knows, read
// afresh from the server's environment: the value of every variable a
// profile passes into containers (a container created before a reload got
// what the profiles said then; a name dropped since is no longer hidden),
// of every variable in redact.env, and http.token; plus the shapes of
// well-known keys (redact.Builtins) and redact.patterns. A value shorter
// than redact.MinLength is not hidden. The result is cached, so calling it
// per request costs a few environment lookups.
func (c *Config) Redactor() *redact.Redactor { return c.redactorWith(os.LookupEnv) }

func (c *Config) redactorWith(lookup func(string) (string, bool)) *redact.Redactor {
	var names []string
	for _, p := range c.ProfileNames() {
		names = append(names, c.Profiles[p].Env...)
	}
	names = append(names, c.Redact.Env...)
	var values []redact.Value
	seen := map[string]bool{}
	for _, n := range names {
		if seen[n] || redact.CheckName(n) != nil {
			continue
		}
		seen[n] = true
		if v, ok := lookup(n); ok {
			values = append(values, redact.Value{Name: n, Value: v})
		}
	}
	if c.HTTP.Token != "" {
		values = append(values, redact.Value{Name: RedactTokenName, Value: c.HTTP.Token.Value()})
	}
	if c.Store.DSN != "" {
		values = append(values, redact.Value{Name: EnvDBDSN, Value: c.Store.DSN.Value()})
		if p := dsnPassword(c.Store.DSN.Value()); p != "" {
			values = append(values, redact.Value{Name: EnvDBDSN, Value: p})
		}
	}
	var patterns []redact.Pattern
	for _, n := range slices.Sorted(maps.Keys(c.Redact.Patterns)) {
		// Validate refuses bad ones; a config that skipped it loses only them.
		if redact.CheckName(n) == nil && redact.CheckPattern(c.Redact.Patterns[n]) == nil {
			patterns = append(patterns, redact.Pattern{Name: n, Regexp: c.Redact.Patterns[n]})
		}
	}
	patterns = append(patterns, redact.Builtins()...)
	r, err := redact.Cached(values, patterns)
	if err != nil {
		// Not reached: every name and pattern was checked above.
		r, _ = redact.New(nil, redact.Builtins())
	}
	return r
}

func userHomeDir() string {
	h, err := os.UserHomeDir()
	if err != nil {
		return ""
	}
	return h
}
