package config

import (
	"fmt"
	"maps"
	"net"
	"net/url"
	"path"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"

	"github.com/claude-parallel/claude-parallel/config/redact"
)

// LogLevels are the accepted values of log.level.
var LogLevels = []string{"debug", "info", "warn", "error"}

// Network modes a profile may use. "host" is deliberately absent: it would
// hand the agent the host's network namespace, loopback services included.
var NetworkModes = []string{"none", "bridge"}

// OutputFormats tell how an agent's output is read.
var OutputFormats = []string{"text", "stream-json"}

var (
	profileNameRE = regexp.MustCompile(`^[a-z0-9][a-z0-9_-]{0,62}$`)
	envNameRE     = regexp.MustCompile(`^[A-Za-z_][A-Za-z0-9_]*$`)
	userRE        = regexp.MustCompile(`^([0-9]+):([0-9]+)$`)
)

const (
	// Docker refuses a memory limit below 6 MiB.
	minMemoryBytes = 6 * mib
	// Docker's smallest CPU quota is 0.01 CPU.
	minNanoCPUs = nanoPerCPU / 100
)

// Validate reports every impossible or unsafe value, each under its full key
// name, e.g. `intervals.resync: must be > 0, got "-5s"`. The error is a
// Problems value.
func (c *Config) Validate() error {
	var k checker

	k.absPath("home", c.Home, "set home, "+EnvHome+" or --home")
	k.absPath("db_path", c.DBPath, "")
	c.validateStore(&k)
	if c.DockerHost != "" {
		u, err := url.Parse(c.DockerHost)
		if err != nil || !oneOf(u.Scheme, "unix", "tcp", "npipe", "ssh", "http", "https") {
			k.add("docker_host", "must be an address like unix:///var/run/docker.sock or tcp://host:2376, got %q", c.DockerHost)
		}
	}
	if !oneOf(c.WorkspaceTransfer, "", TransferBind, TransferCopy) {
		k.add("workspace_transfer", "must be %q, %q or empty (bind for a local engine, copy for a remote one), got %q",
			TransferBind, TransferCopy, c.WorkspaceTransfer)
	}
	k.atLeast("max_parallel", int64(c.MaxParallel), 1)
	k.atLeast("workers", int64(c.Workers), 1)
	k.positive("default_task_timeout", c.DefaultTaskTimeout)
	k.positive("max_task_timeout", c.MaxTaskTimeout)
	if c.DefaultTaskTimeout.Duration > c.MaxTaskTimeout.Duration {
		k.add("default_task_timeout", "must not exceed max_task_timeout (%s), got %q", c.MaxTaskTimeout, c.DefaultTaskTimeout)
	}
	k.atLeast("max_patch_bytes", c.MaxPatchBytes, 1)
	if len(c.AllowedRoots) == 0 {
		k.add("allowed_roots", "must list at least one directory; work folders must be inside one of them")
	}
	for i, r := range c.AllowedRoots {
		k.absPath(indexKey("allowed_roots", i), r, "")
	}

	iv := c.Intervals
	k.positive("intervals.resync", iv.Resync)
	k.positive("intervals.container_gc", iv.ContainerGC)
	k.positive("intervals.retention", iv.Retention)
	k.positive("intervals.workspace_check", iv.WorkspaceCheck)
	k.atLeast("limits.workspace_max_bytes", c.Limits.WorkspaceMaxBytes, 0)
	k.atLeast("limits.disk_reserve_bytes", c.Limits.DiskReserveBytes, 0)
	k.positive("intervals.lease_duration", iv.LeaseDuration)
	k.positive("intervals.lease_renew", iv.LeaseRenew)
	k.positive("intervals.wake_poll", iv.WakePoll)
	k.positive("intervals.reconcile_timeout", iv.ReconcileTimeout)
	if iv.LeaseRenew.Duration > 0 && iv.LeaseRenew.Duration >= iv.LeaseDuration.Duration {
		k.add("intervals.lease_renew", "must be shorter than intervals.lease_duration (%s) or the lease lapses between renewals, got %q",
			iv.LeaseDuration, iv.LeaseRenew)
	}
	k.positive("retention.data_max_age", c.Retention.DataMaxAge)
	k.positive("retention.stopped_container_max_age", c.Retention.StoppedContainerMaxAge)

	if !oneOf(c.Log.Level, LogLevels...) {
		k.add("log.level", "must be one of %s, got %q", strings.Join(LogLevels, ", "), c.Log.Level)
	}
	k.atLeast("log.max_size_mb", int64(c.Log.MaxSizeMB), 1)
	k.atLeast("log.max_files", int64(c.Log.MaxFiles), 1)
	k.absPath("log.dir", c.Log.Dir, "")
	if c.Log.Syslog != "" && c.Log.Syslog != "local" {
		if _, _, err := SyslogAddress(c.Log.Syslog); err != nil {
			k.add("log.syslog", "%v", err)
		}
	}

	c.validateHTTP(&k)
	c.validateOps(&k)

	if len(c.Profiles) == 0 {
		k.add("profiles", "must define at least one agent profile")
	}
	for _, name := range c.ProfileNames() {
		validateProfile(&k, "profiles."+name, name, c.Profiles[name])
	}
	if _, ok := c.Profiles[c.DefaultAgent]; !ok {
		k.add("default_agent", "must name a profile (%s), got %q", strings.Join(c.ProfileNames(), ", "), c.DefaultAgent)
	}

	for i, e := range c.Redact.Env {
		if !envNameRE.MatchString(e) || redact.CheckName(e) != nil {
			k.add(indexKey("redact.env", i), "must be an environment variable name (at most 128 characters), got %q", e)
		}
	}
	for _, name := range slices.Sorted(maps.Keys(c.Redact.Patterns)) {
		key := "redact.patterns." + name
		if err := redact.CheckName(name); err != nil {
			k.add(key, "the name goes into the placeholder [REDACTED:NAME], so it %v", err)
		}
		if err := redact.CheckPattern(c.Redact.Patterns[name]); err != nil {
			k.add(key, "%v", err)
		}
	}

	if len(k.probs) > 0 {
		return k.probs
	}
	return nil
}

