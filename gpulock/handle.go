package gpulock

import (
	"bytes"
	"io/fs"
	"os"
	"slices"
	"sync"
	"time"
)

// Handle is a held lock. Release gives it back; it is safe to defer and to
// call more than once.
type Handle struct {
	lock *Lock
	q    *queue
	f    *os.File
	m    *headMap // the start of f, mapped (nil: pread and pwrite)

	mu       sync.Mutex
	desc     Holder
	line     []byte // desc as written, one line of JSON
	done     bool
	refresh  *time.Timer
	interval time.Duration
	leftover *Holder // what the previous holder left in the file
	leftLine []byte  // leftover as it was written
	keepLeft bool    // show and pass on leftLine instead of line (KeepLeftover)
	size     int64   // the lock file's size, as far as this handle knows
}

// newHandle describes the new holder in the lock file f, whose info fi was
// read just before f was locked. q.mu is held.
func newHandle(q *queue, l *Lock, f *os.File, fi fs.FileInfo) *Handle {
	q.hmap = mapHead(q.hmap, q.path, fi)
	h := &Handle{lock: l, q: q, f: f, m: q.hmap, size: fi.Size(), desc: l.description(), interval: l.cfg.refresh}
	h.leftover, h.leftLine = readLeftover(h.readStart(q.head[:])) // before our own description replaces it
	// A dead holder's line that names a backend stays until this holder has
	// seen that backend idle (KeepLeftover(false)): a holder that releases,
	// or dies, first (a start-up check, an offer nobody took, a wait given
	// up) passes it on rather than blanking the only record of a job that
	// may still run on the GPU.
	h.keepLeft = h.leftover != nil && h.leftover.Backend != nil
	h.line = l.descriptionLine(h.desc.Since)
	h.writeDescription()
	if h.interval > 0 {
		h.mu.Lock() // touch may run before AfterFunc returns
		h.refresh = time.AfterFunc(h.interval, h.touch)
		h.mu.Unlock()
	}
	return h
}

// Lock returns the lock this handle holds.
func (h *Handle) Lock() *Lock { return h.lock }

// GPU returns the GPU number held, or -1 for a named lock.
func (h *Handle) GPU() int { return h.lock.gpu }

// AcquiredAt returns when the lock was acquired.
func (h *Handle) AcquiredAt() time.Time { return h.desc.Since }

// File returns the locked file. A child process that inherits it (as
// exec.Cmd.ExtraFiles does) shares the lock: the lock is then freed only
// when every process holding the descriptor has closed it, or at Release.
func (h *Handle) File() *os.File { return h.f }

// SetChildPID records in the holder description a child process that
// shares the lock, so that readers see the lock as live while it runs.
func (h *Handle) SetChildPID(pid int) {
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.done {
		return
	}
	h.desc.ChildPID = pid
	h.line = encodeLine(h.desc)
	h.writeDescription()
}

// writeDescription puts the holder description at the start of the lock
// file. A file opened read-only (another user's, not writable) keeps none.
func (h *Handle) writeDescription() {
	line := h.line
	if h.keepLeft {
		line = h.leftLine
	}
	h.writeStart(line)
}

// writeStart writes b at the start of the lock file: through the map where
// it lies inside the file, else with pwrite (which also grows the file).
func (h *Handle) writeStart(b []byte) {
	if h.m.write(b, h.size) {
		return
	}
	if n, err := h.f.WriteAt(b, 0); err == nil {
		h.size = max(h.size, int64(n))
	}
}

// readStart reads the start of the lock file into buf.
func (h *Handle) readStart(buf []byte) []byte {
	if n, ok := h.m.read(buf, h.size); ok {
		return buf[:n]
	}
	return buf[:readAtStart(h.f, buf)]
}

// touch refreshes the lock file's modification time, so that age-based
// /tmp cleaners leave a long-held lock file alone.
func (h *Handle) touch() {
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.done {
		return
	}
	h.writeDescription()
	now := time.Now()
	_ = os.Chtimes(h.lock.path, now, now) // for a read-only file we own; harmless otherwise
	h.refresh.Reset(h.interval)
}

// Release gives the lock back: the holder description is cleared (blanked),
// the flock
// dropped and the file closed; the next waiter in line gets the lock. Only
// the first call does anything; later calls return nil. It returns the
// error, if any, of closing the file; the lock is released either way.
func (h *Handle) Release() error {
	return h.finish(true)
}

// Disown closes this process's descriptor of the lock file without dropping
// the flock: a child that inherited the descriptor (see File) keeps the lock
// until it and every process it passed the descriptor to have exited. This
// is flock(1)'s behaviour, and right when the child's own children may still
// be using the GPU. Without such a child, Disown releases the lock.
func (h *Handle) Disown() error {
	return h.finish(false)
}

func (h *Handle) finish(unlock bool) error {
	h.mu.Lock()
	if h.done {
		h.mu.Unlock()
		return nil
	}
	h.done = true
	if h.refresh != nil {
		h.refresh.Stop()
	}
	h.q.releasing()
	if unlock {
		// Clear the description before anyone else can hold it, all of it:
		// the file is readable by every user, and what a holder said of
		// itself is nobody's business once it is gone. Blanks over it (and
		// over what a holder that crashed may have left past it) cost one
		// write, as the empty first line they replace did; truncating
		// measured 8-10 us slower on ext4 (the next holder makes the freed
		// block again), blanking all 4 KiB that readers read 2 us slower.
		head := blankHead[len(blankHead)-min(max(len(h.line), minBlank), len(blankHead)):]
		if h.keepLeft {
			// A dead holder's line is passed on (see KeepLeftover), over blanks.
			head = append(slices.Clip(h.leftLine), head[min(len(h.leftLine), len(head)):]...)
		}
		h.writeStart(head)
		_ = unlockFD(h.f)
	}
	err := h.f.Close()
	h.mu.Unlock()
	h.q.released()
	return err
}

// blankHead is what a release writes over the start of the lock file, or
// the end of it for a shorter clear: blanks, and a newline that ends an
// empty first line.
var blankHead = append(bytes.Repeat([]byte{' '}, maxInfoSize-1), '\n')

// minBlank is the least a release blanks: more than any holder line of
// this version (pid, host, service, argv[0] and time), so that the longer
// line of a holder that crashed is cleared too.
const minBlank = 512
