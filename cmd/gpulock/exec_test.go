package main

import (
	"encoding/json"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/gpulock/gpulock/gpulock"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func TestUsageErrors(t *testing.T) {
	e := newEnv(t)
	tests := []struct {
		name string
		env  []string
		args []string
		want string
	}{
		{"no command", nil, nil, "no command given"},
		{"unknown command", nil, []string{"frobnicate"}, `unknown command "frobnicate"`},
		{"unknown flag", nil, []string{"exec", "--bogus", "--", "true"}, "unknown flag --bogus"},
		{"unknown global flag", nil, []string{"--bogus", "status"}, "unknown flag --bogus"},
		{"flag without value", nil, []string{"exec", "--gpu"}, "--gpu needs a value"},
		{"gpu abc", nil, []string{"exec", "--gpu", "abc", "--", "true"}, "invalid GPU set"},
		{"gpu -1", nil, []string{"exec", "--gpu", "-1", "--", "true"}, "--gpu -1: negative numbers are not GPUs"},
		{"gpu -1 in a set", nil, []string{"exec", "--gpu", "0,-1", "--", "true"}, "negative numbers are not GPUs"},
		{"env gpu abc", []string{"GPULOCK_GPU=abc"}, []string{"exec", "--", "true"}, "GPULOCK_GPU=abc: invalid GPU set"},
		{"gpu too big", nil, []string{"exec", "--gpu", "5000", "--", "true"}, "out of range"},
		{"missing command", nil, []string{"exec", "--gpu", "0"}, "missing COMMAND"},
		{"missing command after --", nil, []string{"exec", "--"}, "missing COMMAND"},
		{"negative timeout", nil, []string{"exec", "--timeout", "-1s", "--", "true"}, "negative"},
		{"bad timeout", nil, []string{"exec", "--timeout", "soon", "--", "true"}, "--timeout soon: not a duration"},
		{"timeout without unit", nil, []string{"exec", "--timeout", "5", "--", "true"}, "--timeout 5: needs a unit, e.g. 5s"},
		{"env timeout without unit", []string{"GPULOCK_TIMEOUT=5"}, []string{"exec", "--", "true"}, "GPULOCK_TIMEOUT=5: needs a unit, e.g. 5s"},
		{"bad short flag value", nil, []string{"exec", "-E", "x", "--", "true"}, "-E x: not a valid value"},
		{"bad conflict code", nil, []string{"exec", "-E", "300", "--", "true"}, "out of range 0-255"},
		{"bad env bool", []string{"GPULOCK_NONBLOCK=maybe"}, []string{"exec", "--", "true"}, "GPULOCK_NONBLOCK=maybe: not a boolean"},
		{"shim without flags", nil, []string{"shim"}, "missing --listen and --upstream"},
		{"shim listen port only", nil, []string{"shim", "--listen", "13189", "--upstream", "http://127.0.0.1:1"}, "give host:port, e.g. 127.0.0.1:13189"},
		{"shim gpu abc", nil, []string{"shim", "--gpu", "abc", "--listen", "127.0.0.1:0", "--upstream", "http://127.0.0.1:1"}, "--gpu abc: not a GPU number"},
		{"shim gpu -1", nil, []string{"shim", "--gpu", "-1", "--listen", "127.0.0.1:0", "--upstream", "http://127.0.0.1:1"}, "negative numbers are not GPUs"},
		{"shim env gpu any", []string{"GPULOCK_GPU=any"}, []string{"shim", "--listen", "127.0.0.1:0", "--upstream", "http://127.0.0.1:1"}, "GPULOCK_GPU=any: the shim serves one GPU"},
		{"shim max-hold without unit", nil, []string{"shim", "--max-hold", "5", "--listen", "127.0.0.1:0", "--upstream", "http://127.0.0.1:1"}, "--max-hold 5: needs a unit"},
		{"shim bad max-body", nil, []string{"shim", "--max-body", "lots", "--listen", "127.0.0.1:0", "--upstream", "http://127.0.0.1:1"}, "--max-body lots: not a size"},
		{"status gpu abc", nil, []string{"status", "--gpu", "abc"}, "invalid GPU set"},
		{"empty lock dir", nil, []string{"exec", "--lock-dir", "", "--", "true"}, `--lock-dir "": needs a directory`},
		{"empty global lock dir", nil, []string{"--lock-dir", "", "status"}, `--lock-dir "": needs a directory`},
		{"status argument", nil, []string{"status", "extra"}, `unexpected argument "extra"`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, stderr, code := e.with(tt.env...).run(tt.args...)
			assert.Equal(t, exitUsage, code, "stderr: %s", stderr)
			line := requireOneLine(t, stderr)
			assert.Contains(t, line, tt.want)
			assert.True(t, strings.HasPrefix(line, "gpulock: "), line)
			assert.Contains(t, line, "--help", "a usage error names the help to read")
		})
	}
}

