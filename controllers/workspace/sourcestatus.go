package workspace

import (
	"context"
	"encoding/binary"
	"fmt"
	"io"
	"os"
	"strings"
)

// onePassEntries is the index size below which sourceDelta asks one git
// process for both lists (sourceStatusOnePass) instead of two at once. A
// small source's comparison is all process start-up: two processes cost
// about twice the CPU of one, on the path from a task's intent to its
// container's start, where the create competes for the same two cores. A
// large index is compared by two: diff-files stats the files on several
// threads, ls-files on one.
const onePassEntries = 20_000

// indexEntries reads the entry count from an index file's header, -1 when
// the file is not an index git wrote.
func indexEntries(path string) int {
	f, err := os.Open(path)
	if err != nil {
		return -1
	}
	defer f.Close()
	var h [12]byte
	if _, err := io.ReadFull(f, h[:]); err != nil || string(h[:4]) != "DIRC" {
		return -1
	}
	return int(binary.BigEndian.Uint32(h[8:12]))
}

// sourceStatusOnePass is changedTracked and untrackedFiles (without
// excludes) in one `git ls-files -t -m -d -o --exclude-standard`: the
// tracked files modified or gone, and the untracked files no rule ignores,
// apart from nested repositories ("dir/", not copied) and paths named like
// a git directory. ls-files cannot leave submodules out as diff-files does
// (--ignore-submodules=all), so a changed path that is not a file or a
// symlink in the work tree — a submodule's folder, or what replaced a file
// — is looked up in the index, and a submodule entry is left out, kept as
// base has it.
func sourceStatusOnePass(ctx context.Context, g gitCmd) (changed, added []string, err error) {
	out, err := g.run(ctx, nil, "ls-files", "-z", "-t", "-m", "-d", "-o", "--exclude-standard")
	if err != nil {
		return nil, nil, fmt.Errorf("list changed and untracked files: %w", err)
	}
	seen := map[string]bool{}
	for _, rec := range splitNUL(out) {
		tag, p, ok := strings.Cut(rec, " ")
		if !ok || p == "" {
			return nil, nil, fmt.Errorf("list changed and untracked files: unexpected record %q", rec)
		}
		switch tag {
		case "?":
			if !strings.HasSuffix(p, "/") && !hasGitComponent(p) {
				added = append(added, p)
			}
		case "C", "R": // modified (or gone), gone: a deleted file is listed as both
			if !seen[p] {
				seen[p] = true
				changed = append(changed, p)
			}
		default:
			return nil, nil, fmt.Errorf("list changed and untracked files: unexpected tag in %q", rec)
		}
	}
	if changed, err = dropSubmoduleEntries(ctx, g, changed); err != nil {
		return nil, nil, err
	}
	return changed, added, nil
}

// dropSubmoduleEntries returns paths without those the index holds as
// submodule entries (mode 160000), asking git only about paths that are no
// file or symlink in the work tree: a submodule is a folder, or gone.
// Rare, so one more git process for them is.
func dropSubmoduleEntries(ctx context.Context, g gitCmd, paths []string) ([]string, error) {
	root, err := os.OpenRoot(g.workTree)
	if err != nil {
		return nil, err
	}
	defer root.Close()
	odd := false
	for _, p := range paths {
		if fi, err := lstatInTree(root, p); err != nil || !(fi.Mode().IsRegular() || fi.Mode().Type() == os.ModeSymlink) {
			odd = true
			break
		}
	}
	if !odd {
		return paths, nil
	}
	// The whole index: it is small here (onePassEntries), and no path list
	// can outgrow an argument list.
	out, err := g.run(ctx, nil, "ls-files", "-z", "-s")
	if err != nil {
		return nil, fmt.Errorf("read index modes: %w", err)
	}
	gitlinks := map[string]bool{}
	for _, rec := range splitNUL(out) {
		if meta, p, ok := strings.Cut(rec, "\t"); ok && strings.HasPrefix(meta, "160000 ") {
			gitlinks[p] = true
		}
	}
	kept := paths[:0:0]
	for _, p := range paths {
		if !gitlinks[p] {
			kept = append(kept, p)
		}
	}
	return kept, nil
}
