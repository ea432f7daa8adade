package shim

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"time"
)

// HeaderRequestID names a GPU request's place in line in /gpulock/status,
// when the client sends it.
const HeaderRequestID = "X-Request-Id"

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
	client := s.clientOf(r, body)
	v := gpuWork
	if route.judge != nil {
		v = route.judge(body, r.Header)
	}
	var promptID string
	if v == gpuWork && route.hold == holdUntilPromptDone {
		body, promptID, v = preparePrompt(body, r.Header, s.watch.clientID)
	}
	switch v {
	case notGPUWork:
		// Not GPU work after all: A1111 /options without a model change, or
		// a ComfyUI body with no prompt, which it refuses without queueing.
		s.forward(w, r, body, r.Context())
		return
	case unknownWork:
		// The shim cannot read the body, the backend may: fail closed.
		route.hold = holdUntilIdle
		s.cfg.Logger.Info("cannot read a GPU request's body; it waits in line and holds the GPU until the backend is idle",
			"route", r.Method+" "+r.URL.Path)
	}

	routeName := r.Method + " " + r.URL.Path
	start := time.Now()
	hd, err := s.acquire(r.Context(), routeName, client)
	if err != nil {
		s.refuse(w, r, err, time.Since(start))
		return
	}
	w.Header().Set(HeaderWait, seconds(hd.waited))

	// A panic below (never expected: ReverseProxy's client-gone panic is
	// handled in forward) must not leave the GPU locked for good.
	outcome, handedOver := outcomeLockError, false
	defer func() {
		if !handedOver {
			hd.release(outcome) // a no-op once released
		}
	}()
	switch route.hold {
	case holdRequest:
		outcome = outcomeOf(s.forward(w, r, body, r.Context()))
	case holdUntilAnswer:
		outcome = outcomeOf(s.forward(w, r, body, context.WithoutCancel(r.Context())))
	case holdUntilIdle:
		outcome = outcomeOf(s.forward(w, r, body, context.WithoutCancel(r.Context())))
		if err := s.waitIdle(context.WithoutCancel(r.Context())); err != nil {
			s.cfg.Logger.Warn("backend still busy after an unreadable GPU request; releasing the GPU", "err", err)
		}
	case holdUntilPromptDone:
		s.watch.expect(promptID) // ours, not the backend's own work, while it is forwarded
		res := s.forward(w, r, body, context.WithoutCancel(r.Context()))
		if res.status != http.StatusOK {
			s.watch.unexpect(promptID)
			outcome = outcomeOf(res) // refused or unreachable: nothing was queued
			hd.release(outcome, "prompt_id", promptID)
			return
		}
		s.watch.track(promptID, hd)
		handedOver = true // the watch releases it when ComfyUI is done
	}
}

// outcomeOf names what became of a forwarded request.
func outcomeOf(res forwarded) string {
	switch {
	case res.status == 0:
		return outcomeUpstreamDown
	case res.status >= 400:
		return outcomeRefused
	}
	return outcomeDone
}

// readBody reads a GPU request's whole body, bounded by max: Go's server
// notices a client that leaves only once the body is read.
func readBody(w http.ResponseWriter, r *http.Request, max int64) ([]byte, error) {
	return io.ReadAll(http.MaxBytesReader(w, r.Body, max))
}

// refuse answers a request that did not get the lock, and counts it.
func (s *Shim) refuse(w http.ResponseWriter, r *http.Request, err error, waited time.Duration) {
	outcome := outcomeLockError
	switch {
	case errors.Is(err, errQueueFull):
		outcome = outcomeQueueFull
		writeUnavailable(w, s.cfg.RetryAfter, outcome,
			fmt.Sprintf("gpulock: %d requests already wait for GPU %d; nothing was forwarded, try again later", s.cfg.MaxQueue, s.cfg.GPU))
	case errors.Is(err, errQueueTimeout):
		outcome = outcomeQueueTimeout
		writeUnavailable(w, s.cfg.RetryAfter, outcome,
			fmt.Sprintf("gpulock: waited %s for GPU %d without getting it; nothing was forwarded, try again later", s.cfg.QueueTimeout, s.cfg.GPU))
	case errors.Is(err, errShuttingDown):
		outcome = outcomeShutdown
		writeUnavailable(w, s.cfg.RetryAfter, outcome, "gpulock: the shim is shutting down; nothing was forwarded, try another instance")
	case r.Context().Err() != nil:
		outcome = outcomeClientLeft
	default:
		writeError(w, http.StatusInternalServerError, outcome, err.Error())
	}
	s.metrics.finished(outcome, 0)
	level := s.cfg.Logger.Warn
	if outcome == outcomeClientLeft {
		level = s.cfg.Logger.Info
	}
	level("job", "service", s.cfg.Name, "route", r.Method+" "+r.URL.Path, "wait", waited.Round(time.Millisecond), "outcome", outcome, "err", err)
}