func TestExitCodes(t *testing.T) {
	e := newEnv(t)
	notExec := filepath.Join(t.TempDir(), "notexec")
	require.NoError(t, os.WriteFile(notExec, []byte("#!/bin/sh\n"), 0o644))
	tests := []struct {
		name    string
		args    []string
		code    int
		message string
	}{
		{"success", []string{"true"}, 0, ""},
		{"child code", []string{"sh", "-c", "exit 7"}, 7, ""},
		{"child killed by signal", []string{"sh", "-c", "kill -TERM $$"}, 128 + int(syscall.SIGTERM), ""},
		{"child killed by SIGKILL", []string{"sh", "-c", "kill -KILL $$"}, 128 + int(syscall.SIGKILL), ""},
		{"not found", []string{"no-such-command-gpulock"}, exitNotFound, "command not found"},
		{"not found with path", []string{"/no/such/command"}, exitNotFound, "command not found"},
		{"not executable", []string{notExec}, exitCannotExec, "cannot execute"},
		{"directory", []string{t.TempDir()}, exitCannotExec, "cannot execute"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, stderr, code := e.run(append([]string{"exec", "-q", "--"}, tt.args...)...)
			assert.Equal(t, tt.code, code, "stderr: %s", stderr)
			if tt.message == "" {
				assert.Empty(t, stderr)
			} else {
				assert.Contains(t, requireOneLine(t, stderr), tt.message)
			}
		})
	}
}

func TestLockDirErrors(t *testing.T) {
	e := newEnv(t)
	file := filepath.Join(t.TempDir(), "file")
	require.NoError(t, os.WriteFile(file, nil, 0o644))
	symDir := t.TempDir()
	require.NoError(t, os.Symlink(file, filepath.Join(symDir, "gpu0.lock")))
	dirDir := t.TempDir()
	require.NoError(t, os.Mkdir(filepath.Join(dirDir, "gpu0.lock"), 0o755))
	fifoDir := t.TempDir()
	require.NoError(t, syscall.Mkfifo(filepath.Join(fifoDir, "gpu0.lock"), 0o666))
	sockDir := t.TempDir()
	ln, err := net.Listen("unix", filepath.Join(sockDir, "gpu0.lock"))
	require.NoError(t, err)
	t.Cleanup(func() { ln.Close() })
	linkDir := t.TempDir()
	require.NoError(t, os.Link(file, filepath.Join(linkDir, "gpu0.lock")))
	tests := []struct {
		name string
		args []string
		code int
		want string
	}{
		{"missing", []string{"exec", "--lock-dir", "/no/such/dir", "--", "true"}, exitNoInput, "no such file or directory"},
		{"missing, global flag", []string{"--lock-dir", "/no/such/dir", "exec", "--", "true"}, exitNoInput, "/no/such/dir"},
		{"a file", []string{"exec", "--lock-dir", file, "--", "true"}, exitNoInput, "not a directory"},
		{"lock path a symlink", []string{"exec", "--lock-dir", symDir, "--", "true"}, exitCantCreate, "is a symlink"},
		{"lock path a directory", []string{"exec", "--lock-dir", dirDir, "--", "true"}, exitCantCreate, "is a directory"},
		{"lock path a fifo", []string{"exec", "--lock-dir", fifoDir, "--", "true"}, exitCantCreate, "is a named pipe"},
		{"lock path a socket", []string{"exec", "--lock-dir", sockDir, "--", "true"}, exitCantCreate, "is a unix socket"},
		{"lock file hard-linked", []string{"exec", "--lock-dir", linkDir, "--", "true"}, exitCantCreate, "more than one hard link"},
		{"status, missing", []string{"status", "--lock-dir", "/no/such/dir"}, exitNoInput, "no such file or directory"},
		{"status, a file", []string{"status", "--lock-dir", file}, exitNoInput, "not a directory"},
		{"status, symlink", []string{"status", "--lock-dir", symDir}, exitCantCreate, "is a symlink"},
		{"status, socket", []string{"status", "--lock-dir", sockDir}, exitCantCreate, "is a unix socket"},
		{"status, hard link", []string{"status", "--lock-dir", linkDir}, exitCantCreate, "more than one hard link"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, stderr, code := e.run(tt.args...)
			assert.Equal(t, tt.code, code, "stderr: %s", stderr)
			assert.Contains(t, requireOneLine(t, stderr), tt.want)
			if tt.want != "is a symlink" {
				assert.NotContains(t, stderr, "symlink", "only a symlink is called one")
			}
		})
	}
}

