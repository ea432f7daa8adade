package gateway

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"time"

	"github.com/gpulock/gpulock/internal/cluster"
	"github.com/gpulock/gpulock/internal/shim"
)

// The dispatch's header names, the shim's own (internal/shim documents
// them), and the gateway's answer headers.
const (
	HeaderDispatch      = shim.HeaderDispatch
	HeaderRequeue       = shim.HeaderRequeue
	HeaderDispatchToken = shim.HeaderDispatchToken
	// HeaderWait is the time the job waited in the cluster's line, seconds.
	HeaderWait = "X-Gpulock-Wait"
	// HeaderGPU names the GPU that ran the job.
	HeaderGPU = "X-Gpulock-Gpu"
)

// errQueueTimeout means a job waited QueueTimeout without a GPU.
var errQueueTimeout = errors.New("gateway: waited too long in line")

// serveJob runs one GPU request through the cluster: enqueue, wait for a
// match, forward with the dispatch header; put it back in line when the
// GPU turned out busy or unreachable before it took the job.
func (g *Gateway) serveJob(w http.ResponseWriter, r *http.Request) {
	body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, g.cfg.MaxBody))
	if err != nil {
		var tooBig *http.MaxBytesError
		if errors.As(err, &tooBig) {
			writeError(w, http.StatusRequestEntityTooLarge, "body_too_large",
				fmt.Sprintf("gpulock: the request body is over %d bytes", g.cfg.MaxBody))
		}
		return
	}
	var prompt string
	if g.cfg.Profile == "comfyui" {
		if perr := g.checkPrompt(r.Context(), body); perr != nil {
			writePromptError(w, perr)
			return
		}
		body, prompt = promptID(body)
	}
	start := time.Now()
	id := newJobID()
	ctx := r.Context()
	if prompt != "" {
		// ComfyUI answers /prompt at once and queues: so does the gateway,
		// and the prompt waits in the cluster's line in the background.
		ctx = g.ctx
		r = r.Clone(context.WithoutCancel(r.Context()))
	}
	var cancel context.CancelFunc = func() {}
	if g.cfg.QueueTimeout > 0 {
		ctx, cancel = context.WithTimeoutCause(ctx, g.cfg.QueueTimeout, errQueueTimeout)
	}
	turn := g.turnOf(r, body)
	g.front(w, body, &turn)
	// Who answers for the job is in Redis before the job: a gateway that
	// dies between the two leaves no job in line that nobody answers for
	// (a held request's is taken out, a prompt is adopted and run).
	if prompt == "" {
		defer cancel()
		untrack, err := g.trackHeld(ctx, id)
		if err != nil {
			g.forgetLater(id, false) // Redis may have recorded it all the same
			g.refuse(w, err)
			return
		}
		defer untrack()
		if m, ok := g.enqueue(ctx, w, id, turn, "", nil); ok {
			g.runJob(ctx, w, r, body, id, "", turn, m, start)
		}
		return
	}
	// In hand before Redis records it as this gateway's (see inhand.go).
	release := g.takeInHand(prompt)
	actx, acancel := context.WithTimeout(ctx, redisBound)
	number, err := g.cfg.Store.AddPrompt(actx, prompt, id, g.id, body)
	acancel()
	if err != nil {
		cancel()
		g.dropPromptLater(prompt, id, release)
		g.redisDown(w, err)
		return
	}
	m, ok := g.enqueue(ctx, w, id, turn, prompt, release)
	if !ok {
		cancel()
		return
	}
	if turn.Front {
		if n, err := g.cfg.Store.PromptToFront(context.WithoutCancel(ctx), prompt); err == nil {
			number = n // negative, as ComfyUI numbers a front prompt
		}
	}
	writeQueued(w, prompt, number)
	g.wg.Go(func() {
		defer release()
		defer cancel()
		c := newCapture()
		g.runJob(ctx, c, r, body, id, prompt, turn, m, start)
		g.settlePrompt(prompt, c)
	})
}

