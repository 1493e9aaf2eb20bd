package enginetest

import (
	"fmt"
	"strings"
	"sync"
	"testing"

	"github.com/claude-parallel/claude-parallel/controllers/engine"
	"github.com/claude-parallel/claude-parallel/test/testutil"
)

var (
	secondOnce sync.Once
	secondHost string
	secondErr  error
)

// PrepareSecond makes the second Docker engine of this machine answer
// (hack/ensure-docker2.sh: its own socket, data root and containerd, the
// test image loaded) and returns its address. The remote-engine tests use it
// as an engine whose file system the controllers cannot see. It runs the
// script once per process.
func PrepareSecond() (string, error) {
	secondOnce.Do(func() {
		if err := Prepare(); err != nil {
			secondErr = err
			return
		}
		out, err := testutil.HackScript("ensure-docker2.sh")
		if err != nil {
			secondErr = err
			return
		}
		lines := strings.Fields(out)
		if len(lines) == 0 {
			secondErr = fmt.Errorf("hack/ensure-docker2.sh printed no address")
			return
		}
		secondHost = lines[len(lines)-1]
	})
	return secondHost, secondErr
}

// NewSecond returns an Engine on the second engine and its address, closed at
// the end of the test. Without it the test is skipped, or fails under CI=true.
func NewSecond(t testing.TB) (*engine.Engine, string) {
	t.Helper()
	host, err := PrepareSecond()
	if err != nil {
		testutil.SkipOrFailInCI(t, "SECOND DOCKER ENGINE NOT AVAILABLE, test skipped: %v", err)
	}
	e, err := engine.New(host)
	if err != nil {
		t.Fatalf("engine.New(%s): %v", host, err)
	}
	t.Cleanup(func() { _ = e.Close() })
	return e, host
}
