package gateway

import (
	"context"
	"fmt"
	"net/http"
	"time"

	"github.com/gpulock/gpulock/internal/cluster"
)

// errRunElsewhere means another gateway dispatched the job (it adopted the
// prompt): this one has nothing more to do for it.
var errRunElsewhere = fmt.Errorf("%w: the job was dispatched by another gateway", context.Canceled)

// keepLease renews the gateway's lease every third of it, adopts (a ComfyUI
// gateway) the prompts of gateways whose lease ended and takes their held
// requests out of the line, until Close.
func (g *Gateway) keepLease() {
	t := time.NewTicker(g.cfg.Lease / 3)
	defer t.Stop()
	warnedAt := time.Time{}
	// A lease missing in Redis means its gateway is gone only once every
	// live gateway had the time to renew its own: not right after Redis
	// came back (a restart ends every lease at once) or this gateway could
	// not reach it. settledAt is when that time is over.
	var settledAt time.Time
	failed := false
	for {
		ctx, cancel := context.WithTimeout(g.ctx, g.cfg.Lease/3)
		err := g.cfg.Store.RenewGateway(ctx, g.id, g.cfg.Lease)
		switch {
		case err != nil:
			failed = true
		case failed:
			failed = false
			settledAt = time.Now().Add(g.cfg.Lease + redisRedial)
		}
		settled := err == nil && !time.Now().Before(settledAt)
		if settled && g.cfg.Profile == "comfyui" {
			// Only ComfyUI gateways run prompts: another profile's would
			// follow them among its own machines.
			err = g.adoptOrphans(ctx)
		}
		if settled && err == nil {
			err = g.reapHeld(ctx)
		}
		cancel()
		if err != nil && g.ctx.Err() == nil && time.Since(warnedAt) > g.cfg.Lease {
			warnedAt = time.Now()
			g.cfg.Logger.Warn("cannot renew the gateway's lease or adopt prompts in Redis; retrying", "err", err)
		}
		select {
		case <-g.ctx.Done():
			return
		case <-t.C:
		}
	}
}

// adoptOrphans takes over the prompts of gateways whose lease ended: one
// still in line waits for its GPU here, one running is followed here. It
// looks at the prompts only when a gateway has gone (10,000 waiting
// prompts would otherwise cost a script each, every third of the lease, on
// every gateway), and forgets the gone ones once all are adopted.
func (g *Gateway) adoptOrphans(ctx context.Context) error {
	gone, err := g.cfg.Store.GoneGateways(ctx, g.id)
	if err != nil || len(gone) == 0 {
		return err
	}
	if err := g.adoptFrom(ctx); err != nil {
		return err
	}
	return g.cfg.Store.ForgetGateways(ctx, gone)
}

// adoptFrom adopts every active prompt whose owner's lease ended, and
// takes up any that Redis says is this gateway's but that no goroutine
// here has in hand (inhand.go). An error ends the round early: the next
// round looks again, since the gone gateways are forgotten only after a
// whole round.
func (g *Gateway) adoptFrom(ctx context.Context) error {
	ids, err := g.cfg.Store.ActivePrompts(ctx)
	if err != nil {
		return err
	}
	for _, id := range ids {
		if g.hasInHand(id) {
			continue
		}
		// In hand before it is adopted: a prompt of ours that a
		// goroutine here takes up meanwhile is not taken up twice.
		release := g.takeInHand(id)
		taken, err := g.adoptOne(ctx, id, release)
		if !taken {
			release()
		}
		if err != nil {
			return err
		}
	}
	return nil
}