func (c *Config) validateOps(k *checker) {
	if c.Ops.Listen == "" {
		return
	}
	host, port, err := net.SplitHostPort(c.Ops.Listen)
	if err != nil {
		k.add("ops.listen", "must be host:port like 127.0.0.1:47822, or empty for none, got %q", c.Ops.Listen)
	} else if n, err := strconv.Atoi(port); err != nil || n < 0 || n > 65535 {
		k.add("ops.listen", "port must be a number from 0 to 65535, got %q", port)
	} else if !IsLoopbackHost(host) && c.HTTP.Token == "" {
		k.add("http.token", "is required when ops.listen (%q) is not a loopback address (it protects /metrics); set %s", c.Ops.Listen, EnvToken)
	}
}

func (c *Config) validateHTTP(k *checker) {
	host, port, err := net.SplitHostPort(c.HTTP.Listen)
	if err != nil {
		k.add("http.listen", "must be host:port like 127.0.0.1:47821, got %q", c.HTTP.Listen)
	} else if n, err := strconv.Atoi(port); err != nil || n < 0 || n > 65535 {
		k.add("http.listen", "port must be a number from 0 to 65535, got %q", port)
	} else if !IsLoopbackHost(host) && c.HTTP.Token == "" {
		k.add("http.token", "is required when http.listen (%q) is not a loopback address; set %s", c.HTTP.Listen, EnvToken)
	}
	if c.HTTP.Token == RedactedText {
		k.add("http.token", "is the %q placeholder printed by `config print`, not a token", RedactedText)
	}
	for i, o := range c.HTTP.AllowedOrigins {
		u, err := url.Parse(o)
		if err != nil || !oneOf(u.Scheme, "http", "https") || u.Host == "" || (u.Path != "" && u.Path != "/") {
			k.add(indexKey("http.allowed_origins", i), "must be an origin like https://example.com, got %q", o)
		}
	}
}

