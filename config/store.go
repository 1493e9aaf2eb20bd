package config

import (
	"net/url"
	"regexp"
	"strings"
)

// Environment variables choosing the store's database.
const (
	// EnvDBDriver is store.driver: sqlite (default) or postgres.
	EnvDBDriver = "CLAUDE_PARALLEL_DB_DRIVER"
	// EnvDBDSN is store.dsn, the PostgreSQL connection string. Setting it
	// alone selects the postgres driver.
	EnvDBDSN = "CLAUDE_PARALLEL_DB_DSN"
)

// Store drivers.
const (
	StoreSQLite   = "sqlite"
	StorePostgres = "postgres"
)

// StoreConfig chooses the database the store lives in: the embedded SQLite
// file at db_path (the default), or a PostgreSQL database that several
// servers share (one leads, the others serve MCP and take over).
type StoreConfig struct {
	// Driver is sqlite or postgres; empty means postgres when DSN is set,
	// else sqlite.
	Driver string `yaml:"driver"`
	// DSN is the PostgreSQL connection string (URL or key=value, as libpq
	// takes), env CLAUDE_PARALLEL_DB_DSN. A secret: its password never
	// reaches a log, and the whole string is redacted from output.
	DSN Secret `yaml:"dsn"`
}

// EffectiveDriver is the driver the store opens with.
func (s StoreConfig) EffectiveDriver() string {
	if s.Driver == "" {
		if s.DSN != "" {
			return StorePostgres
		}
		return StoreSQLite
	}
	return s.Driver
}

func (c *Config) validateStore(k *checker) {
	switch c.Store.EffectiveDriver() {
	case StoreSQLite:
		if c.Store.DSN != "" {
			k.add("store.dsn", "is only for store.driver postgres, and store.driver is sqlite")
		}
	case StorePostgres:
		if c.Store.DSN == "" {
			k.add("store.dsn", "must be set for store.driver postgres (or set %s)", EnvDBDSN)
		}
	default:
		k.add("store.driver", "must be sqlite or postgres, got %q", c.Store.Driver)
	}
}

var dsnPasswordRE = regexp.MustCompile(`(?:^|\s)password\s*=\s*('(?:[^'\\]|\\.)*'|\S+)`)

// dsnPassword is the password inside a PostgreSQL DSN, "" when none: it is
// redacted on its own too, since a driver's error may quote it alone.
func dsnPassword(dsn string) string {
	if strings.HasPrefix(dsn, "postgres://") || strings.HasPrefix(dsn, "postgresql://") {
		if u, err := url.Parse(dsn); err == nil && u.User != nil {
			p, _ := u.User.Password()
			return p
		}
		return ""
	}
	if m := dsnPasswordRE.FindStringSubmatch(dsn); m != nil {
		return strings.Trim(m[1], "'")
	}
	return ""
}
