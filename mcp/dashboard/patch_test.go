package dashboard

import (
	"reflect"
	"testing"
)

// A patch is cut into its files; added, removed and hunk lines are told
// apart only inside hunks (a "--- a/x" header is not a removal), and the
// side-by-side rows pair a removed line with the added line replacing it.
func TestSplitPatch(t *testing.T) {
	patch := "diff --git a/a.txt b/a.txt\n" +
		"index 1..2 100644\n--- a/a.txt\n+++ b/a.txt\n" +
		"@@ -1,3 +1,3 @@\n keep\n-old\n+new\n+extra\n" +
		"diff --git a/dir/b.go b/dir/b.go\n" +
		"new file mode 100644\n--- /dev/null\n+++ b/dir/b.go\n@@ -0,0 +1 @@\n+package b\n"
	files := splitPatch(patch)
	if len(files) != 2 || files[0].Path != "a.txt" || files[1].Path != "dir/b.go" {
		t.Fatalf("files: %+v", files)
	}
	var classes []string
	for _, l := range files[0].Lines {
		classes = append(classes, l.Class+":"+l.Text)
	}
	want := []string{":diff --git a/a.txt b/a.txt", ":index 1..2 100644", ":--- a/a.txt", ":+++ b/a.txt",
		"hunk:@@ -1,3 +1,3 @@", ": keep", "del:-old", "add:+new", "add:+extra"}
	if !reflect.DeepEqual(classes, want) {
		t.Fatalf("unified lines\n got %q\nwant %q", classes, want)
	}
	wantRows := []sideRow{
		{Left: "@@ -1,3 +1,3 @@", LeftClass: "hunk", Right: "@@ -1,3 +1,3 @@", RightClass: "hunk"},
		{Left: "keep", Right: "keep"},
		{Left: "old", LeftClass: "del", Right: "new", RightClass: "add"},
		{Right: "extra", RightClass: "add"},
	}
	if !reflect.DeepEqual(files[0].Rows, wantRows) {
		t.Fatalf("side rows\n got %+v\nwant %+v", files[0].Rows, wantRows)
	}
	if got := files[1].Lines[len(files[1].Lines)-1]; got.Class != "add" || got.Text != "+package b" {
		t.Fatalf("last line of b.go: %+v", got)
	}
	if splitPatch("") != nil {
		t.Fatal("an empty patch has files")
	}
}
