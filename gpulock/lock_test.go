//go:build unix

package gpulock

import (
	"context"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// shortWait is how long a test lets an acquisition wait when it expects the
// wait to fail; it bounds nothing else.
const shortWait = 100 * time.Millisecond

func newTestLock(t *testing.T, dir string, gpu int, opts ...Option) *Lock {
	t.Helper()
	l, err := New(gpu, append([]Option{WithDir(dir), WithService("test")}, opts...)...)
	require.NoError(t, err)
	return l
}

func TestAcquireAndRelease(t *testing.T) {
	dir := t.TempDir()
	l := newTestLock(t, dir, 0)
	assert.Equal(t, filepath.Join(dir, "gpu0.lock"), l.Path())
	assert.Equal(t, "gpu0", l.Name())

	h, err := l.Acquire(context.Background())
	require.NoError(t, err)
	assert.Equal(t, 0, h.GPU())
	assert.Same(t, l, h.Lock())
	assert.WithinDuration(t, time.Now(), h.AcquiredAt(), time.Minute)

	_, err = l.TryAcquire()
	require.ErrorIs(t, err, ErrBusy)

	require.NoError(t, h.Release())
	require.NoError(t, h.Release(), "a second Release is a no-op")

	h, err = l.TryAcquire()
	require.NoError(t, err)
	require.NoError(t, h.Release())

	fi, err := os.Stat(l.Path())
	require.NoError(t, err)
	assert.Equal(t, os.FileMode(0o666), fi.Mode().Perm(), "lock files are usable by every user")
}

func TestNewRejectsBadNames(t *testing.T) {
	for _, name := range []string{"", "../x", "a/b", ".hidden", "a.b", "-x", string(make([]byte, 65))} {
		_, err := NewNamed(name)
		assert.ErrorIs(t, err, ErrInvalidName, "name %q", name)
	}
	_, err := New(-1)
	assert.ErrorIs(t, err, ErrInvalidName)
	_, err = New(MaxGPU + 1)
	assert.ErrorIs(t, err, ErrInvalidName)
	l, err := NewNamed("license-server_2", WithDir(t.TempDir()))
	require.NoError(t, err)
	assert.Equal(t, -1, l.GPU())
}

func TestDirFromEnvironment(t *testing.T) {
	dir := t.TempDir()
	t.Setenv(DirEnv, dir)
	l, err := New(3)
	require.NoError(t, err)
	assert.Equal(t, filepath.Join(dir, "gpu3.lock"), l.Path())
	other := t.TempDir()
	l, err = New(3, WithDir(other))
	require.NoError(t, err)
	assert.Equal(t, filepath.Join(other, "gpu3.lock"), l.Path(), "WithDir wins over the environment")
}

func TestAcquireWithDoneContextHoldsNothing(t *testing.T) {
	l := newTestLock(t, t.TempDir(), 0)
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	_, err := l.Acquire(ctx)
	require.ErrorIs(t, err, context.Canceled)
	h, err := l.TryAcquire()
	require.NoError(t, err, "a failed Acquire leaves the lock free")
	require.NoError(t, h.Release())
}

func TestInProcessWaitersAreServedFirstComeFirstServed(t *testing.T) {
	l := newTestLock(t, t.TempDir(), 0)
	h, err := l.Acquire(context.Background())
	require.NoError(t, err)

	const n = 8
	order := make(chan int, n)
	done := make(chan struct{})
	for i := range n {
		go func() {
			h, err := l.Acquire(context.Background())
			if !assert.NoError(t, err) {
				return
			}
			order <- i
			_ = h.Release()
			done <- struct{}{}
		}()
		waitFor(t, "waiter to queue", func() bool { return queuedInProcess(l) == i+1 })
	}

	_, err = l.TryAcquire()
	require.ErrorIs(t, err, ErrBusy, "TryAcquire never jumps ahead of waiters")
	require.NoError(t, h.Release())
	for range n {
		<-done
	}
	close(order)
	var got []int
	for i := range order {
		got = append(got, i)
	}
	assert.Equal(t, []int{0, 1, 2, 3, 4, 5, 6, 7}, got)
}

func queuedInProcess(l *Lock) int {
	l.q.mu.Lock()
	defer l.q.mu.Unlock()
	return l.q.waiters.Len()
}

func TestTryAcquireDoesNotJumpAheadOfOtherProcesses(t *testing.T) {
	dir := t.TempDir()
	l := newTestLock(t, dir, 0)
	// This process takes a place in line without holding the lock, as a
	// waiter between two turns does.
	tk, err := createTicket(l.queueDir(), l.waiterDescription(time.Now(), l.cfg.turn), time.Now())
	require.NoError(t, err)
	c := startChild(t, "try", childEnv(dir, 0, "try", filepath.Join(dir, "log"))...)
	c.expect("busy")
	c.wait()

	tk.remove()
	c = startChild(t, "try", childEnv(dir, 0, "try", filepath.Join(dir, "log"))...)
	c.expect("got")
	c.wait()
}

func TestAcquireTimesOutAndHoldsNothing(t *testing.T) {
	dir := t.TempDir()
	holder := startChild(t, "hold", childEnv(dir, 0, "holder", filepath.Join(dir, "log"))...)
	holder.expect("held")

	l := newTestLock(t, dir, 0)
	start := time.Now()
	_, err := l.AcquireTimeout(shortWait)
	require.ErrorIs(t, err, context.DeadlineExceeded)
	assert.Contains(t, err.Error(), l.Path())
	assert.Less(t, time.Since(start), eventTimeout)
	waitFor(t, "the place in line to be withdrawn", func() bool { return waitersOf(t, l) == 0 })

	// The kernel waiter is still blocked in flock; when the holder goes it
	// gets a grant nobody wants and must let it go at once.
	holder.finish()
	waitFor(t, "the unwanted grant to be released", func() bool {
		h, err := l.TryAcquire()
		if err != nil {
			return false
		}
		require.NoError(t, h.Release())
		return true
	})
}

func TestFlockInterop(t *testing.T) {
	flockBin, err := exec.LookPath("flock")
	requireComponent(t, err == nil, "util-linux flock(1) is not installed")
	dir := t.TempDir()
	l := newTestLock(t, dir, 0)

	t.Run("flock(1) holds, gpulock waits", func(t *testing.T) {
		cmd := exec.Command(flockBin, l.Path(), "cat")
		stdin, err := cmd.StdinPipe()
		require.NoError(t, err)
		require.NoError(t, cmd.Start())
		waitFor(t, "flock(1) to hold the lock", func() bool {
			st, err := l.Status()
			return err == nil && st.Held
		})
		_, err = l.TryAcquire()
		require.ErrorIs(t, err, ErrBusy)
		_, err = l.AcquireTimeout(shortWait)
		require.ErrorIs(t, err, context.DeadlineExceeded)

		got := make(chan error, 1)
		go func() {
			h, err := l.Acquire(context.Background())
			if err == nil {
				err = h.Release()
			}
			got <- err
		}()
		stdin.Close() // flock(1)'s command ends, and with it the lock
		require.NoError(t, cmd.Wait())
		select {
		case err := <-got:
			require.NoError(t, err)
		case <-time.After(eventTimeout):
			t.Fatal("gpulock did not get the lock after flock(1) let it go")
		}
	})

	t.Run("gpulock holds, flock(1) fails", func(t *testing.T) {
		h, err := l.Acquire(context.Background())
		require.NoError(t, err)
		err = exec.Command(flockBin, "-n", l.Path(), "true").Run()
		var exit *exec.ExitError
		require.True(t, errors.As(err, &exit), "flock -n must fail while gpulock holds: %v", err)
		assert.Equal(t, 1, exit.ExitCode())
		require.NoError(t, h.Release())
		require.NoError(t, exec.Command(flockBin, "-n", l.Path(), "true").Run())
	})
}

// requireComponent fails the test when a real component it needs is
// missing in CI, and skips it, saying why, elsewhere.
func requireComponent(t *testing.T, ok bool, why string) {
	t.Helper()
	if ok {
		return
	}
	if os.Getenv("CI") != "" {
		t.Fatalf("%s (CI must provide it)", why)
	}
	t.Skip(why)
}
