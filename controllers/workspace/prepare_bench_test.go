package workspace

import (
	"context"
	"fmt"
	"path/filepath"
	"testing"
)

// BenchmarkPrepare measures one workspace preparation from a small committed
// work folder, the step that sits between a task's intent and its container
// start: as a checkout of HEAD and as a snapshot of the work folder.
//
//	go test -run '^$' -bench Prepare ./controllers/workspace/
func BenchmarkPrepare(b *testing.B) {
	for _, snapshot := range []bool{false, true} {
		b.Run(fmt.Sprintf("includeUncommitted=%v", snapshot), func(b *testing.B) {
			src := newBenchSource(b)
			root := filepath.Join(b.TempDir(), "workspaces")
			ctx := context.Background()
			n := 0
			for b.Loop() {
				n++
				if _, err := Prepare(ctx, PrepareSpec{
					TaskID: fmt.Sprintf("task-%012x", n), WorkFolder: src, IncludeUncommitted: snapshot,
					Root: root, UID: -1, GID: -1,
				}); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

// newBenchSource is a committed work folder shaped like the end-to-end
// tests' repository, plus the files of newSourceRepo.
func newBenchSource(b *testing.B) string {
	b.Helper()
	return newSourceRepo(b)
}