// IsLoopbackHost reports whether host (a name or an IP, brackets allowed)
// is this machine's loopback: "localhost" in any case, 127.0.0.0/8 or ::1.
// It is the one rule for "reachable from this machine only", used by
// validation, by serve before it listens and by the Origin check.
func IsLoopbackHost(host string) bool {
	host = strings.Trim(host, "[]")
	if strings.EqualFold(host, "localhost") {
		return true
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}

func validateProfile(k *checker, key, name string, p Profile) {
	if !profileNameRE.MatchString(name) {
		k.add(key, "profile names must be lower-case letters, digits, '-' and '_' (at most 63), got %q", name)
	}
	if strings.TrimSpace(p.Image) == "" {
		k.add(key+".image", "is required")
	}
	if len(p.Command) == 0 {
		k.add(key+".command", "is required: an argv list such as [sh, -c, \"{{.Prompt}}\"]")
	}
	checkArgv(k, key+".command", p.Command)
	checkArgv(k, key+".resume_command", p.ResumeCommand)
	for i, e := range p.Env {
		switch {
		case strings.Contains(e, "="):
			k.add(indexKey(key+".env", i), "lists variable NAMES only; values are read from the server's environment, got %q", e[:strings.Index(e, "=")+1]+"…")
		case !envNameRE.MatchString(e):
			k.add(indexKey(key+".env", i), "must be an environment variable name, got %q", e)
		}
	}
	switch {
	case p.Network == "host":
		k.add(key+".network", "\"host\" is refused: it would give the agent the host's network, loopback services included; use \"bridge\" or \"none\"")
	case !oneOf(p.Network, NetworkModes...):
		k.add(key+".network", "must be one of %s, got %q", strings.Join(NetworkModes, ", "), p.Network)
	}
	checkUser(k, key+".user", p.User)
	if !oneOf(p.OutputFormat, OutputFormats...) {
		k.add(key+".output_format", "must be one of %s, got %q", strings.Join(OutputFormats, ", "), p.OutputFormat)
	}
	if !path.IsAbs(p.WorkDir) {
		k.add(key+".work_dir", "must be an absolute path inside the container, got %q", p.WorkDir)
	}
	checkResources(k, key+".resources", p.Resources)
	checkResources(k, key+".ceilings", p.Ceilings)
	if p.Resources.MemoryBytes > p.Ceilings.MemoryBytes {
		k.add(key+".resources.memory", "must not exceed %s.ceilings.memory (%s), got %s", key, FormatBytes(p.Ceilings.MemoryBytes), FormatBytes(p.Resources.MemoryBytes))
	}
	if p.Resources.NanoCPUs > p.Ceilings.NanoCPUs {
		k.add(key+".resources.cpus", "must not exceed %s.ceilings.cpus (%g), got %g", key, formatCPUs(p.Ceilings.NanoCPUs), formatCPUs(p.Resources.NanoCPUs))
	}
	if p.Resources.Pids > p.Ceilings.Pids {
		k.add(key+".resources.pids", "must not exceed %s.ceilings.pids (%d), got %d", key, p.Ceilings.Pids, p.Resources.Pids)
	}
}

// checkUser accepts a numeric uid:gid that is not root: the container must
// never run as root, and a name would depend on the image's /etc/passwd.
func checkUser(k *checker, key, user string) {
	if _, _, err := ParseUser(user); err != nil {
		k.add(key, "%v", err)
	}
}

// ParseUser reads a profile's user, "uid:gid" in numbers, neither of them
// root's: the one rule for who a task's container runs as.
func ParseUser(user string) (uid, gid int, err error) {
	m := userRE.FindStringSubmatch(user)
	if m == nil {
		return 0, 0, fmt.Errorf("must be numeric uid:gid like 10001:10001, got %q", user)
	}
	u, uidErr := strconv.ParseUint(m[1], 10, 31)
	g, gidErr := strconv.ParseUint(m[2], 10, 31)
	switch {
	case uidErr != nil || gidErr != nil:
		return 0, 0, fmt.Errorf("uid and gid must be below 2^31, got %q", user)
	case u == 0:
		return 0, 0, fmt.Errorf("must not be root (uid 0), got %q", user)
	case g == 0:
		return 0, 0, fmt.Errorf("must not be in the root group (gid 0), got %q", user)
	}
	return int(u), int(g), nil
}

func checkArgv(k *checker, key string, argv []string) {
	for i, elem := range argv {
		if err := checkArgTemplate(elem); err != nil {
			k.add(indexKey(key, i), "is not a valid template (fields: .Prompt .SessionID .Feedback .TaskID .Run): %v", err)
		}
	}
}

func checkResources(k *checker, key string, r Resources) {
	if r.MemoryBytes < minMemoryBytes {
		k.add(key+".memory", "must be at least %s (Docker's minimum), got %s", FormatBytes(minMemoryBytes), FormatBytes(r.MemoryBytes))
	}
	if r.NanoCPUs < minNanoCPUs {
		k.add(key+".cpus", "must be at least 0.01, got %g", formatCPUs(r.NanoCPUs))
	}
	// Docker reads a pids limit of 0 or -1 as unlimited, which a fork bomb in
	// an agent's workspace would enjoy.
	if r.Pids < 1 {
		k.add(key+".pids", "must be at least 1 (unlimited is not allowed), got %d", r.Pids)
	}
}

type checker struct{ probs Problems }

func (k *checker) add(key, format string, args ...any) {
	k.probs = append(k.probs, &FieldError{Key: key, Reason: fmt.Sprintf(format, args...)})
}

func (k *checker) positive(key string, d Duration) {
	if d.Duration <= 0 {
		k.add(key, "must be > 0, got %q", d.String())
	}
}

func (k *checker) atLeast(key string, v, least int64) {
	if v < least {
		k.add(key, "must be at least %d, got %d", least, v)
	}
}

func (k *checker) absPath(key, p, hint string) {
	switch {
	case p == "" && hint != "":
		k.add(key, "is empty; %s", hint)
	case !filepath.IsAbs(p):
		k.add(key, "must be an absolute path (or start with ~/), got %q", p)
	}
}

func oneOf(v string, allowed ...string) bool { return slices.Contains(allowed, v) }

// SyslogAddress splits a log.syslog address into the network and address
// log/syslog dials ("local" is handled by the caller).
func SyslogAddress(addr string) (network, raddr string, err error) {
	u, err := url.Parse(addr)
	if err != nil {
		return "", "", fmt.Errorf("syslog address %q: %w", addr, err)
	}
	switch u.Scheme {
	case "udp", "tcp":
		if u.Host == "" || u.Port() == "" {
			return "", "", fmt.Errorf("syslog address %q: want %s://host:port", addr, u.Scheme)
		}
		return u.Scheme, u.Host, nil
	case "unix", "unixgram":
		if u.Host != "" || !strings.HasPrefix(u.Path, "/") {
			return "", "", fmt.Errorf("syslog address %q: want %s:///absolute/path", addr, u.Scheme)
		}
		return u.Scheme, u.Path, nil
	}
	return "", "", fmt.Errorf("syslog address %q: want local, udp://host:port, tcp://host:port, unix:///path or unixgram:///path", addr)
}
