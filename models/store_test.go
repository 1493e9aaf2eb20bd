package models

import (
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"
)

func TestOpen_CreatesDirectoryAndStableInstallationID(t *testing.T) {
	ctx := context.Background()
	path := filepath.Join(t.TempDir(), "nested", "dir", "cp.db")
	s, err := Open(ctx, path, Options{})
	if err != nil {
		t.Fatalf("open: %v", err)
	}
	id := s.InstallationID()
	if len(id) != 32 {
		t.Fatalf("installation id %q: want 32 hex chars", id)
	}
	if s.Path() != path {
		t.Fatalf("Path() = %q, want %q", s.Path(), path)
	}
	if err := s.Close(); err != nil {
		t.Fatalf("close: %v", err)
	}
	if err := s.Close(); err != nil {
		t.Fatalf("second close: %v", err)
	}

	s2, err := Open(ctx, path, Options{})
	if err != nil {
		t.Fatalf("reopen: %v", err)
	}
	defer s2.Close()
	if s2.InstallationID() != id {
		t.Fatalf("installation id changed on reopen: %q -> %q", id, s2.InstallationID())
	}
	var version string
	if err := s2.DB().Raw("SELECT value FROM meta WHERE key = 'schema_version'").Scan(&version).Error; err != nil {
		t.Fatal(err)
	}
	if version != strconv.Itoa(SchemaVersion) {
		t.Fatalf("schema_version = %q, want %d", version, SchemaVersion)
	}
}

// Each pooled connection must carry the pragmas: they come from the DSN, not
// from an Exec that would reach one connection only.
func TestOpen_EveryConnectionHasThePragmas(t *testing.T) {
	ctx := context.Background()
	s := newSQLiteTestStore(t)
	sqlDB, err := s.DB().DB()
	if err != nil {
		t.Fatal(err)
	}
	for i := range defaultMaxOpenConns {
		conn, err := sqlDB.Conn(ctx)
		if err != nil {
			t.Fatal(err)
		}
		defer conn.Close()
		var journal string
		var fk, sync, busy int
		for q, dst := range map[string]any{
			"PRAGMA journal_mode": &journal, "PRAGMA foreign_keys": &fk,
			"PRAGMA synchronous": &sync, "PRAGMA busy_timeout": &busy,
		} {
			if err := conn.QueryRowContext(ctx, q).Scan(dst); err != nil {
				t.Fatalf("conn %d %s: %v", i, q, err)
			}
		}
		if journal != "wal" || fk != 1 || sync != 2 || busy != 10000 {
			t.Fatalf("conn %d: journal_mode=%s foreign_keys=%d synchronous=%d busy_timeout=%d; want wal 1 2(FULL) 10000",
				i, journal, fk, sync, busy)
		}
	}
}

// A reopen must not rebuild tables (GORM's SQLite migrator recreates a table
// when it thinks a column changed; with 100k rows that would be a slow start).
func TestOpen_ReopenLeavesSchemaUntouched(t *testing.T) {
	ctx := context.Background()
	path := filepath.Join(t.TempDir(), "cp.db")
	dump := func() string {
		s, err := Open(ctx, path, Options{})
		if err != nil {
			t.Fatalf("open: %v", err)
		}
		defer s.Close()
		var rows []struct {
			Type, Name, Sql string
			Rootpage        int
		}
		if err := s.DB().Raw("SELECT type, name, rootpage, coalesce(sql, '') AS sql FROM sqlite_master ORDER BY name").Scan(&rows).Error; err != nil {
			t.Fatal(err)
		}
		var b strings.Builder
		for _, r := range rows {
			b.WriteString(r.Type + " " + r.Name + " " + r.Sql + "\n")
		}
		return b.String()
	}
	first := dump()
	for _, table := range []string{"background_tasks", "git_diffs", "containers", "execution_logs", "leases", "events", "meta"} {
		if !strings.Contains(first, "table "+table+" ") {
			t.Errorf("table %s missing from schema", table)
		}
	}
	if !strings.Contains(first, "FOREIGN KEY (`task_id`) REFERENCES `background_tasks`(`id`) ON DELETE CASCADE") {
		t.Errorf("git_diffs/execution_logs foreign key missing:\n%s", first)
	}
	if second := dump(); second != first {
		t.Fatalf("schema changed on reopen:\n--- first\n%s\n--- second\n%s", first, second)
	}
}

func TestOpen_NewerSchemaIsRefused(t *testing.T) {
	ctx := context.Background()
	path := filepath.Join(t.TempDir(), "cp.db")
	s, err := Open(ctx, path, Options{})
	if err != nil {
		t.Fatal(err)
	}
	if err := s.DB().Exec("UPDATE meta SET value = '99' WHERE key = 'schema_version'").Error; err != nil {
		t.Fatal(err)
	}
	s.Close()

	_, err = Open(ctx, path, Options{})
	if !errors.Is(err, ErrSchemaTooNew) {
		t.Fatalf("open newer schema: err = %v, want ErrSchemaTooNew", err)
	}
	for _, want := range []string{"99", fmt.Sprintf("up to %d", SchemaVersion), path} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error %q does not mention %q", err, want)
		}
	}
}

