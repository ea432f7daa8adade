//go:build unix

package gpulock

import (
	"context"
	"errors"
	"io/fs"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func TestRefusesSymlinksAndNonRegularFiles(t *testing.T) {
	for _, tc := range []struct {
		name string
		make func(t *testing.T, path string)
		says string // what the message says is there
	}{
		{"symlink to a file", func(t *testing.T, path string) {
			target := filepath.Join(t.TempDir(), "victim")
			require.NoError(t, os.WriteFile(target, []byte("precious"), 0o600))
			require.NoError(t, os.Symlink(target, path))
		}, "is a symlink"},
		{"dangling symlink", func(t *testing.T, path string) {
			require.NoError(t, os.Symlink(filepath.Join(t.TempDir(), "nowhere"), path))
		}, "is a symlink"},
		{"directory", func(t *testing.T, path string) { require.NoError(t, os.Mkdir(path, 0o755)) }, "is a directory"},
		{"fifo", func(t *testing.T, path string) { require.NoError(t, syscall.Mkfifo(path, 0o666)) }, "is a named pipe"},
		{"unix socket", func(t *testing.T, path string) {
			ln, err := net.Listen("unix", path)
			require.NoError(t, err)
			t.Cleanup(func() { ln.Close() })
		}, "is a unix socket"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dir := t.TempDir()
			l := newTestLock(t, dir, 0)
			tc.make(t, l.Path())
			_, err := l.TryAcquire()
			require.ErrorIs(t, err, ErrNotRegular)
			var pe *fs.PathError
			require.True(t, errors.As(err, &pe), "want a *fs.PathError, got %T", err)
			assert.Equal(t, l.Path(), pe.Path)
			assert.Contains(t, err.Error(), l.Path())
			assert.Contains(t, err.Error(), tc.says)
			if tc.says != "is a symlink" {
				assert.NotContains(t, err.Error(), "symlink", "only a symlink is called one")
			}

			_, err = l.AcquireTimeout(eventTimeout)
			require.ErrorIs(t, err, ErrNotRegular, "a waiting acquisition fails the same way, and does not hang")
			_, err = l.Status()
			require.ErrorIs(t, err, ErrNotRegular)
			assert.Contains(t, err.Error(), tc.says, "status says the same")
		})
	}
}

func TestRefusesHardLinkedLockFile(t *testing.T) {
	dir := t.TempDir()
	victim := filepath.Join(t.TempDir(), "victim")
	require.NoError(t, os.WriteFile(victim, []byte("precious data\n"), 0o600))
	l := newTestLock(t, dir, 0)
	require.NoError(t, os.Link(victim, l.Path()))

	_, err := l.TryAcquire()
	require.ErrorIs(t, err, ErrHardLinked)
	assert.Contains(t, err.Error(), l.Path())
	_, err = l.AcquireTimeout(eventTimeout)
	require.ErrorIs(t, err, ErrHardLinked)
	_, err = l.Status()
	require.ErrorIs(t, err, ErrHardLinked)

	b, err := os.ReadFile(victim)
	require.NoError(t, err)
	assert.Equal(t, "precious data\n", string(b), "the other name's file is never written")
}

func TestUsesAnotherUsersLockFileInStickyDir(t *testing.T) {
	requireComponent(t, os.Geteuid() == 0, "needs root to make another user's file")
	dir := stickyDir(t)
	path := filepath.Join(dir, "gpu0.lock")
	require.NoError(t, os.WriteFile(path, nil, 0o666))
	require.NoError(t, os.Chmod(path, 0o666))
	require.NoError(t, os.Chown(path, 65534, 65534))

	// fs.protected_regular refuses O_CREAT on this file even for root: the
	// lock must open it without.
	l := newTestLock(t, dir, 0)
	h, err := l.TryAcquire()
	require.NoError(t, err)
	require.NoError(t, h.Release())
	fi, err := os.Stat(path)
	require.NoError(t, err)
	assert.Equal(t, uint32(65534), fi.Sys().(*syscall.Stat_t).Uid, "the file is used as it is, never replaced")
}

// stickyDir returns a world-writable sticky directory that other users can reach, like /tmp.
func stickyDir(t *testing.T) string {
	t.Helper()
	dir, err := os.MkdirTemp("", "gpulock-sticky-")
	require.NoError(t, err)
	t.Cleanup(func() { os.RemoveAll(dir) })
	require.NoError(t, os.Chmod(dir, 0o777|fs.ModeSticky))
	return dir
}