// adoptOne adopts prompt id, or takes it up if it is this gateway's
// already, and starts the goroutine that answers for it, which calls
// release when it ends; taken reports whether it started one.
func (g *Gateway) adoptOne(ctx context.Context, id string, release func()) (taken bool, err error) {
	a, err := g.cfg.Store.AdoptPrompt(ctx, id, g.id)
	if err != nil || (a != cluster.Adopted && a != cluster.AdoptionMine) {
		return false, err
	}
	p, found, err := g.cfg.Store.LookupPrompt(ctx, id)
	if err != nil || !found {
		return false, err
	}
	if a == cluster.Adopted {
		g.cfg.Logger.Info("adopted a prompt of a gateway that is gone", "prompt_id", id, "state", p.State)
	} else {
		g.cfg.Logger.Warn("took up a prompt of this gateway's that nobody here followed (an adoption whose answer Redis lost)", "prompt_id", id, "state", p.State)
	}
	var answer func()
	switch p.State {
	case cluster.PromptRunning:
		if m, found, err := g.cfg.Store.Job(ctx, p.Job); err == nil && found && (m.State != cluster.StateRunning || m.Pre) {
			// Its gateway died while dispatching, before the shim took
			// it (or its job went back in line, the prompt's record
			// not yet told): dispatch it again (the shim runs a job
			// only once).
			answer = func() { g.resume(p) }
		} else {
			answer = func() { g.relayAdopted(p); g.follow(id, p) }
		}
	case cluster.PromptWaiting:
		answer = func() { g.resume(p) }
	default:
		return false, nil
	}
	g.wg.Go(func() { defer release(); answer() })
	return true, nil
}

// resume runs an adopted prompt that waits in line: as if this gateway had
// accepted it, from its place.
func (g *Gateway) resume(p cluster.Prompt) {
	r, err := http.NewRequestWithContext(g.ctx, http.MethodPost, "/prompt", nil)
	if err != nil {
		return
	}
	r.Header.Set("Content-Type", "application/json")
	m, found, err := g.cfg.Store.Job(g.ctx, p.Job)
	if err != nil || !found || (m.State != cluster.StateAssigned && !m.Pre) {
		m = cluster.Match{N: m.N} // the matches so far: older hints are stale
	}
	c := newCapture()
	turn := g.turnOf(r, p.Body) // its client_id; a job back in line keeps its key
	g.runJob(g.ctx, c, r, p.Body, p.Job, p.ID, turn, m, time.Now())
	g.settlePrompt(p.ID, c)
}

// promptGone reports whether prompt's job, no longer in Redis, must not be
// put in line again by this gateway: the prompt ended (the job was done
// and forgotten), or another gateway adopted it and answers for it now
// (every lease is lost when Redis restarts; this gateway may have been cut
// off from Redis for a lease). A prompt Redis does not know (a restart
// without appendonly) is not gone: its gateway puts it in line again.
func (g *Gateway) promptGone(ctx context.Context, prompt string) bool {
	if prompt == "" {
		return false
	}
	p, found, err := g.cfg.Store.LookupPrompt(context.WithoutCancel(ctx), prompt)
	return err == nil && found && (p.State == cluster.PromptDone || p.Owner != g.id)
}

// reapHeld takes the held requests of gateways that are gone out of the
// line: nobody waits for their answer, so they must never run.
func (g *Gateway) reapHeld(ctx context.Context) error {
	n, err := g.cfg.Store.ReapHeld(ctx)
	if n > 0 {
		g.cfg.Logger.Warn("took the held requests of a gateway that is gone out of the line", "jobs", n)
	}
	return err
}

// trackHeld records in Redis that this gateway holds job's client, so that
// the job leaves the line if the gateway dies; call the returned func when
// the job ended. It fails when Redis does not answer in time: then the job
// must not be put in line.
func (g *Gateway) trackHeld(ctx context.Context, job string) (func(), error) {
	tctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), redisBound)
	defer cancel()
	if err := g.cfg.Store.TrackHeld(tctx, job, g.id); err != nil {
		return nil, err
	}
	return func() {
		uctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), redisBound)
		defer cancel()
		if g.cfg.Store.UntrackHeld(uctx, job) != nil {
			g.forgetLater(job, false)
		}
	}, nil
}
