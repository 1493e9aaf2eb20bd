package main

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/claude-parallel/claude-parallel/models"
)

// writeDamagedStore creates the store at path with enough tasks to span many
// pages, then scribbles over pages in the middle of the file, leaving the
// schema intact (page 1 and the first pages, which the schema's triggers
// and indexes fill): the file opens, and only a query that reaches the
// damage would fail.
func writeDamagedStore(t *testing.T, path string) {
	t.Helper()
	ctx := context.Background()
	s, err := models.Open(ctx, path, models.Options{})
	if err != nil {
		t.Fatal(err)
	}
	for i := range 200 {
		task := &models.Task{Spec: models.TaskSpec{Prompt: fmt.Sprintf("task %d %s", i, strings.Repeat("x", 2000)),
			WorkFolder: "/repo", Agent: "shell"}}
		if _, _, err := s.CreateTask(ctx, task); err != nil {
			t.Fatal(err)
		}
	}
	if err := s.Close(); err != nil { // checkpoints the WAL into the file
		t.Fatal(err)
	}
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	const page = 4096
	pages := len(data) / page
	for p := pages / 3; p < pages*2/3; p++ {
		copy(data[p*page:(p+1)*page], bytes.Repeat([]byte{0xA5}, page))
	}
	if err := os.WriteFile(path, data, 0o600); err != nil {
		t.Fatal(err)
	}
}

// A store damaged in the middle: serve refuses to start and says which file
// and what to do; doctor names it too.
func TestServeAndDoctor_DamagedStoreIsNamedAtStart(t *testing.T) {
	e := newServerEnv(t)
	db := filepath.Join(e.home, "data", "claude-parallel.db")
	writeDamagedStore(t, db)

	cmd := e.command("serve")
	cmd.Stdin = strings.NewReader("") // a stdio client that goes away at once
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	err := cmd.Run()
	if err == nil {
		t.Fatalf("serve started on a damaged store\nstderr: %s", stderr.String())
	}
	if out := stderr.String(); !strings.Contains(out, db) || !strings.Contains(out, "damaged") || !strings.Contains(out, "restore") {
		t.Fatalf("serve: %v; stderr does not name %s as damaged with what to do:\n%s", err, db, out)
	}

	cmd = e.command("doctor")
	var stdout bytes.Buffer
	cmd.Stdout = &stdout
	if err := cmd.Run(); err == nil {
		t.Fatalf("doctor passed a damaged store:\n%s", stdout.String())
	}
	if !strings.Contains(stdout.String(), "FAIL  database: store "+db+" is damaged") {
		t.Fatalf("doctor does not name the damaged database:\n%s", stdout.String())
	}
}
