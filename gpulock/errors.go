package gpulock

import (
	"errors"
	"fmt"
	"strings"
)

// ErrBusy is returned, wrapped, by TryAcquire when the lock is held or other
// waiters are ahead in line. Test for it with errors.Is.
var ErrBusy = errors.New("gpulock: lock is busy")

// ErrInvalidName is returned, wrapped, for a lock name or GPU number that
// cannot name a lock file.
var ErrInvalidName = errors.New("gpulock: invalid lock name")

// ErrNotRegular is returned, wrapped in an *fs.PathError, when the lock path
// is a symlink, a directory or another non-regular file.
var ErrNotRegular = errors.New("not a regular file (gpulock never follows symlinks at the lock path; remove it or pick another lock directory)")

// ErrNoGPUs is returned, wrapped, by ParseGPUSet and DetectGPUs when "any"
// GPU was asked for and none can be found on this machine.
var ErrNoGPUs = errors.New("gpulock: no GPUs found (looked for /dev/nvidia[0-9]* and /proc/driver/nvidia/gpus); set GPULOCK_GPUS=<count> to say how many there are")

// ErrInvalidGPUSet is returned, wrapped, by ParseGPUSet for text that is not
// a GPU set.
var ErrInvalidGPUSet = errors.New("gpulock: invalid GPU set (want a number like 0, a list like 0,2,3, a range like 0-3, or any)")

// errUnsupported is what every lock operation returns where flock(2) does not exist.
var errUnsupported = fmt.Errorf("gpulock: file locking is not supported on this system: %w", errors.ErrUnsupported)

// isWouldBlock reports whether err is the "lock is held" answer of a
// non-blocking flock.
func isWouldBlock(err error) bool { return errors.Is(err, errWouldBlock) }

// quote puts a user-supplied value into an error message.
func quote(s string) string {
	if s == "" || strings.ContainsAny(s, " \t\n\"'") {
		return fmt.Sprintf("%q", s)
	}
	return s
}

// ErrBadQueueDir is returned, wrapped in an *fs.PathError, when the queue
// directory beside a lock file (gpu<N>.queue) is a symlink or not a
// directory. gpulock never follows it, never touches what it points to, and
// refuses to queue there.
var ErrBadQueueDir = errors.New("queue directory is a symlink or not a directory (gpulock never follows symlinks in the lock directory; remove it, and see README on who may write the lock directory)")
