package execcmd

import (
	"os"
	"os/signal"
	"syscall"
	"time"

	"golang.org/x/sys/unix"
)

// The group guard makes a command's whole process group go with a
// `gpulock exec` that is killed, even by SIGKILL, so that the command's
// children do not keep the inherited lock for ever.
//
// The command's parent-death signal (Linux) kills only the command itself.
// So, before it starts the command, exec starts a guard: /bin/sh running
// guardScript (or, where /bin/sh cannot start, the gpulock binary again, as
// the hidden first argument guardArg), in a new process group of its own,
// with stdio on /dev/null, holding no lock. The command then
// joins the guard's group: the group to kill exists, and the guard knows
// it, before the command runs, so there is no moment in which the command
// (or a child it starts) runs unguarded. A guard told the group only after
// the command had started was not enough: under load the command runs,
// and starts children, long before exec's thread runs again.
//
// The guard holds the read end of a pipe whose write end only exec holds.
// When exec ends normally it writes guardRelease first: the guard exits
// and leaves the group alone (processes that inherited the lock keep it,
// as documented). When exec dies, the guard reads end of file and kills
// the group: SIGTERM, then SIGKILL after GuardGrace.
//
// The guard is in the command's group, so it gets the group's signals
// (the terminal's, and those exec passes on): it ignores them. Until it
// has started (half a millisecond for the shell), it could still die of one;
// so exec waits for the guard's word on a second pipe (guardReady) before
// it passes a signal on, and only then. A Ctrl-C typed within that
// moment can still kill the guard; the command then runs guarded by its
// parent-death signal only, as without a guard. Starting the guard does
// not wait for it, so it adds only a fork and an exec to exec's start-up,
// and the shell's half a millisecond of CPU (see docs/BENCHMARKS.md).
const (
	guardArg     = "__gpulock-group-guard"
	guardRelease = 'x'
	guardReady   = 'r'
	GuardGrace   = time.Second
	// guardPoll is how often the guard looks whether the group is gone
	// during the grace: no event tells a process that is not the parent.
	guardPoll = 20 * time.Millisecond
	// guardReadyTimeout bounds exec's wait for the guard's word.
	guardReadyTimeout = 2 * time.Second
	// guardKillArg, after guardArg, runs only the killing half of the
	// guard (see guardScript).
	guardKillArg = "kill"
	// guardShell runs guardScript.
	guardShell = "/bin/sh"
)

// guardScript is the guard's waiting half, run by guardShell with $1 the
// gpulock binary: a shell starts in a tenth of the time and memory of a
// Go program, and this half runs on every exec. It ignores the group's
// signals (guardIgnored), says so on fd 4, and waits on fd 3: the byte
// guardRelease ends it, end of file (exec died) makes it exec gpulock's
// killing half, which keeps the ignored signals ignored.
const guardScript = `trap '' INT TERM HUP QUIT USR1 USR2 PIPE TSTP TTIN TTOU
printf ` + string(guardReady) + ` >&4
exec 4>&-
b=
IFS= read -r b <&3
[ "$b" = ` + string(guardRelease) + ` ] && exit 0
exec "$1" ` + guardArg + ` ` + guardKillArg

// guardIgnored are the signals the guard ignores: all that a terminal or
// exec may send to the group and that would end or stop it.
var guardIgnored = []os.Signal{
	syscall.SIGINT, syscall.SIGTERM, syscall.SIGHUP, syscall.SIGQUIT,
	syscall.SIGUSR1, syscall.SIGUSR2, syscall.SIGPIPE,
	syscall.SIGTSTP, syscall.SIGTTIN, syscall.SIGTTOU,
}

// GroupGuard is exec's end of a running guard. Its pipes are plain
// descriptors, not *os.File: they need no poller, and starting the guard
// with syscall.StartProcess skips os/exec's one-off pidfd probe (a fork of
// its own) and its /dev/null opens (see docs/BENCHMARKS.md, round 4).
type GroupGuard struct {
	w     int // exec's end of the release pipe
	ready int // exec's end of the ready pipe; -1 once read
	pid   int
}

