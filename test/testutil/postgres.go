package testutil

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
)

// EnvPostgresDSN names the PostgreSQL server the tests make their databases
// on (a superuser's DSN). Unset: hack/ensure-postgres.sh is run (it starts
// the tests' own server from Debian's packages if none answers) and its DSN
// is used.
const EnvPostgresDSN = "CP_TEST_POSTGRES_DSN"

var (
	pgOnce   sync.Once
	pgAdmin  string
	pgReason string
)

// postgresAdminDSN finds or starts the tests' PostgreSQL server once per
// test binary.
func postgresAdminDSN() (string, string) {
	pgOnce.Do(func() {
		if dsn := os.Getenv(EnvPostgresDSN); dsn != "" {
			pgAdmin = dsn
			return
		}
		out, err := HackScript("ensure-postgres.sh")
		if err != nil {
			pgReason = "no PostgreSQL server: " + err.Error()
			return
		}
		pgAdmin = strings.TrimSpace(out)
	})
	return pgAdmin, pgReason
}

// PostgresDSN returns the DSN of a new, empty PostgreSQL database for this
// test, dropped when it ends (with any connection left open to it). Without
// a server it skips the test, or fails it in CI.
func PostgresDSN(t testing.TB) string {
	t.Helper()
	admin, reason := postgresAdminDSN()
	if admin == "" {
		SkipOrFailInCI(t, "%s", reason)
		return ""
	}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	conn, err := pgx.Connect(ctx, admin)
	if err != nil {
		SkipOrFailInCI(t, "connect to the tests' PostgreSQL (%s): %v", EnvPostgresDSN, err)
		return ""
	}
	defer conn.Close(context.Background())
	b := make([]byte, 6)
	_, _ = rand.Read(b)
	name := "cptest_" + hex.EncodeToString(b)
	// template0: a database nobody is connected to, so CREATE never waits.
	if _, err := conn.Exec(ctx, "CREATE DATABASE "+name+" TEMPLATE template0"); err != nil {
		t.Fatalf("create test database: %v", err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		defer cancel()
		c, err := pgx.Connect(ctx, admin)
		if err != nil {
			t.Errorf("drop test database %s: %v", name, err)
			return
		}
		defer c.Close(context.Background())
		if _, err := c.Exec(ctx, "DROP DATABASE IF EXISTS "+name+" WITH (FORCE)"); err != nil {
			t.Errorf("drop test database %s: %v", name, err)
		}
	})
	cfg, err := pgx.ParseConfig(admin)
	if err != nil {
		t.Fatalf("parse %s: %v", EnvPostgresDSN, err)
	}
	return dsnWithDatabase(admin, cfg.Database, name)
}

// dsnWithDatabase points a key=value or URL DSN at database name.
func dsnWithDatabase(dsn, old, name string) string {
	if strings.HasPrefix(dsn, "postgres://") || strings.HasPrefix(dsn, "postgresql://") {
		if i := strings.LastIndex(dsn, "/"+old); i >= 0 {
			return dsn[:i] + "/" + name + dsn[i+1+len(old):]
		}
		return dsn
	}
	return dsn + " dbname=" + name
}

// StoreDrivers are the store drivers every store-level suite runs on.
var StoreDrivers = []string{"sqlite", "postgres"}