// TestLockDirNotWritable runs gpulock as user nobody in a directory only
// root may write (root itself bypasses permissions).
func TestLockDirNotWritable(t *testing.T) {
	e := newEnv(t)
	c := e.cmd("exec", "--lock-dir", e.dir, "--", "true")
	if os.Geteuid() == 0 {
		require.NoError(t, os.Chmod(e.dir, 0o755))
		// The test's temporary directories above e.dir must be searchable.
		for d := filepath.Dir(e.dir); d != "/" && strings.HasPrefix(d, os.TempDir()+"/"); d = filepath.Dir(d) {
			require.NoError(t, os.Chmod(d, 0o755))
		}
		c.SysProcAttr.Credential = &syscall.Credential{Uid: 65534, Gid: 65534}
	} else {
		require.NoError(t, os.Chmod(e.dir, 0o555))
		t.Cleanup(func() { _ = os.Chmod(e.dir, 0o755) })
	}
	out, err := c.CombinedOutput()
	require.Error(t, err, "output: %s", out)
	assert.Equal(t, exitNoPerm, c.ProcessState.ExitCode(), "output: %s", out)
	line := requireOneLine(t, string(out))
	assert.Contains(t, line, "permission denied")
	assert.Contains(t, line, "--lock-dir or GPULOCK_DIR", "says what to do")
	assert.Contains(t, line, "tmpfiles")
}

func TestNonblockConflict(t *testing.T) {
	e := newEnv(t)
	holder := e.hold(0, "comfyui")

	_, stderr, code := e.run("exec", "--nonblock", "--", "true")
	assert.Equal(t, exitTempFail, code)
	line := requireOneLine(t, stderr)
	assert.Contains(t, line, "GPU 0 is busy")
	assert.Contains(t, line, "held by comfyui (pid "+strconv.Itoa(holder.cmd.Process.Pid))
	assert.Regexp(t, `for \d+s`, line)

	_, _, code = e.run("exec", "-n", "--conflict-exit-code", "9", "--", "true")
	assert.Equal(t, 9, code)
	_, _, code = e.with("GPULOCK_CONFLICT_EXIT_CODE=11", "GPULOCK_NONBLOCK=1").run("exec", "--", "true")
	assert.Equal(t, 11, code, "flags settable by environment")

	// A free GPU of the set is taken at once.
	out, stderr, code := e.run("exec", "-n", "--gpu", "0-1", "--", "sh", "-c", "echo $GPULOCK_HELD_GPU")
	assert.Equal(t, 0, code, stderr)
	assert.Equal(t, "1\n", out)
}

func TestTimeout(t *testing.T) {
	e := newEnv(t)
	e.hold(0, "holder")
	_, stderr, code := e.run("exec", "--timeout", "200ms", "--", "true")
	assert.Equal(t, exitTempFail, code)
	lines := strings.Split(strings.TrimSpace(stderr), "\n")
	require.Len(t, lines, 2, stderr) // the wait starts, the wait ends
	assert.Contains(t, lines[0], "waiting for GPU 0: held by holder (pid")
	assert.Contains(t, lines[1], "timed out after 200ms waiting for GPU 0: held by holder")

	_, stderr, code = e.run("exec", "-q", "--timeout", "100ms", "-E", "3", "--", "true")
	assert.Equal(t, 3, code)
	assert.Contains(t, requireOneLine(t, stderr), "timed out", "--quiet silences the waiting line only")
}

