package testutil

import (
	"fmt"
	"testing"
)

// outcome records how a test helper ended the test, without ending this one.
type outcome struct {
	testing.TB
	failed, skipped string
}

func (o *outcome) Helper() {}
func (o *outcome) Fatalf(format string, args ...any) {
	o.failed = fmt.Sprintf(format, args...)
}
func (o *outcome) Skipf(format string, args ...any) {
	o.skipped = fmt.Sprintf(format, args...)
}

func TestSkipOrFailInCI(t *testing.T) {
	t.Setenv("CI", "true")
	var ci outcome
	SkipOrFailInCI(&ci, "no engine: %s", "gone")
	if ci.failed != "CI=true, and this test cannot run: no engine: gone" || ci.skipped != "" {
		t.Errorf("under CI=true: failed %q, skipped %q; want a failure naming the reason", ci.failed, ci.skipped)
	}
	t.Setenv("CI", "")
	var dev outcome
	SkipOrFailInCI(&dev, "no engine: %s", "gone")
	if dev.skipped != "no engine: gone" || dev.failed != "" {
		t.Errorf("outside CI: failed %q, skipped %q; want a skip naming the reason", dev.failed, dev.skipped)
	}
}
