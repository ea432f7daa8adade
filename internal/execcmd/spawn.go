package execcmd

import (
	"errors"
	"io"
	"os"
	"os/exec"
	"runtime"
	"syscall"
)

// A started command for `gpulock exec`.
//
// When gpulock's three streams are files (always, from main), the command
// is started with syscall.StartProcess and reaped with wait4(2): os/exec
// would add its one-off pidfd probe (a fork of its own), a pidfd, and a
// thread blocked in waitid. Other streams (a Runner given buffers) go
// through os/exec, which copies them.

// childExit is how a started command ended.
type childExit struct {
	status syscall.WaitStatus
	err    error // waiting itself failed
}

// spawned is a started command: its pid, and wait, which blocks until
// it has exited and returns how (call it once).
type spawned struct {
	pid  int
	wait func() childExit
}

// spawnChild starts path with args and env, with stdin, stdout and stderr
// as fds 0-2 and extra from fd 3 on, as sys says. It must be called from a
// goroutine locked to its thread (runtime.LockOSThread) that stays locked
// until the command has exited: Linux's parent-death signal belongs to the
// thread that forks. On failure nothing was started.
func spawnChild(path string, args, env []string, stdin io.Reader, stdout, stderr io.Writer, extra []*os.File, sys *syscall.SysProcAttr) (spawned, error) {
	in, okIn := stdin.(*os.File)
	out, okOut := stdout.(*os.File)
	errf, okErr := stderr.(*os.File)
	if !okIn || !okOut || !okErr || in == nil || out == nil || errf == nil {
		return spawnCmd(path, args, env, stdin, stdout, stderr, extra, sys)
	}
	files := append([]*os.File{in, out, errf}, extra...)
	fds := make([]uintptr, len(files))
	for i, f := range files {
		fds[i] = f.Fd()
	}
	pid, _, err := syscall.StartProcess(path, args, &syscall.ProcAttr{Env: env, Files: fds, Sys: sys})
	runtime.KeepAlive(files)
	if err != nil {
		return spawned{}, &os.PathError{Op: "fork/exec", Path: path, Err: err}
	}
	wait := func() childExit {
		// A blocking wait4(2) on the caller's thread: no goroutine
		// parks, so the locked thread hands nothing over meanwhile.
		var ws syscall.WaitStatus
		for {
			_, err := syscall.Wait4(pid, &ws, 0, nil)
			if !errors.Is(err, syscall.EINTR) {
				return childExit{status: ws, err: err}
			}
		}
	}
	return spawned{pid: pid, wait: wait}, nil
}

// spawnCmd is spawnChild through os/exec, for streams that are not files.
func spawnCmd(path string, args, env []string, stdin io.Reader, stdout, stderr io.Writer, extra []*os.File, sys *syscall.SysProcAttr) (spawned, error) {
	cmd := &exec.Cmd{
		Path: path, Args: args, Env: env,
		Stdin: stdin, Stdout: stdout, Stderr: stderr,
		ExtraFiles: extra, SysProcAttr: sys,
	}
	if err := cmd.Start(); err != nil {
		return spawned{}, err
	}
	wait := func() childExit { // also until the streams are copied
		err := cmd.Wait()
		var ee *exec.ExitError
		if err == nil || errors.As(err, &ee) {
			ws, _ := cmd.ProcessState.Sys().(syscall.WaitStatus)
			return childExit{status: ws}
		}
		return childExit{err: err}
	}
	return spawned{pid: cmd.Process.Pid, wait: wait}, nil
}

// exitStatusOf turns the command's end into gpulock's exit code: its own
// code, or 128+N when signal N killed it.
func exitStatusOf(e childExit) error {
	switch {
	case e.err != nil:
		return &ExitError{code: ExitSoftware, msg: "waiting for the command: " + e.err.Error(), err: e.err}
	case e.status.Signaled():
		return silentExit(ExitSignalBase + int(e.status.Signal()))
	case e.status.ExitStatus() == 0:
		return nil
	default:
		return silentExit(e.status.ExitStatus())
	}
}