func TestFlockInterop(t *testing.T) {
	e := newEnv(t)
	flock := need(t, "flock")
	fl := e.flockHold(0)

	_, stderr, code := e.run("exec", "-n", "--", "true")
	assert.Equal(t, exitTempFail, code)
	assert.Contains(t, requireOneLine(t, stderr), "held by a process that left no description (flock(1)?)")

	// A waiter gets the lock once flock(1) lets go.
	w := e.start("exec", "--", "echo", "got it")
	e.waitWaiters(0, 1)
	require.NoError(t, syscall.Kill(-fl.cmd.Process.Pid, syscall.SIGKILL))
	assert.Equal(t, "got it", w.line())
	assert.Equal(t, 0, w.wait())

	// flock(1) is kept out while gpulock holds the lock.
	e.hold(0, "holder")
	_, err := e.with().cmd().Output() // warm nothing; keep helpers symmetrical
	_ = err
	c := e.cmd()
	c.Path, c.Args = flock, []string{flock, "-n", filepath.Join(e.dir, "gpu0.lock"), "true"}
	err = c.Run()
	require.Error(t, err)
	assert.Equal(t, 1, c.ProcessState.ExitCode(), "flock -n fails on a lock gpulock holds")
}

func TestAnyPicksFreeGPU(t *testing.T) {
	e := newEnv(t).with("GPULOCK_GPUS=3")
	e.flockHold(0)
	out, stderr, code := e.run("exec", "--gpu", "any", "--", "sh", "-c", "echo $CUDA_VISIBLE_DEVICES")
	require.Equal(t, 0, code, stderr)
	assert.Equal(t, "1\n", out)
	out, _, code = e.run("exec", "--gpu", "all", "--", "sh", "-c", "echo $GPULOCK_HELD_GPU")
	require.Equal(t, 0, code)
	assert.Equal(t, "1\n", out)
}

func TestCUDAEnv(t *testing.T) {
	e := newEnv(t)
	printEnv := []string{"--", "sh", "-c", `echo "$GPULOCK_HELD_GPU|${CUDA_VISIBLE_DEVICES-unset}|${CUDA_DEVICE_ORDER-unset}"`}

	out, stderr, code := e.run(append([]string{"exec", "--gpu", "2"}, printEnv...)...)
	require.Equal(t, 0, code, stderr)
	assert.Equal(t, "2|2|PCI_BUS_ID\n", out)
	assert.Empty(t, stderr)

	out, _, _ = e.run(append([]string{"exec", "--gpu", "2", "--cuda-env=false"}, printEnv...)...)
	assert.Equal(t, "2|unset|unset\n", out)

	out, stderr, _ = e.with("CUDA_VISIBLE_DEVICES=5").run(append([]string{"exec", "--gpu", "2"}, printEnv...)...)
	assert.Equal(t, "2|2|PCI_BUS_ID\n", out)
	assert.Contains(t, requireOneLine(t, stderr), "replacing CUDA_VISIBLE_DEVICES=5 with 2")

	out, stderr, _ = e.with("CUDA_VISIBLE_DEVICES=5").run(append([]string{"exec", "-q", "--gpu", "2"}, printEnv...)...)
	assert.Equal(t, "2|2|PCI_BUS_ID\n", out)
	assert.Empty(t, stderr)

	out, _, _ = e.with("CUDA_VISIBLE_DEVICES=5").run(append([]string{"exec", "--gpu", "2", "--cuda-env=false"}, printEnv...)...)
	assert.Equal(t, "2|5|unset\n", out)
}

func TestNestedExec(t *testing.T) {
	e := newEnv(t)
	bin := binPath
	_, stderr, code := e.run("exec", "--gpu", "0", "--", bin, "exec", "--gpu", "0", "--", "true")
	assert.Equal(t, exitUsage, code)
	assert.Contains(t, requireOneLine(t, stderr), "GPU 0 is already held by an enclosing gpulock exec (pid ")

	// A set drops the GPU held; the inner exec takes another.
	out, stderr, code := e.run("exec", "--gpu", "0", "--", bin, "exec", "--gpu", "0-1", "--", "sh", "-c", "echo $GPULOCK_HELD_GPU")
	require.Equal(t, 0, code, stderr)
	assert.Equal(t, "0,1\n", out)
}

