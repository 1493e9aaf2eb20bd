package workspace

import (
	"bytes"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"os"
	"strconv"
)

// indexState is what a capture needs to know of a kept index file without
// running git on it (which at 300,000 entries means reading and, for
// read-tree, writing back 24 MB).
type indexState struct {
	// tree is the root of the index's cache-tree extension when that is
	// valid: the index then holds exactly that tree's entries (git keeps the
	// cache-tree in step with every change of an entry, and write-tree relies
	// on it). "" when there is none or it is invalid.
	tree string
	// racy counts the entries whose recorded mtime is not older than the
	// index file: git cannot trust their stat data and compares their
	// contents at every read until the index is written again.
	racy    int
	entries int
}

var errIndexFormat = errors.New("unexpected index format")

// readIndexState reads the index file at path. hashLen is the repository's
// object id length in bytes (20 for SHA-1). Split indexes and sparse
// directory entries, which the package never makes, are refused as errors.
func readIndexState(path string, hashLen int) (indexState, error) {
	var st indexState
	b, err := os.ReadFile(path)
	if err != nil {
		return st, err
	}
	fi, err := os.Stat(path)
	if err != nil {
		return st, err
	}
	stamp := uint32(fi.ModTime().Unix())
	if len(b) < 12+hashLen || string(b[:4]) != "DIRC" {
		return st, errIndexFormat
	}
	version := binary.BigEndian.Uint32(b[4:8])
	if version < 2 || version > 4 {
		return st, errIndexFormat
	}
	n := int(binary.BigEndian.Uint32(b[8:12]))
	end := len(b) - hashLen // the trailing checksum
	fixed := 40 + hashLen + 2
	off := 12
	for range n {
		if off+fixed > end {
			return st, errIndexFormat
		}
		e := b[off:]
		mtime := binary.BigEndian.Uint32(e[8:12])
		if stamp != 0 && mtime >= stamp {
			st.racy++
		}
		flags := binary.BigEndian.Uint16(e[40+hashLen:])
		head := fixed
		if flags&0x4000 != 0 { // extended flags
			if version < 3 {
				return st, errIndexFormat
			}
			head += 2
		}
		if version == 4 {
			// A varint (bytes to drop from the previous path), then the
			// rest of the path up to a NUL; no padding.
			p := off + head
			for p < end && b[p]&0x80 != 0 {
				p++
			}
			p++
			nul := bytes.IndexByte(b[p:end], 0)
			if nul < 0 {
				return st, errIndexFormat
			}
			off = p + nul + 1
			continue
		}
		nameLen := int(flags & 0xfff)
		if nameLen == 0xfff {
			nul := bytes.IndexByte(b[off+head:end], 0)
			if nul < 0 {
				return st, errIndexFormat
			}
			nameLen = nul
		}
		off += (head + nameLen + 8) &^ 7
	}
	if off > end {
		return st, errIndexFormat
	}
	st.entries = n
	for off+8 <= end {
		sig := string(b[off : off+4])
		size := int(binary.BigEndian.Uint32(b[off+4 : off+8]))
		data := b[off+8:]
		if size > end-off-8 {
			return st, errIndexFormat
		}
		data = data[:size]
		switch sig {
		case "link", "sdir":
			return st, errIndexFormat
		case "TREE":
			st.tree = cacheTreeRoot(data, hashLen)
		}
		off += 8 + size
	}
	return st, nil
}

// cacheTreeRoot returns the root's object id of a TREE extension, "" when the
// root is invalid. Each record: path NUL, entry count (-1 when invalid) SP,
// subtree count LF, then the object id when valid; the root comes first.
func cacheTreeRoot(data []byte, hashLen int) string {
	nul := bytes.IndexByte(data, 0)
	if nul != 0 { // the root's path is empty
		return ""
	}
	rest := data[1:]
	sp := bytes.IndexByte(rest, ' ')
	lf := bytes.IndexByte(rest, '\n')
	if sp < 0 || lf < sp {
		return ""
	}
	count, err := strconv.Atoi(string(rest[:sp]))
	if err != nil || count < 0 || len(rest) < lf+1+hashLen {
		return ""
	}
	return hex.EncodeToString(rest[lf+1 : lf+1+hashLen])
}
