package gpulock

import (
	"errors"
	"io/fs"
	"os"
	"syscall"
)

// ErrHardLinked is returned, wrapped in an *fs.PathError, when the lock
// file has more than one hard link. Another name of the same file may be
// somebody else's file (a hard link planted in a shared lock directory),
// which the holder description would overwrite.
var ErrHardLinked = errors.New("lock file has more than one hard link (gpulock refuses it: its other name may be another user's file, which the holder line would overwrite; remove it, and see README on who may write the lock directory)")

// badPathError says what is at a lock path that is not a usable lock file.
// errors.Is matches it with ErrNotRegular, whatever its text.
type badPathError struct{ what string }

func (e *badPathError) Error() string { return e.what }

// Is makes every badPathError an ErrNotRegular.
func (e *badPathError) Is(target error) bool { return target == ErrNotRegular }

// errSymlink is the answer for a symlink at a path gpulock opens.
var errSymlink error = &badPathError{"is a symlink (gpulock never follows symlinks in the lock directory; remove it or pick another lock directory)"}

// notRegular says what the non-regular file of the given mode is.
func notRegular(mode fs.FileMode) error {
	const fix = " (remove it or pick another lock directory)"
	switch {
	case mode&fs.ModeSymlink != 0:
		return errSymlink
	case mode.IsDir():
		return &badPathError{"is a directory, not a lock file" + fix}
	case mode&fs.ModeNamedPipe != 0:
		return &badPathError{"is a named pipe (FIFO), not a regular file" + fix}
	case mode&fs.ModeSocket != 0:
		return &badPathError{"is a unix socket, not a regular file" + fix}
	case mode&fs.ModeDevice != 0:
		return &badPathError{"is a device, not a regular file" + fix}
	default:
		return &badPathError{"is not a regular file" + fix}
	}
}

// badOpen turns the error of opening path into one that says what is
// there when the open failed for the file's type: EISDIR (a directory
// opened for writing) or ENXIO (a unix socket). A symlink is already
// errSymlink (openNoFollow); other errors are returned as they are.
func badOpen(path string, err error) error {
	if !errors.Is(err, syscall.EISDIR) && !errors.Is(err, syscall.ENXIO) {
		return err
	}
	if fi, lerr := os.Lstat(path); lerr == nil && !fi.Mode().IsRegular() {
		return &fs.PathError{Op: "open", Path: path, Err: notRegular(fi.Mode())}
	}
	return err
}

// checkLockFileInfo refuses an open lock file that is not a regular file
// or that has more than one hard link.
func checkLockFileInfo(path string, fi fs.FileInfo) error {
	if !fi.Mode().IsRegular() {
		return &fs.PathError{Op: "open", Path: path, Err: notRegular(fi.Mode())}
	}
	if linkCount(fi) > 1 {
		return &fs.PathError{Op: "open", Path: path, Err: ErrHardLinked}
	}
	return nil
}

// queueDirError says what is wrong at a queue directory's path. errors.Is
// matches it with ErrBadQueueDir.
type queueDirError struct{ what string }

func (e *queueDirError) Error() string { return e.what }

// Is makes every queueDirError an ErrBadQueueDir.
func (e *queueDirError) Is(target error) bool { return target == ErrBadQueueDir }

var (
	errQueueDirSymlink error = &queueDirError{"queue directory is a symlink (gpulock never follows symlinks in the lock directory; remove it, and see README on who may write the lock directory)"}
	errQueueDirNotDir  error = &queueDirError{"queue directory is not a directory (remove it, and see README on who may write the lock directory)"}
)
