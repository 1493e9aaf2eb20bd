package main

import (
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/claude-parallel/claude-parallel/config"
	"github.com/claude-parallel/claude-parallel/test/testutil"
)

func (e *serverEnv) db() string { return filepath.Join(e.home, "data", config.DBFileName) }

// sqlite3 runs Debian's sqlite3 on db, as an operator would.
func sqlite3(t *testing.T, db, sql string) string {
	t.Helper()
	out, err := exec.Command("sqlite3", db, sql).CombinedOutput()
	if err != nil {
		t.Fatalf("sqlite3 %s %q: %v\n%s", db, sql, err, out)
	}
	return strings.TrimSpace(string(out))
}

type backupJSON struct {
	Path     string `json:"path"`
	Tasks    int64  `json:"tasks"`
	Diffs    int64  `json:"diffs"`
	Previous string `json:"previousKeptAt"`
}

// `backup` while task intents keep arriving from other processes, then
// `restore` into a fresh home: every task the backup holds is there,
// integrity_check says ok. `restore` is refused while a server leads, and
// a damaged file is refused before anything is replaced.
func TestCLI_BackupUnderLoadAndRestore(t *testing.T) {
	if _, err := exec.LookPath("sqlite3"); err != nil {
		testutil.SkipOrFailInCI(t, "sqlite3 is needed to inspect the files: apt-get install sqlite3")
	}
	e := newServerEnv(t)
	var stop atomic.Bool
	var started atomic.Int64
	var wg sync.WaitGroup
	for range 2 {
		wg.Go(func() {
			for !stop.Load() {
				out, err := e.command("task", "start", "--repo", e.repo, "--agent", "shell", "--prompt", "echo hi").CombinedOutput()
				if err != nil {
					t.Errorf("task start during backup: %v\n%s", err, out)
					return
				}
				started.Add(1)
			}
		})
	}
	for started.Load() < 4 {
		time.Sleep(20 * time.Millisecond)
	}
	file := filepath.Join(e.dir, "backup.db")
	out, err := e.command("backup", file, "--json").Output()
	afterBackup := started.Load()
	stop.Store(true)
	wg.Wait()
	if err != nil {
		t.Fatalf("backup: %v\n%s", err, out)
	}
	var b backupJSON
	if err := json.Unmarshal(out, &b); err != nil || b.Tasks < 4 {
		t.Fatalf("backup output %s: %v", out, err)
	}
	t.Logf("backup holds %d tasks; %d were written by the time it returned", b.Tasks, afterBackup)
	if got := sqlite3(t, file, "PRAGMA integrity_check;"); got != "ok" {
		t.Fatalf("integrity_check of the backup: %s", got)
	}
	backupIDs := sqlite3(t, file, "SELECT id FROM background_tasks ORDER BY id;")

	fresh := newServerEnv(t)
	out, err = fresh.command("restore", file, "--json").CombinedOutput()
	if err != nil {
		t.Fatalf("restore into a fresh home: %v\n%s", err, out)
	}
	var r backupJSON
	if err := json.Unmarshal(out, &r); err != nil || r.Tasks != b.Tasks || r.Path != fresh.db() || r.Previous != "" {
		t.Fatalf("restore output %s (%v); backup had %d tasks", out, err, b.Tasks)
	}
	if got := sqlite3(t, fresh.db(), "SELECT id FROM background_tasks ORDER BY id;"); got != backupIDs {
		t.Fatalf("restored tasks:\n%s\nbackup's:\n%s", got, backupIDs)
	}
	if got := sqlite3(t, fresh.db(), "PRAGMA integrity_check;"); got != "ok" {
		t.Fatalf("integrity_check of the restored database: %s", got)
	}
	// The restored home works: the CLI lists the tasks.
	out, err = fresh.command("task", "list", "--json").CombinedOutput()
	if err != nil || !strings.Contains(string(out), strings.Split(backupIDs, "\n")[0]) {
		t.Fatalf("task list in the restored home: %v\n%s", err, out)
	}

	// A server leads on the original home: restore is refused, nothing moves.
	e.startHTTP(t, freePort(t))
	waitFor(t, func() bool {
		out, _ := exec.Command("sqlite3", e.db(), "SELECT count(*) FROM leases;").Output()
		return strings.TrimSpace(string(out)) == "1"
	}, "the server to take the lease", &testutil.LockedBuffer{})
	before := sqlite3(t, e.db(), "SELECT count(*) FROM background_tasks;")
	out, err = e.command("restore", file).CombinedOutput()
	if err == nil || !strings.Contains(string(out), "leader lease") {
		t.Fatalf("restore while a server leads: %v\n%s", err, out)
	}
	if after := sqlite3(t, e.db(), "SELECT count(*) FROM background_tasks;"); after != before {
		t.Fatalf("a refused restore changed the database: %s tasks, was %s", after, before)
	}
	if m, _ := filepath.Glob(e.db() + ".pre-restore-*"); len(m) != 0 {
		t.Fatalf("a refused restore moved the database: %v", m)
	}

	// A damaged backup is refused before anything is created or replaced.
	raw, err := os.ReadFile(file)
	if err != nil {
		t.Fatal(err)
	}
	for i := 4096; i < len(raw); i++ {
		raw[i] ^= 0xff
	}
	damaged := filepath.Join(e.dir, "damaged.db")
	if err := os.WriteFile(damaged, raw, 0o600); err != nil {
		t.Fatal(err)
	}
	other := newServerEnv(t)
	out, err = other.command("restore", damaged).CombinedOutput()
	if err == nil || !strings.Contains(string(out), "does not check") {
		t.Fatalf("restore of a damaged file: %v\n%s", err, out)
	}
	if _, err := os.Stat(other.db()); !os.IsNotExist(err) {
		t.Fatalf("a refused restore created %s (%v)", other.db(), err)
	}
}
