package shim

import (
	"context"
	"errors"
	"fmt"
	"time"
)

// errMaxHold is the cause with which a forwarded request is cut off when
// its job held the GPU past --max-hold.
var errMaxHold = errors.New("shim: the job held the GPU past --max-hold")

// --max-hold, for every profile. Each of the shim's own holdings (not those
// on the backend's behalf, which it cannot stop) gets a timer when the lock
// is taken. When it fires:
//
//   - comfyui and a1111 are asked to interrupt their running job (ComfyUI's
//     POST /interrupt, A1111's POST /sdapi/v1/interrupt); the holding then
//     has IdleTimeout to end by itself (the backend answers the request),
//     after which the lock is released anyway;
//   - a generic backend cannot be interrupted: the lock is released at once.
//
// Either way, a forwarded request still running when the lock is released
// is cut off (its client gets 504 max_hold, when nothing was sent yet), so
// that no job runs on the GPU outside the lock's bookkeeping for longer than
// the bound, and the release is logged and counted as max_hold. A ComfyUI
// prompt handed to the prompt watch is bounded there instead (see check).

// limit starts the --max-hold timer of a new holding, if MaxHold is on.
// release stops it.
func (hd *hold) limit() {
	if hd.s.cfg.MaxHold <= 0 {
		return
	}
	hd.mu.Lock()
	defer hd.mu.Unlock()
	hd.timer = time.AfterFunc(hd.s.cfg.MaxHold, hd.overMaxHold)
}

// unlimit stops the --max-hold timer: when the prompt watch takes the
// holding over, or at release.
func (hd *hold) unlimit() {
	hd.mu.Lock()
	defer hd.mu.Unlock()
	if hd.timer != nil {
		hd.timer.Stop()
	}
}

// cutoffCtx returns ctx for forwarding this holding's request, cancelled
// with errMaxHold when --max-hold releases the lock before the request ends.
func (hd *hold) cutoffCtx(ctx context.Context) context.Context {
	ctx, cancel := context.WithCancelCause(ctx)
	hd.mu.Lock()
	defer hd.mu.Unlock()
	if hd.cut {
		cancel(errMaxHold) // released by --max-hold already
	} else {
		hd.cutoffs = append(hd.cutoffs, cancel)
	}
	return ctx
}

// overMaxHold runs when the holding reached MaxHold: interrupt what can be
// interrupted, give it IdleTimeout to end, then release and cut off.
func (hd *hold) overMaxHold() {
	s := hd.s
	hd.overdue.Store(true)
	attrs := []any{"service", s.cfg.Name, "route", hd.route, "max_hold", s.cfg.MaxHold}
	if s.cfg.Profile.Name == "generic" {
		s.cfg.Logger.Error("a job held the GPU past --max-hold; a generic backend cannot be interrupted: "+
			"releasing the GPU and cutting its request off", attrs...)
	} else {
		s.cfg.Logger.Warn("a job held the GPU past --max-hold; interrupting it", attrs...)
		deadline := time.Now().Add(s.cfg.IdleTimeout)
		ctx, cancel := context.WithDeadline(context.Background(), deadline)
		if err := s.interrupt(ctx, ""); err != nil {
			s.cfg.Logger.Warn("cannot interrupt the backend's job", append(attrs, "err", err)...)
		}
		select {
		case <-hd.done:
			cancel()
			return // it ended: release counted it as max_hold
		case <-ctx.Done():
		}
		cancel()
		s.cfg.Logger.Error("the job still holds the GPU after its interrupt and --idle-timeout; "+
			"releasing the GPU anyway and cutting its request off", append(attrs, "idle_timeout", s.cfg.IdleTimeout)...)
	}
	hd.release(outcomeMaxHold)
	hd.mu.Lock()
	hd.cut = true
	cutoffs := hd.cutoffs
	hd.mu.Unlock()
	for _, cut := range cutoffs {
		cut(errMaxHold)
	}
}

// maxHoldMessage is the 504 answer of a request cut off by --max-hold.
func (s *Shim) maxHoldMessage() string {
	return fmt.Sprintf("gpulock: the job held GPU %d longer than the shim's --max-hold (%s) and was cut off; "+
		"the GPU was released. Raise --max-hold for longer jobs", s.cfg.GPU, s.cfg.MaxHold)
}
