package workspace

import (
	"bufio"
	"bytes"
	"context"
	"crypto/sha1"
	"encoding/binary"
	"encoding/hex"
	"fmt"
	"os"
	"path"
	"path/filepath"
	"sort"
	"strings"
	"syscall"
)

// copiedTree is a snapshot's copy: the paths copied, what each became, and
// the submodule entries of the source's index.
type copiedTree struct {
	paths    []string
	entries  []copiedEntry // entries[i] is paths[i]
	gitlinks []gitlinkEntry
}

type gitlinkEntry struct{ path, oid string }

// indexInfo is the submodule entries in the form update-index --index-info -z reads.
func (ct *copiedTree) indexInfo() []byte {
	var b bytes.Buffer
	for _, l := range ct.gitlinks {
		fmt.Fprintf(&b, "160000 %s\t%s\x00", l.oid, l.path)
	}
	return b.Bytes()
}

// indexable reports whether the copy's own hashes can make its index: every
// file was hashed, no rule (.gitattributes) could make git store a file other
// than as it is, and no path is both a file and a folder.
func (ct *copiedTree) indexable() bool {
	if !canWriteIndex {
		return false
	}
	files := make(map[string]bool, len(ct.paths)+len(ct.gitlinks))
	var zero [sha1.Size]byte
	for i, p := range ct.paths {
		if path.Base(p) == ".gitattributes" || ct.entries[i].oid == zero {
			return false
		}
		files[p] = true
	}
	for _, l := range ct.gitlinks {
		files[l.path] = true
	}
	for p := range files {
		for d := path.Dir(p); d != "."; d = path.Dir(d) {
			if files[d] {
				return false
			}
		}
	}
	return true
}

// writeIndexFile writes ct as a version 2 index at file, each file's entry
// with the stat data of its copy, so that git finds them up to date without
// reading them (a file copied in the second the index is written is "racily
// clean", and git compares its contents, as with any index it writes itself).
func (ct *copiedTree) writeIndexFile(file string) error {
	return ct.writeIndex(file, false)
}

// writeIndex is writeIndexFile with, when source is set, the stat data of
// the files copied from rather than of their copies.
func (ct *copiedTree) writeIndex(file string, source bool) error {
	return ct.writeIndexExt(file, source, nil)
}

// writeIndexExt is writeIndex with ext (whole extensions, each with its
// signature and size) after the entries.
func (ct *copiedTree) writeIndexExt(file string, source bool, ext []byte) error {
	type entry struct {
		path string
		e    *copiedEntry
		oid  [sha1.Size]byte
	}
	all := make([]entry, 0, len(ct.paths)+len(ct.gitlinks))
	for i, p := range ct.paths {
		all = append(all, entry{path: p, e: &ct.entries[i], oid: ct.entries[i].oid})
	}
	for _, l := range ct.gitlinks {
		var oid [sha1.Size]byte
		if b, err := hex.DecodeString(l.oid); err != nil || len(b) != sha1.Size {
			return fmt.Errorf("submodule %s: unexpected id %q", l.path, l.oid)
		} else {
			copy(oid[:], b)
		}
		all = append(all, entry{path: l.path, oid: oid})
	}
	// Git orders entries by the bytes of their paths.
	sort.Slice(all, func(i, j int) bool { return all[i].path < all[j].path })

	f, err := os.OpenFile(file, os.O_WRONLY|os.O_CREATE|os.O_TRUNC, 0o644)
	if err != nil {
		return err
	}
	sum := sha1.New()
	w := bufio.NewWriterSize(f, 1<<20)
	out := func(b []byte) { w.Write(b); sum.Write(b) }
	var hdr [12]byte
	copy(hdr[:4], "DIRC")
	binary.BigEndian.PutUint32(hdr[4:], 2)
	binary.BigEndian.PutUint32(hdr[8:], uint32(len(all)))
	out(hdr[:])
	var pad [8]byte
	for _, en := range all {
		var fixed [62]byte
		if e := en.e; e != nil {
			st := &e.st
			if source {
				st = &e.src
			}
			w := statWords(st)
			for i, v := range []uint32{
				w[0], w[1], w[2], w[3], w[4], w[5], e.mode, uint32(st.Uid), uint32(st.Gid), uint32(st.Size),
			} {
				binary.BigEndian.PutUint32(fixed[4*i:], v)
			}
		} else {
			binary.BigEndian.PutUint32(fixed[24:], 0o160000)
		}
		copy(fixed[40:60], en.oid[:])
		binary.BigEndian.PutUint16(fixed[60:], uint16(min(len(en.path), 0xfff)))
		out(fixed[:])
		out([]byte(en.path))
		// NUL-padded to a multiple of 8, at least one NUL.
		size := (62 + len(en.path) + 8) &^ 7
		out(pad[:size-62-len(en.path)])
	}
	out(ext)
	if _, err := w.Write(sum.Sum(nil)); err != nil {
		f.Close()
		return err
	}
	if err := w.Flush(); err != nil {
		f.Close()
		return err
	}
	return f.Close()
}

