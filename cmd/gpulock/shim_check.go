package main

import (
	"errors"

	"github.com/gpulock/gpulock/gpulock"
)

// checkShimLock makes sure, before the shim serves, that its lock can be
// taken at all: the lock path is a regular file (or can be created), the
// lock directory lets us create it, and flock(2) works there. It fails with
// the exit code and message `gpulock exec` gives for the same fault, rather
// than a shim that serves and then answers every job with 500. A lock held
// by someone else is fine: it works, it is just busy.
func checkShimLock(l *gpulock.Lock) error {
	h, err := l.TryAcquire()
	switch {
	case err == nil:
		if err := h.Release(); err != nil {
			return lockError(err)
		}
		return nil
	case errors.Is(err, gpulock.ErrBusy):
		return nil
	default:
		return lockError(err)
	}
}
