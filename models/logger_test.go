//go:build linux

package models

import (
	"context"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"go.uber.org/zap"
	"go.uber.org/zap/zaptest/observer"
	"golang.org/x/sys/unix"
	"gorm.io/gorm"
)

// Stdout carries the MCP protocol: the store must never write a byte to it,
// whatever GORM would like to log. File descriptor 1 itself is redirected,
// because GORM's default logger holds the original os.Stdout.
func TestStore_NeverWritesToStdoutAndLogsWithoutValues(t *testing.T) {
	ctx := context.Background()
	r, w, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	saved, err := unix.Dup(1)
	if err != nil {
		t.Fatal(err)
	}
	if err := unix.Dup2(int(w.Fd()), 1); err != nil {
		t.Fatal(err)
	}
	captured := make(chan string)
	go func() {
		b, _ := io.ReadAll(r)
		captured <- string(b)
	}()

	core, logs := observer.New(zap.DebugLevel)
	func() {
		defer func() {
			_ = unix.Dup2(saved, 1)
			_ = unix.Close(saved)
			w.Close()
		}()
		s, err := Open(ctx, filepath.Join(t.TempDir(), "cp.db"), Options{Logger: zap.New(core), SlowQuery: time.Nanosecond})
		if err != nil {
			t.Errorf("open: %v", err)
			return
		}
		defer s.Close()
		task := newTask("secret prompt value")
		mustCreateTask(t, s, task)
		_, _ = s.GetTask(ctx, "task-000000000000")
		_ = s.DB().Debug().Exec("SELECT * FROM no_such_table").Error
		_ = s.DB().Session(&gorm.Session{}).Raw("SELECT 1").Row().Scan(new(int))
	}()
	if out := <-captured; out != "" {
		t.Fatalf("the store wrote to stdout:\n%s", out)
	}

	var slow, failed int
	for _, e := range logs.All() {
		for _, f := range e.Context {
			if strings.Contains(f.String, "secret prompt value") {
				t.Fatalf("a log line carries a bound value: %s %v", e.Message, e.Context)
			}
		}
		switch e.Message {
		case "slow query":
			slow++
		case "query failed":
			failed++
		}
	}
	if slow == 0 || failed == 0 {
		t.Fatalf("expected slow-query and failed-query lines in the zap log, got %d and %d", slow, failed)
	}
}
