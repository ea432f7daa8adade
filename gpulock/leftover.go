package gpulock

import (
	"bytes"
	"slices"
)

// Backend is the web service whose GPU work a holder guards: a gpulock shim
// names its upstream here (WithBackend). A holder that dies holding the
// lock leaves its description, and so its backend, in the lock file; the
// next holder finds it there (Handle.Leftover) and can wait until that
// backend is idle before it uses the GPU, since the backend may still run
// the dead holder's job.
//
// Anyone who may write the lock file can write this too: treat it as
// untrusted input.
type Backend struct {
	// Profile says how to ask the backend whether it is busy: "comfyui" or
	// "a1111".
	Profile string `json:"profile"`
	// Upstream is the backend's base URL, such as http://127.0.0.1:8188.
	Upstream string `json:"upstream"`
}

// WithBackend records in the holder description the backend whose GPU work
// this process guards while it holds the lock (see Backend).
func WithBackend(profile, upstream string) Option {
	return func(c *config) { c.backend = &Backend{Profile: profile, Upstream: upstream} }
}

// Leftover returns the description that the lock file held when this
// handle took the lock, and whether there was one. A holder that releases
// clears its description, so one left behind means the previous holder
// ended without releasing: it died holding the lock (SIGKILL, a crash), or
// it passed the lock to a child (gpulock exec) that has since ended. A
// holder that ends without having seen a dead holder's backend idle passes
// that dead holder's description on (see KeepLeftover): the next holder
// finds the dead one's, not its own.
// Nothing about it is checked: any user who may write the lock file may
// have written it.
func (h *Handle) Leftover() (Holder, bool) {
	if h.leftover == nil {
		return Holder{}, false
	}
	return *h.leftover, true
}

// KeepLeftover says whether the lock file shows, while this handle holds
// the lock, the description the previous holder left (see Leftover) in
// place of this holder's own. While it is kept, this holder passes it on:
// if this process dies, or releases, the next holder finds it in turn.
//
// A leftover that names a backend (see Backend) is kept from the start:
// the backend may still run the dead holder's job, and only a holder that
// has seen it idle may forget it, by calling KeepLeftover(false), after
// which the lock file shows its own description and a release clears it.
// So a holder that never looks (a check that takes the lock and lets it go,
// a program unaware of backends) cannot erase the record, and the next
// holder waits for that backend in its place. Any other leftover is not
// kept unless asked. Without a leftover it does nothing.
func (h *Handle) KeepLeftover(keep bool) {
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.done || h.leftover == nil || h.keepLeft == keep {
		return
	}
	h.keepLeft = keep
	h.writeDescription()
}

// readLeftover parses the description a previous holder left at the start
// of the lock file, head, and returns it and a copy of its first line.
func readLeftover(head []byte) (*Holder, []byte) {
	line, _, _ := bytes.Cut(head, []byte{'\n'})
	if len(bytes.TrimSpace(line)) == 0 {
		return nil, nil // released, as nearly always: nothing to decode
	}
	left := new(Holder)
	if !decodeFirstLine(line, left) {
		return nil, nil
	}
	return left, append(slices.Clip(line), '\n')
}
