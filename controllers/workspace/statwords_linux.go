package workspace

import "syscall"

// canWriteIndex says whether this system's stat data can fill index entries
// (statWords); elsewhere git stages a snapshot's copy itself.
const canWriteIndex = true

// statWords are the ctime, mtime, device and inode words of an index entry,
// truncated to 32 bits as git stores them.
func statWords(st *syscall.Stat_t) [6]uint32 {
	return [6]uint32{uint32(st.Ctim.Sec), uint32(st.Ctim.Nsec), uint32(st.Mtim.Sec), uint32(st.Mtim.Nsec),
		uint32(st.Dev), uint32(st.Ino)}
}
