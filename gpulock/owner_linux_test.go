package gpulock

import (
	"bufio"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func TestStatusShowsTheKernelsOwnerOfTheHolder(t *testing.T) {
	l := newTestLock(t, t.TempDir(), 0)
	h, err := l.TryAcquire()
	require.NoError(t, err)
	defer h.Release()
	st, err := l.Status()
	require.NoError(t, err)
	require.NotNil(t, st.Owner)
	assert.Equal(t, os.Getpid(), st.Owner.PID)
	require.NotNil(t, st.Owner.UID)
	assert.Equal(t, os.Getuid(), *st.Owner.UID)
	assert.NotEmpty(t, st.Owner.Comm)
	assert.False(t, st.Owner.Mismatch)
	assert.False(t, st.Owner.Gone)
}

func TestStatusMarksAForgedHolderLine(t *testing.T) {
	flockBin, err := exec.LookPath("flock")
	requireComponent(t, err == nil, "util-linux flock(1) is not installed")
	l := newTestLock(t, t.TempDir(), 0)
	// Whoever can write the file can claim to be anyone (pid 1 is alive).
	forged := `{"pid":1,"host":"` + hostname() + `","service":"comfyui","since":"2020-01-01T00:00:00Z"}` + "\n"
	require.NoError(t, os.WriteFile(l.Path(), []byte(forged), 0o666))
	cmd := exec.Command(flockBin, l.Path(), "cat")
	stdin, err := cmd.StdinPipe()
	require.NoError(t, err)
	require.NoError(t, cmd.Start())
	defer func() { stdin.Close(); _ = cmd.Wait() }()
	waitFor(t, "flock(1) to hold", func() bool {
		st, err := l.Status()
		return err == nil && st.Held
	})
	st, err := l.Status()
	require.NoError(t, err)
	require.NotNil(t, st.Holder)
	assert.Equal(t, 1, st.Holder.PID, "the file's text is reported as it is")
	require.NotNil(t, st.Owner)
	assert.Equal(t, cmd.Process.Pid, st.Owner.PID, "the kernel's holder")
	assert.Equal(t, "flock", st.Owner.Comm)
	assert.True(t, st.Owner.Mismatch, "text and kernel disagree")
}

func TestStatusShowsAnOrphan(t *testing.T) {
	flockBin, err := exec.LookPath("flock")
	requireComponent(t, err == nil, "util-linux flock(1) is not installed")
	l := newTestLock(t, t.TempDir(), 0)
	// flock(1) passes the locked descriptor to its command; the command's
	// child keeps it after flock(1) and the command are gone.
	out, err := exec.Command(flockBin, l.Path(), "sh", "-c", "sleep 600 >/dev/null 2>&1 & echo $!").Output()
	require.NoError(t, err)
	orphan, err := strconv.Atoi(strings.TrimSpace(string(out)))
	require.NoError(t, err)
	t.Cleanup(func() { _ = syscall.Kill(orphan, syscall.SIGKILL) })

	st, err := l.Status()
	require.NoError(t, err)
	require.True(t, st.Held)
	require.NotNil(t, st.Owner)
	assert.True(t, st.Owner.Gone, "the process that took the lock has exited")
	assert.NotEqual(t, orphan, st.Owner.PID)
	require.Len(t, st.Owner.HeldBy, 1)
	assert.Equal(t, orphan, st.Owner.HeldBy[0].PID)
	assert.Equal(t, "sleep", st.Owner.HeldBy[0].Comm)
}

// TestStatusShowsAnotherUsersTicketAsTheirs has user nobody put a ticket in
// line that claims to be comfyui, run by this process: status shows who
// really made it and holds it.
func TestStatusShowsAnotherUsersTicketAsTheirs(t *testing.T) {
	requireComponent(t, os.Geteuid() == 0, "needs root to run a child as another user")
	flockBin, err := exec.LookPath("flock")
	requireComponent(t, err == nil, "util-linux flock(1) is not installed")
	dir := stickyDir(t)
	l := newTestLock(t, dir, 0)
	require.NoError(t, ensureQueueDir(l.queueDir()))
	name := fmt.Sprintf("%0*d-%d-%08x", ticketTimeDigits, time.Now().UnixNano(), os.Getpid(), 1)
	ticket := filepath.Join(l.queueDir(), name)
	desc := `{"pid":` + strconv.Itoa(os.Getpid()) + `,"host":"` + hostname() + `","service":"comfyui","since":"2020-01-01T00:00:00Z"}`
	cmd := exec.Command("/bin/sh", "-c", `printf '%s\n' "$2" >"$1" && exec "$3" "$1" sh -c 'echo ready; exec cat'`, "sh", ticket, desc, flockBin)
	cmd.SysProcAttr = &syscall.SysProcAttr{Credential: &syscall.Credential{Uid: 65534, Gid: 65534}}
	stdin, err := cmd.StdinPipe()
	require.NoError(t, err)
	stdout, err := cmd.StdoutPipe()
	require.NoError(t, err)
	require.NoError(t, cmd.Start())
	defer func() { stdin.Close(); _ = cmd.Wait() }()
	line, err := bufio.NewReader(stdout).ReadString('\n')
	require.NoError(t, err, "the child as nobody did not start")
	require.Equal(t, "ready\n", line)

	st, err := l.Status()
	require.NoError(t, err)
	require.Len(t, st.Waiters, 1)
	w := st.Waiters[0]
	assert.Equal(t, "comfyui", w.Service, "the ticket's text, as written")
	require.NotNil(t, w.Owner)
	require.NotNil(t, w.Owner.UID)
	assert.Equal(t, 65534, *w.Owner.UID, "made by nobody")
	assert.Equal(t, cmd.Process.Pid, w.Owner.PID, "held by the child's flock(1)")
	assert.True(t, w.Owner.Mismatch, "it claims this process's pid")
}
