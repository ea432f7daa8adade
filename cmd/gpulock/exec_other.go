//go:build !linux

package main

import "syscall"

// childProcAttr puts the child in its own process group, in the terminal's
// foreground when gpulock had it. Without Linux's parent-death signal, a
// child outlives a gpulock killed with SIGKILL.
func childProcAttr(foreground bool) *syscall.SysProcAttr {
	return &syscall.SysProcAttr{
		Setpgid:    true,
		Foreground: foreground,
		Ctty:       0, // the child's stdin, when foreground
	}
}
