package execcmd

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"syscall"

	"github.com/gpulock/gpulock/gpulock"
)

// waitDeadHolder makes exec, once it holds the lock, first wait for the
// backend of a shim that died holding it (see DeadHolderWait): the
// backend may still run the dead shim's job. A forwarded signal ends the
// wait: the lock is released (the next holder waits in turn) and exec
// exits 128+N. With --nonblock it does not wait: a busy backend makes
// exec release the lock and exit with the conflict code. A backend this
// build cannot ask (gpulock-exec, an https one) makes exec release the lock
// and exit 69 without running the command: it never guesses idle.
func (a *Runner) waitDeadHolder(ctx context.Context, o execOptions, h *gpulock.Handle, fw *forwarding) error {
	if left, ok := h.Leftover(); !ok || left.Backend == nil {
		return nil // the usual case: no goroutine, no logger
	}
	if a.WaitDeadHolder == nil {
		_ = h.Release()
		return Exitf(ExitSoftware, "GPU %d: the previous holder died holding it, and this build cannot wait for its backend", h.GPU())
	}
	sigs := fw.signals()
	level := slog.LevelInfo
	if o.quiet {
		level = slog.LevelWarn
	}
	logger := slog.New(slog.NewTextHandler(a.Stderr, &slog.HandlerOptions{Level: level, ReplaceAttr: dropTime}))
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	done := make(chan error, 1)
	go func() {
		done <- a.WaitDeadHolder(ctx, h, DeadHolderOptions{Logger: logger, Once: o.nonblock})
	}()
	var sig os.Signal
	var err error
	select {
	case err = <-done:
	case sig = <-sigs:
		cancel()
		err = <-done
	}
	if err == nil {
		return nil
	}
	_ = h.Release()
	if errors.Is(err, ErrDeadHolderBusy) {
		return Exitf(o.conflictCode, "GPU %d busy: the backend of a shim that died holding it still runs a job", h.GPU())
	}
	if errors.Is(err, ErrDeadHolderCannotAsk) {
		return NewExitError(ExitUnavailable, fmt.Sprintf("GPU %d not used: a shim died holding it, and this build cannot ask whether its backend still runs a job (%s): run gpulock exec, which can", h.GPU(), deadBackendWhere(h)), err)
	}
	if s, ok := sig.(syscall.Signal); ok {
		return Exitf(ExitSignalBase+int(s), "%s while waiting for the backend of a shim that died holding GPU %d", signalName(s), h.GPU())
	}
	return Exitf(ExitSoftware, "waiting for the backend of a shim that died holding GPU %d: %v", h.GPU(), err)
}

// dropTime leaves the time out of exec's log lines, as of its other notices.
func dropTime(groups []string, a slog.Attr) slog.Attr {
	if len(groups) == 0 && a.Key == slog.TimeKey {
		return slog.Attr{}
	}
	return a
}

// deadBackendWhere is the upstream a dead holder named, for a message.
func deadBackendWhere(h *gpulock.Handle) string {
	if left, ok := h.Leftover(); ok && left.Backend != nil {
		return Printable(left.Backend.Upstream)
	}
	return "no backend named"
}
