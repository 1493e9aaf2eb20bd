package config

import "time"

// The leader lease on SQLite, when the file sets neither
// intervals.lease_duration nor intervals.lease_renew. Every process on a
// SQLite store runs on one machine, where a successor sees at once that a
// holder's process is gone (models/procid) and takes over without waiting
// for the lease to run out; so a long lease costs no failover time there,
// and each renewal saved is a write and an fsync an idle server does not
// make. Only a holder that is alive but stuck keeps the lease longer. On
// PostgreSQL, whose replicas may run on other machines, expiry is the only
// way to learn that a holder died: it keeps 15s / 5s.
const (
	SQLiteLeaseDuration = 90 * time.Second
	SQLiteLeaseRenew    = 30 * time.Second
)

// applyStoreLeaseDefaults gives a SQLite store its own lease defaults when
// no source set either lease key.
func (c *Config) applyStoreLeaseDefaults(sources map[string]string) {
	if c.Store.EffectiveDriver() != StoreSQLite {
		return
	}
	_, d := sources["intervals.lease_duration"]
	_, r := sources["intervals.lease_renew"]
	if d || r {
		return
	}
	c.Intervals.LeaseDuration = D(SQLiteLeaseDuration)
	c.Intervals.LeaseRenew = D(SQLiteLeaseRenew)
}