// TestNestedExecAsksTheKernel: the guard decides from the lock's holder, not
// from GPULOCK_HELD_GPU.
func TestNestedExecAsksTheKernel(t *testing.T) {
	e := newEnv(t)
	bin := binPath

	// A stale variable (as `exec --close` leaves to the command's children)
	// with the GPU free: the inner exec runs.
	out, stderr, code := e.with("GPULOCK_HELD_GPU=0").run("exec", "--", "echo", "ran")
	require.Equal(t, 0, code, stderr)
	assert.Equal(t, "ran\n", out)

	// The variable removed: the inner exec is still refused at once rather
	// than waiting for its own parent (the run's deadline would fail it).
	_, stderr, code = e.run("exec", "--", "env", "-u", "GPULOCK_HELD_GPU", bin, "exec", "--", "true")
	assert.Equal(t, exitUsage, code)
	assert.Contains(t, requireOneLine(t, stderr), "already held by an enclosing gpulock exec")

	// flock(1) running gpulock holds the lock too: refused, and named.
	flock := need(t, "flock")
	_, stderr, code = e.run("exec", "--gpu", "1", "--", flock, filepath.Join(e.dir, "gpu0.lock"), bin, "exec", "--nonblock", "--gpu", "0", "--", "true")
	assert.Equal(t, exitUsage, code)
	assert.Contains(t, requireOneLine(t, stderr), "GPU 0 is already held by flock (pid ")

	// Someone else's holder is waited for as before, whatever the variable.
	h := e.hold(0, "other")
	_, stderr, code = e.with("GPULOCK_HELD_GPU=1").run("exec", "--nonblock", "--", "true")
	assert.Equal(t, exitTempFail, code, stderr)
	h.signal(syscall.SIGTERM)
}

func TestSignalForwardedOnce(t *testing.T) {
	e := newEnv(t)
	script := `n=0
trap 'n=$((n+1)); echo "term $n"' TERM
trap 'echo "int $n"; exit 3' INT
echo ready
while :; do sleep 0.01; done`
	p := e.start("exec", "--", "sh", "-c", script)
	require.Equal(t, "ready", p.line())

	// A signal to gpulock's whole process group, as a terminal's Ctrl-C
	// would send it: the child, in its own group, gets it once, from gpulock.
	require.NoError(t, syscall.Kill(-p.cmd.Process.Pid, syscall.SIGTERM))
	assert.Equal(t, "term 1", p.line())
	p.signal(syscall.SIGTERM)
	assert.Equal(t, "term 2", p.line())
	p.signal(syscall.SIGINT)
	assert.Equal(t, "int 2", p.line())
	assert.Equal(t, 3, p.wait())
}

func TestSignalWhileWaiting(t *testing.T) {
	e := newEnv(t)
	e.hold(0, "holder")
	w := e.start("exec", "--", "echo", "never")
	e.waitWaiters(0, 1)
	w.signal(syscall.SIGINT)
	assert.Equal(t, 128+int(syscall.SIGINT), w.wait())
	assert.Contains(t, w.stderr.String(), "interrupted by SIGINT while waiting for GPU 0")
	e.waitWaiters(0, 0)
}

// TestSIGKILLKillsChild: a gpulock killed with SIGKILL takes its child
// along, and the next waiter gets the lock.
func TestSIGKILLKillsChild(t *testing.T) {
	e := newEnv(t)
	h := e.start("exec", "--name", "victim", "--", "sh", "-c", "echo $$; exec sleep 600")
	childPID, err := strconv.Atoi(h.line())
	require.NoError(t, err)
	w := e.start("exec", "--", "echo", "next")
	e.waitWaiters(0, 1)

	require.NoError(t, syscall.Kill(h.cmd.Process.Pid, syscall.SIGKILL))
	assert.Equal(t, "next", w.line())
	assert.Equal(t, 0, w.wait())
	eventually(t, "the child to die", func() bool { return !processLives(childPID) })
}

// processLives reports whether pid runs (a zombie does not).
func processLives(pid int) bool {
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
	if err != nil {
		return false
	}
	s := string(b)
	i := strings.LastIndexByte(s, ')')
	return i < 0 || i+2 >= len(s) || (s[i+2] != 'Z' && s[i+2] != 'X')
}

