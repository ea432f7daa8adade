package main

import (
	"errors"
	"fmt"
	"io/fs"
	"syscall"

	"github.com/gpulock/gpulock/gpulock"
)

// Exit codes of gpulock itself. A command run by `gpulock exec` may exit
// with any code, which gpulock returns as is; the codes below are the ones
// gpulock uses when it cannot run the command or the command did not exit
// normally. The table is repeated in doc.go.
const (
	// exitOK: success.
	exitOK = 0
	// exitUsage: bad command line or environment (unknown command or flag,
	// bad --gpu, missing COMMAND, a bad GPULOCK_* value), or a nested
	// `gpulock exec` asking for a GPU that an enclosing one already holds.
	exitUsage = 2
	// exitNoInput (EX_NOINPUT): the lock directory does not exist or is not
	// a directory.
	exitNoInput = 66
	// exitUnavailable (EX_UNAVAILABLE): --gpu any found no GPUs, or this
	// system has no flock(2), or `status --redis` cannot reach Redis (the
	// shim and gateway use it for a Redis or a port they cannot have too).
	exitUnavailable = 69
	// exitSoftware (EX_SOFTWARE): an internal error (a bug).
	exitSoftware = 70
	// exitOSErr (EX_OSERR): the command could not be started for a reason
	// of the system (out of processes or memory, say).
	exitOSErr = 71
	// exitCantCreate (EX_CANTCREAT): the lock file cannot be created or
	// used: the lock path is a symlink, a directory, a unix socket or another
	// non-regular file, the lock file has more than one hard link, the queue
	// directory beside it is a symlink or not a directory, or the file
	// system is read-only or full.
	exitCantCreate = 73
	// exitIOErr (EX_IOERR): another I/O error on the lock file or directory.
	exitIOErr = 74
	// exitTempFail (EX_TEMPFAIL): the default --conflict-exit-code, used
	// when the lock could not be had (--nonblock, --timeout).
	exitTempFail = 75
	// exitNoPerm (EX_NOPERM): permission denied on the lock directory or
	// file.
	exitNoPerm = 77
	// exitCannotExec: the command was found but cannot be executed (as in
	// POSIX shells).
	exitCannotExec = 126
	// exitNotFound: the command was not found (as in POSIX shells).
	exitNotFound = 127
	// exitSignalBase: a command killed by signal N gives exitSignalBase+N;
	// so does gpulock itself when SIGINT, SIGTERM and the like end its wait.
	exitSignalBase = 128
)

// exitError is an error that ends gpulock with a given exit code. Its
// message, if any, is printed on stderr as one line after "gpulock: ".
type exitError struct {
	code int
	msg  string
	err  error
}

func (e *exitError) Error() string {
	if e.msg == "" && e.err != nil {
		return e.err.Error()
	}
	return e.msg
}

func (e *exitError) Unwrap() error { return e.err }

// exitf returns an exitError with code and a formatted message.
func exitf(code int, format string, args ...any) *exitError {
	return &exitError{code: code, msg: fmt.Sprintf(format, args...)}
}

// silentExit ends gpulock with code and prints nothing (a child's exit
// code, passed on).
func silentExit(code int) *exitError { return &exitError{code: code} }

// usageError is a bad command line; hint names the help to read.
func usageError(hint string, format string, args ...any) *exitError {
	msg := fmt.Sprintf(format, args...)
	if hint != "" {
		msg += " (see '" + hint + "')"
	}
	return &exitError{code: exitUsage, msg: msg}
}

// lockErrorCode maps an error of the lock directory or file to its exit
// code.
func lockErrorCode(err error) int {
	switch {
	case errors.Is(err, gpulock.ErrNotRegular), errors.Is(err, gpulock.ErrBadQueueDir),
		errors.Is(err, gpulock.ErrHardLinked):
		return exitCantCreate
	case errors.Is(err, gpulock.ErrNoGPUs), errors.Is(err, errors.ErrUnsupported):
		return exitUnavailable
	case errors.Is(err, fs.ErrNotExist), errors.Is(err, syscall.ENOTDIR):
		return exitNoInput
	case errors.Is(err, fs.ErrPermission):
		return exitNoPerm
	case errors.Is(err, syscall.EROFS), errors.Is(err, syscall.ENOSPC),
		errors.Is(err, syscall.EDQUOT), errors.Is(err, syscall.EISDIR),
		errors.Is(err, syscall.ELOOP):
		return exitCantCreate
	default:
		return exitIOErr
	}
}

// lockError wraps an error of the lock directory or file with its code.
func lockError(err error) *exitError {
	return &exitError{code: lockErrorCode(err), msg: libText(err) + permHint(err), err: err}
}

// permHint is what to do about a permission denied on the lock directory
// or file: the usual cause is services using different lock directories,
// or one made private to one user.
func permHint(err error) string {
	if !errors.Is(err, fs.ErrPermission) {
		return ""
	}
	return "; every program sharing a GPU needs read and write access to its lock: use one lock directory " +
		"that all can write (--lock-dir or GPULOCK_DIR), e.g. /run/gpulock made by the tmpfiles rule " +
		"in examples/systemd/gpulock.tmpfiles.conf"
}
