//go:build unix

package gpulock

import (
	"context"
	"os"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// firstLine returns the first line of the lock file, as readers see it.
func firstLine(t *testing.T, l *Lock) string {
	t.Helper()
	b, err := os.ReadFile(l.Path())
	require.NoError(t, err)
	line, _, _ := strings.Cut(string(b), "\n")
	return line
}

// From the second turn on, holders write through the map, and other
// readers see what they write.
func TestHolderLineThroughTheMap(t *testing.T) {
	l := newTestLock(t, t.TempDir(), 0)
	for turn := range 3 {
		h, err := l.Acquire(context.Background())
		require.NoError(t, err)
		assert.Contains(t, firstLine(t, l), `"service":"test"`, "turn %d", turn)
		if turn > 0 {
			require.NotNil(t, h.m, "turn %d", turn)
			assert.NotNil(t, h.m.mem, "turn %d: the file is ours to write, so it is mapped", turn)
		}
		h.SetChildPID(4242)
		assert.Contains(t, firstLine(t, l), `"child_pid":4242`, "turn %d", turn)
		require.NoError(t, h.Release())
		assert.Empty(t, strings.TrimSpace(firstLine(t, l)), "turn %d: a release blanks the line", turn)
	}
}

// A lock file cut short under the map (any user who may write it may do
// so) costs the holder nothing but a pwrite: the fault is caught.
func TestHolderLineAfterTruncationUnderTheMap(t *testing.T) {
	l := newTestLock(t, t.TempDir(), 0)
	h, err := l.Acquire(context.Background())
	require.NoError(t, err)
	require.NoError(t, h.Release()) // the file now has a line's worth of blanks: mapped from now on

	h, err = l.Acquire(context.Background())
	require.NoError(t, err)
	require.NotNil(t, h.m)
	require.NotNil(t, h.m.mem)
	require.NoError(t, os.Truncate(l.Path(), 0))

	h.SetChildPID(4242) // through the map: SIGBUS, caught; then pwrite
	assert.Contains(t, firstLine(t, l), `"child_pid":4242`)
	require.NoError(t, h.Release())
	assert.Empty(t, strings.TrimSpace(firstLine(t, l)), "the release blanks the line all the same")

	h, err = l.Acquire(context.Background())
	require.NoError(t, err)
	_, left := h.Leftover()
	assert.False(t, left, "a released lock leaves nothing behind")
	assert.Contains(t, firstLine(t, l), `"service":"test"`)
	require.NoError(t, h.Release())
}