// stageCopiedTree writes the capture index of a freshly copied snapshot and
// returns its tree. When the copy's own hashes can make the index, it is
// written directly, and git stores only the blobs the workspace repository
// lacks (what differs from HEAD, whose objects are imported by then): git
// neither reads nor hashes the other files again. Otherwise (a .gitattributes
// could change how git stores a file, a file changed while copied) stageCopy
// has git hash every file.
func (w *Workspace) stageCopiedTree(ctx context.Context, ct *copiedTree, chowned bool) (string, error) {
	if len(ct.paths) == 0 || !ct.indexable() {
		return w.stageCopy(ctx, ct.paths, ct.indexInfo())
	}
	if chowned {
		// The hand-over changed every copy's owner and ctime since it was
		// copied: their stat data is read again (no content is).
		if err := ct.restat(w.WorkDir); err != nil {
			return "", err
		}
	}
	return w.writeCaptureIndex(ctx, false, func(g gitCmd) error {
		file := indexFileOf(g)
		if file == "" {
			return fmt.Errorf("stage copy: no index file")
		}
		if err := ct.writeIndexFile(file); err != nil {
			return fmt.Errorf("write index: %w", err)
		}
		missing, err := missingBlobs(ctx, g, ct)
		if err != nil {
			return err
		}
		if len(missing) > 0 {
			// Their entries are up to date, so update-index --add would pass
			// them by without storing a blob: out first, then in again.
			if _, err := g.run(ctx, joinNUL(missing), "update-index", "--force-remove", "-z", "--stdin"); err != nil {
				return fmt.Errorf("stage files: %w", err)
			}
			if _, err := g.run(ctx, joinNUL(missing), "update-index", "--add", "-z", "--stdin"); err != nil {
				return fmt.Errorf("stage files: %w", err)
			}
		}
		return nil
	})
}

// restat reads the stat data of every copied path below work again. Nothing
// but the server writes there before the container starts.
func (ct *copiedTree) restat(work string) error {
	for i, p := range ct.paths {
		if err := syscall.Lstat(filepath.Join(work, filepath.FromSlash(p)), &ct.entries[i].st); err != nil {
			return fmt.Errorf("stat copy of %s: %w", p, err)
		}
	}
	return nil
}

// indexFileOf is the GIT_INDEX_FILE g runs with.
func indexFileOf(g gitCmd) string {
	for i := len(g.env) - 1; i >= 0; i-- {
		if v, ok := strings.CutPrefix(g.env[i], "GIT_INDEX_FILE="); ok {
			return v
		}
	}
	return ""
}

// missingBlobs returns the copied paths whose blob the repository lacks,
// asking cat-file about each distinct id once.
func missingBlobs(ctx context.Context, g gitCmd, ct *copiedTree) ([]string, error) {
	byID := map[[sha1.Size]byte][]string{}
	var in bytes.Buffer
	for i, p := range ct.paths {
		id := ct.entries[i].oid
		if _, seen := byID[id]; !seen {
			in.WriteString(hex.EncodeToString(id[:]))
			in.WriteByte('\n')
		}
		byID[id] = append(byID[id], p)
	}
	out, err := g.run(ctx, in.Bytes(), "cat-file", "--batch-check")
	if err != nil {
		return nil, fmt.Errorf("look for stored blobs: %w", err)
	}
	var missing []string
	for _, line := range strings.Split(strings.TrimSuffix(string(out), "\n"), "\n") {
		hexID, rest, _ := strings.Cut(line, " ")
		if rest != "missing" {
			continue
		}
		b, err := hex.DecodeString(hexID)
		if err != nil || len(b) != sha1.Size {
			return nil, fmt.Errorf("look for stored blobs: unexpected line %q", line)
		}
		missing = append(missing, byID[[sha1.Size]byte(b)]...)
	}
	return missing, nil
}
