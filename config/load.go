package config

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"syscall"
)

// Environment variables read by Load.
const (
	EnvConfig     = "CLAUDE_PARALLEL_CONFIG"
	EnvHome       = "CLAUDE_PARALLEL_HOME"
	EnvDBPath     = "CLAUDE_PARALLEL_DB_PATH"
	EnvLogLevel   = "LOG_LEVEL"
	EnvDockerHost = "DOCKER_HOST"
	EnvToken      = "CLAUDE_PARALLEL_TOKEN"
)

// LoadOptions carries the command-line flags and, for tests, the
// environment. A zero value loads from the real environment.
type LoadOptions struct {
	// ConfigPath is --config. When empty, $CLAUDE_PARALLEL_CONFIG is used,
	// then <home>/config.yaml if it exists, where home is --home,
	// $CLAUDE_PARALLEL_HOME or ~/.claude-parallel.
	ConfigPath string
	// Home is --home.
	Home string
	// DBPath is --db.
	DBPath string
	// LogLevel is --log-level.
	LogLevel string

	// LookupEnv replaces os.LookupEnv (tests).
	LookupEnv func(key string) (string, bool)
	// UserHome replaces os.UserHomeDir() for defaults and "~" (tests).
	UserHome string
}

// Load builds the effective configuration: defaults, then the YAML file,
// then the environment, then flags, and validates the result. An error names
// each offending key and where its value came from.
func Load(opts LoadOptions) (*Config, error) {
	getenv := func(key string) string {
		lookup := opts.LookupEnv
		if lookup == nil {
			lookup = os.LookupEnv
		}
		// An empty variable counts as unset, as `VAR= cmd` is how shells unset.
		v, _ := lookup(key)
		return strings.TrimSpace(v)
	}
	userHome := opts.UserHome
	if userHome == "" {
		userHome = userHomeDir()
	}

	c := defaultsFor(userHome)
	sources := map[string]string{}

	path, explicit, err := configFile(opts, getenv, userHome)
	if err != nil {
		return nil, err
	}
	if path != "" {
		data, err := os.ReadFile(path)
		switch {
		case err == nil:
			if err := decodeYAML(data, path, c, sources); err != nil {
				return nil, fmt.Errorf("config file %s: %w", path, err)
			}
			c.File = path
		case !explicit && (errors.Is(err, fs.ErrNotExist) || errors.Is(err, syscall.ENOTDIR)):
			// The default location is optional; a home that cannot hold it
			// is reported by whatever tries to use the home.
		default:
			return nil, fmt.Errorf("read config file: %w", err)
		}
	}

	// set applies one environment or flag override. Paths given on the
	// command line or in the environment are relative to the working
	// directory, as a shell user expects; in the file they must be absolute.
	set := func(key, source, value string, isPath bool, apply func(string)) error {
		if value == "" {
			return nil
		}
		if isPath {
			abs, err := absPath(value, userHome)
			if err != nil {
				return &FieldError{Key: key, Reason: err.Error(), Source: source}
			}
			value = abs
		}
		apply(value)
		sources[key] = source
		return nil
	}
	overrides := []struct {
		key, source, value string
		isPath             bool
		apply              func(string)
	}{
		{"home", "env " + EnvHome, getenv(EnvHome), true, func(v string) { c.Home = v }},
		{"db_path", "env " + EnvDBPath, getenv(EnvDBPath), true, func(v string) { c.DBPath = v }},
		{"log.level", "env " + EnvLogLevel, getenv(EnvLogLevel), false, func(v string) { c.Log.Level = v }},
		{"docker_host", "env " + EnvDockerHost, getenv(EnvDockerHost), false, func(v string) { c.DockerHost = v }},
		{"store.driver", "env " + EnvDBDriver, getenv(EnvDBDriver), false, func(v string) { c.Store.Driver = v }},
		{"store.dsn", "env " + EnvDBDSN, getenv(EnvDBDSN), false, func(v string) { c.Store.DSN = Secret(v) }},
		{"http.token", "env " + EnvToken, getenv(EnvToken), false, func(v string) { c.HTTP.Token = Secret(v) }},
		{"home", "flag --home", opts.Home, true, func(v string) { c.Home = v }},
		{"db_path", "flag --db", opts.DBPath, true, func(v string) { c.DBPath = v }},
		{"log.level", "flag --log-level", opts.LogLevel, false, func(v string) { c.Log.Level = v }},
	}
	for _, o := range overrides {
		if err := set(o.key, o.source, o.value, o.isPath, o.apply); err != nil {
			return nil, err
		}
	}

	c.applyStoreLeaseDefaults(sources)
	c.normalize(userHome)
	c.deriveEmptyPaths()
	if err := c.Validate(); err != nil {
		var probs Problems
		if errors.As(err, &probs) {
			probs.annotate(sources)
		}
		return nil, fmt.Errorf("invalid configuration: %w", err)
	}
	return c, nil
}

// configFile picks the file to read; explicit is false for the default
// location, which may be absent.
func configFile(opts LoadOptions, getenv func(string) string, userHome string) (path string, explicit bool, err error) {
	if opts.ConfigPath != "" {
		p, err := absPath(opts.ConfigPath, userHome)
		return p, true, wrapPathErr("--config", err)
	}
	if v := getenv(EnvConfig); v != "" {
		p, err := absPath(v, userHome)
		return p, true, wrapPathErr(EnvConfig, err)
	}
	// The default file lives in the installation directory, so a test or a
	// second installation pointed elsewhere never reads the user's own file.
	home := opts.Home
	if home == "" {
		home = getenv(EnvHome)
	}
	if home == "" {
		if userHome == "" {
			return "", false, nil
		}
		home = filepath.Join(userHome, DefaultHomeDirName)
	}
	home, err = absPath(home, userHome)
	if err != nil {
		return "", false, wrapPathErr("home", err)
	}
	return filepath.Join(home, ConfigFileName), false, nil
}

func wrapPathErr(what string, err error) error {
	if err == nil {
		return nil
	}
	return fmt.Errorf("config file from %s: %w", what, err)
}

// absPath expands "~" and makes p absolute against the working directory.
func absPath(p, userHome string) (string, error) {
	p = expandTilde(p, userHome)
	abs, err := filepath.Abs(p)
	if err != nil {
		return "", fmt.Errorf("resolve path %q: %w", p, err)
	}
	return abs, nil
}

// expandTilde turns "~" and "~/x" into paths under the user's home. Other
// paths, including "~user", are returned unchanged.
func expandTilde(p, userHome string) string {
	if userHome == "" {
		return p
	}
	if p == "~" {
		return userHome
	}
	if strings.HasPrefix(p, "~/") {
		return filepath.Join(userHome, p[2:])
	}
	return p
}

// normalize puts values in the one form the rest of the program compares
// against: "~" expanded, paths cleaned, level names lower case.
func (c *Config) normalize(userHome string) {
	cleanPath := func(p string) string {
		if p == "" {
			return ""
		}
		p = expandTilde(p, userHome)
		if !filepath.IsAbs(p) {
			return p // Validate refuses it with the key's name
		}
		return filepath.Clean(p)
	}
	c.Home = cleanPath(c.Home)
	c.DBPath = cleanPath(c.DBPath)
	c.Log.Dir = cleanPath(c.Log.Dir)
	for i, r := range c.AllowedRoots {
		c.AllowedRoots[i] = cleanPath(r)
	}
	c.Log.Level = strings.ToLower(strings.TrimSpace(c.Log.Level))
	if c.Log.Level == "warning" {
		c.Log.Level = "warn"
	}
}
