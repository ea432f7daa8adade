//go:build !linux

package execcmd

import "syscall"

// cloexecPipe makes a pipe whose ends close on exec, as plain descriptors.
// Without pipe2(2), the fork lock keeps a concurrent fork from inheriting
// the ends before they are marked.
func cloexecPipe(p *[2]int) error {
	syscall.ForkLock.RLock()
	defer syscall.ForkLock.RUnlock()
	if err := syscall.Pipe(p[:]); err != nil {
		return err
	}
	syscall.CloseOnExec(p[0])
	syscall.CloseOnExec(p[1])
	return nil
}