// TestLockOutlivesChild: a grandchild that inherited the lock keeps it after
// the child and gpulock are gone; --close frees it when the child exits.
func TestLockOutlivesChild(t *testing.T) {
	for _, closeFD := range []bool{false, true} {
		t.Run("close="+strconv.FormatBool(closeFD), func(t *testing.T) {
			e := newEnv(t)
			fifo := filepath.Join(t.TempDir(), "fifo")
			require.NoError(t, syscall.Mkfifo(fifo, 0o600))
			args := []string{"exec", "--close=" + strconv.FormatBool(closeFD), "--", "sh", "-c",
				`(read x < "$0") >/dev/null 2>&1 & echo started`, fifo}
			out, stderr, code := e.run(args...)
			require.Equal(t, 0, code, stderr)
			require.Equal(t, "started\n", out)

			_, err := e.lockOf(0).TryAcquire()
			if closeFD {
				require.NoError(t, err, "with --close the lock ends with the child")
			} else {
				require.ErrorIs(t, err, gpulock.ErrBusy, "the grandchild holds the lock")
				st := e.status(0)
				assert.True(t, st.Held)
			}
			// Let the grandchild go.
			f, err := os.OpenFile(fifo, os.O_WRONLY, 0)
			require.NoError(t, err)
			_, _ = f.WriteString("\n")
			require.NoError(t, f.Close())
			if !closeFD {
				h, err := e.lockOf(0).AcquireTimeout(eventTimeout)
				require.NoError(t, err, "the lock is freed when the grandchild exits")
				require.NoError(t, h.Release())
			}
		})
	}
}

func TestStatusHolderAndTwoWaiters(t *testing.T) {
	e := newEnv(t)
	holder := e.hold(0, "comfyui")
	w1 := e.start("exec", "--name", "a1111", "--", "echo", "w1")
	e.waitWaiters(0, 1)
	w2 := e.start("exec", "--name", "train", "--", "echo", "w2")
	e.waitWaiters(0, 2)

	out, stderr, code := e.run("status")
	require.Equal(t, 0, code, stderr)
	lines := strings.Split(strings.TrimRight(out, "\n"), "\n")
	require.Len(t, lines, 4, out)
	assert.Regexp(t, `^GPU\s+STATE\s+SERVICE\s+PID\s+USER\s+HOST\s+FOR\s+COMMAND`, lines[0])
	assert.Regexp(t, `^0\s+held\s+comfyui\s+`+strconv.Itoa(holder.cmd.Process.Pid)+`,\d+\s+\S+\s+\S+\s+\d+s\s+sh$`, lines[1], "the command's base name only")
	assert.Regexp(t, `^\s+waiting 1\s+a1111\s+`+strconv.Itoa(w1.cmd.Process.Pid)+`\s+\S+\s+\S+\s+\d+s\s+echo$`, lines[2])
	assert.Regexp(t, `^\s+waiting 2\s+train\s+`+strconv.Itoa(w2.cmd.Process.Pid)+`\s+\S+\s+\S+\s+\d+s\s+echo$`, lines[3])

	out, stderr, code = e.run("status", "--json")
	require.Equal(t, 0, code, stderr)
	var list []gpulock.Status
	require.NoError(t, json.Unmarshal([]byte(out), &list))
	require.Len(t, list, 1)
	st := list[0]
	require.NotNil(t, st.GPU)
	assert.Equal(t, 0, *st.GPU)
	assert.True(t, st.Held)
	require.NotNil(t, st.Holder)
	assert.Equal(t, "comfyui", st.Holder.Service)
	assert.Equal(t, holder.cmd.Process.Pid, st.Holder.PID)
	assert.NotZero(t, st.Holder.ChildPID)
	require.Len(t, st.Waiters, 2)
	assert.Equal(t, "a1111", st.Waiters[0].Service)
	assert.Equal(t, 1, st.Waiters[0].Position)
	assert.Equal(t, "train", st.Waiters[1].Service)
	assert.Equal(t, 2, st.Waiters[1].Position)

	// The second waiter was told where it stands (not a terminal: one line).
	eventually(t, "the waiting line", func() bool { return strings.Contains(w2.stderr.String(), "\n") })
	assert.Regexp(t, `^gpulock: waiting for GPU 0: held by comfyui \(pid \d+, child \d+, user \S+\) for \d+s, \d ahead of you\n$`, w2.stderr.String())

	// Freeing the GPU serves the waiters in order.
	holder.signal(syscall.SIGTERM)
	assert.Equal(t, 128+int(syscall.SIGTERM), holder.wait())
	assert.Equal(t, "w1", w1.line())
	assert.Equal(t, "w2", w2.line())
	assert.Equal(t, 0, w2.wait())
	assert.Contains(t, w2.stderr.String(), "gpulock: got GPU 0 after waiting")

	out, _, code = e.run("status", "--gpu", "0,3")
	require.Equal(t, 0, code)
	assert.Regexp(t, `(?m)^0\s+free`, out)
	assert.Regexp(t, `(?m)^3\s+free`, out)
}

