package execcmd

import (
	"context"
	"io"
	"log/slog"

	"github.com/gpulock/gpulock/gpulock"
	"github.com/gpulock/gpulock/internal/deadwait"
)

// Runner runs `gpulock exec`: internal/execcli makes it the gpulock
// binary's urfave/cli command, and RunArgs runs it without urfave/cli (the
// gpulock-exec binary). Commands it runs get its three streams.
type Runner struct {
	// Stdin, Stdout and Stderr are gpulock's streams. When all three are
	// *os.File, the command gets them as they are; else through os/exec,
	// which copies them.
	Stdin  io.Reader
	Stdout io.Writer
	Stderr io.Writer
	// ExitAfterRun says that the process exits when the command returns
	// (a main sets it), so that exec need not undo its signal
	// registrations.
	ExitAfterRun bool
	// WaitDeadHolder waits for the backend of a shim that died holding the
	// lock just taken (see DeadHolderWait). It must be set.
	WaitDeadHolder DeadHolderWait
}

// DeadHolderWait is called right after exec took the lock h when the
// previous holder, a shim, died holding it and named its backend
// (h.Leftover().Backend): it waits, holding h, until that backend reports
// idle, or until its own bound, and returns nil; the wait ends early with
// an error wrapping ctx.Err() when ctx ends. With o.Once it asks the
// backend once and returns an error wrapping ErrDeadHolderBusy if it is
// busy. A backend that this build cannot ask (deadwait.ErrCannotAsk) gives
// an error wrapping ErrDeadHolderCannotAsk. It logs to o.Logger.
type DeadHolderWait func(ctx context.Context, h *gpulock.Handle, o DeadHolderOptions) error

// DeadHolderOptions are a DeadHolderWait's options.
type DeadHolderOptions struct {
	// Logger gets a line when the wait starts and one when it ends.
	Logger *slog.Logger
	// Once asks the backend once and does not wait (exec --nonblock).
	Once bool
}

// ErrDeadHolderBusy says that the backend of a shim that died holding the
// GPU still runs a job, when a DeadHolderWait was told not to wait.
var ErrDeadHolderBusy = deadwait.ErrBusy

// ErrDeadHolderCannotAsk says that this build cannot ask the backend of a
// shim that died holding the GPU (gpulock-exec and an https backend).
var ErrDeadHolderCannotAsk = deadwait.ErrCannotAsk

// GuardArg, as a binary's first argument, makes it the group guard's
// killing half: a main that runs exec must call RunGuard with the
// arguments after it and exit with its code before anything else (the
// guard execs os.Executable with it, see guard.go).
const GuardArg = guardArg

// RunGuard is the group guard process (see GuardArg) and returns its exit
// code.
func RunGuard(args []string) int { return runGuard(args) }
