package shim

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"time"

	"github.com/gpulock/gpulock/gpulock"
)

// serveGPU serves a request on a GPU route: read the body, wait in line,
// forward while holding the lock, and hold it as long as the route says.
func (s *Shim) serveGPU(w http.ResponseWriter, r *http.Request, route Route) {
	body, err := readBody(w, r, s.cfg.MaxBody)
	if err != nil {
		var tooBig *http.MaxBytesError
		if errors.As(err, &tooBig) {
			writeError(w, http.StatusRequestEntityTooLarge, "body_too_large",
				fmt.Sprintf("gpulock: the request body is over %d bytes; raise the shim's --max-body", s.cfg.MaxBody))
		}
		return // otherwise the client left while sending: nobody to answer
	}
	if route.isGPU != nil && !route.isGPU(body) {
		s.forward(w, r, body, r.Context()) // not GPU work after all (A1111 /options without a model change)
		return
	}
	var promptID string
	if route.hold == holdUntilPromptDone {
		var ok bool
		body, promptID, ok = preparePrompt(body, s.watch.clientID)
		if !ok {
			// No prompt in it: ComfyUI refuses it without queueing anything.
			s.forward(w, r, body, r.Context())
			return
		}
	}

	start := time.Now()
	h, err := s.waitForLock(r.Context(), r.Method+" "+r.URL.Path)
	waited := time.Since(start)
	if err != nil {
		s.refuse(w, r, err, waited)
		return
	}
	w.Header().Set(HeaderWait, seconds(waited))

	switch route.hold {
	case holdRequest:
		defer s.release(h, r, waited, start)
		s.forward(w, r, body, r.Context())
	case holdUntilAnswer:
		defer s.release(h, r, waited, start)
		s.forward(w, r, body, context.WithoutCancel(r.Context()))
	case holdUntilPromptDone:
		res := s.forward(w, r, body, context.WithoutCancel(r.Context()))
		if res.status != http.StatusOK {
			s.release(h, r, waited, start) // refused or unreachable: nothing was queued
			return
		}
		s.watch.track(promptID, h, start.Add(waited))
		s.cfg.Logger.Info("prompt queued", "service", s.cfg.Name, "prompt_id", promptID, "wait", waited.Round(time.Millisecond))
	}
}

// readBody reads a GPU request's whole body, bounded by max: Go's server
// notices a client that leaves only once the body is read.
func readBody(w http.ResponseWriter, r *http.Request, max int64) ([]byte, error) {
	return io.ReadAll(http.MaxBytesReader(w, r.Body, max))
}

// waitForLock waits in line for the GPU lock.
func (s *Shim) waitForLock(ctx context.Context, route string) (*gpulock.Handle, error) {
	p, wctx, stop, err := s.line.join(ctx, route, s.cfg.QueueTimeout)
	if err != nil {
		return nil, err
	}
	defer stop()
	defer s.line.leave(p)
	h, err := s.lock.Acquire(wctx)
	if err != nil {
		if cause := context.Cause(wctx); cause != nil && !errors.Is(cause, context.Canceled) {
			return nil, cause
		}
		return nil, err
	}
	return h, nil
}

// refuse answers a request that did not get the lock.
func (s *Shim) refuse(w http.ResponseWriter, r *http.Request, err error, waited time.Duration) {
	log := s.cfg.Logger.With("service", s.cfg.Name, "route", r.Method+" "+r.URL.Path, "wait", waited.Round(time.Millisecond))
	switch {
	case errors.Is(err, errQueueFull):
		log.Warn("job refused", "outcome", "queue_full")
		writeUnavailable(w, s.cfg.RetryAfter, "queue_full",
			fmt.Sprintf("gpulock: %d requests already wait for GPU %d; nothing was forwarded, try again later", s.cfg.MaxQueue, s.cfg.GPU))
	case errors.Is(err, errQueueTimeout):
		log.Warn("job refused", "outcome", "queue_timeout")
		writeUnavailable(w, s.cfg.RetryAfter, "queue_timeout",
			fmt.Sprintf("gpulock: waited %s for GPU %d without getting it; nothing was forwarded, try again later", s.cfg.QueueTimeout, s.cfg.GPU))
	case errors.Is(err, errShuttingDown):
		log.Warn("job refused", "outcome", "shutting_down")
		writeUnavailable(w, s.cfg.RetryAfter, "shutting_down", "gpulock: the shim is shutting down; nothing was forwarded, try another instance")
	case r.Context().Err() != nil:
		log.Info("job abandoned", "outcome", "client_left")
	default:
		log.Error("job failed", "outcome", "lock_error", "err", err)
		writeError(w, http.StatusInternalServerError, "lock_error", err.Error())
	}
}

// release gives the lock back after a job that held it for its request.
func (s *Shim) release(h *gpulock.Handle, r *http.Request, waited time.Duration, start time.Time) {
	_ = h.Release()
	s.cfg.Logger.Info("job done", "service", s.cfg.Name, "route", r.Method+" "+r.URL.Path,
		"wait", waited.Round(time.Millisecond), "hold", time.Since(start.Add(waited)).Round(time.Millisecond))
}
