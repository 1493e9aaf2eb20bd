package config

import (
	"strings"
	"testing"
)

// The PostgreSQL DSN is a secret: the redactor hides it whole and its
// password alone (a driver's error may quote either), and Redacted
// configurations never carry it.
func TestStoreDSN_IsASecret(t *testing.T) {
	for _, dsn := range []string{
		"host=db port=5432 user=cp password=s3cret-pass-1 dbname=cp",
		"postgres://cp:s3cret-pass-1@db:5432/cp?sslmode=verify-full",
	} {
		c := Default()
		c.Store.DSN = Secret(dsn)
		r := c.Redactor()
		for _, text := range []string{"connect " + dsn + ": refused", `password authentication failed, password "s3cret-pass-1"`} {
			if got := r.String(text); strings.Contains(got, "s3cret-pass-1") {
				t.Errorf("redacted %q still shows the password: %q", text, got)
			}
		}
		if got := c.Redacted().Store.DSN; got != RedactedText {
			t.Errorf("Redacted DSN %q", got)
		}
		if c.Store.EffectiveDriver() != StorePostgres {
			t.Errorf("a DSN alone picks %q", c.Store.EffectiveDriver())
		}
	}
}

func TestStoreDriver_Validated(t *testing.T) {
	for _, tc := range []struct {
		driver, dsn, want string
	}{
		{"postgres", "", "store.dsn"},
		{"sqlite", "host=x", "store.dsn"},
		{"mysql", "", "store.driver"},
	} {
		c := Default()
		c.Home, c.DBPath = "/h", "/h/data/db"
		c.Store = StoreConfig{Driver: tc.driver, DSN: Secret(tc.dsn)}
		if err := c.Validate(); err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("driver %q dsn %q: %v, want a problem with %s", tc.driver, tc.dsn, err, tc.want)
		}
	}
}