// enqueue puts job id in line; when it cannot, it answers w, forgets the
// prompt the job carries (prompt, or "") and reports false. release, if
// not nil, lets go of the prompt once Redis has forgotten it.
func (g *Gateway) enqueue(ctx context.Context, w http.ResponseWriter, id string, turn cluster.Turn, prompt string, release func()) (cluster.Match, bool) {
	ectx, ecancel := context.WithTimeout(ctx, redisBound)
	defer ecancel()
	m, err := g.cfg.Store.Enqueue(ectx, g.cfg.Profile, id, turn, g.cfg.MaxQueue, g.cfg.Reserve)
	if err == nil {
		return m, true
	}
	if !errors.Is(err, cluster.ErrNoMachine) && !errors.Is(err, cluster.ErrQueueFull) {
		g.forgetLater(id, false) // Redis may have put it in line all the same
	}
	if prompt != "" {
		dctx, dcancel := context.WithTimeout(context.WithoutCancel(ctx), redisBound)
		if g.cfg.Store.DropPrompt(dctx, prompt, id) != nil {
			g.dropPromptLater(prompt, id, release)
		} else if release != nil {
			release()
		}
		dcancel()
	}
	g.refuse(w, err)
	return m, false
}

// dropPromptLater forgets prompt (carried by job), refused while Redis did
// not answer, once Redis answers again: Redis may have recorded it. Until
// then the prompt stays in hand (release, if not nil, lets go of it), so
// that no adoption runs a prompt its client was told was refused.
func (g *Gateway) dropPromptLater(prompt, job string, release func()) {
	g.retryLater(func(ctx context.Context) error {
		err := g.cfg.Store.DropPrompt(ctx, prompt, job)
		if err == nil && release != nil {
			release()
		}
		return err
	})
}

// runJob waits for job id's match (unless m is one) and dispatches it,
// putting it back in line while the GPU turns out busy or unreachable, and
// writes the outcome to w.
func (g *Gateway) runJob(ctx context.Context, w http.ResponseWriter, r *http.Request, body []byte, id, prompt string, turn cluster.Turn, m cluster.Match, start time.Time) {
	st := g.cfg.Store
	var err error
	seen := m.N // the job's matches so far: hints of these are stale
	for attempt := 1; ; attempt++ {
		if m.State != cluster.StateAssigned {
			if m, err = g.wait(ctx, id, turn, prompt, seen); err != nil {
				if c := context.Cause(ctx); c != nil && !errors.Is(err, c) {
					err = c
				}
				g.giveUp(ctx, w, id, prompt, err)
				return
			}
		}
		seen = max(seen, m.N)
		waited := time.Since(start)
		// The prompt's and the client's records go to Redis beside the
		// dispatch, not before it: nothing on the shim's side reads them.
		recorded := func() {}
		if prompt != "" {
			gpu, url := m.GPU, m.URL
			recorded = beside(func() {
				pctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), redisBound)
				defer cancel()
				if st.PromptDispatched(pctx, prompt, gpu, url) != nil {
					// Redis did not answer: /queue must still learn where it runs.
					g.retryLater(func(c context.Context) error { return st.PromptDispatched(c, prompt, gpu, url) })
				}
			})
			w.Header().Set(headerMachineURL, url) // w is the prompt's capture: for settlePrompt
		}
		unnote := g.noteClientJob(ctx, r, id, m.URL)
		sent, stopRelay := g.beforePrompt(ctx, prompt, body, m.URL) // uploads and websocket events (comfydispatch.go)
		token := g.dispatchToken()
		resp, ferr := g.dispatch(r, sent, id, token, m.URL)
		recorded()
		switch {
		case ferr == nil && resp.StatusCode == http.StatusConflict && resp.Header.Get(HeaderRequeue) == "1":
			_ = resp.Body.Close()
			unnote()
			stopRelay()
			g.cfg.Logger.Info("dispatch refused; back in line", "job", id, "gpu", m.GPU, "attempt", attempt)
			g.promptBack(ctx, prompt)
			g.metrics.requeued(true)
			m, err = g.requeue(ctx, id, prompt, turn, m.GPU, token, 0)
		case ferr != nil:
			now, found, jerr := st.Job(context.WithoutCancel(ctx), id)
			unnote()
			stopRelay()
			if jerr == nil && found && now.State == cluster.StateRunning {
				g.finish(ctx, id)
				g.metrics.dispatched(waited, 0)
				writeError(w, http.StatusBadGateway, "machine_failed",
					fmt.Sprintf("gpulock: the machine %s failed while running the job (%v); it was not run again, retry if you want", m.GPU, ferr))
				return
			}
			g.cfg.Logger.Warn("machine unreachable; job back in line", "job", id, "gpu", m.GPU, "err", ferr)
			g.promptBack(ctx, prompt)
			g.metrics.requeued(false)
			m, err = g.requeue(ctx, id, prompt, turn, m.GPU, token, g.cfg.Lease)
		default:
			defer unnote()
			defer resp.Body.Close()
			g.finish(ctx, id)
			if msg, ok := backendGone(resp); ok {
				// The machine's backend died under the job (its shim
				// outlived it for a moment): the machine failed.
				g.metrics.dispatched(waited, resp.StatusCode)
				writeError(w, http.StatusBadGateway, "machine_failed",
					fmt.Sprintf("gpulock: the machine %s failed while running the job (%s); it was not run again, retry if you want", m.GPU, msg))
				return
			}
			for k, v := range resp.Header {
				w.Header()[k] = v
			}
			w.Header().Set(HeaderWait, strconv.FormatFloat(waited.Seconds(), 'f', 3, 64))
			w.Header().Set(HeaderGPU, m.GPU)
			w.WriteHeader(resp.StatusCode)
			_, _ = io.Copy(w, resp.Body)
			level := g.cfg.Logger.Info
			if resp.StatusCode >= 400 {
				level = g.cfg.Logger.Warn // for a queued prompt, only the log tells
			}
			g.page.dispatched(r, id, m.GPU, waited, time.Since(start), resp.StatusCode)
			if prompt == "" {
				_ = st.RecordJobTime(context.WithoutCancel(ctx), g.cfg.Profile, time.Since(start)-waited)
			}
			g.metrics.dispatched(waited, resp.StatusCode)
			level("job", "job", id, "prompt_id", prompt, "gpu", m.GPU, "wait", waited.Round(time.Millisecond),
				"total", time.Since(start).Round(time.Millisecond), "status", resp.StatusCode)
			return
		}
		if err != nil {
			g.giveUp(ctx, w, id, prompt, err)
			return
		}
	}
}

