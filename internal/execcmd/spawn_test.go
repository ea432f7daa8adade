package execcmd

import (
	"os"
	"os/exec"
	"syscall"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// TestGoGuardKillsGroup: where /bin/sh cannot start, exec starts its own
// binary (here the test binary, see TestMain) as the whole guard; it says it is ready and kills its
// group when its pipe ends without the release byte.
func TestGoGuardKillsGroup(t *testing.T) {
	release, ready := pipe(t), pipe(t)
	guard := exec.Command(self(t), guardArg)
	guard.ExtraFiles = []*os.File{release[0], ready[1]} // fd 3, fd 4
	guard.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	require.NoError(t, guard.Start())
	t.Cleanup(func() { _ = guard.Process.Kill(); _ = guard.Wait() })
	_, _ = release[0].Close(), ready[1].Close()

	var b [1]byte
	n, err := ready[0].Read(b[:])
	require.NoError(t, err)
	require.Equal(t, 1, n)
	require.Equal(t, byte(guardReady), b[0])

	member := exec.Command("sleep", "1000")
	member.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pgid: guard.Process.Pid}
	require.NoError(t, member.Start())
	t.Cleanup(func() { _ = member.Process.Kill() })
	exited := make(chan error, 1)
	go func() { exited <- member.Wait() }() // ends when the member is killed
	require.NoError(t, guard.Process.Signal(syscall.SIGTERM), "the guard ignores the group's signals")

	require.NoError(t, release[1].Close()) // as if exec died
	require.Error(t, <-exited, "the guard kills the group")
	require.NoError(t, guard.Wait(), "the guard exits after")
}

// TestShellGuardLeavesGroupOnRelease: the shell guard exits at the
// release byte and leaves its group alone.
func TestShellGuardLeavesGroupOnRelease(t *testing.T) {
	g := StartGroupGuard()
	require.NotNil(t, g)
	member := exec.Command("sleep", "1000")
	member.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pgid: g.PGID()}
	require.NoError(t, member.Start())
	t.Cleanup(func() { _ = member.Process.Kill(); _ = member.Wait() })
	g.WaitReady()
	pid := g.PGID()
	g.Release()
	var ws syscall.WaitStatus
	_, err := syscall.Wait4(pid, &ws, 0, nil)
	require.NoError(t, err)
	assert.True(t, ws.Exited() && ws.ExitStatus() == 0, "the guard exits cleanly: %v", ws)
	assert.True(t, processLives(member.Process.Pid))
}

func pipe(t *testing.T) [2]*os.File {
	t.Helper()
	r, w, err := os.Pipe()
	require.NoError(t, err)
	t.Cleanup(func() { _, _ = r.Close(), w.Close() })
	return [2]*os.File{r, w}
}

// self is the test binary, which can be the guard (see TestMain).
func self(t *testing.T) string {
	t.Helper()
	p, err := os.Executable()
	require.NoError(t, err)
	return p
}
