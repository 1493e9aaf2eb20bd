package testutil

import (
	"fmt"
	"os"
	"testing"
)

// InCI reports whether the tests run under CI (CI=true), where `make test`
// has started Docker and built every image, so every test must run.
func InCI() bool { return os.Getenv("CI") == "true" }

// SkipOrFailInCI skips the test for the reason given, except in CI, where a
// test that cannot run is a failure: a skipped test is not a passing one, and
// CI provides everything the tests need.
func SkipOrFailInCI(t testing.TB, format string, args ...any) {
	t.Helper()
	if InCI() {
		t.Fatalf("CI=true, and this test cannot run: %s", fmt.Sprintf(format, args...))
		return
	}
	t.Skipf(format, args...)
}