func TestStatusEmpty(t *testing.T) {
	e := newEnv(t)
	out, _, code := e.run("status")
	assert.Equal(t, 0, code)
	assert.Equal(t, "no GPU locks in "+e.dir+"\n", out)
	out, _, code = e.run("status", "--json")
	assert.Equal(t, 0, code)
	assert.Equal(t, "[]\n", out)
}

func TestStatusWatch(t *testing.T) {
	e := newEnv(t)
	p := e.start("status", "--watch", "--json")
	assert.Equal(t, "[]", p.line())
	e.hold(1, "late")
	eventually(t, "a redraw showing the holder", func() bool { return strings.Contains(p.line(), `"service":"late"`) })
	p.signal(syscall.SIGINT)
	assert.Equal(t, 0, p.wait())
}

// TestSIGKILLKillsProcessGroup: a gpulock killed with SIGKILL takes the
// command's whole process group along, background children included, and
// the lock is free again within 3 s.
func TestSIGKILLKillsProcessGroup(t *testing.T) {
	e := newEnv(t)
	h := e.start("exec", "--", "sh", "-c", `sleep 1000 & echo $!; sleep 1000 & echo $!; wait`)
	var pids []int
	for range 2 {
		pid, err := strconv.Atoi(h.line())
		require.NoError(t, err)
		pids = append(pids, pid)
	}
	_, err := e.lockOf(0).TryAcquire()
	require.ErrorIs(t, err, gpulock.ErrBusy)

	require.NoError(t, syscall.Kill(h.cmd.Process.Pid, syscall.SIGKILL))
	start := time.Now()
	l, err := e.lockOf(0).AcquireTimeout(3 * time.Second)
	require.NoError(t, err, "the lock is free within 3 s of the SIGKILL")
	t.Logf("lock free %s after SIGKILL", time.Since(start))
	require.NoError(t, l.Release())
	for _, pid := range pids {
		eventually(t, fmt.Sprintf("background sleep %d to die", pid), func() bool { return !processLives(pid) })
	}
}

// TestGuardSurvivesForwardedSignals: the guard shares the command's group,
// so it gets the signals gpulock passes on; it ignores them and still
// kills the group when gpulock is SIGKILLed.
func TestGuardSurvivesForwardedSignals(t *testing.T) {
	e := newEnv(t)
	script := `trap '' USR1 HUP; sleep 1000 & echo $!
trap 'echo usr1' USR1; trap 'echo hup' HUP; echo ready
while :; do sleep 0.01; done`
	h := e.start("exec", "--", "sh", "-c", script)
	pid, err := strconv.Atoi(h.line())
	require.NoError(t, err)
	require.Equal(t, "ready", h.line())
	h.signal(syscall.SIGUSR1)
	require.Equal(t, "usr1", h.line())
	h.signal(syscall.SIGHUP)
	require.Equal(t, "hup", h.line())

	require.NoError(t, syscall.Kill(h.cmd.Process.Pid, syscall.SIGKILL))
	l, err := e.lockOf(0).AcquireTimeout(3 * time.Second)
	require.NoError(t, err, "the lock is free within 3 s of the SIGKILL")
	require.NoError(t, l.Release())
	eventually(t, fmt.Sprintf("background sleep %d to die", pid), func() bool { return !processLives(pid) })
}

// TestNormalExitLeavesGroupAlone: when the command ends normally, the
// guard does not kill what the command left running.
func TestNormalExitLeavesGroupAlone(t *testing.T) {
	e := newEnv(t)
	out, stderr, code := e.run("exec", "--", "sh", "-c", `sleep 1000 >/dev/null 2>&1 & echo $!`)
	require.Equal(t, 0, code, stderr)
	pid, err := strconv.Atoi(strings.TrimSpace(out))
	require.NoError(t, err)
	t.Cleanup(func() { _ = syscall.Kill(pid, syscall.SIGKILL) })
	_, err = e.lockOf(0).TryAcquire()
	require.ErrorIs(t, err, gpulock.ErrBusy, "the background child keeps the lock")
	assert.True(t, processLives(pid))
}
