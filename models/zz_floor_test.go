package models

import (
	"context"
	"database/sql"
	"fmt"
	"net/url"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"testing"
	"time"

	"gorm.io/driver/sqlite"
)

// scratch (not committed): store insert vs bare fsync'd insert, interleaved.
func TestZZFloor(t *testing.T) {
	s := newSQLiteTestStore(t)
	bare := filepath.Join(t.TempDir(), "bare.db")
	dsn := "file:" + (&url.URL{Path: bare}).EscapedPath() + "?_journal_mode=WAL&_synchronous=FULL&_txlock=immediate&_busy_timeout=10000"
	db, err := sql.Open(sqlite.DriverName, dsn)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	if _, err := db.Exec("CREATE TABLE rows (id TEXT PRIMARY KEY, body BLOB NOT NULL)"); err != nil {
		t.Fatal(err)
	}
	gap, _ := strconv.Atoi(os.Getenv("ZZ_GAP_MS"))
	n := 200
	var st, bt []time.Duration
	body := make([]byte, 600)
	for i := range n {
		if gap > 0 {
			time.Sleep(time.Duration(gap) * time.Millisecond)
		}
		t0 := time.Now()
		if _, _, err := s.CreateTask(context.Background(), &Task{Spec: TaskSpec{Prompt: fmt.Sprintf("echo %d > idle-%d.txt", i, i), WorkFolder: "/tmp/x/work/repo", Agent: "shell", IncludeUncommitted: true}}); err != nil {
			t.Fatal(err)
		}
		st = append(st, time.Since(t0))
		if gap > 0 {
			time.Sleep(time.Duration(gap) * time.Millisecond)
		}
		t0 = time.Now()
		if _, err := db.Exec("INSERT INTO rows (id, body) VALUES (?, ?)", NewTaskID(), body); err != nil {
			t.Fatal(err)
		}
		bt = append(bt, time.Since(t0))
	}
	med := func(d []time.Duration) time.Duration { d = slices.Clone(d); slices.Sort(d); return d[len(d)/2] }
	t.Logf("store insert p50 %v, bare %v (gap %dms)", med(st), med(bt), gap)
}
