package execcmd

import "syscall"

// ChildProcAttr puts the child in process group pgid (0: a new one of its
// own), in the terminal's foreground when gpulock had it, and has it killed
// if gpulock dies: Linux's parent-death signal, which fires when the thread
// that started the child ends (see spawnChild).
func ChildProcAttr(foreground bool, pgid int) *syscall.SysProcAttr {
	return &syscall.SysProcAttr{
		Setpgid:    true,
		Pgid:       pgid, // 0: a new group, the child's own
		Foreground: foreground,
		Ctty:       0, // the child's stdin, when foreground
		Pdeathsig:  syscall.SIGKILL,
	}
}
