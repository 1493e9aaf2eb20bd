package models

import (
	"bytes"
	"os"
)

// walIndexHeaderSize is the size of the first copy of SQLite's WAL-index
// header at the start of the -shm file (struct WalIndexHdr in wal.c). Every
// commit rewrites it — its change counter, frame count and checksums move —
// while a read leaves it alone, and a checkpoint alone does not touch it.
const walIndexHeaderSize = 48

// walVerifyEvery bounds how many looks in a row the probe may answer "no
// change" without asking SQLite: a check on the probe itself, so a case it
// does not foresee costs a delay of this many polls, never a lost wake-up.
const walVerifyEvery = 64

// walProbe tells cheaply whether anyone may have committed since the last
// look, by reading the WAL-index header out of the -shm file (one pread, no
// SQLite call). An idle server looks several times a second, and asking SQLite
// for PRAGMA data_version each time was most of its idle CPU; the probe lets
// it ask only when the header moved. It answers "maybe" whenever it cannot
// read the header, so it can only save work, never hide a commit.
type walProbe struct {
	path   string
	f      *os.File
	last   [walIndexHeaderSize]byte
	known  bool
	streak int // looks answered "unchanged" since SQLite was last asked
}

func newWALProbe(dbPath string) *walProbe { return &walProbe{path: dbPath + "-shm"} }

// read returns the header now; ok is false when it cannot be read (no -shm
// file yet, a short file, an I/O error).
func (p *walProbe) read() (h [walIndexHeaderSize]byte, ok bool) {
	if p.f == nil {
		f, err := os.Open(p.path)
		if err != nil {
			return h, false
		}
		p.f = f
	}
	n, err := p.f.ReadAt(h[:], 0)
	if err != nil || n != walIndexHeaderSize {
		_ = p.f.Close()
		p.f = nil
		return h, false
	}
	return h, true
}

// unchanged reports whether header h, read before a look, is the one
// recorded at the last look that asked SQLite, so that look's answer still
// holds. Every walVerifyEvery-th call answers false to make the caller ask.
func (p *walProbe) unchanged(h [walIndexHeaderSize]byte, ok bool) bool {
	if !ok || !p.known || !bytes.Equal(h[:], p.last[:]) || p.streak >= walVerifyEvery {
		return false
	}
	p.streak++
	return true
}

// record keeps header h, read before a look that asked SQLite: a commit after
// the read moves the header again, so it cannot be missed by the next look.
func (p *walProbe) record(h [walIndexHeaderSize]byte, ok bool) {
	p.last, p.known, p.streak = h, ok, 0
}

func (p *walProbe) close() {
	if p.f != nil {
		_ = p.f.Close()
		p.f = nil
	}
}
