package models

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"testing"
	"time"
)

// childRoleEnv switches the test binary into a helper process (see
// runChild): the cross-process tests re-execute themselves so that two real
// processes share one database file.
const (
	childRoleEnv = "CP_MODELS_TEST_CHILD"
	childDBEnv   = "CP_MODELS_TEST_DB"
)

func TestMain(m *testing.M) {
	if role := os.Getenv(childRoleEnv); role != "" {
		os.Exit(runChild(role, os.Getenv(childDBEnv)))
	}
	os.Exit(m.Run())
}

func runChild(role, path string) int {
	ctx := context.Background()
	s, err := Open(ctx, path, Options{})
	if err != nil {
		fmt.Fprintln(os.Stderr, "child open:", err)
		return 2
	}
	defer s.Close()
	switch role {
	case "lease":
		return leaseChild(ctx, s)
	case "lease-hold":
		return leaseHoldChild(ctx, s)
	case "write":
		t := &Task{Spec: TaskSpec{Prompt: "from child", WorkFolder: "/child"}}
		if _, _, err := s.CreateTask(ctx, t); err != nil {
			fmt.Fprintln(os.Stderr, "child create:", err)
			return 2
		}
		fmt.Println("wrote", t.ID)
		return 0
	default:
		fmt.Fprintln(os.Stderr, "unknown child role", role)
		return 2
	}
}

// childCommand re-executes the test binary as a helper process that plays
// role on the database at path (see runChild).
func childCommand(role, path string) *exec.Cmd {
	cmd := exec.Command(os.Args[0], "-test.run=^$")
	cmd.Env = append(os.Environ(), childRoleEnv+"="+role, childDBEnv+"="+path)
	return cmd
}

// newTestStore opens a store on a fresh file in t.TempDir().
func newTestStore(t testing.TB, opts ...Options) *Store {
	t.Helper()
	var o Options
	if len(opts) > 0 {
		o = opts[0]
	}
	s, err := Open(context.Background(), filepath.Join(t.TempDir(), "data", "claude-parallel.db"), o)
	if err != nil {
		t.Fatalf("open store: %v", err)
	}
	t.Cleanup(func() { _ = s.Close() })
	return s
}

// newTask is a minimal valid task intent.
func newTask(prompt string) *Task {
	return &Task{Spec: TaskSpec{Prompt: prompt, WorkFolder: "/repo", Agent: "shell"}}
}

func mustCreateTask(t testing.TB, s *Store, task *Task) *Task {
	t.Helper()
	got, created, err := s.CreateTask(context.Background(), task)
	if err != nil {
		t.Fatalf("create task: %v", err)
	}
	if !created {
		t.Fatalf("create task: not created")
	}
	return got
}

func ptr[T any](v T) *T { return &v }

// fakeClock is a settable clock for Options.Now.
type fakeClock struct{ t time.Time }

func (c *fakeClock) Now() time.Time          { return c.t }
func (c *fakeClock) Advance(d time.Duration) { c.t = c.t.Add(d) }

// eventReasons returns the reasons of an object's events, oldest first.
func eventReasons(t testing.TB, s *Store, kind, id string) []string {
	t.Helper()
	events, err := s.ListEvents(context.Background(), kind, id, 0)
	if err != nil {
		t.Fatal(err)
	}
	var reasons []string
	for _, e := range events {
		reasons = append(reasons, e.Reason)
	}
	return reasons
}
