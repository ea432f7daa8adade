package shim

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"time"

	"github.com/gpulock/gpulock/gpulock"
)

// HeaderDispatch carries the cluster job id of a request a gateway
// dispatched to this shim because its GPU was offered free.
const HeaderDispatch = "X-GPULock-Dispatch"

// HeaderDispatchToken names the one dispatch of the job a request is (the
// gateway gives each try its own): the shim passes it to Started, so that
// Redis records which dispatch started the job. A start whose answer is
// lost then costs no job: asked again it reports true, and after the 409 it
// leads to, the gateway's requeue knows the start as its own.
const HeaderDispatchToken = "X-GPULock-Dispatch-Token"

// HeaderRequeue is set to "1" on the 409 a shim answers to a dispatched
// request it cannot run now (its GPU is busy after all, or the job is no
// longer assigned to it): the gateway puts the job back in its place in line.
const HeaderRequeue = "X-GPULock-Requeue"

// Member is the shim's membership of a cluster (internal/cluster). With
// one, the shim runs Run beside its other background work, and a request
// carrying HeaderDispatch takes the lock only if the GPU is free at once and
// Started confirms the job: never after waiting in the local line.
type Member interface {
	// Run offers the GPU to the cluster while lock is free, until ctx ends;
	// waiting counts the shim's own requests waiting in its local line
	// (which the lock's status shows only while nobody of this process
	// holds it), so that the cluster's line takes turns with them.
	Run(ctx context.Context, lock *gpulock.Lock, waiting func() int)
	// Started reports whether the dispatched job may run now that the shim
	// holds the lock for it; dispatch is the request's HeaderDispatchToken.
	Started(ctx context.Context, job, dispatch string) (bool, error)
	// Released says that the shim has just released the lock: Run offers
	// a free GPU at once. It must not block.
	Released()
	// Claim returns the lock Run took for job (in the cluster's turn while
	// local users waited, or at a release), or nil: then the shim takes the
	// lock itself, only if it is free at once. started says that the job
	// was started in the cluster with its match: the shim runs it without
	// asking Started.
	Claim(job string) (h *gpulock.Handle, started bool)
}

// outcomeDispatchRefused counts dispatched requests answered 409: nothing
// ran here, the gateway puts the job back in line.
const outcomeDispatchRefused = "dispatch_refused"

// errNotDispatched means a dispatched request cannot run here now.
var errNotDispatched = errors.New("shim: the GPU dispatched to is busy or the job is no longer assigned to it")

type dispatchKey struct{}

// dispatched is a dispatched request's job id and dispatch token.
type dispatched struct{ job, token string }

// withDispatch marks r's context with its dispatch job id and token, when
// the shim is a cluster member and r carries a job id.
func (s *Shim) withDispatch(r *http.Request) *http.Request {
	job := r.Header.Get(HeaderDispatch)
	if s.cfg.Member == nil || job == "" {
		return r
	}
	d := dispatched{job: job, token: r.Header.Get(HeaderDispatchToken)}
	return r.WithContext(context.WithValue(r.Context(), dispatchKey{}, d))
}

// dispatchOf returns the dispatch ctx's request is ({} for none).
func dispatchOf(ctx context.Context) dispatched {
	d, _ := ctx.Value(dispatchKey{}).(dispatched)
	return d
}

// acquireDispatched takes the lock for a dispatched job without waiting
// (or the lock the member took for it in the cluster's turn): if the GPU
// is held or others are in line, or the cluster no longer assigns the job
// here, it fails with errNotDispatched and holds nothing.
func (s *Shim) acquireDispatched(ctx context.Context, route string, d dispatched) (*hold, error) {
	job := d.job
	s.line.mu.Lock()
	draining := s.line.draining
	s.line.mu.Unlock()
	if draining {
		return nil, errShuttingDown
	}
	h, started := s.cfg.Member.Claim(job)
	if h == nil {
		var err error
		if h, err = s.lock.TryAcquire(); err != nil {
			return nil, fmt.Errorf("%w: %w", errNotDispatched, err)
		}
	}
	if !started { // else the offer that matched the job started it
		ok, err := s.cfg.Member.Started(ctx, job, d.token)
		if err != nil || !ok {
			_ = h.Release()
			s.cfg.Member.Released() // offer the GPU again, or give the turn on
			return nil, fmt.Errorf("%w (job %s): %v", errNotDispatched, job, err)
		}
	}
	if err := s.waitDeadHolder(ctx, h); err != nil { // a dead holder's backend may still run its job
		return nil, err
	}
	s.metrics.wait.Observe(0)
	hd := &hold{s: s, h: h, route: route, since: time.Now(), done: make(chan struct{})}
	s.cover.own.Add(1)
	s.inflight.add()
	hd.limit()
	s.vram.beforeWork(ctx)
	return hd, nil
}

// refuseDispatch answers a dispatched request that cannot run here: 409
// with HeaderRequeue, so that the gateway puts the job back in line.
func (s *Shim) refuseDispatch(w http.ResponseWriter, err error) {
	w.Header().Set(HeaderRequeue, "1")
	writeError(w, http.StatusConflict, "dispatch_refused", err.Error())
}
