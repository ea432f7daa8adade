package main

import "syscall"

// childProcAttr puts the child in its own process group, in the terminal's
// foreground when gpulock had it, and has it killed if gpulock dies:
// Linux's parent-death signal, which fires when the thread that started the
// child ends (see runChild).
func childProcAttr(foreground bool) *syscall.SysProcAttr {
	return &syscall.SysProcAttr{
		Setpgid:    true,
		Foreground: foreground,
		Ctty:       0, // the child's stdin, when foreground
		Pdeathsig:  syscall.SIGKILL,
	}
}
