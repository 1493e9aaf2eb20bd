package main

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/claude-parallel/claude-parallel/models"
	"github.com/claude-parallel/claude-parallel/test/testutil"
)

// After kill -9, a restarted server on the same machine sees that the lease's
// holder was its dead predecessor and leads at once, instead of waiting for
// the whole lease to run out. Measured by the store's own timestamps, against
// the lease duration: the new holding must begin long before the old one
// could have expired.
func TestServe_RestartAfterKill9LeadsWithoutWaitingForTheLease(t *testing.T) {
	if _, err := os.Stat("/proc/self/stat"); err != nil {
		testutil.SkipOrFailInCI(t, "no /proc here: a dead holder cannot be told from a live one")
	}
	const leaseDuration = 60 * time.Second
	e := newServerEnv(t)
	cfgFile := filepath.Join(e.dir, "config.yaml")
	testutil.WriteFile(t, cfgFile, "allowed_roots: ["+e.dir+"]\nintervals:\n  lease_duration: 60s\n  lease_renew: 20s\n")
	db := filepath.Join(e.home, "data", "claude-parallel.db")

	// start runs serve over stdio (its stdin kept open) and waits until the
	// store shows it holding the lease.
	start := func() (stop func(kill bool), lease models.Lease) {
		t.Helper()
		cmd := e.command("--config", cfgFile, "serve")
		stdin, err := cmd.StdinPipe()
		if err != nil {
			t.Fatal(err)
		}
		var stderr testutil.LockedBuffer
		cmd.Stderr = &stderr
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		stop = func(kill bool) {
			if kill {
				_ = cmd.Process.Kill()
			}
			_ = stdin.Close()
			_ = cmd.Wait()
		}
		mine := ":" + strconv.Itoa(cmd.Process.Pid) + ":"
		deadline := time.Now().Add(leaseDuration / 2)
		for {
			if s, err := models.Open(context.Background(), db, models.Options{}); err == nil {
				lease, err = s.GetLease(context.Background(), models.LeaderLease)
				_ = s.Close()
				if err == nil && strings.Contains(lease.Holder, mine) {
					return stop, lease
				}
				if err != nil && !errors.Is(err, models.ErrNotFound) {
					t.Fatal(err)
				}
			}
			if time.Now().After(deadline) {
				stop(true)
				t.Fatalf("server %d does not hold the lease after %v (lease: %+v)\nstderr: %s",
					cmd.Process.Pid, leaseDuration/2, lease, stderr.String())
			}
			time.Sleep(50 * time.Millisecond)
		}
	}

	stop, first := start()
	stop(true) // kill -9, no release
	stop, second := start()
	defer stop(true)
	expiry := first.RenewedAt.Add(time.Duration(first.DurationMS) * time.Millisecond)
	waited := second.AcquiredAt.Sub(first.RenewedAt)
	t.Logf("restarted server took the lease %v after the dead one's last renewal (lease %v)", waited, leaseDuration)
	if time.Duration(first.DurationMS)*time.Millisecond != leaseDuration {
		t.Fatalf("first holding lasts %dms, want the configured %v", first.DurationMS, leaseDuration)
	}
	if !second.AcquiredAt.Before(expiry) || waited > leaseDuration/2 {
		t.Fatalf("restarted server took the lease at %s, %v after the dead holder's last renewal; "+
			"want well within the %v lease (it expired at %s)", second.AcquiredAt, waited, leaseDuration, expiry)
	}
}
