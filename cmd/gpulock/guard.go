package main

import (
	"errors"
	"os"
	"os/exec"
	"os/signal"
	"strconv"
	"syscall"
	"time"
)

// The group guard makes a command's whole process group go with a
// `gpulock exec` that is killed, even by SIGKILL, so that the command's
// children do not keep the inherited lock for ever.
//
// The command's parent-death signal (Linux) kills only the command itself.
// So, right after starting the command in its own process group, exec
// starts a guard: the gpulock binary again, as the hidden first argument
// guardArg, in a session of its own (the terminal's signals and job
// control do not reach it), with stdio on /dev/null, holding no lock, and
// with the read end of a pipe whose write end only exec holds. When exec
// ends normally it writes one byte first: the guard exits and leaves the
// group alone (processes that inherited the lock keep it, as documented).
// When exec dies, the guard reads end of file and kills the group: SIGTERM,
// then SIGKILL after guardGrace.
//
// Starting the guard does not wait for its Go runtime to start, so it adds
// only a fork and an exec to exec's start-up (see docs/BENCHMARKS.md).
const (
	guardArg   = "__gpulock-group-guard"
	guardGrace = time.Second
	// guardPoll is how often the guard looks whether the group is gone
	// during the grace: no event tells a process that is not the parent.
	guardPoll = 20 * time.Millisecond
)

// groupGuard is exec's end of a running guard.
type groupGuard struct {
	w   *os.File
	cmd *exec.Cmd
}

// startGroupGuard starts the guard of process group pgid. It returns nil
// when the guard cannot start: the command then runs unguarded, as before.
func startGroupGuard(pgid int) *groupGuard {
	self, err := os.Executable()
	if err != nil {
		return nil
	}
	r, w, err := os.Pipe()
	if err != nil {
		return nil
	}
	cmd := &exec.Cmd{
		Path:        self,
		Args:        []string{self, guardArg, strconv.Itoa(pgid)},
		ExtraFiles:  []*os.File{r}, // fd 3
		SysProcAttr: &syscall.SysProcAttr{Setsid: true},
	}
	err = cmd.Start()
	_ = r.Close()
	if err != nil {
		_ = w.Close()
		return nil
	}
	return &groupGuard{w: w, cmd: cmd}
}

// release tells the guard that exec ends normally. It does not wait for
// the guard to exit (that would add the guard's whole start-up to exec's
// run time): exec exits right after, and the guard, reparented, exits as
// soon as it reads the byte.
func (g *groupGuard) release() {
	if g == nil {
		return
	}
	_, _ = g.w.Write([]byte{'x'})
	_ = g.w.Close()
	_ = g.cmd.Process.Release()
}

// runGuard is the guard process: main calls it when os.Args[1] is
// guardArg. It returns the guard's exit code.
func runGuard(args []string) int {
	if len(args) != 1 {
		return exitUsage
	}
	pgid, err := strconv.Atoi(args[0])
	if err != nil || pgid <= 1 {
		return exitUsage
	}
	// The guard must outlive exec and see the grace through.
	signal.Ignore(syscall.SIGINT, syscall.SIGTERM, syscall.SIGHUP, syscall.SIGQUIT, syscall.SIGPIPE)
	pipe := os.NewFile(3, "guard")
	var b [1]byte
	n, _ := pipe.Read(b[:]) // blocks until exec writes or dies
	if n == 1 {
		return exitOK
	}
	killGroup(pgid, guardGrace)
	return exitOK
}

// killGroup sends SIGTERM to process group pgid, and SIGKILL if it still
// has members after grace.
func killGroup(pgid int, grace time.Duration) {
	if err := syscall.Kill(-pgid, syscall.SIGTERM); errors.Is(err, syscall.ESRCH) {
		return
	}
	deadline := time.Now().Add(grace)
	for time.Now().Before(deadline) {
		if err := syscall.Kill(-pgid, 0); errors.Is(err, syscall.ESRCH) {
			return
		}
		time.Sleep(guardPoll) // polling with a deadline: see guardPoll
	}
	_ = syscall.Kill(-pgid, syscall.SIGKILL)
}
