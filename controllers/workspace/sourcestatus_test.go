package workspace

import (
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
)

// The one-process comparison a small source gets finds what the two
// processes a large one gets find, on a source with every kind of change
// the comparison must tell apart: a file edited, one deleted, a symlink
// deleted, a file replaced by a folder, a submodule whose HEAD moved (kept
// as the index has it: not changed), an untracked file, an ignored one, a
// nested repository and a path named like a git directory (neither added).
func TestSourceStatusOnePass_AgreesWithTwoProcesses(t *testing.T) {
	ctx := testCtx(t)
	src, err := filepath.EvalSymlinks(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	reproducibleGit.NewRepo(t, src, map[string]string{
		"edit.txt": "a\n", "gone.txt": "b\n", "becomes-dir": "c\n", "keep.txt": "d\n",
		".gitignore": "*.log\n", "dir/inner.txt": "e\n",
	})
	if err := os.Symlink("keep.txt", filepath.Join(src, "link")); err != nil {
		t.Fatal(err)
	}
	sub := filepath.Join(src, "sub")
	reproducibleGit.NewRepo(t, sub, map[string]string{"s.txt": "s\n"})
	subHead := strings.TrimSpace(testGit(t, sub, "rev-parse", "HEAD"))
	testGit(t, src, "add", "link")
	testGit(t, src, "update-index", "--add", "--cacheinfo", "160000,"+subHead+",sub")
	testGit(t, src, "commit", "-q", "-m", "link and submodule")

	write := func(p, content string) {
		t.Helper()
		if err := os.MkdirAll(filepath.Dir(filepath.Join(src, p)), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(src, p), []byte(content), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	write("edit.txt", "a changed, and longer\n")
	for _, p := range []string{"gone.txt", "link", "becomes-dir"} {
		if err := os.Remove(filepath.Join(src, p)); err != nil {
			t.Fatal(err)
		}
	}
	write("becomes-dir/x.txt", "x\n")
	write("sub/s.txt", "s moved\n")
	testGit(t, sub, "commit", "-q", "-am", "move the submodule's HEAD")
	write("new.txt", "n\n")
	write("noise.log", "ignored\n")
	reproducibleGit.NewRepo(t, filepath.Join(src, "nested"), map[string]string{"n.txt": "n\n"})
	write("odd/.git/config", "a path named like a git directory\n")

	g := gitCmd{gitDir: filepath.Join(src, ".git"), workTree: src, dir: src, config: workspaceConfig}
	changed1, added1, err := sourceStatusOnePass(ctx, g)
	if err != nil {
		t.Fatal(err)
	}
	changed2, err := changedTracked(ctx, g)
	if err != nil {
		t.Fatal(err)
	}
	added2, _, err := untrackedFiles(ctx, g, nil)
	if err != nil {
		t.Fatal(err)
	}
	for _, l := range [][]string{changed1, added1, changed2, added2} {
		slices.Sort(l)
	}
	if want := []string{"becomes-dir", "edit.txt", "gone.txt", "link"}; !slices.Equal(changed1, want) {
		t.Errorf("one pass: changed %q, want %q", changed1, want)
	}
	if want := []string{"becomes-dir/x.txt", "new.txt"}; !slices.Equal(added1, want) {
		t.Errorf("one pass: added %q, want %q", added1, want)
	}
	if !slices.Equal(changed1, changed2) || !slices.Equal(added1, added2) {
		t.Errorf("one pass found changed %q added %q; two processes changed %q added %q", changed1, added1, changed2, added2)
	}
}

func TestIndexEntries_ReadsTheHeader(t *testing.T) {
	src, err := filepath.EvalSymlinks(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	reproducibleGit.NewRepo(t, src, map[string]string{"a": "a\n", "b/c": "c\n", "d": "d\n"})
	if n := indexEntries(filepath.Join(src, ".git", "index")); n != 3 {
		t.Fatalf("entries %d, want 3", n)
	}
	if n := indexEntries(filepath.Join(src, "a")); n != -1 {
		t.Fatalf("a file that is no index: %d, want -1", n)
	}
}
