//go:build !linux

package execcmd

import "syscall"

// streamSocket makes a non-blocking TCP socket that closes on exec. The
// fork lock keeps a concurrent fork from inheriting it before it is marked.
func streamSocket(family int) (int, error) {
	syscall.ForkLock.RLock()
	defer syscall.ForkLock.RUnlock()
	fd, err := syscall.Socket(family, syscall.SOCK_STREAM, 0)
	if err != nil {
		return -1, err
	}
	syscall.CloseOnExec(fd)
	if err := syscall.SetNonblock(fd, true); err != nil {
		_ = syscall.Close(fd)
		return -1, err
	}
	return fd, nil
}