// giveUp ends runJob on err: a prompt of this gateway's that another
// dispatch runs is followed there (followRunning), anything else refused.
func (g *Gateway) giveUp(ctx context.Context, w http.ResponseWriter, id, prompt string, err error) {
	if !g.followRunning(ctx, w, id, prompt, err) {
		g.refuse(w, err)
	}
}

// beside runs fn (bounded by its own contexts) in a goroutine and returns
// the func that waits for it, which the caller must call.
func beside(fn func()) (wait func()) {
	done := make(chan struct{})
	go func() {
		defer close(done)
		fn()
	}()
	return func() { <-done }
}

// requeue puts job back in its place in line after a failed dispatch to gpu
// (prompt: the prompt it carries, or ""; token: the dispatch's).
func (g *Gateway) requeue(ctx context.Context, id, prompt string, turn cluster.Turn, gpu, token string, hold time.Duration) (cluster.Match, error) {
	var m cluster.Match
	var found bool
	err := g.requeueStep(ctx, id, prompt, func() (err error) {
		m, found, err = g.cfg.Store.Requeue(context.WithoutCancel(ctx), id, gpu, token, g.cfg.Reserve, hold)
		return err
	})
	if err != nil {
		return m, err
	}
	if !found {
		if g.deleted(ctx, id) {
			return m, context.Canceled
		}
		if g.promptGone(ctx, prompt) {
			return m, errRunElsewhere // another gateway adopted its prompt
		}
		var now cluster.Match
		var exists bool
		if err := g.requeueStep(ctx, id, prompt, func() (err error) {
			now, exists, err = g.cfg.Store.Job(context.WithoutCancel(ctx), id)
			return err
		}); err != nil {
			return m, err
		}
		if exists {
			// No longer assigned to gpu, yet still this gateway's job: an
			// earlier try of this requeue ran in Redis but its answer was
			// lost (Redis slow past the bound, or stopped as it answered),
			// and put the job back and matched it again. Take it as it is
			// now: matched (dispatch it) or waiting (wait for it).
			if now.State == cluster.StateRunning && !now.Pre {
				// Started by another dispatch (another gateway's that
				// adopted it, or one that raced this one): that one
				// follows it. (A start of this very dispatch, its answer
				// lost and the job refused, went back in line above: its
				// token is this dispatch's.)
				return m, errRunElsewhere
			}
			return now, nil
		}
		// Lost from Redis (a restart) before it ran: in line again, at the end.
		g.cfg.Logger.Warn("job lost from Redis (restarted?); putting it in line again", "job", id)
		return g.cfg.Store.Enqueue(context.WithoutCancel(ctx), g.cfg.Profile, id, turn, 0, g.cfg.Reserve)
	}
	return m, nil
}

