package main

import (
	"context"
	"path/filepath"
	"testing"

	"go.uber.org/zap"

	"github.com/claude-parallel/claude-parallel/models"
	"github.com/claude-parallel/claude-parallel/test/testutil"
)

// rssAnonKB is this process's anonymous resident memory (RssAnon), in KiB.
// Linux has it since 4.5, and the server runs on Linux only.
func rssAnonKB(t *testing.T) int {
	t.Helper()
	st, err := testutil.ProcStatusKB(0)
	kb, ok := st["RssAnon"]
	if err != nil || !ok {
		testutil.SkipOrFailInCI(t, "no RssAnon in /proc/self/status (%v)", err)
	}
	return int(kb)
}

// The start-up integrity check reads every page of the store through one
// connection, whose page cache keeps up to 2 MB of them; settling gives that
// back to the OS (PRAGMA shrink_memory, then malloc_trim).
func TestSettle_ReleasesSQLiteCaches(t *testing.T) {
	ctx := context.Background()
	st, err := models.Open(ctx, filepath.Join(t.TempDir(), "cp.db"), models.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	db := st.DB()
	if err := db.Exec(`CREATE TABLE ballast (b BLOB)`).Error; err != nil {
		t.Fatal(err)
	}
	if err := db.Exec(`WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i+1 FROM n WHERE i < 2000)
		INSERT INTO ballast SELECT randomblob(3000) FROM n`).Error; err != nil { // 6 MB
		t.Fatal(err)
	}
	if err := st.QuickCheck(ctx); err != nil {
		t.Fatal(err)
	}
	var sum int64
	if err := db.Raw(`SELECT sum(length(b)) FROM ballast`).Scan(&sum).Error; err != nil {
		t.Fatal(err)
	}
	trimCHeap() // what the reads left free does not count
	before := rssAnonKB(t)
	a := &app{store: st}
	a.log = zap.NewNop()
	a.settle(ctx)
	after := rssAnonKB(t)
	if before-after < 1024 {
		t.Fatalf("RssAnon %d KiB before settling, %d KiB after: want at least 1 MiB of SQLite's cache given back", before, after)
	}
}