// StartGroupGuard starts a guard in a new process group. It returns nil
// when the guard cannot start: the command then runs in a group of its
// own, unguarded, as before.
func StartGroupGuard() *GroupGuard {
	self, err := os.Executable()
	if err != nil {
		return nil
	}
	var release, ready [2]int
	if err := cloexecPipe(&release); err != nil {
		return nil
	}
	if err := cloexecPipe(&ready); err != nil {
		closeFDs(release[0], release[1])
		return nil
	}
	null, err := syscall.Open(os.DevNull, syscall.O_RDWR|syscall.O_CLOEXEC, 0)
	if err != nil {
		closeFDs(release[0], release[1], ready[0], ready[1])
		return nil
	}
	// stdio on /dev/null; fd 3 the release pipe, fd 4 the ready pipe
	attr := &syscall.ProcAttr{
		Env:   os.Environ(),
		Files: []uintptr{uintptr(null), uintptr(null), uintptr(null), uintptr(release[0]), uintptr(ready[1])},
		Sys:   &syscall.SysProcAttr{Setpgid: true},
	}
	pid, _, err := syscall.StartProcess(guardShell, []string{guardArg, "-c", guardScript, guardArg, self}, attr)
	if err != nil {
		pid, _, err = syscall.StartProcess(self, []string{self, guardArg}, attr)
	}
	closeFDs(null, release[0], ready[1])
	if err != nil {
		closeFDs(release[1], ready[0])
		return nil
	}
	return &GroupGuard{w: release[1], ready: ready[0], pid: pid}
}

// closeFDs closes descriptors that this file opened.
func closeFDs(fds ...int) {
	for _, fd := range fds {
		_ = syscall.Close(fd)
	}
}

// PGID is the guard's process group, which the command is to join; 0 for
// no guard (the command then makes a group of its own).
func (g *GroupGuard) PGID() int {
	if g == nil {
		return 0
	}
	return g.pid
}

// WaitReady waits, once and for at most guardReadyTimeout, until the guard
// ignores the group's signals.
func (g *GroupGuard) WaitReady() {
	if g == nil || g.ready < 0 {
		return
	}
	fds := []unix.PollFd{{Fd: int32(g.ready), Events: unix.POLLIN}}
	deadline := time.Now().Add(guardReadyTimeout)
	for {
		left := time.Until(deadline)
		if left <= 0 {
			break
		}
		n, err := unix.Poll(fds, int(left.Milliseconds())+1)
		if err == syscall.EINTR {
			continue
		}
		if n > 0 {
			var b [1]byte
			_, _ = syscall.Read(g.ready, b[:]) // the byte, or end of file if the guard died
		}
		break
	}
	closeFDs(g.ready)
	g.ready = -1
}

// Release tells the guard that exec ends normally. It does not wait for
// the guard to exit (that would add the guard's whole start-up to exec's
// run time): exec exits right after, and the guard, reparented, exits as
// soon as it reads the byte.
func (g *GroupGuard) Release() {
	if g == nil {
		return
	}
	_, _ = syscall.Write(g.w, []byte{guardRelease})
	closeFDs(g.w)
	if g.ready >= 0 {
		closeFDs(g.ready)
		g.ready = -1
	}
}

// runGuard is the guard process: main calls it when os.Args[1] is
// guardArg. With no more arguments it is the whole guard (when /bin/sh
// could not be started); with guardKillArg it is the shell guard's second
// half, which kills the group. It returns the guard's exit code.
func runGuard(args []string) int {
	switch {
	case len(args) == 1 && args[0] == guardKillArg:
		// The shell ignored the signals, and ignored signals stay
		// ignored across exec, save those the Go runtime handles itself
		// until this line.
		signal.Ignore(guardIgnored...)
		KillGroup(syscall.Getpgrp(), GuardGrace)
		return ExitOK
	case len(args) != 0:
		return ExitUsage
	}
	// The guard must outlive exec and see the grace through.
	signal.Ignore(guardIgnored...)
	ready := os.NewFile(4, "guard-ready")
	_, _ = ready.Write([]byte{guardReady})
	_ = ready.Close()
	pipe := os.NewFile(3, "guard")
	var b [1]byte
	n, _ := pipe.Read(b[:]) // blocks until exec writes or dies
	if n == 1 {
		return ExitOK
	}
	KillGroup(syscall.Getpgrp(), GuardGrace)
	return ExitOK
}

// KillGroup sends SIGTERM to process group pgid, the guard's own, and
// SIGKILL (the guard included) if it still has other members after grace.
func KillGroup(pgid int, grace time.Duration) {
	_ = syscall.Kill(-pgid, syscall.SIGTERM) // the guard ignores it
	deadline := time.Now().Add(grace)
	for time.Now().Before(deadline) {
		if !groupHasOthers(pgid) {
			return
		}
		time.Sleep(guardPoll) // polling with a deadline: see guardPoll
	}
	_ = syscall.Kill(-pgid, syscall.SIGKILL)
}
