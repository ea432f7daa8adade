//go:build unix

package gpulock

import (
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
