//go:build linux || darwin

package execcmd

import (
	"os"
	"os/signal"
	"syscall"

	"golang.org/x/sys/unix"
)

// IsTerminal reports whether fd is a terminal.
func IsTerminal(fd int) bool {
	_, err := unix.IoctlGetTermios(fd, ioctlReadTermios)
	return err == nil
}

// inForeground reports whether fd is a terminal whose foreground process
// group is ours: only then may a child take the terminal over.
func inForeground(fd int) bool {
	if !IsTerminal(fd) {
		return false
	}
	pgrp, err := unix.IoctlGetInt(fd, unix.TIOCGPGRP)
	return err == nil && pgrp == unix.Getpgrp()
}

// takeForeground makes our process group the terminal's foreground group
// again after a child that had it has exited. SIGTTOU is ignored meanwhile,
// as tcsetpgrp(3) from a background group requires.
func takeForeground(fd int) {
	signal.Ignore(syscall.SIGTTOU)
	defer signal.Reset(syscall.SIGTTOU)
	_ = unix.IoctlSetPointerInt(fd, unix.TIOCSPGRP, unix.Getpgrp())
}

// FDOf returns the descriptor of a stream that is an *os.File, or -1.
func FDOf(v any) int {
	if f, ok := v.(*os.File); ok && f != nil {
		return int(f.Fd())
	}
	return -1
}
