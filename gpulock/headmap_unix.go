//go:build unix

package gpulock

import (
	"io/fs"
	"os"
	"runtime/debug"
	"syscall"

	"golang.org/x/sys/unix"
)

// headMap is a shared, writable memory map of the start of a lock file, where
// the holder line lives. A holder writes and clears its line, and reads what
// the previous holder left, through it: memory copies instead of a pread and
// two pwrites per turn, and no file-time update (on ext4 a journal handle,
// which can stall behind other processes' disk writes) on the hand-over's
// path. Readers in other processes still use pread: the page cache is the
// same. A queue keeps its map for as long as the lock file keeps its inode.
type headMap struct {
	mem      []byte // nil: this file cannot be mapped; use pread and pwrite
	dev, ino uint64
}

// mapHead returns a map of the start of the lock file at path, whose info
// fi was read just before it was locked: m itself if m is for that file.
// Where the file cannot be mapped for writing (another user's file that
// only they may write) the map returned has no memory, so that the next
// turns do not try again.
//
// The map is made from a descriptor of its own, opened for it and closed
// right after: a map keeps its open file alive, and the flock, which
// belongs to the open file, must go when the holder's descriptor is closed
// (Disown, a child that inherited it) however long the map lives.
func mapHead(m *headMap, path string, fi fs.FileInfo) *headMap {
	st, ok := fi.Sys().(*syscall.Stat_t)
	if ok && m != nil && m.dev == uint64(st.Dev) && m.ino == uint64(st.Ino) {
		return m
	}
	m.unmap()
	if !ok {
		return nil
	}
	none := &headMap{dev: uint64(st.Dev), ino: uint64(st.Ino)}
	f, err := openNoFollow(path, os.O_RDWR, 0)
	if err != nil {
		return none
	}
	defer f.Close()
	var own unix.Stat_t
	if unix.Fstat(fdOf(f), &own) != nil || own.Dev != st.Dev || own.Ino != st.Ino {
		return nil // replaced since it was locked: the next turn maps the new one
	}
	mem, err := unix.Mmap(fdOf(f), 0, maxInfoSize, unix.PROT_READ|unix.PROT_WRITE, unix.MAP_SHARED)
	if err != nil {
		return none
	}
	none.mem = mem
	return none
}

// unmap gives the map back. A nil map is fine.
func (m *headMap) unmap() {
	if m != nil && m.mem != nil {
		_ = unix.Munmap(m.mem)
	}
}

// write copies b to the start of the file, whose size is size, and reports
// whether it could: b must lie inside the file (bytes written through a map
// past the end never reach the file), and a file cut shorter since its size
// was read (SIGBUS on the map) counts as a failure. The caller then uses
// pwrite.
func (m *headMap) write(b []byte, size int64) bool {
	if m == nil || m.mem == nil || int64(len(b)) > size || len(b) > len(m.mem) {
		return false
	}
	return faultless(func() { copy(m.mem, b) })
}

// read copies the start of the file, of size size, into buf and returns how
// many bytes it copied, or false if it has no map or the file was cut
// shorter meanwhile.
func (m *headMap) read(buf []byte, size int64) (int, bool) {
	if m == nil || m.mem == nil {
		return 0, false
	}
	n := int(min(size, int64(len(buf)), int64(len(m.mem))))
	return n, faultless(func() { copy(buf[:n], m.mem[:n]) })
}

// faultless runs a copy from or to a map and reports whether it ran without
// a memory fault. A fault there means the file was truncated under the map
// (any user who may write the lock file may do so); it turns into a panic
// (debug.SetPanicOnFault), recovered here, not a crash. The copy itself
// cannot panic otherwise.
func faultless(copyFn func()) (ok bool) {
	defer debug.SetPanicOnFault(debug.SetPanicOnFault(true))
	defer func() {
		if recover() != nil {
			ok = false
		}
	}()
	copyFn()
	return true
}
