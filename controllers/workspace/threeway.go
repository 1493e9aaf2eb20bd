package workspace

import (
	"context"
	"fmt"
	"path/filepath"
	"strings"
)

// threeWay merges the patch into copies of the target's files in the scratch
// repository, with the base blobs taken from the workspace and the target as
// alternates. It returns the patch that takes the target's current files to the
// merged ones, nil if the target already holds the result, or the conflicting
// files (possibly empty if git named none) when the merge does not resolve. The
// target's files are the scratch copies m made through the target's checked
// handle; git reads only objects of the target, through its pinned git dir.
func threeWay(ctx context.Context, sc *scratch, m *mirror, repo repoInfo, sourceGitDir string, patch []byte, files []*filePatch) ([]byte, []string, error) {
	wt, copied := m.dir, m.copied
	alternates := []string{filepath.Join(repo.commonDir, "objects")}
	if sourceGitDir != "" {
		alternates = append([]string{filepath.Join(sourceGitDir, "objects")}, alternates...)
	}
	g := gitCmd{gitDir: sc.gitDir, workTree: wt, dir: wt, config: workspaceConfig}.with(
		"GIT_INDEX_FILE="+filepath.Join(sc.dir, "index"),
		"GIT_ALTERNATE_OBJECT_DIRECTORIES="+alternateList(alternates))
	if _, err := g.run(ctx, nil, "read-tree", "--empty"); err != nil {
		return nil, nil, fmt.Errorf("three-way: %w", err)
	}
	if len(copied) > 0 {
		if _, err := g.run(ctx, joinNUL(copied), "update-index", "--add", "-z", "--stdin"); err != nil {
			return nil, nil, fmt.Errorf("three-way: stage target files: %w", err)
		}
	}
	before, err := g.runText(ctx, nil, "write-tree")
	if err != nil {
		return nil, nil, fmt.Errorf("three-way: %w", err)
	}
	out, err := g.run(ctx, patch, "apply", "--3way", "--cached", "--whitespace=nowarn")
	if err != nil {
		if ctx.Err() != nil {
			return nil, nil, err
		}
		names := matchConflicts(string(out)+"\n"+gitStderr(err), files)
		return nil, append([]string{}, names...), nil
	}
	after, err := g.runText(ctx, nil, "write-tree")
	if err != nil {
		return nil, nil, fmt.Errorf("three-way: %w", err)
	}
	if after == before {
		return nil, nil, nil
	}
	merged, err := g.run(ctx, nil, "diff", "--binary", "--full-index", "--no-renames", "--no-ext-diff",
		"--no-textconv", "--no-color", "--src-prefix=a/", "--dst-prefix=b/", "--end-of-options", before, after)
	if err != nil {
		return nil, nil, fmt.Errorf("three-way: %w", err)
	}
	return merged, nil, nil
}

// alternateList formats GIT_ALTERNATE_OBJECT_DIRECTORIES, quoting entries git would
// otherwise split or misread.
func alternateList(dirs []string) string {
	parts := make([]string, 0, len(dirs))
	for _, d := range dirs {
		if strings.ContainsAny(d, ":\"\\\n") {
			r := strings.NewReplacer(`\`, `\\`, `"`, `\"`, "\n", `\n`)
			d = `"` + r.Replace(d) + `"`
		}
		parts = append(parts, d)
	}
	return strings.Join(parts, ":")
}

// conflictFiles names the files that stop the patch from applying: from git's
// messages if it named any, else by checking each file's part of the patch alone.
func conflictFiles(ctx context.Context, target gitCmd, patch []byte, files []*filePatch, stderr string) []string {
	if names := matchConflicts(stderr, files); len(names) > 0 {
		return names
	}
	var names []string
	for _, f := range files {
		if applyCheck(ctx, target, patch[f.start:f.end], false) != nil {
			names = append(names, f.path())
		}
	}
	if len(names) == 0 {
		names = patchFiles(files)
	}
	return names
}

// matchConflicts picks the patch's paths out of git apply's messages: "error: patch
// failed: P:12", "error: P: already exists in working directory", "error: affected
// file 'P' is beyond a symbolic link", "U P", "Applied patch to 'P' with conflicts.".
// Matching against the known paths copes with names that contain ": ".
func matchConflicts(output string, files []*filePatch) []string {
	lines := strings.Split(output, "\n")
	var names []string
	for _, f := range files {
		if conflictNamed(lines, f.oldPath) || conflictNamed(lines, f.newPath) {
			names = append(names, f.path())
		}
	}
	return names
}

func conflictNamed(lines []string, p string) bool {
	if p == "" {
		return false
	}
	for _, line := range lines {
		rest, isErr := strings.CutPrefix(line, "error: ")
		if line == "U "+p ||
			strings.HasPrefix(line, "Applied patch to '"+p+"' with conflicts") ||
			isErr && (strings.HasPrefix(rest, "patch failed: "+p+":") ||
				strings.HasPrefix(rest, p+": ") || strings.Contains(rest, "'"+p+"'")) {
			return true
		}
	}
	return false
}
