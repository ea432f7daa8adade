package simgpu

import (
	"errors"

	"golang.org/x/sys/unix"
)

// processAlive reports whether a process with this pid exists. A process we
// may not signal (EPERM) exists.
func processAlive(pid int) bool {
	if pid <= 0 {
		return false
	}
	err := unix.Kill(pid, 0)
	return err == nil || errors.Is(err, unix.EPERM)
}
