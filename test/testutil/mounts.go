package testutil

import (
	"bufio"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"syscall"
	"testing"
)

// UnmountBelowAtEnd registers a cleanup that unmounts whatever is mounted
// below dir (a server's copy-on-write workspaces are overlay mounts, which
// outlive it), so that the removal of dir, registered before, can succeed.
// Call it right after making dir, so that it runs after the cleanups that
// stop the server and its containers.
func UnmountBelowAtEnd(tb testing.TB, dir string) {
	tb.Helper()
	tb.Cleanup(func() {
		for _, m := range mountsBelow(dir) {
			if err := syscall.Unmount(m, syscall.MNT_DETACH); err != nil {
				tb.Errorf("unmount %s: %v", m, err)
			}
		}
	})
}

// mountsBelow lists the mount points below dir, deepest first.
func mountsBelow(dir string) []string {
	real, err := filepath.EvalSymlinks(dir)
	if err != nil {
		real = dir
	}
	f, err := os.Open("/proc/self/mountinfo")
	if err != nil {
		return nil
	}
	defer f.Close()
	var out []string
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	for sc.Scan() {
		fields := strings.Fields(sc.Text())
		if len(fields) < 5 {
			continue
		}
		// Octal escapes (\040 for a space) are left: test folders have none.
		if p := fields[4]; strings.HasPrefix(p, real+"/") || strings.HasPrefix(p, dir+"/") {
			out = append(out, p)
		}
	}
	sort.Slice(out, func(i, j int) bool { return len(out[i]) > len(out[j]) })
	return out
}
