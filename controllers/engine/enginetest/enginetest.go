// Package enginetest prepares a real Docker engine for tests and cleans up after
// them. Any package whose tests need Docker uses it:
//
//	func TestMain(m *testing.M) { enginetest.Main(m) }
//
//	func TestSomething(t *testing.T) {
//		e := enginetest.New(t)              // skips (or fails under CI=true) without Docker
//		labels := enginetest.Labels(t, e)   // unique label; containers removed at cleanup
//		...
//	}
//
// Main runs hack/ensure-docker.sh and hack/build-test-image.sh when the engine does
// not answer or the test image is missing. When Docker still cannot be had, tests
// fail under CI=true (a green CI must mean the Docker tests ran) and are skipped with
// a loud message otherwise.
package enginetest

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"os"
	"sync"
	"testing"
	"time"

	"github.com/claude-parallel/claude-parallel/controllers/engine"
	"github.com/claude-parallel/claude-parallel/test/testutil"
)

// ShellImage is the busybox test image built by hack/build-test-image.sh (user
// 10001:10001, workdir /workspace, /bin/sh).
const ShellImage = "claude-parallel/shell:latest"

// TestLabel marks containers created by tests; its value is unique per test.
const TestLabel = "claude-parallel.test"

var (
	prepareOnce sync.Once
	prepareErr  error
)

// Prepare makes the engine answer and the test image exist, running the hack scripts
// if needed. It runs once per process; later calls return the first result.
func Prepare() error {
	prepareOnce.Do(func() { prepareErr = prepare() })
	return prepareErr
}

func prepare() error {
	e, err := engine.New("")
	if err != nil {
		return err
	}
	defer e.Close()

	if !pings(e) {
		if err := runScript("ensure-docker.sh"); err != nil {
			return fmt.Errorf("hack/ensure-docker.sh: %w", err)
		}
		if !pings(e) {
			return errors.New("the Docker engine still does not answer after hack/ensure-docker.sh")
		}
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	ok, err := e.ImageExists(ctx, ShellImage)
	if err != nil {
		return err
	}
	if !ok {
		if err := runScript("build-test-image.sh"); err != nil {
			return fmt.Errorf("hack/build-test-image.sh: %w", err)
		}
	}
	return nil
}

func pings(e *engine.Engine) bool {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	_, _, err := e.Ping(ctx)
	return err == nil
}

// runScript runs hack/name (its output goes to stderr, as the tests' log).
func runScript(name string) error {
	out, err := testutil.HackScript(name)
	fmt.Fprint(os.Stderr, out)
	return err
}

// Main is the body of a TestMain for packages whose tests need Docker.
func Main(m *testing.M) {
	if err := Prepare(); err != nil {
		if testutil.InCI() {
			fmt.Fprintf(os.Stderr, "FAIL: CI=true and no Docker engine could be made available: %v\n", err)
			os.Exit(1)
		}
		fmt.Fprintf(os.Stderr, "\n"+
			"**********************************************************************\n"+
			"*  Docker is not available: tests that need it are SKIPPED.\n"+
			"*  %v\n"+
			"*  Run `bash hack/ensure-docker.sh` (as root on Debian) and retry.\n"+
			"**********************************************************************\n\n", err)
	}
	os.Exit(m.Run())
}

// New returns an Engine on the default Docker host, closed at the end of the test.
// Without Docker the test is skipped, or fails under CI=true.
func New(t testing.TB) *engine.Engine {
	t.Helper()
	if err := Prepare(); err != nil {
		testutil.SkipOrFailInCI(t, "DOCKER NOT AVAILABLE, test skipped: %v", err)
	}
	e, err := engine.New("")
	if err != nil {
		t.Fatalf("engine.New: %v", err)
	}
	t.Cleanup(func() { _ = e.Close() })
	return e
}

// Labels returns {TestLabel: <random>} and registers a cleanup that force-removes
// every container carrying it, so a test cleans up even when it fails half-way.
func Labels(t testing.TB, e *engine.Engine) map[string]string {
	t.Helper()
	labels := map[string]string{TestLabel: RandomHex(8)}
	t.Cleanup(func() { RemoveAll(t, e, labels) })
	return labels
}

// RemoveAll force-removes every container (running or not) carrying labels.
func RemoveAll(t testing.TB, e *engine.Engine, labels map[string]string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	list, err := e.List(ctx, labels, true)
	if err != nil {
		t.Errorf("cleanup: list test containers: %v", err)
		return
	}
	for _, c := range list {
		if err := e.Remove(ctx, c.ID, true); err != nil && !errors.Is(err, engine.ErrNotFound) {
			t.Errorf("cleanup: %v", err)
		}
	}
}

// RandomHex returns n random bytes as 2n lowercase hex digits.
func RandomHex(n int) string {
	b := make([]byte, n)
	if _, err := rand.Read(b); err != nil {
		panic(err)
	}
	return hex.EncodeToString(b)
}

// Merge returns a new map with the entries of all maps, later ones winning.
func Merge(maps ...map[string]string) map[string]string {
	out := map[string]string{}
	for _, m := range maps {
		for k, v := range m {
			out[k] = v
		}
	}
	return out
}

// WaitFor polls Inspect every 50 ms until cond holds or timeout passes, and returns
// the last ContainerInfo seen.
func WaitFor(t testing.TB, e *engine.Engine, id string, timeout time.Duration, cond func(engine.ContainerInfo) bool) engine.ContainerInfo {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		info, err := e.Inspect(ctx, id)
		cancel()
		if err == nil && cond(info) {
			return info
		}
		if time.Now().After(deadline) {
			t.Fatalf("container %s: condition not met within %v (state %q, err %v)", id, timeout, info.State, err)
		}
		time.Sleep(50 * time.Millisecond)
	}
}
