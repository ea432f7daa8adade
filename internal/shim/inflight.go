package shim

import "sync"

// inflight counts the shim's own holdings of the GPU lock (forwarded jobs,
// prompts the watch holds for, UI jobs), so that Shutdown can wait until
// none is left.
type inflight struct {
	mu   sync.Mutex
	n    int
	zero chan struct{} // closed while n is zero
}

func newInflight() *inflight {
	z := make(chan struct{})
	close(z)
	return &inflight{zero: z}
}

func (f *inflight) add() {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.n == 0 {
		f.zero = make(chan struct{})
	}
	f.n++
}

func (f *inflight) done() {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.n--
	if f.n == 0 {
		close(f.zero)
	}
}

// idle returns a channel closed once no holding is left.
func (f *inflight) idle() <-chan struct{} {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.zero
}

// count returns the holdings now.
func (f *inflight) count() int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.n
}
