//go:build !linux

package workspace

import "os"

// copyTree copies paths from the tree at srcDir into the tree at dstDir (see
// treeCopier.copyAll), through from and to, the same trees as roots.
func copyTree(from, to *os.Root, srcDir, dstDir string, paths []string) ([]copiedEntry, error) {
	return newTreeCopier(from, to).copyAll(paths)
}
