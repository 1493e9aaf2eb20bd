package workspace

import (
	"bytes"
	"encoding/binary"
	"os"
)

// cacheTreeExtension returns the cache-tree extension ("TREE", its size and
// data) of the version 2 or 3 index in file, or nil when it has none or is
// not an index this reads. Git keeps there the tree of every folder whose
// entries did not change since the last write-tree, so an index that carries
// it writes a tree by hashing only the folders of what changed: at 300,000
// files, write-tree took 3.6 s after a one-file change without it.
func cacheTreeExtension(file string) []byte {
	b, err := os.ReadFile(file)
	if err != nil || len(b) < 12+20 || string(b[:4]) != "DIRC" {
		return nil
	}
	version := binary.BigEndian.Uint32(b[4:])
	if version != 2 && version != 3 {
		return nil // version 4 compresses paths: not worth reading here
	}
	n := int(binary.BigEndian.Uint32(b[8:]))
	off, end := 12, len(b)-20
	for range n {
		if off+62 > end {
			return nil
		}
		flags := binary.BigEndian.Uint16(b[off+60:])
		fixed := 62
		if flags&0x4000 != 0 { // extended flags (version 3)
			fixed = 64
		}
		nameLen := int(flags & 0xfff)
		if nameLen == 0xfff {
			i := bytes.IndexByte(b[off+fixed:end], 0)
			if i < 0 {
				return nil
			}
			nameLen = i
		}
		off += (fixed + nameLen + 8) &^ 7
	}
	for off+8 <= end {
		size := int(binary.BigEndian.Uint32(b[off+4:]))
		if size < 0 || off+8+size > end {
			return nil
		}
		if string(b[off:off+4]) == "TREE" {
			return append([]byte(nil), b[off:off+8+size]...)
		}
		off += 8 + size
	}
	return nil
}
