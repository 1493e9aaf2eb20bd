package models

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/claude-parallel/claude-parallel/test/testutil"
)

// childRoleEnv switches the test binary into a helper process (see
// runChild): the cross-process tests re-execute themselves so that two real
// processes share one database file.
const (
	childRoleEnv = "CP_MODELS_TEST_CHILD"
	childDBEnv   = "CP_MODELS_TEST_DB"
)

// storeDriversEnv limits the drivers the suite runs on (a comma-separated
// list; default every one of testutil.StoreDrivers).
const storeDriversEnv = "CP_TEST_STORE_DRIVERS"

// testDriver is the driver newTestStore opens stores on in this pass of
// the suite. TestMain runs the whole suite once per driver, so every test
// written against newTestStore is a test of both stores; the tests of
// SQLite's own files (backup, quick_check, the write lock) open their
// files explicitly and run the same in both passes.
var testDriver = DriverSQLite

func TestMain(m *testing.M) {
	if role := os.Getenv(childRoleEnv); role != "" {
		os.Exit(runChild(role, os.Getenv(childDBEnv)))
	}
	drivers := testutil.StoreDrivers
	if v := os.Getenv(storeDriversEnv); v != "" {
		drivers = strings.Split(v, ",")
	}
	code := 0
	for _, d := range drivers {
		testDriver = d
		fmt.Printf("=== store driver %s\n", d)
		if c := m.Run(); c != 0 {
			fmt.Printf("--- FAIL: the suite on store driver %s\n", d)
			code = c
		}
	}
	os.Exit(code)
}

// childTarget names s's database for a child process (see runChild).
func childTarget(s *Store) string {
	if s.pg != nil {
		return DriverPostgres + ":" + s.pg.dsn
	}
	return s.Path()
}

// openTarget opens a store on a database named as childTarget names it.
func openTarget(ctx context.Context, target string, opts Options) (*Store, error) {
	if dsn, ok := strings.CutPrefix(target, DriverPostgres+":"); ok {
		return OpenPostgres(ctx, dsn, opts)
	}
	return Open(ctx, target, opts)
}

// openAgain opens a second store on s's database, as another process would.
func openAgain(ctx context.Context, s *Store, opts Options) (*Store, error) {
	return openTarget(ctx, childTarget(s), opts)
}

func runChild(role, path string) int {
	ctx := context.Background()
	s, err := openTarget(ctx, path, Options{})
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

// newSQLiteTestStore opens a store on a fresh SQLite file in every pass:
// for the tests of SQLite's own machinery (its files, backup, query plans).
func newSQLiteTestStore(t testing.TB, opts ...Options) *Store {
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

// newTestStore opens a store on a fresh database of this pass's driver: a
// file in t.TempDir(), or a new PostgreSQL database (testutil.PostgresDSN).
func newTestStore(t testing.TB, opts ...Options) *Store {
	t.Helper()
	var o Options
	if len(opts) > 0 {
		o = opts[0]
	}
	target := filepath.Join(t.TempDir(), "data", "claude-parallel.db")
	if testDriver == DriverPostgres {
		target = DriverPostgres + ":" + testutil.PostgresDSN(t)
	}
	s, err := openTarget(context.Background(), target, o)
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
