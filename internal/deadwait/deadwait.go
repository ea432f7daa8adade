// Package deadwait is the one rule by which a new holder of a GPU waits for
// the backend of a holder that died holding the lock: the shim's
// (internal/shim, over net/http) and exec's (internal/execcmd, over a
// loopback socket of its own, so that gpulock-exec stays without the net
// package) both wait through Wait and differ only in how they ask.
//
// A shim killed while its backend runs a job frees the lock, but the
// backend goes on with the job. The shim names its backend in its holder
// description, which a death leaves in the lock file; the next holder
// waits, holding the lock, until that backend reports idle in
// IdleAnswers answers in a row, Poll apart, the last of them at least
// Settle after the wait began (a job that the dead holder forwarded just
// before it died may not show yet). gpulock keeps the dead holder's
// description in the lock file until a holder has seen its backend idle
// (gpulock.Handle.KeepLeftover), so that the wait survives the waiter's
// own death or an abandoned wait.
//
// The package has no net import: keep it so (gpulock-exec links it).
package deadwait

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"time"

	"github.com/gpulock/gpulock/gpulock"
)

const (
	// DefaultTimeout bounds the wait when Options.Timeout is not set:
	// after it, the new holder goes ahead (and logs a warning).
	DefaultTimeout = 2 * time.Minute
	// Poll is the time from one answer to the next question.
	Poll = 100 * time.Millisecond
	// IdleAnswers is how many idle answers in a row, each Poll after the
	// last, make the backend idle.
	IdleAnswers = 2
	// Settle is how long after the wait began a backend that answers must
	// still say idle: the dead holder may have forwarded a job just before
	// it died that the backend does not show yet (a prompt ComfyUI still
	// validates, an A1111 request whose images it still decodes). The lock
	// passed to the waiter when the holder died, so the wait begins at
	// most a moment after that. A backend that stops listening (ErrDown)
	// has no such job: it counts at once.
	Settle = time.Second
)

// Backend is a dead holder's backend, checked, that can be asked.
type Backend interface {
	// Busy reports whether the backend runs or queues a job. An error
	// wrapping ErrDown says that nothing listens there any more (idle);
	// any other error counts as busy.
	Busy(ctx context.Context) (bool, error)
	// Profile is the backend's kind ("comfyui", "a1111"), for logs.
	Profile() string
	// Where is the backend's URL without credentials, for logs.
	Where() string
}

// Check turns the backend a dead holder named (untrusted: anyone who may
// write the lock file may have written it) into one that may be asked. An
// error wrapping ErrCannotAsk says that this program cannot ask it although
// another could: Wait then fails rather than going ahead. Any other error
// says it may not be asked at all: Wait logs it and goes ahead.
type Check func(gpulock.Backend) (Backend, error)

var (
	// ErrDown says that the backend refused the connection.
	ErrDown = errors.New("deadwait: the backend is not listening")
	// ErrBusy says that the backend is busy, when Wait was told not to
	// wait (Options.Once). The handle still shows the dead holder's
	// description: release it, and the next holder waits in turn.
	ErrBusy = errors.New("deadwait: the backend of a holder that died holding the GPU still runs a job")
	// ErrCannotAsk says that a check found a backend this program cannot
	// ask (gpulock-exec and an https one). The handle still shows the dead
	// holder's description: release it, and the next holder waits in turn.
	ErrCannotAsk = errors.New("deadwait: this program cannot ask the dead holder's backend")
)

// Options configures Wait.
type Options struct {
	// Timeout bounds the wait (default DefaultTimeout).
	Timeout time.Duration
	// Logger gets a line when the wait starts and one when it ends
	// (default slog.Default()).
	Logger *slog.Logger
	// Once does not wait for a busy backend: a busy answer gives ErrBusy
	// (gpulock exec --nonblock). An idle one is still asked again, Poll
	// later, until Settle, to be sure.
	Once bool
}

// Wait is called right after h took the lock. If the previous holder ended
// without releasing and named a backend, it waits until check's Backend
// reports idle (or stops listening) in IdleAnswers answers in a row, an
// idle one at least Settle after the wait began, bounded by the timeout,
// and returns how long it waited; h then shows its own description. At
// the timeout it logs a warning and returns nil: the caller goes ahead. If
// ctx ends first, it returns an error wrapping ctx.Err(), and h still
// shows the dead holder's description: the caller releases h, and the
// next holder waits in turn.
func Wait(ctx context.Context, h *gpulock.Handle, check Check, o Options) (time.Duration, error) {
	left, ok := h.Leftover()
	if !ok || left.Backend == nil {
		return 0, nil
	}
	if o.Timeout <= 0 {
		o.Timeout = DefaultTimeout
	}
	if o.Logger == nil {
		o.Logger = slog.Default()
	}
	attrs := []any{"gpu", h.GPU(), "holder", left.Service, "holder_pid", left.PID}
	b, err := check(*left.Backend)
	if errors.Is(err, ErrCannotAsk) {
		h.KeepLeftover(true) // kept already (gpulock does): the next holder waits in turn
		return 0, fmt.Errorf("deadwait: GPU %d: the previous holder died holding it and its backend may still run a job: %w", h.GPU(), err)
	}
	if err != nil {
		o.Logger.Warn("the previous holder of the GPU ended without releasing it and named a backend that is not asked", append(attrs, "err", err)...)
		h.KeepLeftover(false) // nobody could ask it: not passed on
		return 0, nil
	}
	attrs = append(attrs, "profile", b.Profile(), "upstream", b.Where())

	h.KeepLeftover(true) // kept already (gpulock does): if we die or give up now, the next holder waits in turn
	start := time.Now()
	tctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), o.Timeout)
	defer cancel()
	t := time.NewTimer(Poll)
	defer t.Stop()
	logged := false
	idle := 0 // idle answers in a row
	for {
		busy, err := b.Busy(tctx)
		t.Reset(Poll) // the next answer comes a full poll after this one
		if errors.Is(err, ErrDown) || (err == nil && !busy) {
			idle++
		} else {
			idle = 0 // busy, or no clear answer: fail closed
		}
		settled := errors.Is(err, ErrDown) || time.Since(start) >= Settle
		if idle >= IdleAnswers && settled {
			waited := time.Since(start)
			if logged {
				o.Logger.Info("the dead holder's backend is idle; going ahead", append(attrs, "waited", waited.Round(time.Millisecond))...)
			}
			h.KeepLeftover(false)
			return waited, nil
		}
		if o.Once && idle == 0 {
			return 0, fmt.Errorf("%w (%s at %s)", ErrBusy, b.Profile(), b.Where())
		}
		if !logged && idle == 0 {
			o.Logger.Warn("the previous holder of the GPU died holding it while its backend may still run its job; waiting for the backend to be idle",
				append(attrs, "timeout", o.Timeout)...)
			logged = true
		}
		select {
		case <-ctx.Done():
			o.Logger.Info("stopped waiting for the dead holder's backend; the next holder waits for it in turn", attrs...)
			return time.Since(start), fmt.Errorf("deadwait: waiting for the backend of a holder that died on GPU %d: %w", h.GPU(), ctx.Err())
		case <-tctx.Done():
			waited := time.Since(start)
			o.Logger.Warn("the dead holder's backend still reports busy at the timeout; going ahead: its job and the next may overlap",
				append(attrs, "waited", waited.Round(time.Millisecond))...)
			h.KeepLeftover(false)
			return waited, nil
		case <-t.C:
		}
	}
}
