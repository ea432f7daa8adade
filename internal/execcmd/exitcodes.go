package execcmd

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
	// ExitOK: success.
	ExitOK = 0
	// ExitUsage: bad command line or environment (unknown command or flag,
	// bad --gpu, missing COMMAND, a bad GPULOCK_* value), or a nested
	// `gpulock exec` asking for a GPU that an enclosing one already holds.
	ExitUsage = 2
	// ExitNoInput (EX_NOINPUT): the lock directory does not exist or is not
	// a directory.
	ExitNoInput = 66
	// ExitUnavailable (EX_UNAVAILABLE): --gpu any found no GPUs, or this
	// system has no flock(2), or `status --redis` cannot reach Redis (the
	// shim and gateway use it for a Redis or a port they cannot have too),
	// or gpulock-exec found that a shim died holding the GPU with an https
	// backend, which it cannot ask (gpulock exec can).
	ExitUnavailable = 69
	// ExitSoftware (EX_SOFTWARE): an internal error (a bug).
	ExitSoftware = 70
	// ExitOSErr (EX_OSERR): the command could not be started for a reason
	// of the system (out of processes or memory, say).
	ExitOSErr = 71
	// ExitCantCreate (EX_CANTCREAT): the lock file cannot be created or
	// used: the lock path is a symlink, a directory, a unix socket or another
	// non-regular file, the lock file has more than one hard link, the queue
	// directory beside it is a symlink or not a directory, or the file
	// system is read-only or full.
	ExitCantCreate = 73
	// ExitIOErr (EX_IOERR): another I/O error on the lock file or directory.
	ExitIOErr = 74
	// ExitTempFail (EX_TEMPFAIL): the default --conflict-exit-code, used
	// when the lock could not be had (--nonblock, --timeout).
	ExitTempFail = 75
	// ExitNoPerm (EX_NOPERM): permission denied on the lock directory or
	// file.
	ExitNoPerm = 77
	// ExitCannotExec: the command was found but cannot be executed (as in
	// POSIX shells).
	ExitCannotExec = 126
	// ExitNotFound: the command was not found (as in POSIX shells).
	ExitNotFound = 127
	// ExitSignalBase: a command killed by signal N gives ExitSignalBase+N;
	// so does gpulock itself when SIGINT, SIGTERM and the like end its wait.
	ExitSignalBase = 128
)

// ExitError is an error that ends gpulock with a given exit code. Its
// message, if any, is printed on stderr as one line after "gpulock: ".
type ExitError struct {
	code int
	msg  string
	err  error
}

// Error is the message, else the cause's.
func (e *ExitError) Error() string {
	if e.msg == "" && e.err != nil {
		return e.err.Error()
	}
	return e.msg
}

// Unwrap is the cause.
func (e *ExitError) Unwrap() error { return e.err }

// NewExitError returns an ExitError with code, message msg and cause err.
func NewExitError(code int, msg string, err error) *ExitError {
	return &ExitError{code: code, msg: msg, err: err}
}

// Code is the exit code.
func (e *ExitError) Code() int { return e.code }

// Exitf returns an ExitError with code and a formatted message.
func Exitf(code int, format string, args ...any) *ExitError {
	return &ExitError{code: code, msg: fmt.Sprintf(format, args...)}
}

// silentExit ends gpulock with code and prints nothing (a child's exit
// code, passed on).
func silentExit(code int) *ExitError { return &ExitError{code: code} }

// UsageError is a bad command line; hint names the help to read.
func UsageError(hint string, format string, args ...any) *ExitError {
	msg := fmt.Sprintf(format, args...)
	if hint != "" {
		msg += " (see '" + hint + "')"
	}
	return &ExitError{code: ExitUsage, msg: msg}
}

// lockErrorCode maps an error of the lock directory or file to its exit
// code.
func lockErrorCode(err error) int {
	switch {
	case errors.Is(err, gpulock.ErrNotRegular), errors.Is(err, gpulock.ErrBadQueueDir),
		errors.Is(err, gpulock.ErrHardLinked):
		return ExitCantCreate
	case errors.Is(err, gpulock.ErrNoGPUs), errors.Is(err, errors.ErrUnsupported):
		return ExitUnavailable
	case errors.Is(err, fs.ErrNotExist), errors.Is(err, syscall.ENOTDIR):
		return ExitNoInput
	case errors.Is(err, fs.ErrPermission):
		return ExitNoPerm
	case errors.Is(err, syscall.EROFS), errors.Is(err, syscall.ENOSPC),
		errors.Is(err, syscall.EDQUOT), errors.Is(err, syscall.EISDIR),
		errors.Is(err, syscall.ELOOP):
		return ExitCantCreate
	default:
		return ExitIOErr
	}
}

// LockError wraps an error of the lock directory or file with its code.
func LockError(err error) *ExitError {
	return &ExitError{code: lockErrorCode(err), msg: LibText(err) + permHint(err), err: err}
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
