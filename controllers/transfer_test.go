package controllers

import (
	"archive/tar"
	"bytes"
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// tarEntry is one entry of a hand-made archive.
type tarEntry struct {
	name, link, body string
	typ              byte
	mode             int64
}

func makeTar(t *testing.T, entries ...tarEntry) *bytes.Buffer {
	t.Helper()
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	for _, e := range entries {
		mode := e.mode
		if mode == 0 {
			mode = 0o644
		}
		hdr := &tar.Header{Name: e.name, Linkname: e.link, Typeflag: e.typ, Mode: mode, Size: int64(len(e.body))}
		if e.typ != tar.TypeReg {
			hdr.Size = 0
		}
		if err := tw.WriteHeader(hdr); err != nil {
			t.Fatal(err)
		}
		if e.typ == tar.TypeReg {
			if _, err := tw.Write([]byte(e.body)); err != nil {
				t.Fatal(err)
			}
		}
	}
	if err := tw.Close(); err != nil {
		t.Fatal(err)
	}
	return &buf
}

// extract runs extractTree into a fresh directory and returns it.
func extract(t *testing.T, budget int64, entries ...tarEntry) (string, error) {
	t.Helper()
	dir := filepath.Join(t.TempDir(), "work")
	if err := os.Mkdir(dir, 0o700); err != nil {
		t.Fatal(err)
	}
	root, err := os.OpenRoot(dir)
	if err != nil {
		t.Fatal(err)
	}
	defer root.Close()
	return dir, extractTree(makeTar(t, entries...), "workspace", root, &budget, nil)
}

// TestExtractTree_KeepsTheTree checks what a work tree carries arrives as it
// was: folders, contents, the executable bit, symbolic links as links, hard
// links; set-id bits are dropped and FIFOs and devices are left out.
func TestExtractTree_KeepsTheTree(t *testing.T) {
	dir, err := extract(t, -1,
		tarEntry{name: "workspace/", typ: tar.TypeDir, mode: 0o755},
		tarEntry{name: "workspace/src/", typ: tar.TypeDir, mode: 0o555},
		tarEntry{name: "workspace/src/main.go", typ: tar.TypeReg, body: "package main\n"},
		tarEntry{name: "workspace/run.sh", typ: tar.TypeReg, body: "#!/bin/sh\n", mode: 0o4755},
		tarEntry{name: "workspace/link", typ: tar.TypeSymlink, link: "../../outside"},
		tarEntry{name: "workspace/hard", typ: tar.TypeLink, link: "workspace/src/main.go"},
		tarEntry{name: "workspace/fifo", typ: tar.TypeFifo},
		tarEntry{name: "workspace/dev", typ: tar.TypeChar},
	)
	if err != nil {
		t.Fatal(err)
	}
	if b, err := os.ReadFile(filepath.Join(dir, "src/main.go")); err != nil || string(b) != "package main\n" {
		t.Errorf("src/main.go: %q, %v", b, err)
	}
	if fi, err := os.Stat(filepath.Join(dir, "run.sh")); err != nil || fi.Mode() != 0o755 {
		t.Errorf("run.sh: mode %v, %v; want 0755 without setuid", fi.Mode(), err)
	}
	if fi, err := os.Stat(filepath.Join(dir, "src")); err != nil || fi.Mode().Perm() != 0o755 {
		t.Errorf("src: mode %v, %v; want its 0555 plus the owner's rwx", fi.Mode(), err)
	}
	if l, err := os.Readlink(filepath.Join(dir, "link")); err != nil || l != "../../outside" {
		t.Errorf("link: %q, %v", l, err)
	}
	if b, err := os.ReadFile(filepath.Join(dir, "hard")); err != nil || string(b) != "package main\n" {
		t.Errorf("hard link: %q, %v", b, err)
	}
	for _, name := range []string{"fifo", "dev"} {
		if _, err := os.Lstat(filepath.Join(dir, name)); !errors.Is(err, fs.ErrNotExist) {
			t.Errorf("%s: %v, want left out", name, err)
		}
	}
}

// TestExtractTree_RefusesHostileArchives feeds archives an engine on another
// machine (or an agent choosing names) could send: nothing may be written
// outside the folder, and an archive over the size budget is refused.
func TestExtractTree_RefusesHostileArchives(t *testing.T) {
	outside := t.TempDir()
	cases := map[string][]tarEntry{
		"absolute path":      {{name: "/tmp/evil", typ: tar.TypeReg, body: "x"}},
		"dot-dot":            {{name: "workspace/../../evil", typ: tar.TypeReg, body: "x"}},
		"outside its folder": {{name: "other/evil", typ: tar.TypeReg, body: "x"}},
		"through a symlink": {
			{name: "workspace/out", typ: tar.TypeSymlink, link: outside},
			{name: "workspace/out/evil", typ: tar.TypeReg, body: "x"},
		},
		"through a relative symlink": {
			{name: "workspace/up", typ: tar.TypeSymlink, link: "../../../../../../../../" + strings.TrimPrefix(outside, "/")},
			{name: "workspace/up/evil", typ: tar.TypeReg, body: "x"},
		},
		"hard link out": {{name: "workspace/h", typ: tar.TypeLink, link: "workspace/../../../etc/passwd"}},
		"hard link through a symlink": {
			{name: "workspace/out", typ: tar.TypeSymlink, link: outside},
			{name: "workspace/h", typ: tar.TypeLink, link: "workspace/out/victim"},
		},
	}
	if err := os.WriteFile(filepath.Join(outside, "victim"), []byte("v"), 0o644); err != nil {
		t.Fatal(err)
	}
	for name, entries := range cases {
		t.Run(name, func(t *testing.T) {
			if _, err := extract(t, -1, entries...); err == nil {
				t.Errorf("extracted, want refused")
			}
			if _, err := os.Lstat(filepath.Join(outside, "evil")); !errors.Is(err, fs.ErrNotExist) {
				t.Errorf("a file was written outside: %v", err)
			}
		})
	}

	t.Run("over the budget", func(t *testing.T) {
		_, err := extract(t, 1<<20, tarEntry{name: "workspace/big", typ: tar.TypeReg, body: strings.Repeat("x", 1<<20)})
		if !errors.Is(err, errTreeTooLarge) {
			t.Errorf("got %v, want errTreeTooLarge", err)
		}
	})
	t.Run("many small entries over the budget", func(t *testing.T) {
		var entries []tarEntry
		for i := range 100 {
			entries = append(entries, tarEntry{name: "workspace/f" + strings.Repeat("x", i), typ: tar.TypeReg})
		}
		if _, err := extract(t, 50*entryOverhead, entries...); !errors.Is(err, errTreeTooLarge) {
			t.Errorf("got %v, want errTreeTooLarge", err)
		}
	})
	t.Run("within the budget", func(t *testing.T) {
		if _, err := extract(t, 1<<20, tarEntry{name: "workspace/small", typ: tar.TypeReg, body: "ok"}); err != nil {
			t.Errorf("got %v, want extracted", err)
		}
	})
}