func TestOpen_GarbageFileIsRefusedClearly(t *testing.T) {
	path := filepath.Join(t.TempDir(), "cp.db")
	garbage := make([]byte, 8192)
	rand.Read(garbage)
	if err := os.WriteFile(path, garbage, 0o600); err != nil {
		t.Fatal(err)
	}
	_, err := Open(context.Background(), path, Options{})
	if !errors.Is(err, ErrCorrupt) {
		t.Fatalf("open garbage: err = %v, want ErrCorrupt", err)
	}
	if !strings.Contains(err.Error(), path) {
		t.Fatalf("error %q does not name the file", err)
	}
	if after, _ := os.ReadFile(path); string(after) != string(garbage) {
		t.Fatal("the garbage file was modified")
	}
}

// A file with a valid header but damaged pages gets an error, not a panic.
func TestOpen_DamagedDatabaseIsRefusedClearly(t *testing.T) {
	ctx := context.Background()
	path := filepath.Join(t.TempDir(), "cp.db")
	s, err := Open(ctx, path, Options{})
	if err != nil {
		t.Fatal(err)
	}
	mustCreateTask(t, s, newTask("p"))
	s.Close()
	for _, suffix := range []string{"-wal", "-shm"} {
		os.Remove(path + suffix)
	}
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	// Keep the 100-byte header, scribble over the rest of page 1 (the schema).
	for i := 100; i < 4096 && i < len(data); i++ {
		data[i] = 0xA5
	}
	if err := os.WriteFile(path, data, 0o600); err != nil {
		t.Fatal(err)
	}
	_, err = Open(ctx, path, Options{})
	if err == nil {
		t.Fatal("open damaged database: no error")
	}
	if !errors.Is(err, ErrCorrupt) || !strings.Contains(err.Error(), path) {
		t.Fatalf("open damaged database: err = %v, want ErrCorrupt naming the file", err)
	}
}

func TestOpen_PathWithURICharacters(t *testing.T) {
	ctx := context.Background()
	path := filepath.Join(t.TempDir(), "a?b#c %d", "cp.db")
	s, err := Open(ctx, path, Options{})
	if err != nil {
		t.Fatalf("open: %v", err)
	}
	mustCreateTask(t, s, newTask("p"))
	s.Close()
	if _, err := os.Stat(path); err != nil {
		t.Fatalf("database not at the given path: %v", err)
	}
}

func TestOpen_EmptyPathIsInvalid(t *testing.T) {
	if _, err := Open(context.Background(), "", Options{}); !errors.Is(err, ErrInvalid) {
		t.Fatalf("err = %v, want ErrInvalid", err)
	}
}

// _txlock=immediate: BEGIN takes the write lock at once, so a transaction
// never has to upgrade a read lock halfway (which fails with SQLITE_BUSY
// whatever the busy timeout). Seen from another connection, an open but
// still empty transaction already blocks writers.
func TestOpen_TransactionsBeginImmediate(t *testing.T) {
	ctx := context.Background()
	path := filepath.Join(t.TempDir(), "cp.db")
	a, err := Open(ctx, path, Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer a.Close()
	b, err := Open(ctx, path, Options{BusyTimeout: 50 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	sqlDB, _ := a.DB().DB()
	tx, err := sqlDB.BeginTx(ctx, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer tx.Rollback()
	err = b.DB().Exec("INSERT INTO leases (name, holder, acquired_at, renewed_at) VALUES ('x', 'y', '', '')").Error
	if !isBusy(err) {
		t.Fatalf("write beside an open empty transaction: err = %v, want SQLITE_BUSY (BEGIN was not IMMEDIATE)", err)
	}
}

// Several servers started at once on a fresh file: one creates the schema,
// all agree on one installation id.
func TestOpen_ConcurrentFirstOpensAgree(t *testing.T) {
	ctx := context.Background()
	path := filepath.Join(t.TempDir(), "cp.db")
	const n = 6
	ids := make([]string, n)
	errs := make([]error, n)
	var wg sync.WaitGroup
	for i := range n {
		wg.Go(func() {
			s, err := Open(ctx, path, Options{})
			if err != nil {
				errs[i] = err
				return
			}
			ids[i] = s.InstallationID()
			errs[i] = s.Close()
		})
	}
	wg.Wait()
	for i := range n {
		if errs[i] != nil {
			t.Fatalf("open %d: %v", i, errs[i])
		}
		if ids[i] != ids[0] {
			t.Fatalf("installation ids differ: %v", ids)
		}
	}
}