// requeueStep runs step, a Redis step of requeue for job id. A prompt is
// kept (in Redis, with appendonly) and must not end because Redis does not
// answer: its step is tried until Redis answers. A held request's is tried
// once; on an error the job is taken out of the line when Redis answers
// again (it may be back in line all the same).
func (g *Gateway) requeueStep(ctx context.Context, id, prompt string, step func() error) error {
	if prompt != "" {
		return untilAnswered(ctx, step)
	}
	err := step()
	if err != nil {
		g.forgetLater(id, false)
	}
	return err
}

// dispatchToken returns a new dispatch's token (HeaderDispatchToken),
// unique in the cluster: the gateway's id and its count of dispatches.
func (g *Gateway) dispatchToken() string {
	return g.id + "." + strconv.FormatUint(g.dispatches.Add(1), 36)
}

// dispatch forwards a matched job to its shim, as the dispatch named token.
// The upstream request does not end when the client leaves: the job holds
// the GPU anyway.
func (g *Gateway) dispatch(r *http.Request, body []byte, id, token, base string) (*http.Response, error) {
	out, err := http.NewRequestWithContext(context.WithoutCancel(r.Context()), r.Method, base+r.URL.RequestURI(), bytes.NewReader(body))
	if err != nil {
		return nil, err
	}
	for k, v := range r.Header {
		out.Header[k] = v
	}
	out.Header.Del("Content-Length")
	out.ContentLength = int64(len(body))
	out.Header.Set(HeaderDispatch, id)
	out.Header.Set(HeaderDispatchToken, token)
	return g.client.Do(out)
}

