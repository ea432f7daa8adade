package execcmd

import (
	"os"
	"testing"
)

// TestMain lets the test binary be the group guard's killing half, which
// the guard runs as os.Executable (see guard.go), as a main must.
func TestMain(m *testing.M) {
	if len(os.Args) > 1 && os.Args[1] == GuardArg {
		os.Exit(RunGuard(os.Args[2:]))
	}
	os.Exit(m.Run())
}

// processLives reports whether pid is a process that has not exited (a
// zombie counts as gone).
func processLives(pid int) bool {
	_, ok := procGroup(pid)
	return ok
}
