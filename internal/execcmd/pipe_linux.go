package execcmd

import "syscall"

// cloexecPipe makes a pipe whose ends close on exec, as plain descriptors.
func cloexecPipe(p *[2]int) error {
	return syscall.Pipe2(p[:], syscall.O_CLOEXEC)
}
