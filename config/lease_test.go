package config

import (
	"testing"
	"time"
)

func TestLoad_SQLiteLeaseIsLongUnlessSet(t *testing.T) {
	cases := []struct {
		name         string
		yaml         string
		env          map[string]string
		lease, renew time.Duration
	}{
		{"sqlite, nothing set", "", nil, SQLiteLeaseDuration, SQLiteLeaseRenew},
		{"sqlite, duration set", "intervals:\n  lease_duration: 20s\n", nil, 20 * time.Second, 5 * time.Second},
		{"sqlite, renew set", "intervals:\n  lease_renew: 2s\n", nil, 15 * time.Second, 2 * time.Second},
		{"postgres keeps the short lease", "store:\n  driver: postgres\n  dsn: postgres://localhost/x\n", nil, 15 * time.Second, 5 * time.Second},
		{"postgres by env", "", map[string]string{EnvDBDSN: "postgres://localhost/x"}, 15 * time.Second, 5 * time.Second},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			c, err := load(t, LoadOptions{ConfigPath: writeFile(t, tc.yaml+"\n")}, tc.env)
			if err != nil {
				t.Fatal(err)
			}
			if c.Intervals.LeaseDuration.Duration != tc.lease || c.Intervals.LeaseRenew.Duration != tc.renew {
				t.Fatalf("lease %s renew %s, want %s and %s", c.Intervals.LeaseDuration, c.Intervals.LeaseRenew, tc.lease, tc.renew)
			}
		})
	}
}