func TestStaleTicketThatCannotBeRemovedIsSkipped(t *testing.T) {
	requireComponent(t, os.Geteuid() == 0, "needs root to run a child as another user")
	dir := stickyDir(t)
	l := newTestLock(t, dir, 0)
	// A dead process of another user (root, here) left a ticket that the
	// child, running as nobody, may not delete from the sticky queue dir.
	tk, err := createTicket(l.queueDir(), l.waiterDescription(time.Now(), l.cfg.turn), time.Now())
	require.NoError(t, err)
	require.NoError(t, tk.f.Close()) // the owner "dies": its flock goes, the file stays
	require.NoError(t, os.Chmod(l.queueDir(), 0o777|fs.ModeSticky))
	// The test binary sits in a private build directory: give nobody a copy.
	bin := filepath.Join(dir, "gpulock.test")
	self, err := os.ReadFile(os.Args[0])
	require.NoError(t, err)
	require.NoError(t, os.WriteFile(bin, self, 0o755))

	cmd := exec.Command(bin, "-test.run=^$")
	cmd.Env = append(childBaseEnv(), envRole+"=try", envDir+"="+dir, envGPU+"=0", envName+"=nobody", envLog+"="+filepath.Join(dir, "log"))
	cmd.SysProcAttr = &syscall.SysProcAttr{Credential: &syscall.Credential{Uid: 65534, Gid: 65534}}
	out, err := cmd.Output()
	require.NoError(t, err)
	assert.Equal(t, "got\n", string(out), "the stale ticket is skipped, never waited on")
	_, err = os.Stat(filepath.Join(l.queueDir(), tk.name))
	assert.NoError(t, err, "the child could not remove it")
}

func TestLockFileDeletedWhileWaiting(t *testing.T) {
	dir := t.TempDir()
	l := newTestLock(t, dir, 0)
	holder := startChild(t, "hold", childEnv(dir, 0, "holder", filepath.Join(dir, "log"))...)
	holder.expect("held")
	got := make(chan *Handle, 1)
	go func() {
		h, err := l.Acquire(context.Background())
		assert.NoError(t, err)
		got <- h
	}()
	waitFor(t, "the waiter to queue", func() bool { return waitersOf(t, l) == 1 })
	// A /tmp cleaner deletes the file the waiter is blocked on.
	require.NoError(t, os.Remove(l.Path()))
	holder.finish()

	var h *Handle
	select {
	case h = <-got:
	case <-time.After(eventTimeout):
		t.Fatal("no grant after the holder left")
	}
	require.NotNil(t, h)
	fi, err := h.File().Stat()
	require.NoError(t, err)
	ok, err := stillNamed(fi, l.Path())
	require.NoError(t, err)
	assert.True(t, ok, "the grant is on the file the path names now, which newcomers lock too")
	require.NoError(t, h.Release())
}

func TestLongHolderRefreshesFileTimes(t *testing.T) {
	dir := t.TempDir()
	l, err := New(0, WithDir(dir), WithRefreshInterval(10*time.Millisecond))
	require.NoError(t, err)
	h, err := l.Acquire(context.Background())
	require.NoError(t, err)
	old := time.Now().Add(-30 * 24 * time.Hour)
	require.NoError(t, os.Chtimes(l.Path(), old, old))
	waitFor(t, "the holder to refresh the file's times", func() bool {
		fi, err := os.Stat(l.Path())
		return err == nil && fi.ModTime().After(old.Add(time.Hour))
	})
	require.NoError(t, h.Release())
}

func TestDisownKeepsTheLockForTheChild(t *testing.T) {
	dir := t.TempDir()
	l := newTestLock(t, dir, 0)
	h, err := l.Acquire(context.Background())
	require.NoError(t, err)
	cmd := exec.Command("sh", "-c", "cat >/dev/null") // holds the inherited descriptor until stdin closes
	cmd.ExtraFiles = []*os.File{h.File()}
	stdin, err := cmd.StdinPipe()
	require.NoError(t, err)
	require.NoError(t, cmd.Start())
	h.SetChildPID(cmd.Process.Pid)
	require.NoError(t, h.Disown())

	st, err := l.Status()
	require.NoError(t, err)
	assert.True(t, st.Held, "the child still holds the lock")
	require.NotNil(t, st.Holder)
	assert.Equal(t, cmd.Process.Pid, st.Holder.ChildPID)
	_, err = l.TryAcquire()
	require.ErrorIs(t, err, ErrBusy)

	stdin.Close()
	require.NoError(t, cmd.Wait())
	h, err = l.AcquireTimeout(eventTimeout)
	require.NoError(t, err, "the lock is free once the child is gone")
	require.NoError(t, h.Release())
}
