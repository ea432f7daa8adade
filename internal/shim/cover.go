package shim

import (
	"context"
	"sync"
	"sync/atomic"
	"time"
)

// routeBackendWork names the holdings the shim takes on behalf of work the
// backend started on its own, in logs, metrics and the status.
const routeBackendWork = "backend-started work"

// busyPollWhileCovering is how often A1111 is asked whether work it started
// on its own has ended; slower than the idle poll, since each poll of a busy
// A1111 costs it work.
const busyPollWhileCovering = 250 * time.Millisecond

// cover holds the GPU lock on behalf of work the backend started on its
// own: a ComfyUI prompt queued on its port directly, an A1111 extension's
// job. The shim cannot stop such work, only make the other services wait
// for it. If another service holds the GPU when such work is found, the
// two overlap, which nobody can prevent any more: the shim logs a warning
// and waits in line like everyone else.
type cover struct {
	s   *Shim
	own atomic.Int64 // holdings of the shim's own jobs, now

	mu      sync.Mutex
	wanted  bool  // the backend is busy with work of its own
	hd      *hold // held on its behalf, once the turn came
	waiting bool  // an acquisition on its behalf is under way
}

// set says whether the backend is busy with work the shim did not forward.
// It starts or ends the holding on the backend's behalf.
func (c *cover) set(ctx context.Context, busy bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if busy == c.wanted {
		return
	}
	c.wanted = busy
	switch {
	case busy && c.hd == nil && !c.waiting:
		c.s.metrics.backendCover.Inc()
		if st, err := c.s.lock.Status(); err == nil && st.Holder != nil && st.Holder.Service != c.s.cfg.Name {
			c.s.cfg.Logger.Warn("the backend started GPU work of its own while another service holds the GPU: they overlap",
				"holder", st.Holder.Service, "holder_pid", st.Holder.PID)
		} else {
			c.s.cfg.Logger.Info("the backend started GPU work of its own; holding the GPU on its behalf")
		}
		c.waiting = true
		c.s.wg.Go(func() { c.take(ctx) })
	case !busy && c.hd != nil:
		hd := c.hd
		c.hd = nil
		go c.give(hd)
	}
}

// take waits in line on the backend's behalf; if the backend is idle again
// by the time the turn comes, it lets the lock go at once.
func (c *cover) take(ctx context.Context) {
	hd, err := c.s.acquireIn(ctx, routeBackendWork, "", c.s.backendTurn(), false)
	c.mu.Lock()
	defer c.mu.Unlock()
	c.waiting = false
	if err != nil {
		// Shutting down. Forget the wish, so that a later sighting of the
		// backend's work tries again rather than taking it as covered.
		c.wanted = false
		return
	}
	if !c.wanted {
		go c.give(hd)
		return
	}
	c.hd = hd
}

// give ends a holding on the backend's behalf.
func (c *cover) give(hd *hold) {
	c.s.metrics.backendBusy.Add(hd.holdFor().Seconds())
	hd.release(outcomeDone)
}

// stop ends any holding on the backend's behalf (at shutdown).
func (c *cover) stop() {
	c.mu.Lock()
	hd := c.hd
	c.hd, c.wanted = nil, false
	c.mu.Unlock()
	if hd != nil {
		c.give(hd)
	}
}

// watchA1111 asks an idle A1111, every IdlePollInterval, whether it runs a
// job the shim did not forward (job_count != 0 while no job of the shim's
// holds the GPU). Two busy answers in a row count, so that the end of the
// shim's own job is not taken for new work. While covering, it asks every
// busyPollWhileCovering until A1111 is idle.
func (c *cover) watchA1111(ctx context.Context) {
	busyInARow := 0
	for {
		c.mu.Lock()
		covering := c.wanted
		c.mu.Unlock()
		wait := c.s.cfg.IdlePollInterval
		if covering {
			wait = busyPollWhileCovering
		}
		select {
		case <-ctx.Done():
			return
		case <-time.After(wait):
		}
		busy, err := c.s.busy(ctx)
		if err != nil {
			busy = false // down: nothing runs
		}
		if busy && c.own.Load() == 0 {
			busyInARow++
		} else {
			busyInARow = 0 // idle, or busy with the shim's own job
		}
		if covering {
			c.set(ctx, busy && c.own.Load() == 0)
		} else if busyInARow >= 2 {
			c.set(ctx, true)
		}
	}
}
