package shim

import (
	"context"
	"errors"
	"fmt"
	"net/http"
)

// errBufferFull is why a GPU request is refused when its body does not fit
// in the bytes the shim may hold (Config.MaxBuffered).
var errBufferFull = errors.New("shim: the bodies of waiting requests fill the shim's memory budget")

// ticket is a place in line reserved for a GPU request while its body is
// read, so that a full line refuses it before the body is in memory and a
// request admitted this way is not refused for a full line afterwards.
type ticket struct {
	l    *line
	used bool // guarded by l.mu: redeemed by join, or cancelled
}

// full reports whether the line, counting the requests reading their
// bodies, is at its bound. l.mu must be held.
func (l *line) full() bool {
	return l.max > 0 && len(l.waiting)+l.reading >= l.max
}

// admit reserves a place in line before a body is read: errShuttingDown
// while draining, errQueueFull when the line is full.
func (l *line) admit() (*ticket, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.draining {
		return nil, errShuttingDown
	}
	if l.full() {
		return nil, errQueueFull
	}
	l.reading++
	return &ticket{l: l}, nil
}

// cancel gives the place back unless join has redeemed it.
func (t *ticket) cancel() {
	t.l.mu.Lock()
	defer t.l.mu.Unlock()
	t.redeemLocked()
}

// redeemLocked uses the ticket once, reporting whether it was unused. t.l.mu
// must be held.
func (t *ticket) redeemLocked() bool {
	if t.used {
		return false
	}
	t.used = true
	t.l.reading--
	return true
}

// redeem is called by join with l.mu held: it reports whether ctx carries
// an unused ticket of l, which then takes its reserved place.
func (l *line) redeem(ctx context.Context) bool {
	t, _ := ctx.Value(ticketKey{}).(*ticket)
	return t != nil && t.l == l && t.redeemLocked()
}

// ticketKey is the context key of a request's ticket.
type ticketKey struct{}

// admission is a GPU request let in before its body is read: its place in
// line and the bytes of the memory budget its body holds.
type admission struct {
	s      *Shim
	ticket *ticket
	held   int64
}

// admit decides before reading a GPU request's body whether it can be
// served: a declared Content-Length over MaxBody gets 413, a full line 503
// queue_full, a declared body that does not fit in MaxBuffered 503
// buffer_full. It answers a refusal itself and then returns nil. The
// caller ends the admission with done once the body is no longer needed.
func (s *Shim) admit(w http.ResponseWriter, r *http.Request) *admission {
	if r.ContentLength > s.cfg.MaxBody {
		s.refuseBody(w, r, &http.MaxBytesError{Limit: s.cfg.MaxBody})
		return nil
	}
	t, err := s.line.admit()
	if err != nil {
		s.refuseUnread(w, r, err)
		return nil
	}
	a := &admission{s: s, ticket: t}
	if r.ContentLength > 0 && !a.grow(r.ContentLength) {
		a.done()
		s.refuseUnread(w, r, errBufferFull)
		return nil
	}
	return a
}

// grow reserves n more bytes of the budget for the body.
func (a *admission) grow(n int64) bool {
	if !a.s.budget.take(n) {
		return false
	}
	a.held += n
	return true
}

// context returns ctx carrying the admission's place in line, for acquire.
func (a *admission) context(ctx context.Context) context.Context {
	return context.WithValue(ctx, ticketKey{}, a.ticket)
}

// done gives back the place in line, if unused, and the body's bytes.
func (a *admission) done() {
	a.ticket.cancel()
	a.s.budget.give(a.held)
	a.held = 0
}

// refuseUnread refuses a GPU request whose body was not read, closing the
// connection so that net/http does not read the body either.
func (s *Shim) refuseUnread(w http.ResponseWriter, r *http.Request, err error) {
	w.Header().Set("Connection", "close")
	s.refuse(w, r, err, 0)
}

// bufferFullMessage explains a buffer_full refusal.
func (s *Shim) bufferFullMessage() string {
	return fmt.Sprintf("gpulock: the bodies of the requests waiting for GPU %d already fill the shim's %d bytes (--max-buffered); nothing was forwarded, try again later",
		s.cfg.GPU, s.cfg.MaxBuffered)
}