// wait blocks until job is matched with a GPU, waking on the matched
// channel's hint or every Poll. A hint for a match after the after'th (the
// last this gateway acted on) is the job's current match: no other
// gateway puts the job back in line, so no newer match can have come and
// gone; an older one is stale and only wakes a read. If ctx ends first (the client left, the
// queue timeout) the job leaves the line and wait returns ctx's error;
// a job lost from Redis (a restart) is put in line again, unless the
// prompt it carries (prompt, "" for a held request) ended or is another
// gateway's now. A held request gives up when Redis has not answered for a
// lease; a queued prompt waits on, as Redis keeps it.
func (g *Gateway) wait(ctx context.Context, id string, turn cluster.Turn, prompt string, after int64) (cluster.Match, error) {
	held := prompt == ""
	hint, remove := g.wake.add(id)
	defer remove()
	every := g.cfg.Poll
	t := time.NewTimer(every)
	defer t.Stop()
	warned := false
	var lostAt, downSince time.Time
	for {
		select {
		case m := <-hint:
			if m.N > after {
				return m, nil
			}
		default:
		}
		jctx, jcancel := context.WithTimeout(ctx, redisBound)
		m, found, err := g.cfg.Store.Job(jctx, id)
		jcancel()
		if err == nil {
			downSince = time.Time{}
		}
		switch {
		case err != nil && ctx.Err() == nil:
			if downSince.IsZero() {
				downSince = time.Now()
			}
			if held && time.Since(downSince) >= g.cfg.Lease {
				g.forgetLater(id, false)
				return cluster.Match{}, redisDownFor(time.Since(downSince), err)
			}
			if !warned {
				warned = true
				g.cfg.Logger.Warn("cannot read a job's state in Redis; retrying", "job", id, "err", err)
			}
		case err == nil && !found:
			if g.deleted(ctx, id) {
				return cluster.Match{}, context.Canceled
			}
			if g.promptGone(ctx, prompt) {
				return cluster.Match{}, errRunElsewhere
			}
			if lostAt.IsZero() {
				lostAt = time.Now()
				g.cfg.Logger.Warn("job lost from Redis (restarted?); putting it in line again", "job", id)
			}
			m, err = g.cfg.Store.Enqueue(ctx, g.cfg.Profile, id, turn, 0, g.cfg.Reserve)
			// After a restart the shims register again within a third of
			// their lease: wait that long for one before giving up.
			if errors.Is(err, cluster.ErrNoMachine) && time.Since(lostAt) > g.cfg.Lease {
				return m, err
			}
			if err == nil && m.State == cluster.StateAssigned {
				return m, nil
			}
		case err == nil && (m.State == cluster.StateAssigned || m.Pre):
			// Pre: started by its GPU's member with the match; the
			// dispatch is awaited (the hint was lost).
			return m, nil
		case err == nil && m.State == cluster.StateRunning:
			return cluster.Match{}, errRunElsewhere
		}
		select {
		case <-ctx.Done():
			left := g.leftLine(ctx, id) // position.go
			if !held && g.ctx.Err() != nil {
				// The gateway closes: the prompt keeps its place in line
				// for another gateway to adopt.
				return cluster.Match{}, ctx.Err()
			}
			cctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 2*time.Second)
			defer cancel()
			ok, err := g.cfg.Store.Cancel(cctx, id)
			if err != nil {
				g.forgetLater(id, false) // Redis is down: take it out when back
			}
			if err == nil && !ok {
				// Matched as we gave up: take the match.
				// A job its GPU started with the match (Pre) holds that GPU
				// for its dispatch whatever the cause: send it.
				if m, found, err := g.cfg.Store.Job(cctx, id); err == nil && found &&
					(m.State == cluster.StateAssigned && context.Cause(ctx) == errQueueTimeout || m.Pre) {
					return m, nil
				}
			}
			return cluster.Match{}, left
		case m := <-hint:
			if m.N > after {
				return m, nil
			}
		case <-t.C:
			every = min(every*2, pollCap(g.cfg.Poll, g.cfg.Lease))
			t.Reset(every)
		}
	}
}

// pollCap bounds the back-off of a waiting job's reads of its own state:
// the matched channel's hint carries every match, and a resubscription
// (Redis back, or restarted) makes every waiter read its state again
// (wakeups.listen), so the reads only back those up and find Redis down
// for a held request. Half the lease, at least poll, keeps that within the
// lease without a read per waiting job every poll (10,000 waiting jobs at
// 20 ms would be 500,000 reads a second).
func pollCap(poll, lease time.Duration) time.Duration {
	return max(poll, lease/2)
}

// refuse answers a job that got no GPU.
func (g *Gateway) refuse(w http.ResponseWriter, err error) {
	g.metrics.refused(err)
	if g.refusePlace(w, err) {
		return
	}
	switch {
	case errors.Is(err, cluster.ErrNoMachine):
		writeUnavailable(w, g.cfg.RetryAfter, "no_machine", "gpulock: no live machine serves "+g.cfg.Profile+"; nothing was run, start a shim with --redis or try later")
	case errors.Is(err, cluster.ErrQueueFull):
		writeUnavailable(w, g.cfg.RetryAfter, "queue_full", fmt.Sprintf("gpulock: %d jobs already wait in the cluster; nothing was run, try again later", g.cfg.MaxQueue))
	case errors.Is(err, errQueueTimeout):
		writeUnavailable(w, g.cfg.RetryAfter, "queue_timeout", fmt.Sprintf("gpulock: waited %s without a GPU; nothing was run, try again later", g.cfg.QueueTimeout))
	case errors.Is(err, context.Canceled):
		// the client left: nobody to answer
	default:
		writeUnavailable(w, g.cfg.RetryAfter, "cluster_unreachable", "gpulock: cannot reach the cluster's Redis ("+err.Error()+"); nothing was run, try again when Redis is back")
	}
	if err != nil && !errors.Is(err, context.Canceled) {
		g.cfg.Logger.Warn("job refused", "err", err)
	}
}
