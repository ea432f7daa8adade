package shim

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"net/http"
	"time"
)

// HeaderRequestID names a GPU request's place in line in /gpulock/status,
// when the client sends it.
const HeaderRequestID = "X-Request-Id"

// serveGPU serves a request on a GPU route: read the body, wait in line,
// forward while holding the lock, and hold it as long as the route says.
func (s *Shim) serveGPU(w http.ResponseWriter, r *http.Request, route Route) {
	// The body's deadline comes first: it also bounds what net/http reads
	// of a body the shim refuses before reading it.
	lift := s.bodyDeadline(w, r)
	adm := s.admit(w, r)
	if adm == nil {
		return // refused before reading the body, and answered
	}
	defer adm.done()
	body, err := s.readBody(w, r, adm)
	if errors.Is(err, errBufferFull) {
		s.refuseUnread(w, r, err)
		return
	}
	if err != nil {
		s.refuseBody(w, r, err)
		return
	}
	lift()
	v := gpuWork
	if route.judge != nil {
		v = route.judge(body, r.Header)
	}
	// name is the request's name in the line and on the page; client, the
	// client_id of a ComfyUI prompt, whose turn it is.
	var name, promptID, client string
	if v == gpuWork && route.hold == holdUntilPromptDone {
		body, promptID, client, v = preparePrompt(body, r.Header, s.watch.clientID)
		name = cmp.Or(r.Header.Get(HeaderRequestID), client)
		client = turnClient(client, s.watch.clientID)
	} else {
		name = s.clientOf(r, body)
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
	hd, err := s.acquire(adm.context(r.Context()), routeName, name, s.turnOf(r, client))
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
		outcome = outcomeOf(s.forward(w, r, body, hd.cutoffCtx(r.Context())))
	case holdUntilAnswer:
		outcome = outcomeOf(s.forward(w, r, body, hd.cutoffCtx(context.WithoutCancel(r.Context()))))
	case holdUntilIdle:
		outcome = outcomeOf(s.forward(w, r, body, hd.cutoffCtx(context.WithoutCancel(r.Context()))))
		if err := s.waitIdle(context.WithoutCancel(r.Context())); err != nil {
			s.cfg.Logger.Warn("backend still busy after an unreadable GPU request; releasing the GPU", "err", err)
		}
	case holdUntilPromptDone:
		s.watch.expect(promptID) // ours, not the backend's own work, while it is forwarded
		res := s.forward(w, r, body, hd.cutoffCtx(context.WithoutCancel(r.Context())))
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

// refuse answers a request that did not get the lock, and counts it.
func (s *Shim) refuse(w http.ResponseWriter, r *http.Request, err error, waited time.Duration) {
	outcome := outcomeLockError
	switch {
	case errors.Is(err, errNotDispatched):
		outcome = outcomeDispatchRefused
		s.refuseDispatch(w, err)
	case errors.Is(err, errQueueFull):
		outcome = outcomeQueueFull
		writeUnavailable(w, s.cfg.RetryAfter, outcome,
			fmt.Sprintf("gpulock: %s for GPU %d; nothing was forwarded, try again later", alreadyWait(s.cfg.MaxQueue), s.cfg.GPU))
	case errors.Is(err, errBufferFull):
		outcome = outcomeBufferFull
		writeUnavailable(w, s.cfg.RetryAfter, outcome, s.bufferFullMessage())
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

// alreadyWait says how many requests wait: "1 request already waits".
func alreadyWait(n int) string {
	if n == 1 {
		return "1 request already waits"
	}
	return fmt.Sprintf("%d requests already wait", n)
}
