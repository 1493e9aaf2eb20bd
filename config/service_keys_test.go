package config

import (
	"strings"
	"testing"
)

// ops.listen and log.syslog are checked with their key's name; an ops
// listener beyond loopback needs the token (it guards /metrics).
func TestValidate_ServiceKeys(t *testing.T) {
	for _, tc := range []struct {
		name    string
		mutate  func(*Config)
		wantKey string // "" = valid
	}{
		{"no ops listener", func(c *Config) {}, ""},
		{"loopback ops listener", func(c *Config) { c.Ops.Listen = "127.0.0.1:0" }, ""},
		{"ops listener not host:port", func(c *Config) { c.Ops.Listen = "47822" }, "ops.listen"},
		{"ops listener bad port", func(c *Config) { c.Ops.Listen = "127.0.0.1:99999" }, "ops.listen"},
		{"ops listener off loopback without token", func(c *Config) { c.Ops.Listen = "0.0.0.0:47822" }, "http.token"},
		{"ops listener off loopback with token", func(c *Config) { c.Ops.Listen = "0.0.0.0:47822"; c.HTTP.Token = "t" }, ""},
		{"local syslog", func(c *Config) { c.Log.Syslog = "local" }, ""},
		{"udp syslog", func(c *Config) { c.Log.Syslog = "udp://127.0.0.1:514" }, ""},
		{"unixgram syslog", func(c *Config) { c.Log.Syslog = "unixgram:///dev/log" }, ""},
		{"syslog without port", func(c *Config) { c.Log.Syslog = "tcp://logs.example" }, "log.syslog"},
		{"syslog relative path", func(c *Config) { c.Log.Syslog = "unix://dev/log" }, "log.syslog"},
		{"syslog unknown scheme", func(c *Config) { c.Log.Syslog = "otlp://collector:4317" }, "log.syslog"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c := defaultsFor(testUserHome)
			c.deriveEmptyPaths()
			tc.mutate(c)
			err := c.Validate()
			switch {
			case tc.wantKey == "" && err != nil:
				t.Fatalf("want valid, got %v", err)
			case tc.wantKey != "" && (err == nil || !strings.Contains(err.Error(), tc.wantKey+":")):
				t.Fatalf("want an error naming %s, got %v", tc.wantKey, err)
			}
		})
	}
}
