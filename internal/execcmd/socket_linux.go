package execcmd

import "syscall"

// streamSocket makes a non-blocking TCP socket that closes on exec.
func streamSocket(family int) (int, error) {
	return syscall.Socket(family, syscall.SOCK_STREAM|syscall.SOCK_CLOEXEC|syscall.SOCK_NONBLOCK, 0)
}
