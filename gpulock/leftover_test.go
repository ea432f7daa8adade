//go:build unix

package gpulock

import (
	"bytes"
	"context"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// TestLeftoverOfAKilledHolder kills a holder process with SIGKILL: the next
// holder finds the dead one's description, and the one after a clean
// release finds none.
func TestLeftoverOfAKilledHolder(t *testing.T) {
	dir := t.TempDir()
	c := startChild(t, "hold", childEnv(dir, 0, "doomed", "")...)
	c.expect("held")
	deadPID := c.cmd.Process.Pid
	c.kill()

	l := newTestLock(t, dir, 0)
	ctx, cancel := context.WithTimeout(context.Background(), eventTimeout)
	defer cancel()
	h, err := l.Acquire(ctx)
	require.NoError(t, err)
	left, ok := h.Leftover()
	require.True(t, ok, "a holder killed while holding leaves its description")
	assert.Equal(t, deadPID, left.PID)
	assert.Equal(t, "doomed", left.Service)
	assert.Nil(t, left.Backend)
	require.NoError(t, h.Release())

	h, err = l.Acquire(ctx)
	require.NoError(t, err)
	_, ok = h.Leftover()
	assert.False(t, ok, "a released lock leaves nothing behind")
	require.NoError(t, h.Release())
}

// TestLeftoverNamesTheBackend checks that a holder's backend reaches the
// next holder when the first ends without releasing.
func TestLeftoverNamesTheBackend(t *testing.T) {
	dir := t.TempDir()
	shim, err := New(0, WithDir(dir), WithService("comfyui"), WithBackend("comfyui", "http://127.0.0.1:8188"))
	require.NoError(t, err)
	ctx, cancel := context.WithTimeout(context.Background(), eventTimeout)
	defer cancel()
	h, err := shim.Acquire(ctx)
	require.NoError(t, err)
	require.NoError(t, h.Disown()) // ends without clearing, as a death does

	h, err = newTestLock(t, dir, 0).Acquire(ctx)
	require.NoError(t, err)
	defer h.Release()
	left, ok := h.Leftover()
	require.True(t, ok)
	assert.Equal(t, "comfyui", left.Service)
	require.NotNil(t, left.Backend)
	assert.Equal(t, Backend{Profile: "comfyui", Upstream: "http://127.0.0.1:8188"}, *left.Backend)
}

// TestKeepLeftoverPassesItOn checks that a holder that keeps the leftover
// hands it to the next holder, whether it releases or dies, and that it
// shows its own description again once it stops keeping it.
func TestKeepLeftoverPassesItOn(t *testing.T) {
	dir := t.TempDir()
	ctx, cancel := context.WithTimeout(context.Background(), eventTimeout)
	defer cancel()
	shim, err := New(0, WithDir(dir), WithService("a1111"), WithBackend("a1111", "http://127.0.0.1:7860"))
	require.NoError(t, err)
	h, err := shim.Acquire(ctx)
	require.NoError(t, err)
	require.NoError(t, h.Disown())

	l := newTestLock(t, dir, 0)
	for _, end := range []func(*Handle) error{(*Handle).Release, (*Handle).Disown} {
		h, err := l.Acquire(ctx)
		require.NoError(t, err)
		left, ok := h.Leftover()
		require.True(t, ok)
		require.NotNil(t, left.Backend, "the backend is passed on from holder to holder")
		assert.Equal(t, "a1111", left.Service)
		h.KeepLeftover(true)
		require.NoError(t, end(h))
	}

	h, err = l.Acquire(ctx)
	require.NoError(t, err)
	h.KeepLeftover(true)
	h.KeepLeftover(false)
	st, err := l.Status()
	require.NoError(t, err)
	require.NotNil(t, st.Holder)
	assert.Equal(t, "test", st.Holder.Service, "its own description once it stops keeping the leftover")
	require.NoError(t, h.Release())
	h, err = l.Acquire(ctx)
	require.NoError(t, err)
	_, ok := h.Leftover()
	assert.False(t, ok, "a plain release clears it")
	require.NoError(t, h.Release())
}

// TestLeftoverWithABackendOutlivesHoldersThatDoNotLook: a dead holder's
// line that names a backend is passed on by every holder that does not
// say it saw that backend idle, whether it releases (a start-up check that
// takes the lock and lets it go) or dies; only KeepLeftover(false) lets a
// release clear it. Meanwhile the file shows the dead holder.
func TestLeftoverWithABackendOutlivesHoldersThatDoNotLook(t *testing.T) {
	dir := t.TempDir()
	ctx, cancel := context.WithTimeout(context.Background(), eventTimeout)
	defer cancel()
	dead, err := New(0, WithDir(dir), WithService("comfyui"), WithBackend("comfyui", "http://127.0.0.1:8188"))
	require.NoError(t, err)
	h, err := dead.Acquire(ctx)
	require.NoError(t, err)
	deadPID := h.desc.PID
	require.NoError(t, h.Disown()) // ends without clearing, as a death does

	l := newTestLock(t, dir, 0)
	for i, end := range []func(*Handle) error{(*Handle).Release, (*Handle).Disown, (*Handle).Release} {
		h, err := l.TryAcquire()
		require.NoError(t, err)
		left, ok := h.Leftover()
		require.True(t, ok, "holder %d finds the dead holder's line", i)
		require.NotNil(t, left.Backend, "holder %d", i)
		assert.Equal(t, "comfyui", left.Service, "holder %d finds the dead holder's, not the last holder's", i)
		assert.Equal(t, deadPID, left.PID, "holder %d", i)
		line, _, _ := bytes.Cut(readHead(h.f), []byte{'\n'})
		assert.Contains(t, string(line), `"service":"comfyui"`, "holder %d shows the dead holder while it holds", i)
		require.NoError(t, end(h))
	}

	h, err = l.TryAcquire()
	require.NoError(t, err)
	_, ok := h.Leftover()
	require.True(t, ok)
	h.KeepLeftover(false) // the backend was seen idle
	line, _, _ := bytes.Cut(readHead(h.f), []byte{'\n'})
	assert.Contains(t, string(line), `"service":"test"`, "its own line once it let the leftover go")
	require.NoError(t, h.Release())
	h, err = l.TryAcquire()
	require.NoError(t, err)
	_, ok = h.Leftover()
	assert.False(t, ok, "cleared once a holder saw the backend idle")
	require.NoError(t, h.Release())
}
