package workspace

import (
	"errors"
	"strings"
	"testing"
)

func newFilePatch(name, body string) string {
	return "diff --git a/" + name + " b/" + name + "\nnew file mode 100644\nindex 0000000..587be6b\n--- /dev/null\n+++ b/" + name + "\n@@ -0,0 +1 @@\n+" + body + "\n"
}

func symlinkPatch(name, target string) string {
	return "diff --git a/" + name + " b/" + name + "\nnew file mode 120000\nindex 0000000..1111111\n--- /dev/null\n+++ b/" + name +
		"\n@@ -0,0 +1 @@\n+" + target + "\n\\ No newline at end of file\n"
}

func TestCheckPatch_RefusesHostilePaths(t *testing.T) {
	cases := []struct {
		name, patch, path string
	}{
		{"parent component", newFilePatch("../evil", "x"), "a/../evil"},
		{"nested parent component", newFilePatch("ok/../../evil", "x"), "a/ok/../../evil"},
		{"absolute traditional", "--- /dev/null\n+++ /etc/cron.d/evil\n@@ -0,0 +1 @@\n+x\n", "/etc/cron.d/evil"},
		{"git hooks", newFilePatch(".git/hooks/post-checkout", "x"), "a/.git/hooks/post-checkout"},
		{"git dir other case", newFilePatch(".GIT/config", "x"), "a/.GIT/config"},
		{"nested git dir", newFilePatch("sub/.git/config", "x"), "a/sub/.git/config"},
		{"git dir with trailing dot", newFilePatch(".git./config", "x"), "a/.git./config"},
		{"quoted parent", "diff --git \"a/\\056\\056/x\" \"b/\\056\\056/x\"\nnew file mode 100644\n--- /dev/null\n+++ \"b/\\056\\056/x\"\n@@ -0,0 +1 @@\n+x\n", `a/../x`},
		{"rename into git dir", "diff --git a/x b/.git/hooks/pre-commit\nsimilarity index 100%\nrename from x\nrename to .git/hooks/pre-commit\n", ".git/hooks/pre-commit"},
		{"copy from outside", "diff --git a/x b/y\nsimilarity index 100%\ncopy from ../../etc/shadow\ncopy to y\n", "../../etc/shadow"},
		{"absolute symlink", symlinkPatch("etc", "/etc"), "etc"},
		{"escaping symlink", symlinkPatch("dir/up", "../../outside"), "dir/up"},
		{"symlink into git dir", symlinkPatch("hooks", ".git/hooks"), "hooks"},
		{"write through new symlink", symlinkPatch("link", "dir") + newFilePatch("link/file", "x"), "link/file"},
		{"submodule", "diff --git a/sub b/sub\nnew file mode 160000\nindex 0000000..1234567\n--- /dev/null\n+++ b/sub\n@@ -0,0 +1 @@\n+Subproject commit 1234567\n", "sub"},
		{"header hidden after garbage", newFilePatch("ok", "x") + "garbage\n--- a/x\n+++ /etc/passwd\n@@ -1 +1 @@\n-a\n+b\n", "/etc/passwd"},
		{"truncated hunk", "diff --git a/x b/x\n--- a/x\n+++ b/x\n@@ -1,3 +1,3 @@\n a\n", ""},
		{"empty", "", ""},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			err := CheckPatch([]byte(tc.patch))
			var unsafe *UnsafePatchError
			if !errors.Is(err, ErrUnsafePatch) || !errors.As(err, &unsafe) {
				t.Fatalf("CheckPatch = %v, want ErrUnsafePatch", err)
			}
			if unsafe.Path != tc.path {
				t.Errorf("path %q, want %q (%v)", unsafe.Path, tc.path, err)
			}
		})
	}
}

func TestCheckPatch_AcceptsOrdinaryPatches(t *testing.T) {
	cases := map[string]string{
		"new file":            newFilePatch("dir/new.txt", "x"),
		"symlink inside":      symlinkPatch("dir/link", "../a.txt"),
		"symlink to sibling":  symlinkPatch("link", "a.txt"),
		"sql comment removed": "diff --git a/q.sql b/q.sql\nindex 1111111..2222222 100644\n--- a/q.sql\n+++ b/q.sql\n@@ -1,2 +1,1 @@\n--- /etc/passwd comment\n select 1;\n",
		"quoted name":         "diff --git \"a/t\\tab\" \"b/t\\tab\"\nnew file mode 100644\n--- /dev/null\n+++ \"b/t\\tab\"\n@@ -0,0 +1 @@\n+x\n",
		"name with spaces":    newFilePatch("my file.txt", "x"),
		"rename same dir link": "diff --git a/l1 b/l2\nsimilarity index 100%\nrename from l1\nrename to l2\n" +
			"diff --git a/x b/x\nold mode 100644\nnew mode 100755\n",
		"binary": "diff --git a/b.bin b/b.bin\nnew file mode 100644\nindex 0000000..1111111\nGIT binary patch\nliteral 3\nKcmZQzWB>pF00IC2\n\nliteral 0\nHcmV?d00001\n\n",
	}
	for name, p := range cases {
		t.Run(name, func(t *testing.T) {
			if err := CheckPatch([]byte(p)); err != nil {
				t.Fatalf("CheckPatch: %v", err)
			}
		})
	}
}

func TestCheckPatch_ReportsFileNames(t *testing.T) {
	files, err := checkPatch([]byte(newFilePatch("a b/c.txt", "x")+
		"diff --git a/old.txt b/new.txt\nsimilarity index 90%\nrename from old.txt\nrename to new.txt\nindex 1111111..2222222 100644\n--- a/old.txt\n+++ b/new.txt\n@@ -1 +1 @@\n-a\n+b\n"+
		"diff --git a/gone.txt b/gone.txt\ndeleted file mode 100644\nindex 1111111..0000000\n--- a/gone.txt\n+++ /dev/null\n@@ -1 +0,0 @@\n-a\n"), nil)
	if err != nil {
		t.Fatal(err)
	}
	got := strings.Join(patchFiles(files), ",")
	if got != "a b/c.txt,new.txt,gone.txt" {
		t.Fatalf("files %s", got)
	}
	if files[1].oldPath != "old.txt" || !files[2].deleted {
		t.Fatalf("parsed %+v %+v", files[1], files[2])
	}
}

func TestValidateRev(t *testing.T) {
	for _, ok := range []string{"HEAD", "main", "feature/x", "HEAD~2", "main^", "v1.0", "0123abcd", strings.Repeat("a", 40)} {
		if err := validateRev(ok); err != nil {
			t.Errorf("validateRev(%q) = %v", ok, err)
		}
	}
	for _, bad := range []string{"", "-x", "--output=/tmp/x", "a..b", "HEAD@{1}", "@", "HEAD:path", "x y", "a/.hidden", "x.lock", "ref/", "a//b", "*", "a\\b", ":/msg"} {
		if err := validateRev(bad); !errors.Is(err, ErrInvalidRef) {
			t.Errorf("validateRev(%q) = %v, want ErrInvalidRef", bad, err)
		}
	}
}
