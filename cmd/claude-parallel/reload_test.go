package main

import (
	"slices"
	"testing"
	"time"

	"github.com/claude-parallel/claude-parallel/config"
)

// Every key a reload claims to apply at once is one changedKeys can name and
// one applyLiveKey copies; a key that needs a restart is left alone.
func TestReload_LiveKeysAreAppliedAndNothingElse(t *testing.T) {
	cur := config.Default()
	next := cur.Clone()
	next.Log.Level = "debug"
	next.AllowedRoots = []string{"/srv"}
	next.HTTP.Token = config.Secret("a-new-token-value")
	next.HTTP.AllowedOrigins = []string{"http://localhost:1"}
	next.MaxParallel = cur.MaxParallel + 3
	next.DefaultTaskTimeout = config.Duration{Duration: 7 * time.Minute}
	next.MaxTaskTimeout = config.Duration{Duration: 9 * time.Hour}
	next.MaxPatchBytes = cur.MaxPatchBytes + 1
	next.Retention.DataMaxAge = config.Duration{Duration: 99 * time.Hour}
	next.Retention.StoppedContainerMaxAge = config.Duration{Duration: 98 * time.Hour}
	next.Limits.WorkspaceMaxBytes = cur.Limits.WorkspaceMaxBytes + 1
	next.Limits.DiskReserveBytes = cur.Limits.DiskReserveBytes + 1
	shell, _ := next.Profile("shell")
	shell.Image = "example/shell:2"
	next.Profiles["shell"] = shell
	next.DefaultAgent = "shell"
	next.Redact.Env = []string{"MY_TOKEN"}
	next.Redact.Patterns = map[string]string{"MINE": `tok_[0-9]{8}`}
	next.Workers = cur.Workers + 1 // needs a restart
	next.Intervals.Resync = config.Duration{Duration: 3 * time.Minute}

	changed := changedKeys(cur, next)
	for _, k := range liveKeys {
		if k == "default_agent" && cur.DefaultAgent == next.DefaultAgent {
			continue
		}
		if !slices.Contains(changed, k) {
			t.Errorf("live key %q is not a key changedKeys names (changed: %v)", k, changed)
		}
	}
	applied := cur.Clone()
	live, later := applyLiveKeys(applied, next, changed)
	for _, k := range changed {
		if got, want := slices.Contains(live, k), slices.Contains(liveKeys, k); got != want || slices.Contains(later, k) == want {
			t.Errorf("key %q applied at once: %v, want %v (live %v, later %v)", k, got, want, live, later)
		}
	}
	if applied.Workers != cur.Workers || applied.Intervals.Resync != cur.Intervals.Resync {
		t.Errorf("keys that need a restart were applied: workers %d resync %s", applied.Workers, applied.Intervals.Resync)
	}
	applied.Workers, applied.Intervals.Resync = next.Workers, next.Intervals.Resync
	if d := changedKeys(applied, next); len(d) != 0 {
		t.Errorf("after applying every key these still differ: %v", d)
	}
	// The profiles are a copy: editing the applied ones leaves next alone.
	p := applied.Profiles["shell"]
	p.Image = "changed"
	applied.Profiles["shell"] = p
	if next.Profiles["shell"].Image != "example/shell:2" {
		t.Error("applied profiles share their map with the reloaded config")
	}
}
