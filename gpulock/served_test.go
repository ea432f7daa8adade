//go:build unix

package gpulock

import (
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func TestServedMark(t *testing.T) {
	l := newTestLock(t, t.TempDir(), 0)
	assert.False(t, l.Served(), "nobody serves a GPU nobody marked")
	stop, err := l.Serve()
	require.NoError(t, err)
	other, err := l.Serve() // a second server of the same GPU
	require.NoError(t, err)
	assert.True(t, l.Served())
	h, err := l.TryAcquire()
	require.NoError(t, err, "serving does not take the lock")
	require.NoError(t, h.Release())
	require.NoError(t, stop())
	assert.True(t, l.Served(), "still served by the other")
	require.NoError(t, other())
	assert.False(t, l.Served())
}
