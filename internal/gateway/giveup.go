package gateway

import (
	"context"
	"time"
)

// finish forgets job in Redis once it ended (it ran, or its machine
// failed); while Redis does not answer, forgetLater does it when it does.
func (g *Gateway) finish(ctx context.Context, job string) {
	dctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), redisBound)
	defer cancel()
	if g.cfg.Store.Done(dctx, job) != nil {
		g.forgetLater(job, true)
	}
}

// forgetLater takes job out of the cluster once Redis answers again: one
// that ended (ran) is forgotten, one whose held request gave up because
// Redis did not answer is withdrawn (nobody will dispatch it: a start a
// held offer made with its match goes too). Redis (with appendonly) comes
// back with the job as it was: still in line, a match nobody dispatches
// would keep a GPU reserved for nobody; still running, it would show so in
// the status for a day.
func (g *Gateway) forgetLater(job string, ran bool) {
	g.retryLater(func(ctx context.Context) error {
		var err error
		if ran {
			err = g.cfg.Store.Done(ctx, job)
		} else {
			_, err = g.cfg.Store.Withdraw(ctx, job)
		}
		if err != nil {
			return err
		}
		return g.cfg.Store.UntrackHeld(ctx, job)
	})
}

// retryLater runs f, a write to Redis that failed (Redis may have done it
// nonetheless: a write is lost or made with its answer), every third of a
// lease until it succeeds or the gateway closes.
func (g *Gateway) retryLater(f func(context.Context) error) {
	if g.ctx.Err() != nil {
		return // closed: nobody would wait for it
	}
	g.wg.Go(func() {
		t := time.NewTicker(g.cfg.Lease / 3)
		defer t.Stop()
		for {
			select {
			case <-g.ctx.Done():
				return
			case <-t.C:
			}
			ctx, cancel := context.WithTimeout(g.ctx, redisBound)
			err := f(ctx)
			cancel()
			if err == nil {
				return
			}
		}
	})
}

// untilAnswered runs f, a Redis call, and again every followEvery while
// it fails, until it succeeds or ctx ends; it returns f's last error. For
// work that must not end because Redis is down for a while.
func untilAnswered(ctx context.Context, f func() error) error {
	for {
		err := f()
		if err == nil || ctx.Err() != nil {
			return err
		}
		select {
		case <-ctx.Done():
			return err
		case <-time.After(followEvery):
		}
	}
}
