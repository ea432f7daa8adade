package shim

import (
	"cmp"
	"context"
	"errors"
	"slices"
	"strconv"
	"sync"
	"time"

	"github.com/gpulock/gpulock/gpulock"
)

// Why a request left the line without the lock.
var (
	errQueueFull    = errors.New("shim: the line is full")
	errQueueTimeout = errors.New("shim: waited too long in line")
	errShuttingDown = errors.New("shim: shutting down")
)

// line is the shim's view of its requests waiting for the lock: how many,
// in which order, since when. The order itself is kept by gpulock's
// first-come-first-served queue; line adds the bound, the status and the
// means to turn everyone away at shutdown.
type line struct {
	max int

	mu       sync.Mutex
	next     uint64
	waiting  map[uint64]*place
	reading  int // admitted requests still reading their bodies (admit)
	draining bool
}

// place is one request in line.
type place struct {
	id        uint64
	requestID string
	route     string
	since     time.Time
	turn      gpulock.Turn
	cancel    context.CancelCauseFunc
}

func newLine(max int) *line {
	return &line{max: max, waiting: map[uint64]*place{}}
}

// join puts a request in line. It returns the context to wait with, which
// ends when the caller's does, after timeout if not zero (errQueueTimeout)
// or at shutdown (errShuttingDown). It fails with errShuttingDown, or with
// errQueueFull when bounded, without queueing; a request admitted before
// reading its body (its ticket in ctx) takes the place it reserved.
func (l *line) join(ctx context.Context, route, requestID string, turn gpulock.Turn, timeout time.Duration, bounded bool) (*place, context.Context, func(), error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.draining {
		return nil, nil, nil, errShuttingDown
	}
	if bounded && !l.redeem(ctx) && l.full() {
		return nil, nil, nil, errQueueFull
	}
	ctx, cancel := context.WithCancelCause(ctx)
	stop := func() { cancel(nil) }
	if timeout > 0 {
		var stopTimer context.CancelFunc
		ctx, stopTimer = context.WithTimeoutCause(ctx, timeout, errQueueTimeout)
		stop = func() { stopTimer(); cancel(nil) }
	}
	l.next++
	if requestID == "" {
		requestID = "gpulock-" + strconv.FormatUint(l.next, 10)
	}
	p := &place{id: l.next, requestID: requestID, route: route, since: time.Now(), turn: turn, cancel: cancel}
	l.waiting[p.id] = p
	return p, ctx, stop, nil
}

// leave takes p out of line.
func (l *line) leave(p *place) {
	l.mu.Lock()
	delete(l.waiting, p.id)
	l.mu.Unlock()
}

// drain turns away everyone in line and everyone who comes later.
func (l *line) drain() {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.draining = true
	for _, p := range l.waiting {
		p.cancel(errShuttingDown)
	}
}

// len returns the number of requests in line.
func (l *line) len() int {
	l.mu.Lock()
	defer l.mu.Unlock()
	return len(l.waiting)
}

// snapshot returns the places in line, first in line first.
func (l *line) snapshot() []place {
	l.mu.Lock()
	defer l.mu.Unlock()
	out := make([]place, 0, len(l.waiting))
	for _, p := range l.waiting {
		out = append(out, *p)
	}
	slices.SortFunc(out, func(a, b place) int { return cmp.Compare(a.id, b.id) })
	return out
}
