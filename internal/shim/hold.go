package shim

import (
	"context"
	"errors"
	"sync"
	"sync/atomic"
	"time"

	"github.com/gpulock/gpulock/gpulock"
)

// hold is one holding of the GPU lock by the shim: for a forwarded job, or
// on behalf of the backend's own work. Every holding goes through acquire
// and release, so that hand-offs, metrics and logs see all of them.
type hold struct {
	s      *Shim
	h      *gpulock.Handle
	route  string
	waited time.Duration
	since  time.Time // when the lock was taken
	once   sync.Once
	done   chan struct{} // closed at release

	// --max-hold (maxhold.go)
	overdue atomic.Bool // the holding reached MaxHold
	mu      sync.Mutex
	timer   *time.Timer               // fires at MaxHold; nil when off
	cutoffs []context.CancelCauseFunc // cut the forwarded requests off
	cut     bool                      // cutoffs were called
}

// acquire waits in line for the GPU lock (bounded by QueueTimeout and ctx)
// and readies the backend for work (A1111 reloads a checkpoint it unloaded
// at a hand-off). requestID names the place in line in the status; turn
// says whose turn it is (fair shares between clients, priority).
func (s *Shim) acquire(ctx context.Context, route, requestID string, turn gpulock.Turn) (*hold, error) {
	return s.acquireIn(ctx, route, requestID, turn, true)
}

// acquireIn is acquire; bounded says whether MaxQueue and QueueTimeout
// apply (not to holdings on the backend's behalf: its work runs anyway).
func (s *Shim) acquireIn(ctx context.Context, route, requestID string, turn gpulock.Turn, bounded bool) (*hold, error) {
	if d := dispatchOf(ctx); d.job != "" && bounded {
		return s.acquireDispatched(ctx, route, d) // cluster mode: member.go
	}
	start := time.Now()
	timeout := s.cfg.QueueTimeout
	if !bounded {
		timeout = 0
	}
	p, wctx, stop, err := s.line.join(ctx, route, requestID, turn, timeout, bounded)
	if err != nil {
		return nil, err
	}
	s.page.handler.Notify()
	h, err := s.lock.AcquireTurn(wctx, turn)
	stop()
	s.line.leave(p)
	waited := time.Since(start)
	if err != nil {
		if cause := context.Cause(wctx); cause != nil && !errors.Is(cause, context.Canceled) {
			err = cause
		}
		return nil, err
	}
	if err := s.waitDeadHolder(ctx, h); err != nil { // a dead holder's backend may still run its job
		return nil, err
	}
	s.metrics.wait.Observe(waited.Seconds())
	hd := &hold{s: s, h: h, route: route, waited: waited, since: time.Now(), done: make(chan struct{})}
	s.page.started(hd, p.requestID)
	if route != routeBackendWork {
		s.cover.own.Add(1)
		s.inflight.add()
		hd.limit()
	}
	s.vram.beforeWork(ctx)
	return hd, nil
}

// holdFor returns how long the lock has been held.
func (hd *hold) holdFor() time.Duration { return time.Since(hd.since) }

// release gives the lock back after a job, once: if the next in line is
// another service and --free-on-handoff is on, the backend frees its VRAM
// first. The outcome is counted and logged; a job interrupted for
// --max-hold counts as max_hold however it ended.
func (hd *hold) release(outcome string, attrs ...any) {
	hd.once.Do(func() {
		hd.unlimit()
		if hd.overdue.Load() {
			outcome = outcomeMaxHold
		}
		defer close(hd.done)
		hd.s.vram.beforeRelease(hd.s.lock)
		held := hd.holdFor()
		_ = hd.h.Release()
		if hd.s.cfg.Member != nil {
			hd.s.cfg.Member.Released() // cluster mode: offer the GPU now
		}
		if hd.route != routeBackendWork {
			hd.s.cover.own.Add(-1)
			hd.s.inflight.done()
		}
		hd.s.metrics.finished(outcome, held)
		hd.s.page.finished(hd, outcome, held)
		args := append([]any{"service", hd.s.cfg.Name, "route", hd.route, "wait", hd.waited.Round(time.Millisecond),
			"hold", held.Round(time.Millisecond), "outcome", outcome}, attrs...)
		hd.s.cfg.Logger.Info("job", args...)
	})
}
